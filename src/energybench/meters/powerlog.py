"""Import Intel Power Gadget ``PowerLog3.0`` CSV logs and attach them to a results directory.

``PowerLog3.0.exe [-resolution ms] -duration s -file f`` (or ``-cmd ...``) writes one row per
sample with columns such as ``System Time, RDTSC, Elapsed Time (sec), CPU Utilization(%),
Processor Power_0(Watt), Cumulative Processor Energy_0(Joules), Cumulative Processor
Energy_0(mWh), IA Power_0(Watt), Cumulative IA Energy_0(Joules), DRAM Power_0(Watt), ...``,
then a blank line and a summary footer (``Total Elapsed Time (sec) = ...``) that we skip
(Intel Power Gadget documentation, PowerLog; and real Windows and macOS logs). macOS logs say
``Package`` where Windows says ``Processor``.
``System Time`` is local wall-clock time, ``HH:MM:SS:mmm``.

Each ``Cumulative X Energy_N(Joules)`` column becomes a counter domain (meter ``powerlog``) named
like the live Power Gadget meter's (``cpu-package-N``, ``cpu-core-N`` ...); each ``X Power_N(Watt)``
column a power domain ``<that name>-power`` whose parent is the counter domain -- reported as a
cross-check, never added to totals. A power value is PowerLog's average over the interval ending at
its row, so its sample is placed at that interval's midpoint.

Clock: wall time -> our monotonic clock with ``clock_offset_ns = time.time_ns() -
time.monotonic_ns()``, recorded in the results' ``metadata.json`` when the runs were measured.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from energybench.energy import (
    UNIT_ENERGY,
    UNIT_POWER,
    attribute_run,
    domain_from_struct,
    idle_power_from_series,
    make_series,
)
from energybench.errors import ResultsError, UsageError
from energybench.meters.base import Component, Domain
from energybench.results import SAMPLES_SCHEMA, ResultsStore, read_metadata, read_runs, read_samples

METER = "powerlog"

_ENERGY_COL = re.compile(r"^Cumulative (.+?) Energy_(\d+)\s*\(Joules\)$")
_POWER_COL = re.compile(r"^(.+?) Power_(\d+)\s*\(Watt\)$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})(?:[:.](\d{1,3}))?$")


class PowerLogError(UsageError):
    """A PowerLog CSV cannot be read or does not match the results it is attached to."""


def _plane(label: str, node: int) -> tuple[str, Component, str | None]:
    """PowerLog plane label -> (domain name, component, parent) like the live Power Gadget meter."""
    key = label.strip().lower()
    package = f"cpu-package-{node}"
    if key in ("processor", "package"):
        return package, "cpu", None
    if key == "ia":
        return f"cpu-core-{node}", "cpu-core", package
    if key == "gt":
        return f"gt-{node}", "uncore", package
    if key == "dram":
        return f"dram-{node}", "dram", None
    if key in ("platform", "psys"):
        return "psys", "psys", None
    return f"pg-{'-'.join(key.split())}-{node}", "other", package


@dataclass
class PowerLog:
    """A parsed PowerLog CSV. Times relative to the first row; values per domain."""

    path: str
    first_time: dt.time  # System Time of the first row (local wall clock)
    elapsed_s: np.ndarray  # seconds since the first row
    domains: list[Domain]
    values: dict[str, np.ndarray]  # domain name -> J (counters) or W (power)
    summary: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return float(self.elapsed_s[-1]) if self.elapsed_s.size else 0.0

    def t_ns(self, *, date: dt.date, clock_offset_ns: int, tz: dt.tzinfo | None = None) -> np.ndarray:
        """Monotonic ns of every row, given the local date of the first row and the clock offset."""
        start = dt.datetime.combine(date, self.first_time)
        start = start.replace(tzinfo=tz) if tz is not None else start.astimezone()  # naive = local time
        start_ns = int(start.timestamp()) * 1_000_000_000 + start.microsecond * 1000
        return start_ns + np.round(self.elapsed_s * 1e9).astype(np.int64) - int(clock_offset_ns)


def _parse_time(text: str) -> dt.time:
    m = _TIME_RE.match(text.strip())
    if not m:
        raise ValueError(f"System Time {text!r} is not HH:MM:SS:mmm")
    h, mi, s, ms = m.groups()
    return dt.time(int(h), int(mi), int(s), int((ms or "0").ljust(3, "0")) * 1000)


def _seconds_of_day(t: dt.time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def read_powerlog(path: str | Path) -> PowerLog:
    """Parse a PowerLog3.0 CSV (header, sample rows, blank line, ``key = value`` summary footer)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise PowerLogError(f"cannot read PowerLog file {str(path)!r}: {exc.strerror or exc}") from exc
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    header_idx = next((i for i, r in enumerate(rows) if r and r[0].strip().strip('"') == "System Time"), None)
    if header_idx is None:
        raise PowerLogError(f"{path} is not a PowerLog CSV: no 'System Time' header row",
                            hint="pass the CSV written by PowerLog3.0 -file")
    header = [c.strip() for c in rows[header_idx]]
    data: list[list[str]] = []
    summary: dict[str, float] = {}
    in_footer = False
    for r in rows[header_idx + 1:]:
        cells = [c.strip() for c in r]
        if not any(cells):
            if data:
                in_footer = True
            continue
        if not in_footer and len(cells) >= len(header) - 1 and _TIME_RE.match(cells[0]):
            data.append(cells)
            continue
        in_footer = True  # the summary: "Key = value" (Windows) or "Key: value" (macOS)
        line = ",".join(cells)
        key, sep, value = line.partition("=") if "=" in line else line.partition(":")
        if sep:
            try:
                summary[key.strip()] = float(value.strip().split()[0])
            except (ValueError, IndexError):
                pass
    if not data:
        raise PowerLogError(f"{path} has a PowerLog header but no sample rows")
    col = {name: i for i, name in enumerate(header)}

    def column(name: str) -> np.ndarray:
        i = col[name]
        out = np.full(len(data), np.nan)
        for k, r in enumerate(data):
            try:
                out[k] = float(r[i])
            except (IndexError, ValueError):
                pass
        return out

    times = [_parse_time(r[0]) for r in data]
    if "Elapsed Time (sec)" in col:
        el = column("Elapsed Time (sec)")
        elapsed = el - el[0]
    else:  # System Time only: seconds of day, unwrapped across midnight
        sod = np.array([_seconds_of_day(t) for t in times])
        d = np.diff(sod)
        d = np.where(d < -43200, d + 86400, d)
        elapsed = np.concatenate([[0.0], np.cumsum(d)])
    resolution = round(float(np.median(np.diff(elapsed))), 6) if elapsed.size > 1 else 0.1
    domains: list[Domain] = []
    values: dict[str, np.ndarray] = {}
    for name in header:
        m = _ENERGY_COL.match(name)
        if m:
            dom, comp, parent = _plane(m.group(1), int(m.group(2)))
            domains.append(Domain(name=dom, kind="energy", meter=METER, component=comp,
                                  source=f"PowerLog {path.name}: '{name}'", update_period_s=resolution, parent=parent))
            values[dom] = column(name)
    for name in header:
        m = _POWER_COL.match(name)
        if m and "limit" not in m.group(1).lower():
            dom, comp, _parent = _plane(m.group(1), int(m.group(2)))
            pdom = f"{dom}-power"
            domains.append(Domain(name=pdom, kind="power", meter=METER, component=comp,
                                  source=f"PowerLog {path.name}: '{name}' (cross-check; never added)",
                                  update_period_s=resolution, parent=dom))
            values[pdom] = column(name)
    if not any(d.kind == "energy" for d in domains):
        raise PowerLogError(f"{path} has no 'Cumulative ... Energy_N(Joules)' columns")
    return PowerLog(path=str(path), first_time=times[0], elapsed_s=elapsed, domains=domains, values=values,
                    summary=summary)


