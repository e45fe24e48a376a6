"""Compare result sets: each NEW set against BASE, configuration by configuration, metric by metric.

pyperf's ``compare_to`` is the model. For every configuration present in BASE and in a NEW set,
and every chosen metric of :mod:`energybench.metrics`: the median of the valid runs (status ok,
not warm-ups) on each side, the ratio NEW/BASE of the medians, and a 95 % percentile-bootstrap
CI of that ratio, each side resampled independently (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993). The verdict follows the metric's direction (``lower_is_better``): *worse* or
*better* when the CI excludes 1 (no change), *within noise* when it does not -- where pyperf says
"Not significant!" (from a t-test; the bootstrap assumes no normal distribution). Configurations
present on one side only are listed as such, and the geometric mean of the ratios is given per
metric, as pyperf does.

Configurations are matched by ``point_id`` (a hash of every field of the point: the same
configuration has the same id in every set), or, with ``ignore_knobs``, by everything but those
knobs (threads=1 in BASE against threads=2 in NEW).

Sets measured on different CPUs or GPUs, with different llama.cpp builds or different files
under the same model reference are refused unless allowed, naming what differs
(:mod:`energybench.machines`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from energybench import defaults
from energybench.cost import Cost, Tariff, per_million_output_tokens
from energybench.crossmachine import CrossMachine, cross_machine
from energybench.errors import UsageError
from energybench.machines import Difference, describe_machine, machine_differences, meter_names
from energybench.metrics import METRICS, energy_is_estimate, with_run_metrics
from energybench.report.analysis import with_config_ids, workload_expr
from energybench.report.load import ResultSet
from energybench.report.metrics import KNOB_COLUMNS, valid_runs
from energybench.report.stats import DEFAULT_CONF, DEFAULT_N_BOOT, MIN_REPS, _boot_block
from energybench.results import RUNS_SCHEMA

#: Verdicts: the CI of the ratio excludes 1 (better/worse) or not; fewer than 2 runs on a side;
#: no values on a side; a BASE median <= 0 (no ratio means anything).
VERDICTS = ("better", "worse", "within noise", "too few runs", "no data", "no ratio")
#: What identifies a configuration apart from its knobs (with ``ignore_knobs``).
_IDENTITY = ("model", "prompt_suite", "prompt_id", "n_prompt", "n_gen", "seed")


def comparable_metrics() -> list[str]:
    """Metrics a comparison can judge: every per-run metric with a value of its own per run (not
    those that need a parameter, such as the memory bandwidth or a race-to-sleep window)."""
    return [n for n, m in METRICS.items() if m.expr is not None or n in RUNS_SCHEMA]


def check_metrics(names: Sequence[str]) -> tuple[str, ...]:
    ok = comparable_metrics()
    for n in names:
        if n not in ok:
            why = "needs a parameter (the report computes it)" if n in METRICS else "is not a metric"
            raise UsageError(f"--metric {n!r} {why}", hint=f"use one of: {', '.join(ok)}")
    if not names:
        raise UsageError("no metric to compare", hint=f"use --metric with one of: {', '.join(ok)}")
    return tuple(dict.fromkeys(names))


def uses_energy(metric: str) -> bool:
    """Whether ``metric`` is made from a measured (or estimated) energy."""
    m = METRICS[metric]
    return "J" in m.unit or m.unit == "W" or "energy" in m.name


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Side:
    """One side's median of a metric, its 95 % bootstrap CI and the number of runs."""

    median: float | None
    lo: float | None
    hi: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "ci95": [self.lo, self.hi], "n": self.n}


@dataclass(frozen=True)
class MetricChange:
    """NEW against BASE for one metric of one configuration."""

    metric: str
    base: Side
    new: Side
    ratio: float | None
    ratio_lo: float | None
    ratio_hi: float | None
    verdict: str
    estimate: bool  # made from an estimated energy (TDP x load)

    @property
    def worse_pct(self) -> float | None:
        """How much worse NEW is than BASE, in % of BASE (negative: better)."""
        if self.ratio is None:
            return None
        change = (self.ratio - 1.0) * 100.0
        return change if METRICS[self.metric].lower_is_better else -change

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "new": self.new.to_dict(), "ratio": self.ratio,
                "ratio_ci95": [self.ratio_lo, self.ratio_hi], "verdict": self.verdict,
                "worse_pct": self.worse_pct, "estimate": self.estimate,
                "lower_is_better": METRICS[self.metric].lower_is_better}


