"""Analysis and reports: ``energybench report``.

Public API::

    build_report(dirs, out_dir=None, *, window_s=None, formats=("md", "html", "json"), figures=True,
                 export=(), measure_bandwidth=False, ...) -> ReportSummary
    measure_memory_bandwidth(*, size_mb=256, repeats=5, n_threads=None) -> float  # GB/s
    serve_report(dirs, out_dir=None, *, port=0, ...) -> ReportServer             # live dashboard

Modules: :mod:`.load` (result sets), :mod:`.metrics` (the report's tables over runs and samples;
per-run metrics are :mod:`energybench.metrics`), :mod:`.stats` (bootstrap CIs, warnings),
:mod:`.best` (recommendations, Pareto), :mod:`.analysis` (everything a report shows),
:mod:`.figures` (drawn as SVG by :mod:`.plot`), :mod:`.study` (the original study's tables with CIs), :mod:`.sections`
and :mod:`.tables` (the words and tables both renderings share), :mod:`.markdown`, :mod:`.html`,
:mod:`.dashboard` (the page's interactive view, pick-two comparison and live progress),
:mod:`.jsonsummary`, :mod:`.export` (CSV: the study's files and ours), :mod:`.serve` (live
dashboard) with :mod:`.progress` (a sweep's progress from its directory), :mod:`.bandwidth`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from energybench.report.bandwidth import measure_memory_bandwidth

if TYPE_CHECKING:
    from energybench.report.build import ReportSummary, build_report
    from energybench.report.serve import ReportServer, serve_report

__all__ = ["ReportServer", "ReportSummary", "build_report", "measure_memory_bandwidth", "serve_report"]


def __getattr__(name: str) -> Any:  # lazy: the engine imports measure_memory_bandwidth without polars
    if name in ("build_report", "ReportSummary"):
        from energybench.report import build

        return getattr(build, name)
    if name in ("serve_report", "ReportServer"):
        from energybench.report import serve

        return getattr(serve, name)
    raise AttributeError(name)
