"""Grid expansion and run order: a :class:`SweepConfig` → an ordered list of :class:`RunPoint`.

- :func:`expand` — the cartesian product of every axis, models outermost, then the load-time axes
  (``n_gpu_layers``, ``main_gpu``, ``repack``, ``use_mmap``), then the runtime axes. Points of one
  model and load setting are therefore contiguous, and the order is deterministic.
- :func:`group_by_load` — points that share :attr:`RunPoint.load_key` (one model load each).
- :func:`order_points` — ``grouped`` (expansion order), ``shuffled`` (each load group's points in
  a seeded random order; groups keep their order, so each model is still loaded once) or
  ``interleaved`` (round-robin across load groups, each group shuffled: slow drift such as heat
  soak is spread over every group, at the price of a model load per point when groups alternate).
- :func:`plan_points` — expand + order with the config's ``order``/``order_seed``.

Point ids are :attr:`RunPoint.point_id` (a hash of every field): stable across processes, so a
resumed sweep recognises its finished points whatever the order.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from energybench.config import ORDERS, SweepConfig, prompt_specs
from energybench.defaults import LLAMA_DEFAULT_UBATCH
from energybench.errors import ConfigError
from energybench.point import LOAD_FIELDS, RunPoint


@dataclass(frozen=True)
class LoadGroup:
    """Points that share one model load (equal :attr:`RunPoint.load_key`), in their given order."""

    key: str
    points: tuple[RunPoint, ...]

    def __len__(self) -> int:
        return len(self.points)


def resolved_ubatch(n_batch: int, ubatch: int | None) -> int:
    """``ubatch: auto`` → llama.cpp's default n_ubatch (512) clamped to n_batch."""
    return min(n_batch, LLAMA_DEFAULT_UBATCH) if ubatch is None else ubatch


def expand(config: SweepConfig) -> list[RunPoint]:
    """Every grid point of ``config``, models outermost, load-time axes next (deterministic order).

    Duplicate points (equal ``point_id``) cannot arise from a validated config (axis values are
    distinct); if one did, only its first occurrence is kept.
    """
    g = config.grid
    prompts = prompt_specs(g.prompt)
    points: list[RunPoint] = []
    seen: set[str] = set()
    load_axes = itertools.product(config.models, g.n_gpu_layers, g.main_gpu, g.repack, g.use_mmap)
    for model, ngl, main_gpu, repack, use_mmap in load_axes:
        runtime = itertools.product(g.threads, g.threads_batch, g.batch, g.ubatch, g.flash_attn, g.n_ctx,
                                    g.offload_kqv, prompts, g.n_gen, g.seed)
        for threads, threads_batch, batch, ubatch, fa, n_ctx, kqv, prompt, n_gen, seed in runtime:
            point = RunPoint(
                model=model, backend=config.backend, n_gpu_layers=ngl, main_gpu=main_gpu, repack=repack,
                use_mmap=use_mmap, n_threads=threads, n_threads_batch=threads_batch, n_batch=batch,
                n_ubatch=resolved_ubatch(batch, ubatch), flash_attn=fa, n_ctx=n_ctx, offload_kqv=kqv,
                prompt=prompt, n_gen=n_gen, seed=seed, min_window_s=config.min_window_s,
            )
            pid = point.point_id
            if pid not in seen:
                seen.add(pid)
                points.append(point)
    return points


def group_by_load(points: Iterable[RunPoint]) -> list[LoadGroup]:
    """Group points by :attr:`RunPoint.load_key`, groups in order of first appearance, points in
    their given order within a group."""
    groups: dict[str, list[RunPoint]] = {}
    for p in points:
        groups.setdefault(p.load_key, []).append(p)
    return [LoadGroup(key=k, points=tuple(v)) for k, v in groups.items()]


def _rng(seed: int, key: str) -> random.Random:
    """A random generator seeded from (seed, group key): the same in every process."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _shuffled(group: LoadGroup, seed: int) -> list[RunPoint]:
    # Sort by point_id first so the result depends only on the set of points, not their input order.
    pts = sorted(group.points, key=lambda p: p.point_id)
    _rng(seed, group.key).shuffle(pts)
    return pts


def order_points(points: Sequence[RunPoint], order: str, seed: int = 0) -> list[RunPoint]:
    """Order points for execution.

    ``grouped``: load groups in order of first appearance, points in their given order.
    ``shuffled``: same group order, each group's points in a random order seeded by ``seed`` and
    the group (a permutation within each group; a model is still loaded once per group).
    ``interleaved``: each group shuffled as above, then one point from each group in turn
    (round-robin; groups that run out drop out), so drift over time is spread across groups.
    """
    if order not in ORDERS:
        raise ConfigError(f"order = {order!r}: must be one of {', '.join(ORDERS)}")
    groups = group_by_load(points)
    if order == "grouped":
        return [p for g in groups for p in g.points]
    shuffled = [_shuffled(g, seed) for g in groups]
    if order == "shuffled":
        return [p for pts in shuffled for p in pts]
    out: list[RunPoint] = []
    for layer in itertools.zip_longest(*shuffled):
        out.extend(p for p in layer if p is not None)
    return out


def plan_points(config: SweepConfig) -> list[RunPoint]:
    """The points of ``config`` in execution order (``config.order``, ``config.order_seed``)."""
    return order_points(expand(config), config.order, config.order_seed)


def count_loads(ordered: Sequence[RunPoint]) -> int:
    """Model loads needed to run ``ordered`` in that order (a load whenever the load key changes)."""
    loads, last = 0, None
    for p in ordered:
        if p.load_key != last:
            loads += 1
            last = p.load_key
    return loads
