"""Per-point summary of an offload sweep (what scripts/gpu_offload_sweep.sh prints and stores).

    python scripts/gpu_sweep_summary.py RESULTS_DIR SUMMARY_JSON SWEEP_EXIT_CODE TOTAL_SECONDS

Every number comes from energybench's own analysis (the metrics vocabulary, the report's per-domain
table): decode tok/s, J/output token in all and per component (GPU, CPU), GPU memory, window.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import polars as pl

from energybench.report.analysis import analyze
from energybench.report.build import load_sets


def per_component(domains: pl.DataFrame, point_id: str, component: str) -> float | None:
    """J/output token of the top-level domains of ``component`` (e.g. every GPU) of one point."""
    sel = domains.filter((pl.col("point_id") == point_id) & (pl.col("component") == component)
                         & pl.col("parent").is_null())
    vals = sel["j_per_output_token"].drop_nulls()
    return float(vals.sum()) if vals.len() else None


def points(root: str) -> list[dict[str, Any]]:
    a = analyze(load_sets([root]), n_boot=200)
    rows = []
    for r in a.cfg.sort("n_gpu_layers").iter_rows(named=True):
        rows.append({"n_gpu_layers": r["n_gpu_layers"], "backend_mode": r["backend_mode"], "runs_ok": r["n_reps"],
                     "runs_failed": r["n_failed"], "decode_tok_s": r["decode_tok_s"],
                     "prefill_tok_s": r["prefill_tok_s"], "j_per_output_token": r["j_per_output_token"],
                     "gpu_j_per_output_token": per_component(a.domains, r["point_id"], "gpu"),
                     "cpu_j_per_output_token": per_component(a.domains, r["point_id"], "cpu"),
                     "avg_power_w": r["avg_power_w"], "energy_sources": r["energy_sources"]})
    mem = a.valid.group_by("point_id").agg(pl.col("gpu_mem_used_bytes").median(), pl.col("window_s").median())
    by_point = {p["point_id"]: p for p in mem.iter_rows(named=True)}
    for row, r in zip(rows, a.cfg.sort("n_gpu_layers").iter_rows(named=True), strict=True):
        row.update({k: v for k, v in by_point.get(r["point_id"], {}).items() if k != "point_id"})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: Any, f: str) -> str:
        return (f % v) if isinstance(v, (int, float)) else "-"

    lines = [f"{'ngl':>4} {'mode':<13} {'runs':>4} {'window s':>8} {'decode tok/s':>12} {'J/tok':>8} {'GPU J/tok':>9} "
             f"{'CPU J/tok':>9} {'GPU mem MiB':>11}"]
    for p in rows:
        mem = p.get("gpu_mem_used_bytes")
        lines.append(f"{p['n_gpu_layers']:>4} {p['backend_mode'] or '-':<13} {p['runs_ok']:>4} "
                     f"{fmt(p.get('window_s'), '%8.2f')} {fmt(p['decode_tok_s'], '%12.1f')} "
                     f"{fmt(p['j_per_output_token'], '%8.3f')} {fmt(p['gpu_j_per_output_token'], '%9.3f')} "
                     f"{fmt(p['cpu_j_per_output_token'], '%9.3f')} {fmt(mem / 2**20 if mem else None, '%11.0f')}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from energybench.results import read_metadata

    root, out, rc, total = argv[0], argv[1], int(argv[2]), int(argv[3])
    meta = read_metadata(root)
    rows = points(root)
    summary = {"status": {0: "finished", 3: "partial"}.get(rc, f"sweep exit {rc}"), "exit_code": rc,
               "total_seconds": total, "points": rows, "gpus": meta.get("gpus"),
               "gpu_protocol": {k: v for k, v in (meta.get("gpu_protocol") or {}).items() if k != "gaps_s"},
               "domains": [{k: d.get(k) for k in ("name", "meter", "kind", "component", "update_period_s")}
                           for d in meta.get("domains", [])]}
    with open(out, "w") as f:
        json.dump(summary, f, indent=2, default=str)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
