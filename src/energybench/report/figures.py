"""Figures (plotnine). Each ``fig_*`` function returns a ggplot, or None when the data does not vary
the figure's axis (no empty plots); :func:`save_figures` is the one place that writes files.

Figures are drawn from configuration aggregates (medians with their bootstrap CIs as error bars),
never from raw samples -- except the power timeline, which reads the samples of a handful of runs.
Curves show one *slice* of the grid: the axis on x, one other knob as colour, every other knob fixed
at the value of the best configuration (said in the subtitle).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from energybench.report.analysis import Analysis
from energybench.report.best import describe_config
from energybench.report.load import load_samples
from energybench.metrics import METRICS
from energybench.report.metrics import AXES, samples_power

if TYPE_CHECKING:  # plotnine is imported lazily: it is slow to import
    import pandas as pd
    from plotnine import ggplot

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]
WIDTH_IN, HEIGHT_IN = 8.0, 4.6


@dataclass(frozen=True)
class FigureFile:
    """A saved figure: its name, title, a caption and the files written."""

    name: str
    title: str
    caption: str
    paths: dict[str, Path]  # format -> path
    png_bytes: bytes | None = None


def _pd(df: pl.DataFrame) -> pd.DataFrame:
    """polars -> pandas without pyarrow (nulls become NaN/None)."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name, s in zip(df.columns, df.get_columns(), strict=True):
        if s.dtype.is_numeric():
            data[name] = s.cast(pl.Float64).fill_null(np.nan).to_numpy() if s.null_count() or s.dtype.is_float() \
                else s.to_numpy()
        else:
            data[name] = s.to_list()
    return pd.DataFrame(data)


def _theme() -> Any:
    import plotnine as p9

    return p9.theme_bw(base_size=10) + p9.theme(
        figure_size=(WIDTH_IN, HEIGHT_IN),
        plot_title=p9.element_text(weight="bold", size=12),
        plot_subtitle=p9.element_text(size=8.5, color="#555555"),
        strip_background=p9.element_rect(fill="#eef2f7", color="#c8d0da"),
        panel_grid_minor=p9.element_blank(),
        legend_position="right",
    )


