"""The metrics vocabulary: every per-run metric, defined once (name, label, unit, formula, expression).

The measure summary, adaptive repetitions, the live view, the report, every export and every JSON
output read their numbers from here; none computes a metric of its own. A metric is a polars
expression over the columns of ``runs.parquet`` (:data:`energybench.results.RUNS_SCHEMA`), which
hold what was *measured*: timestamps, token counts, and the energy the meters saw over the run's
window, per phase, gross and idle-subtracted.

One run serves one *request*: one prefill of the prompt, then the generation of ``n_gen`` tokens.
When a run repeated its decode phase to fill a minimum window (``n_repeats`` > 1), the request is
one prefill plus one of the decodes: its time is ``prefill_s + decode_s / n_repeats`` and its energy
``prefill_energy_j + decode_energy_j / n_repeats``; ``energy_j`` stays the whole window's energy.

Names say what is divided by what: *output* tokens are the generated ones, *processed* tokens are
prompt + output. *net* subtracts the idle baseline (idle power x time) from the gross energy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Metric:
    """One per-run metric. ``expr`` builds it from stored columns and the metrics before it; None
    for a metric that is stored as measured or needs a parameter (roofline, race-to-sleep)."""

    name: str
    label: str
    unit: str
    formula: str
    lower_is_better: bool
    expr: Callable[[], pl.Expr] | None = None
    #: usable as the watched value of adaptive repetitions (a plain per-run number)
    adaptive: bool = True


def _col(name: str) -> pl.Expr:
    return pl.col(name)


def safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null where den is null or <= 0 (never inf)."""
    return pl.when(den > 0).then(num / den).otherwise(None)


def _repeats() -> pl.Expr:
    """Decode repetitions inside one run (a minimum window repeats decoding; 1 otherwise)."""
    return _col("n_repeats").fill_null(1).clip(lower_bound=1).cast(pl.Float64)


def _energy(expr: pl.Expr) -> pl.Expr:
    """``expr`` where the run has energy from a meter, else null."""
    return pl.when(_col("has_energy")).then(expr).otherwise(None)


def request_energy(prefill: pl.Expr, decode: pl.Expr, window: pl.Expr) -> pl.Expr:
    """Energy of one request: the prefill once and one of the (repeated) decodes; the window's
    energy per repeat where no phase split exists. Used for run totals and per domain alike."""
    return pl.coalesce(prefill + decode / _repeats(), window / _repeats())


_PREFILL_S = (_col("t_prefill_end_ns") - _col("t_start_ns")) / 1e9
_DECODE_S = (_col("t_end_ns") - _col("t_prefill_end_ns")) / 1e9
_OUT = _col("n_gen_tokens").cast(pl.Float64) / _repeats()
_PROCESSED = _col("n_prompt_tokens").fill_null(0).cast(pl.Float64) + _OUT.fill_null(0)

