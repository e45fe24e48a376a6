"""From result sets to everything a report shows: run metrics, configuration statistics, domains,
recommendations, Pareto front and warnings. Pure computation: no printing, no files written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from energybench.metrics import energy_is_estimate, with_race_to_sleep
from energybench.report import metrics as M
from energybench.report.best import Recommendation, recommend, with_pareto
from energybench.report.fmt import fmt_num
from energybench.report.load import ResultSet, idle_power_from_metadata
from energybench.report.stats import DEFAULT_N_BOOT, MIN_REPS, config_stats, config_warnings

#: Metrics with a bootstrap CI per configuration.
CI_METRICS: tuple[str, ...] = (
    "j_per_output_token", "j_per_output_token_net", "j_per_processed_token", "j_per_processed_token_net", "output_tokens_per_j",
    "request_energy_j", "avg_power_w", "edp_js", "ed2p_js2", "edp_per_output_token_js", "ed2p_per_output_token_js2",
    "e2e_s", "ttft_ms", "prefill_tok_s", "decode_tok_s", "race_energy_j", "ms_per_output_token",
)
#: Metrics reported as the median only.
MEDIAN_METRICS: tuple[str, ...] = (
    "request_energy_net_j", "energy_j", "prefill_energy_j", "decode_energy_j", "prefill_energy_frac", "prefill_j_per_prompt_token",
    "decode_j_per_output_token", "processed_tokens_per_j", "roofline_frac", "decode_bytes_s", "race_idle_energy_j",
    "itl_p50_ms", "itl_p95_ms", "idle_power_w", "n_prompt_tokens", "n_gen_tokens",
)
PEAK_METRICS: tuple[str, ...] = ("peak_power_w",)


@dataclass
class Analysis:
    """Everything derived from the result sets."""

    sets: list[ResultSet]
    runs: pl.DataFrame  # every run, with metrics, ``set`` and ``workload``
    cfg: pl.DataFrame  # one row per (set, point_id)
    domains: pl.DataFrame  # per (set, point_id, domain)
    provenance: pl.DataFrame  # per (set, domain, meter)
    recommendations: list[Recommendation]
    warnings: list[str]
    varied: list[str]  # knob columns that take more than one value
    workloads: list[str]  # most runs first
    windows: dict[str, float]  # workload -> race-to-sleep window T (s)
    window_source: str
    bandwidth: dict[str, tuple[float | None, str]]  # set -> (GB/s, where it came from)
    timeline_runs: list[tuple[str, str, str]] = field(default_factory=list)  # (set, run_id, why)
    study: Any = None  # the original study's tables (energybench.report.study.StudyTables)
    machines: Any = None  # the same configurations on several machines (energybench.crossmachine.CrossMachine)

    @property
    def valid(self) -> pl.DataFrame:
        return self.runs.filter((pl.col("status") == "ok") & ~pl.col("is_warmup").fill_null(False))

    @property
    def multi_set(self) -> bool:
        return len(self.sets) > 1


#: Order in which knobs are preferred when several vary together (ubatch follows batch, mode follows ngl).
KNOB_PREFERENCE = ("n_threads", "n_gpu_layers", "n_batch", "n_ubatch", "n_threads_batch", "flash_attn", "n_ctx",
                   "repack", "backend", "backend_mode")


def independent_knobs(cfg: pl.DataFrame, knobs: Sequence[str]) -> list[str]:
    """The knobs that vary, minus those determined by the ones already chosen (in
    :data:`KNOB_PREFERENCE` order): with ubatch = min(batch, 512) only ``n_batch`` is shown."""
    ordered = [k for k in KNOB_PREFERENCE if k in knobs] + [k for k in knobs if k not in KNOB_PREFERENCE]
    chosen: list[str] = []
    n_combos = 1
    for k in ordered:
        if cfg.select(pl.col(k).drop_nulls().n_unique()).item() <= 1:
            continue
        n = cfg.select([*chosen, k]).unique().height
        if n > n_combos:
            chosen.append(k)
            n_combos = n
    return chosen


def _top_level_idle(meta: dict[str, Any]) -> float | None:
    """Sum of idle power over top-level domains (nested ones, e.g. RAPL core, are inside another)."""
    idle = idle_power_from_metadata(meta)
    if not idle:
        return None
    nested = {d.get("name") for d in meta.get("domains") or [] if isinstance(d, dict) and d.get("parent")}
    for meter in meta.get("meters") or []:  # older layout: domains listed under each meter
        if isinstance(meter, dict):
            for d in meter.get("domains") or []:
                if isinstance(d, dict) and d.get("parent"):
                    nested.add(d.get("name"))
    return float(sum(v for k, v in idle.items() if k not in nested))


def workload_expr() -> pl.Expr:
    """``workload``: model, prompt and generation length, the words a configuration is shown under."""
    # suite prompts read "suite/id"; ids that already carry their kind ("synthetic:64") stand alone
    own = pl.col("prompt_id").is_not_null() & (
        pl.col("prompt_suite").is_null() | pl.col("prompt_id").str.starts_with(pl.col("prompt_suite").fill_null("") + ":"))
    prompt = pl.when(own).then(pl.col("prompt_id")).when(pl.col("prompt_suite").is_not_null()).then(
        pl.concat_str([pl.col("prompt_suite"), pl.lit("/"), pl.col("prompt_id").fill_null("?")]))
    prompt = prompt.when(pl.col("prompt_id").is_not_null()).then(pl.col("prompt_id"))
    prompt = prompt.otherwise(pl.concat_str([pl.lit("prompt "), pl.col("n_prompt").cast(pl.String).fill_null("?"),
                                             pl.lit(" tok")]))
    return pl.concat_str([
        pl.col("model_name").fill_null(pl.col("model")).fill_null("model?"), pl.lit(" | "), prompt,
        pl.lit(" | gen "), pl.col("n_gen").cast(pl.String).fill_null("?"),
    ]).alias("workload")


def _prepare(rs: ResultSet, bandwidth: float | None) -> pl.LazyFrame:
    idle = _top_level_idle(rs.metadata)
    lf = rs.runs.lazy().with_columns(
        set=pl.lit(rs.label),
        idle_power_w=pl.col("idle_power_w").fill_null(pl.lit(idle, dtype=pl.Float64)),
        _bw=pl.lit(bandwidth, dtype=pl.Float64),
    )
    return lf


def analyze(sets: Sequence[ResultSet], *, window_s: float | None = None, n_boot: int = DEFAULT_N_BOOT,
            seed: int = 0, measured_bandwidth_gbs: float | None = None) -> Analysis:
    """Compute every table of the report. ``measured_bandwidth_gbs`` fills sets whose metadata lacks it."""
    sets = list(sets)
    bandwidth = {rs.label: _bandwidth(rs, measured_bandwidth_gbs) for rs in sets}
    lf = pl.concat([_prepare(rs, bandwidth[rs.label][0]) for rs in sets], how="vertical_relaxed")
    runs = M.run_metrics(lf, memory_bandwidth_gbs=pl.col("_bw")).with_columns(workload_expr()).collect()
    runs = with_config_ids(runs, sets)
    if window_s is not None:
        win = runs.select("workload").unique().with_columns(race_window_s=pl.lit(float(window_s)))
        window_source = f"set with --window ({fmt_num(window_s)} s)"
    else:
        win = M.default_race_window(M.valid_runs(runs.lazy()), ["workload"]).collect()
        window_source = "the slowest configuration's median end-to-end time, per workload"
    runs = with_race_to_sleep(runs.lazy().join(win.lazy(), on="workload", how="left"),
                              pl.col("race_window_s")).collect()
    windows = {r["workload"]: r["race_window_s"] for r in win.iter_rows(named=True)
               if r["race_window_s"] is not None}
    valid = M.valid_runs(runs.lazy()).collect()
    knobs = [k for k in M.KNOB_COLUMNS if k in runs.columns]
    cfg = _configurations(runs, valid, knobs, n_boot=n_boot, seed=seed)
    varied = independent_knobs(cfg, knobs)
    shown = varied or [k for k in ("n_threads", "n_gpu_layers", "n_batch") if k in knobs]
    workloads = (valid.group_by("workload").len().sort(["len", "workload"], descending=[True, False])["workload"].to_list()
                 or cfg["workload"].drop_nulls().unique().sort().to_list())

    def values(set_name: str, point_id: str, metric: str) -> np.ndarray | None:
        if metric not in valid.columns:
            return None
        df = valid.filter((pl.col("set") == set_name) & (pl.col("point_id") == point_id))
        return df[metric].cast(pl.Float64).drop_nulls().to_numpy()

    recs = recommend(cfg, values, group_cols=["set", "workload"], knob_cols=shown, fmt=fmt_num,
                     n_boot=n_boot, seed=seed)
    from energybench.report.study import study_tables

    a = Analysis(sets=sets, runs=runs, cfg=cfg, domains=M.domain_summary(runs.lazy()).collect(),
                 provenance=M.domain_provenance(runs.lazy()).collect(), recommendations=recs,
                 warnings=_global_warnings(sets, runs, valid, cfg, bandwidth, windows, window_s), varied=varied,
                 workloads=workloads, windows=windows, window_source=window_source, bandwidth=bandwidth,
                 timeline_runs=_timeline_runs(valid, cfg, recs))
    a.study = study_tables(a, n_boot=n_boot, seed=seed)
    from energybench.crossmachine import cross_machine

    a.machines = cross_machine(sets, valid, n_boot=n_boot, seed=seed)
    return a


def _id_schemes(rs: ResultSet, knob_rows: list[dict[str, Any]]) -> list[Any]:
    """The id schemes of a set: from its stored config's grids, then one from the data itself for
    configurations no grid describes (a config without grids, or runs added with --force)."""
    from energybench.errors import EnergybenchError
    from energybench.grid import data_scheme, id_schemes

    schemes = []
    if isinstance(rs.metadata.get("config"), dict):
        from energybench.config import parse_config

        try:
            schemes = id_schemes(parse_config(rs.metadata["config"], source=f"{rs.root}/metadata.json"))
        except EnergybenchError:  # a config an older version wrote: name from the data alone
            schemes = []
    return [*schemes, data_scheme(knob_rows)]


def with_config_ids(runs: pl.DataFrame, sets: Sequence[ResultSet]) -> pl.DataFrame:
    """Add ``config_id`` (``cpu-t4``, ``gpu-l11``: :mod:`energybench.grid`) to every run."""
    from energybench.grid import CODES, configuration_id

    fields = [f for f in CODES if f in runs.columns]
    key = pl.concat_str([pl.col("set"), *(pl.col(f).cast(pl.String).fill_null("-") for f in fields)], separator="|")
    runs = runs.with_columns(_key=key)
    frames = []
    for rs in sets:
        knobs = runs.filter(pl.col("set") == rs.label).select(["_key", *fields]).unique("_key", maintain_order=True)
        rows = knobs.to_dicts()
        schemes = _id_schemes(rs, rows)
        frames.append(pl.DataFrame({"_key": knobs["_key"], "config_id": [configuration_id(r, schemes) for r in rows]},
                                   schema={"_key": pl.String, "config_id": pl.String}))
    table = pl.concat(frames) if frames else pl.DataFrame(schema={"_key": pl.String, "config_id": pl.String})
    return runs.join(table, on="_key", how="left").drop("_key")


def _bandwidth(rs: ResultSet, measured_gbs: float | None) -> tuple[float | None, str]:
    """The memory bandwidth of a set's machine (GB/s) and where it comes from."""
    if rs.memory_bandwidth_gbs is not None:
        return rs.memory_bandwidth_gbs, "from metadata.json"
    if measured_gbs is not None:
        return measured_gbs, "measured now by the report with a numpy copy; valid only if this machine ran the sweep"
    return None, "missing"


