"""Markdown and self-contained HTML renderings of an :class:`~energybench.report.analysis.Analysis`."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from energybench import __version__
from energybench.metrics import METRICS, heading
from energybench.report.analysis import Analysis
from energybench.report.best import OBJECTIVES, Recommendation, describe_config
from energybench.report.figures import FigureFile
from energybench.report.fmt import fmt_ci, fmt_num, fmt_pct
from energybench.report.load import idle_power_from_metadata
from energybench.report.metrics import AXES
from energybench.report.stats import SET_WIDE_CODES, render_warnings

# ----------------------------------------------------------------------------- table model


@dataclass(frozen=True)
class Column:
    """A results-table column: header, cell text, sort key (numbers sort numerically)."""

    header: str
    text: Callable[[dict[str, Any]], str]
    key: Callable[[dict[str, Any]], Any]
    title: str = ""


def _title(m: str) -> str:
    metric = METRICS[m]
    return f"{metric.label} ({metric.unit}) = {metric.formula}"


def _ci_col(m: str) -> Column:
    """A metric's median [95 % bootstrap CI], headed by its vocabulary label."""
    return Column(heading(m), lambda r: fmt_ci(r.get(m), r.get(f"{m}_lo"), r.get(f"{m}_hi")), lambda r: r.get(m),
                  _title(m) + ": median [95 % bootstrap CI]")


def _num_col(m: str, *, header: str | None = None, title: str | None = None, pct: bool = False) -> Column:
    text = (lambda r: fmt_pct(r.get(m))) if pct else (lambda r: fmt_num(r.get(m)))
    return Column(header or heading(m), text, lambda r: r.get(m), title or _title(m))


def results_columns(a: Analysis) -> list[Column]:
    """The columns of the per-configuration table (knobs that vary, then metrics)."""
    cols: list[Column] = []
    if a.multi_set:
        cols.append(Column("set", lambda r: str(r["set"]), lambda r: r["set"]))
    if len(a.workloads) > 1:
        cols.append(Column("workload", lambda r: str(r["workload"]), lambda r: r["workload"]))
    for k in a.varied or ["n_threads"]:
        cols.append(Column(AXES.get(k, k), lambda r, k=k: fmt_num(r.get(k)), lambda r, k=k: r.get(k)))
    cols += [
        Column("reps", lambda r: str(r["n_reps"]), lambda r: r["n_reps"], "finished repetitions (warm-ups and failures excluded)"),
        Column("failed", lambda r: str(r["n_failed"]) if r["n_failed"] else "", lambda r: r["n_failed"]),
        _ci_col("j_per_output_token"),
        _num_col("j_per_output_token_cv", header="CV", pct=True,
                 title="coefficient of variation of J/output token across repetitions"),
        _ci_col("j_per_output_token_net"),
        _ci_col("j_per_processed_token"),
        _ci_col("output_tokens_per_j"),
        _ci_col("edp_js"),
        _ci_col("ed2p_js2"),
        _ci_col("e2e_s"),
        _ci_col("ttft_ms"),
        _ci_col("prefill_tok_s"),
        _ci_col("decode_tok_s"),
        _ci_col("avg_power_w"),
        _num_col("peak_power_w"),
        _num_col("prefill_energy_frac", pct=True),
        _num_col("roofline_frac", pct=True),
        _ci_col("race_energy_j"),
        Column("Pareto", lambda r: "yes" if r.get("pareto") else "", lambda r: 1 if r.get("pareto") else 0,
               "on the latency-energy Pareto front"),
        Column("warnings", lambda r: "; ".join(render_warnings(r.get("warnings") or [], skip_set_wide=True)),
               lambda r: len(render_warnings(r.get("warnings") or [], skip_set_wide=True))),
    ]
    # drop metric columns that are empty everywhere (e.g. no energy at all)
    rows = a.cfg.to_dicts() if a.cfg.height <= 2000 else a.cfg.head(2000).to_dicts()
    keep = []
    for c in cols:
        if c.header in ("reps", "failed", "warnings", "Pareto") or any(c.text(r) not in ("–", "") for r in rows):
            keep.append(c)
    return keep


# ----------------------------------------------------------------------------- shared pieces


def _set_counts(a: Analysis) -> list[dict[str, Any]]:
    out = []
    for rs in a.sets:
        r = a.runs.filter(pl.col("set") == rs.label)
        out.append({
            "label": rs.label, "root": str(rs.root), "runs": r.height,
            "ok": r.filter((pl.col("status") == "ok") & ~pl.col("is_warmup").fill_null(False)).height,
            "warmups": r.filter(pl.col("is_warmup").fill_null(False)).height,
            "failed": r.filter(pl.col("status") != "ok").height,
            "configurations": a.cfg.filter(pl.col("set") == rs.label).height,
            "in_progress": rs.in_progress,
        })
    return out


