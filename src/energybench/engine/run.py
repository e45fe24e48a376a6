"""The only measuring loop: a :class:`~energybench.plan.Plan` in, a results directory out.

``measure`` runs a one-point plan through it, ``sweep`` a grid. Durable (every finished run is on
disk, fsynced and renamed, before the next starts: ``kill -9`` loses at most the run in progress)
and resumable (``resume`` runs exactly the runs without an *ok* row; failed runs are retried).
The rules it applies are the pure functions of :mod:`energybench.engine.decisions`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from energybench import amx, defaults
from energybench import events as ev
from energybench.backends import create_backend
from energybench.engine import decisions, results_dir
from energybench.engine.session import Prepared, Session, backend_mode, point_columns
from energybench.errors import UsageError
from energybench.gpu import refuse_cpu_only_offload
from energybench.metrics import row_metrics, with_run_metrics
from energybench.models import resolve_model
from energybench.plan import Plan, run_ids
from energybench.point import RunPoint
from energybench.results import ResultsStore, read_runs


@dataclass
class RunSummary:
    """What a plan's run did. Seconds for durations."""

    out_dir: Path | str  # a URL for results on object storage
    n_points: int
    n_runs_total: int  # most runs the plan can make
    n_runs_done: int  # ok runs in the directory at the end
    n_runs_this_session: int
    n_failed_runs: int
    failed_points: list[str]
    skipped_points: list[str]
    model_loads: int
    load_groups: int
    wall_s: float
    measured_s: float  # sum of run windows (what the meters attributed)
    cooldown_s: float
    idle_s: float
    load_s: float
    status: str  # finished | partial

    @property
    def partial(self) -> bool:
        return self.status != "finished"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "out_dir": str(self.out_dir)}


@dataclass
class _Tally:
    """Running totals of one session of the loop."""

    ran: int = 0
    measured_s: float = 0.0
    cooldown_s: float = 0.0
    idle_s: float = 0.0
    skipped: list[str] = field(default_factory=list)
    gaps_s: dict[str, float] = field(default_factory=dict)
    n_idle: int = 0
    last_idle_end_s: float = 0.0
    last_end_ns: int | None = None  # end of the previous run (cooldowns count from it)


def run(plan: Plan, out_dir: Path | str, *, resume: bool = False, force: bool = False, events: ev.EventSink = ev.ignore,
        backend: Any = None, selection: Any = None) -> RunSummary:
    """Run (or resume) ``plan`` into ``out_dir`` (a directory, or an ``s3://`` URL).

    ``backend``: an already started backend to use (its start can overlap config parsing);
    ``selection``: opened meters to use instead of the plan's choice. Both are closed at the end,
    whatever happens, as are the meters the engine opens itself.
    """
    from energybench.meters import select_meters
    from energybench.preflight import check_plan

    t_wall0 = time.monotonic()
    try:
        if not plan.points:
            raise UsageError("the plan has no points", hint="every grid axis needs at least one value")
        for note in check_plan(plan.points):
            events(ev.Note(note))
        store, meta, done_ok = (results_dir.open_resume(out_dir, plan, force) if resume
                                else (results_dir.open_new(out_dir), {}, set()))
        backend = backend or create_backend(plan.backend, start=True)
        selection = selection or select_meters(plan.meters, cpu_tdp_w=plan.cpu_tdp_w,
                                               allow_estimate=plan.allow_estimate)
        refuse_cpu_only_offload([p.n_gpu_layers for p in plan.points], backend.info().supports_gpu_offload,
                                [plan.config_ids.get(p.point_id, p.point_id) for p in plan.points])
        for warning in selection.warnings:
            events(ev.Note(warning))
        plan, verdict = _amx_checked(plan, backend, events)
        session = Session(store, selection, backend, sample_period_s=plan.sample_period_s, events=events,
                          sweep_id=plan.sweep_id or plan.config_hash or plan.name)
        with session:
            tally = _Tally(n_idle=len(meta.get("idle_baselines", [])))
            _start(session, plan, selection, meta, resume, force, done_ok, verdict)
            _loop(session, plan, done_ok, tally)
    finally:
        if selection is not None:
            selection.close()
        if backend is not None:
            backend.close()
    return _finish(store, plan, session, tally, time.monotonic() - t_wall0)


