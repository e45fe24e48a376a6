"""The original study's report tables, with our statistics.

The study energybench grew from (github.com/csce585-mlsystems/Energy-Aware-LLM-Inference-on-
Consumer-Hardware: get_stats.py, src/analysis/generate_report.py, its final report) showed a mean
latency, energy and EDP per backend x suite, a ranking of configurations by mean EDP over all
prompts, and a CPU-vs-GPU headline (speed-up, energy saved). Here each of those means comes with
a 95 % percentile-bootstrap CI over the runs (:mod:`.stats`), and every comparison with a verdict:
whether it is larger than the noise.

Per run, as the study computed them: latency is the request's (``e2e_s``), energy the request's
(``request_energy_j``), EDP their product (``edp_js``); warm-ups and failed runs are excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from energybench.report.analysis import Analysis
from energybench.report.stats import DEFAULT_N_BOOT, bootstrap_diff, bootstrap_ratio, grouped_mean_bootstrap

#: The per-run values the study's tables average: (column, name in the tables' data).
STUDY_VALUES = (("e2e_s", "latency_s"), ("request_energy_j", "energy_j"), ("edp_js", "edp_js"))
#: The comparisons of the CPU-vs-GPU headline: (name, value, how the ratio is read).
HEADLINE_ITEMS = ("speedup", "energy_saved", "edp_ratio")


def _suite_expr() -> pl.Expr:
    return pl.col("prompt_suite").fill_null(pl.when(pl.col("prompt_id").is_null()).then(pl.lit("synthetic"))
                                            .otherwise(pl.lit("text")))


def study_frame(a: Analysis) -> pl.DataFrame:
    """The valid runs with what the study's tables group by: ``suite``, ``task`` (model and
    generation length: configurations are only ranked within one) and ``gpu`` (layers offloaded)."""
    v = a.valid
    if v.height == 0:
        return v.with_columns(suite=pl.lit(None, dtype=pl.String), task=pl.lit(None, dtype=pl.String),
                              gpu=pl.lit(None, dtype=pl.Boolean))
    task = pl.concat_str([pl.col("model_name").fill_null(pl.col("model")).fill_null("model?"), pl.lit(" | gen "),
                          pl.col("n_gen").cast(pl.String).fill_null("?")])
    return v.with_columns(suite=_suite_expr(), task=task, gpu=pl.col("n_gpu_layers").fill_null(0) != 0)


def _mean_cis(df: pl.DataFrame, keys: list[str], *, n_boot: int, seed: int) -> pl.DataFrame:
    """Per ``keys`` group: n runs and, for each study value, the mean with its bootstrap CI."""
    coded = df.with_columns(_g=pl.struct(keys).rank("dense").cast(pl.Int64) - 1)
    head = coded.group_by("_g").agg([pl.col(k).first() for k in keys], n_runs=pl.len(),
                                     n_prompts=pl.col("prompt_id").n_unique()).sort("_g")
    values = np.column_stack([coded[col].cast(pl.Float64).fill_null(np.nan).to_numpy() for col, _ in STUDY_VALUES])
    res = grouped_mean_bootstrap(values, coded["_g"].to_numpy(), head.height, n_boot=n_boot, seed=seed)
    cols: dict[str, np.ndarray] = {}
    for (_, name), r in zip(STUDY_VALUES, res, strict=True):
        cols[name], cols[f"{name}_lo"], cols[f"{name}_hi"] = r.point, r.lo, r.hi
    stats = pl.DataFrame({k: pl.Series(k, v, dtype=pl.Float64, nan_to_null=True) for k, v in cols.items()})
    return pl.concat([head.drop("_g"), stats], how="horizontal")


def suite_backend_summary(a: Analysis, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> pl.DataFrame:
    """The study's summary: per set, suite and backend mode, the mean latency, energy and EDP of
    every run (all configurations of that mode together, as the study averaged them)."""
    df = study_frame(a)
    if df.height == 0:
        return pl.DataFrame()
    out = _mean_cis(df, ["set", "suite", "backend_mode"], n_boot=n_boot, seed=seed)
    n_cfg = df.group_by(["set", "suite", "backend_mode"]).agg(n_configurations=pl.col("point_id").n_unique()
                                                              if "config_id" not in df.columns
                                                              else pl.col("config_id").n_unique())
    return out.join(n_cfg, on=["set", "suite", "backend_mode"]).sort(["set", "suite", "backend_mode"])


def edp_ranking(a: Analysis, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, top: int = 20) -> pl.DataFrame:
    """Configurations ranked by mean EDP over every prompt (per set and task), the study's ranking;
    ``verdict`` compares each with the first: ``best``, ``within noise`` (the 95 % CI of the
    difference of means includes 0) or ``worse`` (it does not)."""
    df = study_frame(a)
    if df.height == 0:
        return pl.DataFrame()
    ranked = _mean_cis(df, ["set", "task", "config_id"], n_boot=n_boot, seed=seed).sort(
        ["set", "task", "edp_js", "config_id"], nulls_last=True)
    ranked = ranked.with_columns(rank=pl.col("edp_js").rank("ordinal").over(["set", "task"]).cast(pl.Int64))
    ranked = ranked.filter(pl.col("rank") <= top)
    shown = df.join(ranked.select("set", "task", "config_id"), on=["set", "task", "config_id"], how="semi")
    edp = {key: g["edp_js"].cast(pl.Float64).drop_nulls().to_numpy()
           for key, g in shown.partition_by(["set", "task", "config_id"], as_dict=True).items()}
    best = {(r["set"], r["task"]): r["config_id"] for r in ranked.filter(pl.col("rank") == 1).iter_rows(named=True)}
    verdicts = [_rank_verdict(edp, best[(r["set"], r["task"])], r, n_boot=n_boot, seed=seed)
                for r in ranked.iter_rows(named=True)]
    return ranked.with_columns(verdict=pl.Series(verdicts, dtype=pl.String))


def _rank_verdict(edp: dict[tuple[str, str, str], np.ndarray], best: str, r: dict, *, n_boot: int, seed: int) -> str:
    """The verdict of ranked row ``r`` against ``best`` (the first of its set and task) from each
    configuration's EDP values."""
    if r["rank"] == 1:
        return "best"
    d = bootstrap_diff(edp[(r["set"], r["task"], best)], edp[(r["set"], r["task"], r["config_id"])],
                       stat="mean", n_boot=n_boot, seed=seed)
    if not np.isfinite(d.lo):
        return "too few runs to tell"
    return "worse than the best" if d.lo > 0 else "within noise of the best"


