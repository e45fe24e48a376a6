"""A plan: the points to run, in order, and the rules the engine applies to them.

``measure`` and ``sweep`` both resolve a config (:mod:`energybench.config`) and turn it into a
:class:`Plan` here; ``measure``'s plan has one point. The engine (:mod:`energybench.engine`) runs
any plan the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from energybench import defaults
from energybench.gpu_protocol import GpuProtocol
from energybench.point import PromptSpec, RunPoint  # noqa: F401 - re-exported for callers of the plan


@dataclass(frozen=True)
class Repetitions:
    """Fixed count (``adaptive=False``) or adaptive: stop at the first repetition, from ``min`` on,
    where the 95% CI half-width of ``metric`` is within ``target_ci_pct`` % of its mean; never more
    than ``max``."""

    fixed: int = defaults.REPETITIONS
    adaptive: bool = False
    target_ci_pct: float = defaults.ADAPTIVE_TARGET_CI_PCT
    min: int = defaults.ADAPTIVE_MIN
    max: int = defaults.ADAPTIVE_MAX
    metric: str = defaults.ADAPTIVE_METRIC

    @property
    def upper(self) -> int:
        """The most measured repetitions a point can get."""
        return self.max if self.adaptive else self.fixed

    @property
    def lower(self) -> int:
        """The fewest measured repetitions a point gets (when none fails)."""
        return self.min if self.adaptive else self.fixed


@dataclass(frozen=True)
class Cooldown:
    """Fixed seconds from the end of one run to the start of the next, or until total power is
    within ``within_pct`` of idle for ``hold_s`` (at most ``max_s``)."""

    fixed_s: float = 0.0
    until_idle: bool = False
    within_pct: float = defaults.UNTIL_IDLE_WITHIN_PCT
    hold_s: float = defaults.UNTIL_IDLE_HOLD_S
    max_s: float = defaults.UNTIL_IDLE_MAX_S


@dataclass(frozen=True)
class Plan:
    """Everything the engine needs to run; built from a validated config by :func:`plan_from_config`."""

    name: str
    points: list[RunPoint]  # in execution order
    kind: str = "sweep"  # the command that made it: measure | sweep (recorded in metadata)
    warmup: int = defaults.WARMUP
    repetitions: Repetitions = field(default_factory=Repetitions)
    cooldown: Cooldown = field(default_factory=Cooldown)
    idle_baseline_s: float = defaults.IDLE_BASELINE_S
    idle_every_min: float | None = None
    max_failures: int = defaults.MAX_FAILURES
    meters: list[str] | None = None  # None: automatic choice
    sample_period_s: float = defaults.SAMPLE_PERIOD_MS / 1000.0
    cpu_tdp_w: float | None = None
    allow_estimate: bool = True
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    #: the GPU measurement protocol for points that offload (None: off); its minimum window is
    #: already in those points, :meth:`repetitions_for` adds its trials
    gpu_protocol: GpuProtocol | None = None
    #: point_id -> configuration id (``cpu-t4``; :func:`energybench.grid.configuration_ids`)
    config_ids: dict[str, str] = field(default_factory=dict)
    #: points of the config left out because they need a GPU and ``cpu_only`` is set
    left_out: list[RunPoint] = field(default_factory=list)
    #: the part of a sharded sweep this plan runs (:mod:`energybench.shard`; None: all of it)
    shard: Any = None
    points_total: int = 0  # points of the whole sweep (a shard runs some of them)
    sweep_id: str = ""  # the sweep's identity beside its config hash ("": the config hash)

    @property
    def backend(self) -> str:
        return self.points[0].backend if self.points else "llama.cpp"

    def repetitions_for(self, point: RunPoint) -> Repetitions:
        """The plan's repetitions, with at least the GPU protocol's trials for a point that offloads."""
        r, proto = self.repetitions, self.gpu_protocol
        if proto is None or not proto.applies_to(point.n_gpu_layers):
            return r
        if not r.adaptive:
            return Repetitions(fixed=proto.trials(point.n_gpu_layers, r.fixed))
        lo = proto.trials(point.n_gpu_layers, r.min)
        return Repetitions(adaptive=True, target_ci_pct=r.target_ci_pct, min=lo, max=max(r.max, lo), metric=r.metric)

    def protocol_for(self, point: RunPoint) -> GpuProtocol | None:
        """The GPU protocol when it applies to ``point``, else None."""
        proto = self.gpu_protocol
        return proto if proto is not None and proto.applies_to(point.n_gpu_layers) else None

    def runs_total(self) -> int:
        """Most runs the plan can make (warm-ups included; adaptive points at their maximum)."""
        return sum(len(run_ids(p, self.warmup, self.repetitions_for(p).upper)) for p in self.points)


def run_ids(point: RunPoint, warmup: int, reps: int) -> list[tuple[str, int, bool]]:
    """(run_id, rep_index, is_warmup) of every run of a point, warm-ups first."""
    ids = [(f"{point.point_id}-w{i:03d}", i, True) for i in range(warmup)]
    ids += [(f"{point.point_id}-r{i:03d}", i, False) for i in range(reps)]
    return ids


def _repetitions(r: Any) -> Repetitions:
    if r.fixed is not None:
        return Repetitions(fixed=r.fixed)
    a = r.adaptive
    return Repetitions(adaptive=True, target_ci_pct=a.target_ci_pct, min=a.min, max=a.max, metric=a.metric)


def _cooldown(c: Any) -> Cooldown:
    if c.fixed_s is not None:
        return Cooldown(fixed_s=c.fixed_s)
    u = c.until_idle
    return Cooldown(until_idle=True, within_pct=u.within_pct, hold_s=u.hold_s, max_s=u.max_s)


def plan_from_config(config: Any, *, kind: str = "sweep", shard: Any = None, sweep_id: str | None = None) -> Plan:
    """The plan of a validated :class:`~energybench.config.SweepConfig`: its grid expanded and
    ordered, the GPU protocol's window applied to the points that offload; with ``shard``
    (:class:`energybench.shard.Shard`), that shard's part of the points."""
    from energybench.config import config_hash
    from energybench.gpu import needs_gpu
    from energybench.grid import configuration_ids, plan_points

    points = plan_points(config)
    ids = configuration_ids(config)
    left_out = [p for p in points if config.cpu_only and needs_gpu(p.n_gpu_layers)]
    points = [p for p in points if not (config.cpu_only and needs_gpu(p.n_gpu_layers))]
    protocol = GpuProtocol.from_settings(config.gpu_protocol) if config.gpu_protocol.enabled else None
    if protocol is not None:
        applied = [protocol.apply_to_point(p) for p in points]
        ids |= {q.point_id: ids[p.point_id] for p, q in zip(points, applied, strict=True)}
        points = applied
    plan = Plan(
        name=config.name, points=points, kind=kind, warmup=config.warmup,
        repetitions=_repetitions(config.repetitions), cooldown=_cooldown(config.cooldown),
        idle_baseline_s=config.idle_baseline_s, idle_every_min=config.idle_every_min,
        max_failures=config.max_failures, meters=None if config.meters == "auto" else list(config.meters),
        sample_period_s=config.sample_period_ms / 1000.0, cpu_tdp_w=config.cpu_tdp_w,
        allow_estimate=config.allow_estimate, config=config.normalized(), config_hash=config_hash(config),
        gpu_protocol=protocol, config_ids=ids, left_out=left_out, points_total=len(points), sweep_id=sweep_id or "",
    )
    if shard is None:
        return plan
    from energybench import shard as sharding

    return sharding.apply(plan, shard)