def _rec_groups(a: Analysis) -> list[tuple[str, str, list[Recommendation]]]:
    groups: dict[tuple[str, str], list[Recommendation]] = {}
    for r in a.recommendations:
        groups.setdefault((r.set, r.workload), []).append(r)
    order = {w: i for i, w in enumerate(a.workloads)}
    return [(s, w, recs) for (s, w), recs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][1], 99), kv[0][0]))]


def _pareto_rows(a: Analysis) -> pl.DataFrame:
    return a.cfg.filter(pl.col("pareto")).sort(["set", "workload", "e2e_s"])


def _roofline_rows(a: Analysis) -> pl.DataFrame:
    return a.cfg.filter(pl.col("roofline_frac").is_not_null()).sort(["set", "workload", "roofline_frac"], descending=[False, False, True])


def _compare_table(a: Analysis) -> tuple[list[str], list[list[str]]]:
    """Configurations present in several sets: J/token and latency per set, ratio to the first set."""
    if not a.multi_set or a.cfg.height == 0:
        return [], []
    shown = a.varied or ["n_threads"]
    df = a.cfg.with_columns(config=pl.struct(shown).map_elements(lambda r: describe_config(r), return_dtype=pl.String))
    labels = [rs.label for rs in a.sets]
    first = labels[0]
    keyed: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in df.iter_rows(named=True):
        keyed.setdefault((r["workload"], r["config"]), {})[r["set"]] = r
    header = ["workload", "configuration"]
    for lab in labels:
        header += [f"J/token {lab}", f"latency s {lab}"]
    for lab in labels[1:]:
        header.append(f"J/token {lab} / {first}")
    rows = []
    for (wl, conf), per in sorted(keyed.items()):
        if len(per) < 2:
            continue
        row = [wl, conf]
        for lab in labels:
            r = per.get(lab)
            row += [fmt_ci(r.get("j_per_output_token"), r.get("j_per_output_token_lo"), r.get("j_per_output_token_hi")) if r else "–",
                    fmt_ci(r.get("e2e_s"), r.get("e2e_s_lo"), r.get("e2e_s_hi")) if r else "–"]
        base = per.get(first, {}).get("j_per_output_token")
        for lab in labels[1:]:
            v = per.get(lab, {}).get("j_per_output_token")
            row.append(fmt_num(v / base) + "x" if v is not None and base else "–")
        rows.append(row)
    return header, rows


def _provenance(a: Analysis) -> list[dict[str, Any]]:
    """Per set: sections of key/value pairs and the domain table."""
    out = []
    for rs in a.sets:
        meta = rs.metadata
        runs = a.runs.filter(pl.col("set") == rs.label)
        models = (runs.group_by(["model_name", "model_sha256"]).agg(
            pl.col("model").first(), pl.col("model_size_bytes").first(), pl.col("model_quant").first(),
            pl.col("model_synthetic").first()).sort("model_name").to_dicts())
        kv: list[tuple[str, str]] = [("results directory", str(rs.root))]
        for key in ("kind", "status", "sweep_id", "name", "created_at", "config_hash", "energybench_version",
                    "generator", "schema_version"):
            if meta.get(key) is not None:
                kv.append((key, str(meta[key])))
        host = meta.get("host")
        if isinstance(host, dict):
            kv += [(f"host.{k}", _short(v)) for k, v in host.items() if v is not None]
        elif host:
            kv.append(("host", _short(host)))
        backend = meta.get("backend")
        if isinstance(backend, dict):
            kv += [(f"llama.cpp build.{k}", _short(v)) for k, v in backend.items() if v not in (None, "", [], {})]
        elif backend:
            kv.append(("llama.cpp build", _short(backend)))
        for g in meta.get("gpus") or []:
            kv.append(("gpu", _short(g)))
        for key in ("clock", "clock_offset_ns", "sample_period_s", "sample_period_ms"):
            if meta.get(key) is not None:
                kv.append((key, str(meta[key])))
        bw, src = a.bandwidth.get(rs.label, (None, "missing"))
        kv.append(("memory bandwidth", f"{fmt_num(bw)} GB/s ({src})" if bw else "not recorded"))
        idle = idle_power_from_metadata(meta)
        if idle:
            kv.append(("idle baseline (W)", ", ".join(f"{k}: {fmt_num(v)}" for k, v in idle.items())))
        else:
            kv.append(("idle baseline (W)", "none recorded"))
        for m in meta.get("meters") or []:
            if isinstance(m, dict):
                kv.append((f"meter {m.get('name')}", ("estimate: " if m.get("estimate") else "")
                           + str(m.get("description") or "")))
        for w in meta.get("meter_warnings") or []:
            kv.append(("meter warning", _short(w)))
        out.append({"label": rs.label, "kv": kv, "models": models,
                    "domains": a.provenance.filter(pl.col("set") == rs.label).to_dicts()})
    return out


