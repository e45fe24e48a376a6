"""Best configurations per objective, the runner-up test, and the latency-energy Pareto front."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from energybench.metrics import METRICS
from energybench.report.stats import DEFAULT_N_BOOT, bootstrap_diff

#: objective name -> (metric column, label). All are minimised.
OBJECTIVES: dict[str, tuple[str, str]] = {
    "energy": ("j_per_output_token", "lowest energy per output token"),
    "edp": ("edp_js", "lowest EDP (energy x latency)"),
    "ed2p": ("ed2p_js2", "lowest ED2P (energy x latency^2)"),
    "latency": ("e2e_s", "lowest end-to-end latency"),
    "race_to_sleep": ("race_energy_j", "lowest energy over the fixed window T (race-to-sleep)"),
}


@dataclass
class Candidate:
    """One configuration's value for an objective."""

    point_id: str
    config: dict[str, Any]
    value: float
    ci_lo: float | None
    ci_hi: float | None
    n_reps: int


@dataclass
class Recommendation:
    """The best configuration of one workload for one objective, and how sure we are."""

    set: str
    workload: str
    objective: str
    metric: str
    label: str
    unit: str
    best: Candidate
    runner_up: Candidate | None = None
    cis_overlap: bool | None = None
    diff: float | None = None  # runner-up - best (metric units)
    diff_ci: tuple[float, float] | None = None
    verdict: str = ""
    significance: str = "unknown"  # clear | beyond-noise | within-noise | unknown (no runner-up / too few reps)
    warnings: list[str] = field(default_factory=list)

    @property
    def short_verdict(self) -> str:
        """A few words for narrow outputs (the console)."""
        if self.runner_up is None:
            return "only configuration"
        rel = (self.runner_up.value - self.best.value) / abs(self.best.value) * 100 if self.best.value else float("nan")
        return {"clear": f"{rel:.1f} % better than runner-up (CIs apart)",
                "beyond-noise": f"{rel:.1f} % better than runner-up (beyond noise)",
                "within-noise": f"runner-up within noise ({rel:.1f} %)",
                }.get(self.significance, f"runner-up {rel:.1f} % worse; too few reps to tell")

    def line(self, fmt: Any) -> str:
        """One human line: 'lowest EDP: threads=8 ngl=11 batch=512 -- 12.3 J*s [11.9, 12.8]; ...'."""
        b = self.best
        ci = f" [{fmt(b.ci_lo)}, {fmt(b.ci_hi)}]" if b.ci_lo is not None else ""
        return f"{self.label}: {describe_config(b.config)} -- {fmt(b.value)} {self.unit}{ci}; {self.verdict}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["best"]["config_text"] = describe_config(self.best.config)
        if self.runner_up is not None:
            d["runner_up"]["config_text"] = describe_config(self.runner_up.config)
        return d


def describe_config(config: Mapping[str, Any]) -> str:
    """'threads=8 ngl=11 batch=512' from knob values (the varied ones are passed in)."""
    short = {"n_threads": "threads", "n_gpu_layers": "ngl", "n_batch": "batch", "n_ubatch": "ubatch",
             "n_threads_batch": "threads_batch", "flash_attn": "fa", "backend_mode": "mode", "n_ctx": "ctx",
             "repack": "repack", "backend": "backend"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in config.items()) or "(single configuration)"


def _none(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and not np.isfinite(x)) else float(x)


def _significance(best: Candidate, ru: Candidate | None, overlap: bool | None,
                  diff_ci: tuple[float, float] | None) -> str:
    if ru is None or best.ci_lo is None or ru.ci_lo is None:
        return "unknown"
    if overlap is False:
        return "clear"
    if diff_ci is not None and diff_ci[0] > 0:
        return "beyond-noise"
    return "within-noise"


def _verdict(best: Candidate, ru: Candidate | None, overlap: bool | None, diff_ci: tuple[float, float] | None,
             unit: str, fmt: Any) -> str:
    if ru is None:
        return "no runner-up to compare with"
    if best.ci_lo is None or ru.ci_lo is None:
        return f"runner-up {describe_config(ru.config)} at {fmt(ru.value)} {unit}; too few repetitions to tell them apart"
    rel = (ru.value - best.value) / abs(best.value) * 100 if best.value else float("nan")
    head = f"runner-up {describe_config(ru.config)} is {rel:.1f} % worse"
    if overlap is False:
        return f"{head}: CIs do not overlap -- the difference is larger than the noise"
    if diff_ci is not None and diff_ci[0] > 0:
        return f"{head}: CIs overlap but the 95 % CI of the difference [{fmt(diff_ci[0])}, {fmt(diff_ci[1])}] excludes 0"
    return f"{head}: within the noise (CIs overlap, the difference's CI includes 0) -- either is fine"


