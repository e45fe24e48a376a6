"""CSV exports: the original study's ``latency_results.csv`` and ``power_logs.csv`` (so its scripts
and dashboards keep working; github.com/csce585-mlsystems/Energy-Aware-LLM-Inference-on-Consumer-Hardware,
data/), plus our full tables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import polars as pl

from energybench.report.analysis import Analysis
from energybench.report.load import ResultSet, sample_sources
from energybench.report.metrics import samples_power
from energybench.results import SAMPLES_SCHEMA

#: The columns of the original study's data/latency_results.csv, in its order (§1).
LATENCY_RESULTS_COLUMNS = ("timestamp", "backend", "prompt_id", "prompt_template", "prompt_length_chars",
                           "latency_ms", "tokens_generated", "energy_joules", "notes")
#: Our power_logs.csv: one row per meter sample, power in watts for every domain (for counters: the
#: average since the previous sample), the counter's cumulative joules, and NVML's aux channels.
POWER_LOGS_COLUMNS = ("timestamp", "run_id", "meter", "domain", "t_s", "power_w", "energy_j", "sm_clock_mhz",
                      "mem_clock_mhz", "temperature_c", "pstate", "throttle_reasons", "mem_used_bytes")


@lru_cache(maxsize=64)
def _suite_prompts(suite: str) -> dict[str, tuple[int, str]]:
    """prompt id -> (length in characters, template), from the shipped prompt suites (empty if unknown)."""
    try:
        from energybench.prompts import load_suite
    except ImportError:  # pragma: no cover - the prompts package ships with energybench
        return {}
    try:
        prompts = load_suite(suite)
    except Exception:  # noqa: BLE001 - an unknown suite (e.g. "synthetic") just has no texts
        return {}
    return {p.id: (len(p.text), p.template) for p in prompts}


def latency_results(runs: pl.DataFrame, knobs: list[str]) -> pl.DataFrame:
    """The original study's latency_results.csv rows: one per run (warm-ups and failures noted).

    ``backend`` is the backend and its mode (``llama.cpp/cpu``); ``prompt_template`` and
    ``prompt_length_chars`` come from the shipped suite (a synthetic prompt has no text: its template is
    the suite name and its length empty, its token count is in ``notes``); ``tokens_generated`` counts tokens
    (not words, the original's flaw); ``energy_joules`` is the gross measured energy of the run
    window (empty when none); ``notes`` carries the configuration, repetition and flags.
    """
    found = [(_suite_prompts(s).get(p) if s and p else None) or (None, None)
             for s, p in zip(runs["prompt_suite"].to_list(), runs["prompt_id"].to_list(), strict=True)]
    knob_txt = pl.concat_str([pl.format(f"{k}={{}}", pl.col(k).cast(pl.String).fill_null("")) for k in knobs],
                             separator=" ") if knobs else pl.lit("")
    flags = pl.concat_list([
        pl.when(pl.col("is_warmup").fill_null(False)).then(pl.lit("warmup")),
        pl.when(pl.col("status") != "ok").then(pl.format("failed: {}", pl.col("error").fill_null("?"))),
        pl.when(pl.col("energy_source") == "estimate").then(pl.lit("energy estimate")),
        pl.when(pl.col("flag_short_window").fill_null(False)).then(pl.lit("short window")),
        pl.when(pl.col("flag_throttled").fill_null(False)).then(pl.lit("throttled")),
        pl.when(pl.col("model_synthetic").fill_null(False)).then(pl.lit("synthetic model")),
    ]).list.drop_nulls().list.join("; ")
    runs = runs.with_columns(_template=pl.Series([f[1] for f in found], dtype=pl.String),
                             _chars=pl.Series([f[0] for f in found], dtype=pl.Int64))
    return runs.select(
        timestamp=pl.col("started_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ"),
        backend=pl.concat_str([pl.col("backend").fill_null("llama.cpp"), pl.col("backend_mode")], separator="/",
                              ignore_nulls=True),
        prompt_id=pl.col("prompt_id").fill_null(pl.format("synthetic-{}", pl.col("n_prompt"))),
        prompt_template=pl.col("_template").fill_null(pl.col("prompt_suite").fill_null("synthetic")),
        prompt_length_chars=pl.col("_chars"),
        latency_ms=pl.when(pl.col("status") == "ok").then(pl.col("e2e_s") * 1e3),
        tokens_generated=pl.col("n_gen_tokens"),
        energy_joules=pl.col("energy_j"),
        notes=pl.concat_str([pl.format("run={} point={} rep={} prompt_tokens={}", pl.col("run_id"), pl.col("point_id"),
                                       pl.col("rep_index"), pl.col("n_prompt_tokens")), knob_txt, flags],
                            separator="; ", ignore_nulls=True),
    )


def _scan_samples(rs: ResultSet) -> pl.LazyFrame | None:
    paths = sample_sources(rs)
    if not paths:
        return None
    scans = []
    for p in paths:
        present = pl.read_parquet_schema(p)
        scans.append(pl.scan_parquet(p).select(
            [pl.col(c).cast(t, strict=False) if c in present else pl.lit(None, dtype=t).alias(c)
             for c, t in SAMPLES_SCHEMA.items()]))
    return pl.concat(scans, how="vertical")


def power_logs(rs: ResultSet, runs: pl.DataFrame) -> pl.LazyFrame | None:
    """Every sample of a set as power (counters differenced), seconds since its run's start, and a
    wall-clock timestamp when metadata has ``clock_offset_ns`` (wall = monotonic + offset)."""
    scan = _scan_samples(rs)
    if scan is None:
        return None
    starts = runs.select("run_id", "t_start_ns").lazy()
    offset = rs.metadata.get("clock_offset_ns")
    ts = (pl.from_epoch(pl.col("t_ns") + int(offset), time_unit="ns").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")
          if isinstance(offset, (int, float)) else pl.lit(None, dtype=pl.String))
    first_t = pl.col("t_ns").min().over("run_id")
    return (samples_power(scan.with_columns(raw=pl.col("value")), stamp="end")
            .join(starts, on="run_id", how="left")
            .with_columns(timestamp=ts,
                          t_s=(pl.col("t_ns") - pl.coalesce(pl.col("t_start_ns"), first_t)) / 1e9,
                          energy_j=pl.when(pl.col("unit") == "J").then(pl.col("raw")))
            .select(list(POWER_LOGS_COLUMNS)))


def _flat(df: pl.DataFrame) -> pl.DataFrame:
    """Drop/flatten columns CSV cannot hold (lists, structs)."""
    exprs = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.List) and dtype.inner == pl.String:
            exprs.append(pl.col(name).list.join("; "))
        elif isinstance(dtype, (pl.List, pl.Struct, pl.Array)):
            continue
        else:
            exprs.append(pl.col(name))
    return df.select(exprs)


def export_csv(a: Analysis, out_dir: Path) -> list[Path]:
    """Write ``latency_results.csv``, ``power_logs.csv`` (per set), ``runs.csv``,
    ``configurations.csv``, ``domains.csv`` and ``domain_runs.csv`` under ``out_dir/tables``."""
    from energybench.report.metrics import domain_runs

    base = out_dir / "tables"
    base.mkdir(parents=True, exist_ok=True)
    written = []
    knobs = a.varied or ["n_threads"]
    for rs in a.sets:
        d = base / rs.label if a.multi_set else base
        d.mkdir(parents=True, exist_ok=True)
        runs = a.runs.filter(pl.col("set") == rs.label)
        p = d / "latency_results.csv"
        latency_results(runs, knobs).write_csv(p)
        written.append(p)
        logs = power_logs(rs, runs)
        p = d / "power_logs.csv"
        if logs is not None:
            logs.sink_csv(p)
        else:
            pl.DataFrame(schema={c: pl.String for c in POWER_LOGS_COLUMNS}).write_csv(p)
        written.append(p)
    for name, df in (("runs.csv", a.runs.drop("_bw", strict=False)), ("configurations.csv", a.cfg),
                     ("domains.csv", a.domains),
                     ("domain_runs.csv", domain_runs(a.runs.lazy()).drop("status").collect())):
        p = base / name
        _flat(df).write_csv(p)
        written.append(p)
    return written