def _configurations(runs: pl.DataFrame, valid: pl.DataFrame, knobs: list[str], *, n_boot: int,
                    seed: int) -> pl.DataFrame:
    """One row per (set, point_id): knobs, workload, counts, flags, metric medians and CIs, warnings,
    Pareto membership; sorted by set, workload and the main knobs."""
    keys = ["set", "point_id"]
    wcols = ["workload", *M.WORKLOAD_COLUMNS, "model", "model_sha256", "model_size_bytes"]
    base = runs.group_by(keys).agg(
        *[pl.col(c).drop_nulls().first() for c in [*knobs, *wcols, "config_id"]],
        n_runs=pl.len(), n_failed=(pl.col("status") != "ok").sum(),
        n_warmup=pl.col("is_warmup").fill_null(False).sum(), first_point_index=pl.col("point_index").min(),
        errors=pl.col("error").drop_nulls().unique().head(3),
    )
    flags = valid.group_by(keys).agg(
        n_short_window=pl.col("flag_short_window").fill_null(False).sum(),
        n_throttled=pl.col("flag_throttled").fill_null(False).sum(),
        any_estimate=energy_is_estimate().any(),
        any_synthetic=(pl.col("model_synthetic").fill_null(False) | pl.col("flag_synthetic_model").fill_null(False)).any(),
        has_energy=pl.col("has_energy").any(),
        energy_sources=pl.col("energy_source").drop_nulls().unique().sort().str.join(","),
        **{m: pl.col(m).median() for m in MEDIAN_METRICS if m in valid.columns},
        **{m: pl.col(m).max() for m in PEAK_METRICS},
        race_window_s=pl.col("race_window_s").first(),
        # the study's latency per token: mean and 95th percentile over the repetitions
        ms_per_output_token_mean=pl.col("ms_per_output_token").mean(),
        ms_per_output_token_p95=pl.col("ms_per_output_token").quantile(0.95, interpolation="linear"),
    )
    stats = config_stats(valid, keys, CI_METRICS, n_boot=n_boot, seed=seed)
    cfg = (base.join(flags, on=keys, how="left").join(stats, on=keys, how="left")
           .with_columns(n_reps=pl.col("n_reps").fill_null(0), n_short_window=pl.col("n_short_window").fill_null(0),
                         n_throttled=pl.col("n_throttled").fill_null(0),
                         any_estimate=pl.col("any_estimate").fill_null(False),
                         any_synthetic=pl.col("any_synthetic").fill_null(False),
                         has_energy=pl.col("has_energy").fill_null(False)))
    # metric columns absent because no valid run exists yet
    missing = [m for m in (*CI_METRICS, *MEDIAN_METRICS) if m not in cfg.columns]
    cfg = cfg.with_columns([pl.lit(None, dtype=pl.Float64).alias(m) for m in missing])
    cfg = with_pareto(cfg.with_columns(warnings=config_warnings(cfg)), group_cols=["set", "workload"])
    order = [k for k in ("n_gpu_layers", "n_threads", "n_batch", "n_ubatch") if k in cfg.columns]
    return cfg.sort(["set", "workload", *order], nulls_last=True)


