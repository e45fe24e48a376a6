"""Bootstrap CIs, CV, warnings, recommendations and the Pareto front."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from energybench.report.best import pareto_mask, recommend, with_pareto
from energybench.report.fmt import fmt_ci, fmt_num
from energybench.report.stats import (
    _BLOCK_ELEMENTS,
    _boot_block,
    _median_ci_block,
    bootstrap_diff,
    config_stats,
    config_warnings,
    grouped_bootstrap,
    grouped_mean_bootstrap,
    render_warnings,
)


def one_ci(x, **kw) -> tuple[float, float]:
    res = grouped_bootstrap(x, np.zeros(x.size, dtype=np.int64), 1, **kw)
    return float(res.lo[0]), float(res.hi[0])


def test_mean_ci_matches_normal_theory():
    x = np.random.default_rng(42).normal(10.0, 2.0, size=400)
    lo, hi = one_ci(x, stat="mean", n_boot=4000, seed=1)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)  # ~0.196
    assert lo < x.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.12)


def test_median_ci_agrees_with_naive_resampling():
    x = np.random.default_rng(7).normal(0.0, 1.0, size=900)
    rng = np.random.default_rng(0)
    naive = np.quantile([np.median(x[rng.integers(0, x.size, x.size)]) for _ in range(3000)], [0.025, 0.975])
    lo, hi = one_ci(x, stat="median", n_boot=3000, seed=3)
    assert lo == pytest.approx(naive[0], abs=0.02) and hi == pytest.approx(naive[1], abs=0.02)


@pytest.mark.parametrize("stat", ["median", "mean"])
def test_ci_coverage_on_a_known_distribution(stat):
    # 400 samples of 30 draws from N(5, 1) (median = mean = 5): a 95 % CI must cover 5 about 95 % of
    # the time (percentile bootstrap undercovers a little at n = 30)
    rng = np.random.default_rng(11)
    n_groups, n = 400, 30
    values = rng.normal(5.0, 1.0, size=n_groups * n)
    groups = np.repeat(np.arange(n_groups), n)
    res = grouped_bootstrap(values, groups, n_groups, stat=stat, n_boot=2000, seed=2)
    coverage = np.mean((res.lo <= 5.0) & (5.0 <= res.hi))
    assert 0.88 <= coverage <= 0.99
    # and the width is the textbook one: 1.96 x SE (SE of the median: 1.2533 sigma / sqrt(n))
    se = (1.2533 if stat == "median" else 1.0) / np.sqrt(n)
    assert np.median(res.hi - res.lo) / 2 == pytest.approx(1.96 * se, rel=0.2)


@pytest.mark.parametrize("k", [2, 3, 5, 10, 11, 31])
def test_median_ci_shortcut_equals_explicit_resampling(k):
    rng = np.random.default_rng(k)
    mat = np.sort(rng.lognormal(size=(40, k)), axis=1)
    explicit = np.quantile(_boot_block(mat, np.random.default_rng(9), "median", 1500), [0.025, 0.975], axis=1)
    lo, hi = _median_ci_block(mat, np.random.default_rng(9), 1500, (0.025, 0.975))
    np.testing.assert_allclose(lo, explicit[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(hi, explicit[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n_groups", "k"), [(1, 700), (25, 6), (1, 3000)])
def test_grouped_mean_bootstrap_equals_explicit_resampling_of_the_runs(n_groups, k):
    # columns 2 and 3 miss values (a run without energy): a replicate averages the drawn runs' finite values
    rng = np.random.default_rng(k)
    x = rng.lognormal(size=(n_groups * k, 3))
    x[rng.random(x.shape[0]) < 0.2, 1:] = np.nan
    groups = np.repeat(np.arange(n_groups), k)
    res = grouped_mean_bootstrap(x, groups, n_groups, n_boot=800, seed=4)
    draw = np.random.default_rng((4, k, 3))  # the draws the function makes: one resample of runs for every column,
    step = _BLOCK_ELEMENTS // k  # in chunks of resamples (3000 runs: two)
    idx = np.concatenate([draw.integers(0, k, size=(min(step, 800 - b), k)) for b in range(0, 800, step)])
    for g in range(n_groups):
        runs = x[g * k:(g + 1) * k]
        for j in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                reps = np.nanmean(runs[idx, j], axis=1)  # NaN for a resample that drew no finite value: left out
            lo, hi = np.nanquantile(reps, [0.025, 0.975])
            assert res[j].point[g] == pytest.approx(np.nanmean(runs[:, j]), rel=1e-12)
            assert res[j].lo[g] == pytest.approx(lo, rel=1e-9) and res[j].hi[g] == pytest.approx(hi, rel=1e-9)
            assert res[j].n[g] == np.isfinite(runs[:, j]).sum()


def test_grouped_bootstrap_seeded_nan_and_singletons():
    values = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 10.0, 11.0, 12.0, 5.0])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    a = grouped_bootstrap(values, groups, 4, seed=5)
    b = grouped_bootstrap(values, groups, 4, seed=5)
    np.testing.assert_array_equal(a.lo, b.lo)
    assert a.point[0] == pytest.approx(2.5) and a.point[1] == pytest.approx(11.0)
    assert list(a.n) == [4, 3, 1, 0]  # the NaN is ignored
    assert a.lo[0] <= 2.5 <= a.hi[0] and 1.0 <= a.lo[0] and a.hi[0] <= 4.0
    assert a.point[2] == 5.0 and np.isnan(a.lo[2])  # one value: no CI
    assert np.isnan(a.point[3])  # empty group
    c = grouped_bootstrap(np.random.default_rng(0).random(50), np.zeros(50, int), 1, seed=6)
    d = grouped_bootstrap(np.random.default_rng(0).random(50), np.zeros(50, int), 1, seed=7)
    assert (c.lo[0], c.hi[0]) != (d.lo[0], d.hi[0])


def test_bootstrap_diff_separates_signal_from_noise():
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 0.05, 10)
    far = bootstrap_diff(a, rng.normal(2.0, 0.05, 10), seed=0)
    assert far.lo > 0 and far.p_not_positive == 0.0
    same = bootstrap_diff(a, a + rng.normal(0, 1e-3, 10), seed=0)
    assert same.lo < 0 < same.hi


def _cfg_frame():
    rows = []
    for pid, base, sd, n in (("a", 1.0, 0.01, 10), ("b", 1.5, 0.3, 10), ("c", 2.0, 0.01, 3)):
        vals = np.random.default_rng(len(pid) + int(base * 10)).normal(base, sd, n)
        rows += [{"set": "s", "point_id": pid, "m": float(v)} for v in vals]
    return pl.DataFrame(rows)


def test_config_stats_median_ci_and_cv_by_hand():
    df = _cfg_frame()
    out = config_stats(df, ["set", "point_id"], ["m"], n_boot=1000).sort("point_id")
    for r in out.iter_rows(named=True):
        vals = df.filter(pl.col("point_id") == r["point_id"])["m"].to_numpy()
        assert r["n_reps"] == vals.size
        assert r["m"] == pytest.approx(np.median(vals))
        assert r["m_cv"] == pytest.approx(vals.std(ddof=1) / vals.mean())
        assert r["m_lo"] <= r["m"] <= r["m_hi"]


def test_config_warnings_codes():
    cfg = pl.DataFrame({
        "n_reps": [10, 5, 1, 12], "n_failed": [0, 2, 0, 0], "n_short_window": [0, 0, 3, 0],
        "n_throttled": [0, 1, 0, 0], "any_estimate": [False, True, False, False],
        "any_synthetic": [False, False, True, False], "has_energy": [True, True, True, False],
        "j_per_output_token_cv": [0.02, 0.15, None, None], "e2e_s_cv": [0.01, 0.01, None, 0.2],
    })
    w = config_warnings(cfg).to_list()
    assert w[0] == []
    assert w[1] == ["cv:15%", "few-reps:5", "throttled:1", "estimate:", "failed:2"]
    assert w[2] == ["single-run:", "short-window:3", "synthetic:"]
    assert w[3] == ["cv:20%", "no-energy:"]  # no energy: the latency CV is used
    text = render_warnings(w[1])
    assert text[0] == "unstable: CV 15% > 10 %" and "2 failed runs" in text


def test_pareto_mask_by_hand():
    x = np.array([1.0, 2.0, 3.0, 2.5, 1.0, np.nan])
    y = np.array([5.0, 3.0, 1.0, 4.0, 6.0, 0.1])
    # (1,5), (2,3), (3,1) are the front; (2.5,4) is beaten by (2,3); (1,6) by (1,5); NaN never
    assert pareto_mask(x, y).tolist() == [True, True, True, False, False, False]
    cfg = pl.DataFrame({"set": ["s"] * 3, "workload": ["w"] * 3, "e2e_s": [1.0, 2.0, 1.5],
                        "j_per_output_token": [2.0, 1.0, 3.0]})
    assert with_pareto(cfg, group_cols=["set", "workload"])["pareto"].to_list() == [True, True, False]


def test_recommend_best_runner_up_and_noise_verdict():
    rng = np.random.default_rng(3)
    raw = {"a": rng.normal(1.0, 0.01, 10), "b": rng.normal(1.3, 0.05, 10)}
    raw["c"] = raw["b"] + rng.normal(0.002, 0.002, 10)
    runs = pl.DataFrame([{"set": "s", "point_id": k, "e2e_s": float(v)} for k, vs in raw.items() for v in vs])
    cfg = config_stats(runs, ["set", "point_id"], ["e2e_s"], n_boot=1000).with_columns(
        workload=pl.lit("w"), n_threads=pl.Series([1, 2, 4]), warnings=pl.lit([], dtype=pl.List(pl.String)))
    values = lambda s, p, m: raw[p]  # noqa: E731
    recs = recommend(cfg, values, group_cols=["set", "workload"], knob_cols=["n_threads"], fmt=fmt_num,
                     objectives={"latency": ("e2e_s", "lowest latency")})
    (r,) = recs
    assert r.best.point_id == "a" and r.runner_up.point_id == "b"
    assert r.best.config == {"n_threads": 1}
    assert r.significance == "clear" and r.cis_overlap is False
    assert "CIs do not overlap" in r.verdict
    # b vs c: within noise
    cfg2 = cfg.filter(pl.col("point_id") != "a")
    (r2,) = recommend(cfg2, values, group_cols=["set", "workload"], knob_cols=["n_threads"], fmt=fmt_num,
                      objectives={"latency": ("e2e_s", "lowest latency")})
    assert {r2.best.point_id, r2.runner_up.point_id} == {"b", "c"} and r2.significance == "within-noise"
    assert r2.diff_ci is not None and r2.diff_ci[0] <= r2.diff <= r2.diff_ci[1]


def test_formatting():
    assert fmt_num(None) == "–" and fmt_num(float("nan")) == "–"
    assert fmt_num(0.76816) == "0.768" and fmt_num(1040.2) == "1040" and fmt_num(12345.6) == "12,346"
    assert fmt_num(3) == "3" and fmt_num(2.5e-7) == "2.50e-07"
    assert fmt_ci(1.0, 0.9, 1.1) == "1.00 [0.900, 1.10]" and fmt_ci(1.0, None, None) == "1.00"
