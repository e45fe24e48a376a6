"""The engine's side of a results directory: start a new one or reopen one to resume, write its
metadata at the start and its summary at the end. Nothing here measures."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from energybench import __version__
from energybench.errors import ResultsError, UsageError
from energybench import shard as sharding
from energybench.plan import Plan
from energybench.results import ResultsStore, read_metadata, read_runs
from energybench.storage import is_url, location
from energybench.sysinfo import clock_info, host_info, memory_bandwidth_gbs


def choose_out_dir(config: Any, *, out: Path | str | None = None, resume: Path | str | None = None,
                   prefix: str | None = None) -> Path | str:
    """Where results go: ``resume`` (the directory to continue), else ``out``, else the config's
    ``output_dir``, else ``results/<prefix or config name>-<local time>``. An ``s3://`` URL stays
    a URL (:mod:`energybench.engine.remote_dir`)."""
    if resume is not None:
        if out is not None and str(out) != str(resume) and Path(out) != Path(resume):
            raise UsageError("--out and --resume name different directories", hint="--resume DIR continues DIR")
        return location(resume)
    if out is not None:
        return location(out)
    if config.output_dir:
        return Path(config.output_dir)
    return Path("results") / f"{prefix or config.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def open_new(out_dir: Path | str) -> ResultsStore:
    """A store for a new measurement; refuses a directory that already holds something."""
    if is_url(out_dir):
        from energybench.engine import remote_dir

        return remote_dir.open_new(str(out_dir))
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UsageError(f"output directory {str(out_dir)!r} already holds results",
                         hint=f"resume it with `energybench sweep --resume {out_dir}` or choose another --out")
    return ResultsStore(out_dir)


def open_resume(out_dir: Path | str, plan: Plan, force: bool) -> tuple[ResultsStore, dict[str, Any], set[str]]:
    """(store, stored metadata, run ids already done ok) of an interrupted measurement.

    A config that changed since the start is refused unless ``force`` (then the sweep is extended),
    as is another shard or sweep id than the stored one. Results that cannot be read are an error:
    resuming must never silently measure everything again.
    """
    if is_url(out_dir):
        from energybench.engine import remote_dir

        return remote_dir.open_resume(str(out_dir), plan, force)
    out_dir = Path(out_dir)
    meta = read_metadata(out_dir)
    if not meta:
        raise ResultsError(f"{str(out_dir)!r} has no metadata.json: nothing to resume", hint="start a new sweep with --out")
    old = meta.get("config_hash")
    if old and old != plan.config_hash and not force:
        raise ResultsError(f"the config changed since this sweep started (hash {old} -> {plan.config_hash})",
                           hint="resume with the original config, or pass --force to extend the sweep with the new one")
    stored = sharding.Shard.from_metadata(meta)
    if stored != plan.shard:
        ran = f"ran shard {stored}" if stored else "is not sharded"
        asked = f"shard {plan.shard}" if plan.shard else "the whole sweep"
        raise ResultsError(f"this sweep {ran}: it cannot be resumed as {asked}",
                           hint="resume without --shard (the stored shard is used)")
    if plan.sweep_id and meta.get("sweep_id") not in (None, plan.sweep_id):
        raise ResultsError(f"this sweep's id is {meta['sweep_id']}, not {plan.sweep_id}",
                           hint="resume without --sweep-id")
    store = ResultsStore(out_dir)
    store.remove_stale_temp_files()
    try:
        runs = read_runs(out_dir)
    except ResultsError as exc:
        raise ResultsError(f"cannot resume {str(out_dir)!r}: its finished runs cannot be read ({exc.message})",
                           hint="move the damaged file aside and resume again, or start a new sweep") from exc
    return store, meta, set(runs.filter(pl.col("status") == "ok")["run_id"].to_list())


def metadata(plan: Plan, *, backend_info: Any, selection: Any, models: dict[str, Any], sampler: Any,
             amx: dict[str, Any]) -> dict[str, Any]:
    """The metadata.json of a results directory (the same keys for measure and sweep, with or
    without meters)."""
    return {
        "kind": plan.kind,
        "energybench_version": __version__,
        "host": host_info(),
        **clock_info(),
        "gpus": _gpus(),
        "backend": asdict(backend_info),
        "amx": amx,  # whether weight repacking (AMX) could stay on here: energybench.amx
        "meters": [{"name": m.name, "description": getattr(m, "description", ""),
                    "estimate": bool(getattr(m, "estimate", False))} for m in selection.meters],
        "domains": [d.to_dict() for d in selection.domains],
        "meter_warnings": list(selection.warnings),
        "models": {ref: _model_entry(m) for ref, m in models.items()},
        "config": plan.config,
        "config_hash": plan.config_hash,
        "sweep_id": plan.sweep_id or plan.config_hash,  # with config_hash, the sweep shards belong to
        "shard": sharding.metadata(plan),  # which part of a sharded sweep (energybench.shard)
        "memory_bandwidth_gbs": memory_bandwidth_gbs(),  # decode roofline ceiling (cached per machine)
        "sampler": {"period_s": sampler.period_s, "thread_nice": sampler.nice,
                    "where": "a thread of the measuring process (never the inference worker)"},
        "idle_baselines": [],
        "gpu_protocol": plan.gpu_protocol.metadata(point_ids=_protocol_points(plan)) if plan.gpu_protocol else None,
        "status": "running",
    }


def resumed_metadata(plan: Plan, meta: dict[str, Any], new: dict[str, Any], force: bool) -> dict[str, Any]:
    """The metadata updates of a resume: its record, the config, models added, protocol settings."""
    resumes = [*meta.get("resumes", []), {"at": datetime.now(UTC).isoformat(), "config_hash": plan.config_hash,
                                         "forced": force}]
    out = {"resumes": resumes, "status": "running", "config_hash": plan.config_hash, "config": plan.config,
           "models": {**meta.get("models", {}), **new["models"]}, "amx": new["amx"]}
    if plan.gpu_protocol is not None:
        gaps = (meta.get("gpu_protocol") or {}).get("gaps_s") or {}
        out["gpu_protocol"] = plan.gpu_protocol.metadata(point_ids=_protocol_points(plan), gaps_s=gaps)
    return out


def _protocol_points(plan: Plan) -> list[str]:
    return [p.point_id for p in plan.points if plan.protocol_for(p) is not None]


def record_gaps(store: ResultsStore, plan: Plan, gaps_s: dict[str, float]) -> None:
    """Store the GPU protocol's pauses taken so far (they are recomputable too: GpuProtocol.gap_s)."""
    if plan.gpu_protocol is None or not gaps_s:
        return
    old = (store.read_metadata().get("gpu_protocol") or {}).get("gaps_s") or {}
    store.update_metadata(gpu_protocol=plan.gpu_protocol.metadata(point_ids=_protocol_points(plan),
                                                                   gaps_s={**old, **gaps_s}))


def _model_entry(m: Any) -> dict[str, Any]:
    return {"name": m.name, "path": str(m.path), "sha256": m.sha256, "size_bytes": m.size_bytes,
            "synthetic": bool(m.synthetic), "quant": m.quant, "shape": m.shape, "source": m.source}


def _gpus() -> list[dict[str, Any]]:
    try:
        from energybench.meters.nvml import gpu_inventory

        return gpu_inventory()
    except Exception:  # noqa: BLE001 - no NVIDIA driver: no GPUs to list
        return []
