"""Per-run metrics: lazy polars pipelines of pure functions, units in every column name.

Every function takes and returns a :class:`polars.LazyFrame` (or builds one expression), so a
report is one query plan over the runs table. Conventions:

- *gross* energy is what the meters saw (``energy_j``); *net* subtracts the idle baseline
  (``energy_net_j`` = gross - idle_power_w x window), both stored by the runner (§2 methodology).
- *per output token* divides by generated tokens (``n_gen_tokens``); *per token* divides by all
  tokens processed (prompt + generated).
- EDP = E x t (J*s) and ED2P = E x t^2 (J*s^2) per request, with t the end-to-end time; per token
  they are (E/N) x (t/N) and (E/N) x (t/N)^2 with N = output tokens.
- race-to-sleep over a window T (../shared/README.md §2): E(T) = E_active + P_idle x (T - t_active).
- decode roofline (§2): tokens/s <= bandwidth / bytes read per token (~ model file size); we report
  decode tok/s x model bytes / bandwidth for CPU-only runs (offloaded layers are read from GPU memory).
"""

from __future__ import annotations

import polars as pl

#: The knobs that make a configuration (what a recommendation tells you to set).
KNOB_COLUMNS: tuple[str, ...] = ("backend", "backend_mode", "n_threads", "n_threads_batch", "n_gpu_layers",
                                 "n_batch", "n_ubatch", "flash_attn", "repack", "n_ctx")
#: The axes figures and tables vary (short names used in labels).
AXES: dict[str, str] = {"n_threads": "threads", "n_gpu_layers": "GPU layers", "n_batch": "batch",
                        "n_ubatch": "ubatch", "n_threads_batch": "batch threads", "flash_attn": "flash-attn"}
#: The task: configurations are compared only within one workload.
WORKLOAD_COLUMNS: tuple[str, ...] = ("model_name", "model_quant", "prompt_suite", "prompt_id", "n_prompt", "n_gen")

#: name -> (label, unit, lower_is_better) of the metrics the statistics are computed for.
METRICS: dict[str, tuple[str, str, bool]] = {
    "j_per_out_token": ("energy per output token", "J/token", True),
    "j_per_out_token_net": ("net energy per output token", "J/token", True),
    "j_per_token": ("energy per token (prompt + output)", "J/token", True),
    "j_per_token_net": ("net energy per token (prompt + output)", "J/token", True),
    "out_tokens_per_j": ("output tokens per joule", "token/J", False),
    "energy_j": ("energy per request", "J", True),
    "energy_net_j": ("net energy per request", "J", True),
    "prefill_energy_j": ("prefill energy", "J", True),
    "decode_energy_j": ("decode energy", "J", True),
    "avg_power_w": ("average power", "W", True),
    "peak_power_w": ("peak power", "W", True),
    "edp_js": ("EDP per request", "J*s", True),
    "ed2p_js2": ("ED2P per request", "J*s^2", True),
    "edp_per_token_js": ("EDP per token", "J*s", True),
    "ed2p_per_token_js2": ("ED2P per token", "J*s^2", True),
    "e2e_s": ("end-to-end latency", "s", True),
    "ttft_ms": ("time to first token", "ms", True),
    "prefill_tok_s": ("prefill speed", "token/s", False),
    "decode_tok_s": ("decode speed", "token/s", False),
    "roofline_frac": ("decode bandwidth use (roofline)", "fraction", False),
    "race_energy_j": ("energy over window T (race-to-sleep)", "J", True),
}


