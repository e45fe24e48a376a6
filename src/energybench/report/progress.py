"""A sweep's progress read from its results directory, for the live dashboard (``report --serve``).

Runs done come from ``journal.jsonl`` (one ``run`` event per finished run, ok or failed); the
runs planned, the points and their configuration ids from the plan of the stored config (the
engine's own :func:`energybench.plan.plan_from_config`; with adaptive repetitions the count is the
most a sweep can make); the last power readings from the samples of the newest finished run (the
engine writes a run's samples when it ends). The ETA extrapolates the time per run so far.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from energybench.errors import EnergybenchError
from energybench.results import read_metadata
from energybench.shard import Shard


@lru_cache(maxsize=8)
def _plan_facts(config_json: str, shard: Shard | None = None) -> tuple[int, list[tuple[str, str, str]]]:
    """(runs planned, [(run_id, configuration id, prompt)] in execution order) of a stored config
    (of its shard when sharded)."""
    from energybench.config import parse_config
    from energybench.plan import plan_from_config, run_ids

    plan = plan_from_config(parse_config(json.loads(config_json), source="metadata.json"), shard=shard)
    order = [(rid, plan.config_ids.get(p.point_id, p.point_id), p.prompt.label())
             for p in plan.points for rid, _, _ in run_ids(p, plan.warmup, plan.repetitions_for(p).upper)]
    return plan.runs_total(), order


def _journal_runs(root: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = (root / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if isinstance(entry, dict) and entry.get("event") == "run":
            out.append(entry)
    return out


def _last_power(root: Path, run_id: str | None) -> dict[str, float]:
    """domain -> W: the last reading of each domain in a run's samples (counters differenced)."""
    from energybench.report.metrics import samples_power
    from energybench.results import safe_run_id

    if not run_id:
        return {}
    try:
        path = root / "parts" / f"samples-{safe_run_id(run_id)}.parquet"
        if path.exists():
            scan = pl.scan_parquet(path)
        elif (root / "samples.parquet").exists():  # a finished sweep: parts consolidated
            scan = pl.scan_parquet(root / "samples.parquet").filter(pl.col("run_id") == run_id)
        else:
            return {}
        df = samples_power(scan, stamp="end", changes_only=True).collect()
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return {}
    last = df.sort("t_ns").group_by("domain", maintain_order=True).agg(pl.col("power_w").last())
    return {r["domain"]: round(float(r["power_w"]), 2) for r in last.iter_rows(named=True)}


def _elapsed_s(meta: dict[str, Any]) -> float | None:
    """Seconds since the sweep started (until it finished, for a finished one)."""
    try:
        start = datetime.fromisoformat(str(meta["created_at"]))
        end = datetime.fromisoformat(str(meta["finished_at"])) if meta.get("finished_at") else datetime.now(UTC)
    except (KeyError, ValueError):
        return None
    return max(0.0, (end - start).total_seconds())


def sweep_progress(root: Path | str) -> dict[str, Any] | None:
    """``{done, failed, planned, status, current, last_run, eta_s, elapsed_s, power_w}`` of a
    results directory (``current``: the next run in plan order while the sweep runs), or None when
    it holds no stored config."""
    root = Path(root)
    try:
        meta = read_metadata(root)
    except EnergybenchError:
        return None
    if not isinstance(meta.get("config"), dict):
        return None
    try:
        planned, points = _plan_facts(json.dumps(meta["config"], sort_keys=True), Shard.from_metadata(meta))
    except EnergybenchError:
        return None
    runs = _journal_runs(root)
    finished = {r.get("run_id") for r in runs if r.get("status") == "ok"}
    done = len({r.get("run_id") for r in runs})
    last = runs[-1].get("run_id") if runs else None
    running = meta.get("status") == "running"
    nxt = next(((rid, cid, prompt) for rid, cid, prompt in points if rid not in finished), None) if running else None
    elapsed = _elapsed_s(meta)
    left = max(planned - done, 0)
    eta = elapsed / done * left if elapsed is not None and done and running else None
    return {"dir": str(root), "status": meta.get("status"), "done": done, "planned": planned,
            "failed": sum(r.get("status") != "ok" for r in runs), "elapsed_s": elapsed, "eta_s": eta,
            "current": {"run_id": nxt[0], "config_id": nxt[1], "prompt": nxt[2]} if nxt else None,
            "last_run": last, "power_w": _last_power(root, last)}
