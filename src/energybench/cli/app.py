"""The typer application object and the helpers every command module shares.

Each command lives in its own module (``cli/fetch.py``, ``cli/measure.py`` ...), registers itself
on :data:`app`, parses its options, calls *one* core function and prints. Core errors
(:class:`~energybench.errors.EnergybenchError`) are turned into one line on stderr by
:func:`energybench.cli.main`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from energybench import __version__

app = typer.Typer(
    name="energybench",
    help="Measure the energy and latency of local LLM inference (llama.cpp) and find the best trade-off.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Human output (tables, progress) goes to stderr when --json is asked, so stdout stays parseable.
console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON document on stdout, indented for a terminal, compact for a
    pipe or file (the indenting encoder is pure Python: 3x slower on a 10,000-run report)."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"energybench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """energybench: joules and seconds for every llama.cpp configuration."""