def _amx_checked(plan: Plan, backend: Any, events: ev.EventSink) -> tuple[Plan, amx.AmxVerdict]:
    """The plan with repacking off when this machine's AMX kernels cannot run (see :mod:`energybench.amx`)."""
    if not any(p.repack for p in plan.points):
        return plan, amx.AmxVerdict(checked=False, repack_ok=True, reason="weight repacking not asked for")
    verdict = amx.check(backend.info(), plan.backend, lambda: str(resolve_model(defaults.MODEL).path))
    if verdict.repack_ok:
        return plan, verdict
    events(ev.Note(verdict.reason))
    return replace(plan, points=[p.with_(repack=False) for p in plan.points]), verdict


def _start(session: Session, plan: Plan, selection: Any, meta: dict[str, Any], resume: bool, force: bool,
           done_ok: set[str], verdict: amx.AmxVerdict) -> None:
    """Resolve every model (syntheses and downloads happen before any measurement), write metadata."""
    for ref in dict.fromkeys(p.model for p in plan.points):
        session.events(ev.ModelResolving(model=ref))
        session.resolve(ref)
    new = results_dir.metadata(plan, backend_info=session.backend.info(), selection=selection,
                               models=session.models, sampler=session.sampler, amx=verdict.to_dict())
    if resume:
        session.store.update_metadata(**results_dir.resumed_metadata(plan, meta, new, force))
    else:
        session.store.create(new)
    if plan.gpu_protocol is not None and any(plan.protocol_for(p) for p in plan.points):
        session.events(ev.Note(plan.gpu_protocol.note(plan.repetitions.lower)))
    session.events(ev.Started(points=len(plan.points), runs=plan.runs_total(), already_done=len(done_ok),
                              out_dir=str(session.store.location), power_w=session.power_w))


def _loop(session: Session, plan: Plan, done_ok: set[str], tally: _Tally) -> None:
    _idle(session, plan, tally)
    for index, point in enumerate(plan.points):
        reps = plan.repetitions_for(point)
        pending = run_ids(point, plan.warmup, reps.upper)
        watched = _done_values(session.store.root, point, reps.metric, done_ok) if reps.adaptive else []
        if all(rid in done_ok for rid, _, _ in pending) or (watched and decisions.adaptive_stop(reps, watched)[0]):
            session.events(ev.PointAlreadyDone(index=index, point_id=point.point_id))
            continue
        session.events(ev.PointStarted(index=index, point=point))
        try:
            prep = session.prepare(point)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its point, not the sweep
            _record_unrunnable(session, point, index, pending, done_ok, str(exc))
            tally.skipped.append(point.point_id)
            continue
        _run_point(session, plan, prep, index, pending, done_ok, watched, tally)
        results_dir.record_gaps(session.store, plan, tally.gaps_s)


def _run_point(session: Session, plan: Plan, prep: Prepared, index: int, pending: list[tuple[str, int, bool]],
               done_ok: set[str], watched: list[float | None], tally: _Tally) -> None:
    """Warm-ups, then repetitions until the plan's rule says enough (or the point fails too often).
    ``watched``: the adaptive metric of the repetitions already on disk."""
    point = prep.point
    reps = plan.repetitions_for(point)
    protocol = plan.protocol_for(point)
    load_s, failures = prep.load_s, 0
    for i, (run_id, rep_index, warm) in enumerate(pending):
        if run_id in done_ok:
            continue
        left = sum(r[0] not in done_ok for r in pending[i + 1:])
        if decisions.rebaseline_due(plan.idle_every_min, tally.last_idle_end_s, time.monotonic()):
            _idle(session, plan, tally)
        if tally.last_end_ns is not None:
            tally.cooldown_s += session.cooldown(plan.cooldown, tally.last_end_ns)
        row = session.run(prep, run_id=run_id, rep_index=rep_index, is_warmup=warm, point_index=index,
                          load_s=load_s, protocol=protocol)
        load_s = None
        tally.ran += 1
        tally.last_end_ns = row.get("t_end_ns") or time.monotonic_ns()
        tally.measured_s += row.get("window_s") or 0.0
        if protocol is not None:
            tally.gaps_s[run_id] = row["gap_before_s"]
        if row["status"] != "ok":
            failures += 1
            if decisions.point_exhausted(failures, plan.max_failures):
                tally.skipped.append(point.point_id)
                session.events(ev.PointSkipped(point_id=point.point_id, failures=failures, runs_left_out=left))
                return
            continue
        done_ok.add(run_id)
        if warm or not reps.adaptive:
            continue
        watched.append(row_metrics(row, [reps.metric])[reps.metric])
        stop, ci = decisions.adaptive_stop(reps, watched)
        if stop:
            session.events(ev.AdaptiveStopped(point_id=point.point_id, reps=len(watched), ci_pct=ci, runs_left_out=left))
            return


