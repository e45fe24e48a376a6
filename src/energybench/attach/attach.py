"""Attach logs to a results directory: samples stored, every covered run's energy re-attributed.

Each log (:mod:`.formats`) is put on the runs' monotonic clock (:mod:`.align`) and, per run and per
domain, the log that spans most of the run window gives that domain's samples: the ones inside the
window plus one on each side, stored under the run's id with the log's meter (``powerlog``,
``nvidia-smi``, ``wall-csv``). The run's energy columns are then computed again by
:func:`energybench.energy.attribute_run` from its stored samples -- the live meters' domains as
they were measured (same samples, same idle powers, the GPU protocol's rise time where it applied)
and the attached ones beside them -- so whole run, prefill and decode come out exactly as for a
live meter, and the rules of which domains add up to the total hold (a ``system`` wall meter is
the total; a measured CPU replaces an estimate).

Idle power of an attached domain is the log's median power over each idle baseline window it
covers (``idle_baselines`` in metadata, as the live baseline is measured); a run uses the baseline
measured last before it, as a live run does. Without one, the domain's net energy stays unknown.

Attaching again replaces, per run, the samples and domains of the (meter, domain) pairs the new
logs cover, and keeps everything else: the same logs twice give the same results. The new runs and
samples are written whole under temporary names before they replace the old files
(:meth:`ResultsStore.rewrite`), then metadata: a failure before that loses nothing.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from energybench.attach.align import Placed, best_for, check_overlap, date_log, place, traces_of, wall_text
from energybench.attach.formats import read_log
from energybench.attach.logs import LogData, sha256_of
from energybench.energy import UNIT_ENERGY, UNIT_POWER, attribute_run, domain_from_struct, idle_power_from_series, \
    make_series
from energybench.errors import ResultsError, UsageError
from energybench.gpu_protocol import GpuProtocol
from energybench.results import SAMPLES_SCHEMA, ResultsStore, conform, read_metadata, read_runs, read_samples, \
    runs_frame

Key = tuple[str, str]  # (meter, domain)

#: What each attached meter is, for metadata's ``meters`` list.
DESCRIPTIONS = {"powerlog": "Intel Power Gadget PowerLog CSV, attached after the measurement",
                "nvidia-smi": "nvidia-smi --query-gpu CSV log, attached after the measurement",
                "wall-csv": "wall-socket meter CSV (the whole machine), attached after the measurement"}


@dataclass
class AttachResult:
    """What :func:`attach_logs` did."""

    results_dir: Path
    logs: list[dict[str, Any]]  # the records stored in metadata["attached"]
    runs_ok: int
    runs_updated: int
    idle_power_w: dict[str, dict[str, float]]  # idle baseline -> "meter/domain" -> W
    run_totals: dict[str, int]  # runs per value of their ``meters`` column (what the totals add up)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"results_dir": str(self.results_dir), "logs": self.logs, "runs_ok": self.runs_ok,
                "runs_updated": self.runs_updated, "idle_power_w": self.idle_power_w,
                "run_totals": self.run_totals, "warnings": self.warnings}


@dataclass
class _Edit:
    """The new rows and samples, and the stored samples they replace."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    frames: list[pl.DataFrame] = field(default_factory=list)
    replaced: list[tuple[str, str, str]] = field(default_factory=list)  # (run_id or idle name, meter, domain)
    runs_per_log: dict[Path, set[str]] = field(default_factory=dict)
    uncovered: Counter[Key] = field(default_factory=Counter)

    def add(self, name: str, p: Placed, t0: int, t1: int) -> None:
        t, v = p.window(t0, t1)
        unit = UNIT_ENERGY if p.domain.kind == "energy" else UNIT_POWER
        self.frames.append(conform(pl.DataFrame({"run_id": name, "meter": p.domain.meter, "domain": p.domain.name,
                                                 "t_ns": t, "value": v, "unit": unit}), SAMPLES_SCHEMA))
        self.replaced.append((name, *p.key))

    def samples(self, stored: pl.DataFrame) -> pl.DataFrame:
        """Every stored sample but the replaced ones, and the new ones."""
        gone = pl.DataFrame(self.replaced, schema={"run_id": pl.String, "meter": pl.String, "domain": pl.String},
                            orient="row")
        kept = stored.join(gone, on=["run_id", "meter", "domain"], how="anti")
        return pl.concat([conform(kept, SAMPLES_SCHEMA), *self.frames], how="vertical")


def parse_date(date: dt.date | str | None) -> dt.date | None:
    """``--date``: a date, or None to infer it."""
    if date is None or isinstance(date, dt.date):
        return date
    try:
        return dt.date.fromisoformat(date)
    except ValueError:
        raise UsageError(f"--date {date!r} is not YYYY-MM-DD") from None


