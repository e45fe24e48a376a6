"""The machine-readable summary of an :class:`~energybench.report.analysis.Analysis`
(``summary.json``, ``report --format json``); Markdown and HTML are :mod:`.markdown` and :mod:`.html`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from energybench import __version__
from energybench.report.analysis import Analysis
from energybench.report.best import OBJECTIVES
from energybench.report.figures import FigureFile
from energybench.report.stats import SET_WIDE_CODES, render_warnings
from energybench.report.tables import pareto_rows, set_counts

__all__ = ["SET_WIDE_WARNINGS", "summary_dict"]

#: Warning codes that hold for a whole set (listed once in ``warnings``, counted per configuration).
SET_WIDE_WARNINGS = tuple(f"{c}:" for c in SET_WIDE_CODES)


def _warning_counts(a: Analysis) -> dict[str, int]:
    if a.cfg.height == 0:
        return {}
    codes = a.cfg.select(pl.col("warnings").explode().str.split(":").list.first().alias("c"))["c"].drop_nulls()
    return dict(sorted(codes.value_counts().iter_rows()))


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, recursively (strict JSON for CI tools)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def summary_dict(a: Analysis, figures: Sequence[FigureFile]) -> dict[str, Any]:
    """The machine-readable summary (``--format json``): sets, best configurations, warnings."""
    return _json_safe({
        "energybench_version": __version__,
        "sets": set_counts(a),
        "workloads": a.workloads,
        "varied": a.varied,
        "objectives": {k: v[1] for k, v in OBJECTIVES.items()},
        "recommendations": [r.to_dict() for r in a.recommendations],
        "pareto": [
            {"set": r["set"], "workload": r["workload"], "point_id": r["point_id"],
             "config": {k: r[k] for k in a.varied}, "e2e_s": r["e2e_s"], "j_per_output_token": r["j_per_output_token"]}
            for r in pareto_rows(a).iter_rows(named=True)
        ],
        "domains": a.domains.to_dicts(),  # per (set, configuration, domain): medians, whole run and per phase
        "race_window_s": a.windows,
        "window_source": a.window_source,
        "memory_bandwidth_gbs": {k: v[0] for k, v in a.bandwidth.items()},
        "warnings": a.warnings,
        "config_warning_counts": _warning_counts(a),
        "config_warnings": [
            {"set": r["set"], "workload": r["workload"], "point_id": r["point_id"],
             "config": {k: r[k] for k in a.varied}, "warnings": render_warnings(r["warnings"] or [])}
            for r in a.cfg.iter_rows(named=True)
            if any(not w.startswith(SET_WIDE_WARNINGS) for w in (r["warnings"] or []))
        ],
        "figures": [f.name for f in figures],
        "study": study_dict(a),
        "machines": a.machines.to_dict() if a.machines is not None else None,  # energybench.crossmachine
    })


def study_dict(a: Analysis) -> dict[str, Any]:
    """The original study's tables (:mod:`.study`): per suite x backend, CPU vs GPU, EDP ranking;
    values are means with ``_lo``/``_hi`` 95 % bootstrap CIs (latency in seconds)."""
    from energybench.report.study import headline_dicts

    st = a.study
    if st is None:
        return {}
    return {"suite_backend": st.summary.to_dicts(), "cpu_vs_gpu": headline_dicts(st.headlines),
            "edp_ranking": st.ranking.to_dicts()}
