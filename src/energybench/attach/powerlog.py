"""Intel Power Gadget 3.x ``PowerLog`` CSV logs (Windows and Intel macOS).

``PowerLog3.0 [-resolution ms] -duration s -file f`` (or ``-cmd ...``) writes a header row, one row
per sample, then a blank line and a summary footer (Intel Power Gadget documentation, "PowerLog").
Columns include ``System Time`` (local time of day, ``HH:MM:SS:mmm``, no date), ``RDTSC``,
``Elapsed Time (sec)`` (since logging started), ``CPU Utilization(%)``, and per package ``_N``:
``Processor Power_N(Watt)``, ``Cumulative Processor Energy_N(Joules)``, ``... (mWh)``, the same for
``IA``, ``GT`` and ``DRAM`` where the CPU has them, ``Package Power Limit_N(Watt)``.

Two layouts exist. Windows: unquoted cells padded with spaces, a header with a leading space in
`` CPU Utilization(%)``, CRLF line ends, a footer of blank-line-separated blocks such as
``Cumulative Processor Energy_0 (Joules) = 145.768494``. macOS: every cell double-quoted with the
padding inside the quotes, LF line ends but footer blank lines ending in CRLF, and a footer that
says ``Package`` where the header says ``Processor``. Both are read line by line (``splitlines``
takes any line end), each line as CSV, every cell stripped.

Each ``Cumulative X Energy_N(Joules)`` column becomes a counter domain named as the live Power
Gadget meter names it (``cpu-package-N``, ``cpu-core-N`` ...). Elapsed time and cumulative energy
both count from the moment logging started, one interval before the first row: that origin (0 s,
0 J) is kept as the counter's first sample, so the log's energy is its last row's, as in the
footer. Each ``X Power_N(Watt)`` column (PowerLog's average over the interval that ends at its row)
becomes a power domain ``<counter>-power`` placed at each interval's midpoint, a cross-check whose
parent is the counter, never added to totals.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
from pathlib import Path

import numpy as np

from energybench.attach.logs import UNDATED, LogData, LogFormatError, Trace, median_period_s, read_text, to_float
from energybench.meters.base import Domain
from energybench.meters.powergadget import _domain_for

FORMAT = "powerlog"
METER = "powerlog"

_ENERGY_COL = re.compile(r"^Cumulative (.+?) Energy_(\d+)\s*\(Joules\)$")
_POWER_COL = re.compile(r"^(.+?) Power_(\d+)\s*\(Watt\)$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})(?:[:.](\d{1,3}))?$")
_FOOTER = re.compile(r"^(.+?)\s*(?:=|:)\s*([-+0-9.eE]+)\s*$")
ELAPSED = "Elapsed Time (sec)"


def looks_like(text: str) -> bool:
    """True when ``text`` (a file's start) has PowerLog's header."""
    return any(_cells(line)[:1] == ["System Time"] for line in text.splitlines()[:20])


def _cells(line: str) -> list[str]:
    return [c.strip() for c in next(csv.reader([line]), [])]


def _time_of_day(text: str) -> dt.time | None:
    m = _TIME.match(text)
    if not m:
        return None
    h, mi, s, ms = m.groups()
    if int(h) > 23 or int(mi) > 59 or int(s) > 59:
        return None
    return dt.time(int(h), int(mi), int(s), int((ms or "0").ljust(3, "0")) * 1000)


def _split(path: Path, lines: list[str]) -> tuple[int, list[str], list[tuple[int, list[str]]], list[str]]:
    """(header line number, header, [(line number, cells)] of sample rows, footer lines)."""
    head = next((i for i, line in enumerate(lines) if _cells(line)[:1] == ["System Time"]), None)
    if head is None:
        raise LogFormatError(path, None, "not a PowerLog CSV: no 'System Time' header row",
                             hint="pass the CSV that PowerLog3.0 -file wrote, or choose --format")
    header = _cells(lines[head])
    rows: list[tuple[int, list[str]]] = []
    for i in range(head + 1, len(lines)):
        if not lines[i].strip():
            if rows:
                return head + 1, header, rows, lines[i + 1:]
            continue
        cells = _cells(lines[i])
        if len(cells) == len(header) + 1 and not cells[-1]:
            cells = cells[:-1]  # a trailing comma
        if len(cells) < len(header):
            raise LogFormatError(path, i + 1, f"truncated row: {len(cells)} of {len(header)} fields",
                                 hint="the recorder stopped mid-line: delete that line")
        if len(cells) > len(header) or _time_of_day(cells[0]) is None:
            raise LogFormatError(path, i + 1, f"not a PowerLog sample row (System Time {cells[0]!r}, "
                                 f"{len(cells)} fields for {len(header)} columns)")
        rows.append((i + 1, cells))
    if not rows:
        raise LogFormatError(path, head + 1, "a PowerLog header but no sample rows")
    return head + 1, header, rows, []


def _column(path: Path, header: list[str], rows: list[tuple[int, list[str]]], name: str) -> np.ndarray:
    k = header.index(name)
    out = np.empty(len(rows))
    for j, (line, cells) in enumerate(rows):
        try:
            out[j] = to_float(cells[k])
        except ValueError:
            raise LogFormatError(path, line, f"{name!r} is {cells[k]!r}, not a number") from None
    return out


def _offsets_ns(path: Path, header: list[str], rows: list[tuple[int, list[str]]]) -> np.ndarray:
    """Seconds since the first row as int64 ns: from Elapsed Time, else System Time across midnight."""
    if ELAPSED in header:
        el = _column(path, header, rows, ELAPSED)
        off = np.round((el - el[0]) * 1e9).astype(np.int64)
    else:
        sod = np.array([(t.hour * 3600 + t.minute * 60 + t.second) * 1e9 + t.microsecond * 1e3
                        for t in (_time_of_day(c[0]) for _, c in rows)])
        d = np.diff(sod)
        d = np.where(d < -43200e9, d + 86400e9, d)  # the clock went past midnight
        off = np.concatenate([[0], np.cumsum(d)]).astype(np.int64)
    bad = np.flatnonzero(np.diff(off) <= 0)
    if bad.size:
        raise LogFormatError(path, rows[int(bad[0]) + 1][0], "time does not increase from the previous row")
    return off


def _domain(label: str, node: int, kind: str, column: str, period_s: float) -> Domain:
    base = _domain_for(label, node, "")
    what = "cumulative joules since logging started" if kind == "energy" else (
        "average W over the interval ending at its row (cross-check; never added)")
    src = f"Intel Power Gadget PowerLog, column {column!r}: {what}"
    if kind == "energy":
        return dataclasses.replace(base, meter=METER, source=src, update_period_s=period_s)
    return dataclasses.replace(base, name=f"{base.name}-power", kind="power", meter=METER, source=src,
                               update_period_s=period_s, parent=base.name)


def _traces(path: Path, header: list[str], rows: list[tuple[int, list[str]]], off: np.ndarray,
            origin_ns: int) -> list[Trace]:
    """Counters from the origin (0 J, when the first row comes after it), power at interval midpoints."""
    period = median_period_s(off)
    edges = np.concatenate([[-origin_ns], off]) if origin_ns > 0 else off
    mids = (edges[:-1] + edges[1:]) // 2  # the interval that ends at each row (the first row's: none
    traces = []                            # without an origin)
    for pattern, kind in ((_ENERGY_COL, "energy"), (_POWER_COL, "power")):
        for name in header:
            m = pattern.match(name)
            if not m or "limit" in m.group(1).lower():
                continue
            v = _column(path, header, rows, name)
            if kind == "energy":
                t, v = edges, (np.concatenate([[0.0], v]) if origin_ns > 0 else v)
            else:
                t, v = mids, v[v.size - mids.size:]
            ok = np.isfinite(v)
            if ok.sum() >= 2:
                traces.append(Trace(_domain(m.group(1), int(m.group(2)), kind, name, period), t[ok], v[ok]))
    return traces


def _footer(lines: list[str]) -> tuple[dict[str, float], float | None]:
    """The summary's energies per domain (J) and its total elapsed time (s)."""
    energy: dict[str, float] = {}
    elapsed = None
    for line in lines:
        m = _FOOTER.match(",".join(_cells(line)).strip())
        if not m:
            continue
        key, value = m.group(1).strip(), float(m.group(2))
        e = _ENERGY_COL.match(key)
        if e:
            energy[_domain_for(e.group(1), int(e.group(2)), "").name] = value
        elif key == "Total Elapsed Time (sec)":
            elapsed = value
    return energy, elapsed


def read_powerlog(path: str | Path) -> LogData:
    """Parse a PowerLog CSV (either layout). The anchor is the first row's time of day, undated."""
    path = Path(path)
    lines = read_text(path).splitlines()
    head_line, header, rows, footer = _split(path, lines)
    if not any(_ENERGY_COL.match(h) for h in header):
        raise LogFormatError(path, head_line, "no 'Cumulative ... Energy_N(Joules)' column")
    off = _offsets_ns(path, header, rows)
    origin_ns = 0
    if ELAPSED in header:
        origin_ns = int(round(_column(path, header, rows[:1], ELAPSED)[0] * 1e9))
    traces = _traces(path, header, rows, off, max(origin_ns, 0))
    if not any(t.domain.kind == "energy" for t in traces):
        raise LogFormatError(path, head_line, "no energy column has two readings")
    energy, elapsed = _footer(footer)
    anchor = dt.datetime.combine(UNDATED, _time_of_day(rows[0][1][0]))
    return LogData(path=path, format=FORMAT, meter=METER, anchor=anchor, dated=False, traces=traces,
                   footer_j=energy, footer_s=elapsed, n_rows=len(rows))
