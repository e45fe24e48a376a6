"""Sharded sweeps: one study spread over N alike machines, each running a part of its points.

``sweep --shard K/N`` runs shard K (1..N) of N. The partition is a pure function of the plan, so
every machine computes the same one from the same config, and every shard keeps the config hash
of the whole sweep (the shard is recorded beside it in ``metadata.json``, never in the config):

- the plan's points are laid out load group by load group (:func:`energybench.grid.group_by_load`,
  groups in order of first appearance), each point weighing its planned runs (warm-ups plus the
  most repetitions it can get, :meth:`Plan.repetitions_for`);
- the layout is cut into N contiguous pieces where the running total of planned runs reaches
  k/N of the whole: at the point boundary nearest that share, or at a load group's boundary when
  one lies within half a typical point's runs (the median point's) of it. Balance comes first: a
  load group is split where keeping it whole would unbalance the shards by more than that (an
  extra model load costs less than a point's runs), so at most N-1 groups are split, each cut
  misses its share by at most half a point's runs, a study of a single load group is split
  evenly, and no shard is empty while the sweep has N points or more;
- each shard runs its points in the plan's own order (grouped, shuffled or interleaved).

A sweep's identity is its config hash plus a sweep id (``--sweep-id``; a Slurm array passes its
``SLURM_ARRAY_JOB_ID``), stored in ``metadata.json``: ``report`` merges the shards of one sweep
(:mod:`energybench.report.shards`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from energybench.errors import UsageError

if TYPE_CHECKING:
    from energybench.plan import Plan
    from energybench.point import RunPoint

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise UsageError(f"--shard {self.index}/{self.count}: K must be 1..N",
                             hint="shards count from 1: a Slurm array task is "
                                  "K = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / step + 1")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/8"`` -> Shard(2, 8)."""
        m = _SPEC.match(str(text))
        if not m:
            raise UsageError(f"--shard {text!r}: expected K/N, e.g. 2/8 (shard 2 of 8)")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> Shard | None:
        s = meta.get("shard")
        return cls(int(s["index"]), int(s["count"])) if isinstance(s, Mapping) else None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _cuts(weights: Sequence[int], group_starts: set[int], count: int) -> list[int]:
    """Cut positions 0 = c0 <= c1 <= ... <= cN = len(weights) (see the module docstring)."""
    cum = [0]
    for w in weights:
        cum.append(cum[-1] + w)
    total, slack = cum[-1], (sorted(weights)[len(weights) // 2] if weights else 0)  # a typical point's runs
    bounds = sorted(group_starts | {0, len(weights)})
    cuts = [0]
    for k in range(1, count):
        target = total * k / count
        near = [i for i in bounds if abs(cum[i] - target) <= slack / 2]
        cut = min(near or range(len(cum)), key=lambda i: (abs(cum[i] - target), i))
        lo, hi = cuts[-1] + 1, len(weights) - (count - k)  # every shard gets a point while there are enough
        cuts.append(min(max(cut, lo), hi) if lo <= hi else min(lo, len(weights)))  # fewer points: one each
    return [*cuts, len(weights)]


def partition(points: Sequence[RunPoint], weight: Callable[[RunPoint], int], count: int) -> list[list[RunPoint]]:
    """The points of each of ``count`` shards (in load-group layout order)."""
    from energybench.grid import group_by_load

    groups = group_by_load(points)
    flat = [p for g in groups for p in g.points]
    starts, n = set(), 0
    for g in groups:
        starts.add(n)
        n += len(g)
    cuts = _cuts([weight(p) for p in flat], starts, count)
    return [flat[cuts[k]:cuts[k + 1]] for k in range(count)]


def apply(plan: Plan, shard: Shard) -> Plan:
    """The plan of one shard: its points in the plan's order, ``shard`` recorded."""
    parts = partition(plan.points, lambda p: plan.warmup + plan.repetitions_for(p).upper, shard.count)
    mine = {p.point_id for p in parts[shard.index - 1]}
    if not mine:
        raise UsageError(f"shard {shard} has no point: the sweep has only {len(plan.points)} point(s)",
                         hint=f"use at most {len(plan.points)} shards")
    return replace(plan, points=[p for p in plan.points if p.point_id in mine], shard=shard,
                   points_total=len(plan.points))


def metadata(plan: Plan) -> dict[str, Any] | None:
    """The ``shard`` entry of metadata.json: which part of how many, and its size."""
    if plan.shard is None:
        return None
    return {"index": plan.shard.index, "count": plan.shard.count, "points": len(plan.points),
            "points_total": plan.points_total, "runs_planned": plan.runs_total()}


def resolve(given: str | None, sweep_id: str | None, stored: Mapping[str, Any]) -> tuple[Shard | None, str | None]:
    """The shard and sweep id of a sweep: as given, else as stored when resuming (``stored``: the
    resumed directory's metadata, {} for a new sweep). A resume given another shard or sweep id
    than the stored one is refused where every resume is checked
    (:func:`energybench.engine.results_dir.open_resume`)."""
    return (Shard.parse(given) if given else Shard.from_metadata(stored)), sweep_id or stored.get("sweep_id")