#: Every per-run metric, in dependency order (each expression may use the ones above it).
METRICS: dict[str, Metric] = {m.name: m for m in (
    # latency
    Metric("ttft_ms", "TTFT", "ms", "(t_prefill_end_ns - t_start_ns) / 1e6: prompt processed and first token "
           "sampled", True, lambda: _PREFILL_S * 1e3),
    Metric("e2e_s", "request latency", "s", "prefill_s + decode_s / n_repeats", True,
           lambda: _PREFILL_S + _DECODE_S / _repeats()),
    Metric("prefill_tok_s", "prefill speed", "tok/s", "n_prompt_tokens / prefill_s", False,
           lambda: safe_div(_col("n_prompt_tokens").cast(pl.Float64), _PREFILL_S)),
    Metric("decode_tok_s", "decode speed", "tok/s", "(n_gen_tokens - n_repeats) / decode_s: tokens after the "
           "first one of each decode, over the decode time", False,
           lambda: safe_div((_col("n_gen_tokens") - _col("n_repeats").fill_null(1)).cast(pl.Float64), _DECODE_S)),
    Metric("ms_per_output_token", "latency per output token", "ms/tok", "e2e_s x 1e3 / (n_gen_tokens / n_repeats): "
           "the request's latency over its output tokens (the original study's latency per token)", True,
           lambda: safe_div(_col("e2e_s") * 1e3, _OUT)),
    Metric("itl_p50_ms", "ITL p50", "ms", "median gap between consecutive generated tokens", True),
    Metric("itl_p95_ms", "ITL p95", "ms", "95th percentile gap between consecutive generated tokens", True),
    # energy of the measured window (stored as the meters saw it)
    Metric("energy_j", "window energy", "J", "sum over top-level domains of the energy in [t_start, t_end] "
           "(all decode repeats)", True),
    Metric("energy_net_j", "window energy (net)", "J", "energy_j - idle power x window_s", True),
    Metric("avg_power_w", "average power", "W", "energy_j / window_s", True),
    Metric("peak_power_w", "peak power", "W", "highest power over the meters' own update intervals", True),
    # energy of one request
    Metric("request_energy_j", "energy per request", "J", "prefill_energy_j + decode_energy_j / n_repeats", True,
           lambda: _energy(request_energy(_col("prefill_energy_j"), _col("decode_energy_j"), _col("energy_j")))),
    Metric("request_energy_net_j", "energy per request (net)", "J",
           "prefill_energy_net_j + decode_energy_net_j / n_repeats", True,
           lambda: _energy(request_energy(_col("prefill_energy_net_j"), _col("decode_energy_net_j"),
                                          _col("energy_net_j")))),
    Metric("j_per_output_token", "J/output token", "J/tok", "request_energy_j / (n_gen_tokens / n_repeats)", True,
           lambda: safe_div(_col("request_energy_j"), _OUT)),
    Metric("j_per_output_token_net", "J/output token (net)", "J/tok",
           "request_energy_net_j / (n_gen_tokens / n_repeats)", True,
           lambda: safe_div(_col("request_energy_net_j"), _OUT)),
    Metric("j_per_processed_token", "J/processed token", "J/tok",
           "request_energy_j / (n_prompt_tokens + n_gen_tokens / n_repeats)", True,
           lambda: safe_div(_col("request_energy_j"), _PROCESSED)),
    Metric("j_per_processed_token_net", "J/processed token (net)", "J/tok",
           "request_energy_net_j / (n_prompt_tokens + n_gen_tokens / n_repeats)", True,
           lambda: safe_div(_col("request_energy_net_j"), _PROCESSED)),
    Metric("output_tokens_per_j", "output tokens/J", "tok/J", "1 / j_per_output_token", False,
           lambda: safe_div(_OUT, _col("request_energy_j"))),
    Metric("processed_tokens_per_j", "processed tokens/J", "tok/J", "1 / j_per_processed_token", False,
           lambda: safe_div(_PROCESSED, _col("request_energy_j"))),
    Metric("prefill_j_per_prompt_token", "prefill J/prompt token", "J/tok", "prefill_energy_j / n_prompt_tokens",
           True, lambda: _energy(safe_div(_col("prefill_energy_j"), _col("n_prompt_tokens").cast(pl.Float64)))),
    Metric("decode_j_per_output_token", "decode J/output token", "J/tok", "decode_energy_j / n_gen_tokens", True,
           lambda: _energy(safe_div(_col("decode_energy_j"), _col("n_gen_tokens").cast(pl.Float64)))),
    Metric("prefill_energy_frac", "prefill share of energy", "fraction",
           "prefill_energy_j / (prefill_energy_j + decode_energy_j / n_repeats)", False,
           lambda: _energy(safe_div(_col("prefill_energy_j"),
                                _col("prefill_energy_j") + _col("decode_energy_j") / _repeats()))),
    Metric("edp_js", "EDP per request", "J*s", "request_energy_j x e2e_s", True,
           lambda: _col("request_energy_j") * _col("e2e_s")),
    Metric("ed2p_js2", "ED2P per request", "J*s^2", "request_energy_j x e2e_s^2", True,
           lambda: _col("request_energy_j") * _col("e2e_s") ** 2),
    Metric("edp_per_output_token_js", "EDP per output token", "J*s", "j_per_output_token x e2e_s / output tokens",
           True, lambda: _col("j_per_output_token") * safe_div(_col("e2e_s"), _OUT)),
    Metric("ed2p_per_output_token_js2", "ED2P per output token", "J*s^2",
           "j_per_output_token x (e2e_s / output tokens)^2", True,
           lambda: _col("j_per_output_token") * safe_div(_col("e2e_s"), _OUT) ** 2),
    # need a parameter: the memory bandwidth (with_roofline), the window T (with_race_to_sleep)
    Metric("roofline_frac", "decode bandwidth use", "fraction", "decode_tok_s x model bytes / memory bandwidth "
           "(CPU-only runs)", False, adaptive=False),
    Metric("race_energy_j", "energy over window T", "J", "request_energy_j + idle power x (T - e2e_s)", True,
           adaptive=False),
)}

#: The metrics adaptive repetitions may watch (``repetitions.adaptive.metric``).
ADAPTIVE_METRICS: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.adaptive)


def energy_is_estimate() -> pl.Expr:
    """Whether a run's energy is an estimate (from the estimate meter, or flagged as one)."""
    return pl.col("flag_estimate").fill_null(False) | (pl.col("energy_source") == "estimate").fill_null(False)


