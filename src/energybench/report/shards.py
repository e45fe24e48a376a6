"""Merging the shards of one sweep (``sweep --shard K/N``, :mod:`energybench.shard`) into one set.

Result sets whose ``metadata.json`` names a shard are merged when they are shards of one sweep:
the same ``sweep_id`` and ``config_hash``, the same N, no shard twice and no configuration in two
of them. Shards of different sweeps given together are refused with one line that names them (two
sweeps of one config would otherwise mix silently, e.g. after an array job was submitted again).
Missing shards are no error -- a fleet may still be running -- but a warning of the merged set,
as is a shard measured on another kind of machine than the first (:mod:`energybench.machines`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl

from energybench.errors import UsageError
from energybench.machines import machine_differences
from energybench.report.load import ResultSet
from energybench.storage import is_url, name_of


def shard_of(rs: ResultSet) -> tuple[int, int] | None:
    """(K, N) of a shard's set, None for a set that is not a shard."""
    s = rs.metadata.get("shard")
    return (int(s["index"]), int(s["count"])) if isinstance(s, dict) else None


def sweep_of(rs: ResultSet) -> tuple[str, str]:
    """The identity of the sweep a set belongs to: (sweep id, config hash)."""
    h = str(rs.metadata.get("config_hash") or "?")
    return str(rs.metadata.get("sweep_id") or h), h


def _describe(rs: ResultSet) -> str:
    k, n = shard_of(rs) or (0, 0)
    sid, h = sweep_of(rs)
    return f"{rs.label} (shard {k}/{n} of sweep {sid[:12]}, config {h[:12]})"


def _check(shards: Sequence[ResultSet]) -> None:
    """Refuse shards that are not the disjoint parts of one sweep."""
    first = shards[0]
    for rs in shards[1:]:
        if sweep_of(rs) != sweep_of(first) or shard_of(rs)[1] != shard_of(first)[1]:
            raise UsageError(f"refusing to merge shards of different sweeps: {_describe(first)} and {_describe(rs)}",
                             hint="report the shards of one sweep together; compare two sweeps with "
                                  "`energybench compare 'A/*' 'B/*'`")
    seen: dict[int, ResultSet] = {}
    for rs in shards:
        k = shard_of(rs)[0]
        if k in seen:
            raise UsageError(f"refusing to merge: shard {k}/{shard_of(rs)[1]} given twice ({seen[k].label} and "
                             f"{rs.label})", hint="give each shard once")
        seen[k] = rs
    owner: dict[str, str] = {}
    for rs in shards:
        for pid in rs.runs["point_id"].unique().to_list():
            if owner.setdefault(pid, rs.label) != rs.label:
                raise UsageError(f"refusing to merge: {owner[pid]} and {rs.label} both hold configuration {pid} "
                                 "(shards of one sweep are disjoint)", hint="give each shard's results once")


def _common_root(shards: Sequence[ResultSet]) -> Path | str:
    """Where the shards lie together (their common parent), or the one shard's own root."""
    if len(shards) == 1:
        return shards[0].root
    roots = [str(rs.root) for rs in shards]
    if all(is_url(r) for r in roots):
        parts = [r.rstrip("/").split("/") for r in roots]
        common = []
        for p in zip(*parts, strict=False):
            if len(set(p)) > 1:
                break
            common.append(p[0])
        return "/".join(common) if len(common) >= 3 else shards[0].root  # s3: / "" / bucket at least
    try:
        return Path(os.path.commonpath([os.path.abspath(r) for r in roots]))
    except ValueError:  # URLs and paths, or paths on different drives
        return shards[0].root


def _notes(shards: Sequence[ResultSet]) -> list[str]:
    count = shard_of(shards[0])[1]
    have = sorted(shard_of(rs)[0] for rs in shards)
    out = []
    missing = [k for k in range(1, count + 1) if k not in have]
    if missing:
        out.append(f"{len(shards)} of {count} shards: shard(s) {', '.join(f'{k}/{count}' for k in missing)} "
                   "missing, their configurations are absent")
    for rs in shards[1:]:
        diffs = machine_differences(shards[0].metadata, rs.metadata)
        if diffs:
            out.append(f"shard {rs.label} ran on another kind of machine than {shards[0].label} ("
                       + "; ".join(f"{d.what}: {d.base} vs {d.new}" for d in diffs)
                       + "): configurations of different shards are not comparable")
    return out + [n for rs in shards for n in rs.notes]


def merge(shards: Sequence[ResultSet]) -> ResultSet:
    """One set from the shards of one sweep (checked by :func:`_check`)."""
    _check(shards)
    shards = sorted(shards, key=lambda rs: shard_of(rs)[0])
    root = _common_root(shards)
    meta = dict(shards[0].metadata)
    meta["shard"] = None
    meta["shards"] = [{"index": shard_of(rs)[0], "count": shard_of(rs)[1], "root": str(rs.root),
                       "hostname": (rs.metadata.get("host") or {}).get("hostname"),
                       "status": rs.metadata.get("status")} for rs in shards]
    done = len(shards) == shard_of(shards[0])[1] and all(rs.metadata.get("status") == "finished" for rs in shards)
    meta["status"] = "finished" if done else "incomplete"
    label = name_of(root) if str(root) not in ("", "/") else str((meta.get("config") or {}).get("name") or "sweep")
    runs = pl.concat([rs.runs for rs in shards], how="vertical_relaxed")
    return ResultSet(label=label, root=root, runs=runs, metadata=meta,
                     in_progress=any(rs.in_progress for rs in shards), shards=list(shards), notes=_notes(shards))


def merge_shards(sets: Sequence[ResultSet]) -> list[ResultSet]:
    """``sets`` with the shards of one sweep merged into one set, where the first of them was."""
    shards = [rs for rs in sets if shard_of(rs) is not None]
    if not shards:
        return list(sets)
    merged = merge(shards)
    out: list[ResultSet] = []
    for rs in sets:
        if shard_of(rs) is None:
            out.append(rs)
        elif rs is shards[0]:
            out.append(merged)
    return out


def relabel(sets: Sequence[ResultSet], labels: Sequence[str]) -> list[ResultSet]:
    """The sets with the labels given (``--label``), one per set after merging."""
    if len(labels) != len(sets):
        raise UsageError(f"{len(labels)} labels for {len(sets)} result sets (the shards of a sweep are one set)")
    return [replace(rs, label=lab) for rs, lab in zip(sets, labels, strict=True)]