def _safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null where den is null or <= 0 (never inf)."""
    return pl.when(den > 0).then(num / den).otherwise(None)


def _repeats() -> pl.Expr:
    """Decode repetitions inside one run (``--min-window`` repeats decoding; 1 otherwise)."""
    return pl.col("n_repeats").fill_null(1).clip(lower_bound=1).cast(pl.Float64)


def with_latency(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Per-request seconds, TTFT, prefill/decode token rates (recomputed from timestamps when missing).

    A run whose decode was repeated to fill a minimum window (``n_repeats`` > 1) served one request:
    one prefill and one decode. Its per-request time is ``prefill_s + decode_s / n_repeats`` and its
    per-request token counts divide the decode tokens likewise; ``window_s`` stays the measured window.
    """
    window = pl.coalesce(pl.col("window_s"), (pl.col("t_end_ns") - pl.col("t_start_ns")) / 1e9)
    prefill_s = pl.coalesce(pl.col("prefill_s"), (pl.col("t_prefill_end_ns") - pl.col("t_start_ns")) / 1e9)
    decode_s = pl.coalesce(pl.col("decode_s"), (pl.col("t_end_ns") - pl.col("t_prefill_end_ns")) / 1e9)
    reps = _repeats()
    return lf.with_columns(
        e2e_s=pl.coalesce(prefill_s + decode_s / reps, window / reps),
        prefill_s=prefill_s,
        decode_s=decode_s,
        ttft_ms=pl.coalesce(pl.col("ttft_ms"), prefill_s * 1e3),
    ).with_columns(
        e2e_ms=pl.col("e2e_s") * 1e3,
        prefill_tok_s=pl.coalesce(pl.col("prefill_tok_s"), _safe_div(pl.col("n_prompt_tokens"), pl.col("prefill_s"))),
        decode_tok_s=pl.coalesce(pl.col("decode_tok_s"), _safe_div(pl.col("n_gen_tokens"), pl.col("decode_s"))),
        n_out_tokens=pl.col("n_gen_tokens").cast(pl.Float64) / reps,
    ).with_columns(
        n_total_tokens=pl.col("n_prompt_tokens").fill_null(0).cast(pl.Float64) + pl.col("n_out_tokens").fill_null(0),
    )


def with_energy(lf: pl.LazyFrame) -> pl.LazyFrame:
    """J/token (gross, net; per output and per total token), tokens/J, phase split, EDP and ED2P.

    Needs :func:`with_latency` first. Energy metrics are null for runs without energy. ``energy_j``
    here is the energy of one request (see :func:`with_latency`; equal to the run's energy unless
    decoding was repeated to fill a minimum window); ``window_energy_j`` keeps the run's total.
    """
    has_energy = pl.col("energy_j").is_not_null() & (pl.col("energy_source").fill_null("measured") != "none")
    reps = _repeats()
    # energy of one request: the prefill once, the (repeated) decode once
    req = pl.coalesce(pl.col("prefill_energy_j") + pl.col("decode_energy_j") / reps, pl.col("energy_j") / reps)
    req_net = pl.coalesce(pl.col("prefill_energy_net_j") + pl.col("decode_energy_net_j") / reps,
                          pl.col("energy_net_j") / reps)
    e = pl.when(has_energy).then(req).otherwise(None)
    e_net = pl.when(has_energy).then(req_net).otherwise(None)
    n_out = pl.col("n_out_tokens")
    n_all = pl.col("n_total_tokens")
    t = pl.col("e2e_s")
    return lf.with_columns(
        has_energy=has_energy,
        window_energy_j=pl.when(has_energy).then(pl.col("energy_j")).otherwise(None),
        energy_j=e,
        energy_net_j=e_net,
        j_per_out_token=_safe_div(e, n_out),
        j_per_out_token_net=_safe_div(e_net, n_out),
        j_per_token=_safe_div(e, n_all),
        j_per_token_net=_safe_div(e_net, n_all),
        out_tokens_per_j=_safe_div(n_out, e),
        tokens_per_j=_safe_div(n_all, e),
        prefill_j_per_token=_safe_div(pl.col("prefill_energy_j"), pl.col("n_prompt_tokens").cast(pl.Float64)),
        decode_j_per_token=_safe_div(pl.col("decode_energy_j"), pl.col("n_gen_tokens").cast(pl.Float64)),
        prefill_energy_frac=_safe_div(pl.col("prefill_energy_j"), pl.col("prefill_energy_j") + pl.col("decode_energy_j") / reps),
        edp_js=e * t,
        ed2p_js2=e * t * t,
        edp_per_token_js=_safe_div(e, n_out) * _safe_div(t, n_out),
        ed2p_per_token_js2=_safe_div(e, n_out) * _safe_div(t, n_out) ** 2,
    )


