"""The original study's tables with our statistics: each number against a direct computation over
the runs, and the verdict rules on scripted inputs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from energybench.metrics import row_metrics
from energybench.report.analysis import analyze
from energybench.report.jsonsummary import summary_dict
from energybench.report.load import load_result_set
from energybench.report.stats import bootstrap_ratio
from energybench.report.study import _ratio_verdict
from energybench.testing.synthetic_results import DEFAULT_PROMPTS, generate_results, small_spec


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "res"
    generate_results(root, small_spec(prompts=DEFAULT_PROMPTS[:2], n_failed=1), layout="consolidated")
    return analyze([load_result_set(root)], n_boot=500)


def test_summary_per_suite_and_backend_is_the_mean_of_every_run(analysis) -> None:
    v = analysis.valid.with_columns(suite=pl.col("prompt_suite"))
    want = v.group_by(["suite", "backend_mode"]).agg(pl.col("e2e_s").mean(), pl.col("request_energy_j").mean(),
                                                      pl.col("edp_js").mean(), n=pl.len(),
                                                      k=pl.col("config_id").n_unique())
    got = analysis.study.summary
    assert got.height == want.height == 2 * 2  # 2 suites x cpu / cuda-full (0 or 22 layers)
    for r in got.iter_rows(named=True):
        w = want.filter((pl.col("suite") == r["suite"]) & (pl.col("backend_mode") == r["backend_mode"])).row(0, named=True)
        assert r["latency_s"] == pytest.approx(w["e2e_s"]) and r["energy_j"] == pytest.approx(w["request_energy_j"])
        assert r["edp_js"] == pytest.approx(w["edp_js"]) and (r["n_runs"], r["n_configurations"]) == (w["n"], w["k"])
        assert r["latency_s_lo"] <= r["latency_s"] <= r["latency_s_hi"]


def test_edp_ranking_pools_every_prompt(analysis) -> None:
    ranking = analysis.study.ranking
    means = analysis.valid.group_by("config_id").agg(pl.col("edp_js").mean(), p=pl.col("prompt_id").n_unique())
    assert ranking["rank"].to_list() == list(range(1, ranking.height + 1)) and ranking.height == 8
    assert ranking["edp_js"].to_list() == sorted(ranking["edp_js"].to_list())
    for r in ranking.iter_rows(named=True):
        m = means.filter(pl.col("config_id") == r["config_id"]).row(0, named=True)
        assert r["edp_js"] == pytest.approx(m["edp_js"]) and r["n_prompts"] == m["p"] == 2
    assert ranking["verdict"][0] == "best"
    assert set(ranking["verdict"][1:]) <= {"within noise of the best", "worse than the best"}
    assert "worse than the best" in ranking["verdict"].to_list()  # CPU-only is far behind full offload here


def test_headline_compares_the_best_of_each_side(analysis) -> None:
    (h, *_rest) = analysis.study.headlines
    assert len(analysis.study.headlines) == 2  # one per suite
    v = analysis.valid.filter(pl.col("prompt_suite") == h.suite)
    best = lambda frame: frame.group_by("config_id").agg(pl.col("edp_js").mean()).sort("edp_js")["config_id"][0]  # noqa: E731
    cpu, gpu = v.filter(pl.col("n_gpu_layers") == 0), v.filter(pl.col("n_gpu_layers") != 0)
    assert (h.cpu, h.gpu) == (best(cpu), best(gpu))
    c, g = cpu.filter(pl.col("config_id") == h.cpu), gpu.filter(pl.col("config_id") == h.gpu)
    assert h.speedup[0] == pytest.approx(c["e2e_s"].mean() / g["e2e_s"].mean())
    assert h.energy_saved[0] == pytest.approx(1 - g["request_energy_j"].mean() / c["request_energy_j"].mean())
    assert h.edp_ratio[0] == pytest.approx(c["edp_js"].mean() / g["edp_js"].mean())
    for item in (h.speedup, h.energy_saved, h.edp_ratio):
        assert item[1] <= item[0] <= item[2]
    assert h.verdicts == {"speedup": "GPU faster", "energy_saved": "GPU saves energy", "edp_ratio": "GPU better EDP"}


def test_ratio_verdicts_on_scripted_intervals() -> None:
    assert _ratio_verdict(1.2, 1.5, "GPU faster", "CPU faster") == "GPU faster"
    assert _ratio_verdict(0.5, 0.9, "GPU faster", "CPU faster") == "CPU faster"
    assert _ratio_verdict(0.9, 1.1, "GPU faster", "CPU faster") == "within noise"
    assert _ratio_verdict(float("nan"), float("nan"), "a", "b") == "too few runs to tell"


def test_bootstrap_ratio() -> None:
    a, b = np.array([10.0, 11.0, 12.0, 13.0]), np.array([5.0, 5.5, 6.0, 6.5])
    r = bootstrap_ratio(a, b, n_boot=2000, seed=3)
    assert r.diff == pytest.approx(11.5 / 5.75) and r.lo < r.diff < r.hi and r.lo > 1.5
    assert bootstrap_ratio(a, b, n_boot=2000, seed=3) == r  # seeded
    same = bootstrap_ratio(a, a[::-1], n_boot=2000, seed=3)
    assert same.diff == pytest.approx(1.0) and same.lo < 1 < same.hi
    assert np.isnan(bootstrap_ratio([1.0], [2.0]).lo)  # one value each: no interval


def test_latency_per_token_metric_and_its_mean_and_p95(analysis) -> None:
    row = {"t_start_ns": 0, "t_prefill_end_ns": 500_000_000, "t_end_ns": 4_500_000_000, "n_gen_tokens": 64,
           "n_prompt_tokens": 32, "n_repeats": 2}
    # e2e = 0.5 + 4.0 / 2 = 2.5 s for 32 output tokens per request
    assert row_metrics(row, ["ms_per_output_token"])["ms_per_output_token"] == pytest.approx(2500 / 32)
    cfg = analysis.cfg.row(0, named=True)
    runs = analysis.valid.filter((pl.col("point_id") == cfg["point_id"]))["ms_per_output_token"]
    assert cfg["ms_per_output_token_mean"] == pytest.approx(runs.mean())
    assert cfg["ms_per_output_token_p95"] == pytest.approx(float(np.percentile(runs.to_numpy(), 95)))


def test_json_summary_carries_the_study_tables(analysis) -> None:
    study = summary_dict(analysis, [])["study"]
    assert len(study["suite_backend"]) == 4 and len(study["edp_ranking"]) == 8 and len(study["cpu_vs_gpu"]) == 2
    assert set(study["cpu_vs_gpu"][0]) >= {"suite", "cpu", "gpu", "speedup", "energy_saved", "edp_ratio", "verdicts"}