def recommend(cfg: pl.DataFrame, values: Callable[[str, str, str], np.ndarray | None], *, group_cols: Sequence[str],
              knob_cols: Sequence[str], fmt: Any, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
              objectives: Mapping[str, tuple[str, str]] = OBJECTIVES) -> list[Recommendation]:
    """Best and runner-up per (group, objective).

    ``cfg``: configuration statistics (``set``, ``workload``, ``point_id``, knobs, ``m``/``m_lo``/
    ``m_hi`` per metric, ``n_reps``, ``warnings``). ``values(set, point_id, metric)``: that
    configuration's per-run values (for the bootstrap of the difference). ``knob_cols``: the knobs shown in config descriptions.
    """
    out: list[Recommendation] = []
    if cfg.height == 0:
        return out
    for key, grp in cfg.group_by(list(group_cols), maintain_order=True):
        set_name, workload = str(key[0]), str(key[1])
        for obj, (metric, label) in objectives.items():
            if metric not in grp.columns:
                continue
            cand = grp.filter(pl.col(metric).is_not_null() & pl.col(metric).is_not_nan()).sort([metric, "point_id"])
            if cand.height == 0:
                continue
            rows = cand.head(2).to_dicts()

            def mk(r: dict[str, Any], metric: str = metric) -> Candidate:
                return Candidate(point_id=r["point_id"], config={k: r[k] for k in knob_cols},
                                 value=float(r[metric]), ci_lo=_none(r.get(f"{metric}_lo")),
                                 ci_hi=_none(r.get(f"{metric}_hi")), n_reps=int(r["n_reps"] or 0))

            best = mk(rows[0])
            ru = mk(rows[1]) if len(rows) > 1 else None
            overlap = diff = diff_ci = None
            if ru is not None:
                diff = ru.value - best.value
                if best.ci_hi is not None and ru.ci_lo is not None:
                    overlap = bool(best.ci_hi >= ru.ci_lo)
                a = values(set_name, best.point_id, metric)
                b = values(set_name, ru.point_id, metric)
                if a is not None and b is not None and a.size >= 2 and b.size >= 2:
                    d = bootstrap_diff(a, b, n_boot=n_boot, seed=seed)
                    diff_ci = (d.lo, d.hi)
            unit = METRICS[metric].unit if metric in METRICS else ""
            out.append(Recommendation(
                set=set_name, workload=workload, objective=obj, metric=metric, label=label, unit=unit,
                best=best, runner_up=ru, cis_overlap=overlap, diff=diff, diff_ci=diff_ci,
                verdict=_verdict(best, ru, overlap, diff_ci, unit, fmt),
                significance=_significance(best, ru, overlap, diff_ci), warnings=list(rows[0].get("warnings") or []),
            ))
    return out


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True for points no other point beats on both (lower x and lower y; ties kept once).

    NaNs are never on the front. O(n log n): sort by x then y, keep strictly decreasing y.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mask = np.zeros(x.size, dtype=bool)
    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if ok.size == 0:
        return mask
    order = ok[np.lexsort((y[ok], x[ok]))]
    best_y = np.inf
    for i in order:
        if y[i] < best_y:
            mask[i] = True
            best_y = y[i]
    return mask


def with_pareto(cfg: pl.DataFrame, *, group_cols: Sequence[str], x: str = "e2e_s", y: str = "j_per_output_token") -> pl.DataFrame:
    """Add ``pareto`` (bool) per group: the latency-energy front of the configuration medians."""
    if cfg.height == 0:
        return cfg.with_columns(pareto=pl.lit(False))
    frames = []
    for _, grp in cfg.group_by(list(group_cols), maintain_order=True):
        m = pareto_mask(grp[x].cast(pl.Float64).fill_null(np.nan).to_numpy(),
                        grp[y].cast(pl.Float64).fill_null(np.nan).to_numpy())
        frames.append(grp.with_columns(pareto=pl.Series(m)))
    return pl.concat(frames)
