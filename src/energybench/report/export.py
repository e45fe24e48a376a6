"""CSV exports: the original study's files, in its layout, so its scripts keep working; then ours.

The study energybench grew from (github.com/csce585-mlsystems/Energy-Aware-LLM-Inference-on-
Consumer-Hardware) kept its data in ``data/``: ``latency_results.csv`` (written by its
src/telemetry.py ``TelemetryLogger.log_latency``), ``power_logs.csv`` (one row per latency row,
same order) and per-run power traces ``raw_cpu_power_<YYYYmmdd_HHMMSS>.csv`` /
``raw_gpu_power_<stamp>.csv``. Its readers (src/analysis/generate_report.py, get_stats.py,
src/demo_server.py) pair the two files by row order after sorting by ``timestamp`` (or, for
``/history``, by backend and nearest timestamp), filter ``timestamp > 2025-11-01`` as naive times,
and parse ``cpu-t|gpu-l|gpu-b`` from ``run_id``. :func:`export_csv` writes exactly that, for the
measured runs only (no warm-up, no failed run), ordered by the time each run ended:

- timestamps are naive ISO times in UTC with milliseconds (its ``utcnow().isoformat(timespec=
  "milliseconds")``), the moment the run ended; the power row carries the same one, so the
  nearest-timestamp matching of ``/history`` pairs every row with its own;
- ``run_id`` is the configuration id (:mod:`energybench.grid`); ``backend`` ``cpu`` or ``gpu``
  (layers offloaded); ``prompt_template`` the suite; ``tokens_generated`` counts tokens, not words;
- ``latency_ms`` and ``energy_joules`` are one request's (``e2e_s`` and ``request_energy_j`` of
  :mod:`energybench.metrics`: prefill and one decode; the whole window when decoding was not
  repeated), so their product is the request's EDP as the study computes it;
- a trace per run and device: the power of its top-level CPU (or GPU) domains over the run,
  ``timestamp,power_w``, named by the run's start (UTC; ``_2``, ``_3`` ... when runs share a second).

Ours go beside them under their own names: ``power_samples.csv`` (every meter sample as power),
``runs.csv``, ``configurations.csv``, ``domains.csv``, ``domain_runs.csv``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import polars as pl

from energybench.report.analysis import Analysis
from energybench.report.load import ResultSet, sample_sources
from energybench.report.metrics import domain_runs, samples_power, valid_runs
from energybench.results import SAMPLES_SCHEMA

#: The columns of the study's data/latency_results.csv, in its order.
LATENCY_RESULTS_COLUMNS = ("timestamp", "run_id", "backend", "prompt_id", "prompt_template", "prompt_length_chars",
                           "latency_ms", "tokens_generated", "energy_joules", "notes")
#: The columns of the study's data/power_logs.csv.
POWER_LOGS_COLUMNS = ("timestamp", "backend", "energy_joules", "notes")
#: The columns of its raw_gpu_power_<stamp>.csv (and of our raw_cpu_power_<stamp>.csv).
TRACE_COLUMNS = ("timestamp", "power_w")
#: Our power_samples.csv: one row per meter sample, power in watts for every domain (for counters:
#: the average since the previous sample), the counter's cumulative joules, and NVML's aux channels.
POWER_SAMPLES_COLUMNS = ("timestamp", "run_id", "meter", "domain", "t_s", "power_w", "energy_j", "sm_clock_mhz",
                         "mem_clock_mhz", "temperature_c", "pstate", "throttle_reasons", "mem_used_bytes")
#: The study's timestamp format: naive ISO 8601 with milliseconds.
STUDY_TIME = "%Y-%m-%dT%H:%M:%S%.3f"


@lru_cache(maxsize=64)
def _suite_lengths(suite: str) -> dict[str, int]:
    """prompt id -> length in characters, from a shipped prompt suite (empty if unknown)."""
    from energybench.errors import EnergybenchError
    from energybench.prompts import load_suite

    try:
        return {p.id: len(p.text) for p in load_suite(suite)}
    except EnergybenchError:  # e.g. "synthetic": no suite, no text
        return {}


def study_runs(runs: pl.DataFrame) -> pl.DataFrame:
    """The measured runs of one set in the study's order (by end time), with the study's values:
    ``_ts`` (end), ``_stamp`` (start, for trace names), ``_backend``, ``_template``, ``_chars``."""
    v = valid_runs(runs.lazy()).collect()
    end = pl.col("started_at") + pl.duration(nanoseconds=pl.col("t_end_ns") - pl.col("t_start_ns"))
    chars = [_suite_lengths(s).get(p) if s and p else None
             for s, p in zip(v["prompt_suite"].to_list(), v["prompt_id"].to_list(), strict=True)]
    v = v.with_columns(_end=end, _chars=pl.Series(chars, dtype=pl.Int64)).sort(["_end", "run_id"])
    stamps = _trace_stamps(v["started_at"].dt.strftime("%Y%m%d_%H%M%S").to_list())
    return v.with_columns(
        _ts=pl.col("_end").dt.strftime(STUDY_TIME), _stamp=pl.Series(stamps, dtype=pl.String),
        _backend=pl.when(pl.col("n_gpu_layers").fill_null(0) == 0).then(pl.lit("cpu")).otherwise(pl.lit("gpu")),
        _template=pl.col("prompt_suite").fill_null(pl.when(pl.col("prompt_id").is_null()).then(pl.lit("synthetic"))
                                                   .otherwise(pl.lit("text"))),
    )


def _trace_stamps(seconds: list[str]) -> list[str]:
    """Unique trace names from start seconds: ``20251207_200559``, then ``20251207_200559_2`` ..."""
    seen: dict[str, int] = {}
    out = []
    for s in seconds:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}_{seen[s]}")
    return out


def latency_results(v: pl.DataFrame) -> pl.DataFrame:
    """The study's latency_results.csv rows from :func:`study_runs`."""
    flags = pl.concat_list([
        pl.when(pl.col("energy_source") == "estimate").then(pl.lit("energy estimate")),
        pl.when(pl.col("flag_short_window").fill_null(False)).then(pl.lit("short window")),
        pl.when(pl.col("flag_throttled").fill_null(False)).then(pl.lit("throttled")),
        pl.when(pl.col("model_synthetic").fill_null(False)).then(pl.lit("synthetic model")),
        pl.when(pl.col("n_repeats").fill_null(1) > 1).then(pl.format("decode repeated x{}", pl.col("n_repeats"))),
    ]).list.drop_nulls().list.join("; ")
    ident = pl.format("energybench run={}; rep={}; trace={}", pl.col("run_id"), pl.col("rep_index"), pl.col("_stamp"))
    return v.select(
        timestamp=pl.col("_ts"), run_id=pl.col("config_id"), backend=pl.col("_backend"),
        prompt_id=pl.col("prompt_id").fill_null(pl.format("synthetic-{}", pl.col("n_prompt"))),
        prompt_template=pl.col("_template"), prompt_length_chars=pl.col("_chars"),
        latency_ms=(pl.col("e2e_s") * 1e3).round(3),
        tokens_generated=(pl.col("n_gen_tokens") // pl.col("n_repeats").fill_null(1).clip(lower_bound=1)),
        energy_joules=pl.col("request_energy_j").round(6),
        notes=pl.concat_str([ident, flags], separator="; ", ignore_nulls=True).str.strip_chars("; "),
    )


def power_logs(v: pl.DataFrame) -> pl.DataFrame:
    """The study's power_logs.csv rows: one per latency row, in the same order and time."""
    return v.select(timestamp=pl.col("_ts"), backend=pl.col("_backend"), energy_joules=pl.col("request_energy_j").round(6),
                    notes=pl.format("prompt={}", pl.col("prompt_id").fill_null(pl.format("synthetic-{}", pl.col("n_prompt")))))


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


def _top_domains(rs: ResultSet) -> pl.DataFrame:
    """Top-level domains (no parent) of a set and the trace each feeds: ``cpu`` or ``gpu``."""
    rows = [d for d in rs.metadata.get("domains") or [] if isinstance(d, dict) and not d.get("parent")]
    kinds = [("gpu" if str(d.get("component") or "").startswith("gpu") else
              "cpu" if str(d.get("component") or "").startswith("cpu") else None) for d in rows]
    return pl.DataFrame({"domain": [str(d.get("name")) for d in rows], "_trace": kinds},
                        schema={"domain": pl.String, "_trace": pl.String}).drop_nulls()


def power_traces(rs: ResultSet, v: pl.DataFrame) -> dict[tuple[str, str], pl.DataFrame]:
    """(``cpu``|``gpu``, stamp) -> ``timestamp,power_w`` of each measured run: the power of its
    top-level CPU (GPU) domains, summed per sample, at each sample's wall-clock time."""
    scan = _scan_samples(rs)
    doms = _top_domains(rs)
    if scan is None or v.height == 0 or doms.height == 0:
        return {}
    runs = v.select("run_id", "_stamp", "started_at", "t_start_ns").lazy()
    power = (samples_power(scan.filter(pl.col("run_id").is_in(v["run_id"].implode())), stamp="end", changes_only=True)
             .join(doms.lazy(), on="domain").join(runs, on="run_id")
             .group_by(["_trace", "_stamp", "run_id", "t_ns"]).agg(pl.col("power_w").sum(), pl.col("started_at").first(),
                                                                  pl.col("t_start_ns").first())
             .with_columns(timestamp=(pl.col("started_at") + pl.duration(nanoseconds=pl.col("t_ns") - pl.col("t_start_ns")))
                           .dt.strftime(STUDY_TIME), power_w=pl.col("power_w").round(3))
             .sort(["_trace", "_stamp", "t_ns"]).collect())
    return {(str(k[0]), str(k[1])): df.select(TRACE_COLUMNS)
            for k, df in power.partition_by(["_trace", "_stamp"], as_dict=True, maintain_order=True).items()}


def power_samples(rs: ResultSet, runs: pl.DataFrame) -> pl.LazyFrame | None:
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
            .select(list(POWER_SAMPLES_COLUMNS)))


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