def with_run_metrics(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Every metric that has an expression, added as a column (plus ``has_energy``, ``prefill_s``,
    ``decode_s`` and ``n_output_tokens``, which the report's tables and figures read)."""
    has_energy = _col("energy_j").is_not_null() & (_col("energy_source").fill_null("measured") != "none")
    lf = lf.with_columns(has_energy=has_energy, prefill_s=_PREFILL_S, decode_s=_DECODE_S, n_output_tokens=_OUT)
    for m in METRICS.values():
        if m.expr is not None:
            lf = lf.with_columns(m.expr().alias(m.name))
    return lf


def with_roofline(lf: pl.LazyFrame, memory_bandwidth_gbs: pl.Expr | float | None) -> pl.LazyFrame:
    """``decode_bytes_s`` (decode tok/s x model bytes) and ``roofline_frac`` of the memory bandwidth.

    Decode is memory-bound: tokens/s <= bandwidth / bytes read per token (about the model file;
    Williams, Waterman and Patterson, "Roofline", CACM 2009). Only CPU-only runs get a fraction:
    offloaded layers are read from GPU memory, whose bandwidth is not the one measured.
    """
    bw = pl.lit(None, dtype=pl.Float64) if memory_bandwidth_gbs is None else (
        memory_bandwidth_gbs if isinstance(memory_bandwidth_gbs, pl.Expr) else pl.lit(float(memory_bandwidth_gbs)))
    bytes_s = _col("decode_tok_s") * _col("model_size_bytes").cast(pl.Float64)
    cpu_only = _col("n_gpu_layers").fill_null(0) == 0
    return lf.with_columns(decode_bytes_s=bytes_s,
                           roofline_frac=pl.when(cpu_only).then(safe_div(bytes_s, bw * 1e9)).otherwise(None))


def with_race_to_sleep(lf: pl.LazyFrame, window_s: pl.Expr) -> pl.LazyFrame:
    """Race-to-sleep: configurations compared over one fixed window T, each idling once done:
    E(T) = E_request + P_idle x (T - t_request). Null without energy or idle power, or when T is
    shorter than the request (the comparison needs T >= every configuration's time)."""
    t_active = _col("e2e_s")
    ok = _col("request_energy_j").is_not_null() & _col("idle_power_w").is_not_null() & (window_s >= t_active)
    return lf.with_columns(race_window_s=window_s).with_columns(
        race_idle_energy_j=pl.when(ok).then(_col("idle_power_w") * (_col("race_window_s") - t_active)),
    ).with_columns(race_energy_j=pl.when(ok).then(_col("request_energy_j") + _col("race_idle_energy_j")))


def row_metrics(row: Mapping[str, Any], names: Iterable[str]) -> dict[str, float | None]:
    """Metrics ``names`` of one runs.parquet row (a dict), computed by the one definition."""
    from energybench.results import runs_frame

    names = list(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
    frame = runs_frame([{k: v for k, v in row.items() if k != "domains"}])
    return with_run_metrics(frame.lazy()).select(names).collect().row(0, named=True)


def itl_columns(token_t_ns: list[int], n_gen: int) -> dict[str, float | None]:
    """Inter-token latency percentiles from a run's per-token timestamps.

    Gaps are taken within each decode repeat: the first token of a repeat was sampled at prefill
    time, so the gap before it is not a token interval.
    """
    t = np.asarray(token_t_ns, dtype=np.int64)
    per = max(1, n_gen)
    gaps = [np.diff(t[k:k + per]) for k in range(0, len(t), per) if len(t[k:k + per]) > 1]
    itl_ms = np.concatenate(gaps) / 1e6 if gaps else np.array([])
    if not itl_ms.size:
        return {"itl_p50_ms": None, "itl_p95_ms": None, "itl_max_ms": None}
    return {"itl_p50_ms": float(np.percentile(itl_ms, 50)), "itl_p95_ms": float(np.percentile(itl_ms, 95)),
            "itl_max_ms": float(itl_ms.max())}


def heading(name: str) -> str:
    """A table heading for metric ``name``: its label, with the unit unless the label says it."""
    m = METRICS[name]
    return m.label if m.unit in ("J/tok", "tok/J", "fraction") else f"{m.label}, {m.unit}"


def glossary_markdown() -> str:
    """The README's metric glossary as a Markdown table (name, label, unit, which way is better, formula)."""
    lines = ["| metric | shown as | unit | better | formula |", "|---|---|---|---|---|"]
    lines += [f"| `{m.name}` | {m.label} | {m.unit} | {'lower' if m.lower_is_better else 'higher'} | {m.formula} |"
              for m in METRICS.values()]
    return "\n".join(lines)
