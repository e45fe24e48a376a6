"""Reading result sets for a report: runs (consolidated or in-progress parts), metadata, samples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from energybench.results import SAMPLES_SCHEMA, conform, empty_samples, read_metadata, read_runs, safe_run_id


@dataclass
class ResultSet:
    """One results directory as the report sees it."""

    label: str
    root: Path
    runs: pl.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    in_progress: bool = False  # parts present: a sweep running or interrupted before consolidation

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


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Short distinct labels for result directories: their names, or parent/name when names clash."""
    names = [p.resolve().name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    labels = [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{i + 1}:{n}" for i, n in enumerate(names)]


def load_result_set(root: Path | str, label: str | None = None) -> ResultSet:
    """Read one results directory (raises ResultsError when it is not one)."""
    root = Path(root)
    runs = read_runs(root)
    meta = read_metadata(root) if root.is_dir() else {}
    parts = root / "parts"
    in_progress = parts.is_dir() and any(parts.glob("runs-*.parquet"))
    return ResultSet(label=label or root.resolve().name, root=root, runs=runs, metadata=meta, in_progress=in_progress)


def load_samples(rs: ResultSet, run_ids: Iterable[str]) -> pl.DataFrame:
    """Samples of a few runs, read with predicate push-down (never the whole samples table)."""
    wanted = sorted(set(run_ids))
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


def sample_sources(rs: ResultSet) -> list[Path]:
    """Every parquet file holding samples of this set (consolidated first, then parts)."""
    paths = []
    if (rs.root / "samples.parquet").exists():
        paths.append(rs.root / "samples.parquet")
    if (rs.root / "parts").is_dir():
        paths.extend(sorted((rs.root / "parts").glob("samples-*.parquet")))
    return paths