def _export_set(rs: ResultSet, runs: pl.DataFrame, d: Path) -> list[Path]:
    """The study's files and power_samples.csv of one set, in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    for old in [*d.glob("raw_cpu_power_*.csv"), *d.glob("raw_gpu_power_*.csv")]:
        old.unlink()  # traces of an earlier export must not pass for this one's
    v = study_runs(runs)
    written = [d / "latency_results.csv", d / "power_logs.csv"]
    latency_results(v).write_csv(written[0])
    power_logs(v).write_csv(written[1])
    for (kind, stamp), df in power_traces(rs, v).items():
        p = d / f"raw_{kind}_power_{stamp}.csv"
        df.write_csv(p)
        written.append(p)
    p = d / "power_samples.csv"
    samples = power_samples(rs, runs)
    if samples is not None:
        samples.sink_csv(p)
    else:
        pl.DataFrame(schema={c: pl.String for c in POWER_SAMPLES_COLUMNS}).write_csv(p)
    return [*written, p]


def export_csv(a: Analysis, out_dir: Path) -> list[Path]:
    """Write the study's ``latency_results.csv``, ``power_logs.csv`` and ``raw_*_power_*.csv`` and our
    ``power_samples.csv`` (per set), then ``runs.csv``, ``configurations.csv``, ``domains.csv`` and
    ``domain_runs.csv``, under ``out_dir/tables`` (``tables/<set>/`` per set when there are several)."""
    base = out_dir / "tables"
    base.mkdir(parents=True, exist_ok=True)
    written = []
    for rs in a.sets:
        runs = a.runs.filter(pl.col("set") == rs.label)
        written += _export_set(rs, runs, base / rs.label if a.multi_set else base)
    for name, df in (("runs.csv", a.runs.drop("_bw", strict=False)), ("configurations.csv", a.cfg),
                     ("domains.csv", a.domains),
                     ("domain_runs.csv", domain_runs(a.runs.lazy()).drop("status").collect())):
        p = base / name
        _flat(df).write_csv(p)
        written.append(p)
    return written
