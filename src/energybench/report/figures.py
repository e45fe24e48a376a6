"""The report's figures. Each ``fig_*`` function returns a :class:`~.plot.Figure`, or None when the
data does not vary the figure's axis (no empty plots); :func:`save_figures` is the one place that
writes files (SVG always: it is the drawing; PNG rasterised from it on request).

Figures are drawn from configuration aggregates (medians with their bootstrap CIs as error bars),
never from raw samples -- except the power timeline, which reads the samples of a handful of runs.
Curves show one *slice* of the grid: the axis on x, one other knob as colour, every other knob fixed
at the value of the best configuration (said in the subtitle).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from energybench.metrics import METRICS
from energybench.report.analysis import Analysis
from energybench.report.best import describe_config
from energybench.report.fmt import fmt_num
from energybench.report.load import load_samples
from energybench.report.metrics import AXES, samples_power
from energybench.report.plot import (Band, Continuous, Figure, Key, Legend, Line, Panel, Points, Rect, Segments,
                                     Text, render)
from energybench.results import atomic_write_bytes

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]
INK = "#111111"


@dataclass(frozen=True)
class FigureFile:
    """A saved figure: its name, title, a caption, the files written and the SVG itself (pages inline it)."""

    name: str
    title: str
    caption: str
    paths: dict[str, Path]  # format -> path
    svg: str


def _disp(v: Any) -> str:
    """Axis/legend text of a knob value: 512.0 -> '512'."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _levels(values: Sequence[Any]) -> list[Any]:
    """Distinct non-null values in order (numbers numerically, before strings)."""
    vals = {v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return sorted(vals, key=lambda v: (isinstance(v, str), v))


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _ok(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _error_bars(rows: Sequence[dict[str, Any]], at: str, lo: str, hi: str, color: str | list[str], *,
                horizontal: bool = False, opacity: float = 1.0) -> Segments:
    """A bar from ``lo`` to ``hi`` at position ``at`` of each row: vertical, or horizontal (``at`` is
    then the y position); rows without a CI are skipped."""
    colors = [color] * len(rows) if isinstance(color, str) else color
    keep = [(r, c) for r, c in zip(rows, colors, strict=True) if _ok(r.get(lo)) and _ok(r.get(hi))]
    pos, los, his = [r[at] for r, _ in keep], [r[lo] for r, _ in keep], [r[hi] for r, _ in keep]
    cols = [c for _, c in keep]
    if horizontal:
        return Segments(los, pos, his, pos, cols, width=1.1, opacity=opacity)
    return Segments(pos, los, pos, his, cols, width=1.1, opacity=opacity)


def _slice(a: Analysis, x: str, color: str | None, objective_metric: str = "j_per_output_token"
           ) -> tuple[pl.DataFrame, str]:
    """Configurations of the main workload along ``x`` (and ``color``), the other varied knobs
    fixed at the best configuration's values (per set)."""
    if not a.workloads:
        return a.cfg.head(0), ""
    wl = a.workloads[0]
    frames = []
    fixed_desc = ""
    for set_name in a.cfg["set"].unique(maintain_order=True).to_list():
        cfg = a.cfg.filter((pl.col("set") == set_name) & (pl.col("workload") == wl) & (pl.col("n_reps") > 0))
        if cfg.height == 0:
            continue
        metric = objective_metric if cfg[objective_metric].drop_nulls().len() else "e2e_s"
        best = cfg.sort(metric, nulls_last=True).row(0, named=True)
        others = [k for k in a.varied if k not in (x, color)]
        cond = pl.lit(True)
        for k in others:
            cond = cond & (pl.col(k) == best[k]) if best[k] is not None else cond & pl.col(k).is_null()
        frames.append(cfg.filter(cond))
        if others and not fixed_desc:
            fixed_desc = "others fixed at the lowest-" + ("J/token" if metric == objective_metric else "latency") \
                         + f" configuration: {describe_config({k: best[k] for k in others})}"
    df = pl.concat(frames) if frames else a.cfg.head(0)
    return df, f"{wl}" + (f"; {fixed_desc}" if fixed_desc else "")


def _color_axis(a: Analysis, x: str, prefer: Sequence[str]) -> str | None:
    for c in prefer:
        if c != x and c in a.varied:
            return c
    return next((c for c in a.varied if c != x), None)


def _long(df: pl.DataFrame, metrics: Sequence[str], keep: Sequence[str]) -> pl.DataFrame:
    """One row per (configuration, metric) with value/lo/hi and a facet label with the unit."""
    frames = []
    for m in metrics:
        if m not in df.columns or df[m].drop_nulls().len() == 0:
            continue
        label, unit = METRICS[m].label, METRICS[m].unit
        lo = pl.col(f"{m}_lo") if f"{m}_lo" in df.columns else pl.lit(None, dtype=pl.Float64)
        hi = pl.col(f"{m}_hi") if f"{m}_hi" in df.columns else pl.lit(None, dtype=pl.Float64)
        frames.append(df.select(*keep, metric=pl.lit(f"{label} ({unit})"), value=pl.col(m).cast(pl.Float64),
                                lo=lo.cast(pl.Float64), hi=hi.cast(pl.Float64)))
    return pl.concat(frames) if frames else pl.DataFrame()


def _series(rows: list[dict[str, Any]], x: str, color: str) -> list[Any]:
    """A line through two points or more, the points and their error bars, in one colour."""
    rows = sorted((r for r in rows if _ok(r["value"]) and _ok(r[x])), key=lambda r: r[x])
    if not rows:
        return []
    xs, ys = [r[x] for r in rows], [r["value"] for r in rows]
    out: list[Any] = [Line(xs, ys, color)] if len(rows) >= 2 else []
    return [*out, _error_bars(rows, x, "lo", "hi", color), Points(xs, ys, color)]


def _curve(a: Analysis, x: str, metrics: Sequence[str], title: str, prefer_color: Sequence[str],
           log_x: bool = False) -> Figure | None:
    if x not in a.varied:
        return None
    color = _color_axis(a, x, prefer_color)
    df, subtitle = _slice(a, x, color)
    if df.height == 0 or df[x].n_unique() < 2:
        return None
    long = _long(df, metrics, ["set", x] + ([color] if color else []))
    if long.height == 0:
        return None
    group = color or ("set" if a.multi_set else None)
    groups = _levels(long[group].to_list()) if group else [None]
    xs = sorted(df[x].drop_nulls().unique().to_list())
    x_axis = Continuous(log=2 if log_x else None, breaks=xs, labels=[_disp(v) for v in xs])
    facets = list(dict.fromkeys(long["metric"].to_list()))
    sets = list(dict.fromkeys(long["set"].to_list()))
    grid_by_set = a.multi_set and color is not None
    columns = sets if grid_by_set else [None]
    rows_of = {k: list(g.iter_rows(named=True)) for k, g in long.group_by(["metric", "set"], maintain_order=True)}
    grid = []
    for i, metric in enumerate(facets):
        row = []
        for set_name in columns:
            recs = [r for (m, s), rs in rows_of.items() if m == metric and set_name in (None, s) for r in rs]
            panel = Panel(x=x_axis, strip=(set_name if i == 0 else None) if grid_by_set else metric)
            for k, level in enumerate(groups):
                mine = [r for r in recs if group is None or r[group] == level]
                panel.add(*_series(mine, x, _color(k) if group else PALETTE[0]))
            row.append(panel)
        grid.append(row)
    if not grid_by_set:
        grid = [[p for row in grid for p in row]]
    keys = [Key(_disp(v), _color(k)) for k, v in enumerate(groups)]
    legend = [Legend(AXES.get(group, group) if color else "set", keys)] if group else []
    return Figure(title, grid, subtitle=subtitle, x_title=AXES.get(x, x), legends=legend,
                  row_strips=facets if grid_by_set else None, share_y="row" if grid_by_set else "none")


def fig_thread_scaling(a: Analysis) -> Figure | None:
    """Decode speed and J/token against CPU threads."""
    return _curve(a, "n_threads", ["decode_tok_s", "j_per_output_token"], "Thread scaling",
                  ["n_gpu_layers", "n_batch"])


def fig_offload(a: Analysis) -> Figure | None:
    """Decode speed, J/token and average power against GPU layers offloaded."""
    return _curve(a, "n_gpu_layers", ["decode_tok_s", "j_per_output_token", "avg_power_w"], "GPU offload curve",
                  ["n_threads", "n_batch"])


def fig_batch(a: Analysis) -> Figure | None:
    """Prefill speed, TTFT and J/token (all tokens) against n_batch."""
    return _curve(a, "n_batch", ["prefill_tok_s", "ttft_ms", "j_per_processed_token"], "Batch size",
                  ["n_threads", "n_gpu_layers"], log_x=True)


def _shade(t: float, low: str = "#f7fbff", high: str = "#ef6548") -> str:
    """The colour a fraction ``t`` (0..1) of the way from ``low`` to ``high``."""
    a, b = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (low, high))
    return "#" + "".join(f"{round(x + (y - x) * min(1.0, max(0.0, t))):02x}" for x, y in zip(a, b, strict=True))


def _wrap_grid(panels: list[Panel]) -> list[list[Panel | None]]:
    """Panels in rows of ceil(sqrt(n)) (facet_wrap's shape)."""
    ncol = math.ceil(math.sqrt(len(panels)))
    return [list(panels[i:i + ncol]) + [None] * (ncol - len(panels[i:i + ncol])) for i in range(0, len(panels), ncol)]


def fig_edp_heatmap(a: Analysis) -> Figure | None:
    """Median EDP over the two most-varied axes (others fixed at the lowest-EDP configuration)."""
    knobs = ("n_threads", "n_gpu_layers", "n_batch", "n_ubatch", "n_threads_batch")
    axes = sorted((k for k in a.varied if k in knobs), key=lambda k: -a.cfg[k].n_unique())[:2]
    if len(axes) < 2 or a.cfg["edp_js"].drop_nulls().len() == 0:
        return None
    x, y = sorted(axes, key=lambda k: ("n_threads", "n_batch", "n_gpu_layers").index(k)
                  if k in ("n_threads", "n_batch", "n_gpu_layers") else 9)
    df, subtitle = _slice(a, x, y, objective_metric="edp_js")
    df = df.filter(pl.col("edp_js").is_not_null() & (pl.col("edp_js") > 0))
    if df.height < 2 or df[x].n_unique() < 2 or df[y].n_unique() < 2:
        return None
    xa = Band([_disp(v) for v in _levels(df[x].to_list())])
    ya = Band([_disp(v) for v in _levels(df[y].to_list())][::-1])  # the smallest at the bottom
    logs = df["edp_js"].log10()
    lo, span = float(logs.min()), float(logs.max() - logs.min()) or 1.0
    panels = []
    for set_name, g in df.group_by("set", maintain_order=True):
        p = Panel(x=xa, y=ya, strip=set_name[0] if a.multi_set else None)
        best = g["edp_js"].min()
        for r in g.iter_rows(named=True):
            i, j = xa.index(_disp(r[x])), ya.index(_disp(r[y]))
            p.add(Rect(i - 0.5, i + 0.5, j - 0.5, j + 0.5, _shade((math.log10(r["edp_js"]) - lo) / span),
                       stroke="#ffffff", stroke_width=1.2),
                  Text(i, j, fmt_num(r["edp_js"]), size=8.5, color=INK))
            if r["edp_js"] == best:
                p.add(Rect(i - 0.46, i + 0.46, j - 0.46, j + 0.46, "none", stroke=INK, stroke_width=2.2))
        panels.append(p)
    return Figure("EDP per request (J*s): lower is better, best framed", _wrap_grid(panels), subtitle=subtitle,
                  x_title=AXES.get(x, x), y_title=AXES.get(y, y))


def _front_labels(front: pl.DataFrame, varied: Sequence[str], x_log: bool, x_range: tuple[float, float]
                  ) -> list[Text]:
    """Up to 8 points of the front labelled with their configuration, alternately above and below so
    neighbours do not collide; right of the point, or left of it near the right edge."""
    out = []
    lo, hi = (math.log10(v) for v in x_range) if x_log else x_range
    for k, r in enumerate(front.head(8).iter_rows(named=True)):
        if not varied:
            break
        pos = math.log10(r["e2e_s"]) if x_log else r["e2e_s"]
        right = hi > lo and (pos - lo) / (hi - lo) > 0.6
        out.append(Text(r["e2e_s"], r["j_per_output_token"], describe_config({v: r[v] for v in varied}), size=7.5,
                        anchor="end" if right else "start", va="bottom" if k % 2 == 0 else "top",
                        dx=-7 if right else 7))
    return out


def fig_pareto(a: Analysis) -> Figure | None:
    """Latency vs energy per output token of every configuration of the main workload, front drawn."""
    if not a.workloads:
        return None
    wl = a.workloads[0]
    df = a.cfg.filter((pl.col("workload") == wl) & pl.col("e2e_s").is_not_null()
                      & pl.col("j_per_output_token").is_not_null())
    if df.height < 2:
        return None
    knob = next((c for c in ("n_gpu_layers", "n_threads", "n_batch") if c in a.varied), None)
    group = "set" if a.multi_set else knob
    levels = _levels(df[group].to_list()) if group else [None]
    rows = list(df.iter_rows(named=True))
    colors = [_color(levels.index(r[group])) if group else PALETTE[0] for r in rows]
    bars = [(r, c) for r, c in zip(rows, colors, strict=True) if len(rows) <= 60 or r["pareto"]]
    e2e = df["e2e_s"]
    x_log = bool(e2e.min() > 0 and e2e.max() / e2e.min() > 8)
    p = Panel(x=Continuous(log=10 if x_log else None))
    br, bc = [r for r, _ in bars], [c for _, c in bars]
    p.add(_error_bars(br, "e2e_s", "j_per_output_token_lo", "j_per_output_token_hi", bc, opacity=0.5),
          _error_bars(br, "j_per_output_token", "e2e_s_lo", "e2e_s_hi", bc, horizontal=True, opacity=0.5),
          Points([r["e2e_s"] for r in rows], [r["j_per_output_token"] for r in rows], colors, opacity=0.85))
    for _, front in df.filter(pl.col("pareto")).sort("e2e_s").group_by("set", maintain_order=True):
        p.add(Line(front["e2e_s"].to_list(), front["j_per_output_token"].to_list(), INK, width=1.4, step=True),
              Points(front["e2e_s"].to_list(), front["j_per_output_token"].to_list(), INK, shape="ring", size=5.5),
              *_front_labels(front, a.varied, x_log, (float(e2e.min()), float(e2e.max()))))
    legend = [Legend("set" if a.multi_set else AXES.get(knob, knob),
                     [Key(_disp(v), _color(k), kind="point") for k, v in enumerate(levels)])] if group else []
    return Figure("Latency vs energy per output token: the Pareto front", [[p]],
                  subtitle=f"{wl}; circled: no other configuration is both faster and cheaper",
                  x_title="end-to-end latency (s)", y_title="energy per output token (J/token)", legends=legend)


def _race_frame(a: Analysis, wl: str, top: int) -> pl.DataFrame:
    """Per set the ``top`` lowest E(T) configurations and the fastest one, with their labels."""
    df = a.cfg.filter((pl.col("workload") == wl) & pl.col("race_energy_j").is_not_null())
    frames = []
    for _, d in df.group_by("set", maintain_order=True):
        d = d.sort("race_energy_j")
        pick = pl.concat([d.head(top), d.sort("e2e_s").head(1)])
        frames.append(pick.unique(subset=["point_id"], maintain_order=True))
    shown = a.varied or ["n_threads"]
    return pl.concat(frames).with_columns(
        config=pl.struct(shown).map_elements(describe_config, return_dtype=pl.String),
        idle=pl.col("race_idle_energy_j").fill_null(0.0))


def fig_race_to_sleep(a: Analysis, top: int = 12) -> Figure | None:
    """E(T) split into active energy and idle energy until T, for the best configurations."""
    if not a.workloads:
        return None
    wl = a.workloads[0]
    if a.cfg.filter((pl.col("workload") == wl) & pl.col("race_energy_j").is_not_null()).height < 2:
        return None
    df = _race_frame(a, wl, top)
    band = Band(df.sort("race_energy_j")["config"].unique(maintain_order=True).to_list())  # the lowest on top
    active_c, idle_c = "#d62728", "#9ecae1"
    panels = []
    for set_name, g in df.group_by("set", maintain_order=True):
        p = Panel(x=Continuous(zero=True), y=band, strip=set_name[0] if a.multi_set else None)
        rows = [{**r, "pos": band.index(r["config"])} for r in g.iter_rows(named=True)]
        for r in rows:  # the run's own energy, then idle power for the rest of T
            active, lo, hi = r["race_energy_j"] - r["idle"], r["pos"] - 0.35, r["pos"] + 0.35
            p.add(Rect(0.0, active, lo, hi, active_c), Rect(active, r["race_energy_j"], lo, hi, idle_c))
        p.add(_error_bars(rows, "pos", "race_energy_j_lo", "race_energy_j_hi", INK, horizontal=True))
        panels.append(p)
    t = a.windows.get(wl)
    grid = _wrap_grid(panels)
    return Figure("Race-to-sleep: energy over one fixed window T", grid,
                  subtitle=f"{wl}; E(T) = E_active + P_idle x (T - t_active)" + (f", T = {fmt_num(t)} s" if t else ""),
                  x_title="energy over T (J)", legends=[Legend("", [Key("active run", active_c, kind="fill"),
                                                                    Key("idle until T", idle_c, kind="fill")])],
                  height=max(300.0, 30.0 * len(band.levels) * len(grid) + 170))


def timeline_frame(a: Analysis) -> pl.DataFrame:
    """Power per domain over time (s since run start) for the selected runs, with phase bounds."""
    frames = []
    by_label = {rs.label: rs for rs in a.sets}
    for set_name, run_id, why in a.timeline_runs:
        rs = by_label[set_name]
        s = load_samples(rs, [run_id])
        if s.height == 0:
            continue
        run = a.runs.filter((pl.col("set") == set_name) & (pl.col("run_id") == run_id)).row(0, named=True)
        t0 = run["t_start_ns"]
        cfg_txt = describe_config({k: run[k] for k in a.varied}) if a.varied else run_id
        label = (f"[{set_name}] " if a.multi_set else "") + f"{cfg_txt} ({why.split(':')[0]})"
        p = samples_power(s.lazy(), changes_only=True).collect().with_columns(
            t_s=(pl.col("t_ns") - t0) / 1e9, run=pl.lit(label),
            prefill_end_s=pl.lit((run["t_prefill_end_ns"] - t0) / 1e9 if run["t_prefill_end_ns"] else None),
            end_s=pl.lit((run["t_end_ns"] - t0) / 1e9 if run["t_end_ns"] else None))
        # 6 significant digits: a constant power must plot flat, not as float noise around it
        p = p.with_columns(power_w=pl.col("power_w").round_sig_figs(6))
        frames.append(p.select("run", "domain", "meter", "t_s", "power_w", "prefill_end_s", "end_s"))
    return pl.concat(frames) if frames else pl.DataFrame()


PHASES = {"prefill": "#ff7f0e", "decode": "#1f77b4"}


def fig_power_timeline(a: Analysis) -> Figure | None:
    """Power per domain during the selected runs, prefill and decode shaded."""
    df = timeline_frame(a)
    if df.height == 0:
        return None
    runs = df["run"].unique(maintain_order=True).to_list()
    domains = df["domain"].unique(maintain_order=True).to_list()
    grid = []
    for i, dom in enumerate(domains):
        row = []
        for run in runs:
            d = df.filter((pl.col("run") == run) & (pl.col("domain") == dom)).sort("t_s")
            p = Panel(strip=run if i == 0 else None)
            ends = df.filter(pl.col("run") == run).select("prefill_end_s", "end_s").row(0)
            if ends[0] is not None:
                p.add(Rect(0.0, ends[0], None, None, PHASES["prefill"], opacity=0.18))
                if ends[1] is not None:
                    p.add(Rect(ends[0], ends[1], None, None, PHASES["decode"], opacity=0.18))
            if d.height:
                t, w = d["t_s"].to_list(), d["power_w"].to_list()
                p.add(Line(t, w, _color(i), width=1.3), Points(t, w, _color(i), size=1.8))
            row.append(p)
        grid.append(row)
    return Figure("Power timeline: prefill and decode shaded", grid,
                  subtitle="counters differenced to watts; one panel row per domain",
                  x_title="time since run start (s)", y_title="power (W)", row_strips=domains, share_y="row",
                  legends=[Legend("phase", [Key(k, c, kind="fill") for k, c in PHASES.items()]),
                           Legend("domain", [Key(d, _color(i)) for i, d in enumerate(domains)])],
                  width=max(800.0, 420.0 * len(runs)), height=max(320.0, 155.0 * len(domains) + 140))


def fig_machines(a: Analysis, top: int = 20) -> Figure | None:
    """Energy per output token of the same configurations on each machine (95 % CIs), lowest a diamond."""
    m = a.machines
    if m is None or not m.rows:
        return None
    rows = m.rows[:top]
    one_workload = len({r.workload for r in rows}) == 1
    band = Band([r.config if one_workload else f"{r.config}\n{r.workload}" for r in rows])
    sets = list(m.machines)
    p = Panel(y=band)
    recs = []
    for i, r in enumerate(rows):
        for rank, v in enumerate(r.values):
            j = sets.index(v.set)
            recs.append({"y": i - 0.3 + 0.6 * (j + 0.5) / len(sets), "value": v.median, "lo": v.lo, "hi": v.hi,
                         "color": _color(j), "shape": "diamond" if rank == 0 else "circle"})
    p.add(_error_bars(recs, "y", "lo", "hi", [r["color"] for r in recs], horizontal=True),
          Points([r["value"] for r in recs], [r["y"] for r in recs], [r["color"] for r in recs],
                 shape=[r["shape"] for r in recs], size=3.4))
    vals = [r["value"] for r in recs if _ok(r["value"])]
    if vals and min(vals) > 0 and max(vals) / min(vals) > 8:
        p.x = Continuous(log=10)
    caveats = list(dict.fromkeys(c for r in rows for c in r.caveats))
    subtitle = (rows[0].workload + "; " if one_workload else "") + (
        "caveat: " + "; ".join(caveats) if caveats else "every machine's energy from the same kind of meter")
    metric = METRICS[m.metric]
    return Figure("The same configurations on each machine: energy per output token", [[p]], subtitle=subtitle,
                  x_title=f"{metric.label} ({metric.unit})",
                  legends=[Legend("set (machine)", [Key(s, _color(j), kind="point") for j, s in enumerate(sets)]),
                           Legend("", [Key("lowest", "#555555", kind="point", shape="diamond"),
                                       Key("higher", "#555555", kind="point")])],
                  height=max(300.0, 45.0 * len(rows) * max(1.0, len(sets) / 2) + 160))


#: name -> (builder, title, caption)
FIGURES: dict[str, tuple[Callable[[Analysis], Figure | None], str, str]] = {
    "pareto": (fig_pareto, "Pareto front: latency vs energy",
               "Each point is a configuration's median (error bars: 95 % bootstrap CIs); the black steps join "
               "the configurations no other one beats on both latency and energy."),
    "thread_scaling": (fig_thread_scaling, "Thread scaling", "Decode speed and energy per output token against threads."),
    "offload": (fig_offload, "GPU offload curve", "Decode speed, J/token and power against layers offloaded to the GPU."),
    "batch": (fig_batch, "Batch size", "Prefill speed, TTFT and J/token (prompt + output) against n_batch."),
    "edp_heatmap": (fig_edp_heatmap, "EDP heatmap", "Median EDP per request over two knobs; the best cell is framed."),
    "race_to_sleep": (fig_race_to_sleep, "Race-to-sleep",
                      "Energy over one fixed window T: the run's own energy plus idle power for the rest of T."),
    "power_timeline": (fig_power_timeline, "Power timeline",
                       "Power of each domain during selected runs; shaded: prefill (orange) and decode (blue)."),
    "machines": (fig_machines, "Machines",
                 "Median energy per output token of each configuration measured on several kinds of machine "
                 "(error bars: 95 % bootstrap CIs); a diamond marks the lowest."),
}


def build_figures(a: Analysis, names: Sequence[str] | None = None) -> dict[str, Figure]:
    """name -> figure for every figure the data supports (in :data:`FIGURES` order)."""
    out = {}
    for name, (fn, _, _) in FIGURES.items():
        if names is not None and name not in names:
            continue
        fig = fn(a)
        if fig is not None:
            out[name] = fig
    return out


def save_figures(figures: dict[str, Figure], out_dir: Path, *, formats: Sequence[str] = ("svg",)) -> list[FigureFile]:
    """Write each figure in every format to ``out_dir`` (SVG as drawn; PNG rasterised from that SVG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, fig in figures.items():
        svg = render(fig)
        paths: dict[str, Path] = {}
        for fmt in formats:
            if fmt == "png":
                from energybench.report.plot.png import to_png

                data = to_png(svg)
            else:
                data = svg.encode("utf-8")
            paths[fmt] = out_dir / f"{name}.{fmt}"
            atomic_write_bytes(paths[fmt], data)
        _, title, caption = FIGURES.get(name, (None, name, ""))
        files.append(FigureFile(name=name, title=title, caption=caption, paths=paths, svg=svg))
    return files
