"""Generic ``time, power`` CSV logs of wall-socket meters and smart plugs.

The whole machine at the socket, power supply losses included: a domain ``wall`` of component
``system`` (:mod:`energybench.energy`: when measured it is the run's total, every other domain is
reported beside it, never added to it).

The file: a header row (lines before it, such as a device name, and ``#`` comments are skipped),
cells separated by ``,``, ``;`` or tabs (with ``;`` or tabs a decimal comma is read too). The time
column (``--time-column``, else the first named like ``timestamp``, ``datetime``, ``time``,
``date``, ``epoch`` or ``ts``, never ``elapsed``) holds ISO-8601 times (with an offset: absolute;
without: local time), or Unix epoch seconds, or epoch milliseconds (values above 1e11). The power
column (``--power-column``, else the first named like ``power`` or ``watts``, never power factor,
apparent or reactive power) holds watts, or milliwatts when its name says ``mW`` (``power_mw``,
``Power (mW)``, ``[mW]``) -- a name without a unit is read as watts, and the domain's source says
so. Cells may carry their unit (``12.5 W``).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import numpy as np

from energybench.attach.logs import LogData, LogFormatError, Trace, median_period_s, read_text
from energybench.meters.base import Domain

FORMAT = "csv"
METER = "wall-csv"
DOMAIN = "wall"

_TIME_NAME = re.compile(r"timestamp|date.?time|\btime\b|\bdate\b|epoch|^ts$|unix", re.IGNORECASE)
_POWER_NAME = re.compile(r"power|watt|^p$|^w$|^mw$", re.IGNORECASE)
_NOT_POWER = re.compile(r"factor|apparent|reactive|\bva\b|\bvar\b|limit", re.IGNORECASE)
_MILLI = re.compile(r"mw\b|milli", re.IGNORECASE)
_UNIT_SUFFIX = re.compile(r"\s*(mW|W)\s*$")
#: Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
EPOCH_MS_ABOVE = 1e11


def _split(line: str, delim: str) -> list[str]:
    return [c.strip() for c in next(csv.reader([line], delimiter=delim), [])]


def _pick(names: list[str], given: str | None, pattern: re.Pattern[str], exclude: re.Pattern[str],
          what: str, path: Path, line: int) -> int:
    if given is not None:
        if given not in names:
            raise LogFormatError(path, line, f"no column {given!r} (columns: {', '.join(names)})")
        return names.index(given)
    for i, n in enumerate(names):
        if pattern.search(n) and not exclude.search(n):
            return i
    raise LogFormatError(path, line, f"no {what} column among {', '.join(names)}",
                         hint=f"name it with --{what}-column")


def _header(path: Path, lines: list[str], time_col: str | None,
            power_col: str | None) -> tuple[int, str, list[str], int, int]:
    """(header index, delimiter, names, time column, power column): the first row, split by tab,
    ``;`` or ``,`` (the first that splits it), that names both columns."""
    first: LogFormatError | None = None
    for i, line in enumerate(lines[:20]):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        delim = next((d for d in ("\t", ";", ",") if d in line), ",")
        names = _split(line, delim)
        try:
            t = _pick(names, time_col, _TIME_NAME, re.compile("elapsed|duration", re.I), "time", path, i + 1)
            p = _pick(names, power_col, _POWER_NAME, _NOT_POWER, "power", path, i + 1)
            return i, delim, names, t, p
        except LogFormatError as exc:
            first = first or exc
    raise first or LogFormatError(path, None, "empty file")


def _number(text: str, delim: str) -> float:
    t = _UNIT_SUFFIX.sub("", text.strip())
    return float(t.replace(",", ".") if delim != "," else t)


def _times(path: Path, cells: list[tuple[int, str]]) -> tuple[dt.datetime, np.ndarray]:
    """(anchor, offsets in ns) from epoch numbers or ISO-8601 texts (one kind per file)."""
    try:
        raw = np.array([float(c) for _, c in cells])
    except ValueError:
        raw = None
    if raw is not None:
        scale = 1e6 if raw[0] > EPOCH_MS_ABOVE else 1e9  # ns per unit: ms or s
        anchor = dt.datetime.fromtimestamp(raw[0] * scale / 1e9, tz=dt.UTC)
        return anchor, np.round((raw - raw[0]) * scale).astype(np.int64)
    stamps = []
    for line, c in cells:
        try:
            stamps.append(dt.datetime.fromisoformat(c.replace("/", "-")))
        except ValueError:
            raise LogFormatError(path, line, f"time {c!r} is neither ISO-8601 nor epoch seconds/ms") from None
        if (stamps[-1].tzinfo is None) != (stamps[0].tzinfo is None):
            raise LogFormatError(path, line, "times with and without a UTC offset are mixed")
    anchor = stamps[0]
    return anchor, np.array([(s - anchor) // dt.timedelta(microseconds=1) * 1000 for s in stamps], dtype=np.int64)


def _rows(path: Path, lines: list[str], head: int, delim: str, t: int, p: int, n: int) -> tuple[list, np.ndarray]:
    times, power = [], []
    for i in range(head + 1, len(lines)):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            continue
        cells = _split(lines[i], delim)
        if len(cells) < n:
            raise LogFormatError(path, i + 1, f"truncated row: {len(cells)} of {n} fields",
                                 hint="the recorder stopped mid-line: delete that line")
        try:
            power.append(_number(cells[p], delim))
        except ValueError:
            raise LogFormatError(path, i + 1, f"power {cells[p]!r} is not a number") from None
        times.append((i + 1, cells[t]))
    if len(times) < 2:
        raise LogFormatError(path, None, f"{len(times)} data row(s): a wall log needs at least two")
    return times, np.asarray(power)


def read_wall_csv(path: str | Path, *, time_column: str | None = None, power_column: str | None = None) -> LogData:
    """Parse a wall-meter CSV into the ``wall`` (system) power domain."""
    path = Path(path)
    lines = read_text(path).splitlines()
    head, delim, names, t, p = _header(path, lines, time_column, power_column)
    cells, watts = _rows(path, lines, head, delim, t, p, len(names))
    anchor, off = _times(path, cells)
    back = np.flatnonzero(np.diff(off) <= 0)
    if back.size:
        raise LogFormatError(path, cells[int(back[0]) + 1][0], "time does not increase from the previous row")
    milli = bool(_MILLI.search(names[p]))
    unit_said = milli or re.search(r"\bw\b|watt|\(w\)|\[w\]|_w\b", names[p], re.IGNORECASE)
    scale = 1e-3 if milli else 1.0
    note = "" if unit_said else "; the column name gives no unit: read as W"
    ok = np.isfinite(watts)
    domain = Domain(name=DOMAIN, kind="power", meter=METER, component="system",
                    update_period_s=median_period_s(off[ok]),
                    source=(f"wall meter CSV, column {names[p]!r} ({'mW' if milli else 'W'}{note}): the whole "
                            "machine at the socket, power supply included; the run total when present"))
    return LogData(path=path, format=FORMAT, meter=METER, anchor=anchor, dated=True,
                   traces=[Trace(domain, off[ok], watts[ok] * scale)], n_rows=len(cells))
