"""``attach --check``: read logs alone and say what they hold, with the log's own totals beside ours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from energybench.attach.formats import read_log
from energybench.attach.logs import LogData, Trace, median_period_s

#: How far our integration of a counter may drift from the log's footer before --check flags it (%).
FOOTER_TOLERANCE_PCT = 0.5


def _domain_row(log: LogData, t: Trace) -> dict[str, Any]:
    energy = t.integral_j()
    footer = log.footer_j.get(t.domain.name)
    diff = None if footer in (None, 0) or energy is None else (energy - footer) / footer * 100.0
    return {"domain": t.domain.name, "kind": t.domain.kind, "component": t.domain.component,
            "parent": t.domain.parent, "samples": t.n, "duration_s": float(t.offset_ns[-1] - t.offset_ns[0]) / 1e9,
            "period_s": median_period_s(t.offset_ns), "energy_j": energy, "footer_j": footer, "diff_pct": diff,
            "agrees": None if diff is None else abs(diff) <= FOOTER_TOLERANCE_PCT}


def check_log(log: LogData) -> dict[str, Any]:
    """One log's summary: format, start, rows, and per domain samples, duration, period, energy,
    footer total and the difference in percent."""
    start = log.anchor.isoformat(sep=" ", timespec="milliseconds")
    return {"file": str(log.path), "format": log.format, "meter": log.meter, "rows": log.n_rows,
            "start": start if log.dated else f"{log.anchor.time().isoformat(timespec='milliseconds')} (no date)",
            "footer_s": log.footer_s, "domains": [_domain_row(log, t) for t in log.traces]}


def check_logs(paths: list[str | Path], *, fmt: str = "auto", time_column: str | None = None,
               power_column: str | None = None) -> list[dict[str, Any]]:
    """:func:`check_log` of every path (the first unreadable one raises LogFormatError)."""
    return [check_log(read_log(p, fmt, time_column=time_column, power_column=power_column)) for p in paths]
