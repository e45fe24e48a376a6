"""Statistics per configuration: median, seeded percentile-bootstrap 95 % CI, CV, and warnings.

Methodology (ours; percentile bootstrap: Efron & Tibshirani, "An Introduction to the Bootstrap",
1993): warm-ups and failed runs are excluded, >= 10 repetitions are needed for a CI worth its
name, the median is reported with a 95 % bootstrap CI. The warnings
follow pyperf's spirit: they sit beside the numbers they qualify.

The bootstrap is vectorised over configurations (index draws are shared by the groups of one size).
For the mean, a resample is its draw counts, and the replicates of a block are one matrix product.
For the median it never sorts a resample: with the group's values sorted, a resample drawn with
*sorted* indices is itself sorted, so its median is read from two positions; and since only
k(k+1)/2 such position pairs exist, the replicates are counted per pair, not materialised.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from energybench.defaults import CV_WARN_PCT, MIN_REPS_FOR_CI

DEFAULT_N_BOOT = 2000
DEFAULT_CONF = 0.95
#: A coefficient of variation above this fraction is warned about (pyperf's 10 %).
CV_WARN = CV_WARN_PCT / 100.0
#: Fewer repetitions than this give a rough CI.
MIN_REPS = MIN_REPS_FOR_CI
#: Cap on the elements one bootstrap block holds (memory stays around 16 MB per block).
_BLOCK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class GroupStats:
    """Per group: the statistic, its CI bounds and the number of values used (NaN/0 when empty)."""

    point: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray


@dataclass(frozen=True)
class DiffResult:
    """Bootstrap of stat(b) - stat(a): its CI and the share of resamples where b - a <= 0."""

    diff: float
    lo: float
    hi: float
    p_not_positive: float


def _check(stat: str, n_boot: int, conf: float) -> None:
    if stat not in ("median", "mean"):
        raise ValueError(f"stat={stat!r}: use median or mean")
    if n_boot < 10:
        raise ValueError(f"n_boot={n_boot} is too small (use >= 1000)")
    if not 0 < conf < 1:
        raise ValueError(f"conf={conf} must be in (0, 1)")


def _boot_block(sorted_mat: np.ndarray, rng: np.random.Generator, stat: str, n_boot: int) -> np.ndarray:
    """Bootstrap replicates of each row of ``sorted_mat`` (m, k): returns (m, n_boot)."""
    m, k = sorted_mat.shape
    idx = rng.integers(0, k, size=(n_boot, k))
    if stat == "mean":
        return np.stack([row[idx].mean(axis=1) for row in sorted_mat])  # a row at a time: n_boot x k floats
    idx.sort(axis=1)
    lo_pos, hi_pos = idx[:, (k - 1) // 2], idx[:, k // 2]
    return 0.5 * (sorted_mat[:, lo_pos] + sorted_mat[:, hi_pos])


def _median_ci_block(sorted_mat: np.ndarray, rng: np.random.Generator, n_boot: int,
                     probs: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CI of the median of each row of ``sorted_mat`` (m, k), from ``n_boot`` resamples.

    The same replicates as :func:`_boot_block` (and ``np.quantile``'s linear method on them), but a
    replicate only depends on the pair of sorted positions that hold the resample's median, and
    at most k(k+1)/2 distinct pairs exist: each row's replicate distribution is those few values
    with their counts, so the quantiles cost O(m k^2) instead of O(m n_boot log n_boot).
    """
    m, k = sorted_mat.shape
    idx = rng.integers(0, k, size=(n_boot, k))
    idx.sort(axis=1)
    pairs = idx[:, (k - 1) // 2] * k + idx[:, k // 2]
    uniq, counts = np.unique(pairs, return_counts=True)
    vals = 0.5 * (sorted_mat[:, uniq // k] + sorted_mat[:, uniq % k])  # (m, P)
    order = np.argsort(vals, axis=1, kind="stable")
    vals = np.take_along_axis(vals, order, axis=1)
    cum = np.cumsum(counts[order], axis=1)  # (m, P): replicates <= each sorted value
    rows = np.arange(m)
    out = []
    for q in probs:
        h = (n_boot - 1) * q
        i = int(np.floor(h))
        frac = h - i
        # value of the i-th and (i+1)-th smallest replicate: first column whose cumulative count > i
        a = vals[rows, np.argmax(cum > i, axis=1)]
        b = vals[rows, np.argmax(cum > min(i + 1, n_boot - 1), axis=1)]
        out.append(a + frac * (b - a))
    return out[0], out[1]


def grouped_bootstrap(values: np.ndarray, groups: np.ndarray, n_groups: int, *, stat: str = "median",
                      n_boot: int = DEFAULT_N_BOOT, conf: float = DEFAULT_CONF, seed: int = 0) -> GroupStats:
    """Statistic and percentile-bootstrap CI of ``values`` per group code (0..n_groups-1); the mean
    through :func:`grouped_mean_bootstrap`.

    NaN values are ignored. A group with one value gets its value and a NaN CI (no spread to
    resample); an empty group gets NaN. Deterministic for a given ``seed``.
    """
    _check(stat, n_boot, conf)
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    keep = np.isfinite(values)
    values, groups = values[keep], groups[keep]
    if stat == "mean":
        return grouped_mean_bootstrap(values, groups, n_groups, n_boot=n_boot, conf=conf, seed=seed)[0]
    point = np.full(n_groups, np.nan)
    lo = np.full(n_groups, np.nan)
    hi = np.full(n_groups, np.nan)
    counts = np.bincount(groups, minlength=n_groups)
    if values.size == 0:
        return GroupStats(point, lo, hi, counts)
    order = np.lexsort((values, groups))  # by group, then by value: each group's run is sorted
    v = values[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    alpha = (1.0 - conf) / 2.0
    for k in np.unique(counts[counts > 0]):
        gidx = np.flatnonzero(counts == k)
        mat = v[starts[gidx, None] + np.arange(k)]  # (m, k), rows sorted
        point[gidx] = 0.5 * (mat[:, (k - 1) // 2] + mat[:, k // 2])
        if k >= 2:
            rng = np.random.default_rng((seed, int(k)))
            lo[gidx], hi[gidx] = _median_ci_block(mat, rng, n_boot, (alpha, 1.0 - alpha))
    return GroupStats(point, lo, hi, counts)


def _mean_replicates(x: np.ndarray, finite: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap replicates (m, c, n_boot) of the mean of the finite values of each row of ``x``
    (m, c, k), one resample of the k positions shared by all rows. A resample is its draw counts,
    so the replicates are one matrix product; resamples are drawn in chunks of about
    ``_BLOCK_ELEMENTS`` draws (memory stays bounded for large k). NaN: a resample without a finite value."""
    m, c, k = x.shape
    xz = np.where(finite, x, 0.0)
    every = bool(finite.all())
    out = np.empty((m, c, n_boot))
    step = max(1, _BLOCK_ELEMENTS // k)
    for b0 in range(0, n_boot, step):
        nb = min(step, n_boot - b0)
        idx = rng.integers(0, k, size=(nb, k))
        drawn = np.bincount((np.arange(nb)[:, None] * k + idx).ravel(), minlength=nb * k).reshape(nb, k)
        drawn = drawn.astype(np.float64).T  # (k, nb): how often each position is drawn in each resample
        with np.errstate(invalid="ignore", divide="ignore"):
            out[..., b0:b0 + nb] = xz @ drawn / (k if every else finite.astype(np.float64) @ drawn)
    return out


def grouped_mean_bootstrap(values: np.ndarray, groups: np.ndarray, n_groups: int, *, n_boot: int = DEFAULT_N_BOOT,
                           conf: float = DEFAULT_CONF, seed: int = 0) -> list[GroupStats]:
    """Mean and percentile-bootstrap CI of each column of ``values`` (n, c) per group code, the runs
    resampled together: one resample of a group's runs serves every column (paired, and one draw
    instead of c). A column's replicate is the mean of its finite values among the drawn runs.
    A group with fewer than two finite values gets a NaN CI. Deterministic for a given ``seed``."""
    _check("mean", n_boot, conf)
    values = np.asarray(values, dtype=np.float64).reshape(len(groups), -1)
    groups = np.asarray(groups, dtype=np.int64)
    c = values.shape[1]
    finite = np.isfinite(values)
    sums = np.zeros((n_groups, c))
    np.add.at(sums, groups, np.where(finite, values, 0.0))
    used = np.zeros((n_groups, c))
    np.add.at(used, groups, finite.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        point = sums / used
    lo, hi = np.full((n_groups, c), np.nan), np.full((n_groups, c), np.nan)
    counts = np.bincount(groups, minlength=n_groups)
    order = np.argsort(groups, kind="stable")
    v, f = values[order], finite[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    alpha = (1.0 - conf) / 2.0
    for k in np.unique(counts[counts > 1]):
        gidx = np.flatnonzero(counts == k)
        pos = starts[gidx, None] + np.arange(k)
        rng = np.random.default_rng((seed, int(k), 3))
        rows = max(1, _BLOCK_ELEMENTS // (n_boot * c))
        for s in range(0, gidx.size, rows):
            blk = slice(s, s + rows)
            rep = _mean_replicates(v[pos[blk]].transpose(0, 2, 1), f[pos[blk]].transpose(0, 2, 1), rng, n_boot)
            ok = used[gidx[blk]] >= 2
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: masked by ``ok`` below
                q = np.nanquantile(rep, [alpha, 1.0 - alpha], axis=2) if np.isnan(rep).any() \
                    else np.quantile(rep, [alpha, 1.0 - alpha], axis=2)
            lo[gidx[blk]] = np.where(ok, q[0], np.nan)
            hi[gidx[blk]] = np.where(ok, q[1], np.nan)
    return [GroupStats(point[:, j], lo[:, j], hi[:, j], used[:, j].astype(np.int64)) for j in range(c)]


def bootstrap_diff(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, stat: str = "median",
                   n_boot: int = DEFAULT_N_BOOT, conf: float = DEFAULT_CONF, seed: int = 0) -> DiffResult:
    """Bootstrap of stat(b) - stat(a), each sample resampled independently.

    With ``a`` the best configuration and ``b`` the runner-up of a lower-is-better metric, a CI
    above zero says the difference is larger than the noise.
    """
    _check(stat, n_boot, conf)
    a = np.sort(np.asarray(a, dtype=np.float64)[np.isfinite(a)])
    b = np.sort(np.asarray(b, dtype=np.float64)[np.isfinite(b)])
    if a.size == 0 or b.size == 0:
        return DiffResult(np.nan, np.nan, np.nan, np.nan)
    f = np.median if stat == "median" else np.mean
    diff = float(f(b) - f(a))
    if a.size < 2 and b.size < 2:
        return DiffResult(diff, np.nan, np.nan, np.nan)
    rng = np.random.default_rng((seed, a.size, b.size, 7))
    ra = _boot_block(a[None, :], rng, stat, n_boot)[0]
    rb = _boot_block(b[None, :], rng, stat, n_boot)[0]
    d = rb - ra
    alpha = (1.0 - conf) / 2.0
    lo, hi = np.quantile(d, [alpha, 1.0 - alpha])
    return DiffResult(diff, float(lo), float(hi), float(np.mean(d <= 0)))


def bootstrap_ratio(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, stat: str = "mean",
                    n_boot: int = DEFAULT_N_BOOT, conf: float = DEFAULT_CONF, seed: int = 0) -> DiffResult:
    """Bootstrap of stat(a) / stat(b), each sample resampled independently: ``diff`` holds the
    ratio, ``lo``/``hi`` its percentile CI, ``p_not_positive`` the share of resamples <= 1."""
    _check(stat, n_boot, conf)
    a = np.sort(np.asarray(a, dtype=np.float64)[np.isfinite(a)])
    b = np.sort(np.asarray(b, dtype=np.float64)[np.isfinite(b)])
    f = np.median if stat == "median" else np.mean
    if a.size == 0 or b.size == 0 or f(b) == 0:
        return DiffResult(np.nan, np.nan, np.nan, np.nan)
    ratio = float(f(a) / f(b))
    if a.size < 2 or b.size < 2:
        return DiffResult(ratio, np.nan, np.nan, np.nan)
    rng = np.random.default_rng((seed, a.size, b.size, 11))
    ra = _boot_block(a[None, :], rng, stat, n_boot)[0]
    rb = _boot_block(b[None, :], rng, stat, n_boot)[0]
    r = ra / np.where(rb == 0, np.nan, rb)
    alpha = (1.0 - conf) / 2.0
    lo, hi = np.nanquantile(r, [alpha, 1.0 - alpha])
    return DiffResult(ratio, float(lo), float(hi), float(np.mean(r <= 1)))


# ----------------------------------------------------------------------------- per configuration


def config_stats(valid: pl.DataFrame, keys: Sequence[str], metrics: Sequence[str], *, n_boot: int = DEFAULT_N_BOOT,
                 conf: float = DEFAULT_CONF, seed: int = 0) -> pl.DataFrame:
    """One row per ``keys`` group of ``valid`` runs: for each metric ``m``: ``m`` (median),
    ``m_lo``/``m_hi`` (CI), ``m_cv`` (std/mean, ddof=1) and ``n_reps``.

    ``valid`` must already exclude warm-ups and failed runs.
    """
    keys = list(keys)
    metrics = [m for m in metrics if m in valid.columns]
    if valid.height == 0:
        schema = {k: valid.schema[k] for k in keys} | {"n_reps": pl.UInt32}
        for m in metrics:
            schema |= {m: pl.Float64, f"{m}_lo": pl.Float64, f"{m}_hi": pl.Float64, f"{m}_cv": pl.Float64}
        return pl.DataFrame(schema=schema)
    coded = valid.with_columns(_g=pl.struct(keys).rank("dense").cast(pl.Int64) - 1)
    groups = coded["_g"].to_numpy()
    n_groups = int(groups.max()) + 1
    head = (coded.group_by("_g").agg([pl.col(k).first() for k in keys], n_reps=pl.len(),
                                      **{f"{m}_cv": pl.col(m).std() / pl.col(m).mean().abs() for m in metrics})
            .sort("_g"))
    cols: dict[str, np.ndarray] = {}
    for i, m in enumerate(metrics):
        res = grouped_bootstrap(coded[m].cast(pl.Float64).fill_null(np.nan).to_numpy(), groups, n_groups,
                                n_boot=n_boot, conf=conf, seed=seed + i)
        cols[m], cols[f"{m}_lo"], cols[f"{m}_hi"] = res.point, res.lo, res.hi
    stats = pl.DataFrame({k: pl.Series(k, v, dtype=pl.Float64, nan_to_null=True) for k, v in cols.items()})
    return pl.concat([head.drop("_g"), stats], how="horizontal")


def warning_text(code: str, detail: str = "") -> str:
    """Human text of a warning code."""
    text = {
        "cv": "unstable: CV {d} > 10 %",
        "few-reps": "only {d} repetitions (< 10): CI is rough",
        "single-run": "a single repetition: no CI",
        "short-window": "short window in {d} runs (< 10x the meter's update period)",
        "throttled": "throttling seen in {d} runs",
        "estimate": "energy is an estimate (TDP x load), not measured",
        "synthetic": "synthetic model (random weights): speeds are real, outputs are not",
        "failed": "{d} failed runs",
        "no-energy": "no energy measured",
    }[code]
    return text.format(d=detail)


def config_warnings(cfg: pl.DataFrame, *, cv_metric: str = "j_per_output_token", fallback_cv_metric: str = "e2e_s",
                    cv_warn: float = CV_WARN, min_reps: int = MIN_REPS) -> pl.Series:
    """A list of ``(code, detail)``-as-text warnings per configuration row.

    Needs columns ``n_reps``, ``n_failed``, ``n_short_window``, ``n_throttled``, ``any_estimate``,
    ``any_synthetic``, ``has_energy`` and ``{cv_metric}_cv`` / ``{fallback_cv_metric}_cv``.
    """
    cv_col = pl.coalesce(pl.col(f"{cv_metric}_cv"), pl.col(f"{fallback_cv_metric}_cv")) \
        if f"{cv_metric}_cv" in cfg.columns else pl.col(f"{fallback_cv_metric}_cv")
    n = pl.col("n_reps").fill_null(0)
    parts = [
        pl.when(cv_col > cv_warn).then(pl.format("cv:{}%", (cv_col * 100).round(0).cast(pl.Int64))),
        pl.when(n == 1).then(pl.lit("single-run:")).when((n > 1) & (n < min_reps)).then(pl.format("few-reps:{}", n)),
        pl.when(pl.col("n_short_window") > 0).then(pl.format("short-window:{}", pl.col("n_short_window"))),
        pl.when(pl.col("n_throttled") > 0).then(pl.format("throttled:{}", pl.col("n_throttled"))),
        pl.when(pl.col("any_estimate")).then(pl.lit("estimate:")),
        pl.when(pl.col("any_synthetic")).then(pl.lit("synthetic:")),
        pl.when(pl.col("n_failed") > 0).then(pl.format("failed:{}", pl.col("n_failed"))),
        pl.when(~pl.col("has_energy").fill_null(False)).then(pl.lit("no-energy:")),
    ]
    return cfg.select(warnings=pl.concat_list(parts).list.drop_nulls())["warnings"]


#: Warning codes that hold for a whole result set: the report states them once, in its summary.
SET_WIDE_CODES = ("synthetic", "estimate", "no-energy")


def render_warnings(codes: Sequence[str], *, skip_set_wide: bool = False) -> list[str]:
    """['cv:14%', 'failed:2'] -> human texts (``skip_set_wide``: leave out what the summary says)."""
    out = []
    for c in codes:
        code, _, detail = c.partition(":")
        if skip_set_wide and code in SET_WIDE_CODES:
            continue
        out.append(warning_text(code, detail))
    return out
