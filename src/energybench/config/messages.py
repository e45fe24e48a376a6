"""Pydantic validation errors → one-line :class:`~energybench.errors.ConfigError` messages.

Every error names where the value came from (the file, or a command-line flag), the field path
(``grid.threads[1]``, :func:`format_path`), the value and what is allowed; an unknown key lists the
allowed keys (:func:`allowed_keys`) and suggests the closest one, at its level or elsewhere
(``threads`` at the top level → ``grid.threads``). Only the first problem is shown, then
``(and N more)``.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from energybench.config.axes import _MISSING, FieldProblem
from energybench.config.schema import SweepConfig
from energybench.errors import ConfigError


def _show(value: Any, limit: int = 60) -> str:
    if value is _MISSING:
        return ""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if isinstance(value, str):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(loc: Iterable[str | int]) -> str:
    """('grid', 'threads', 1) → 'grid.threads[1]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation (Optional[X], Annotated[X, ...], list[X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The section model of the mapping at ``loc`` (``()`` = :class:`SweepConfig`), or None."""
    model: type[BaseModel] | None = SweepConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _unwrap_model(model.model_fields[part].annotation)
    return model


def _all_key_paths(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Every key path of the config ('grid.threads', 'cooldown.until_idle.hold_s', ...)."""
    out: list[str] = []
    for name, info in (model or SweepConfig).model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        sub = _unwrap_model(info.annotation)
        if sub is not None:
            out.extend(_all_key_paths(sub, path + "."))
    return out


def allowed_keys(loc: Sequence[str | int] = ()) -> list[str]:
    """The keys a mapping at ``loc`` may hold (``()`` = top level)."""
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def _describe_error(err: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """(field path, one-line problem) for one pydantic error."""
    loc = tuple(err.get("loc", ()))
    typ = err.get("type", "")
    value = err.get("input", _MISSING)
    ctx = err.get("ctx") or {}
    exc = ctx.get("error")
    if isinstance(exc, FieldProblem):
        loc = loc + exc.path
        shown = exc.value if exc.value is not _MISSING else value
        where = format_path(loc)
        return loc, (f"{where} = {_show(shown)}: {exc.message}" if where else f"{_show(shown)}: {exc.message}")
    where = format_path(loc) or "(top level)"
    if typ == "extra_forbidden":
        return loc, _unknown_key(loc)
    if typ == "missing":
        parent = _model_at(loc[:-1])
        field = parent.model_fields.get(str(loc[-1])) if parent else None
        about = f" ({field.description})" if field is not None and field.description else ""
        return loc, f"{where}: required field is missing{about}"
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        return loc, _not_a_mapping(loc, value)
    if typ == "literal_error":
        return loc, f"{where} = {_show(value)}: must be one of {ctx.get('expected', '')}"
    if typ == "string_pattern_mismatch" and loc == ("name",):
        return loc, f"{where} = {_show(value)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ").replace("Input should be", "must be")
    msg = msg[0].lower() + msg[1:] if msg else msg
    return loc, f"{where} = {_show(value)}: {msg}"


def _unknown_key(loc: tuple[str | int, ...]) -> str:
    """The message for an unknown key at ``loc``: the allowed keys, and the closest key at this
    level or, failing that, elsewhere (``threads`` at the top instead of in grid)."""
    key = str(loc[-1])
    parent = loc[:-1]
    keys = allowed_keys(parent)
    close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if close:
        guess = f"; did you mean {close[0]!r}?"
    else:
        elsewhere = {path.rsplit(".", 1)[-1]: path for path in reversed(_all_key_paths()) if path.count(".")}
        near = difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.75)
        guess = f"; did you mean {elsewhere[near[0]]!r}?" if near else ""
    inside = f" in {format_path(parent)}" if parent else ""
    return f"unknown key {key!r}{inside}{guess} (allowed keys: {', '.join(keys)})"


def _not_a_mapping(loc: tuple[str | int, ...], value: Any) -> str:
    """The message for a section given as something other than a mapping."""
    kind = type(value).__name__ if value is not _MISSING else "nothing"
    kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number",
            "NoneType": "nothing (null)", "bool": "a boolean"}.get(kind, kind)
    return (f"{format_path(loc) or '(top level)'} = {_show(value)}: expected a mapping (key: value) with keys "
            f"{', '.join(allowed_keys(loc))}, got {kind}")


def config_error_from_validation(exc: ValidationError, source: str,
                                 labels: Mapping[str, str] | None = None) -> ConfigError:
    """One-line :class:`ConfigError` for a pydantic ``ValidationError``: the first problem, then
    ``(and N more)``. ``labels`` maps a field path prefix to where its value came from (e.g. a
    command-line flag) to name that instead of ``source``."""
    errors = exc.errors()
    if not errors:  # pragma: no cover - pydantic never raises an empty one
        return ConfigError(f"{source}: invalid configuration")
    loc, text = _describe_error(errors[0])
    origin = source
    if labels:
        path = format_path(loc)
        for prefix, label in sorted(labels.items(), key=lambda kv: -len(kv[0])):
            if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
                origin = label
                break
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ConfigError(f"{origin}: {text}{more}")


__all__ = ["allowed_keys", "config_error_from_validation", "format_path"]