def _disp(v: Any) -> str:
    """Axis/legend text of a knob value: 512.0 -> '512'."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _as_factor(df: pd.DataFrame, col: str) -> None:
    """Make ``col`` an ordered categorical (numeric order for numbers) so colours and axes sort right."""
    import pandas as pd

    vals = [v for v in df[col].tolist() if v is not None and not (isinstance(v, float) and np.isnan(v))]
    uniq = sorted(set(vals), key=lambda v: (isinstance(v, str), v))
    levels = list(dict.fromkeys(_disp(v) for v in uniq))
    df[col] = pd.Categorical([_disp(v) for v in df[col]], categories=levels, ordered=True)


def _wrap(text: str, width: int = 125) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else text


def _axis_labels(breaks: Sequence[float]) -> list[str]:
    """Tick labels with just enough decimals to tell neighbouring breaks apart (4.001 vs 4.002)."""
    vals = [float(b) for b in breaks if b is not None and np.isfinite(b)]
    if len(vals) < 2:
        return [f"{float(b):g}" for b in breaks]
    step = min(abs(b - a) for a, b in zip(vals, vals[1:], strict=False) if b != a) if len(set(vals)) > 1 else 1.0
    decimals = min(6, int(max(0, -np.floor(np.log10(step))))) if step > 0 else 0
    big = max(abs(v) for v in vals)
    if big >= 1e6 or (big < 1e-3 and big > 0):
        return [f"{float(b):.2e}" for b in breaks]
    return [f"{float(b):.{decimals}f}" for b in breaks]


def _label3(v: float) -> str:
    """3 significant digits without scientific notation for everyday magnitudes."""
    from energybench.report.fmt import fmt_num

    return fmt_num(v)


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


def _curve(a: Analysis, x: str, metrics: Sequence[str], title: str, prefer_color: Sequence[str],
           log_x: bool = False) -> ggplot | None:
    import plotnine as p9

    if x not in a.varied:
        return None
    color = _color_axis(a, x, prefer_color)
    df, subtitle = _slice(a, x, color)
    if df.height == 0 or df[x].n_unique() < 2:
        return None
    keep = ["set", x] + ([color] if color else [])
    long = _long(df, metrics, keep)
    if long.height == 0:
        return None
    pdf = _pd(long)
    import pandas as pd

    pdf["metric"] = pd.Categorical(pdf["metric"], categories=list(dict.fromkeys(pdf["metric"])), ordered=True)
    group = color or "set"
    if color:
        _as_factor(pdf, color)
    elif a.multi_set:
        _as_factor(pdf, "set")
    aes = p9.aes(x=x, y="value", color=group, group=group) if (color or a.multi_set) else p9.aes(x=x, y="value")
    # lines only through groups with two points or more (a lone point has nothing to join)
    line_keys = ["metric", "set"] + ([color] if color else [])
    sizes = pdf.groupby(line_keys, observed=True)["value"].transform("count")
    g = (p9.ggplot(pdf, aes)
         + p9.geom_line(data=pdf[sizes >= 2], size=0.8)
         + p9.geom_point(size=2.2)
         + p9.geom_linerange(p9.aes(ymin="lo", ymax="hi"), size=0.7, na_rm=True)
         + p9.labs(title=title, subtitle=_wrap(subtitle), x=AXES.get(x, x), y="",
                   color=AXES.get(color, color) if color else "set")
         + _theme())
    if color or a.multi_set:
        g = g + p9.scale_color_manual(values=PALETTE * 4)
    xs = sorted(df[x].drop_nulls().unique().to_list())
    g = g + p9.scale_y_continuous(labels=_axis_labels)
    if log_x:
        g = g + p9.scale_x_continuous(trans="log2", breaks=xs, labels=[_disp(v) for v in xs])
    else:
        g = g + p9.scale_x_continuous(breaks=xs, labels=[_disp(v) for v in xs])
    if a.multi_set and color:
        g = g + p9.facet_grid("metric ~ set", scales="free_y")
    else:
        g = g + p9.facet_wrap("~metric", scales="free_y", nrow=1)
    return g


def fig_thread_scaling(a: Analysis) -> ggplot | None:
    """Decode speed and J/token against CPU threads."""
    return _curve(a, "n_threads", ["decode_tok_s", "j_per_output_token"], "Thread scaling",
                  ["n_gpu_layers", "n_batch"])


def fig_offload(a: Analysis) -> ggplot | None:
    """Decode speed, J/token and average power against GPU layers offloaded."""
    return _curve(a, "n_gpu_layers", ["decode_tok_s", "j_per_output_token", "avg_power_w"], "GPU offload curve",
                  ["n_threads", "n_batch"])


def fig_batch(a: Analysis) -> ggplot | None:
    """Prefill speed, TTFT and J/token (all tokens) against n_batch."""
    return _curve(a, "n_batch", ["prefill_tok_s", "ttft_ms", "j_per_processed_token"], "Batch size",
                  ["n_threads", "n_gpu_layers"], log_x=True)


def fig_edp_heatmap(a: Analysis) -> ggplot | None:
    """Median EDP over the two most-varied axes (others fixed at the lowest-EDP configuration)."""
    import plotnine as p9

    axes = sorted((k for k in a.varied if k in ("n_threads", "n_gpu_layers", "n_batch", "n_ubatch", "n_threads_batch")),
                  key=lambda k: -a.cfg[k].n_unique())[:2]
    if len(axes) < 2 or a.cfg["edp_js"].drop_nulls().len() == 0:
        return None
    x, y = sorted(axes, key=lambda k: ("n_threads", "n_batch", "n_gpu_layers").index(k)
                  if k in ("n_threads", "n_batch", "n_gpu_layers") else 9)
    df, subtitle = _slice(a, x, y, objective_metric="edp_js")
    df = df.filter(pl.col("edp_js").is_not_null())
    if df.height < 2 or df[x].n_unique() < 2 or df[y].n_unique() < 2:
        return None
    pdf = _pd(df.select("set", x, y, "edp_js").with_columns(
        log_edp=pl.col("edp_js").log10(),
        label=pl.col("edp_js").map_elements(_label3, return_dtype=pl.String)))
    _as_factor(pdf, x)
    _as_factor(pdf, y)
    best = df.group_by("set").agg(pl.col("edp_js").min().alias("best"))
    pdf_best = _pd(df.join(best, on="set").filter(pl.col("edp_js") == pl.col("best")).select("set", x, y))
    _as_factor(pdf_best, x)
    _as_factor(pdf_best, y)
    g = (p9.ggplot(pdf, p9.aes(x=x, y=y, fill="log_edp"))
         + p9.geom_tile(color="white", size=0.6)
         + p9.geom_text(p9.aes(label="label"), size=7.5, color="#111111")
         + p9.geom_tile(data=pdf_best, mapping=p9.aes(x=x, y=y), fill="none", color="#111111", size=1.2,
                        inherit_aes=False)
         + p9.scale_fill_gradient(low="#f7fbff", high="#ef6548", guide=None)  # cells carry their values
         + p9.labs(title="EDP per request (J*s): lower is better, best framed",
                   subtitle=_wrap(subtitle), x=AXES.get(x, x), y=AXES.get(y, y))
         + _theme() + p9.theme(panel_grid_major=p9.element_blank()))
    if a.multi_set:
        g = g + p9.facet_wrap("~set")
    return g


def fig_pareto(a: Analysis) -> ggplot | None:
    """Latency vs energy per output token of every configuration of the main workload, front drawn."""
    import plotnine as p9

    if not a.workloads:
        return None
    wl = a.workloads[0]
    df = a.cfg.filter((pl.col("workload") == wl) & pl.col("e2e_s").is_not_null()
                      & pl.col("j_per_output_token").is_not_null())
    if df.height < 2:
        return None
    color = next((c for c in ("n_gpu_layers", "n_threads", "n_batch") if c in a.varied), None)
    cols = ["set", "e2e_s", "e2e_s_lo", "e2e_s_hi", "j_per_output_token", "j_per_output_token_lo", "j_per_output_token_hi",
            "pareto", *([color] if color else [])]
    # error bars for every point while they stay readable; beyond that for the front only
    bars = df if df.height <= 60 else df.filter(pl.col("pareto"))
    pdf = _pd(df.select(cols))
    pbars = _pd(bars.select(cols))
    group = "set" if a.multi_set else color
    if group:
        _as_factor(pdf, group)
    front = df.filter(pl.col("pareto")).sort(["set", "e2e_s"])
    labels = front.with_columns(label=pl.struct(a.varied).map_elements(
        lambda r: "   " + describe_config(r), return_dtype=pl.String)) if a.varied else front.with_columns(label=pl.lit(""))
    pfront = _pd(front.select("set", "e2e_s", "j_per_output_token"))
    # label the front (up to 8 points), alternating above and below so neighbours do not collide
    plab = _pd(labels.select("set", "e2e_s", "j_per_output_token", "label").head(8)
               .with_columns(va=pl.Series(["bottom", "top"] * 4).head(min(8, labels.height)))) \
        if labels.height else _pd(labels.select("set", "e2e_s", "j_per_output_token", "label"))
    aes = p9.aes(x="e2e_s", y="j_per_output_token", color=group) if group else p9.aes(x="e2e_s", y="j_per_output_token")
    if group:
        _as_factor(pbars, group)
    g = (p9.ggplot(pdf, aes)
         + p9.geom_linerange(pbars, p9.aes(ymin="j_per_output_token_lo", ymax="j_per_output_token_hi"), alpha=0.5, na_rm=True)
         + p9.geom_segment(pbars, p9.aes(x="e2e_s_lo", xend="e2e_s_hi", yend="j_per_output_token"), alpha=0.5,
                           na_rm=True)
         + p9.geom_point(size=2.0, alpha=0.85)
         + p9.geom_step(data=pfront, mapping=p9.aes(x="e2e_s", y="j_per_output_token", group="set"),
                        color="#111111", size=0.8, direction="vh", inherit_aes=False)
         + p9.geom_point(data=pfront, mapping=p9.aes(x="e2e_s", y="j_per_output_token"), color="#111111",
                         fill="none", shape="o", size=4.2, inherit_aes=False)
         + p9.labs(title="Latency vs energy per output token: the Pareto front",
                   subtitle=_wrap(f"{wl}; circled: no other configuration is both faster and cheaper"),
                   x="end-to-end latency (s)", y="energy per output token (J/token)",
                   color="set" if a.multi_set else (AXES.get(color, color) if color else None))
         + _theme())
    for va in ("bottom", "top"):
        sub = plab[plab["va"] == va] if len(plab) and "va" in plab else plab.head(0)
        if len(sub):
            g = g + p9.geom_text(data=sub, mapping=p9.aes(x="e2e_s", y="j_per_output_token", label="label"), size=6.5,
                                 ha="left", va=va, color="#333333", inherit_aes=False)
    xs = df["e2e_s"].drop_nulls()
    if xs.min() > 0 and xs.max() / xs.min() > 8:
        g = g + p9.scale_x_log10()
    if group:
        g = g + p9.scale_color_manual(values=PALETTE * 4)
    return g


def fig_race_to_sleep(a: Analysis, top: int = 12) -> ggplot | None:
    """E(T) split into active energy and idle energy until T, for the best configurations."""
    import plotnine as p9

    if not a.workloads:
        return None
    wl = a.workloads[0]
    df = a.cfg.filter((pl.col("workload") == wl) & pl.col("race_energy_j").is_not_null())
    if df.height < 2:
        return None
    frames = []
    for set_name in df["set"].unique(maintain_order=True).to_list():
        d = df.filter(pl.col("set") == set_name).sort("race_energy_j")
        fastest = d.sort("e2e_s").head(1)
        pick = pl.concat([d.head(top), fastest]).unique(subset=["point_id"], maintain_order=True)
        frames.append(pick)
    df = pl.concat(frames)
    shown = a.varied or ["n_threads"]
    df = df.with_columns(config=pl.struct(shown).map_elements(lambda r: describe_config(r), return_dtype=pl.String),
                         active=pl.col("race_energy_j") - pl.col("race_idle_energy_j").fill_null(0.0))
    order = df.sort("race_energy_j", descending=True)["config"].unique(maintain_order=True).to_list()
    long = pl.concat([
        df.select("set", "config", part=pl.lit("active run"), energy=pl.col("active")),
        df.select("set", "config", part=pl.lit("idle until T"), energy=pl.col("race_idle_energy_j").fill_null(0.0)),
    ])
    pdf = _pd(long)
    import pandas as pd

    pdf["config"] = pd.Categorical(pdf["config"], categories=order, ordered=True)
    pdf["part"] = pd.Categorical(pdf["part"], categories=["idle until T", "active run"], ordered=True)
    perr = _pd(df.select("set", "config", "race_energy_j", "race_energy_j_lo", "race_energy_j_hi"))
    perr["config"] = pd.Categorical(perr["config"], categories=order, ordered=True)
    t = a.windows.get(wl)
    g = (p9.ggplot(pdf, p9.aes(x="config", y="energy", fill="part"))
         + p9.geom_col(width=0.7)
         + p9.geom_errorbar(data=perr, mapping=p9.aes(x="config", ymin="race_energy_j_lo", ymax="race_energy_j_hi"),
                            width=0.25, inherit_aes=False, na_rm=True)
         + p9.coord_flip()
         + p9.scale_fill_manual(values={"active run": "#d62728", "idle until T": "#9ecae1"})
         + p9.labs(title="Race-to-sleep: energy over one fixed window T",
                   subtitle=_wrap(f"{wl}; E(T) = E_active + P_idle x (T - t_active)"
                                  + (f", T = {_label3(t)} s" if t else "")), x="", y="energy over T (J)", fill="")
         + _theme() + p9.theme(figure_size=(WIDTH_IN, max(3.0, 0.32 * len(order) + 1.6))))
    if a.multi_set:
        g = g + p9.facet_wrap("~set")
    return g


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


def fig_power_timeline(a: Analysis) -> ggplot | None:
    """Power per domain during the selected runs, prefill and decode shaded."""
    import pandas as pd
    import plotnine as p9

    df = timeline_frame(a)
    if df.height == 0:
        return None
    pdf = _pd(df.with_columns(panel=pl.col("domain")))
    phases = (df.group_by("run").agg(pl.col("prefill_end_s").first(), pl.col("end_s").first()))
    rects = []
    for r in phases.iter_rows(named=True):
        if r["prefill_end_s"] is not None:
            rects.append({"run": r["run"], "xmin": 0.0, "xmax": r["prefill_end_s"], "phase": "prefill"})
        if r["end_s"] is not None and r["prefill_end_s"] is not None:
            rects.append({"run": r["run"], "xmin": r["prefill_end_s"], "xmax": r["end_s"], "phase": "decode"})
    prect = pd.DataFrame(rects or [{"run": "", "xmin": 0.0, "xmax": 0.0, "phase": "decode"}])
    n_dom = df["domain"].n_unique()
    n_run = df["run"].n_unique()
    g = (p9.ggplot(pdf, p9.aes(x="t_s", y="power_w"))
         + p9.geom_rect(data=prect, mapping=p9.aes(xmin="xmin", xmax="xmax", fill="phase"), ymin=-np.inf, ymax=np.inf,
                        alpha=0.18, inherit_aes=False)
         + p9.geom_line(p9.aes(color="domain"), size=0.7)
         + p9.geom_point(p9.aes(color="domain"), size=0.9)
         + p9.scale_fill_manual(values={"prefill": "#ff7f0e", "decode": "#1f77b4"})
         + p9.scale_color_manual(values=PALETTE * 4)
         + p9.facet_grid("domain ~ run", scales="free_y")
         + p9.scale_y_continuous(labels=_axis_labels)
         + p9.labs(title="Power timeline: prefill and decode shaded",
                   subtitle="counters differenced to watts; one panel row per domain",
                   x="time since run start (s)", y="power (W)", fill="phase", color="domain")
         + _theme() + p9.theme(figure_size=(max(WIDTH_IN, 4.2 * n_run), max(3.2, 1.55 * n_dom + 1.4)),
                              strip_text_x=p9.element_text(size=7.5)))
    return g


def fig_machines(a: Analysis, top: int = 20) -> ggplot | None:
    """Energy per output token of the same configurations on each machine (95 % CIs), lowest ringed."""
    import pandas as pd
    import plotnine as p9

    m = a.machines
    if m is None or not m.rows:
        return None
    rows = m.rows[:top]
    one_workload = len({r.workload for r in rows}) == 1
    recs = [{"config": r.config if one_workload else f"{r.config}\n{r.workload}", "set": v.set, "value": v.median,
             "lo": np.nan if v.lo is None else v.lo, "hi": np.nan if v.hi is None else v.hi,
             "rank": "lowest" if i == 0 else "higher"} for r in rows for i, v in enumerate(r.values)]
    df = pd.DataFrame(recs)
    df["config"] = pd.Categorical(df["config"], categories=list(dict.fromkeys(df["config"]))[::-1], ordered=True)
    df["set"] = pd.Categorical(df["set"], categories=list(m.machines), ordered=True)
    dodge = p9.position_dodge(width=0.6)
    caveats = list(dict.fromkeys(c for r in rows for c in r.caveats))
    subtitle = (rows[0].workload + "; " if one_workload else "") + (
        "caveat: " + "; ".join(caveats) if caveats else "every machine's energy from the same kind of meter")
    g = (p9.ggplot(df, p9.aes(x="config", y="value", color="set", shape="rank"))
         + p9.geom_linerange(p9.aes(ymin="lo", ymax="hi"), position=dodge, size=0.7, na_rm=True)
         + p9.geom_point(position=dodge, size=2.6)
         + p9.scale_shape_manual(values={"lowest": "D", "higher": "o"})
         + p9.scale_color_manual(values=PALETTE * 4)
         + p9.coord_flip()
         + p9.labs(title="The same configurations on each machine: energy per output token",
                   subtitle=_wrap(subtitle, 110), x="", y=f"{METRICS[m.metric].label} ({METRICS[m.metric].unit})",
                   color="set (machine)", shape="")
         + _theme() + p9.theme(figure_size=(WIDTH_IN, max(3.0, 0.45 * len(rows) * max(1, len(m.machines) / 2) + 1.6))))
    vals = df["value"].dropna()
    if len(vals) and vals.min() > 0 and vals.max() / vals.min() > 8:
        g = g + p9.scale_y_log10()
    return g


#: name -> (builder, title, caption)
FIGURES: dict[str, tuple[Any, str, str]] = {
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


def build_figures(a: Analysis, names: Sequence[str] | None = None) -> dict[str, Any]:
    """name -> ggplot for every figure the data supports (in :data:`FIGURES` order)."""
    out = {}
    for name, (fn, _, _) in FIGURES.items():
        if names is not None and name not in names:
            continue
        g = fn(a)
        if g is not None:
            out[name] = g
    return out


def save_figures(plots: dict[str, Any], out_dir: Path, *, formats: Sequence[str] = ("png", "svg"),
                 dpi: int = 130) -> list[FigureFile]:
    """Draw each plot once and write it in every format to ``out_dir``; returns what was written."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, faster SVGs
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, g in plots.items():
        with warnings.catch_warnings():
            # e.g. "geom_path: each group consists of only one observation" for a sparse series
            warnings.simplefilter("ignore", category=UserWarning)
            fig = g.draw()
        paths: dict[str, Path] = {}
        png = None
        try:
            for fmt in formats:
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt, dpi=dpi)
                data = buf.getvalue()
                path = out_dir / f"{name}.{fmt}"
                path.write_bytes(data)
                paths[fmt] = path
                if fmt == "png":
                    png = data
        finally:
            plt.close(fig)
        _, title, caption = FIGURES.get(name, (None, name, ""))
        files.append(FigureFile(name=name, title=title, caption=caption, paths=paths, png_bytes=png))
    return files
