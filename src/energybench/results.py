"""Results on disk: schema, crash-safe writer, readers.

Layout of a results directory (``measure`` and ``sweep`` write the same one)::

    DIR/metadata.json        host, build, meters, models, config and its hash, idle baselines
    DIR/journal.jsonl        one line per finished run (appended + fsynced after its parts exist)
    DIR/parts/runs-<run_id>.parquet     one row: that run
    DIR/parts/samples-<run_id>.parquet  that run's meter samples
    DIR/runs.parquet         consolidated (written when a sweep finishes)
    DIR/samples.parquet      consolidated

Every part is written to a temporary name, fsynced and renamed, so a ``kill -9`` at any moment
loses at most the run in progress. Readers accept the consolidated files, the parts, or both
(parts newer than the consolidated file win; duplicates by ``run_id`` are dropped).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from energybench.errors import ResultsError
from energybench.storage import is_url

SCHEMA_VERSION = 1

DOMAIN_STRUCT = pl.Struct(
    {
        "domain": pl.String,  # e.g. cpu-package-0, dram-0, gpu-0
        "meter": pl.String,  # a registry name (rapl, nvml, hwmon, ...) or an attached log (powerlog, nvidia-smi, wall-csv)
        "kind": pl.String,  # energy (cumulative counter) | power (sampled watts)
        "component": pl.String,  # cpu, dram, gpu, psys, cpu-core, uncore, ...
        "parent": pl.String,  # domain that contains this one (never added to totals)
        "estimate": pl.Boolean,
        "source": pl.String,  # provenance: sysfs path, NVML call, formula
        "update_period_s": pl.Float64,  # the meter's own refresh period
        "sample_period_s": pl.Float64,  # how often we sampled it
        "n_samples": pl.Int64,
        "energy_j": pl.Float64,  # gross, whole window
        "energy_net_j": pl.Float64,  # minus idle_power_w x window
        "prefill_energy_j": pl.Float64,
        "decode_energy_j": pl.Float64,
        "avg_power_w": pl.Float64,
        "peak_power_w": pl.Float64,
        "idle_power_w": pl.Float64,
    }
)

#: One row per run (a repetition or a warm-up of one grid point). Columns with units in the name.
RUNS_SCHEMA: dict[str, pl.DataType] = {
    # identity
    "run_id": pl.String,
    "sweep_id": pl.String,
    "point_id": pl.String,
    "point_index": pl.Int32,
    "rep_index": pl.Int32,
    "is_warmup": pl.Boolean,
    "status": pl.String,  # ok | failed
    "error": pl.String,
    "stderr_tail": pl.String,
    "started_at": pl.Datetime("us", "UTC"),
    # configuration
    "model": pl.String,  # the reference as the user wrote it
    "model_name": pl.String,
    "model_sha256": pl.String,
    "model_synthetic": pl.Boolean,
    "model_size_bytes": pl.Int64,
    "model_quant": pl.String,
    "backend": pl.String,  # llama.cpp
    "backend_mode": pl.String,  # cpu | <backend>-partial | <backend>-full (cuda, metal, vulkan, hip, sycl...; gpu: unknown)
    "load_group": pl.String,
    "n_threads": pl.Int32,
    "n_threads_batch": pl.Int32,
    "n_gpu_layers": pl.Int32,
    "n_batch": pl.Int32,
    "n_ubatch": pl.Int32,
    "n_ctx": pl.Int32,
    "flash_attn": pl.String,
    "repack": pl.Boolean,
    "prompt_suite": pl.String,
    "prompt_id": pl.String,
    "n_prompt": pl.Int32,  # requested
    "n_gen": pl.Int32,  # requested
    "seed": pl.Int64,
    # timings (monotonic ns, same clock as samples.t_ns)
    "t_start_ns": pl.Int64,
    "t_prefill_end_ns": pl.Int64,
    "t_end_ns": pl.Int64,
    "window_s": pl.Float64,
    "ttft_ms": pl.Float64,
    "prefill_s": pl.Float64,
    "decode_s": pl.Float64,
    "prefill_tok_s": pl.Float64,
    "decode_tok_s": pl.Float64,
    "itl_p50_ms": pl.Float64,
    "itl_p95_ms": pl.Float64,
    "itl_max_ms": pl.Float64,
    "n_prompt_tokens": pl.Int32,  # evaluated (x n_repeats)
    "n_gen_tokens": pl.Int32,  # generated (x n_repeats)
    "n_repeats": pl.Int32,  # > 1 when --min-window repeated generation
    "token_t_ns": pl.List(pl.Int64),
    "model_load_s": pl.Float64,  # load that preceded this run (null if reused)
    "gap_before_s": pl.Float64,  # GPU protocol: the random pause before this run (null otherwise)
    "gpu_mem_used_bytes": pl.Int64,
    # llama.cpp's own counters, beside ours
    "perf_t_p_eval_ms": pl.Float64,
    "perf_t_eval_ms": pl.Float64,
    "perf_n_p_eval": pl.Int32,
    "perf_n_eval": pl.Int32,
    # energy: totals over top-level domains (no nested ones), gross and idle-subtracted
    "energy_source": pl.String,  # measured | estimate | none
    "meters": pl.String,  # comma-separated meter names that contributed
    "energy_j": pl.Float64,
    "energy_net_j": pl.Float64,
    "prefill_energy_j": pl.Float64,
    "decode_energy_j": pl.Float64,
    "prefill_energy_net_j": pl.Float64,
    "decode_energy_net_j": pl.Float64,
    "idle_power_w": pl.Float64,
    "avg_power_w": pl.Float64,
    "peak_power_w": pl.Float64,
    "sample_jitter_p99_ms": pl.Float64,
    "domains": pl.List(DOMAIN_STRUCT),
    # flags
    "flag_short_window": pl.Boolean,  # window < 10x the slowest meter's update period
    "flag_throttled": pl.Boolean,
    "flag_synthetic_model": pl.Boolean,
    "flag_estimate": pl.Boolean,
}

#: One row per meter sample: the time series behind every energy number.
SAMPLES_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String,  # or "idle-<n>" for idle baselines
    "meter": pl.String,
    "domain": pl.String,
    "t_ns": pl.Int64,
    "value": pl.Float64,
    "unit": pl.String,  # J (cumulative since meter open) | W
    "sm_clock_mhz": pl.Float64,
    "mem_clock_mhz": pl.Float64,
    "temperature_c": pl.Float64,
    "pstate": pl.Float64,
    "throttle_reasons": pl.Float64,
    "mem_used_bytes": pl.Float64,
}

SAMPLE_AUX_COLUMNS = [c for c in SAMPLES_SCHEMA if c not in ("run_id", "meter", "domain", "t_ns", "value", "unit")]


def empty_samples() -> pl.DataFrame:
    return pl.DataFrame(schema=SAMPLES_SCHEMA)


def runs_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Build a runs frame with the exact schema (missing columns become null, extra keys rejected)."""
    rows = list(rows)
    for row in rows:
        extra = set(row) - set(RUNS_SCHEMA)
        if extra:
            raise ValueError(f"unknown runs columns: {sorted(extra)}")
    return pl.DataFrame([{k: row.get(k) for k in RUNS_SCHEMA} for row in rows], schema=RUNS_SCHEMA)


