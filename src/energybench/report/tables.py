"""The tables of a report as plain data (header and rows of text), built once for Markdown and HTML.

Each renderer lays a :class:`Table` out its own way; the per-configuration results table is a list
of :class:`Column` (header, cell text, sort key), because HTML sorts it by the underlying numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from energybench.metrics import METRICS, heading
from energybench.report.analysis import Analysis
from energybench.report.best import describe_config
from energybench.report.fmt import fmt_ci, fmt_num, fmt_pct
from energybench.report.load import ResultSet, idle_power_from_metadata
from energybench.report.metrics import AXES
from energybench.report.stats import render_warnings


@dataclass(frozen=True)
class Table:
    """Header and rows of text; ``numeric`` marks the columns that hold numbers (right-aligned)."""

    header: list[str]
    rows: list[list[str]]
    numeric: list[bool] | None = None


def _numeric_tail(header: list[str], n: int) -> list[bool]:
    return [False] * (len(header) - n) + [True] * n


# ----------------------------------------------------------------------------- results per configuration


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


def row_warnings(r: dict[str, Any]) -> list[str]:
    """A configuration's warnings as text, without those that hold for its whole set."""
    return render_warnings(r.get("warnings") or [], skip_set_wide=True)


def _metric_columns() -> list[Column]:
    return [
        _ci_col("j_per_output_token"),
        _num_col("j_per_output_token_cv", header="CV", pct=True,
                 title="coefficient of variation of J/output token across repetitions"),
        *(_ci_col(m) for m in ("j_per_output_token_net", "j_per_processed_token", "output_tokens_per_j", "edp_js",
                               "ed2p_js2", "e2e_s")),
        _num_col("ms_per_output_token_mean", header="ms/token mean",
                 title=_title("ms_per_output_token") + ": mean over the repetitions"),
        _num_col("ms_per_output_token_p95", header="ms/token p95",
                 title=_title("ms_per_output_token") + ": 95th percentile over the repetitions"),
        *(_ci_col(m) for m in ("ttft_ms", "prefill_tok_s", "decode_tok_s", "avg_power_w")),
        _num_col("peak_power_w"),
        _num_col("prefill_energy_frac", pct=True),
        _num_col("roofline_frac", pct=True),
        _ci_col("race_energy_j"),
    ]


def results_columns(a: Analysis) -> list[Column]:
    """The columns of the per-configuration table (id and knobs that vary, then metrics)."""
    cols: list[Column] = []
    if a.multi_set:
        cols.append(Column("set", lambda r: str(r["set"]), lambda r: r["set"]))
    if len(a.workloads) > 1:
        cols.append(Column("workload", lambda r: str(r["workload"]), lambda r: r["workload"]))
    cols.append(Column("configuration", lambda r: str(r.get("config_id") or ""), lambda r: r.get("config_id") or "",
                       "configuration id: the grid's label, then the setting that differs from its base"))
    for k in a.varied or ["n_threads"]:
        cols.append(Column(AXES.get(k, k), lambda r, k=k: fmt_num(r.get(k)), lambda r, k=k: r.get(k)))
    cols += [
        Column("reps", lambda r: str(r["n_reps"]), lambda r: r["n_reps"],
               "finished repetitions (warm-ups and failures excluded)"),
        Column("failed", lambda r: str(r["n_failed"]) if r["n_failed"] else "", lambda r: r["n_failed"]),
        *_metric_columns(),
        Column("Pareto", lambda r: "yes" if r.get("pareto") else "", lambda r: 1 if r.get("pareto") else 0,
               "on the latency-energy Pareto front"),
        Column("warnings", lambda r: "; ".join(row_warnings(r)), lambda r: len(row_warnings(r))),
    ]
    # drop metric columns that are empty everywhere (e.g. no energy at all)
    rows = a.cfg.to_dicts() if a.cfg.height <= 2000 else a.cfg.head(2000).to_dicts()
    always = ("reps", "failed", "warnings", "Pareto")
    return [c for c in cols if c.header in always or any(c.text(r) not in ("–", "") for r in rows)]


# ----------------------------------------------------------------------------- counts, Pareto, roofline, comparison


def set_counts(a: Analysis) -> list[dict[str, Any]]:
    """Per set: runs, repetitions (``ok``), warm-ups, failed runs, configurations."""
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