def _num(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _replicates(v: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray | None:
    """Bootstrap medians of the sorted sample ``v`` (None with fewer than 2 values)."""
    return _boot_block(v[None, :], rng, "median", n_boot)[0] if v.size >= 2 else None


def _side(v: np.ndarray, reps: np.ndarray | None, conf: float) -> Side:
    if v.size == 0:
        return Side(None, None, None, 0)
    lo, hi = (None, None) if reps is None else np.quantile(reps, [(1 - conf) / 2, (1 + conf) / 2])
    return Side(float(np.median(v)), _num(lo), _num(hi), int(v.size))


def _verdict(lo: float, hi: float, lower_is_better: bool) -> str:
    if lo > 1.0:
        return "worse" if lower_is_better else "better"
    if hi < 1.0:
        return "better" if lower_is_better else "worse"
    return "within noise"


def metric_change(metric: str, base: Sequence[float] | np.ndarray, new: Sequence[float] | np.ndarray, *,
                  estimate: bool = False, n_boot: int = DEFAULT_N_BOOT, conf: float = DEFAULT_CONF,
                  seed: int = 0) -> MetricChange:
    """The ratio NEW/BASE of the medians of ``metric``, its percentile-bootstrap CI and the verdict."""
    a = np.sort(np.asarray(base, dtype=np.float64))
    b = np.sort(np.asarray(new, dtype=np.float64))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    rng = np.random.default_rng(seed)
    ra, rb = _replicates(a, rng, n_boot), _replicates(b, rng, n_boot)
    sa, sb = _side(a, ra, conf), _side(b, rb, conf)

    def change(ratio: float | None, lo: float | None, hi: float | None, verdict: str) -> MetricChange:
        return MetricChange(metric, sa, sb, ratio, lo, hi, verdict, estimate)

    if sa.median is None or sb.median is None:
        return change(None, None, None, "no data")
    if sa.median <= 0:
        return change(None, None, None, "no ratio")
    ratio = sb.median / sa.median
    if ra is None or rb is None:
        return change(ratio, None, None, "too few runs")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = rb / ra
    r = r[np.isfinite(r)]
    if r.size == 0:
        return change(ratio, None, None, "no ratio")
    lo, hi = (float(q) for q in np.quantile(r, [(1 - conf) / 2, (1 + conf) / 2]))
    return change(ratio, lo, hi, _verdict(lo, hi, METRICS[metric].lower_is_better))


def _seed(seed: int, *parts: str) -> int:
    """A seed per (set, configuration, metric): results do not depend on the order of the work."""
    return seed * 1_000_003 + zlib.crc32("|".join(parts).encode())


# ----------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Configuration:
    """One configuration of one set: its pairing key, point id, short id, workload and knobs."""

    key: str
    point_id: str
    config_id: str
    workload: str
    knobs: dict[str, Any]
    estimate: bool  # some of its runs have an estimated energy

    def to_dict(self) -> dict[str, Any]:
        return {"point_id": self.point_id, "config_id": self.config_id, "workload": self.workload,
                "config": self.knobs}


#: Knobs whose default value follows another's (threads_batch = threads, ubatch = min(batch, 512),
#: the backend mode from the GPU layers): ignoring the leader ignores them too.
_FOLLOWERS = {"n_threads": ("n_threads_batch",), "n_batch": ("n_ubatch",), "n_gpu_layers": ("backend_mode",)}


def check_knobs(names: Sequence[str]) -> tuple[str, ...]:
    """The knobs to ignore when pairing: ``names`` and the knobs that follow them."""
    for n in names:
        if n not in KNOB_COLUMNS:
            raise UsageError(f"--ignore-knob {n!r} is not a knob", hint=f"use one of: {', '.join(KNOB_COLUMNS)}")
    return tuple(dict.fromkeys(k for n in names for k in (n, *_FOLLOWERS.get(n, ()))))


def _key(ignore: Sequence[str]) -> pl.Expr:
    if not ignore:
        return pl.col("point_id")
    cols = [*_IDENTITY, *(k for k in KNOB_COLUMNS if k not in ignore)]
    return pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in cols], separator="|")