def _global_warnings(sets: Sequence[ResultSet], runs: pl.DataFrame, valid: pl.DataFrame, cfg: pl.DataFrame,
                     bandwidth: dict[str, tuple[float | None, str]], windows: dict[str, float],
                     window_s: float | None) -> list[str]:
    out: list[str] = []
    multi = len(sets) > 1
    for rs in sets:
        p = f"[{rs.label}] " if multi else ""
        r = runs.filter(pl.col("set") == rs.label)
        v = valid.filter(pl.col("set") == rs.label)
        if rs.synthetic_data:
            out.append(f"{p}synthetic data: written by {rs.metadata.get('generator')}, not measured on any machine")
        out += [f"{p}{note}" for note in rs.notes]
        if r.height == 0:
            out.append(f"{p}no runs yet in {rs.root}: nothing to report (is the sweep still starting?)")
            continue
        if rs.in_progress:
            out.append(f"{p}sweep in progress or interrupted: {r.height} runs so far, not yet consolidated "
                       "(parts/ only); numbers will change as runs arrive")
        if v.height == 0:
            out.append(f"{p}no finished repetition yet (only warm-ups or failed runs): no statistics")
        n_failed = r.filter(pl.col("status") != "ok").height
        if n_failed:
            out.append(f"{p}{n_failed} failed run(s) excluded from the statistics (see the 'failed' column)")
        if v.height and not v["has_energy"].any():
            out.append(f"{p}no energy measured in any run (no usable meter): only latency metrics are reported")
        elif v.height and (v["energy_source"] == "estimate").any():
            out.append(f"{p}energy of {(v['energy_source'] == 'estimate').sum()} runs is an *estimate* "
                       "(TDP x CPU load; -60 % to +190 % error against RAPL), not a measurement")
        if v.height and v["has_energy"].any() and v["idle_power_w"].is_null().all():
            out.append(f"{p}no idle baseline: net energy and race-to-sleep E(T) are unavailable")
        if bandwidth[rs.label][0] is None and v.height:
            out.append(f"{p}no memory_bandwidth_gbs in metadata.json: decode roofline omitted "
                       "(the runner records it; or rerun the report with --measure-bandwidth on the same machine)")
        if v.height and v["model_synthetic"].fill_null(False).any():
            out.append(f"{p}synthetic model (random weights): latency and energy are real, generated text is not")
        bad = cfg.filter((pl.col("set") == rs.label) & (pl.col("n_reps") > 0) & (pl.col("n_reps") < MIN_REPS)).height
        if bad:
            out.append(f"{p}{bad} configuration(s) have fewer than {MIN_REPS} repetitions: their CIs are rough")
    if window_s is not None:
        slow = (valid.group_by(["workload", "set", "point_id"]).agg(pl.col("e2e_s").median())
                .filter(pl.col("e2e_s") > window_s))
        if slow.height:
            out.append(f"--window {fmt_num(window_s)} s is shorter than {slow.height} configuration(s)' time "
                       f"(up to {fmt_num(slow['e2e_s'].max())} s): they get no E(T); use a window >= the slowest")
    return out