def powerlog_samples(log: PowerLog, *, date: dt.date, clock_offset_ns: int, run_id: str = "powerlog",
                     tz: dt.tzinfo | None = None) -> pl.DataFrame:
    """The log as SAMPLES_SCHEMA rows (meter ``powerlog``) on our monotonic clock."""
    t = log.t_ns(date=date, clock_offset_ns=clock_offset_ns, tz=tz)
    # A power column holds the average over the interval that ends at its row (the first row has
    # none): such a value belongs at the interval's midpoint, or a step would shift by half a row.
    t_mid = (t[:-1] + t[1:]) // 2
    frames = []
    for d in log.domains:
        if d.kind == "energy":
            tt, v = t, log.values[d.name]
        else:
            tt, v = t_mid, log.values[d.name][1:]
        ok = np.isfinite(v)
        n = int(ok.sum())
        frames.append(pl.DataFrame({
            "run_id": [run_id] * n, "meter": [METER] * n, "domain": [d.name] * n, "t_ns": tt[ok],
            "value": v[ok], "unit": [UNIT_ENERGY if d.kind == "energy" else UNIT_POWER] * n,
        }))
    df = pl.concat(frames, how="vertical") if frames else pl.DataFrame()
    for c, dtype in SAMPLES_SCHEMA.items():
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(c))
    return df.select([pl.col(c).cast(dtype) for c, dtype in SAMPLES_SCHEMA.items()])