def _measured_runs(rs: ResultSet, ignore: Sequence[str]) -> pl.DataFrame:
    """The set's runs but warm-ups, with every metric, ``workload``, ``config_id``, ``_key`` and
    ``_estimate`` (failed runs kept: their configuration exists, without values)."""
    lf = with_run_metrics(rs.runs.lazy()).filter(~pl.col("is_warmup").fill_null(False))
    lf = lf.with_columns(workload_expr(), set=pl.lit(rs.label))
    return with_config_ids(lf.collect(), [rs]).with_columns(_key=_key(ignore), _estimate=energy_is_estimate())


def _configurations(runs: pl.DataFrame, label: str, ignore: Sequence[str]) -> dict[str, Configuration]:
    """One Configuration per pairing key; refuses keys that merge several configurations."""
    heads = runs.group_by("_key", maintain_order=True).agg(
        pl.all().exclude("_estimate").first(), n_points=pl.col("point_id").n_unique(),
        _estimate=pl.col("_estimate").any())
    merged = heads.filter(pl.col("n_points") > 1)
    if merged.height:
        r = merged.row(0, named=True)
        raise UsageError(f"--ignore-knob {' '.join(ignore)}: {r['n_points']} configurations of {label} "
                         f"({r['workload']}) differ only in the ignored knobs, so none pairs with one other",
                         hint="ignore fewer knobs, or compare sets that each hold one value of them")
    knobs = [k for k in KNOB_COLUMNS if k in runs.columns]
    return {r["_key"]: Configuration(r["_key"], r["point_id"], r["config_id"] or r["point_id"], r["workload"],
                                     {k: r[k] for k in knobs}, bool(r["_estimate"]))
            for r in heads.iter_rows(named=True)}


@dataclass(frozen=True)
class Pair:
    """A configuration of BASE and its match in NEW, with one change per metric."""

    base: Configuration
    new: Configuration
    changes: tuple[MetricChange, ...]

    @property
    def label(self) -> str:
        """The configuration's id; with ignored knobs, what changed: ``cpu: n_threads 1 -> 2``."""
        diff = [k for k, v in self.base.knobs.items() if v != self.new.knobs.get(k)]
        changed = [f"{k} {self.base.knobs[k]} -> {self.new.knobs.get(k)}" for k in diff
                   if not any(k in _FOLLOWERS.get(lead, ()) for lead in diff)]  # a follower moves with its leader
        ids = self.base.config_id if self.base.config_id == self.new.config_id else \
            f"{self.base.config_id} -> {self.new.config_id}"
        return f"{ids}: {', '.join(changed)}" if changed else ids


@dataclass
class SetComparison:
    """One NEW set against BASE."""

    label: str
    root: str
    machine: str
    pairs: list[Pair]
    only_base: list[Configuration]
    only_new: list[Configuration]
    differences: list[Difference]
    warnings: list[str]

    def geometric_mean(self, metric: str) -> float | None:
        """Geometric mean of the ratios of ``metric`` over the paired configurations."""
        r = [c.ratio for p in self.pairs for c in p.changes if c.metric == metric and c.ratio and c.ratio > 0]
        return math.exp(sum(map(math.log, r)) / len(r)) if r else None

    def regressions(self, pct: float) -> list[tuple[Pair, MetricChange]]:
        """Changes worse by more than ``pct`` % whose CI excludes no change."""
        return [(p, c) for p in self.pairs for c in p.changes
                if c.verdict == "worse" and c.worse_pct is not None and c.worse_pct > pct]


@dataclass(frozen=True)
class CostRow:
    """Cost and CO2e per 1M output tokens of one configuration of one set."""

    set: str
    configuration: Configuration
    cost: Cost


