"""Stand-ins for the tools that log power on their own: they write files the way each tool does.

* :func:`powerlog` -- Intel Power Gadget 3.x ``PowerLog3.0 -resolution MS -file F``: the Windows
  layout (unquoted, space-padded cells, `` CPU Utilization(%)`` with its leading space, CRLF, a footer
  of blank-line-separated ``Key = value`` blocks) or the macOS one (every cell quoted with the padding
  inside the quotes, LF rows, footer blank lines CRLF, footer saying ``Package`` for ``Processor``).
  Elapsed time and cumulative energy count from the moment logging starts, one resolution before
  the first row; each power cell is the average over the interval ending at its row.
* :func:`nvidia_smi` -- ``nvidia-smi --query-gpu=FIELDS --format=csv -lms MS``: a header with units,
  one row per GPU per tick, ``YYYY/MM/DD HH:MM:SS.mmm`` local time, ``30.32 W`` cells, ``[N/A]``.
* :func:`wall_csv` -- a smart plug's export: ``time, power`` in ISO-8601 or epoch s/ms, W or mW.

Powers are functions of seconds since logging started (W). Run as a script, it writes all three
for a results directory's wall-clock range: ``python logtools.py RESULTS_DIR OUT_DIR``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

Power = Callable[[float], float]
RDTSC_GHZ = 2.592


def _interval_mean(p: Power, a: float, b: float, n: int = 200) -> float:
    return float(np.mean([p(a + (b - a) * (k + 0.5) / n) for k in range(n)]))


def _powerlog_columns(planes: Mapping[tuple[str, int], Power]) -> list[str]:
    cols = ["System Time", "RDTSC", "Elapsed Time (sec)", " CPU Utilization(%)"]
    for node in sorted({n for _, n in planes}):
        cols.append(f"CPU Frequency_{node}(MHz)")
        for label in ("Processor", "IA", "DRAM", "GT"):
            if (label, node) in planes:
                cols += [f"{label} Power_{node}(Watt)", f"Cumulative {label} Energy_{node}(Joules)",
                         f"Cumulative {label} Energy_{node}(mWh)"]
        cols += [f"Package Temperature_{node}(C)", f"Package Power Limit_{node}(Watt)"]
    return cols


def _powerlog_rows(start: dt.datetime, seconds: float, resolution_s: float,
                   planes: Mapping[tuple[str, int], Power]) -> tuple[list[list[str]], dict[tuple[str, int], float]]:
    rows, energy = [], dict.fromkeys(planes, 0.0)
    n = int(round(seconds / resolution_s))
    for i in range(1, n + 1):
        a, b = (i - 1) * resolution_s, i * resolution_s
        t = start + dt.timedelta(seconds=b)
        stamp = t.strftime("%H:%M:%S:") + f"{t.microsecond // 1000:03d}"
        cells = [stamp, f"{int(62745246064436 + b * RDTSC_GHZ * 1e9)}", f"{b:9.3f}", f"{11.0:8.3f}"]
        for node in sorted({nd for _, nd in planes}):
            cells.append(f"{3500:5d}")
            for label in ("Processor", "IA", "DRAM", "GT"):
                if (label, node) in planes:
                    w = _interval_mean(planes[(label, node)], a, b)
                    energy[(label, node)] += w * resolution_s
                    e = energy[(label, node)]
                    cells += [f"{w:10.6f}", f"{e:11.6f}", f"{e / 3.6:11.6f}"]
            cells += [f"{48:4d}", f"{125.0:8.3f}"]
        rows.append(cells)
    return rows, energy


def _powerlog_footer(seconds: float, energy: Mapping[tuple[str, int], float], macos: bool) -> list[list[str]]:
    blocks = [[f"Total Elapsed Time (sec) = {seconds:.6f}", f"Measured RDTSC Frequency (GHz) = {RDTSC_GHZ:.3f}"]]
    order = ("Processor", "IA", "DRAM", "GT")
    for (label, node), e in sorted(energy.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]))):
        name = "Package" if macos and label == "Processor" else label
        blocks.append([f"Cumulative {name} Energy_{node} (Joules) = {e:.6f}",
                       f"Cumulative {name} Energy_{node} (mWh) = {e / 3.6:.6f}",
                       f"Average {name} Power_{node} (Watt) = {e / seconds:.6f}"])
    return blocks


def powerlog(path: Path, start: dt.datetime, seconds: float, planes: Mapping[tuple[str, int], Power], *,
             resolution_s: float = 0.1, macos: bool = False, footer: bool = True) -> Path:
    """A PowerLog CSV whose logging starts at ``start`` (local time); planes: (label, node) -> W."""
    cols = _powerlog_columns(planes)
    rows, energy = _powerlog_rows(start, seconds, resolution_s, planes)
    if macos:
        def line(cells: list[str]) -> str:
            return ",".join(f'"{c.strip() if i == 0 else c}"' for i, c in enumerate(cells)) + "\n"
        out = line([c.strip() for c in cols]) + "".join(line(r) for r in rows)
        if footer:
            for block in _powerlog_footer(seconds, energy, macos=True):
                out += "\r\n" + "".join(f'"{x}"\n' for x in block)
        path.write_bytes(out.encode())
    else:
        out = ",".join(cols) + "\r\n" + "".join(",".join(r) + "\r\n" for r in rows)
        if footer:
            for block in _powerlog_footer(seconds, energy, macos=False):
                out += "\r\n" + "".join(f"{x}\r\n" for x in block)
        path.write_bytes(out.encode())
    return path


def nvidia_smi(path: Path, start: dt.datetime, seconds: float, gpus: Mapping[int, Mapping[str, Power | str]], *,
               period_s: float = 0.1, fields: tuple[str, ...] = ("timestamp", "index", "name", "power.draw",
                                                                    "power.draw.instant", "utilization.gpu"),
               nounits: bool = False, append: bool = False) -> Path:
    """An nvidia-smi CSV log; ``gpus``: index -> {"name": ..., field: W function, or a marker like
    "[N/A]"}; one row per GPU per tick, in index order."""
    units = {"power.draw": "W", "power.draw.instant": "W", "power.draw.average": "W", "utilization.gpu": "%"}
    head = ", ".join(f"{f} [{units[f]}]" if f in units else f for f in fields) + "\n"
    lines = []
    for k in range(int(round(seconds / period_s)) + 1):
        for index, spec in sorted(gpus.items()):
            t = start + dt.timedelta(seconds=k * period_s, milliseconds=2 * index)
            cells = []
            for f in fields:
                if f == "timestamp":
                    cells.append(t.strftime("%Y/%m/%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}")
                elif f == "index":
                    cells.append(str(index))
                elif f == "name":
                    cells.append(str(spec.get("name", "NVIDIA GeForce RTX 4090")))
                elif f == "utilization.gpu":
                    cells.append("0" if nounits else "0 %")
                else:
                    v = spec.get(f, "[N/A]")
                    cells.append(v if isinstance(v, str) else (f"{v(k * period_s):.2f}" + ("" if nounits else " W")))
            lines.append(", ".join(cells) + "\n")
    with open(path, "a" if append else "w", encoding="utf-8", newline="") as fh:
        fh.write(head + "".join(lines))
    return path


def wall_csv(path: Path, start: dt.datetime, seconds: float, power: Power, *, period_s: float = 1.0,
             time_format: str = "iso", unit: str = "W", header: tuple[str, str] | None = None,
             delimiter: str = ",", preamble: str = "") -> Path:
    """A wall meter's CSV: time (``iso``, ``epoch_s`` or ``epoch_ms``) and power (W or mW)."""
    names = header or ("timestamp", "power_mw" if unit == "mW" else "power_w")
    out = [preamble + delimiter.join(names)]
    for k in range(int(round(seconds / period_s)) + 1):
        t = start + dt.timedelta(seconds=k * period_s)
        stamp = {"iso": t.isoformat(timespec="milliseconds"), "epoch_s": f"{t.timestamp():.3f}",
                 "epoch_ms": f"{round(t.timestamp() * 1000)}"}[time_format]
        w = power(k * period_s) * (1000.0 if unit == "mW" else 1.0)
        out.append(delimiter.join([stamp, f"{w:.3f}"]))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def for_results(results_dir: Path, out_dir: Path, *, margin_s: float = 2.0) -> dict[str, Path]:
    """PowerLog (Windows), nvidia-smi and wall CSVs that start ``margin_s`` before the first run (or
    idle baseline) of ``results_dir`` and end ``margin_s`` after its last run, at constant powers:
    CPU package 20 W (IA 12 W), DRAM 3 W, GPU 0 55 W, wall 80 W."""
    import polars as pl

    meta = json.loads((results_dir / "metadata.json").read_text())
    runs = pl.read_parquet(results_dir / "runs.parquet")
    t0 = min([int(runs["t_start_ns"].min())] + [int(b["t_start_ns"]) for b in meta.get("idle_baselines", [])])
    t1 = int(runs["t_end_ns"].max())
    offset = int(meta["clock_offset_ns"])
    start = dt.datetime.fromtimestamp((t0 + offset) / 1e9 - margin_s)  # local time, as the tools write
    seconds = (t1 - t0) / 1e9 + 2 * margin_s
    out_dir.mkdir(parents=True, exist_ok=True)
    const = lambda w: (lambda t: w)  # noqa: E731
    return {
        "powerlog": powerlog(out_dir / "PowerLog.csv", start, seconds,
                             {("Processor", 0): const(20.0), ("IA", 0): const(12.0), ("DRAM", 0): const(3.0)},
                             resolution_s=0.05),
        "nvidia-smi": nvidia_smi(out_dir / "gpu.csv", start, seconds, {0: {"power.draw": const(55.0),
                                                                            "power.draw.instant": const(55.0)}},
                                 period_s=0.05),
        "wall": wall_csv(out_dir / "wall.csv", start, seconds, const(80.0), period_s=0.05),
    }


if __name__ == "__main__":
    for kind, p in for_results(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(kind, p)