def _timeline_runs(valid: pl.DataFrame, cfg: pl.DataFrame, recs: list[Recommendation]) -> list[tuple[str, str, str]]:
    """A handful of runs for the power timeline: per set, the median run of the lowest-J/token
    configuration of the main workload, and of the fastest one when it differs."""
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for set_name in cfg["set"].unique(maintain_order=True).to_list():
        rs_recs = [r for r in recs if r.set == set_name]
        if not rs_recs:
            continue
        main = rs_recs[0].workload
        for obj, why in (("energy", "lowest J/token"), ("latency", "lowest latency")):
            rec = next((r for r in rs_recs if r.workload == main and r.objective == obj), None)
            if rec is None or (set_name, rec.best.point_id) in seen:
                continue
            seen.add((set_name, rec.best.point_id))
            runs = valid.filter((pl.col("set") == set_name) & (pl.col("point_id") == rec.best.point_id))
            if runs.height == 0:
                continue
            target = runs[rec.metric].median()
            pick = runs.with_columns(_d=(pl.col(rec.metric) - target).abs()).sort("_d").row(0, named=True)
            out.append((set_name, pick["run_id"], f"{why}: median run of its configuration"))
        if len(out) >= 4:
            break
    return out


def configuration_records(a: Analysis) -> list[dict[str, Any]]:
    """One JSON-ready record per configuration: identity, knobs, repetitions, and every metric's
    median (and 95 % bootstrap CI where one is computed), named as in :mod:`energybench.metrics`."""
    def num(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None

    out = []
    for r in a.cfg.iter_rows(named=True):
        metrics: dict[str, Any] = {m: {"median": num(r.get(m)), "ci95": [num(r.get(f"{m}_lo")), num(r.get(f"{m}_hi"))]}
                                   for m in CI_METRICS}
        metrics |= {m: {"median": num(r.get(m))} for m in MEDIAN_METRICS}
        out.append({"set": r["set"], "workload": r["workload"], "point_id": r["point_id"], "config_id": r["config_id"],
                    "config": {k: r[k] for k in KNOB_PREFERENCE if k in r}, "n_reps": r["n_reps"],
                    "n_failed": r["n_failed"], "metrics": metrics})
    return out