@dataclass(frozen=True)
class GridSummary:
    """One grid of a config, as ``energybench config validate`` counts it."""

    index: int  # 1-based
    label: str | None
    axis_sizes: dict[str, int]
    n_points: int
    n_shared: int  # of n_points, made by an earlier grid too (they run once)
    configurations: list[str]  # configuration ids, in expansion order


@dataclass(frozen=True)
class PlanSummary:
    """What a config will run (``energybench config validate``). Durations in seconds."""

    name: str
    config_hash: str
    n_models: int
    n_points: int
    n_load_groups: int
    n_loads: int  # model loads in execution order (> groups when interleaved)
    warmup_per_point: int
    reps_min: int  # measured repetitions per point (fixed: min == max)
    reps_max: int
    runs_min: int  # all runs incl. warm-ups
    runs_max: int
    axis_sizes: dict[str, int] = field(default_factory=dict)
    order: str = defaults.ORDER
    est_min_duration_s: float = 0.0  # idle baselines + cooldowns + min windows + gaps; inference not included
    cooldown: str = ""
    #: per grid: label, varied axis sizes, points (and how many an earlier grid already has), ids
    grids: list[GridSummary] = field(default_factory=list)
    n_configurations: int = 0  # distinct configuration ids
    left_out: list[str] = field(default_factory=list)  # ids left out by cpu_only (they need a GPU)
    n_left_out_points: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(config: Any) -> PlanSummary:
    """Counts of points, load groups and runs of ``config``, and a lower bound on its duration, from
    the engine's own plan (points that offload get the GPU protocol's trials, window and gaps)."""
    from energybench.config import estimate_note
    from energybench.grid import count_loads, group_by_load

    plan = plan_from_config(config)
    reps = [plan.repetitions_for(p) for p in plan.points]
    busy = 0.0
    for p, r in zip(plan.points, reps, strict=True):
        proto = plan.protocol_for(p)
        gap = proto.random_gap_s[0] if proto is not None else 0.0
        busy += (plan.warmup + r.lower) * (config.cooldown.min_s + p.min_window_s + gap)
    idle = plan.idle_baseline_s
    if plan.idle_every_min and plan.idle_baseline_s > 0:  # one more baseline every idle_every_min of run time
        idle += (busy // (plan.idle_every_min * 60.0)) * plan.idle_baseline_s
    return PlanSummary(
        name=plan.name, config_hash=plan.config_hash, n_models=len(config.models), n_points=len(plan.points),
        n_load_groups=len(group_by_load(plan.points)), n_loads=count_loads(plan.points), warmup_per_point=plan.warmup,
        reps_min=min((r.lower for r in reps), default=0), reps_max=max((r.upper for r in reps), default=0),
        runs_min=sum(plan.warmup + r.lower for r in reps), runs_max=sum(plan.warmup + r.upper for r in reps),
        axis_sizes=config.all_grids()[0].axis_sizes(), order=config.order, est_min_duration_s=float(busy + idle),
        cooldown=estimate_note(config), grids=grid_summaries(config, plan.config_ids),
        n_configurations=len(set(plan.config_ids.values())),
        left_out=left_out_ids(plan),
        n_left_out_points=len(plan.left_out),
    )


def grid_summaries(config: Any, ids: dict[str, str]) -> list[GridSummary]:
    """Per grid of ``config``: its varied axes, points, points an earlier grid already makes, ids."""
    from energybench.grid import grid_point_ids

    out: list[GridSummary] = []
    seen: set[str] = set()
    for i, (g, pids) in enumerate(zip(config.all_grids(), grid_point_ids(config), strict=True), start=1):
        out.append(GridSummary(index=i, label=getattr(g, "label", None), axis_sizes=g.axis_sizes(),
                               n_points=len(pids), n_shared=sum(p in seen for p in pids),
                               configurations=list(dict.fromkeys(ids[p] for p in pids if p in ids))))
        seen.update(pids)
    return out


def left_out_ids(plan: Plan) -> list[str]:
    """The configuration ids ``cpu_only`` left out, in the config's order."""
    out = {plan.config_ids[p.point_id] for p in plan.left_out}
    return [cid for cid in dict.fromkeys(plan.config_ids.values()) if cid in out]