def with_roofline(lf: pl.LazyFrame, memory_bandwidth_gbs: pl.Expr | float | None) -> pl.LazyFrame:
    """``decode_bytes_s`` (decode tok/s x model bytes) and ``roofline_frac`` (of the memory bandwidth).

    Only CPU-only runs (``n_gpu_layers == 0``) get a fraction: offloaded layers are read from GPU
    memory, whose bandwidth is not the one measured.
    """
    bw = pl.lit(None, dtype=pl.Float64) if memory_bandwidth_gbs is None else (
        memory_bandwidth_gbs if isinstance(memory_bandwidth_gbs, pl.Expr) else pl.lit(float(memory_bandwidth_gbs)))
    bytes_s = pl.col("decode_tok_s") * pl.col("model_size_bytes").cast(pl.Float64)
    cpu_only = pl.col("n_gpu_layers").fill_null(0) == 0
    return lf.with_columns(
        decode_bytes_s=bytes_s,
        roofline_frac=pl.when(cpu_only).then(_safe_div(bytes_s, bw * 1e9)).otherwise(None),
    )


def with_race_to_sleep(lf: pl.LazyFrame, window_s: pl.Expr) -> pl.LazyFrame:
    """E(T) = E_active + P_idle x (T - t_active), per run, for a window T (``race_window_s``).

    ``window_s`` is an expression (a literal or a column joined per workload). Null where the run has
    no energy or no idle power, or where T is shorter than the run (the comparison needs T >= every
    configuration's time).
    """
    t_active = pl.col("e2e_s")
    ok = pl.col("energy_j").is_not_null() & pl.col("idle_power_w").is_not_null() & (window_s >= t_active)
    return lf.with_columns(race_window_s=window_s).with_columns(
        race_idle_energy_j=pl.when(ok).then(pl.col("idle_power_w") * (pl.col("race_window_s") - t_active)),
    ).with_columns(
        race_energy_j=pl.when(ok).then(pl.col("energy_j") + pl.col("race_idle_energy_j")),
    )


def run_metrics(lf: pl.LazyFrame, *, memory_bandwidth_gbs: pl.Expr | float | None = None) -> pl.LazyFrame:
    """Every per-run metric except race-to-sleep (which needs the window): latency, energy, roofline."""
    return with_roofline(with_energy(with_latency(lf)), memory_bandwidth_gbs)


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
    reps = _repeats()
    # per request, as the run-level J/token (see with_latency): one prefill + one of the decodes
    req = pl.coalesce(pl.col("prefill_energy_j") + pl.col("decode_energy_j") / reps, pl.col("energy_j") / reps)
    return (
        lf.select([*keep, "domains"])
        .filter(pl.col("domains").list.len() > 0)
        .explode("domains")
        .unnest("domains")
        .with_columns(j_per_out_token=_safe_div(req, pl.col("n_gen_tokens").cast(pl.Float64) / reps))
    )


def domain_summary(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Per (set, configuration, domain): median average power, max peak power, median energies."""
    return (
        valid_runs(domain_runs(lf))
        .group_by(["set", "point_id", "domain"])
        .agg(
            pl.col("meter").first(), pl.col("component").first(), pl.col("parent").first(),
            pl.col("estimate").any(), pl.col("source").first(),
            pl.col("update_period_s").max(), pl.col("sample_period_s").median(),
            n_runs=pl.len(),
            avg_power_w=pl.col("avg_power_w").median(), peak_power_w=pl.col("peak_power_w").max(),
            idle_power_w=pl.col("idle_power_w").median(),
            energy_j=pl.col("energy_j").median(), energy_net_j=pl.col("energy_net_j").median(),
            prefill_energy_j=pl.col("prefill_energy_j").median(), decode_energy_j=pl.col("decode_energy_j").median(),
            j_per_out_token=pl.col("j_per_out_token").median(),
        )
        .sort(["set", "point_id", "domain"])
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
        power_w=pl.when(counter).then(_safe_div(de_j, dt_s)).otherwise(pl.col("value")),
        t_ns=t_mid if stamp == "mid" else pl.col("t_ns"),
    ).filter(pl.col("power_w").is_not_null())
