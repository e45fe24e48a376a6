"""The report's tables over runs and samples: which runs count, workloads and knobs, energy per
domain, provenance, and power from samples. Per-run metrics come from the vocabulary
(:mod:`energybench.metrics`); nothing here defines one of its own.
"""

from __future__ import annotations

import polars as pl

from energybench.metrics import request_energy, safe_div, with_roofline, with_run_metrics

#: The knobs that make a configuration (what a recommendation tells you to set).
KNOB_COLUMNS: tuple[str, ...] = ("backend", "backend_mode", "n_threads", "n_threads_batch", "n_gpu_layers",
                                 "n_batch", "n_ubatch", "flash_attn", "repack", "n_ctx")
#: The axes figures and tables vary (short names used in labels).
AXES: dict[str, str] = {"n_threads": "threads", "n_gpu_layers": "GPU layers", "n_batch": "batch",
                        "n_ubatch": "ubatch", "n_threads_batch": "batch threads", "flash_attn": "flash-attn"}
#: The task: configurations are compared only within one workload.
WORKLOAD_COLUMNS: tuple[str, ...] = ("model_name", "model_quant", "prompt_suite", "prompt_id", "n_prompt", "n_gen")


def run_metrics(lf: pl.LazyFrame, *, memory_bandwidth_gbs: pl.Expr | float | None = None) -> pl.LazyFrame:
    """Every per-run metric of the vocabulary (race-to-sleep aside: it needs the window)."""
    return with_roofline(with_run_metrics(lf), memory_bandwidth_gbs)


def valid_runs(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Runs that count in statistics: finished (status ok) and not warm-ups."""
    return lf.filter((pl.col("status") == "ok") & ~pl.col("is_warmup").fill_null(False))


def default_race_window(lf: pl.LazyFrame, by: list[str]) -> pl.LazyFrame:
    """Per group ``by`` (a workload): T = the slowest configuration's median end-to-end time.

    ``lf``: valid runs with ``point_id`` and ``e2e_s``. Returns ``by`` + ``race_window_s``.
    """
    per_point = lf.group_by(list(dict.fromkeys([*by, "set", "point_id"]))).agg(pl.col("e2e_s").median())
    return per_point.group_by(by).agg(race_window_s=pl.col("e2e_s").max())


def domain_runs(lf: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (run, domain) from the ``domains`` list-of-struct (finished runs only).

    Columns: the run's identity and knobs, then the domain struct's fields prefixed ``dom_``-free
    (``domain``, ``meter``, ``component``, ``parent``, ``estimate``, ``source``, ``energy_j`` ...).
    """
    keep = ["set", "point_id", "run_id", "status", "is_warmup", "n_gen_tokens", "n_repeats"]
    req = request_energy(pl.col("prefill_energy_j"), pl.col("decode_energy_j"), pl.col("energy_j"))
    out_tokens = pl.col("n_gen_tokens").cast(pl.Float64) / pl.col("n_repeats").fill_null(1).clip(lower_bound=1)
    return (
        lf.select([*keep, "domains"])
        .filter(pl.col("domains").list.len() > 0)
        .explode("domains")
        .unnest("domains")
        .with_columns(j_per_output_token=pl.when(out_tokens > 0).then(req / out_tokens))
    )


def domain_summary(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Per (set, configuration, domain, meter): median average power, max peak power, median energies
    (two meters may name a domain alike: a live ``gpu-0`` and an attached nvidia-smi log's)."""
    return (
        valid_runs(domain_runs(lf))
        .group_by(["set", "point_id", "domain", "meter"])
        .agg(
            pl.col("component").first(), pl.col("parent").first(),
            pl.col("estimate").any(), pl.col("source").first(),
            pl.col("update_period_s").max(), pl.col("sample_period_s").median(),
            n_runs=pl.len(),
            avg_power_w=pl.col("avg_power_w").median(), peak_power_w=pl.col("peak_power_w").max(),
            idle_power_w=pl.col("idle_power_w").median(),
            energy_j=pl.col("energy_j").median(), energy_net_j=pl.col("energy_net_j").median(),
            prefill_energy_j=pl.col("prefill_energy_j").median(), decode_energy_j=pl.col("decode_energy_j").median(),
            j_per_output_token=pl.col("j_per_output_token").median(),
        )
        .sort(["set", "point_id", "domain", "meter"])
    )


def domain_provenance(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Distinct domains with meter, kind, component, parent, source and periods (for provenance)."""
    return (
        domain_runs(lf)
        .group_by(["set", "domain", "meter"])
        .agg(pl.col("kind").first(), pl.col("component").first(), pl.col("parent").first(),
             pl.col("estimate").any(), pl.col("source").unique().sort().str.join("; "),
             pl.col("update_period_s").median(), pl.col("sample_period_s").median(),
             n_samples_median=pl.col("n_samples").median(), n_runs=pl.len())
        .sort(["set", "domain"])
    )


def samples_power(lf: pl.LazyFrame, *, stamp: str = "mid", changes_only: bool = False) -> pl.LazyFrame:
    """Power in watts from samples: counters (unit J, cumulative) by differencing, W as they are.

    Each counter sample after the first of its (run, meter, domain) gets the average power since
    the previous one, stamped at the interval's midpoint (``stamp="mid"``, for plots) or left at the
    sample's own time (``stamp="end"``, for logs). Adds ``power_w``.

    ``changes_only``: difference a counter only between the samples where its value changed. A
    counter that refreshes more slowly than it is sampled (NVML energy: every 20-100 ms, §2) would
    otherwise read 0 W, then a spike of several times the true power; between changes the average
    is right.
    """
    key = ["run_id", "meter", "domain"]
    lf = lf.sort([*key, "t_ns"])
    if changes_only:
        prev = pl.col("value").shift(1).over(key)
        lf = lf.filter((pl.col("unit") != "J") | prev.is_null() | (pl.col("value") != prev))
    dt_s = pl.col("t_ns").diff().over(key) / 1e9
    de_j = pl.col("value").diff().over(key)
    counter = pl.col("unit") == "J"
    t_mid = pl.when(counter).then(pl.col("t_ns") - (pl.col("t_ns").diff().over(key) // 2)).otherwise(pl.col("t_ns"))
    return lf.with_columns(
        power_w=pl.when(counter).then(safe_div(de_j, dt_s)).otherwise(pl.col("value")),
        t_ns=t_mid if stamp == "mid" else pl.col("t_ns"),
    ).filter(pl.col("power_w").is_not_null())