@dataclass
class Comparison:
    """BASE against one or more NEW sets (:func:`compare`)."""

    base: str
    base_root: str
    base_machine: str
    metrics: tuple[str, ...]
    sets: list[SetComparison]
    ignore_knobs: tuple[str, ...] = ()
    allowed_differences: bool = False
    tariff: Tariff | None = None
    costs: list[CostRow] = field(default_factory=list)
    machines: CrossMachine | None = None  # sets of several kinds of machine: the same configurations on each

    def regressions(self, pct: float) -> list[tuple[str, Pair, MetricChange]]:
        return [(s.label, p, c) for s in self.sets for p, c in s.regressions(pct)]


# ----------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class _Prepared:
    rs: ResultSet
    runs: dict[str, pl.DataFrame]  # pairing key -> valid runs (status ok, not warm-ups)
    configs: dict[str, Configuration]
    n_failed: int


def _prepare(rs: ResultSet, ignore: Sequence[str]) -> _Prepared:
    runs = _measured_runs(rs, ignore)
    valid = valid_runs(runs.lazy()).collect()
    parts = {str(k[0]): df for k, df in valid.partition_by("_key", as_dict=True).items()} if valid.height else {}
    configs = _configurations(runs, rs.label, ignore) if runs.height else {}
    return _Prepared(rs, parts, configs, runs.height - valid.height)


def _values(p: _Prepared, key: str, metric: str) -> np.ndarray:
    df = p.runs.get(key)
    if df is None or metric not in df.columns:
        return np.array([])
    return df[metric].cast(pl.Float64).drop_nulls().to_numpy()


def _set_warnings(base: _Prepared, new: _Prepared, pairs: list[Pair]) -> list[str]:
    out = []
    bm, nm = meter_names(base.rs.metadata), meter_names(new.rs.metadata)
    if bm != nm:
        out.append(f"energy measured with {bm} in BASE and {nm} in NEW: energy ratios compare different meters")
    rough = sum(any(0 < n < MIN_REPS for c in p.changes for n in (c.base.n, c.new.n)) for p in pairs)
    if rough:
        out.append(f"{rough} configuration(s) have fewer than {MIN_REPS} repetitions on a side: their CIs are rough")
    for p in (base, new):
        if p.n_failed:
            out.append(f"{p.rs.label}: {p.n_failed} failed run(s) left out (a configuration without a finished "
                       "run has no data)")
        if not p.configs:
            out.append(f"{p.rs.label} holds no measured run")
        if p.rs.in_progress:
            out.append(f"{p.rs.label} is still being written or was interrupted (parts only): numbers may change")
        out += [f"{p.rs.label}: {note}" for note in p.rs.notes]
    return out


def _compare_set(base: _Prepared, new: _Prepared, metrics: Sequence[str], *, n_boot: int,
                 seed: int) -> SetComparison:
    pairs = []
    for key, bc in base.configs.items():
        nc = new.configs.get(key)
        if nc is None:
            continue
        changes = tuple(metric_change(m, _values(base, key, m), _values(new, key, m),
                                      estimate=uses_energy(m) and (bc.estimate or nc.estimate), n_boot=n_boot,
                                      seed=_seed(seed, new.rs.label, key, m)) for m in metrics)
        pairs.append(Pair(bc, nc, changes))
    return SetComparison(
        label=new.rs.label, root=str(new.rs.root), machine=describe_machine(new.rs.metadata), pairs=pairs,
        only_base=[c for k, c in base.configs.items() if k not in new.configs],
        only_new=[c for k, c in new.configs.items() if k not in base.configs],
        differences=machine_differences(base.rs.metadata, new.rs.metadata),
        warnings=_set_warnings(base, new, pairs))


def _refuse_differences(base: ResultSet, news: Sequence[ResultSet]) -> None:
    for rs in news:
        diffs = machine_differences(base.metadata, rs.metadata)
        if diffs:
            raise UsageError(f"refusing to compare {rs.label} with {base.label}: "
                             + "; ".join(d.text() for d in diffs),
                             hint="compare results of one machine, build and model file, or pass "
                                  "--allow-different-machines to compare anyway")


def _costs(sets: Sequence[_Prepared], tariff: Tariff, *, n_boot: int, seed: int) -> list[CostRow]:
    metric, out = defaults.COST_ENERGY_METRIC, []
    for p in sets:
        for key, c in p.configs.items():
            v = np.sort(_values(p, key, metric))
            side = _side(v, _replicates(v, np.random.default_rng(_seed(seed, p.rs.label, key, "cost")), n_boot),
                         DEFAULT_CONF)
            if side.median is not None:
                cost = per_million_output_tokens((side.median, side.lo, side.hi), tariff, estimate=c.estimate)
                out.append(CostRow(p.rs.label, c, cost))
    return out