def pareto_rows(a: Analysis) -> pl.DataFrame:
    return a.cfg.filter(pl.col("pareto")).sort(["set", "workload", "e2e_s"])


def _where(a: Analysis, r: dict[str, Any]) -> list[str]:
    """The set and workload cells of a row, where the report has several of them."""
    return ([r["set"]] if a.multi_set else []) + ([r["workload"]] if len(a.workloads) > 1 else [])


def _where_header(a: Analysis) -> list[str]:
    return (["set"] if a.multi_set else []) + (["workload"] if len(a.workloads) > 1 else [])


def pareto_table(a: Analysis) -> Table | None:
    """The latency-energy Pareto front (the first 60 configurations); None when empty."""
    front = pareto_rows(a)
    if not front.height:
        return None
    hdr = _where_header(a) + ["configuration", "latency s", "J/token"]
    rows = [_where(a, r) + [describe_config({k: r[k] for k in a.varied}),
                            fmt_ci(r["e2e_s"], r["e2e_s_lo"], r["e2e_s_hi"]),
                            fmt_ci(r["j_per_output_token"], r["j_per_output_token_lo"], r["j_per_output_token_hi"])]
            for r in front.head(60).iter_rows(named=True)]
    return Table(hdr, rows, _numeric_tail(hdr, 2))


def roofline_table(a: Analysis) -> Table | None:
    """Decode speed against the memory bandwidth (the 20 closest to it); None without any."""
    roof = a.cfg.filter(pl.col("roofline_frac").is_not_null()).sort(["set", "workload", "roofline_frac"],
                                                                     descending=[False, False, True])
    if not roof.height:
        return None
    hdr = _where_header(a) + ["configuration", "decode tok/s", "GB/s read", "of bandwidth"]
    rows = [_where(a, r) + [describe_config({k: r[k] for k in a.varied}),
                            fmt_ci(r["decode_tok_s"], r["decode_tok_s_lo"], r["decode_tok_s_hi"]),
                            fmt_num((r["decode_bytes_s"] or 0) / 1e9), fmt_pct(r["roofline_frac"])]
            for r in roof.head(20).iter_rows(named=True)]
    return Table(hdr, rows, _numeric_tail(hdr, 3))


def compare_table(a: Analysis) -> Table:
    """Configurations present in several sets: J/token and latency per set, ratio to the first set."""
    if not a.multi_set or a.cfg.height == 0:
        return Table([], [])
    shown = a.varied or ["n_threads"]
    df = a.cfg.with_columns(config=pl.struct(shown).map_elements(lambda r: describe_config(r), return_dtype=pl.String))
    labels = [rs.label for rs in a.sets]
    keyed: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in df.iter_rows(named=True):
        keyed.setdefault((r["workload"], r["config"]), {})[r["set"]] = r
    header = ["workload", "configuration"]
    for lab in labels:
        header += [f"J/token {lab}", f"latency s {lab}"]
    header += [f"J/token {lab} / {labels[0]}" for lab in labels[1:]]
    rows = [[wl, conf, *_compare_cells(per, labels)] for (wl, conf), per in sorted(keyed.items()) if len(per) >= 2]
    return Table(header, rows)


def _ci(r: dict[str, Any] | None, m: str) -> str:
    return fmt_ci(r.get(m), r.get(f"{m}_lo"), r.get(f"{m}_hi")) if r else "–"


def _compare_cells(per: dict[str, dict[str, Any]], labels: list[str]) -> list[str]:
    cells = []
    for lab in labels:
        r = per.get(lab)
        cells += [_ci(r, "j_per_output_token"), _ci(r, "e2e_s")]
    base = per.get(labels[0], {}).get("j_per_output_token")
    for lab in labels[1:]:
        v = per.get(lab, {}).get("j_per_output_token")
        cells.append(fmt_num(v / base) + "x" if v is not None and base else "–")
    return cells


# ----------------------------------------------------------------------------- machines as a dimension


