"""``energybench compare``: verdicts on result sets with known effects, the regression gate and
its exit codes, refusal of sets from different machines, the GitHub step summary, the formats,
and one end-to-end comparison of two real sweeps of the tiny twin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from energybench.compare import VERDICTS, compare, compare_results, machine_differences, metric_change
from energybench.compare_render import render_markdown, render_text
from energybench.errors import UsageError
from energybench.report.build import load_sets
from energybench.results import ResultsStore, atomic_write_parquet, runs_frame
from handmade_results import metadata, rows, write_set


def _cmp(tmp_path: Path, base: dict, new: dict, **options):
    b = write_set(tmp_path / "base", **base)
    n = write_set(tmp_path / "new", **new)
    return compare_results(b, [n], **options)


def _changes(c, set_index: int = 0, pair: int = 0) -> dict:
    return {ch.metric: ch for ch in c.sets[set_index].pairs[pair].changes}


# ----------------------------------------------------------------------------- verdicts


def test_a_10_percent_regression_is_caught(tmp_path):
    c = _cmp(tmp_path, {}, {"decode": 1.10, "seed": 1})
    ch = _changes(c)
    energy, speed, ttft = ch["j_per_output_token"], ch["decode_tok_s"], ch["ttft_ms"]
    assert energy.verdict == "worse" and energy.ratio_lo > 1.0
    assert energy.worse_pct == pytest.approx(9.2, abs=3)  # decode is 10/11 of the energy
    assert speed.verdict == "worse" and speed.ratio_hi < 1.0  # higher is better: a ratio < 1 is worse
    assert speed.worse_pct == pytest.approx(100 * (1 - 1 / 1.10), abs=3)
    assert ttft.verdict == "within noise"  # prefill did not change
    assert [ch.metric for _, _, ch in c.regressions(5)] == ["j_per_output_token", "decode_tok_s"]


def test_a_1_percent_change_is_within_noise(tmp_path):
    c = _cmp(tmp_path, {}, {"decode": 1.01, "seed": 1})
    assert {ch.verdict for ch in _changes(c).values()} == {"within noise"}
    assert c.regressions(5) == [] and c.regressions(0) == []


def test_an_improvement_is_better_and_never_fails_the_gate(tmp_path):
    c = _cmp(tmp_path, {}, {"decode": 0.85, "power": 0.9, "seed": 1})
    ch = _changes(c)
    assert ch["j_per_output_token"].verdict == "better" and ch["decode_tok_s"].verdict == "better"
    assert ch["j_per_output_token"].worse_pct < -10
    assert c.regressions(0) == []


def test_the_gate_needs_a_change_beyond_pct_and_beyond_noise():
    rng = np.random.default_rng(3)
    base = rng.lognormal(0, 0.001, 10)
    small = metric_change("j_per_output_token", base, 1.03 * rng.lognormal(0, 0.001, 10))
    assert small.verdict == "worse" and 2 < small.worse_pct < 4  # clear, but smaller than a 5 % gate
    noisy = metric_change("j_per_output_token", rng.lognormal(0, 0.4, 4), 1.1 * rng.lognormal(0, 0.4, 4))
    assert noisy.verdict == "within noise" and noisy.ratio_lo < 1 < noisy.ratio_hi


def test_same_values_are_no_change_and_few_runs_get_no_verdict():
    v = [1.0, 1.1, 0.9, 1.05, 0.95]
    same = metric_change("ttft_ms", v, v)
    assert same.ratio == 1.0 and same.verdict == "within noise" and same.ratio_lo < 1 < same.ratio_hi
    assert metric_change("ttft_ms", [1.0], [2.0]).verdict == "too few runs"
    assert metric_change("ttft_ms", [], [2.0, 2.1]).verdict == "no data"
    assert metric_change("j_per_output_token_net", [-1.0, -0.5], [1.0, 2.0]).verdict == "no ratio"
    assert set(VERDICTS) >= {"better", "worse", "within noise"}


def test_energy_metrics_carry_the_estimate_label_and_missing_energy_is_no_data(tmp_path):
    c = _cmp(tmp_path, {"energy_source": "estimate"}, {"energy_source": "estimate", "seed": 1})
    ch = _changes(c)
    assert ch["j_per_output_token"].estimate and not ch["decode_tok_s"].estimate
    assert "(estimate)" in render_text(c)
    c = _cmp(tmp_path / "none", {"energy_source": "none"}, {"energy_source": "none", "seed": 1})
    assert _changes(c)["j_per_output_token"].verdict == "no data"


def test_failed_runs_are_left_out_and_said(tmp_path):
    new = tmp_path / "new"
    ResultsStore(new).create(metadata())
    crashed = [{**r, "status": "failed", "error": "worker killed by SIGSEGV"} for r in rows(1, seed=1)]
    atomic_write_parquet(runs_frame(crashed), new / "runs.parquet")
    c = compare_results(write_set(tmp_path / "base"), [new], metrics=["decode_tok_s"])
    (pair,) = c.sets[0].pairs  # the configuration exists in NEW, without a finished run
    assert [ch.verdict for ch in pair.changes] == ["no data"] and pair.changes[0].new.n == 0
    assert "new: 10 failed run(s) left out" in " ".join(c.sets[0].warnings)
    assert c.regressions(0) == []


# ----------------------------------------------------------------------------- pairing


def test_configurations_on_one_side_only_are_listed(tmp_path):
    c = _cmp(tmp_path, {"threads": (1, 2, 4)}, {"threads": (2, 4, 8), "seed": 1})
    s = c.sets[0]
    assert sorted(p.base.knobs["n_threads"] for p in s.pairs) == [2, 4]
    assert [x.knobs["n_threads"] for x in s.only_base] == [1] and [x.knobs["n_threads"] for x in s.only_new] == [8]
    text = render_text(c)
    assert "only in BASE: " in text and "only in NEW: " in text
    assert "geometric mean of NEW/BASE: J/output token " in text  # over the two pairs


def test_several_new_sets_are_each_compared_with_base(tmp_path):
    b = write_set(tmp_path / "base")
    n1 = write_set(tmp_path / "same", seed=1)
    n2 = write_set(tmp_path / "slow", decode=1.2, seed=2)
    c = compare_results(b, [n1, n2])
    assert [s.label for s in c.sets] == ["same", "slow"]
    assert [lab for lab, _, _ in c.regressions(5)] == ["slow", "slow"]
    assert c.sets[1].geometric_mean("decode_tok_s") == pytest.approx(1 / 1.2, rel=0.05)


def test_ignoring_a_knob_pairs_thread_counts(tmp_path):
    c = _cmp(tmp_path, {"threads": (1,)}, {"threads": (2,), "decode": 0.6, "seed": 1}, ignore_knobs=["n_threads"])
    (pair,) = c.sets[0].pairs
    assert pair.label.endswith("n_threads 1 -> 2")  # threads_batch follows threads: not named
    assert c.ignore_knobs == ("n_threads", "n_threads_batch")
    assert _changes(c)["decode_tok_s"].verdict == "better"
    assert not compare_results(tmp_path / "base", [tmp_path / "new"]).sets[0].pairs  # by point_id: no pair


def test_ignoring_a_knob_that_merges_configurations_is_refused(tmp_path):
    with pytest.raises(UsageError, match="differ only in the ignored knobs"):
        _cmp(tmp_path, {"threads": (1, 2)}, {"threads": (1,)}, ignore_knobs=["n_threads"])
    with pytest.raises(UsageError, match="is not a knob"):
        _cmp(tmp_path / "x", {}, {}, ignore_knobs=["threads"])


def test_metrics_come_from_the_vocabulary(tmp_path):
    with pytest.raises(UsageError, match="'joules' is not a metric") as e:
        _cmp(tmp_path, {}, {}, metrics=["joules"])
    assert "j_per_output_token" in e.value.hint
    with pytest.raises(UsageError, match="needs a parameter"):
        _cmp(tmp_path / "x", {}, {}, metrics=["roofline_frac"])
    c = _cmp(tmp_path / "y", {}, {"seed": 1}, metrics=["e2e_s", "itl_p50_ms"])
    assert c.metrics == ("e2e_s", "itl_p50_ms") and _changes(c)["itl_p50_ms"].verdict == "no data"


# ----------------------------------------------------------------------------- machines


def test_different_machines_are_refused_naming_what_differs(tmp_path):
    other = metadata(cpu="Other CPU 1", version="0.3.99", sha="b" * 64)
    with pytest.raises(UsageError) as e:
        _cmp(tmp_path, {}, {"meta": other})
    msg = e.value.one_line()
    assert "CPU: Test CPU 9000 (BASE) vs Other CPU 1 (NEW)" in msg
    assert "llama-cpp-python version): 0.3.36 (BASE) vs 0.3.99 (NEW)" in msg
    assert f"model synthetic:tiny (sha256): {'a' * 64} (BASE) vs {'b' * 64} (NEW)" in msg
    assert "--allow-different-machines" in msg
    sets = load_sets([tmp_path / "base", tmp_path / "new"])
    c = compare(sets[0], sets[1:], allow_different_machines=True)
    assert [d.what for d in c.sets[0].differences] == ["CPU", "llama.cpp build (llama-cpp-python version)",
                                                       "model synthetic:tiny (sha256)"]
    assert "different, compared anyway: CPU: Test CPU 9000 (BASE) vs Other CPU 1 (NEW)" in render_text(c)


def test_same_machine_other_hostname_and_other_meters_are_not_refused(tmp_path):
    assert machine_differences(metadata(), metadata(host_note="x")) == []
    c = _cmp(tmp_path, {}, {"meta": metadata(meter="estimate"), "seed": 1})
    assert any("rapl in BASE and estimate in NEW" in w for w in c.sets[0].warnings)


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def sets(tmp_path) -> dict[str, Path]:
    return {"base": write_set(tmp_path / "base"), "slow": write_set(tmp_path / "slow", decode=1.10, seed=1),
            "same": write_set(tmp_path / "same", decode=1.01, seed=1),
            "other": write_set(tmp_path / "other", meta=metadata(cpu="Other CPU 1"), seed=1)}


def test_exit_codes(cli, sets):
    r = cli("compare", str(sets["base"]), str(sets["slow"]), "--fail-on-regression", "5")
    assert r.returncode == 1, r.stderr
    assert "regression gate (5 %): FAILED, 2 change(s)" in r.stdout
    assert "slow: cpu decode speed worse by " in r.stdout and "| verdict" not in r.stdout
    r = cli("compare", str(sets["base"]), str(sets["same"]), "--fail-on-regression", "5")
    assert r.returncode == 0 and "regression gate (5 %): passed" in r.stdout
    assert cli("compare", str(sets["base"]), str(sets["slow"]), "--fail-on-regression", "20").returncode == 0
    assert cli("compare", str(sets["base"]), str(sets["slow"])).returncode == 0  # no gate asked
    r = cli("compare", str(sets["base"]), str(sets["other"]))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "CPU: Test CPU 9000 (BASE) vs Other CPU 1 (NEW)" in r.stderr
    assert cli("compare", str(sets["base"]), str(sets["other"]), "--allow-different-machines").returncode == 0
    for bad in (["--format", "html"], ["--metric", "nope"], ["--fail-on-regression", "-1"]):
        r = cli("compare", str(sets["base"]), str(sets["same"]), *bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr, bad


def test_the_markdown_table_is_appended_to_the_github_step_summary(cli, sets, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    r = cli("compare", str(sets["base"]), str(sets["slow"]), "--fail-on-regression", "5",
            env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.returncode == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n### energybench compare: BASE `base`")
    assert "| configuration | workload | metric | BASE | NEW | NEW/BASE [95% CI] | verdict |" in text
    assert "**regression gate (5 %): FAILED" in text
    assert "| configuration |" not in r.stdout  # stdout keeps the asked format (text)


def test_json_and_markdown_formats(cli, sets):
    r = cli("compare", str(sets["base"]), str(sets["slow"]), str(sets["same"]), "--format", "json",
            "--fail-on-regression", "5")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert [s["label"] for s in doc["sets"]] == ["slow", "same"]
    m = doc["sets"][0]["pairs"][0]["metrics"]["decode_tok_s"]
    assert m["verdict"] == "worse" and m["ratio_ci95"][1] < 1 and m["lower_is_better"] is False
    assert doc["gate"]["passed"] is False
    assert {x["set"] for x in doc["gate"]["regressions"]} == {"slow"}
    r = cli("compare", str(sets["base"]), str(sets["same"]), "--format", "markdown")
    assert r.returncode == 0 and r.stdout.startswith("### energybench compare")
    assert "|---|---|---|---|---|---|---|" in r.stdout and render_markdown.__name__


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_two_real_sweeps_compared(cli, tiny_model, tmp_path):
    dirs = {}
    for t in (1, 2):
        dirs[t] = tmp_path / f"t{t}"
        r = cli("sweep", "-m", "synthetic:tiny", "-t", str(t), "-p", "16", "-n", "8", "-r", "5", "--idle", "0.3",
                "--cooldown", "0", "--meter", "estimate", "--cpu-tdp-w", "6", "-q", "-o", str(dirs[t]))
        assert r.returncode == 0, r.stderr
    r = cli("compare", str(dirs[1]), str(dirs[2]), "--ignore-knob", "n_threads", "--format", "json")
    assert r.returncode == 0, r.stderr
    (s,) = json.loads(r.stdout)["sets"]
    (pair,) = s["pairs"]
    assert (pair["base_configuration"]["config"]["n_threads"], pair["configuration"]["config"]["n_threads"]) == (1, 2)
    for name, m in pair["metrics"].items():
        assert m["verdict"] in VERDICTS and m["verdict"] not in ("no data", "too few runs"), name
        assert m["base"]["n"] == m["new"]["n"] == 5 and m["base"]["median"] > 0 and m["new"]["median"] > 0
        assert m["ratio_ci95"][0] <= m["ratio"] <= m["ratio_ci95"][1]
        assert m["estimate"] is (name == "j_per_output_token")
    r = cli("compare", str(dirs[1]), str(dirs[2]))
    assert r.returncode == 0 and "no configuration in common" in r.stdout and "only in NEW: " in r.stdout
