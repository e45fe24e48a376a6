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
- :class:`IdScheme` / :func:`id_schemes` / :func:`configuration_id` — the configuration ids.

A config with ``grids:`` runs the union of its grids, in their order; a point that two grids share
(equal ``point_id``) runs once, for the first grid that has it.

Configuration ids follow the scheme of the study energybench grew from (its config/p2_ablation.yaml:
``cpu-t1``, ``gpu-l11``, ``gpu-b512``): a grid has a ``label`` and a ``base`` point; a
configuration that differs from its grid's base in one axis is ``<label>-<code><value>`` (the base
itself takes its grid's first varying axis), one that differs in several is the compact
``<label>.<code><value>.<code><value>`` (``cpu.t8.b1024``: never read as one of the study's
one-factor ids), and a grid that varies nothing is just ``<label>``. Codes: :data:`ID_AXES`. The
label defaults to ``cpu`` for a point with ``n_gpu_layers`` 0 and ``gpu`` otherwise; the base to
the first value of every axis. Model and prompt are not part of a configuration id.

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

from energybench.config import ORDERS, Grid, SweepConfig, prompt_specs
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
    """Every point of ``config``'s grids, grid after grid; in each, models outermost, load-time axes
    next (deterministic order). A point already made by an earlier grid (equal ``point_id``) is kept
    once, where it first appears."""
    points: list[RunPoint] = []
    seen: set[str] = set()
    for g in config.all_grids():
        points.extend(expand_grid(config, g, seen))
    return points


def expand_grid(config: SweepConfig, g: Grid, seen: set[str] | None = None) -> list[RunPoint]:
    """The points of one grid of ``config``, leaving out (and adding to ``seen``) the point ids in ``seen``."""
    prompts = prompt_specs(g.prompt)
    points: list[RunPoint] = []
    seen = set() if seen is None else seen
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


# ----------------------------------------------------------------------------- configuration ids

#: Grid axis -> (the RunPoint field and runs column it sets, its code in configuration ids). The
#: study's codes are t (threads), l (GPU layers) and b (batch).
ID_AXES: dict[str, tuple[str, str]] = {
    "threads": ("n_threads", "t"), "n_gpu_layers": ("n_gpu_layers", "l"), "batch": ("n_batch", "b"),
    "ubatch": ("n_ubatch", "ub"), "threads_batch": ("n_threads_batch", "tb"), "flash_attn": ("flash_attn", "fa"),
    "n_ctx": ("n_ctx", "c"), "n_gen": ("n_gen", "n"), "repack": ("repack", "rp"), "seed": ("seed", "s"),
    "main_gpu": ("main_gpu", "mg"), "offload_kqv": ("offload_kqv", "kqv"), "use_mmap": ("use_mmap", "mmap"),
}
#: RunPoint field -> code.
CODES: dict[str, str] = dict(ID_AXES.values())


def _value_text(v: Any) -> str:
    if v is None:
        return "auto"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class IdScheme:
    """How one grid names its configurations: ``label`` (None: cpu/gpu by the point), the grid's
    values per RunPoint field (``None`` in them: auto, matches any value), its ``base`` and its
    varying ``factors`` (RunPoint fields, in :data:`ID_AXES` order)."""

    label: str | None
    axes: dict[str, tuple[Any, ...]]
    base: dict[str, Any]
    factors: tuple[str, ...] = field(default=())

    def matches(self, knobs: dict[str, Any]) -> bool:
        """Whether a configuration (RunPoint fields or runs columns) lies on this grid."""
        for name, values in self.axes.items():
            v = knobs.get(name)
            if v is None or None in values:
                continue
            if v not in values:
                return False
        return True

    def id_for(self, knobs: dict[str, Any]) -> str:
        label = self.label or ("cpu" if not knobs.get("n_gpu_layers") else "gpu")
        if not self.factors:
            return label
        diff = [f for f in self.factors if knobs.get(f) is not None and knobs.get(f) != self.base.get(f)]
        if len(diff) <= 1:
            f = diff[0] if diff else self.factors[0]
            return f"{label}-{CODES[f]}{_value_text(knobs.get(f))}"
        return ".".join([label, *(f"{CODES[f]}{_value_text(knobs.get(f))}" for f in diff)])


def scheme_of(g: Grid) -> IdScheme:
    """The id scheme of one grid (a plain ``grid:`` has no label and the default base)."""
    base_raw = g.base_values() if hasattr(g, "base_values") else {n: getattr(g, n)[0] for n in ID_AXES}
    axes = {f: tuple(getattr(g, name)) for name, (f, _) in ID_AXES.items()}
    base = {f: base_raw[name] for name, (f, _) in ID_AXES.items()}
    factors = tuple(f for f, vals in axes.items() if len(vals) > 1)
    return IdScheme(label=getattr(g, "label", None), axes=axes, base=base, factors=factors)


def id_schemes(config: SweepConfig) -> list[IdScheme]:
    """One id scheme per grid of ``config``, in order."""
    return [scheme_of(g) for g in config.all_grids()]


def data_scheme(rows: Sequence[dict[str, Any]]) -> IdScheme:
    """An id scheme for configurations no config describes: the fields that vary among ``rows``
    (runs columns) are the factors, the base is each one's smallest value."""
    axes: dict[str, tuple[Any, ...]] = {}
    for f in CODES:
        vals = sorted({r.get(f) for r in rows if r.get(f) is not None}, key=lambda v: (str(type(v)), v))
        if vals:
            axes[f] = tuple(vals)
    factors = tuple(f for f, v in axes.items() if len(v) > 1)
    return IdScheme(label=None, axes=axes, base={f: v[0] for f, v in axes.items()}, factors=factors)


def configuration_id(knobs: dict[str, Any], schemes: Sequence[IdScheme]) -> str | None:
    """The id of a configuration by the first scheme whose grid it lies on (None: on none)."""
    for scheme in schemes:
        if scheme.matches(knobs):
            return scheme.id_for(knobs)
    return None


def point_knobs(point: RunPoint) -> dict[str, Any]:
    """The fields of a point that make its configuration (what an id names)."""
    return {f: getattr(point, f) for f in CODES}


def grid_point_ids(config: SweepConfig) -> list[list[str]]:
    """Per grid of ``config``: the point ids it makes (shared points included)."""
    return [[p.point_id for p in expand_grid(config, g)] for g in config.all_grids()]


def configuration_ids(config: SweepConfig, points: Sequence[RunPoint] | None = None) -> dict[str, str]:
    """point_id -> configuration id for every point of ``config`` (named by the first grid that
    makes it). Raises ConfigError when two different configurations would get the same id."""
    schemes = id_schemes(config)
    out: dict[str, str] = {}
    owner: dict[str, tuple[Any, ...]] = {}
    for g, scheme in zip(config.all_grids(), schemes, strict=True):
        for p in expand_grid(config, g):
            knobs = point_knobs(p)
            cid = out.get(p.point_id) or scheme.id_for(knobs)
            key = tuple(knobs.values())
            if owner.setdefault(cid, key) != key:
                raise ConfigError(f"configuration id {cid!r} names two different configurations "
                                  f"({describe(dict(zip(knobs, owner[cid], strict=True)))} and {describe(knobs)})",
                                  hint="give the grids different labels, or set each grid's base")
            out.setdefault(p.point_id, cid)
    return out


def describe(knobs: dict[str, Any]) -> str:
    """'t4 l22 b512 ...' (every field with its code)."""
    return " ".join(f"{CODES[f]}{_value_text(v)}" for f, v in knobs.items() if f in CODES)