def machine_list_table(a: Analysis) -> Table | None:
    """Each set's machine, meters and the components its energy totals count (several machines only)."""
    from energybench.machines import energy_components, meter_names

    if a.machines is None:
        return None
    meta = {rs.label: rs.metadata for rs in a.sets}
    return Table(["set", "machine", "meters", "energy counts"],
                 [[lab, desc, meter_names(meta[lab]), energy_components(meta[lab])]
                  for lab, desc in a.machines.machines.items()])


def _vs_lowest(row: Any, i: int) -> str:
    v, low = row.values[i], row.lowest
    if i == 0:
        nxt = row.vs_next
        return "lowest" + (f" ({'beyond noise' if nxt.verdict == 'worse' else nxt.verdict})" if nxt else "")
    ratio = f"x{fmt_num(v.median / low.median)}" if low.median else "–"
    nxt = row.vs_next
    return ratio + (f" [{fmt_num(nxt.ratio_lo)}, {fmt_num(nxt.ratio_hi)}]" if i == 1 and nxt and nxt.ratio_lo else "")


def cross_machine_table(m: Any) -> Table | None:
    """A :class:`energybench.crossmachine.CrossMachine` as a table (None when it has no row)."""
    if m is None or not m.rows:
        return None
    hdr = ["workload", "configuration", "set", heading(m.metric), "runs", "meters", "vs lowest"]
    rows = [[r.workload, r.config, v.set + (" (estimate)" if v.estimate else ""), fmt_ci(v.median, v.lo, v.hi),
             str(v.n), v.meters, _vs_lowest(r, i)] for r in m.rows for i, v in enumerate(r.values)]
    return Table(hdr, rows, [False, False, False, True, True, False, False])


def machine_caveats(a: Analysis | Any) -> list[str]:
    """The distinct caveats of the machine table (meters that differ) of a report or a comparison."""
    return list(dict.fromkeys(c for r in (a.machines.rows if a.machines else []) for c in r.caveats))


# ----------------------------------------------------------------------------- power per domain


def domain_rows(a: Analysis) -> pl.DataFrame:
    """Per-domain power of the recommended configurations (the full table goes to domains.csv)."""
    keys = {(r.set, r.best.point_id) for r in a.recommendations}
    if not keys or a.domains.height == 0:
        return a.domains.head(0)
    sel = pl.DataFrame({"set": [k[0] for k in keys], "point_id": [k[1] for k in keys]})
    cfg_cols = ["set", "point_id", "workload", *(a.varied or [])]
    doms = a.domains.join(sel, on=["set", "point_id"])
    totals = _system_totals(a, sel)
    cols = [c for c in totals.columns if c in doms.columns]
    if totals.height:
        doms = pl.concat([doms, totals.select(cols)], how="diagonal_relaxed")
    order = pl.when(pl.col("domain") == "system total").then(1).otherwise(0)
    return (doms.join(a.cfg.select(cfg_cols), on=["set", "point_id"])
            .with_columns(_last=order).sort(["set", "workload", "point_id", "_last", "domain"]).drop("_last"))


def _system_totals(a: Analysis, sel: pl.DataFrame) -> pl.DataFrame:
    """One "system total" row per configuration: the run totals (top-level domains only, as stored),
    so CPU + DRAM + GPU per phase sit next to the sum a measurement attributes to the run."""
    valid = a.valid.filter(pl.col("has_energy").fill_null(False)) if "has_energy" in a.valid.columns else a.valid
    return valid.join(sel, on=["set", "point_id"]).group_by(["set", "point_id"]).agg(
        domain=pl.lit("system total"), meter=pl.col("meters").drop_nulls().first(),
        parent=pl.lit(None, dtype=pl.String), estimate=pl.col("flag_estimate").fill_null(False).any(),
        avg_power_w=pl.col("avg_power_w").median(), peak_power_w=pl.col("peak_power_w").max(),
        idle_power_w=pl.col("idle_power_w").median(),
        energy_j=pl.col("energy_j").median(),
        prefill_energy_j=pl.col("prefill_energy_j").median(), decode_energy_j=pl.col("decode_energy_j").median(),
        j_per_output_token=pl.col("j_per_output_token").median(),
    )


