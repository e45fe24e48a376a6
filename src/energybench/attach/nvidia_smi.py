"""``nvidia-smi --query-gpu=... --format=csv -lms N`` logs.

``nvidia-smi --query-gpu=timestamp,index,power.draw,power.draw.instant --format=csv -lms 100 -f
gpu.csv`` writes a header naming each field with its unit (``timestamp, index, power.draw [W],
power.draw.instant [W]``), then per sampling tick one row per GPU: ``2025/06/09 23:14:25.005, 0,
30.32 W, 31.10 W`` (nvidia-smi(1), ``--query-gpu``, ``--format=csv``, ``-lms``; ``nvidia-smi
--help-query-gpu``). Cells a card cannot give read ``[N/A]`` or ``[Not Supported]``;
``--format=csv,nounits`` drops the units from the cells, not from the header. The timestamp is
local time. Columns may come in any order; a file may hold several blocks, each with its header
(one recording per GPU appended to one file).

Per GPU (the ``index`` column, else ``pci.bus_id`` or ``uuid`` in order of appearance, else one
GPU, ``gpu-0``): the best power field is the domain ``gpu-N`` -- ``power.draw.instant`` (the
instantaneous reading), else ``power.draw``, else ``power.draw.average``; ``power.draw`` is, on
Ampere (except GA100) and newer, the 1 s average that NVML's ``nvmlDeviceGetPowerUsage`` returns
(NVML API Reference). The other fields become ``gpu-N-draw`` / ``gpu-N-average`` /
``gpu-N-instant`` under ``gpu-N`` (reported, never added). Update periods follow the live
``nvml`` meter's.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from energybench.attach.logs import LogData, LogFormatError, Trace, read_text, to_float
from energybench.meters.base import Domain
from energybench.meters.nvml import AVERAGE_UPDATE_PERIOD_S, INSTANT_UPDATE_PERIOD_S

FORMAT = "nvidia-smi"
METER = "nvidia-smi"

#: Power fields, best first, with the domain suffix of a secondary one and its update period.
POWER_FIELDS = {"power.draw.instant": ("instant", INSTANT_UPDATE_PERIOD_S),
                "power.draw": ("draw", AVERAGE_UPDATE_PERIOD_S),
                "power.draw.average": ("average", AVERAGE_UPDATE_PERIOD_S)}
_KEYS = ("index", "pci.bus_id", "uuid")
_STAMP_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S")
_SCALE = {"W": 1.0, "mW": 1e-3}


def looks_like(text: str) -> bool:
    """True when ``text`` (a file's start) has an nvidia-smi CSV header."""
    for line in text.splitlines()[:5]:
        names = [_field(c)[0] for c in _cells(line)]
        if "timestamp" in names and any(n in POWER_FIELDS for n in names):
            return True
    return False


def _cells(line: str) -> list[str]:
    return [c.strip() for c in next(csv.reader([line], skipinitialspace=True), [])]


def _field(cell: str) -> tuple[str, str | None]:
    """``power.draw [W]`` -> (``power.draw``, ``W``)."""
    name, _, unit = cell.partition("[")
    return name.strip(), (unit.rstrip("]").strip() or None) if unit else None


def _stamp(text: str) -> dt.datetime | None:
    for fmt in _STAMP_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


@dataclass
class _Gpu:
    label: str
    name: str | None = None
    lines: list[int] = field(default_factory=list)
    stamps: list[dt.datetime] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)


def _rows(path: Path, lines: list[str]) -> Iterator[tuple[int, dict[str, tuple[str, str | None]]]]:
    """(line number, {field: (cell, unit)}) of every data row, each read with its block's header."""
    header: list[tuple[str, str | None]] | None = None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cells = _cells(line)
        fields = [_field(c) for c in cells]
        if "timestamp" in [f[0] for f in fields]:
            header = fields
            continue
        if header is None:
            raise LogFormatError(path, i, "no header row before the data",
                                 hint="record with --format=csv (not csv,noheader) and timestamp in --query-gpu")
        if len(cells) < len(header):
            raise LogFormatError(path, i, f"truncated row: {len(cells)} of {len(header)} fields",
                                 hint="the recorder stopped mid-line: delete that line")
        if len(cells) > len(header):
            raise LogFormatError(path, i, f"{len(cells)} fields for {len(header)} columns")
        yield i, {name: (cell, unit) for (name, unit), cell in zip(header, cells, strict=True)}


