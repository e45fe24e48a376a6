"""The metrics vocabulary (energybench.metrics) and the report's tables over it, against values
computed by hand on small frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from energybench.metrics import ADAPTIVE_METRICS, METRICS, glossary_markdown, row_metrics, with_race_to_sleep
from energybench.report import metrics as M
from energybench.results import RUNS_SCHEMA, runs_frame

REPO = Path(__file__).resolve().parents[1]
T0 = 1_000_000_000


def _run(prefill_s: float = 0.5, decode_s: float = 1.5, **kw):
    """A finished run whose prefill took ``prefill_s`` and decode ``decode_s`` (timestamps in ns)."""
    base = dict(run_id="r1", point_id="p1", status="ok", is_warmup=False, energy_source="measured",
                n_prompt_tokens=100, n_gen_tokens=50, n_repeats=1, t_start_ns=T0,
                t_prefill_end_ns=T0 + round(prefill_s * 1e9), t_end_ns=T0 + round((prefill_s + decode_s) * 1e9),
                energy_j=100.0, energy_net_j=60.0, prefill_energy_j=30.0, decode_energy_j=70.0,
                idle_power_w=20.0, model_size_bytes=1_000_000_000, n_gpu_layers=0)
    base.update(kw)
    return base


def _metrics(rows, bw=100.0) -> pl.DataFrame:
    return M.run_metrics(runs_frame(rows).lazy(), memory_bandwidth_gbs=bw).collect()


def test_energy_per_token_edp_ed2p_by_hand():
    r = _metrics([_run()]).row(0, named=True)
    # E = 100 J, t = 2 s, 50 output tokens, 150 tokens in all, net energy 60 J
    assert r["j_per_output_token"] == pytest.approx(2.0)
    assert r["j_per_output_token_net"] == pytest.approx(1.2)
    assert r["j_per_processed_token"] == pytest.approx(100 / 150)
    assert r["j_per_processed_token_net"] == pytest.approx(60 / 150)
    assert r["request_energy_j"] == pytest.approx(100.0) and r["request_energy_net_j"] == pytest.approx(60.0)
    assert r["output_tokens_per_j"] == pytest.approx(0.5)
    assert r["processed_tokens_per_j"] == pytest.approx(1.5)
    assert r["edp_js"] == pytest.approx(200.0)  # E x t
    assert r["ed2p_js2"] == pytest.approx(400.0)  # E x t^2
    assert r["edp_per_output_token_js"] == pytest.approx(2.0 * (2.0 / 50))  # (E/N)(t/N)
    assert r["ed2p_per_output_token_js2"] == pytest.approx(2.0 * (2.0 / 50) ** 2)
    # phase split
    assert r["prefill_j_per_prompt_token"] == pytest.approx(0.3)
    assert r["decode_j_per_output_token"] == pytest.approx(1.4)
    assert r["prefill_energy_frac"] == pytest.approx(0.3)


def test_repeated_decode_is_normalised_to_one_request():
    # --min-window repeated the decode 4 times: one prefill (0.5 s, 30 J), 4 decodes (1.5 s, 70 J in all)
    r = _metrics([_run(n_repeats=4, n_gen_tokens=200)]).row(0, named=True)
    t_req = 0.5 + 1.5 / 4
    e_req = 30.0 + 70.0 / 4
    assert r["e2e_s"] == pytest.approx(t_req)
    assert r["request_energy_j"] == pytest.approx(e_req) and r["energy_j"] == pytest.approx(100.0)
    assert r["n_output_tokens"] == pytest.approx(50.0)
    assert r["j_per_output_token"] == pytest.approx(e_req / 50)
    assert r["j_per_processed_token"] == pytest.approx(e_req / 150)
    assert r["decode_tok_s"] == pytest.approx((200 - 4) / 1.5)  # the first token of each repeat is not decode
    assert r["edp_js"] == pytest.approx(e_req * t_req)
    assert r["decode_j_per_output_token"] == pytest.approx(70.0 / 200)
    assert r["prefill_energy_frac"] == pytest.approx(30.0 / e_req)
    # the per-request energy and time agree with a run that was never repeated
    one = _metrics([_run(decode_s=1.5 / 4, energy_j=e_req, decode_energy_j=70.0 / 4,
                         energy_net_j=None, decode_energy_net_j=None)]).row(0, named=True)
    assert one["j_per_output_token"] == pytest.approx(r["j_per_output_token"])
    assert one["edp_js"] == pytest.approx(r["edp_js"])


def test_latency_from_the_timestamps():
    r = _metrics([_run(prefill_s=0.25, decode_s=2.0)]).row(0, named=True)
    assert r["e2e_s"] == pytest.approx(2.25)
    assert r["ttft_ms"] == pytest.approx(250.0)
    assert r["prefill_tok_s"] == pytest.approx(100 / 0.25)
    assert r["decode_tok_s"] == pytest.approx(49 / 2.0)  # 50 tokens, the first sampled at prefill


def test_roofline_fraction_cpu_only():
    rows = [_run(), _run(run_id="r2", n_gpu_layers=11)]
    df = _metrics(rows, bw=100.0)
    # decode 49 tok / 1.5 s x 1e9 bytes = 32.7 GB/s of 100 GB/s
    assert df["decode_bytes_s"][0] == pytest.approx(49 / 1.5 * 1e9)
    assert df["roofline_frac"][0] == pytest.approx(49 / 1.5 / 100)
    assert df["roofline_frac"][1] is None  # offloaded layers are read from GPU memory
    assert _metrics([_run()], bw=None)["roofline_frac"][0] is None


def test_no_energy_and_zero_tokens_give_nulls_not_inf():
    rows = [_run(run_id="a", energy_source="none", energy_j=None, energy_net_j=None),
            _run(run_id="b", n_gen_tokens=0)]
    df = _metrics(rows)
    a, b = df.row(0, named=True), df.row(1, named=True)
    assert a["has_energy"] is False and a["j_per_output_token"] is None and a["edp_js"] is None
    assert b["j_per_output_token"] is None and b["output_tokens_per_j"] == 0.0
    assert not any(isinstance(v, float) and math.isinf(v) for v in b.values())


def test_race_to_sleep_window_formula():
    lf = M.run_metrics(runs_frame([_run()]).lazy())
    # E(T) = E_active + P_idle x (T - t_active) = 100 + 20 x (5 - 2) = 160 J
    r = with_race_to_sleep(lf, pl.lit(5.0)).collect().row(0, named=True)
    assert r["race_window_s"] == 5.0
    assert r["race_idle_energy_j"] == pytest.approx(60.0)
    assert r["race_energy_j"] == pytest.approx(160.0)
    # T shorter than the run: no E(T)
    assert with_race_to_sleep(lf, pl.lit(1.5)).collect()["race_energy_j"][0] is None
    # no idle power: no E(T)
    lf2 = M.run_metrics(runs_frame([_run(idle_power_w=None)]).lazy())
    assert with_race_to_sleep(lf2, pl.lit(5.0)).collect()["race_energy_j"][0] is None


def test_default_window_is_slowest_configuration_median():
    def run(rid: str, pid: str, w: float) -> dict:
        return _run(run_id=rid, point_id=pid, prefill_s=0.25 * w, decode_s=0.75 * w)

    rows = [run(f"a{i}", "fast", w) for i, w in enumerate([1.0, 2.0, 9.0])]
    rows += [run(f"b{i}", "slow", w) for i, w in enumerate([3.0, 4.0, 5.0])]
    lf = M.run_metrics(runs_frame(rows).lazy()).with_columns(set=pl.lit("s"), workload=pl.lit("w"))
    win = M.default_race_window(M.valid_runs(lf), ["workload"]).collect()
    # medians: fast 2.0 s, slow 4.0 s -> T = 4.0 s (not the single slowest run, 9 s)
    assert win["race_window_s"].to_list() == [4.0]


def test_valid_runs_drop_warmups_and_failures():
    rows = [_run(run_id="ok"), _run(run_id="w", is_warmup=True), _run(run_id="f", status="failed")]
    out = M.valid_runs(runs_frame(rows).lazy()).collect()
    assert out["run_id"].to_list() == ["ok"]


def test_samples_power_differences_counters_and_passes_watts():
    s = pl.DataFrame({
        "run_id": ["r"] * 5, "meter": ["rapl"] * 3 + ["est"] * 2, "domain": ["pkg"] * 3 + ["cpu"] * 2,
        "t_ns": [0, 1_000_000_000, 3_000_000_000, 0, 1_000_000_000],
        "value": [100.0, 110.0, 150.0, 7.0, 9.0], "unit": ["J"] * 3 + ["W"] * 2,
    })
    mid = M.samples_power(s.lazy()).collect().sort(["domain", "t_ns"])
    pkg = mid.filter(pl.col("domain") == "pkg")
    assert pkg["power_w"].to_list() == pytest.approx([10.0, 20.0])  # 10 J in 1 s, 40 J in 2 s
    assert pkg["t_ns"].to_list() == [500_000_000, 2_000_000_000]  # interval midpoints
    cpu = mid.filter(pl.col("domain") == "cpu")
    assert cpu["power_w"].to_list() == [7.0, 9.0]
    end = M.samples_power(s.lazy(), stamp="end").collect().filter(pl.col("domain") == "pkg").sort("t_ns")
    assert end["t_ns"].to_list() == [1_000_000_000, 3_000_000_000]


def test_domain_summary_explodes_domains():
    dom = lambda name, e, parent=None: {"domain": name, "meter": "rapl", "kind": "energy", "component": "cpu",  # noqa: E731
                                        "parent": parent, "estimate": False, "energy_j": e, "avg_power_w": e / 2,
                                        "peak_power_w": e, "update_period_s": 0.001, "sample_period_s": 0.02}
    rows = [_run(run_id=f"r{i}", domains=[dom("pkg", 10.0 + i), dom("core", 5.0 + i, "pkg")]) for i in range(3)]
    rows.append(_run(run_id="w", is_warmup=True, domains=[dom("pkg", 99.0)]))
    lf = runs_frame(rows).lazy().with_columns(set=pl.lit("s"))
    out = M.domain_summary(lf).collect()
    pkg = out.filter(pl.col("domain") == "pkg").row(0, named=True)
    assert pkg["n_runs"] == 3  # the warm-up is excluded
    assert pkg["energy_j"] == pytest.approx(11.0)
    assert pkg["peak_power_w"] == pytest.approx(12.0)
    assert pkg["j_per_output_token"] == pytest.approx(11.0 / 50)
    assert out.filter(pl.col("domain") == "core")["parent"][0] == "pkg"


def test_measure_memory_bandwidth():
    from energybench.errors import UsageError
    from energybench.report import measure_memory_bandwidth

    one = measure_memory_bandwidth(size_mb=64, repeats=2, n_threads=1)
    two = measure_memory_bandwidth(size_mb=64, repeats=2, n_threads=2)
    # any machine this runs on moves between 0.5 GB/s and 10 TB/s
    assert 0.5 < one < 10_000 and 0.5 < two < 10_000
    with pytest.raises(UsageError, match="size_mb"):
        measure_memory_bandwidth(size_mb=0)


def test_samples_power_of_a_slow_counter_uses_its_changes():
    # a 50 W domain whose counter refreshes every 100 ms, sampled every 20 ms (NVML-like)
    t = np.arange(0, 21) * 20_000_000
    value = 50.0 * (t // 100_000_000) * 0.1  # steps of 5 J every 100 ms
    s = pl.DataFrame({"run_id": "r", "meter": "nvml", "domain": "gpu", "t_ns": t, "value": value, "unit": "J"})
    naive = M.samples_power(s.lazy()).collect()["power_w"].to_numpy()
    assert naive.max() == pytest.approx(250.0) and (naive == 0).sum() > 10  # spikes and zeros
    steady = M.samples_power(s.lazy(), changes_only=True).collect()["power_w"].to_numpy()
    assert steady == pytest.approx(np.full(steady.size, 50.0)) and steady.size == 4


# ----------------------------------------------------------------------------- the vocabulary itself


def test_row_metrics_is_the_frame_definition():
    row = _run(n_repeats=2, n_gen_tokens=100)
    frame = _metrics([row]).row(0, named=True)
    one = row_metrics(row, ["j_per_output_token", "decode_tok_s", "e2e_s", "ttft_ms"])
    assert one == {k: frame[k] for k in one}


def test_every_metric_is_documented_and_computable():
    df = _metrics([_run()])
    for name, m in METRICS.items():
        assert m.label and m.unit and m.formula, name
        assert name in df.columns or name == "race_energy_j", name  # race-to-sleep needs the window T
        assert name not in RUNS_SCHEMA or m.expr is None or name in ("ttft_ms", "prefill_tok_s", "decode_tok_s")
    assert "j_per_token" not in METRICS  # ambiguous: it meant three different things once
    assert set(ADAPTIVE_METRICS) <= set(METRICS)


def test_the_readme_glossary_is_the_vocabulary():
    readme = (REPO / "README.md").read_text()
    assert glossary_markdown() in readme, "regenerate the README glossary: energybench.metrics.glossary_markdown()"
