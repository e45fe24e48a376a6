"""``build_report``: result directories in, ``report.md`` + ``report.html`` + figures (+ CSV) out.

Speed (``benchmarks/bench_report.py``: 10,000 runs, 1,000,000 samples): runs are read once, every
metric is a polars expression, the bootstrap is vectorised, figures are drawn from configuration
aggregates (samples are read for the few timeline runs only), and figures render in worker
processes that import plotnine while the main process reads and analyses the data.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from energybench.errors import UsageError
from energybench.report import figcache
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
FIGURE_FORMATS = ("png", "svg")
#: Written unless asked otherwise: PNG (the report pages embed it); SVG on request (vector, for papers:
#: it costs each figure a second rendering).
DEFAULT_FIGURE_FORMATS = ("png",)


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


# ----------------------------------------------------------------------------- figure workers


def _worker_init() -> None:
    """Pay the plotting libraries' imports while the parent reads and analyses the data (a warm-up
    drawing here would compete with the parent for the CPUs: on two CPUs it cost 9 % of the report)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot  # noqa: F401
    import pandas  # noqa: F401
    import plotnine  # noqa: F401


def _figure_task(a: Analysis, name: str, out_dir: Path, formats: tuple[str, ...]) -> FigureFile | None:
    plots = build_figures(a, [name])
    files = save_figures(plots, out_dir, formats=formats)
    return files[0] if files else None


def _slim(a: Analysis) -> Analysis:
    """The analysis without what figures never read (keeps pickling to workers cheap)."""
    keep = {(s, r) for s, r, _ in a.timeline_runs}
    runs = a.runs.filter(pl.col("set").is_in([s for s, _ in keep]) & pl.col("run_id").is_in([r for _, r in keep])) \
        if keep else a.runs.head(0)
    runs = runs.drop(["token_t_ns", "domains", "stderr_tail"], strict=False)
    sets = [dataclasses.replace(rs, runs=rs.runs.head(0), shards=[dataclasses.replace(s, runs=s.runs.head(0))
                                                                 for s in rs.shards]) for rs in a.sets]
    return dataclasses.replace(a, runs=runs, sets=sets, domains=a.domains.head(0), provenance=a.provenance.head(0))


#: Figures in the order workers take them: the slowest first, so two workers finish together.
_FIGURE_ORDER = ("power_timeline", "batch", "offload", "thread_scaling", "pareto", "race_to_sleep", "edp_heatmap")


class FigurePool:
    """Worker processes for figures, started early so plotnine imports overlap the analysis."""

    def __init__(self, jobs: int) -> None:
        import multiprocessing

        self.jobs = jobs
        self.pool: Any = None
        try:
            self.pool = multiprocessing.get_context("spawn").Pool(processes=jobs, initializer=_worker_init)
        except (OSError, ValueError, RuntimeError):  # no processes here: draw in-process
            self.pool = None

    def render(self, a: Analysis, out_dir: Path, formats: tuple[str, ...]) -> list[FigureFile]:
        if self.pool is None:
            return save_figures(build_figures(a), out_dir, formats=formats)
        slim = _slim(a)
        order = [n for n in _FIGURE_ORDER if n in FIGURES] + [n for n in FIGURES if n not in _FIGURE_ORDER]
        pending = {name: self.pool.apply_async(_figure_task, (slim, name, out_dir, formats)) for name in order}
        done = {name: res.get() for name, res in pending.items()}
        return [done[name] for name in FIGURES if done.get(name) is not None]

    def close(self) -> None:
        """Stop the workers now: their results are in, a graceful exit would only cost time."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


def default_figure_jobs() -> int:
    """Worker processes for figures: 2 where two CPUs exist, else 0 (draw in-process)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return 2 if n >= 2 else 0


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
                 labels: Sequence[str] | None = None, figure_jobs: int | None = None,
                 live: dict[str, Any] | None = None) -> ReportSummary:
    """Analyse result directories and write the report.

    ``dirs``: one results directory, or several to compare side by side. ``out_dir``: default
    ``<first dir>/report``. ``window_s``: race-to-sleep window T (default: per workload, the slowest
    configuration's median time). ``formats``: any of md, html, json (summary.json). ``export``:
    ``("csv",)`` writes the original study's CSVs and our tables. ``measure_bandwidth``: measure the
    memory bandwidth now for sets whose metadata lacks it. ``figure_jobs``: worker processes for
    figures (None: 2 where two CPUs exist; 0: draw in this process). ``live``: see ``render_html``.
    """
    formats, figure_formats, export = tuple(formats), tuple(figure_formats), tuple(export)
    _check_options(formats, export, figure_formats, window_s, n_boot)
    sources = storage.expand(dirs)
    out = Path(out_dir) if out_dir is not None else default_out_dir(dirs[0] if dirs else ".")
    fig_dir = out / "figures"
    key = figcache.inputs_key(sources, {"window_s": window_s, "n_boot": n_boot, "seed": seed, "labels": labels,
                                     "formats": figure_formats, "bandwidth": measure_bandwidth})
    fig_files = figcache.cached(fig_dir, key) if figures else []
    jobs = default_figure_jobs() if figure_jobs is None else max(0, int(figure_jobs))
    pool = FigurePool(jobs) if fig_files is None and jobs >= 1 else None
    try:
        sets = load_sets(sources, labels)
        out.mkdir(parents=True, exist_ok=True)
        bw = None
        if measure_bandwidth and any(rs.memory_bandwidth_gbs is None for rs in sets):
            bw = measure_memory_bandwidth()
        a = analyze(sets, window_s=window_s, n_boot=n_boot, seed=seed, measured_bandwidth_gbs=bw)
        if fig_files is None:
            fig_files = (pool.render(a, fig_dir, figure_formats) if pool is not None
                         else save_figures(build_figures(a), fig_dir, formats=figure_formats))
            figcache.remember(fig_dir, key, fig_files)
        _remove_stale_figures(fig_dir, fig_files)
        exports: list[Path] = []
        if "csv" in export:
            from energybench.report.export import export_csv

            exports = export_csv(a, out)
    finally:
        if pool is not None:
            pool.close()

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
        atomic_write_json(files["json"], summary)
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