def domain_table(a: Analysis) -> Table | None:
    """Power per domain of the recommended configurations; None without any."""
    dom = domain_rows(a)
    if not dom.height:
        return None
    hdr = (["set"] if a.multi_set else []) + ["configuration", "domain", "meter", "parent", "avg W", "peak W",
                                               "idle W", "energy J", "prefill J", "decode J", "J/token"]
    rows = [([r["set"]] if a.multi_set else []) + [describe_config({k: r[k] for k in a.varied}), r["domain"],
            r["meter"] + (" (estimate)" if r["estimate"] else ""), r["parent"] or "", fmt_num(r["avg_power_w"]),
            fmt_num(r["peak_power_w"]), fmt_num(r["idle_power_w"]), fmt_num(r["energy_j"]),
            fmt_num(r["prefill_energy_j"]), fmt_num(r["decode_energy_j"]), fmt_num(r["j_per_output_token"])]
            for r in dom.iter_rows(named=True)]
    return Table(hdr, rows, _numeric_tail(hdr, 6))


# ----------------------------------------------------------------------------- provenance


@dataclass(frozen=True)
class SetProvenance:
    """Where one set's numbers come from: metadata items, models, meters and domains."""

    label: str
    items: Table
    models: Table | None
    meters: Table | None


def provenance(a: Analysis) -> list[SetProvenance]:
    out = []
    for rs in a.sets:
        runs = a.runs.filter(pl.col("set") == rs.label)
        out.append(SetProvenance(label=rs.label, items=Table(["item", "value"], _items(a, rs)),
                                 models=_models_table(runs),
                                 meters=_meters_table(a.provenance.filter(pl.col("set") == rs.label))))
    return out


def _items(a: Analysis, rs: ResultSet) -> list[list[str]]:
    meta = rs.metadata
    kv = [("results directory", str(rs.root))]
    kv += _plain(meta, ("kind", "status", "sweep_id", "name", "created_at", "config_hash", "energybench_version",
                        "generator", "schema_version"))
    kv += [(f"shard {x.get('index')}/{x.get('count')}",
            f"{x.get('root')} (host {x.get('hostname')}, {x.get('status')})") for x in meta.get("shards") or []]
    kv += _nested(meta.get("host"), "host", skip=(None,))
    kv += _nested(meta.get("backend"), "llama.cpp build", skip=(None, "", [], {}))
    kv += [("gpu", _short(g)) for g in meta.get("gpus") or []]
    kv += _plain(meta, ("clock", "clock_offset_ns", "sample_period_s", "sample_period_ms"))
    kv += _nested(meta.get("sampler"), "sampler", skip=(None,))
    bw, src = a.bandwidth.get(rs.label, (None, "missing"))
    kv.append(("memory bandwidth", f"{fmt_num(bw)} GB/s ({src})" if bw else "not recorded"))
    idle = idle_power_from_metadata(meta)
    kv.append(("idle baseline (W)",
               ", ".join(f"{k}: {fmt_num(v)}" for k, v in idle.items()) if idle else "none recorded"))
    kv += [(f"meter {m.get('name')}", ("estimate: " if m.get("estimate") else "") + str(m.get("description") or ""))
           for m in meta.get("meters") or [] if isinstance(m, dict)]
    kv += [("meter warning", _short(w)) for w in meta.get("meter_warnings") or []]
    return [[k, v] for k, v in kv]


def _plain(meta: dict[str, Any], keys: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(k, str(meta[k])) for k in keys if meta.get(k) is not None]


def _nested(value: Any, prefix: str, *, skip: tuple[Any, ...]) -> list[tuple[str, str]]:
    """``prefix.key`` items of a mapping (values in ``skip`` left out), or one item for anything else."""
    if isinstance(value, dict):
        return [(f"{prefix}.{k}", _short(v)) for k, v in value.items() if v not in skip]
    return [(prefix, _short(value))] if value else []


def _short(v: Any, limit: int = 400) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _models_table(runs: pl.DataFrame) -> Table | None:
    models = (runs.group_by(["model_name", "model_sha256"]).agg(
        pl.col("model").first(), pl.col("model_size_bytes").first(), pl.col("model_quant").first(),
        pl.col("model_synthetic").first()).sort("model_name").to_dicts())
    if not models:
        return None
    return Table(["model", "reference", "sha256", "size bytes", "quant", "synthetic"],
                 [[m["model_name"] or "", m["model"] or "", m["model_sha256"] or "", fmt_num(m["model_size_bytes"]),
                   m["model_quant"] or "", fmt_num(m["model_synthetic"])] for m in models])


