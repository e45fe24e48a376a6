"""The sweep engine: runs a plan of points with warm-ups, repetitions, cooldowns and idle baselines,
durably (every finished run is on disk before the next starts) and resumably.

Crash safety: each run is persisted by :meth:`ResultsStore.add_run` (temp file, fsync, rename) before
the next starts, so ``kill -9`` loses at most the run in progress. ``resume`` re-runs exactly the
runs whose ``run_id`` has no *ok* row yet (failed runs are retried). The stored config hash makes a
resume with a changed config fail unless ``force`` is given (then the sweep is extended).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from energybench.backends import create_backend
from energybench.errors import ResultsError, UsageError
from energybench.gpu_protocol import GpuProtocol
from energybench.plan import RunPoint
from energybench.results import ResultsStore, read_metadata, read_runs
from energybench.runner import Session, backend_mode, run_metadata

EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Repetitions:
    """Fixed count (``adaptive=False``) or adaptive: stop when the 95% CI half-width of ``metric``
    is under ``target_ci_pct`` % of its mean, after at least ``min`` and at most ``max`` runs."""

    fixed: int = 10
    adaptive: bool = False
    target_ci_pct: float = 5.0
    min: int = 5
    max: int = 30
    metric: str = "j_per_token"

    @property
    def upper(self) -> int:
        return self.max if self.adaptive else self.fixed


@dataclass(frozen=True)
class Cooldown:
    """Fixed seconds, or until total power is within ``within_pct`` of idle for ``hold_s`` (cap ``max_s``)."""

    fixed_s: float = 0.0
    until_idle: bool = False
    within_pct: float = 10.0
    hold_s: float = 3.0
    max_s: float = 60.0


@dataclass
class SweepPlan:
    """Everything the engine needs; built from a validated config by :func:`plan_from_config`."""

    name: str
    points: list[RunPoint]  # already in execution order
    warmup: int = 1
    repetitions: Repetitions = field(default_factory=Repetitions)
    cooldown: Cooldown = field(default_factory=Cooldown)
    idle_baseline_s: float = 5.0
    idle_every_min: float | None = None
    max_failures: int = 3
    meters: list[str] | None = None
    sample_period_s: float = 0.02
    cpu_tdp_w: float | None = None
    allow_estimate: bool = True
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    #: GPU measurement protocol for points that offload (None: none); ``plan_from_config`` has
    #: already raised those points' ``min_window_s``; :meth:`repetitions_for` raises their trials.
    gpu_protocol: GpuProtocol | None = None

    def repetitions_for(self, point: RunPoint) -> Repetitions:
        """The repetitions of one point: the plan's, with at least ``gpu_protocol.min_trials``
        measured runs for a point that offloads (fixed count, or adaptive min and max)."""
        r, proto = self.repetitions, self.gpu_protocol
        if proto is None or not proto.applies_to(point.n_gpu_layers):
            return r
        if not r.adaptive:
            return Repetitions(fixed=proto.trials(point.n_gpu_layers, r.fixed))
        lo = proto.trials(point.n_gpu_layers, r.min)
        return Repetitions(fixed=max(r.max, lo), adaptive=True, target_ci_pct=r.target_ci_pct, min=lo,
                           max=max(r.max, lo), metric=r.metric)

    def runs_total(self) -> int:
        """Most runs the plan can make (warm-ups included; adaptive points at their maximum)."""
        return sum(len(run_ids_for(p, self.warmup, self.repetitions_for(p).upper)) for p in self.points)


@dataclass
class SweepResult:
    out_dir: Path
    n_points: int
    n_runs_total: int
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
        d = dict(self.__dict__)
        d["out_dir"] = str(self.out_dir)
        return d


def run_ids_for(point: RunPoint, warmup: int, reps: int) -> list[tuple[str, int, bool]]:
    """(run_id, rep_index, is_warmup) of every run of a point, warm-ups first."""
    ids = [(f"{point.point_id}-w{i:03d}", i, True) for i in range(warmup)]
    ids += [(f"{point.point_id}-r{i:03d}", i, False) for i in range(reps)]
    return ids


def ci_half_width_pct(values: list[float]) -> float:
    """95% CI half-width of the mean (Student t), in % of the mean; inf when undefined."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if len(vals) < 2:
        return math.inf
    from scipy import stats

    n = len(vals)
    mean = sum(vals) / n
    if mean == 0:
        return math.inf
    sd = (sum((v - mean) ** 2 for v in vals) / (n - 1)) ** 0.5
    half = float(stats.t.ppf(0.975, n - 1)) * sd / n ** 0.5
    return abs(half / mean) * 100.0


