"""What every log reader returns: a parsed log, its traces (one per domain) and its clock.

A log is read on its own clock: ``offset_ns`` of each sample counts from the log's *anchor*, the
wall-clock time of its first row. A tool that writes full dates (nvidia-smi, most wall meters)
gives a dated anchor; PowerLog writes only the time of day, so its anchor's date is supplied
later (``--date`` or inferred from the runs, :mod:`energybench.attach.align`). Naive anchors are
local time of the machine that recorded the log (the tools write local time); aware ones are
absolute.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from energybench.errors import UsageError
from energybench.meters.base import Domain

#: The anchor date of a log that carries only the time of day, until its real date is known.
UNDATED = dt.date(2000, 1, 1)


class LogFormatError(UsageError):
    """A log that cannot be read: names the file, the line (1-based) and the problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str, *, hint: str | None = None) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path, self.line, self.problem = str(path), line, problem


@dataclass(frozen=True)
class Trace:
    """One domain of a log: ``offset_ns`` since the anchor (int64, increasing) and values (J or W)."""

    domain: Domain
    offset_ns: np.ndarray
    value: np.ndarray

    @property
    def n(self) -> int:
        return int(self.offset_ns.size)

    def integral_j(self) -> float | None:
        """Energy over the whole trace: counter difference, or the trapezoid rule over power."""
        if self.n < 2:
            return None
        if self.domain.kind == "energy":
            return float(self.value[-1] - self.value[0])
        dt_s = np.diff(self.offset_ns).astype(np.float64) / 1e9
        return float(np.sum(0.5 * (self.value[1:] + self.value[:-1]) * dt_s))


@dataclass
class LogData:
    """A parsed log: where it came from, its anchor on the wall clock, its traces, its own totals."""

    path: Path
    format: str  # powerlog | nvidia-smi | csv
    meter: str  # the meter name its samples and domains carry
    anchor: dt.datetime  # wall time of offset 0 (naive: local time)
    dated: bool  # False: the anchor's date is not in the log (PowerLog)
    traces: list[Trace]
    footer_j: dict[str, float] = field(default_factory=dict)  # domain -> the log's own total (J)
    footer_s: float | None = None  # the log's own duration (s), when it states one
    n_rows: int = 0

    def with_date(self, day: dt.date) -> LogData:
        """This log with its anchor moved to ``day`` (same time of day)."""
        return dataclasses.replace(self, anchor=dt.datetime.combine(day, self.anchor.timetz()), dated=True)

    @property
    def span_ns(self) -> tuple[int, int]:
        """(first, last) offset over every trace."""
        return (min(int(t.offset_ns[0]) for t in self.traces), max(int(t.offset_ns[-1]) for t in self.traces))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_text(path: Path) -> str:
    """A log's text (UTF-8, a BOM dropped); unreadable files are a usage error naming them."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise LogFormatError(path, None, f"cannot read it ({exc.strerror or exc})") from exc


def to_float(text: str) -> float:
    """A numeric cell; NaN for empty and for the tools' not-available markers (``[N/A]``,
    ``[Not Supported]``, ``N/A``). Anything else that is not a number raises ValueError."""
    t = text.strip().strip('"').strip()
    if not t or (t.startswith("[") and t.endswith("]")) or t.upper() in ("N/A", "NA", "NAN"):
        return float("nan")
    return float(t)


def median_period_s(offset_ns: np.ndarray) -> float:
    """The median interval between samples (s); 1 s for a single sample."""
    return float(np.median(np.diff(offset_ns))) / 1e9 if offset_ns.size > 1 else 1.0