def _meters_table(domains: pl.DataFrame) -> Table | None:
    if not domains.height:
        return None
    return Table(["domain", "meter", "kind", "component", "parent", "estimate", "source", "update period s",
                  "sample period s", "samples/run"],
                 [[d["domain"], d["meter"], d["kind"] or "", d["component"] or "", d["parent"] or "",
                   fmt_num(d["estimate"]), d["source"] or "", fmt_num(d["update_period_s"]),
                   fmt_num(d["sample_period_s"]), fmt_num(d["n_samples_median"])]
                  for d in domains.iter_rows(named=True)])


# ----------------------------------------------------------------------------- the original study's tables


def _mean_ci(r: dict[str, Any], name: str, scale: float = 1.0) -> str:
    v, lo, hi = (r.get(k) for k in (name, f"{name}_lo", f"{name}_hi"))
    return fmt_ci(*(x * scale if x is not None else None for x in (v, lo, hi)))


def suite_backend_table(a: Analysis) -> Table | None:
    """Per suite and backend mode: mean latency, energy and EDP [95 % CI] (the study's summary)."""
    df = a.study.summary if a.study is not None else None
    if df is None or df.height == 0:
        return None
    hdr = (["set"] if a.multi_set else []) + ["suite", "backend", "configurations", "runs", "latency ms",
                                               "energy J", "EDP J*s"]
    rows = [([r["set"]] if a.multi_set else []) + [r["suite"], r["backend_mode"] or "", str(r["n_configurations"]),
                                                   str(r["n_runs"]), _mean_ci(r, "latency_s", 1e3),
                                                   _mean_ci(r, "energy_j"), _mean_ci(r, "edp_js")]
            for r in df.iter_rows(named=True)]
    return Table(hdr, rows, _numeric_tail(hdr, 5))


def headline_table(a: Analysis) -> Table | None:
    """CPU vs GPU per suite: speed-up, energy saved, EDP ratio [95 % CI] and their verdicts."""
    hs = a.study.headlines if a.study is not None else []
    if not hs:
        return None
    hdr = (["set"] if a.multi_set else []) + ["suite", "CPU", "GPU", "speed-up x", "", "energy saved %", "",
                                               "EDP ratio x", ""]
    rows = [([h.set] if a.multi_set else []) + [
        h.suite, f"{h.cpu} (n={h.n_cpu})", f"{h.gpu} (n={h.n_gpu})", fmt_ci(*h.speedup), h.verdicts["speedup"],
        fmt_ci(*(x * 100 for x in h.energy_saved)), h.verdicts["energy_saved"], fmt_ci(*h.edp_ratio),
        h.verdicts["edp_ratio"]] for h in hs]
    return Table(hdr, rows)


def _settings(a: Analysis) -> dict[tuple[str, str], str]:
    """(set, configuration id) -> its varied settings in words."""
    shown = a.varied or ["n_threads"]
    return {(r["set"], r["config_id"]): describe_config({k: r[k] for k in shown})
            for r in a.cfg.iter_rows(named=True) if r.get("config_id")}


def ranking_table(a: Analysis) -> Table | None:
    """Configurations by mean EDP over every prompt (the study's ranking), with the verdict vs the best."""
    df = a.study.ranking if a.study is not None else None
    if df is None or df.height == 0:
        return None
    settings = _settings(a)
    several = df.select(["set", "task"]).unique().height > 1
    hdr = (["set"] if a.multi_set else []) + (["model | generation"] if several else []) + [
        "rank", "configuration", "settings", "runs", "prompts", "EDP J*s", "latency ms", "energy J", "vs best"]
    rows = [([r["set"]] if a.multi_set else []) + ([r["task"]] if several else []) + [
        str(r["rank"]), r["config_id"] or "", settings.get((r["set"], r["config_id"]), ""), str(r["n_runs"]),
        str(r["n_prompts"]), _mean_ci(r, "edp_js"), _mean_ci(r, "latency_s", 1e3), _mean_ci(r, "energy_j"),
        r["verdict"]] for r in df.iter_rows(named=True)]
    return Table(hdr, rows, [False] * (len(hdr) - 6) + [True, True, True, True, True, False])
