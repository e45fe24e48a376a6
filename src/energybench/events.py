"""What the engine tells its presentation while it measures: one typed event per happening.

The engine emits these and nothing else; a view (the CLI's live display, a JSON log, a test's list)
receives each through an :data:`EventSink`. A view must handle or deliberately ignore every type in
:data:`ALL_EVENTS` (the CLI keeps that table in one place).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Started:
    """The engine is ready: ``runs`` is the most runs the plan can make (warm-ups included)."""

    points: int
    runs: int
    already_done: int
    out_dir: str
    #: current power per domain in W (the sampler's last reading); for live displays
    power_w: Callable[[], Mapping[str, float]] = field(compare=False, repr=False)


@dataclass(frozen=True)
class ModelResolving:
    model: str


@dataclass(frozen=True)
class IdleStarted:
    seconds: float
    name: str


@dataclass(frozen=True)
class ModelLoaded:
    model: str
    seconds: float


@dataclass(frozen=True)
class PointStarted:
    index: int
    point: Any  # energybench.point.RunPoint


@dataclass(frozen=True)
class PointAlreadyDone:
    """A resumed sweep found every run of this point on disk."""

    index: int
    point_id: str


@dataclass(frozen=True)
class PointUnrunnable:
    """The point could not be prepared (its model failed to load): one failed row says why."""

    point_id: str
    error: str
    runs_left_out: int  # planned runs of this point that will not happen


@dataclass(frozen=True)
class CooldownStarted:
    seconds: float | None  # None: until power is back near idle (at most ``max_s``)
    max_s: float | None = None


@dataclass(frozen=True)
class GapStarted:
    """The GPU protocol's random pause before a run."""

    run_id: str
    seconds: float


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    warmup: bool


@dataclass(frozen=True)
class RunFinished:
    """A run is on disk. ``row`` is its runs.parquet row; ``metrics`` its headline metrics."""

    run_id: str
    ok: bool
    row: Mapping[str, Any] = field(repr=False)
    metrics: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class AdaptiveStopped:
    """The watched metric's CI got within target: no more repetitions of this point."""

    point_id: str
    reps: int
    ci_pct: float
    runs_left_out: int  # planned runs of this point that will not happen


@dataclass(frozen=True)
class PointSkipped:
    """Too many failed runs: the rest of this point is skipped."""

    point_id: str
    failures: int
    runs_left_out: int  # planned runs of this point that will not happen


@dataclass(frozen=True)
class Note:
    """Something the user should know while the run goes on (not an error)."""

    message: str


Event = (Started | ModelResolving | IdleStarted | ModelLoaded | PointStarted | PointAlreadyDone | PointUnrunnable
         | CooldownStarted | GapStarted | RunStarted | RunFinished | AdaptiveStopped | PointSkipped | Note)
ALL_EVENTS: tuple[type, ...] = Event.__args__  # type: ignore[attr-defined]
EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink that shows nothing."""
    return None
