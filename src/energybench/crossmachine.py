"""Machines as a dimension: the same configuration measured on several kinds of machine, and which
one gives the lowest energy per output token.

A kind of machine is what :func:`energybench.machines.host_key` reads from a set's
``metadata.json`` (CPU, logical CPUs, memory, OS, GPUs; not the host name). A configuration is the
same on two machines when its workload (model file name and quant, prompt, generation length) and
its knobs are equal -- not its ``point_id``, which also hashes the model reference, a path that
differs between machines -- and ``backend_mode`` (cuda, metal ...) is left out, being the
machine's. Per configuration and set: the median of the metric over the valid runs with its 95 %
percentile-bootstrap CI (:func:`energybench.report.stats.config_stats`), lowest first, and the
runner-up against the lowest as a ratio with its CI and verdict
(:func:`energybench.compare.metric_change`: *worse* means the lowest is lower beyond noise).

Energies from different meters are not alike, so each row says when its machines' meters differ:
an estimate (TDP x load) beside a measurement, different meters (RAPL on Linux, Power Gadget's
EnergyLib on Windows/macOS, NVML ...), or different components in the totals (CPU + DRAM on one
machine, the CPU package alone on another).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from energybench.machines import describe_host, energy_components, host_key, meter_names
from energybench.metrics import energy_is_estimate
from energybench.report.load import ResultSet
from energybench.report.stats import DEFAULT_N_BOOT

#: Knobs that make a configuration across machines (``backend``/``backend_mode`` are the machine's).
KNOBS = ("n_threads", "n_threads_batch", "n_gpu_layers", "n_batch", "n_ubatch", "flash_attn", "repack", "n_ctx")
METRIC = "j_per_output_token"


@dataclass(frozen=True)
class MachineValue:
    """One set's (one machine's) median of the metric for a configuration, with its 95 % CI."""

    set: str
    machine: str
    meters: str
    estimate: bool
    median: float
    lo: float | None
    hi: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"set": self.set, "machine": self.machine, "meters": self.meters, "estimate": self.estimate,
                "median": self.median, "ci95": [self.lo, self.hi], "n": self.n}


@dataclass(frozen=True)
class SameConfiguration:
    """One configuration on several machines, lowest first."""

    workload: str
    config: str
    values: tuple[MachineValue, ...]
    vs_next: Any  # energybench.compare.MetricChange: runner-up / lowest (None with fewer than 2 runs)
    caveats: tuple[str, ...]

    @property
    def lowest(self) -> MachineValue:
        return self.values[0]

    def to_dict(self) -> dict[str, Any]:
        nxt = self.vs_next
        return {"workload": self.workload, "config": self.config, "lowest": self.lowest.set,
                "values": [v.to_dict() for v in self.values],
                "runner_up_vs_lowest": None if nxt is None else {
                    "ratio": nxt.ratio, "ratio_ci95": [nxt.ratio_lo, nxt.ratio_hi], "verdict": nxt.verdict},
                "caveats": list(self.caveats)}


@dataclass(frozen=True)
class CrossMachine:
    """Every configuration measured on two kinds of machine or more."""

    metric: str
    machines: dict[str, str]  # set -> machine description
    rows: list[SameConfiguration]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "machines": self.machines, "configurations": [r.to_dict() for r in self.rows]}


def valid_runs(sets: Sequence[ResultSet]) -> pl.DataFrame:
    """The sets' valid runs with every metric, ``set`` and ``workload`` (as the report has them)."""
    from energybench.metrics import with_run_metrics
    from energybench.report.analysis import workload_expr
    from energybench.report.metrics import valid_runs as only_valid

    frames = [only_valid(with_run_metrics(rs.runs.lazy())).with_columns(workload_expr(), set=pl.lit(rs.label))
              for rs in sets]
    return pl.concat([f.collect() for f in frames], how="vertical_relaxed")


def _caveats(values: Sequence[MachineValue], meta: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    values = sorted(values, key=lambda v: v.set)  # the same words for every row of the same sets
    out = []
    if len({v.estimate for v in values}) > 1:
        est = ", ".join(v.set for v in values if v.estimate)
        out.append(f"measured and estimated energy side by side: {est} is an estimate (TDP x load), "
                   "not a measurement")
    if len({v.meters for v in values}) > 1:
        out.append("meters differ: " + ", ".join(f"{v.set} {v.meters}" for v in values))
    comps = {v.set: energy_components(meta[v.set]) for v in values}
    if len(set(comps.values())) > 1:
        out.append("energy totals count different components: " + ", ".join(f"{s} {c}" for s, c in comps.items()))
    return tuple(out)


def _row(group: pl.DataFrame, runs: pl.DataFrame, meta: dict[str, dict[str, Any]], shown: Sequence[str],
         metric: str, n_boot: int, seed: int) -> SameConfiguration:
    from energybench.compare import metric_change
    from energybench.report.best import describe_config

    group = group.sort(metric, nulls_last=True)
    values = tuple(MachineValue(r["set"], describe_host(meta[r["set"]]), meter_names(meta[r["set"]]),
                                bool(r["_estimate"]), r[metric], r[f"{metric}_lo"], r[f"{metric}_hi"],
                                int(r["n_reps"])) for r in group.iter_rows(named=True))
    first = group.row(0, named=True)

    def vals(label: str):
        return runs.filter((pl.col("_cfg") == first["_cfg"]) & (pl.col("set") == label))[metric].to_numpy()

    nxt = metric_change(metric, vals(values[0].set), vals(values[1].set), n_boot=n_boot, seed=seed)
    return SameConfiguration(first["workload"], describe_config({k: first[k] for k in shown}), values,
                             None if nxt.verdict == "too few runs" else nxt, _caveats(values, meta))


def cross_machine(sets: Sequence[ResultSet], runs: pl.DataFrame | None = None, *, metric: str = METRIC,
                  n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> CrossMachine | None:
    """The configurations measured on two kinds of machine or more (None when the sets come from
    one kind of machine). ``runs``: the sets' valid runs with metrics, when already computed."""
    from energybench.report.analysis import independent_knobs
    from energybench.report.stats import config_stats

    meta = {rs.label: rs.metadata for rs in sets}
    if len({host_key(m) for m in meta.values()}) < 2:
        return None
    runs = valid_runs(sets) if runs is None else runs
    knobs = [k for k in KNOBS if k in runs.columns]
    key = pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in ["workload", "model_quant", *knobs]],
                        separator="|")
    runs = runs.filter(pl.col(metric).is_not_null()).with_columns(_cfg=key, _estimate=energy_is_estimate())
    heads = runs.group_by(["_cfg", "set"]).agg(pl.col("workload").first(), *[pl.col(k).first() for k in knobs],
                                               pl.col("_estimate").any())
    stats = heads.join(config_stats(runs, ["_cfg", "set"], [metric], n_boot=n_boot, seed=seed), on=["_cfg", "set"])
    shown = independent_knobs(stats, knobs) or [k for k in ("n_threads", "n_gpu_layers") if k in knobs]
    rows = []
    for (cfg,), group in sorted(stats.partition_by("_cfg", as_dict=True).items()):
        if len({host_key(meta[s]) for s in group["set"]}) >= 2:
            rows.append(_row(group, runs, meta, shown, metric, n_boot, seed))
    return CrossMachine(metric, {lab: describe_host(m) for lab, m in meta.items()}, rows)