def _short(v: Any, limit: int = 400) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _summary_line(a: Analysis) -> str:
    c = _set_counts(a)
    runs = sum(x["runs"] for x in c)
    ok = sum(x["ok"] for x in c)
    failed = sum(x["failed"] for x in c)
    warm = sum(x["warmups"] for x in c)
    return (f"{runs} runs ({ok} repetitions, {warm} warm-ups, {failed} failed) over {a.cfg.height} configurations "
            f"and {len(a.workloads)} workload(s)" + (f" in {len(a.sets)} result sets" if a.multi_set else ""))


def _domain_rows(a: Analysis) -> pl.DataFrame:
    """Per-domain power of the recommended configurations (the full table goes to domains.csv)."""
    keys = {(r.set, r.best.point_id) for r in a.recommendations}
    if not keys or a.domains.height == 0:
        return a.domains.head(0)
    sel = pl.DataFrame({"set": [k[0] for k in keys], "point_id": [k[1] for k in keys]})
    cfg_cols = ["set", "point_id", "workload", *(a.varied or [])]
    doms = a.domains.join(sel, on=["set", "point_id"])
    # one "system total" row per configuration: the run totals (top-level domains only, as stored),
    # so CPU + DRAM + GPU per phase sit next to the sum a measurement attributes to the run
    valid = a.valid.filter(pl.col("has_energy").fill_null(False)) if "has_energy" in a.valid.columns else a.valid
    totals = (valid.join(sel, on=["set", "point_id"]).group_by(["set", "point_id"]).agg(
        domain=pl.lit("system total"), meter=pl.col("meters").drop_nulls().first(),
        parent=pl.lit(None, dtype=pl.String), estimate=pl.col("flag_estimate").fill_null(False).any(),
        avg_power_w=pl.col("avg_power_w").median(), peak_power_w=pl.col("peak_power_w").max(),
        idle_power_w=pl.col("idle_power_w").median(),
        energy_j=pl.col("energy_j").median(),
        prefill_energy_j=pl.col("prefill_energy_j").median(), decode_energy_j=pl.col("decode_energy_j").median(),
        j_per_output_token=pl.col("j_per_output_token").median(),
    ))
    cols = [c for c in totals.columns if c in doms.columns]
    if totals.height:
        doms = pl.concat([doms, totals.select(cols)], how="diagonal_relaxed")
    order = pl.when(pl.col("domain") == "system total").then(1).otherwise(0)
    return (doms.join(a.cfg.select(cfg_cols), on=["set", "point_id"])
            .with_columns(_last=order).sort(["set", "workload", "point_id", "_last", "domain"]).drop("_last"))


