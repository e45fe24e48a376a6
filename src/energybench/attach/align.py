"""Logs onto the runs' clock: wall time -> monotonic ns, PowerLog's missing date, overlaps.

A results directory records ``clock_offset_ns = time.time_ns() - time.monotonic_ns()`` when the
measurement started (``metadata.json``): ``t_ns = wall_ns - clock_offset_ns`` puts a wall-clock
sample on the clock of every run's ``t_start_ns``/``t_end_ns``. Naive log times are local time of
this machine's time zone (``TZ`` selects another).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from energybench.attach.logs import LogData
from energybench.errors import UsageError
from energybench.meters.base import Domain

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_ns(when: dt.datetime) -> int:
    """Unix time in ns of a datetime (naive = local time)."""
    aware = when if when.tzinfo is not None else when.astimezone()
    return (aware - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def wall_text(wall_ns: int) -> str:
    """Local time, to the millisecond, with its UTC offset."""
    t = dt.datetime.fromtimestamp(wall_ns / 1e9, tz=dt.UTC).astimezone()
    return t.isoformat(sep=" ", timespec="milliseconds")


@dataclass(frozen=True)
class Placed:
    """One trace of a log on the runs' monotonic clock."""

    domain: Domain
    t_ns: np.ndarray
    value: np.ndarray
    log: LogData

    @property
    def key(self) -> tuple[str, str]:
        return self.domain.meter, self.domain.name

    @property
    def period_ns(self) -> int:
        return int(np.median(np.diff(self.t_ns))) if self.t_ns.size > 1 else 0

    def overlap_ns(self, t0: int, t1: int) -> int:
        """How much of ``[t0, t1]`` the trace spans (widened by one sample period: a window between
        two samples is covered)."""
        p = self.period_ns
        return max(0, min(t1, int(self.t_ns[-1]) + p) - max(t0, int(self.t_ns[0]) - p))

    def touches(self, t0: int, t1: int) -> bool:
        p = self.period_ns
        return int(self.t_ns[0]) - p <= t1 and int(self.t_ns[-1]) + p >= t0

    def window(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples in ``[t0, t1]`` plus the nearest one on each side."""
        i = max(int(np.searchsorted(self.t_ns, t0, side="left")) - 1, 0)
        j = min(int(np.searchsorted(self.t_ns, t1, side="right")) + 1, self.t_ns.size)
        return self.t_ns[i:j], self.value[i:j]


def place(log: LogData, clock_offset_ns: int) -> list[Placed]:
    """Every trace of a dated log on the monotonic clock."""
    base = epoch_ns(log.anchor) - int(clock_offset_ns)
    return [Placed(t.domain, base + t.offset_ns, t.value, log) for t in log.traces]


def log_span(log: LogData, clock_offset_ns: int) -> tuple[int, int]:
    first, last = log.span_ns
    base = epoch_ns(log.anchor) - int(clock_offset_ns)
    return base + first, base + last


def _score(span: tuple[int, int], windows: np.ndarray) -> tuple[int, int]:
    """(runs the span touches, ns of run time inside it)."""
    a, b = span
    inside = np.clip(np.minimum(windows[:, 1], b) - np.maximum(windows[:, 0], a), 0, None)
    return int(np.count_nonzero((windows[:, 0] <= b) & (windows[:, 1] >= a))), int(inside.sum())


def candidate_dates(windows: np.ndarray, clock_offset_ns: int) -> list[dt.date]:
    """Local dates from the day before the first run to the day after the last one."""
    first = dt.datetime.fromtimestamp((int(windows[:, 0].min()) + clock_offset_ns) / 1e9).date()
    last = dt.datetime.fromtimestamp((int(windows[:, 1].max()) + clock_offset_ns) / 1e9).date()
    n = (last - first).days + 3
    return [first + dt.timedelta(days=k - 1) for k in range(n)]


def date_log(log: LogData, windows: np.ndarray, clock_offset_ns: int, day: dt.date | None) -> tuple[LogData, str]:
    """An undated log with its date: ``day`` when given, else the candidate date whose placement
    touches the most runs (then covers the most run time). Returns (dated log, "given"|"inferred")."""
    if log.dated:
        return log, "in the log"
    if day is not None:
        return log.with_date(day), "given"
    dates = candidate_dates(windows, clock_offset_ns)
    scored = [(_score(log_span(log.with_date(d), clock_offset_ns), windows), d) for d in dates]
    best = max(scored, key=lambda s: s[0])  # the earliest date among equals
    if best[0][0] == 0:
        raise no_overlap(log, windows, clock_offset_ns, tried=dates)
    return log.with_date(best[1]), "inferred"


def check_overlap(log: LogData, windows: np.ndarray, clock_offset_ns: int, how: str = "in the log") -> None:
    """A clear error when a (dated) log touches no run (``how``: where its date came from)."""
    if _score(log_span(log, clock_offset_ns), windows)[0] == 0:
        err = no_overlap(log, windows, clock_offset_ns)
        if how == "given":
            err.hint = "--date is the local date of the log's first row; leave it out to infer it from the runs"
        raise err


def no_overlap(log: LogData, windows: np.ndarray, clock_offset_ns: int,
               tried: list[dt.date] | None = None) -> UsageError:
    """The one-line error of a log that touches no run, naming both time ranges."""
    off = clock_offset_ns
    runs = f"{wall_text(int(windows[:, 0].min()) + off)} .. {wall_text(int(windows[:, 1].max()) + off)}"
    if tried:
        first, last = (log.anchor + dt.timedelta(microseconds=x // 1000) for x in log.span_ns)
        span = (f"{first.time().isoformat(timespec='milliseconds')} .. {last.time().isoformat(timespec='milliseconds')}"
                f" local time on any day from {tried[0]} to {tried[-1]}")
        hint = "pass --date YYYY-MM-DD (the log's first day), or check the file"
    else:
        a, b = log_span(log, off)
        span = f"{wall_text(a + off)} .. {wall_text(b + off)}"
        hint = ("check the file and the recording machine's clock and time zone (times without a UTC offset are "
                "local time: set TZ)")
    return UsageError(f"{log.path.name} overlaps no run: the log covers {span}, the runs {runs}", hint=hint)


def traces_of(placed: list[Placed]) -> dict[tuple[str, str], list[Placed]]:
    """Placed traces by (meter, domain); two logs covering the same time for one domain are refused."""
    out: dict[tuple[str, str], list[Placed]] = {}
    for p in placed:
        for q in out.get(p.key, []):
            if p.t_ns[0] < q.t_ns[-1] and q.t_ns[0] < p.t_ns[-1]:
                raise UsageError(f"{p.log.path.name} and {q.log.path.name} both give {p.domain.meter} "
                                 f"{p.domain.name} for the same time", hint="attach one of them")
        out.setdefault(p.key, []).append(p)
    return out


def best_for(traces: list[Placed], t0: int, t1: int) -> Placed | None:
    """The trace (of one domain, from several logs) that spans most of ``[t0, t1]``; None if none touches it."""
    touching = [p for p in traces if p.touches(t0, t1)]
    return max(touching, key=lambda p: p.overlap_ns(t0, t1)) if touching else None


__all__ = ["Placed", "best_for", "check_overlap", "date_log", "epoch_ns", "log_span", "place",
           "traces_of", "wall_text"]
