"""From a command's parsed options to the config flags the resolver merges.

Each measuring command keeps a table: option (the typer parameter's name) -> :class:`Field`, the
config field it sets. The label an error message shows is read from the option itself
(``-t/--threads``), so messages cannot name an option the command does not have; a test checks
that every table entry is a real option of its command and a real config field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from energybench.config import Flag
from energybench.errors import UsageError


@dataclass(frozen=True)
class Field:
    """The config field an option sets; ``convert`` turns the option's value into the field's (None:
    not given), ``replaces`` names the field replaced as a whole when it is wider than ``path``."""

    path: str
    replaces: str | None = None
    convert: Callable[[Any], Any] = lambda v: v


def off_when_set(value: bool) -> bool | None:
    """A ``--no-X`` switch: ``False`` for the field when given, else not given."""
    return False if value else None


def read_text(path: Path | None) -> str | None:
    """``--prompt-file``: the file's text."""
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--prompt-file {str(path)!r}: cannot read it ({exc.strerror})") from exc


def label(param: Any) -> str:
    """``-t/--threads``: the option's spellings, short first."""
    return "/".join(sorted(param.opts, key=len))


def given_flags(ctx: typer.Context, fields: Mapping[str, Field]) -> list[Flag]:
    """The config flags of the options in ``fields`` that have a value (``None`` = not given)."""
    flags = []
    for param in ctx.command.params:
        field = fields.get(param.name or "")
        if field is None:
            continue
        raw = ctx.params.get(param.name or "")
        value = None if raw is None or raw == [] or raw == () else field.convert(raw)
        if value is not None:
            flags.append(Flag(path=field.path, value=value, label=label(param), replaces=field.replaces))
    return flags