def _pareto_table(a: Analysis, front: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the Pareto-front table (Markdown and HTML share them)."""
    hdr = (["set"] if a.multi_set else []) + (["workload"] if len(a.workloads) > 1 else []) + \
          ["configuration", "latency s", "J/token"]
    rows = [([r["set"]] if a.multi_set else []) + ([r["workload"]] if len(a.workloads) > 1 else []) +
            [describe_config({k: r[k] for k in a.varied}), fmt_ci(r["e2e_s"], r["e2e_s_lo"], r["e2e_s_hi"]),
             fmt_ci(r["j_per_output_token"], r["j_per_output_token_lo"], r["j_per_output_token_hi"])]
            for r in front.head(60).iter_rows(named=True)]
    return hdr, rows


def _roofline_table(a: Analysis, roof: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the decode-roofline table (Markdown and HTML share them)."""
    hdr = (["set"] if a.multi_set else []) + (["workload"] if len(a.workloads) > 1 else []) + \
          ["configuration", "decode tok/s", "GB/s read", "of bandwidth"]
    rows = [([r["set"]] if a.multi_set else []) + ([r["workload"]] if len(a.workloads) > 1 else []) +
            [describe_config({k: r[k] for k in a.varied}),
             fmt_ci(r["decode_tok_s"], r["decode_tok_s_lo"], r["decode_tok_s_hi"]),
             fmt_num((r["decode_bytes_s"] or 0) / 1e9), fmt_pct(r["roofline_frac"])]
            for r in roof.head(20).iter_rows(named=True)]
    return hdr, rows


def _domain_table(a: Analysis, dom: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-domain power table (Markdown and HTML share them)."""
    hdr = (["set"] if a.multi_set else []) + ["configuration", "domain", "meter", "parent", "avg W", "peak W",
                                               "idle W", "energy J", "prefill J", "decode J", "J/token"]
    rows = [([r["set"]] if a.multi_set else []) + [describe_config({k: r[k] for k in a.varied}), r["domain"],
            r["meter"] + (" (estimate)" if r["estimate"] else ""), r["parent"] or "", fmt_num(r["avg_power_w"]),
            fmt_num(r["peak_power_w"]), fmt_num(r["idle_power_w"]), fmt_num(r["energy_j"]),
            fmt_num(r["prefill_energy_j"]), fmt_num(r["decode_energy_j"]), fmt_num(r["j_per_output_token"])]
            for r in dom.iter_rows(named=True)]
    return hdr, rows


# ----------------------------------------------------------------------------- Markdown


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(a: Analysis, figures: Sequence[FigureFile], *, generated_at: datetime | None = None) -> str:
    """The report as Markdown (figures linked as ``figures/<name>.png``)."""
    ts = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    out = [f"# energybench report", "",
           f"Generated {ts} by energybench {__version__} from "
           + ", ".join(f"`{rs.root}`" + (f" ({rs.label})" if a.multi_set else "") for rs in a.sets) + ".", "",
           "## Summary", "", _summary_line(a) + ".", ""]
    if a.warnings:
        out += ["**Warnings**", ""] + [f"- ⚠ {w}" for w in a.warnings] + [""]
    out += ["Statistics: median of the repetitions with a 95 % percentile-bootstrap CI (seeded); warm-ups and failed "
            "runs excluded. J/token is gross energy per output token unless marked net (idle-subtracted).", ""]

    out += ["## Recommendations", ""]
    groups = _rec_groups(a)
    if not groups:
        out += ["No configuration has finished repetitions yet.", ""]
    for set_name, wl, recs in groups:
        out += [f"### {wl}" + (f" [{set_name}]" if a.multi_set else ""), ""]
        out += [f"- **{r.label}**: {describe_config(r.best.config)} -- "
                f"{fmt_ci(r.best.value, r.best.ci_lo, r.best.ci_hi)} {r.unit} (n={r.best.n_reps}); {r.verdict}"
                + (f" ⚠ {'; '.join(render_warnings(r.warnings, skip_set_wide=True))}"
                   if render_warnings(r.warnings, skip_set_wide=True) else "") for r in recs]
        out.append("")

    front = _pareto_rows(a)
    if front.height:
        out += ["## Pareto front (latency vs energy per output token)", ""]
        hdr, rows = _pareto_table(a, front)
        out += [_md_table(hdr, rows), ""]

    if a.windows:
        out += ["## Race-to-sleep", "",
                f"E(T) = E_active + P_idle x (T - t_active) over one window T per workload ({a.window_source}): "
                + "; ".join(f"{wl}: T = {fmt_num(t)} s" for wl, t in list(a.windows.items())[:8]) + ".",
                "Finishing fast and idling can cost less than running slowly at lower power -- or not; "
                "the lowest E(T) is in the recommendations above.", ""]

    roof = _roofline_rows(a)
    out += ["## Decode roofline", ""]
    if roof.height:
        bw = "; ".join((f"{k}: " if a.multi_set else "") + f"{fmt_num(v[0])} GB/s, {v[1]}"
                       for k, v in a.bandwidth.items() if v[0])
        out += [f"decode tok/s x model bytes (~ bytes read per token) as a fraction of the memory bandwidth ({bw}); "
                "llama.cpp typically reaches 50-80 % on CPUs. CPU-only configurations.", ""]
        hdr, rows = _roofline_table(a, roof)
        out += [_md_table(hdr, rows), ""]
    else:
        out += ["Not available: " + ("no memory bandwidth recorded (`memory_bandwidth_gbs`; use --measure-bandwidth)"
                if all(v[0] is None for v in a.bandwidth.values()) else "no CPU-only configuration with decode speed") + ".", ""]

    if a.multi_set:
        hdr, rows = _compare_table(a)
        out += ["## Comparison of result sets", ""]
        out += [_md_table(hdr, rows) if rows else "No configuration appears in more than one set.", ""]

    out += ["## Results per configuration", ""]
    cols = results_columns(a)
    rows = [[c.text(r) for c in cols] for r in a.cfg.iter_rows(named=True)]
    out += [_md_table([c.header for c in cols], rows) if rows else "No runs yet.", ""]

    dom = _domain_rows(a)
    if dom.height:
        out += ["## Power per domain (recommended configurations)", "",
                "Nested domains (parent set) are inside their parent and never added to totals. \"system total\" is "
                "what the run attributes to itself: the top-level domains (CPU + DRAM + GPU ...), per phase.", ""]
        hdr, rows = _domain_table(a, dom)
        out += [_md_table(hdr, rows), ""]

    out += ["## Figures", ""]
    if figures:
        for f in figures:
            rel = f"figures/{f.name}.png"
            out += [f"### {f.title}", "", f"![{f.title}]({rel})", "", f.caption, ""]
    else:
        out += ["No figure: the data varies no axis a figure needs (or figures were turned off).", ""]

    out += ["## Provenance", ""]
    for p in _provenance(a):
        if a.multi_set:
            out += [f"### {p['label']}", ""]
        out += [_md_table(["item", "value"], [[k, v] for k, v in p["kv"]]), ""]
        if p["models"]:
            out += [_md_table(["model", "reference", "sha256", "size bytes", "quant", "synthetic"],
                              [[m["model_name"] or "", m["model"] or "", m["model_sha256"] or "", fmt_num(m["model_size_bytes"]),
                                m["model_quant"] or "", fmt_num(m["model_synthetic"])] for m in p["models"]]), ""]
        if p["domains"]:
            out += [_md_table(["domain", "meter", "kind", "component", "parent", "estimate", "source",
                               "update period s", "sample period s", "samples/run"],
                              [[d["domain"], d["meter"], d["kind"] or "", d["component"] or "", d["parent"] or "",
                                fmt_num(d["estimate"]), d["source"] or "", fmt_num(d["update_period_s"]),
                                fmt_num(d["sample_period_s"]), fmt_num(d["n_samples_median"])] for d in p["domains"]]), ""]
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------- HTML

_CSS = """
:root{--fg:#1d2330;--muted:#5b6575;--line:#d9dee7;--bg:#f6f8fb;--card:#fff;--accent:#2563eb;--warn:#b45309;--ok:#047857}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#0f172a;color:#e2e8f0;padding:18px 28px}
header h1{margin:0;font-size:22px;letter-spacing:.2px} header p{margin:4px 0 0;color:#94a3b8;font-size:12.5px}
header nav{margin-top:10px;display:flex;gap:14px;flex-wrap:wrap;font-size:13px}
header nav a{color:#cbd5e1;text-decoration:none} header nav a:hover{color:#fff;text-decoration:underline}
section{scroll-margin-top:12px}
main{padding:18px 28px 40px;max-width:1500px;margin:0 auto}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px;margin:14px 0;box-shadow:0 1px 2px rgba(15,23,42,.04)}
h2{font-size:17px;margin:2px 0 10px} h3{font-size:14px;margin:12px 0 6px;color:#334155}
.stats{display:flex;gap:12px;flex-wrap:wrap}
.stat{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px}
.stat b{display:block;font-size:20px} .stat span{color:var(--muted);font-size:12px}
.warn{color:var(--warn)} ul.warnings{margin:8px 0 0;padding-left:18px} ul.warnings li{margin:2px 0}
.badge{display:inline-block;font-size:11px;padding:1px 7px;border-radius:9px;background:#fef3c7;color:#92400e;margin:1px 3px 1px 0;white-space:nowrap}
.badge.ok{background:#d1fae5;color:var(--ok)} .badge.live{background:#dbeafe;color:#1e40af}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f1f5f9;position:sticky;top:0;z-index:1;font-weight:600;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none} table.sortable th:hover{background:#e2e8f0}
th.asc::after{content:" \\25B2";font-size:9px} th.desc::after{content:" \\25BC";font-size:9px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.pareto td{background:#f0fdf4} tr:hover td{background:#eef2ff}
.scroll{overflow:auto;max-height:640px;border:1px solid var(--line);border-radius:6px}
.rec{border-left:4px solid var(--accent);padding:6px 10px;margin:6px 0;background:#f8fafc}
.rec .v{font-weight:600} .rec .why{color:var(--muted);font-size:12.5px}
figure{margin:10px 0 22px} figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px;background:#fff}
figcaption{color:var(--muted);font-size:12.5px;margin-top:4px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px}
code{background:#f1f5f9;padding:1px 4px;border-radius:4px;font-size:12px}
.kv td:first-child{color:var(--muted);white-space:nowrap;width:1%}
"""

_SORT_JS = """
window.addEventListener('load',function(){var n=0;document.querySelectorAll('figure img').forEach(function(i){
  if(i.complete&&i.naturalWidth>0)n++});document.documentElement.setAttribute('data-figures-loaded',String(n));});
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var asc=!th.classList.contains('asc');
      t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc')});
      th.classList.add(asc?'asc':'desc');
      var body=t.tBodies[0], rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[i].getAttribute('data-v'), y=b.cells[i].getAttribute('data-v');
        var nx=parseFloat(x), ny=parseFloat(y), c;
        if(x===''&&y==='')c=0; else if(x==='')return 1; else if(y==='')return -1;
        else if(!isNaN(nx)&&!isNaN(ny))c=nx-ny; else c=String(x).localeCompare(String(y));
        return asc?c:-c;});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
"""

_LIVE_JS = """
(function(){var v=%s;function poll(){fetch('api/state',{cache:'no-store'}).then(function(r){return r.json()})
.then(function(s){var el=document.getElementById('live');if(el)el.textContent='live: '+s.n_runs+' runs, updated '+s.updated_at;
if(s.version!==v){location.reload();}}).catch(function(){}).finally(function(){setTimeout(poll,%d)})}
setTimeout(poll,%d)})();
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _sort_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return "" if isinstance(v, float) and not math.isfinite(v) else repr(v)
    return str(v)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "", numeric: Sequence[bool] | None = None) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for r in rows:
        tds = "".join(f'<td class="num">{_e(c)}</td>' if numeric and numeric[i] else f"<td>{_e(c)}</td>"
                      for i, c in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _results_html(a: Analysis) -> str:
    cols = results_columns(a)
    th = "".join(f'<th title="{_e(c.title)}">{_e(c.header)}</th>' for c in cols)
    body = []
    for r in a.cfg.iter_rows(named=True):
        tds = []
        for c in cols:
            key = c.key(r)
            text = c.text(r)
            if c.header == "warnings":
                badges = "".join(f'<span class="badge">{_e(w)}</span>'
                                 for w in render_warnings(r.get("warnings") or [], skip_set_wide=True))
                tds.append(f'<td data-v="{_e(_sort_value(key))}">{badges}</td>')
            else:
                num = isinstance(key, (int, float)) and not isinstance(key, bool)
                tds.append(f'<td{" class=num" if num else ""} data-v="{_e(_sort_value(key))}">{_e(text)}</td>')
        body.append(f'<tr{" class=pareto" if r.get("pareto") else ""}>{"".join(tds)}</tr>')
    return (f'<div class="scroll"><table class="sortable" id="results"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def render_html(a: Analysis, figures: Sequence[FigureFile], *, generated_at: datetime | None = None,
                live: dict[str, Any] | None = None) -> str:
    """A self-contained HTML page: figures inlined as data URIs, a sortable table, provenance.

    ``live``: ``{"version": str, "poll_ms": int}`` adds a script that polls ``api/state`` and reloads
    the page when the report was rebuilt (``energybench report --serve``).
    """
    ts = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    counts = _set_counts(a)
    parts: list[str] = []
    srcs = ", ".join(_e(rs.root) for rs in a.sets)
    live_badge = '<span class="badge live" id="live">live</span>' if live else ""
    nav = [("summary", "Summary"), ("recommendations", "Recommendations"), ("figures", "Figures"),
           ("pareto", "Pareto"), ("race", "Race-to-sleep"), ("roofline", "Roofline"), ("compare", "Comparison"),
           ("results-section", "Results"), ("domains", "Domains"), ("provenance", "Provenance")]
    parts.append(f"<header><h1>energybench report {live_badge}</h1><p>Generated {ts} by energybench {_e(__version__)} "
                 f"from {srcs}</p><nav>NAV</nav></header><main>")

    # summary
    tot = {k: sum(c[k] for c in counts) for k in ("runs", "ok", "warmups", "failed")}
    stats = [("runs", tot["runs"]), ("repetitions", tot["ok"]), ("warm-ups", tot["warmups"]), ("failed", tot["failed"]),
             ("configurations", a.cfg.height), ("workloads", len(a.workloads))]
    s = "".join(f'<div class="stat"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in stats)
    warn = ""
    if a.warnings:
        warn = '<ul class="warnings">' + "".join(f'<li class="warn">⚠ {_e(w)}</li>' for w in a.warnings) + "</ul>"
    parts.append(f'<section id="summary"><h2>Summary</h2><div class="stats">{s}</div>{warn}'
                 '<p class="why" style="color:var(--muted);font-size:12.5px;margin:10px 0 0">Median of the repetitions '
                 'with a seeded 95 % percentile-bootstrap CI; warm-ups and failed runs excluded. J/token is gross energy '
                 'per output token unless marked net (idle-subtracted).</p></section>')

    # recommendations
    rec_html = []
    for set_name, wl, recs in _rec_groups(a):
        rec_html.append(f"<h3>{_e(wl)}{' [' + _e(set_name) + ']' if a.multi_set else ''}</h3>")
        for r in recs:
            warn_b = "".join(f'<span class="badge">{_e(w)}</span>'
                             for w in render_warnings(r.warnings, skip_set_wide=True))
            rec_html.append(
                f'<div class="rec"><b>{_e(r.label)}</b>: <code>{_e(describe_config(r.best.config))}</code> '
                f'<span class="v">{_e(fmt_ci(r.best.value, r.best.ci_lo, r.best.ci_hi))} {_e(r.unit)}</span> '
                f'(n={r.best.n_reps}) {warn_b}<div class="why">{_e(r.verdict)}</div></div>')
    parts.append('<section id="recommendations"><h2>Recommendations</h2>'
                 + ("".join(rec_html) or "<p>No configuration has finished repetitions yet.</p>") + "</section>")

    # figures
    if figures:
        figs = []
        for f in figures:
            img = ""
            if f.png_bytes:
                img = f'<img alt="{_e(f.title)}" src="data:image/png;base64,{base64.b64encode(f.png_bytes).decode()}">'
            links = " · ".join(f'<a href="figures/{_e(p.name)}">{_e(fmt.upper())}</a>' for fmt, p in f.paths.items())
            figs.append(f'<figure id="fig-{_e(f.name)}">{img}<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} '
                        f'<span style="float:right">{links}</span></figcaption></figure>')
        parts.append('<section id="figures"><h2>Figures</h2>' + "".join(figs) + "</section>")

    # pareto, race, roofline, compare
    front = _pareto_rows(a)
    if front.height:
        hdr, rows = _pareto_table(a, front)
        parts.append('<section id="pareto"><h2>Pareto front: latency vs energy per output token</h2>'
                     + _html_table(hdr, rows, numeric=[False] * (len(hdr) - 2) + [True, True]) + "</section>")
    if a.windows:
        tw = "; ".join(f"{_e(wl)}: T = {_e(fmt_num(t))} s" for wl, t in list(a.windows.items())[:8])
        parts.append(f'<section id="race"><h2>Race-to-sleep</h2><p>E(T) = E<sub>active</sub> + P<sub>idle</sub> x '
                     f'(T - t<sub>active</sub>) over one window T per workload ({_e(a.window_source)}): {tw}. '
                     'The column <i>E(T) J</i> of the results table holds it; the lowest is in the recommendations.</p></section>')
    roof = _roofline_rows(a)
    if roof.height:
        hdr, rows = _roofline_table(a, roof)
        bw = "; ".join((f"{_e(k)}: " if a.multi_set else "") + f"{_e(fmt_num(v[0]))} GB/s, {_e(v[1])}"
                       for k, v in a.bandwidth.items() if v[0])
        parts.append(f'<section id="roofline"><h2>Decode roofline</h2><p>decode tok/s x model bytes (~ bytes read per '
                     f'token) as a fraction of the memory bandwidth ({bw}); llama.cpp typically reaches 50-80 % on CPUs. '
                     f'CPU-only configurations.</p>' + _html_table(hdr, rows, numeric=[False] * (len(hdr) - 3) + [True] * 3)
                     + "</section>")
    if a.multi_set:
        hdr, rows = _compare_table(a)
        parts.append('<section id="compare"><h2>Comparison of result sets</h2>'
                     + (f'<div class="scroll">{_html_table(hdr, rows, cls="sortable")}</div>' if rows
                        else "<p>No configuration appears in more than one set.</p>") + "</section>")

    parts.append('<section id="results-section"><h2>Results per configuration</h2><p style="color:var(--muted);'
                 'font-size:12.5px;margin:0 0 8px">Click a column header to sort. Green rows are on the Pareto front. '
                 'Values: median [95 % CI].</p>' + (_results_html(a) if a.cfg.height else "<p>No runs yet.</p>")
                 + "</section>")

    dom = _domain_rows(a)
    if dom.height:
        hdr, rows = _domain_table(a, dom)
        parts.append('<section id="domains"><h2>Power per domain (recommended configurations)</h2><p style="color:'
                     'var(--muted);font-size:12.5px;margin:0 0 8px">Nested domains (with a parent) are inside it and '
                     'never added to totals. All configurations: <code>tables/domains.csv</code> with --export csv.</p>'
                     + _html_table(hdr, rows, cls="sortable", numeric=[False] * (len(hdr) - 6) + [True] * 6) + "</section>")

    prov = []
    for p in _provenance(a):
        if a.multi_set:
            prov.append(f"<h3>{_e(p['label'])}</h3>")
        prov.append(_html_table(["item", "value"], p["kv"], cls="kv"))
        if p["models"]:
            prov.append("<h3>Models</h3>" + _html_table(
                ["model", "reference", "sha256", "size bytes", "quant", "synthetic"],
                [[m["model_name"] or "", m["model"] or "", m["model_sha256"] or "", fmt_num(m["model_size_bytes"]),
                  m["model_quant"] or "", fmt_num(m["model_synthetic"])] for m in p["models"]]))
        if p["domains"]:
            prov.append("<h3>Meters and domains</h3>" + _html_table(
                ["domain", "meter", "kind", "component", "parent", "estimate", "source", "update period s",
                 "sample period s", "samples/run"],
                [[d["domain"], d["meter"], d["kind"] or "", d["component"] or "", d["parent"] or "", fmt_num(d["estimate"]),
                  d["source"] or "", fmt_num(d["update_period_s"]), fmt_num(d["sample_period_s"]),
                  fmt_num(d["n_samples_median"])] for d in p["domains"]]))
    parts.append('<section id="provenance"><h2>Provenance</h2>' + "".join(prov) + "</section>")
    parts.append("</main>")
    body = "".join(parts)
    links = " ".join(f'<a href="#{i}">{t}</a>' for i, t in nav if f'id="{i}"' in body)
    body = body.replace("<nav>NAV</nav>", f"<nav>{links}</nav>", 1)

    script = _SORT_JS
    if live:
        poll = int(live.get("poll_ms", 2000))
        script += _LIVE_JS % (json.dumps(str(live.get("version", ""))), poll, poll)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>energybench report</title><style>{_CSS}</style></head><body>"
            + body + f"<script>{script}</script></body></html>\n")


#: Warning codes that hold for a whole set (listed once in ``warnings``, counted per configuration).
SET_WIDE_WARNINGS = tuple(f"{c}:" for c in SET_WIDE_CODES)


def _warning_counts(a: Analysis) -> dict[str, int]:
    if a.cfg.height == 0:
        return {}
    codes = a.cfg.select(pl.col("warnings").explode().str.split(":").list.first().alias("c"))["c"].drop_nulls()
    return dict(sorted(codes.value_counts().iter_rows()))


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, recursively (strict JSON for CI tools)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def summary_dict(a: Analysis, figures: Sequence[FigureFile]) -> dict[str, Any]:
    """The machine-readable summary (``--format json``): sets, best configurations, warnings."""
    return _json_safe({
        "energybench_version": __version__,
        "sets": _set_counts(a),
        "workloads": a.workloads,
        "varied": a.varied,
        "objectives": {k: v[1] for k, v in OBJECTIVES.items()},
        "recommendations": [r.to_dict() for r in a.recommendations],
        "pareto": [
            {"set": r["set"], "workload": r["workload"], "point_id": r["point_id"],
             "config": {k: r[k] for k in a.varied}, "e2e_s": r["e2e_s"], "j_per_output_token": r["j_per_output_token"]}
            for r in _pareto_rows(a).iter_rows(named=True)
        ],
        "race_window_s": a.windows,
        "window_source": a.window_source,
        "memory_bandwidth_gbs": {k: v[0] for k, v in a.bandwidth.items()},
        "warnings": a.warnings,
        "config_warning_counts": _warning_counts(a),
        "config_warnings": [
            {"set": r["set"], "workload": r["workload"], "point_id": r["point_id"],
             "config": {k: r[k] for k in a.varied}, "warnings": render_warnings(r["warnings"] or [])}
            for r in a.cfg.iter_rows(named=True)
            if any(not w.startswith(SET_WIDE_WARNINGS) for w in (r["warnings"] or []))
        ],
        "figures": [f.name for f in figures],
    })