def _value(path: Path, line: int, name: str, cell: str, unit: str | None) -> float:
    text = cell.strip()
    for suffix in ("mW", "W"):
        if text.endswith(" " + suffix):
            text, unit = text[: -len(suffix)].strip(), suffix
    try:
        return to_float(text) * _SCALE.get(unit or "W", 1.0)
    except ValueError:
        raise LogFormatError(path, line, f"{name} is {cell!r}, not a power") from None


def _collect(path: Path, lines: list[str]) -> dict[str, _Gpu]:
    gpus: dict[str, _Gpu] = {}
    for line, row in _rows(path, lines):
        stamp = _stamp(row["timestamp"][0])
        if stamp is None:
            raise LogFormatError(path, line, f"timestamp {row['timestamp'][0]!r} is not YYYY/MM/DD HH:MM:SS.mmm")
        key = next((row[k][0] for k in _KEYS if k in row), "0")
        gpu = gpus.setdefault(key, _Gpu(label=key if key.isdigit() else str(len(gpus))))
        gpu.name = row["name"][0] if "name" in row else gpu.name
        gpu.lines.append(line)
        gpu.stamps.append(stamp)
        for name in POWER_FIELDS:
            cell = row.get(name)
            gpu.values.setdefault(name, []).append(
                float("nan") if cell is None else _value(path, line, name, cell[0], cell[1]))
    return gpus


def _domain(gpu: _Gpu, fld: str, primary: str | None) -> Domain:
    suffix, period = POWER_FIELDS[fld]
    what = {"instant": "instantaneous board power",
            "draw": "board power; on Ampere (except GA100) and newer a 1 s average (nvmlDeviceGetPowerUsage)",
            "average": "board power averaged over 1 s"}[suffix]
    which = f"GPU {gpu.label}" + (f", {gpu.name}" if gpu.name else "")
    name = f"gpu-{gpu.label}" if primary is None else f"gpu-{gpu.label}-{suffix}"
    note = "" if primary is None else " (cross-check; never added)"
    return Domain(name=name, kind="power", meter=METER, component="gpu", update_period_s=period,
                  source=f"nvidia-smi --query-gpu {fld} ({which}): {what}{note}",
                  parent=None if primary is None else f"gpu-{gpu.label}")


def _gpu_traces(path: Path, gpu: _Gpu, anchor: dt.datetime) -> list[Trace]:
    t = np.array([(s - anchor) // dt.timedelta(microseconds=1) * 1000 for s in gpu.stamps], dtype=np.int64)
    back = np.flatnonzero(np.diff(t) <= 0)
    if back.size:
        raise LogFormatError(path, gpu.lines[int(back[0]) + 1], f"GPU {gpu.label}: time does not increase",
                             hint="several GPUs in one file need index in --query-gpu")
    traces: list[Trace] = []
    primary = None
    for fld in POWER_FIELDS:
        v = np.asarray(gpu.values[fld])
        ok = np.isfinite(v)
        if ok.sum() >= 2:
            traces.append(Trace(_domain(gpu, fld, primary), t[ok], v[ok]))
            primary = primary or fld
    return traces


def read_nvidia_smi(path: str | Path) -> LogData:
    """Parse an nvidia-smi CSV log: one power domain per GPU (plus cross-checks), dated, local time."""
    path = Path(path)
    gpus = _collect(path, read_text(path).splitlines())
    if not gpus:
        raise LogFormatError(path, None, "no data rows", hint="is it the file nvidia-smi -f (or > file) wrote?")
    anchor = min(min(g.stamps) for g in gpus.values())
    traces = [t for g in gpus.values() for t in _gpu_traces(path, g, anchor)]
    if not traces:
        raise LogFormatError(path, None, "no power readings: every power.draw cell is empty or [N/A]",
                             hint="query power.draw (or power.draw.instant) on a GPU that reports it")
    n = sum(len(g.stamps) for g in gpus.values())
    return LogData(path=path, format=FORMAT, meter=METER, anchor=anchor, dated=True, traces=traces, n_rows=n)