def _metric_value(row: dict[str, Any], metric: str) -> float | None:
    if metric == "j_per_token":
        e, n = row.get("energy_j"), row.get("n_gen_tokens")
        return e / n if e is not None and n else None
    if metric == "j_per_token_net":
        e, n = row.get("energy_net_j"), row.get("n_gen_tokens")
        return e / n if e is not None and n else None
    return row.get(metric)


def _check_resume(store: ResultsStore, plan: SweepPlan, force: bool) -> dict[str, Any]:
    meta = read_metadata(store.root)
    if not meta:
        raise ResultsError(f"{str(store.root)!r} has no metadata.json: nothing to resume",
                           hint="start a new sweep with --out")
    old = meta.get("config_hash")
    if old and old != plan.config_hash and not force:
        raise ResultsError(
            f"the config changed since this sweep started (hash {old} -> {plan.config_hash})",
            hint="resume with the original config, or pass --force to extend the sweep with the new one")
    return meta


def run_sweep(plan: SweepPlan, out_dir: Path, *, resume: bool = False, force: bool = False,
              events: EventSink | None = None, backend_env: dict[str, str] | None = None,
              backend: Any = None) -> SweepResult:
    """Run (or resume) a sweep into ``out_dir``. Never loses a finished run.

    ``backend``: an already created (e.g. pre-started) backend to use; it is closed at the end.
    """
    from energybench.meters import select_meters

    events = events or (lambda kind, payload: None)
    t_wall0 = time.monotonic()
    out_dir = Path(out_dir)
    store = ResultsStore(out_dir)
    if not plan.points:
        raise UsageError("the sweep has no points", hint="every grid axis needs at least one value")
    if resume:
        meta = _check_resume(store, plan, force)
        store.remove_stale_temp_files()
    else:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise UsageError(f"output directory {str(out_dir)!r} already holds results",
                             hint=f"resume it with `energybench sweep --resume {out_dir}` or choose another --out")
        meta = {}

    # Durable state: which runs are already done (ok). Failed runs are retried.
    done_ok: set[str] = set()
    if resume:
        try:
            existing = read_runs(out_dir)
            done_ok = set(existing.filter(pl.col("status") == "ok")["run_id"].to_list())
        except ResultsError:
            done_ok = set()

    if backend is None:
        backend = create_backend(plan.points[0].backend, start=True, **({"env": backend_env} if backend_env else {}))
    try:
        selection = select_meters(plan.meters, cpu_tdp_w=plan.cpu_tdp_w, allow_estimate=plan.allow_estimate)
    except BaseException:
        backend.close()
        raise
    try:
        info = backend.info()
        offload = sorted({p.n_gpu_layers for p in plan.points if p.n_gpu_layers != 0})
        if offload and not info.supports_gpu_offload:
            raise UsageError(
                f"the grid offloads layers to the GPU (n_gpu_layers {offload}), but the installed llama-cpp-python "
                "is a CPU-only build", hint="install a CUDA build (docs/cuda.md) or use n_gpu_layers: [0]")
        session = Session(store, selection, sample_period_s=plan.sample_period_s, backend=backend, events=events,
                          sweep_id=plan.config_hash or plan.name)
    except BaseException:
        backend.close()
        raise

    n_total = plan.runs_total()
    protocol = plan.gpu_protocol
    gpu_points = [p.point_id for p in plan.points if protocol is not None and protocol.applies_to(p.n_gpu_layers)]
    failures: dict[str, int] = {}
    skipped: list[str] = []
    ran = 0
    measured_s = cooldown_s = idle_s = 0.0
    with session:
        # resolve every model first: syntheses and downloads happen before the first measurement
        models = {}
        for ref in dict.fromkeys(p.model for p in plan.points):
            events("resolve", {"model": ref})
            models[ref] = session.resolve(ref)
        new_meta = run_metadata(kind="sweep", backend_info=info, selection=selection, models=models,
                                config=plan.config, config_hash=plan.config_hash, sampler=session.sampler)
        gaps_s: dict[str, float] = dict((meta.get("gpu_protocol") or {}).get("gaps_s") or {}) if resume else {}
        if protocol is not None:
            new_meta["gpu_protocol"] = protocol.metadata(point_ids=gpu_points, gaps_s=gaps_s)
        if resume:
            resumes = list(meta.get("resumes", [])) + [{"at": datetime.now(UTC).isoformat(),
                                                        "config_hash": plan.config_hash, "forced": force}]
            extra = {"gpu_protocol": new_meta["gpu_protocol"]} if protocol is not None else {}
            store.update_metadata(resumes=resumes, status="running", config_hash=plan.config_hash,
                                  config=plan.config, models={**meta.get("models", {}), **new_meta["models"]}, **extra)
        else:
            store.create(new_meta)
        events("start", {"points": len(plan.points), "runs": n_total, "already_done": len(done_ok),
                         "out_dir": str(out_dir), "sampler": session.sampler})
        n_idle = len(meta.get("idle_baselines", [])) if resume else 0
        t_idle = time.monotonic()
        idle_s += _idle(session, plan, n_idle)
        n_idle += 1
        last_run_ended = False
        last_end_ns = 0
        for index, point in enumerate(plan.points):
            reps = plan.repetitions_for(point)
            pending = run_ids_for(point, plan.warmup, reps.upper)
            if all(rid in done_ok for rid, _, _ in pending):
                events("point_skip_done", {"point_id": point.point_id, "index": index})
                continue
            events("point", {"index": index, "point": point, "point_id": point.point_id})
            try:
                prep = session.prepare(point)
            except UsageError:
                raise
            except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its point, not the sweep
                failures[point.point_id] = failures.get(point.point_id, 0) + 1
                skipped.append(point.point_id)
                events("point_failed", {"point_id": point.point_id, "error": str(exc)})
                _record_unrunnable(session, point, index, pending, done_ok, str(exc))
                continue
            load_pending = prep.load_s
            metric_vals: list[float] = []
            if reps.adaptive:
                metric_vals = _done_metric_values(out_dir, point, reps.metric, done_ok)
            for run_id, rep_index, warm in pending:
                if not warm and reps.adaptive and rep_index >= reps.min:
                    if ci_half_width_pct(metric_vals) <= reps.target_ci_pct:
                        events("adaptive_stop", {"point_id": point.point_id, "reps": rep_index})
                        break
                if run_id in done_ok:
                    continue
                if plan.idle_every_min and time.monotonic() - t_idle > plan.idle_every_min * 60:
                    idle_s += _idle(session, plan, n_idle)
                    n_idle += 1
                    t_idle = time.monotonic()
                if last_run_ended:
                    cooldown_s += _cool(session, plan.cooldown, since_ns=last_end_ns)
                row = session.run(prep, run_id=run_id, rep_index=rep_index, is_warmup=warm, point_index=index,
                                  load_s=load_pending, protocol=protocol)
                load_pending = None
                last_run_ended = True
                last_end_ns = int(row.get("t_end_ns") or time.monotonic_ns())
                ran += 1
                if row.get("window_s"):
                    measured_s += row["window_s"]
                if row["status"] == "ok":
                    done_ok.add(run_id)
                    if not warm:
                        v = _metric_value(row, reps.metric)
                        if v is not None:
                            metric_vals.append(v)
                else:
                    failures[point.point_id] = failures.get(point.point_id, 0) + 1
                    events("run_failed", {"run_id": run_id, "error": row.get("error")})
                    if failures[point.point_id] >= plan.max_failures:
                        skipped.append(point.point_id)
                        events("point_skipped", {"point_id": point.point_id, "failures": failures[point.point_id]})
                        break
                    # a crashed worker is replaced; its model is reloaded inside session.run
            if session.gaps_s:  # the pauses this point took (they are also recomputable: GpuProtocol.gap_s)
                gaps_s.update(session.gaps_s)
                session.gaps_s.clear()
                store.update_metadata(gpu_protocol=protocol.metadata(point_ids=gpu_points, gaps_s=gaps_s))
        model_loads = session.model_loads
        load_s = session.model_load_s_total

    runs = read_runs(out_dir)
    n_ok = runs.filter(pl.col("status") == "ok").height
    n_failed = runs.filter(pl.col("status") != "ok").height
    failed_points = sorted(set(runs.filter(pl.col("status") != "ok")["point_id"].to_list()))
    status = "finished" if not failed_points and not skipped else "partial"
    summary = {"status": status, "finished_at": datetime.now(UTC).isoformat(), "n_runs_ok": n_ok,
               "n_runs_failed": n_failed, "failed_points": failed_points, "skipped_points": skipped,
               "model_loads": model_loads}
    store.update_metadata(**summary)
    store.consolidate()
    groups = len({p.load_key for p in plan.points})
    return SweepResult(out_dir=out_dir, n_points=len(plan.points), n_runs_total=n_total, n_runs_done=n_ok,
                       n_runs_this_session=ran, n_failed_runs=n_failed, failed_points=failed_points,
                       skipped_points=skipped, model_loads=model_loads, load_groups=groups,
                       wall_s=time.monotonic() - t_wall0, measured_s=measured_s, cooldown_s=cooldown_s,
                       idle_s=idle_s, load_s=load_s, status=status)