def compare(base: ResultSet, news: Sequence[ResultSet], *, metrics: Sequence[str] = defaults.COMPARE_METRICS,
            ignore_knobs: Sequence[str] = (), allow_different_machines: bool = False, tariff: Tariff | None = None,
            n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> Comparison:
    """Compare each of ``news`` with ``base`` (see the module docstring). Raises UsageError for an
    unknown metric or knob, and for sets of different machines unless ``allow_different_machines``."""
    metrics, ignore = check_metrics(metrics), check_knobs(ignore_knobs)
    if not news:
        raise UsageError("nothing to compare BASE with", hint="energybench compare BASE NEW [NEW2 ...]")
    if n_boot < 100:
        raise UsageError(f"--bootstrap {n_boot} is too small", hint="use at least 1000 resamples")
    if not allow_different_machines:
        _refuse_differences(base, news)
    pb = _prepare(base, ignore)
    prepared = [_prepare(rs, ignore) for rs in news]
    sets = [_compare_set(pb, p, metrics, n_boot=n_boot, seed=seed) for p in prepared]
    costs = _costs([pb, *prepared], tariff, n_boot=n_boot, seed=seed) if tariff else []
    return Comparison(base=base.label, base_root=str(base.root), base_machine=describe_machine(base.metadata),
                      metrics=metrics, sets=sets, ignore_knobs=ignore, allowed_differences=allow_different_machines,
                      tariff=tariff, costs=costs, machines=cross_machine([base, *news], n_boot=n_boot, seed=seed))


def compare_results(base: str | Path, news: Sequence[str | Path], **options: Any) -> Comparison:
    """Read BASE and the NEW sets (through the report's one reader of result sets: directories,
    URLs, globs; shards of one sweep merged within each side), then :func:`compare`."""
    from energybench.report.build import load_sides

    bases, new_sets = load_sides([[base], news])
    if len(bases) != 1:
        raise UsageError(f"BASE {base} holds {len(bases)} result sets: {', '.join(rs.label for rs in bases)}",
                         hint="BASE is one results directory, or the shards of one sweep")
    return compare(bases[0], new_sets, **options)


def comparison_dict(c: Comparison, fail_pct: float | None = None) -> dict[str, Any]:
    """The comparison as JSON-ready data (``--format json``)."""
    def pair(p: Pair) -> dict[str, Any]:
        return {"configuration": p.new.to_dict(), "base_configuration": p.base.to_dict(),
                "metrics": {ch.metric: ch.to_dict() for ch in p.changes}}

    regs = c.regressions(fail_pct) if fail_pct is not None else []
    return {
        "base": {"label": c.base, "root": c.base_root, "machine": c.base_machine},
        "metrics": list(c.metrics), "ignore_knobs": list(c.ignore_knobs),
        "allow_different_machines": c.allowed_differences,
        "sets": [{"label": s.label, "root": s.root, "machine": s.machine, "pairs": [pair(p) for p in s.pairs],
                  "only_in_base": [x.to_dict() for x in s.only_base], "only_in_new": [x.to_dict() for x in s.only_new],
                  "differences": [asdict(d) for d in s.differences], "warnings": s.warnings,
                  "geometric_mean": {m: s.geometric_mean(m) for m in c.metrics}} for s in c.sets],
        "gate": None if fail_pct is None else {
            "fail_on_regression_pct": fail_pct, "passed": not regs,
            "regressions": [{"set": lab, "config_id": p.new.config_id, "workload": p.new.workload,
                             "metric": ch.metric, "worse_pct": ch.worse_pct} for lab, p, ch in regs]},
        "cost": None if c.tariff is None else {
            "tariff": asdict(c.tariff), "per": "1M output tokens",
            "rows": [{"set": r.set, **r.configuration.to_dict(), **r.cost.to_dict()} for r in c.costs]},
        "machines": c.machines.to_dict() if c.machines is not None else None,
    }
