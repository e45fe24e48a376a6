#!/usr/bin/env python3
"""Analyse a trace from scripts/gpu_trace.py: counter energy vs integrated power (standard library only).

For the whole trace, the idle phase and the load window it computes the energy three ways:

* ``counter``: the NVML total-energy counter, interpolated linearly at the window edges;
* ``instant``: trapezoid integral of ``NVML_FI_DEV_POWER_INSTANT`` samples, clipped to the window;
* ``average``: the same with ``nvmlDeviceGetPowerUsage`` (a 1 s moving average on Ampere and newer);

and the ratios counter/instant and counter/average. It also measures how often the counter and the
instant power actually change (their update periods), the meter's read latency, and the aux
channels during the load. Prints a table; writes ``OUT/summary.json``.

A counter/instant ratio far from 1 is expected on A100/H100 for short windows: their power sensor
observes only ~25% of each 100 ms period (Yang et al., "Part-time Power Measurements", SC'24, arXiv:2312.02741).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any


# ------------------------------------------------------------------------------ pure helpers
def interp_at(ts: list[int], vs: list[float], t: float) -> float | None:
    """Linear interpolation of a sampled series at ``t`` (None outside the samples)."""
    if not ts or t < ts[0] or t > ts[-1]:
        return None
    i = bisect_left(ts, t)
    if ts[i] == t:
        return vs[i]
    t0, t1, v0, v1 = ts[i - 1], ts[i], vs[i - 1], vs[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def counter_energy(ts: list[int], cj: list[float], t0: float, t1: float) -> float | None:
    """Joules a cumulative counter (J) gained over [t0, t1] ns, interpolating at both edges."""
    a, b = interp_at(ts, cj, t0), interp_at(ts, cj, t1)
    return None if a is None or b is None else b - a


def trapezoid(ts: list[int], ws: list[float], t0: float, t1: float) -> float | None:
    """Joules from power samples (W at ns times) over [t0, t1], clipped with interpolated edges."""
    w0, w1 = interp_at(ts, ws, t0), interp_at(ts, ws, t1)
    if w0 is None or w1 is None or t1 <= t0:
        return None
    inner_lo, inner_hi = bisect_right(ts, t0), bisect_left(ts, t1)
    pts = [(t0, w0)] + [(ts[i], ws[i]) for i in range(inner_lo, inner_hi)] + [(t1, w1)]
    return sum((tb - ta) * (wa + wb) / 2 for (ta, wa), (tb, wb) in zip(pts, pts[1:])) / 1e9


def change_intervals_ms(ts: list[int], vs: list[float]) -> list[float]:
    """Intervals (ms) between successive samples at which the value changed: the refresh period."""
    changes = [ts[i] for i in range(1, len(vs)) if vs[i] != vs[i - 1]]
    return [(b - a) / 1e6 for a, b in zip(changes, changes[1:])]


def _stats(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    s = sorted(xs)

    def q(p: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]

    return {"n": len(s), "median": statistics.median(s), "p10": q(0.10), "p90": q(0.90), "max": s[-1]}


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    ts, vs = [], []
    for r in rows:
        if r.get(key) not in (None, "") and not r.get("error"):
            ts.append(int(r["t_ns"]))
            vs.append(float(r[key]))
    return ts, vs


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b in (None, 0) else a / b


# ------------------------------------------------------------------------------ analysis
def analyze(rows: list[dict[str, str]], meta: dict[str, Any]) -> dict[str, Any]:
    """Everything the check reports, from the trace rows (csv.DictReader) and meta.json."""
    ok_rows = [r for r in rows if not r.get("error")]
    if len(ok_rows) < 2:
        raise ValueError(f"only {len(ok_rows)} good samples in the trace: nothing to analyse")
    t_first, t_last = int(ok_rows[0]["t_ns"]), int(ok_rows[-1]["t_ns"])
    load_lo, load_hi = (int(x) for x in meta["load_window_ns"])
    idle_rows = [int(r["t_ns"]) for r in ok_rows if r["phase"] == "idle"]
    windows = {"whole": (t_first, t_last), "load": (max(load_lo, t_first), min(load_hi, t_last))}
    if len(idle_rows) >= 2:
        windows["idle"] = (idle_rows[0], idle_rows[-1])

    series = {k: _series(rows, k) for k in ("counter_j", "instant_w", "average_w")}
    out: dict[str, Any] = {"device": meta.get("device"), "domains": meta.get("domains"),
                           "inventory": meta.get("inventory"), "windows": {}}
    for name, (a, b) in windows.items():
        dur = (b - a) / 1e9
        e_counter = counter_energy(*series["counter_j"], a, b) if series["counter_j"][0] else None
        e_inst = trapezoid(*series["instant_w"], a, b) if series["instant_w"][0] else None
        e_avg = trapezoid(*series["average_w"], a, b) if series["average_w"][0] else None
        out["windows"][name] = {
            "duration_s": dur,
            "counter_j": e_counter, "instant_j": e_inst, "average_j": e_avg,
            "counter_w": None if e_counter is None or dur <= 0 else e_counter / dur,
            "instant_w": None if e_inst is None or dur <= 0 else e_inst / dur,
            "average_w": None if e_avg is None or dur <= 0 else e_avg / dur,
            "ratio_counter_instant": _ratio(e_counter, e_inst),
            "ratio_counter_average": _ratio(e_counter, e_avg),
        }
    out["counter_update_ms"] = _stats(change_intervals_ms(*series["counter_j"]))
    out["instant_update_ms"] = _stats(change_intervals_ms(*series["instant_w"]))
    out["read_latency_us"] = _stats([float(r["read_us"]) for r in ok_rows if r.get("read_us")])
    gaps = [(b - a) / 1e6 for a, b in zip([int(r["t_ns"]) for r in ok_rows],
                                          [int(r["t_ns"]) for r in ok_rows[1:]])]
    out["sample_interval_ms"] = _stats(gaps)
    out["n_samples"] = len(rows)
    out["n_errors"] = len(rows) - len(ok_rows)
    out["errors"] = sorted({r["error"] for r in rows if r.get("error")})[:5]
    load_rows = [r for r in ok_rows if load_lo <= int(r["t_ns"]) <= load_hi]
    aux: dict[str, Any] = {}
    for key in ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "pstate", "mem_used_bytes"):
        vals = [float(r[key]) for r in load_rows if r.get(key) not in (None, "")]
        aux[key] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals)} if vals else None
    reasons = 0
    for r in load_rows:
        if r.get("throttle_reasons") not in (None, ""):
            reasons |= int(float(r["throttle_reasons"]))
    aux["throttle_reasons_or"] = reasons
    out["load_aux"] = aux
    out["load"] = {k: meta.get("load", {}).get(k) for k in ("cmd", "returncode", "timing")}
    return out


def _fmt(v: Any, unit: str = "", digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def render(s: dict[str, Any]) -> str:
    lines = []
    inv = {g.get("index"): g for g in (s.get("inventory") or [])}.get(s.get("device"), {})
    lines.append(f"GPU {s.get('device')}: {inv.get('name')}  driver {inv.get('driver_version')}  "
                 f"power limit {inv.get('power_limit_w')} W  method {inv.get('power_method')}")
    hdr = f"{'window':<7}{'dur s':>8}{'counter J':>12}{'instant J':>12}{'average J':>12}" \
          f"{'cnt W':>9}{'inst W':>9}{'avg W':>9}{'cnt/inst':>10}{'cnt/avg':>9}"
    lines += [hdr, "-" * len(hdr)]
    for name, w in s["windows"].items():
        lines.append(f"{name:<7}{_fmt(w['duration_s']):>8}{_fmt(w['counter_j'], digits=1):>12}"
                     f"{_fmt(w['instant_j'], digits=1):>12}{_fmt(w['average_j'], digits=1):>12}"
                     f"{_fmt(w['counter_w'], digits=1):>9}{_fmt(w['instant_w'], digits=1):>9}"
                     f"{_fmt(w['average_w'], digits=1):>9}{_fmt(w['ratio_counter_instant'], digits=3):>10}"
                     f"{_fmt(w['ratio_counter_average'], digits=3):>9}")
    for key, label in (("counter_update_ms", "counter refresh (ms)"), ("instant_update_ms", "instant refresh (ms)"),
                       ("read_latency_us", "meter read (us)"), ("sample_interval_ms", "sample interval (ms)")):
        st = s.get(key)
        lines.append(f"{label:<22}" + ("-" if not st else
                     f"median {st['median']:.2f}  p10 {st['p10']:.2f}  p90 {st['p90']:.2f}  max {st['max']:.2f}  n {st['n']}"))
    aux = s["load_aux"]
    sm = aux.get("sm_clock_mhz") or {}
    temp = aux.get("temperature_c") or {}
    lines.append(f"load aux: SM clock median {sm.get('median')} MHz, temperature max {temp.get('max')} C, "
                 f"throttle reasons OR 0x{aux['throttle_reasons_or']:x}")
    lines.append(f"samples {s['n_samples']}, read errors {s['n_errors']}" +
                 (f": {s['errors']}" if s["errors"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="the directory gpu_trace.py wrote (trace.csv, meta.json)")
    args = p.parse_args(argv)
    try:
        with open(args.out / "trace.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        meta = json.loads((args.out / "meta.json").read_text())
        summary = analyze(rows, meta)
    except (OSError, ValueError, KeyError) as exc:
        print(f"gpu_analyze: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(render(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