def _idle(session: Session, plan: SweepPlan, n: int) -> float:
    if plan.idle_baseline_s <= 0:
        return 0.0
    t0 = time.monotonic()
    session.idle_baseline(plan.idle_baseline_s, name=f"idle-{n}")
    return time.monotonic() - t0


def _cool(session: Session, c: Cooldown, *, since_ns: int) -> float:
    """Pause between runs; returns the seconds counted as cooldown.

    A fixed cooldown is the pause from the end of the previous run (``since_ns``) to the start of
    the next: the time spent storing that run's results is part of it, not added to it.
    """
    if c.until_idle:
        t0 = time.monotonic()
        session.cooldown_until_idle(c.within_pct, c.hold_s, c.max_s)
        return time.monotonic() - t0
    if c.fixed_s <= 0:
        return 0.0
    spent = max(0.0, (time.monotonic_ns() - since_ns) / 1e9)
    session.cooldown(c.fixed_s - spent)
    return min(c.fixed_s, max(spent, (time.monotonic_ns() - since_ns) / 1e9))


def _done_metric_values(out_dir: Path, point: RunPoint, metric: str, done_ok: set[str]) -> list[float]:
    """Metric values of this point's ok repetitions already on disk (adaptive reps on resume)."""
    try:
        runs = read_runs(out_dir).filter((pl.col("point_id") == point.point_id) & ~pl.col("is_warmup")
                                         & (pl.col("status") == "ok"))
    except ResultsError:
        return []
    vals = [_metric_value(r, metric) for r in runs.iter_rows(named=True)]
    return [v for v in vals if v is not None]


