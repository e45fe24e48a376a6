"""``build_report``: result directories in, ``report.md`` + ``report.html`` + figures (+ CSV) out.

Speed (``benchmarks/bench_report.py``: 10,000 runs, 1,000,000 samples): runs are read once, every
metric is a polars expression, the bootstrap is vectorised, and figures are drawn from configuration
aggregates (samples are read for the few timeline runs only) as SVG written directly (:mod:`.plot`):
no plotting library is imported, so a report's figures cost milliseconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from energybench.errors import UsageError
from energybench.report.analysis import Analysis, analyze, configuration_records
from energybench.report.bandwidth import measure_memory_bandwidth
from energybench.report.best import Recommendation
from energybench.report.figures import FIGURES, FigureFile, build_figures, save_figures
from energybench import storage
from energybench.report.load import ResultSet, load_result_set, unique_labels
from energybench.report.shards import merge_shards, relabel
from energybench.report.html import render_html
from energybench.report.jsonsummary import summary_dict
from energybench.report.markdown import render_markdown
from energybench.report.stats import DEFAULT_N_BOOT
from energybench.results import atomic_write_bytes, atomic_write_json

FORMATS = ("md", "html", "json")
EXPORTS = ("csv",)
FIGURE_FORMATS = ("svg", "png")
#: Written unless asked otherwise: SVG (the drawing itself; the HTML page inlines it). PNG on request,
#: rasterised from the SVG (slides, chat, tools without SVG).
DEFAULT_FIGURE_FORMATS = ("svg",)


@dataclass
class ReportSummary:
    """What ``build_report`` produced, and the summary a CI job reads."""

    out_dir: Path
    files: dict[str, Path]  # "md" | "html" | "json" -> path
    figures: list[str]
    exports: list[Path]
    summary: dict[str, Any]
    warnings: list[str]
    recommendations: list[Recommendation]
    n_runs: int
    analysis: Analysis | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "files": {k: str(v) for k, v in self.files.items()},
                "exports": [str(p) for p in self.exports], **self.summary}


# ----------------------------------------------------------------------------- the report


def _check_options(formats: Iterable[str], export: Iterable[str], figure_formats: Iterable[str],
                   window_s: float | None, n_boot: int) -> None:
    for f in formats:
        if f not in FORMATS:
            raise UsageError(f"unknown report format {f!r}", hint=f"use one of {', '.join(FORMATS)}")
    for e in export:
        if e not in EXPORTS:
            raise UsageError(f"unknown export {e!r}", hint=f"use one of {', '.join(EXPORTS)}")
    for f in figure_formats:
        if f not in FIGURE_FORMATS:
            raise UsageError(f"unknown figure format {f!r}", hint=f"use one of {', '.join(FIGURE_FORMATS)}")
    if window_s is not None and not window_s > 0:
        raise UsageError(f"--window {window_s} must be a positive number of seconds",
                         hint="omit it to use the slowest configuration's time")
    if n_boot < 100:
        raise UsageError(f"n_boot={n_boot} is too small", hint="use at least 1000 bootstrap resamples")


def load_sides(sides: Sequence[Sequence[Path | str]]) -> list[list[ResultSet]]:
    """Each side's result sets (``compare``: BASE, then NEW), read as :func:`load_sets` reads them;
    labels are distinct over every side, and shards merge within a side only."""
    found = [storage.expand(side) for side in sides]
    flat = [loc for side in found for loc in side]
    if not flat:
        raise UsageError("no results directory given", hint="energybench report DIR")
    names = iter(unique_labels(flat))
    return [merge_shards([load_result_set(loc, next(names)) for loc in side]) for side in found]


def load_sets(dirs: Sequence[Path | str], labels: Sequence[str] | None = None) -> list[ResultSet]:
    """Read every result set: directories, ``s3://`` URLs, and globs of either (expanded here, so a
    quoted glob works in any shell); the shards of one sweep become one set (:mod:`.shards`).
    ResultsError for a location that holds no results; UsageError for shards of different sweeps."""
    sets = load_sides([dirs])[0]
    return relabel(sets, labels) if labels else sets


def build_report(dirs: Sequence[Path | str], out_dir: Path | str | None = None, *, window_s: float | None = None,
                 formats: Sequence[str] = FORMATS, figures: bool = True,
                 figure_formats: Sequence[str] = DEFAULT_FIGURE_FORMATS, export: Sequence[str] = (),
                 measure_bandwidth: bool = False, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                 labels: Sequence[str] | None = None, live: dict[str, Any] | None = None) -> ReportSummary:
    """Analyse result directories and write the report.

    ``dirs``: one results directory, or several to compare side by side. ``out_dir``: default
    ``<first dir>/report``. ``window_s``: race-to-sleep window T (default: per workload, the slowest
    configuration's median time). ``formats``: any of md, html, json (summary.json). ``export``:
    ``("csv",)`` writes the original study's CSVs and our tables. ``measure_bandwidth``: measure the
    memory bandwidth now for sets whose metadata lacks it. ``live``: see ``render_html``.
    """
    formats, figure_formats, export = tuple(formats), tuple(figure_formats), tuple(export)
    _check_options(formats, export, figure_formats, window_s, n_boot)
    sources = storage.expand(dirs)
    out = Path(out_dir) if out_dir is not None else default_out_dir(dirs[0] if dirs else ".")
    sets = load_sets(sources, labels)
    out.mkdir(parents=True, exist_ok=True)
    bw = None
    if measure_bandwidth and any(rs.memory_bandwidth_gbs is None for rs in sets):
        bw = measure_memory_bandwidth()
    a = analyze(sets, window_s=window_s, n_boot=n_boot, seed=seed, measured_bandwidth_gbs=bw)
    fig_dir = out / "figures"
    fig_files = save_figures(build_figures(a), fig_dir, formats=figure_formats) if figures else []
    _remove_stale_figures(fig_dir, fig_files)
    exports: list[Path] = []
    if "csv" in export:
        from energybench.report.export import export_csv

        exports = export_csv(a, out)

    now = datetime.now(UTC)
    files: dict[str, Path] = {}
    summary = summary_dict(a, fig_files)
    summary["generated_at"] = now.isoformat()
    summary["configurations"] = configuration_records(a)
    if "md" in formats:
        files["md"] = out / "report.md"
        atomic_write_bytes(files["md"], render_markdown(a, fig_files, generated_at=now).encode("utf-8"))
    if "html" in formats:
        files["html"] = out / "report.html"
        atomic_write_bytes(files["html"], render_html(a, fig_files, generated_at=now, live=live).encode("utf-8"))
    if "json" in formats:
        files["json"] = out / "summary.json"
        atomic_write_json(files["json"], summary, indent=None)  # read by programs (CI), and large
    return ReportSummary(out_dir=out, files=files, figures=[f.name for f in fig_files], exports=exports,
                         summary=summary, warnings=list(a.warnings), recommendations=list(a.recommendations),
                         n_runs=a.runs.height, analysis=a)


def default_out_dir(first: Path | str) -> Path:
    """Where a report goes without ``-o``: ``<first set>/report``, for a glob ``<its directory>/report``
    (``study/*`` -> ``study/report``); for object storage ``report-<name>`` in the current directory
    (reports are written locally)."""
    base = storage.glob_base(first)
    if storage.is_url(base):
        return Path(f"report-{storage.name_of(base)}")
    base = Path(base)
    return (base.parent if base.is_file() else base) / "report"


def _remove_stale_figures(fig_dir: Path, written: Sequence[FigureFile]) -> None:
    """A figure (or a format of one) this build did not write must not linger from an earlier one."""
    if not fig_dir.is_dir():
        return
    keep = {p.name for f in written for p in f.paths.values()}
    for name in FIGURES:
        for fmt in FIGURE_FORMATS:
            p = fig_dir / f"{name}.{fmt}"
            if p.name not in keep and p.exists():
                p.unlink()
    if not any(fig_dir.iterdir()):
        shutil.rmtree(fig_dir, ignore_errors=True)
