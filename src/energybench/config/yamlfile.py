"""Reading a sweep config file: a YAML loader that rejects duplicate keys, and :func:`read_yaml`.

Every failure (missing file, not UTF-8, invalid YAML, a duplicate key, an empty file, a top level
that is not a mapping) is a one-line :class:`~energybench.errors.ConfigError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from energybench.config.messages import allowed_keys
from energybench.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                    key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{context}, {problem}" if context and context not in problem else problem
    return f"invalid YAML{where}: {' '.join(str(detail).split())}"


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; every failure is a one-line :class:`ConfigError`."""
    p = Path(path)
    try:
        data = yaml.load(_read_text(p), Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: {_yaml_problem(exc)}") from None
    if data is None:
        raise ConfigError(f"{p}: the file is empty (a sweep config needs at least 'models:'; "
                          "see examples/quick.yaml)")
    if not isinstance(data, dict):
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number",
                "bool": "a boolean"}.get(type(data).__name__, type(data).__name__)
        raise ConfigError(f"{p}: the top level must be a mapping of keys ({', '.join(allowed_keys())}), got {kind}")
    return data


def _read_text(p: Path) -> str:
    """The UTF-8 text of the config file ``p``; a one-line :class:`ConfigError` if it cannot be read."""
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist",
                          hint="check the path; examples/quick.yaml is a starting point") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {str(p)!r} is a directory, not a YAML file") from None
    except PermissionError:
        raise ConfigError(f"cannot read config file {str(p)!r}: permission denied",
                          hint="make it readable (chmod a+r) or copy it") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); a config must be a YAML text file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc.strerror or exc}") from None


__all__ = ["read_yaml"]
