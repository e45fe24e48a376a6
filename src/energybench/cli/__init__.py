"""The energybench command line: thin typer commands over the core library."""

from __future__ import annotations

import importlib
import os
import sys

import typer

from energybench.cli.app import app, err_console
from energybench.errors import EnergybenchError

#: Command modules; each registers its commands on ``app`` when imported.
COMMAND_MODULES = ("fetch", "measure", "sweep", "report", "compare", "meters", "attach", "config", "doctor")


def _command_of(argv: list[str]) -> str | None:
    """The command module that ``argv`` invokes, when its first word names one (options first
    mean --help/--version: every command is loaded)."""
    first = argv[0] if argv else None
    return first if first in COMMAND_MODULES else None


def _load_commands(argv: list[str] | None = None) -> None:
    """Import the command modules (each registers its commands on ``app``): only the invoked one
    when ``argv`` names it (a command's start-up then skips the others' imports), else all of them
    (top-level help, an unknown command)."""
    wanted = _command_of(list(argv)) if argv is not None else None
    for name in (wanted,) if wanted else COMMAND_MODULES:
        try:
            importlib.import_module(f"energybench.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"energybench.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``energybench`` console script. Returns the exit code.

    Usage errors (unknown option, missing argument) are printed by typer (exit 2); our own
    :class:`EnergybenchError` becomes one line on stderr with its exit code; never a traceback.
    """
    _load_commands(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="energybench", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        err_console.print(str(code), highlight=False)
        return 1
    except EnergybenchError as exc:
        err_console.print(f"energybench: error: {exc.one_line()}", style="red", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("energybench: interrupted", style="red", highlight=False)
        return 130
    except Exception as exc:  # a bug: one line, the traceback only on request
        if os.environ.get("ENERGYBENCH_DEBUG"):
            raise
        err_console.print(f"energybench: internal error: {type(exc).__name__}: {exc} "
                          "(set ENERGYBENCH_DEBUG=1 for the traceback, and please report it)",
                          style="red", highlight=False, soft_wrap=True)
        return 1
    return 0


def run() -> None:
    sys.exit(main())
