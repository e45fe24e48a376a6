"""``energybench fetch``: download, register or synthesize a model; ``fetch --list`` shows the cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from energybench.cli.app import app, console, err_console, print_json
from energybench.errors import UsageError

_HELP = r"""Download, register or synthesize a model and record it in the cache.

REF is a GGUF path, a cached name, an alias (tinyllama-1.1b-chat:Q4_K_M), hf:OWNER/REPO/FILE.gguf\[@REV],
an https:// URL, or synthetic:SHAPE\[:QUANT]\[@SEED]. --synthetic SHAPE makes a shape twin: the exact
hyperparameters of a real model with seeded random weights (speed and energy only, no quality).
"""


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


@contextmanager
def _progress_bar(label: str, enabled: bool, done_label: str | None = None
                  ) -> Iterator[Callable[[int, int | None], None] | None]:
    """A rich progress bar on stderr, fed by the core's ``progress(done, total)`` callback.

    ``done_label`` replaces the label once all bytes are done (e.g. while llama.cpp quantizes).
    """
    if not enabled:
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=err_console, transient=True)
    task = bar.add_task(label, total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)
        if done_label and total is not None and done >= total:
            bar.update(task, description=done_label)

    with bar:
        yield update


def _describe(model: Any) -> dict[str, Any]:
    return model.to_dict()


def _print_model(model: Any) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("name", model.name)
    t.add_row("path", str(model.path))
    t.add_row("size", f"{_size(model.size_bytes)} ({model.size_bytes:,} bytes)")
    t.add_row("sha256", model.sha256)
    t.add_row("quant", model.quant or "-")
    synthetic = "[yellow]yes[/yellow] (shape twin of " + str(model.shape) + f", seed {model.seed}; random weights: " \
        "speed/energy only)" if model.synthetic else "no"
    t.add_row("synthetic", synthetic)
    t.add_row("source", model.source)
    console.print(t)


def _print_list(models: list[Any]) -> None:
    if not models:
        console.print("no models cached yet (try: energybench fetch synthetic:tiny)")
        return
    t = Table(header_style="bold", title_justify="left")
    for col in ("name", "quant", "size", "synthetic", "sha256", "path"):
        t.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
    for m in models:
        missing = "" if m.path.exists() else " [red](missing)[/red]"
        t.add_row(m.name, m.quant or "-", _size(m.size_bytes), "yes" if m.synthetic else "no", m.sha256[:12],
                  f"{m.path}{missing}")
    console.print(t)


@app.command("fetch", help=_HELP)
def fetch(
    ref: str = typer.Argument(None, help="Model reference (see above).", show_default=False),
    synthetic: str = typer.Option(None, "--synthetic", metavar="SHAPE",
                                  help="Make a shape twin of SHAPE (tinyllama-1.1b, tiny, llama-3.2-1b, qwen2.5-0.5b)."),
    quant: str = typer.Option(None, "--quant", help="Quant of the shape twin (default Q4_K_M)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the shape twin's random weights (default 0)."),
    sha256: str = typer.Option(None, "--sha256", metavar="HEX", help="Expected sha256; a mismatch deletes the download."),
    name: str = typer.Option(None, "--name", help="Name to record the model under (default: from the file)."),
    force: bool = typer.Option(False, "--force", help="Download/synthesize again, and replace a model of the same name."),
    list_: bool = typer.Option(False, "--list", help="List the cached models and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Do not draw a progress bar."),
) -> None:
    from energybench.models import fetch_model, list_models, synthesize_model

    if list_:
        if ref or synthetic:
            raise UsageError("--list takes no model reference")
        models = list_models()
        if as_json:
            print_json([m.to_dict() for m in models])
        else:
            _print_list(models)
        return
    if synthetic and ref:
        raise UsageError("give either REF or --synthetic SHAPE, not both")
    if not synthetic and not ref:
        raise UsageError("missing model reference: energybench fetch REF (or --synthetic SHAPE, or --list)")
    if not synthetic and (quant is not None or seed is not None):
        raise UsageError("--quant and --seed apply to --synthetic SHAPE (for a reference write synthetic:SHAPE:QUANT@SEED)")
    show = not no_progress and not as_json and err_console.is_terminal
    if synthetic:
        if sha256 is not None:
            raise UsageError("--sha256 does not apply to --synthetic (the sha256 is computed)")
        q = (quant or "Q4_K_M").upper()
        done_label = None if q in ("F16", "F32", "BF16") else f"quantizing to {q} (llama.cpp)"
        with _progress_bar(f"writing {synthetic} twin", show, done_label) as progress:
            model = synthesize_model(synthetic, quant=quant or "Q4_K_M", seed=seed or 0, force=force, name=name,
                                     progress=progress)
    else:
        with _progress_bar("fetching", show) as progress:
            model = fetch_model(ref, sha256=sha256, name=name, force=force, progress=progress)
    if as_json:
        print_json(_describe(model))
    else:
        _print_model(model)