@dataclass(frozen=True)
class Headline:
    """CPU against GPU on one suite: each side is its configuration with the lowest mean EDP there.

    ``speedup``: CPU latency / GPU latency; ``energy_saved``: 1 - GPU energy / CPU energy (what the
    GPU saves; negative when it costs more); ``edp_ratio``: CPU EDP / GPU EDP. Each is
    ``(value, lo, hi)`` with a 95 % bootstrap CI; ``verdicts`` say which side wins or that the
    difference is within the noise (the CI includes no difference)."""

    set: str
    task: str
    suite: str
    cpu: str
    gpu: str
    n_cpu: int
    n_gpu: int
    speedup: tuple[float, float, float]
    energy_saved: tuple[float, float, float]
    edp_ratio: tuple[float, float, float]
    verdicts: dict[str, str]


def _side(df: pl.DataFrame, gpu: bool) -> tuple[str, pl.DataFrame] | None:
    side = df.filter(pl.col("gpu") == gpu)
    if side.height == 0:
        return None
    best = side.group_by("config_id").agg(pl.col("edp_js").mean()).sort(["edp_js", "config_id"], nulls_last=True)
    cid = best["config_id"][0]
    return cid, side.filter(pl.col("config_id") == cid)


def _ratio_verdict(lo: float, hi: float, above: str, below: str) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "too few runs to tell"
    return above if lo > 1 else below if hi < 1 else "within noise"


def headlines(a: Analysis, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> list[Headline]:
    """The CPU-vs-GPU headline per set, task and suite that has runs of both."""
    df = study_frame(a)
    out: list[Headline] = []
    if df.height == 0:
        return out
    for (set_name, task, suite), grp in df.group_by(["set", "task", "suite"], maintain_order=True):
        cpu, gpu = _side(grp, False), _side(grp, True)
        if cpu is None or gpu is None:
            continue
        (cid, c), (gid, g) = cpu, gpu

        def vals(frame: pl.DataFrame, col: str) -> np.ndarray:
            return frame[col].cast(pl.Float64).drop_nulls().to_numpy()

        sp = bootstrap_ratio(vals(c, "e2e_s"), vals(g, "e2e_s"), n_boot=n_boot, seed=seed)
        en = bootstrap_ratio(vals(g, "request_energy_j"), vals(c, "request_energy_j"), n_boot=n_boot, seed=seed + 1)
        edp = bootstrap_ratio(vals(c, "edp_js"), vals(g, "edp_js"), n_boot=n_boot, seed=seed + 2)
        saved = (1 - en.diff, 1 - en.hi, 1 - en.lo)
        verdicts = {"speedup": _ratio_verdict(sp.lo, sp.hi, "GPU faster", "CPU faster"),
                    "energy_saved": _ratio_verdict(en.lo, en.hi, "GPU uses more energy", "GPU saves energy"),
                    "edp_ratio": _ratio_verdict(edp.lo, edp.hi, "GPU better EDP", "CPU better EDP")}
        out.append(Headline(set=str(set_name), task=str(task), suite=str(suite), cpu=cid, gpu=gid, n_cpu=c.height,
                            n_gpu=g.height, speedup=(sp.diff, sp.lo, sp.hi), energy_saved=saved,
                            edp_ratio=(edp.diff, edp.lo, edp.hi), verdicts=verdicts))
    return out


@dataclass(frozen=True)
class StudyTables:
    """The study's three tables of one analysis."""

    summary: pl.DataFrame
    ranking: pl.DataFrame
    headlines: list[Headline]
    has_gpu: bool  # any run offloads (the headline needs both sides)


def study_tables(a: Analysis, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> StudyTables:
    df = study_frame(a)
    return StudyTables(summary=suite_backend_summary(a, n_boot=n_boot, seed=seed),
                       ranking=edp_ranking(a, n_boot=n_boot, seed=seed), headlines=headlines(a, n_boot=n_boot, seed=seed),
                       has_gpu=bool(df.height and df["gpu"].any()))


def headline_dicts(h: Sequence[Headline]) -> list[dict]:
    """The headlines as JSON-ready dicts."""
    from dataclasses import asdict

    return [asdict(x) for x in h]