def conform(df: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Add missing columns as nulls, cast to the schema, order columns (old files stay readable)."""
    exprs = []
    for name, dtype in schema.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype, strict=False))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(exprs)


# ----------------------------------------------------------------------------- atomic writes


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # directories cannot be fsynced on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + fsync + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_parquet(df: pl.DataFrame, path: Path, *, sync_dir: bool = True) -> None:
    """Write ``df`` through a temp file + fsync + rename (``sync_dir``: also fsync the directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.write_parquet(tmp, compression="zstd", statistics=True)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, *, indent: int | None = 2) -> None:
    """``obj`` as JSON, keys sorted; ``indent=None``: compact, for large documents (Python's C encoder
    serves only unindented output: indenting 10,000 configurations costs a second)."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=str, separators=None if indent else (",", ":"))
    atomic_write_bytes(path, (text + "\n").encode())


def safe_run_id(run_id: str) -> str:
    ok = all(c.isalnum() or c in "-_.:" for c in run_id)
    if not ok or not run_id or run_id.startswith("."):
        raise ValueError(f"run_id {run_id!r} must be letters, digits and -_.: only")
    return run_id.replace(":", "_")


# ----------------------------------------------------------------------------- the store


class ResultsStore:
    """A results directory being written. Each ``add_run`` is durable when it returns."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.parts = self.root / "parts"

    @property
    def location(self) -> Path | str:
        """Where the results end up (a URL for a store that uploads them)."""
        return self.root

    # -- metadata
    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.json"

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.jsonl"

    def create(self, metadata: Mapping[str, Any]) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        meta = dict(metadata)
        meta.setdefault("schema_version", SCHEMA_VERSION)
        atomic_write_json(self.metadata_path, meta)

    def read_metadata(self) -> dict[str, Any]:
        return read_metadata(self.root)

    def update_metadata(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_metadata()
        meta.update(changes)
        atomic_write_json(self.metadata_path, meta)
        return meta

    # -- runs
    def add_run(self, row: Mapping[str, Any], samples: pl.DataFrame | None = None) -> None:
        """Persist one run (row + its samples); journal it last, so the journal never lies."""
        run_id = str(row["run_id"])
        stem = safe_run_id(run_id)
        # Each part is fsynced before its rename (a kill -9 or a crash can never leave a torn
        # file under a final name); one directory fsync then covers both renames.
        if samples is not None and samples.height:
            atomic_write_parquet(conform(samples, SAMPLES_SCHEMA), self.parts / f"samples-{stem}.parquet",
                                 sync_dir=False)
        atomic_write_parquet(runs_frame([row]), self.parts / f"runs-{stem}.parquet")
        self._journal({"event": "run", "run_id": run_id, "status": row.get("status")}, sync=False)

    def add_samples(self, name: str, samples: pl.DataFrame) -> None:
        """Persist samples that belong to no run (idle baselines)."""
        stem = safe_run_id(name)
        atomic_write_parquet(conform(samples, SAMPLES_SCHEMA), self.parts / f"samples-{stem}.parquet")
        self._journal({"event": "samples", "name": name})

    def _journal(self, entry: Mapping[str, Any], *, sync: bool = True) -> None:
        """Append to the journal: a human-readable log; the part files are the source of truth."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(dict(entry), sort_keys=True) + "\n"
        with open(self.journal_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            if sync:
                os.fsync(f.fileno())

    def remove_stale_temp_files(self) -> int:
        """Delete temp files a killed writer left behind (never read as results); returns the count."""
        n = 0
        for d in (self.root, self.parts):
            if d.is_dir():
                for p in d.glob(".*.tmp"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n

    def part_files(self) -> list[Path]:
        """The part files now on disk (list them before reading, to pass to :meth:`rewrite`)."""
        return sorted(self.parts.glob("*.parquet")) if self.parts.is_dir() else []

    def rewrite(self, runs: pl.DataFrame, samples: pl.DataFrame, merged_parts: Iterable[Path] = ()) -> None:
        """Replace every run and sample (an edit of finished results, e.g. ``attach``).

        Both files are written whole under temporary names and fsynced before either is renamed
        over the old one (samples first: a crash between the renames leaves the old runs beside
        the new samples, which keep every old sample that was not replaced). ``merged_parts``:
        the parts the frames were read from (:meth:`part_files` before reading), removed last;
        parts written meanwhile stay.
        """
        staged = []
        try:
            for df, schema, name in ((samples, SAMPLES_SCHEMA, "samples.parquet"), (runs, RUNS_SCHEMA, "runs.parquet")):
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.root)
                os.close(fd)
                staged.append((Path(tmp), self.root / name))
                conform(df, schema).write_parquet(tmp, compression="zstd", statistics=True)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in staged:
            os.replace(tmp, final)
        _fsync_dir(self.root)
        for p in merged_parts:
            Path(p).unlink(missing_ok=True)

    def consolidate(self) -> tuple[Path, Path]:
        """Merge parts into runs.parquet / samples.parquet, then remove the merged parts."""
        runs = read_runs(self.root)
        samples = read_samples(self.root)
        runs_path, samples_path = self.root / "runs.parquet", self.root / "samples.parquet"
        atomic_write_parquet(runs, runs_path)
        atomic_write_parquet(samples, samples_path)
        if self.parts.is_dir():
            for p in self.parts.glob("*.parquet"):
                p.unlink()
        return runs_path, samples_path


# ----------------------------------------------------------------------------- readers


def _check_dir(root: Path) -> Path:
    root = Path(root)
    if root.is_file() and root.suffix == ".parquet":
        return root
    if not root.is_dir():
        raise ResultsError(f"results directory {str(root)!r} does not exist",
                           hint="pass the directory that measure or sweep wrote (it holds metadata.json)")
    if not (root / "metadata.json").exists() and not (root / "runs.parquet").exists() and not (root / "parts").is_dir():
        raise ResultsError(f"{str(root)!r} is not an energybench results directory (no metadata.json, runs.parquet or parts/)")
    return root


def _read_many(paths: list[Path], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    frames = []
    for p in paths:
        try:
            frames.append(conform(pl.read_parquet(p), schema))
        except Exception as exc:  # noqa: BLE001 - report which file
            raise ResultsError(f"cannot read {p}: {exc}") from exc
    if not frames:
        return pl.DataFrame(schema=dict(schema))
    return pl.concat(frames, how="vertical")


def read_runs(root: Path | str) -> pl.DataFrame:
    """All runs of a results directory (consolidated and/or parts), one row per run_id."""
    if is_url(root):
        from energybench.storage import read_runs as read_url

        return read_url(str(root))
    root = _check_dir(Path(root))
    if root.is_file():
        return conform(pl.read_parquet(root), RUNS_SCHEMA)
    paths = []
    cons = root / "runs.parquet"
    if cons.exists():
        paths.append(cons)
    if (root / "parts").is_dir():
        paths.extend(sorted((root / "parts").glob("runs-*.parquet")))
    df = _read_many(paths, RUNS_SCHEMA)
    # parts come after the consolidated file: keep the last occurrence of each run_id
    return df.unique(subset=["run_id"], keep="last", maintain_order=True)


def read_samples(root: Path | str, run_ids: Iterable[str] | None = None) -> pl.DataFrame:
    """Meter samples of a results directory (optionally only some runs)."""
    if is_url(root):
        from energybench.storage import read_samples as read_url

        return read_url(str(root), run_ids)
    root = _check_dir(Path(root))
    if root.is_file():
        return empty_samples()
    paths = []
    cons = root / "samples.parquet"
    if cons.exists():
        paths.append(cons)
    if (root / "parts").is_dir():
        paths.extend(sorted((root / "parts").glob("samples-*.parquet")))
    if run_ids is None:
        df = _read_many(paths, SAMPLES_SCHEMA)
    else:
        wanted = list(run_ids)
        frames = [pl.scan_parquet(p).filter(pl.col("run_id").is_in(wanted)).collect() for p in paths]
        df = pl.concat([conform(f, SAMPLES_SCHEMA) for f in frames]) if frames else empty_samples()
    return df.unique(subset=["run_id", "meter", "domain", "t_ns"], keep="last", maintain_order=True)


def read_metadata(root: Path | str) -> dict[str, Any]:
    if is_url(root):
        from energybench.storage import join, read_json

        return read_json(str(join(str(root), "metadata.json")))
    root = Path(root)
    path = root / "metadata.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"cannot read {path}: {exc}") from exc