def _window(frame: pl.DataFrame, t0: int, t1: int) -> pl.DataFrame:
    """Rows in [t0, t1] plus the nearest one before and after, per domain."""
    parts = []
    for _, part in frame.group_by("domain", maintain_order=True):
        t = part["t_ns"].to_numpy()
        i = max(int(np.searchsorted(t, t0, side="left")) - 1, 0)
        j = min(int(np.searchsorted(t, t1, side="right")) + 1, t.size)
        parts.append(part.slice(i, j - i))
    return pl.concat(parts) if parts else frame.clear()


def _best_date(log: PowerLog, runs: pl.DataFrame, clock_offset_ns: int) -> dt.date:
    """The local date of the log's first row that makes it overlap the most runs (±1 day around them)."""
    started = [s for s in runs["started_at"].to_list() if s is not None] if "started_at" in runs.columns else []
    if not started:
        raise PowerLogError("cannot tell the PowerLog's date: no run has started_at", hint="pass date=YYYY-MM-DD")
    base = min(started).astimezone().date()
    best, best_n = base, -1
    for delta in (0, -1, 1):
        cand = base + dt.timedelta(days=delta)
        t = log.t_ns(date=cand, clock_offset_ns=clock_offset_ns)
        n = runs.filter((pl.col("t_start_ns") >= int(t[0])) & (pl.col("t_end_ns") <= int(t[-1]))).height
        if n > best_n:
            best, best_n = cand, n
    return best