def _windows(runs: pl.DataFrame, root: Path) -> np.ndarray:
    ok = runs.filter((pl.col("status") == "ok") & pl.col("t_start_ns").is_not_null() & pl.col("t_end_ns").is_not_null())
    if ok.height == 0:
        raise ResultsError(f"{root} has no finished run to attach a log to")
    return ok.select("t_start_ns", "t_end_ns").to_numpy().astype(np.int64)


def _clock_offset(root: Path, meta: dict[str, Any]) -> int:
    if "clock_offset_ns" not in meta:
        raise ResultsError(f"{root}/metadata.json has no clock_offset_ns: a wall-clock log cannot be placed on "
                           "its runs", hint="measure again with this energybench version (it records the clock)")
    return int(meta["clock_offset_ns"])


def _idle(meta: dict[str, Any], by_key: dict[Key, list[Placed]], edit: _Edit) -> dict[str, dict[Key, float]]:
    """Idle power (W) of each attached domain over each idle baseline window the logs cover."""
    out: dict[str, dict[Key, float]] = {}
    for b in meta.get("idle_baselines") or []:
        name, t0, t1 = b.get("name"), b.get("t_start_ns"), b.get("t_end_ns")
        if name is None or t0 is None or t1 is None:
            continue
        for key, traces in by_key.items():
            p = best_for(traces, int(t0), int(t1))
            if p is None:
                continue
            edit.add(str(name), p, int(t0), int(t1))
            w = idle_power_from_series(p.domain, make_series(p.t_ns, p.value, p.domain.kind), int(t0), int(t1))
            if w is not None:
                out.setdefault(str(name), {})[key] = w
    return out


def _baseline_before(meta: dict[str, Any], t0: int) -> str | None:
    """The idle baseline a live run starting at ``t0`` used: the last one measured before it."""
    done = [b for b in meta.get("idle_baselines") or [] if b.get("t_end_ns") is not None and b["t_end_ns"] <= t0]
    return str(max(done, key=lambda b: b["t_end_ns"])["name"]) if done else None


def _rerun(row: dict[str, Any], stored: pl.DataFrame | None, by_key: dict[Key, list[Placed]],
           idle_w: dict[Key, float], protocol: GpuProtocol | None, edit: _Edit) -> None:
    """Attribute one run again with the attached domains that touch it (no-op when none does)."""
    t0, t1, tp = int(row["t_start_ns"]), int(row["t_end_ns"]), row.get("t_prefill_end_ns")
    chosen = {k: p for k, traces in by_key.items() if (p := best_for(traces, t0, t1)) is not None}
    if not chosen:
        return
    live = [s for s in row.get("domains") or [] if (s["meter"], s["domain"]) not in chosen]
    domains = [domain_from_struct(s) for s in live] + [p.domain for p in chosen.values()]
    idle = {f"{s['meter']}/{s['domain']}": s["idle_power_w"] for s in live if s.get("idle_power_w") is not None}
    idle.update({f"{k[0]}/{k[1]}": w for k, w in idle_w.items() if k in chosen})
    n_before = len(edit.frames)
    for p in chosen.values():
        edit.add(str(row["run_id"]), p, t0, t1)
        edit.runs_per_log.setdefault(p.log.path, set()).add(str(row["run_id"]))
    mine = set(chosen)
    keys = pl.DataFrame([list(k) for k in mine], schema=["meter", "domain"], orient="row")
    old = [] if stored is None else [conform(stored.join(keys, on=["meter", "domain"], how="anti"), SAMPLES_SCHEMA)]
    samples = pl.concat(old + edit.frames[n_before:], how="vertical")
    rise = protocol.rise_by_domain(domains) if protocol and protocol.applies_to(int(row.get("n_gpu_layers") or 0)) \
        else None
    result = attribute_run(domains, samples, t_start_ns=t0, t_end_ns=t1,
                           t_prefill_end_ns=None if tp is None else int(tp), idle_power_w=idle,
                           jitter_p99_ms=row.get("sample_jitter_p99_ms"), rise_s=rise)
    for r in result.domains:
        if (r.domain.meter, r.domain.name) in mine and not r.covered:
            edit.uncovered[(r.domain.meter, r.domain.name)] += 1
    edit.rows[str(row["run_id"])] = {**row, **result.columns}