def _record_unrunnable(session: Session, point: RunPoint, index: int, pending: list[tuple[str, int, bool]],
                       done_ok: set[str], error: str) -> None:
    """A point whose model cannot be loaded: one failed row (its first missing run) says why."""
    for run_id, rep_index, warm in pending:
        if run_id in done_ok:
            continue
        mode = backend_mode(point.n_gpu_layers, _n_layer_or_none(session, point),
                            bool(getattr(session.backend.info(), "supports_gpu_offload", False)))
        row = {"run_id": run_id, "sweep_id": session.sweep_id, "point_id": point.point_id, "point_index": index,
               "rep_index": rep_index, "is_warmup": warm, "status": "failed", "error": error,
               "started_at": datetime.now(UTC), "model": point.model, "backend": session.backend.name,
               "backend_mode": mode,
               "load_group": point.load_key, "n_threads": point.n_threads, "n_gpu_layers": point.n_gpu_layers,
               "n_batch": point.n_batch, "n_ubatch": point.n_ubatch, "n_gen": point.n_gen, "seed": point.seed,
               "energy_source": "none"}
        session.store.add_run(row)
        return


def _n_layer_or_none(session: Session, point: RunPoint) -> int | None:
    """The model's layer count from its GGUF header, or None when the model cannot be read."""
    try:
        from energybench.models.gguf_check import read_gguf_info

        info = read_gguf_info(session.resolve(point.model).path)
        value = info.metadata.get(f"{info.architecture}.block_count")
        return int(value) if isinstance(value, int) else None
    except Exception:  # noqa: BLE001 - the point failed already; its mode is a best effort
        return None


def plan_from_config(config: Any) -> SweepPlan:
    """The engine's plan from a validated :class:`~energybench.sweep.config.SweepConfig`."""
    from energybench.sweep.config import config_hash
    from energybench.sweep.grid import plan as expand_and_order

    r, cd = config.repetitions, config.cooldown
    if r.fixed is not None:
        reps = Repetitions(fixed=r.fixed)
    else:
        a = r.adaptive
        reps = Repetitions(fixed=a.max, adaptive=True, target_ci_pct=a.target_ci_pct, min=a.min, max=a.max,
                           metric=a.metric)
    if cd.fixed_s is not None:
        cool = Cooldown(fixed_s=cd.fixed_s)
    else:
        u = cd.until_idle
        cool = Cooldown(until_idle=True, within_pct=u.within_pct, hold_s=u.hold_s, max_s=u.max_s)
    points = expand_and_order(config)
    if config.min_window_s:
        points = [p.with_(min_window_s=config.min_window_s) for p in points]
    protocol = None
    settings = getattr(config, "gpu_protocol", None)
    if settings is not None and settings.enabled:
        protocol = GpuProtocol.from_settings(settings)
        points = [protocol.apply_to_point(p) for p in points]
    return SweepPlan(
        name=config.name, points=points, warmup=config.warmup, repetitions=reps, cooldown=cool,
        idle_baseline_s=config.idle_baseline_s, idle_every_min=config.idle_every_min,
        max_failures=config.max_failures, meters=None if config.meters == "auto" else list(config.meters),
        sample_period_s=config.sample_period_ms / 1000.0, cpu_tdp_w=config.cpu_tdp_w,
        config=config.normalized(), config_hash=config_hash(config), gpu_protocol=protocol,
    )