def attach_powerlog(results_dir: str | Path, csv_path: str | Path, *, date: dt.date | str | None = None) -> int:
    """Attach a PowerLog CSV to the runs it covers; recompute their energy; return how many changed.

    Needs ``clock_offset_ns`` in the results' ``metadata.json``. ``date``: local date of the log's
    first row (default: the one, around the runs' start dates, that overlaps the most runs). Idle
    power of the log's domains comes from the log over the results' idle-baseline windows (sample
    sets named ``idle*``) when there are any; otherwise net energies of those domains stay null.
    Attaching the same log again replaces its samples (idempotent).
    """
    results_dir = Path(results_dir)
    meta = read_metadata(results_dir)
    if "clock_offset_ns" not in meta:
        raise ResultsError(f"{results_dir}/metadata.json has no clock_offset_ns: cannot place a wall-clock log "
                           "on the runs' monotonic clock",
                           hint="re-measure with this energybench version (it records clock_offset_ns)")
    offset = int(meta["clock_offset_ns"])
    log = read_powerlog(csv_path)
    runs = read_runs(results_dir)
    if runs.height == 0:
        return 0
    if isinstance(date, str):
        try:
            date = dt.date.fromisoformat(date)
        except ValueError as exc:
            raise PowerLogError(f"date {date!r} is not YYYY-MM-DD") from exc
    day = date or _best_date(log, runs, offset)
    frame = powerlog_samples(log, date=day, clock_offset_ns=offset).sort("domain", "t_ns")
    t_lo, t_hi = int(frame["t_ns"].min()), int(frame["t_ns"].max())
    idle = _idle_from_log(results_dir, log, frame)
    store = ResultsStore(results_dir)
    updated = 0
    for row in runs.iter_rows(named=True):
        t0, t1, tp = row.get("t_start_ns"), row.get("t_end_ns"), row.get("t_prefill_end_ns")
        if t0 is None or t1 is None or row.get("status") != "ok" or t0 < t_lo or t1 > t_hi:
            continue
        kept = [domain_from_struct(s) for s in (row.get("domains") or []) if s.get("meter") != METER]
        old_idle = {f"{s['meter']}/{s['domain']}": s["idle_power_w"] for s in (row.get("domains") or [])
                    if s.get("meter") != METER and s.get("idle_power_w") is not None}
        old = read_samples(results_dir, [row["run_id"]]).filter(pl.col("meter") != METER)
        mine = _window(frame, int(t0), int(t1)).with_columns(pl.lit(row["run_id"]).alias("run_id"))
        samples = pl.concat([old.select(list(SAMPLES_SCHEMA)), mine.select(list(SAMPLES_SCHEMA))], how="vertical")
        result = attribute_run(kept + log.domains, samples, t_start_ns=int(t0), t_end_ns=int(t1),
                               t_prefill_end_ns=None if tp is None else int(tp),
                               idle_power_w={**old_idle, **{f"{METER}/{k}": v for k, v in idle.items()}},
                               jitter_p99_ms=row.get("sample_jitter_p99_ms"))
        new_row = dict(row)
        new_row.update(result.columns)
        store.add_run(new_row, samples)
        updated += 1
    attached = list(meta.get("powerlog_attached", []))
    attached.append({"file": str(csv_path), "date": day.isoformat(), "runs_updated": updated})
    store.update_metadata(powerlog_attached=attached)
    return updated


def _idle_from_log(results_dir: Path, log: PowerLog, frame: pl.DataFrame) -> dict[str, float]:
    """Idle power (W) of the log's domains over the results' idle windows (median over windows)."""
    try:
        samples = read_samples(results_dir)
    except ResultsError:
        return {}
    idle_sets = samples.filter(pl.col("run_id").str.starts_with("idle") & (pl.col("meter") != METER))
    if idle_sets.height == 0:
        return {}
    windows = idle_sets.group_by("run_id").agg(pl.col("t_ns").min().alias("t0"), pl.col("t_ns").max().alias("t1"))
    per: dict[str, list[float]] = {}
    for d in log.domains:
        part = frame.filter(pl.col("domain") == d.name)
        s = make_series(part["t_ns"].to_numpy(), part["value"].to_numpy(), d.kind)
        for w in windows.iter_rows(named=True):
            p = idle_power_from_series(d, s, int(w["t0"]), int(w["t1"]))
            if p is not None:
                per.setdefault(d.name, []).append(p)
    return {k: float(np.median(v)) for k, v in per.items()}


def summary_check(log: PowerLog) -> dict[str, Any]:
    """Energy of each counter domain over the whole log vs the footer's total (a parse self-check)."""
    out: dict[str, Any] = {}
    for d in log.domains:
        if d.kind != "energy":
            continue
        v = log.values[d.name]
        out[d.name] = {"last_row_j": float(np.nanmax(v)) if v.size else None}
    for k, v in log.summary.items():
        m = re.match(r"^Cumulative (.+?) Energy_(\d+)\s*\(Joules\)$", k)
        if m:
            name = _plane(m.group(1), int(m.group(2)))[0]
            out.setdefault(name, {})["footer_j"] = v
    return out


__all__: Sequence[str] = ["PowerLog", "PowerLogError", "attach_powerlog", "powerlog_samples", "read_powerlog",
                          "summary_check"]
