"""Reading result sets for a report: runs (consolidated or in-progress parts), metadata, samples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from energybench.errors import ResultsError
from energybench.results import SAMPLES_SCHEMA, conform, empty_samples, read_metadata, read_runs, read_samples, \
    safe_run_id
from energybench.storage import is_url, name_of, parent_of, sample_objects


@dataclass
class ResultSet:
    """One results directory as the report sees it."""

    label: str
    root: Path | str  # a directory, or an s3:// URL
    runs: pl.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    in_progress: bool = False  # parts present: a sweep running or interrupted before consolidation
    shards: list[ResultSet] = field(default_factory=list)  # the shards merged into this set (energybench.shard)
    notes: list[str] = field(default_factory=list)  # set-wide warnings found while reading it

    @property
    def memory_bandwidth_gbs(self) -> float | None:
        bw = self.metadata.get("memory_bandwidth_gbs")
        try:
            return float(bw) if bw is not None and float(bw) > 0 else None
        except (TypeError, ValueError):
            return None

    @property
    def synthetic_data(self) -> bool:
        """The directory was written by the synthetic generator, not measured."""
        return bool(self.metadata.get("generator"))


def idle_power_from_metadata(meta: Mapping[str, Any]) -> dict[str, float]:
    """Idle power per domain (W) from metadata, accepting the shapes a runner may write:
    ``idle_power_w: {domain: W}``, ``idle_baseline: {power_w|idle_power_w: {domain: W}}`` or a list of
    such baselines (the last wins)."""
    cand: Any = meta.get("idle_power_w")
    if cand is None:
        base = meta.get("idle_baseline") or meta.get("idle_baselines")
        if isinstance(base, list) and base:
            base = base[-1]
        if isinstance(base, Mapping):
            cand = base.get("power_w", base.get("idle_power_w"))
    if not isinstance(cand, Mapping):
        return {}
    out = {}
    for k, v in cand.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def unique_labels(paths: Sequence[Path | str]) -> list[str]:
    """Short distinct labels for result directories: their names, or parent/name when names clash."""
    names = [name_of(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    labels = [f"{name_of(parent_of(p))}/{name_of(p)}" for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i + 1}:{n}" for i, n in enumerate(names)]


def load_result_set(root: Path | str, label: str | None = None) -> ResultSet:
    """Read one results directory or URL (raises ResultsError when it is not one)."""
    if is_url(root):
        meta, runs = read_metadata(root), read_runs(root)
        if not meta and runs.height == 0:
            raise ResultsError(f"{root} is not an energybench result set (no metadata.json, runs.parquet or parts/)")
        return ResultSet(label=label or name_of(root), root=root, runs=runs, metadata=meta,
                         in_progress=meta.get("status") == "running")
    root = Path(root)
    runs = read_runs(root)
    meta = read_metadata(root) if root.is_dir() else {}
    parts = root / "parts"
    in_progress = parts.is_dir() and any(parts.glob("runs-*.parquet"))
    return ResultSet(label=label or root.resolve().name, root=root, runs=runs, metadata=meta, in_progress=in_progress)


def load_samples(rs: ResultSet, run_ids: Iterable[str]) -> pl.DataFrame:
    """Samples of a few runs, read with predicate push-down (never the whole samples table)."""
    wanted = sorted(set(run_ids))
    if rs.shards:
        return pl.concat([load_samples(s, wanted) for s in rs.shards])
    if wanted and is_url(rs.root):
        return read_samples(rs.root, wanted)
    if not wanted or not rs.root.is_dir():
        return empty_samples()
    frames = []
    cons = rs.root / "samples.parquet"
    if cons.exists():
        frames.append(pl.scan_parquet(cons).filter(pl.col("run_id").is_in(wanted)).collect())
    for rid in wanted:
        try:
            part = rs.root / "parts" / f"samples-{safe_run_id(rid)}.parquet"
        except ValueError:
            continue
        if part.exists():
            frames.append(pl.read_parquet(part))
    if not frames:
        return empty_samples()
    df = pl.concat([conform(f, SAMPLES_SCHEMA) for f in frames])
    return df.unique(subset=["run_id", "meter", "domain", "t_ns"], keep="last", maintain_order=True)


def sample_sources(rs: ResultSet) -> list[Path | str]:
    """Every parquet file holding samples of this set (consolidated first, then parts)."""
    if rs.shards:
        return [p for s in rs.shards for p in sample_sources(s)]
    if is_url(rs.root):
        return list(sample_objects(rs.root))
    paths: list[Path | str] = []
    if (rs.root / "samples.parquet").exists():
        paths.append(rs.root / "samples.parquet")
    if (rs.root / "parts").is_dir():
        paths.extend(sorted((rs.root / "parts").glob("samples-*.parquet")))
    return paths
