"""The summary of one measured point (what ``measure`` prints): median, spread and warnings of the
headline metrics over its repetitions, each metric read from the vocabulary (:mod:`energybench.metrics`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from energybench.defaults import CV_WARN_PCT, MIN_REPS_FOR_CI
from energybench.gpu_protocol import GpuProtocol
from energybench.metrics import METRICS, with_run_metrics
from energybench.results import read_metadata, read_runs

#: The metrics a point summary shows, in order.
SUMMARY_METRICS = ("ttft_ms", "prefill_tok_s", "decode_tok_s", "itl_p50_ms", "itl_p95_ms", "request_energy_j",
                   "request_energy_net_j", "j_per_output_token", "j_per_output_token_net", "j_per_processed_token",
                   "j_per_processed_token_net", "avg_power_w")


def point_summary(out_dir: Path) -> dict[str, Any]:
    """Median, min, max and CV of every summary metric over the measured (ok, non-warm-up) runs of
    a one-point results directory, energy per domain, and the warnings (the meters' first)."""
    runs = read_runs(out_dir)
    ok = with_run_metrics(runs.filter(~pl.col("is_warmup") & (pl.col("status") == "ok")).lazy()).collect()
    metrics = {name: _spread(ok[name], name) for name in SUMMARY_METRICS if ok[name].drop_nulls().len()}
    first = runs.row(0, named=True) if runs.height else {}
    return {
        "n_runs": runs.height, "n_ok": ok.height, "n_failed": runs.filter(pl.col("status") != "ok").height,
        "model": first.get("model"), "model_sha256": first.get("model_sha256"),
        "synthetic": first.get("model_synthetic"), "backend_mode": first.get("backend_mode"),
        "energy_source": (ok["energy_source"].drop_nulls().unique().to_list() or ["none"])[0],
        "meters": first.get("meters"),
        "metrics": metrics, "domains": _domains(ok),
        "warnings": [*_setup_warnings(read_metadata(out_dir)), *_warnings(runs, ok, metrics)],
    }


def _spread(values: pl.Series, name: str) -> dict[str, Any]:
    vals = values.drop_nulls().cast(pl.Float64)
    mean = vals.mean()
    cv = vals.std() / abs(mean) * 100 if vals.len() > 1 and mean else None
    m = METRICS[name]
    return {"label": m.label, "unit": m.unit, "median": vals.median(), "min": vals.min(), "max": vals.max(),
            "n": vals.len(), "cv_pct": cv}


def _domains(ok: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per energy domain: its meter, and the median average power and window energy over runs."""
    if not ok.height:
        return {}
    per = ok.select("domains").explode("domains").unnest("domains").drop_nulls("domain")
    table = per.group_by("domain", maintain_order=True).agg(
        pl.col("meter", "estimate", "parent", "idle_power_w").first(),
        pl.col("avg_power_w").median(), pl.col("energy_j").median())
    return {r.pop("domain"): r for r in table.iter_rows(named=True)}


def _setup_warnings(meta: dict[str, Any]) -> list[str]:
    """What the measurement's setup said: the meters' warnings, repacking switched off by the AMX
    check, the GPU protocol's changes."""
    out = list(meta.get("meter_warnings", []))
    amx = meta.get("amx") or {}
    if not amx.get("repack_ok", True):
        out.append(amx["reason"])
    proto = meta.get("gpu_protocol")
    if proto and proto.get("points"):
        asked = (meta.get("config") or {}).get("repetitions", {}).get("fixed")
        reps = asked or (meta.get("config") or {}).get("repetitions", {}).get("adaptive", {}).get("min", 1)
        out.append(GpuProtocol.from_settings(proto).note(reps))
    return out


def _warnings(runs: pl.DataFrame, ok: pl.DataFrame, metrics: dict[str, Any]) -> list[str]:
    out = []
    failed = runs.filter(pl.col("status") != "ok")
    if failed.height:
        out.append(f"{failed.height} run(s) failed: {'; '.join(failed['error'].drop_nulls().unique().to_list())[:300]}")
    if ok.height and ok["flag_estimate"].any():
        out.append("energy is an ESTIMATE (no hardware meter available): not a measurement")
    if ok.height and ok["flag_short_window"].fill_null(False).any():
        out.append("some windows are shorter than 10x the meter's update period: energy unreliable (use --min-window)")
    if ok.height and ok["flag_synthetic_model"].any():
        out.append("synthetic model (shape twin with random weights): speed/energy only, no quality")
    for name in ("decode_tok_s", "j_per_output_token"):
        m = metrics.get(name)
        if m and m["cv_pct"] and m["cv_pct"] > CV_WARN_PCT:
            out.append(f"{m['label']} varies a lot between runs (CV {m['cv_pct']:.0f}% > {CV_WARN_PCT:g}%): "
                       "results unstable")
    if 0 < ok.height < MIN_REPS_FOR_CI:
        out.append(f"only {ok.height} repetition(s): use >= {MIN_REPS_FOR_CI} for confidence intervals")
    return out