def _idle(session: Session, plan: Plan, tally: _Tally) -> None:
    """An idle baseline (``idle-N``), when the plan asks for one."""
    if plan.idle_baseline_s > 0:
        t0 = time.monotonic()
        session.idle_baseline(plan.idle_baseline_s, name=f"idle-{tally.n_idle}")
        tally.n_idle += 1
        tally.idle_s += time.monotonic() - t0
    tally.last_idle_end_s = time.monotonic()


def _done_values(root: Path, point: RunPoint, metric: str, done_ok: set[str]) -> list[float | None]:
    """The watched metric of this point's ok repetitions already on disk (adaptive reps on resume)."""
    if not done_ok:
        return []
    runs = read_runs(root).filter((pl.col("point_id") == point.point_id) & ~pl.col("is_warmup")
                                  & (pl.col("status") == "ok"))
    return with_run_metrics(runs.lazy()).select(metric).collect()[metric].to_list()


def _record_unrunnable(session: Session, point: RunPoint, index: int, pending: list[tuple[str, int, bool]],
                       done_ok: set[str], error: str) -> None:
    """A point whose model cannot be loaded: one failed row (its first missing run) says why."""
    run_id, rep_index, warm = next((r for r in pending if r[0] not in done_ok))
    build = session.backend.info()
    mode = backend_mode(point.n_gpu_layers, None, build.supports_gpu_offload, build.devices)
    row = point_columns(point, run_id=run_id, sweep_id=session.sweep_id, point_index=index, rep_index=rep_index,
                        is_warmup=warm, backend=session.backend.name, mode=mode)
    session.store.add_run({**row, "status": "failed", "error": error, "energy_source": "none",
                           "started_at": datetime.now(UTC)})
    left = sum(r[0] not in done_ok for r in pending)
    session.events(ev.PointUnrunnable(point_id=point.point_id, error=error, runs_left_out=left))


def _finish(store: ResultsStore, plan: Plan, session: Session, tally: _Tally, wall_s: float) -> RunSummary:
    runs = read_runs(store.root)
    bad = runs.filter(pl.col("status") != "ok")
    failed_points = sorted(set(bad["point_id"].to_list()))
    status = "finished" if not failed_points and not tally.skipped else "partial"
    n_ok = runs.height - bad.height
    store.update_metadata(status=status, finished_at=datetime.now(UTC).isoformat(), n_runs_ok=n_ok, n_runs_failed=bad.height, failed_points=failed_points,
                          skipped_points=tally.skipped, model_loads=session.model_loads)
    store.consolidate()
    return RunSummary(out_dir=store.location, n_points=len(plan.points), n_runs_total=plan.runs_total(),
                      n_runs_done=n_ok, n_runs_this_session=tally.ran, n_failed_runs=bad.height,
                      failed_points=failed_points, skipped_points=tally.skipped, model_loads=session.model_loads,
                      load_groups=len({p.load_key for p in plan.points}), wall_s=wall_s,
                      measured_s=tally.measured_s, cooldown_s=tally.cooldown_s, idle_s=tally.idle_s,
                      load_s=session.model_load_s_total, status=status)