def _record(log: LogData, how: str, offset: int, runs: int) -> dict[str, Any]:
    """The ``attached`` entry of one log: file, checksum, what and when it covers."""
    placed = place(log, offset)
    a, b = min(int(p.t_ns[0]) for p in placed), max(int(p.t_ns[-1]) for p in placed)
    rec: dict[str, Any] = {
        "file": log.path.name, "path": str(log.path), "format": log.format, "meter": log.meter,
        "sha256": sha256_of(log.path), "bytes": log.path.stat().st_size, "rows": log.n_rows,
        "first": wall_text(a + offset), "last": wall_text(b + offset), "t_first_ns": a, "t_last_ns": b,
        "domains": [t.domain.name for t in log.traces if t.domain.parent is None],
        "nested_domains": [t.domain.name for t in log.traces if t.domain.parent is not None], "runs": runs,
        "attached_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if log.format == "powerlog":
        rec.update(date=log.anchor.date().isoformat(), date_source=how, footer_j=log.footer_j)
    return rec


def _metadata_changes(meta: dict[str, Any], records: list[dict[str, Any]], by_key: dict[Key, list[Placed]],
                      idle: dict[str, dict[Key, float]]) -> dict[str, Any]:
    """metadata.json after attaching: domains, meters, the attached logs, idle power per baseline."""
    attached = {key: traces[0].domain for key, traces in by_key.items()}
    domains = [d for d in meta.get("domains") or [] if (d.get("meter"), d.get("name")) not in attached]
    meters = list(meta.get("meters") or [])
    names = {m.get("name") for m in meters if isinstance(m, dict)}
    for meter in dict.fromkeys(k[0] for k in attached):
        if meter not in names:
            meters.append({"name": meter, "description": DESCRIPTIONS.get(meter, "attached log"),
                           "estimate": False, "attached": True})
    logs = {r["sha256"]: r for r in meta.get("attached") or []}
    logs.update({r["sha256"]: r for r in records})
    baselines = []
    for b in meta.get("idle_baselines") or []:
        mine = {f"{m}/{n}": w for (m, n), w in idle.get(str(b.get("name")), {}).items()}
        baselines.append({**b, "attached_power_w": {**(b.get("attached_power_w") or {}), **mine}} if mine else b)
    return {"domains": domains + [d.to_dict() for d in attached.values()], "meters": meters,
            "attached": list(logs.values()), "idle_baselines": baselines}


def _read(paths: list[Path], fmt: str, windows: np.ndarray, offset: int, day: dt.date | None,
          time_column: str | None, power_column: str | None) -> list[tuple[LogData, str]]:
    """Every log parsed, dated and checked to overlap a run (before anything is written)."""
    out = []
    for p in paths:
        log, how = date_log(read_log(p, fmt, time_column=time_column, power_column=power_column), windows, offset, day)
        check_overlap(log, windows, offset, how)
        out.append((log, how))
    return out


def attach_logs(results_dir: str | Path, logs: list[str | Path], *, fmt: str = "auto",
                date: dt.date | str | None = None, time_column: str | None = None,
                power_column: str | None = None) -> AttachResult:
    """Attach ``logs`` to the results in ``results_dir`` (see the module docstring)."""
    root = Path(results_dir)
    if not logs:
        raise UsageError("no log to attach", hint="energybench attach RESULTS_DIR LOG...")
    store = ResultsStore(root)
    parts = store.part_files()
    runs = read_runs(root)
    meta = read_metadata(root)
    offset = _clock_offset(root, meta)
    windows = _windows(runs, root)
    parsed = _read([Path(p) for p in logs], fmt, windows, offset, parse_date(date), time_column, power_column)
    by_key = traces_of([p for log, _ in parsed for p in place(log, offset)])
    edit = _Edit()
    idle = _idle(meta, by_key, edit)
    samples = read_samples(root)
    per_run = samples.partition_by("run_id", as_dict=True) if samples.height else {}
    protocol = GpuProtocol.from_settings(meta["gpu_protocol"]) if meta.get("gpu_protocol") else None
    for row in runs.filter(pl.col("status") == "ok").iter_rows(named=True):
        if row["t_start_ns"] is None or row["t_end_ns"] is None:
            continue
        base = _baseline_before(meta, int(row["t_start_ns"]))
        _rerun(row, per_run.get((row["run_id"],)), by_key, idle.get(base, {}) if base else {}, protocol, edit)
    new_runs = runs_frame([edit.rows.get(r["run_id"], r) for r in runs.iter_rows(named=True)])
    store.rewrite(new_runs, edit.samples(samples), parts)
    records = [_record(log, how, offset, len(edit.runs_per_log.get(log.path, ()))) for log, how in parsed]
    store.update_metadata(**_metadata_changes(meta, records, by_key, idle))
    ok = new_runs.filter(pl.col("status") == "ok")
    warnings = [f"{m} {d}: {n} run(s) reach outside the log; their {d} energy is unknown"
                for (m, d), n in edit.uncovered.items()]
    if len(edit.rows) < ok.height:
        warnings.append(f"{ok.height - len(edit.rows)} of {ok.height} runs lie outside every log: unchanged")
    return AttachResult(results_dir=root, logs=records, runs_ok=ok.height, runs_updated=len(edit.rows),
                        idle_power_w={k: {f"{m}/{n}": w for (m, n), w in v.items()} for k, v in idle.items()},
                        run_totals=dict(Counter(ok["meters"].fill_null("").to_list())), warnings=warnings)
