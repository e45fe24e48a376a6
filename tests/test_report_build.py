"""build_report end to end on real result directories (written through ResultsStore): outputs,
recommendations, partial and failed data, comparison, CSV export, CLI."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from energybench.cli import main
from energybench.report.best import OBJECTIVES
from energybench.report.build import build_report
from energybench.report.export import LATENCY_RESULTS_COLUMNS, POWER_LOGS_COLUMNS, POWER_SAMPLES_COLUMNS, \
    TRACE_COLUMNS
from energybench.results import ResultsStore, read_runs, read_samples, runs_frame
from energybench.testing.synthetic_results import GENERATOR, generate_results, small_spec

FAST = dict(figures=False, n_boot=500)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rep") / "results"
    generate_results(root, small_spec(seed=1, n_failed=1), layout="parts")
    return root


@pytest.fixture(scope="module")
def built(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep-out")
    return build_report([results], out, export=("csv",), **FAST)


def _results_rows(html: str) -> int:
    table = html.split('id="results"', 1)[1].split("</table>", 1)[0]
    return len(re.findall(r"<tr", table)) - 1  # minus the header row


def test_outputs_written(built, results):
    files = built.files
    assert set(files) == {"md", "html", "json"}
    md = files["md"].read_text()
    for section in ("## Summary", "## Recommendations", "## Pareto front", "## Race-to-sleep", "## Decode roofline",
                    "## Results per configuration", "## Power per domain", "## Provenance"):
        assert section in md
    html = files["html"].read_text()
    assert _results_rows(html) == 8  # 2 threads x 2 GPU layers x 2 batch sizes
    assert "table.sortable" in html and "<script>" in html
    # self-contained: nothing loaded from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<link" not in html
    # provenance: model sha256, meters, domains with their sources, host, sampling period, build
    runs = read_runs(results)
    assert runs["model_sha256"][0] in md and runs["model_sha256"][0] in html
    for text in ("intel-rapl:0/energy_uj", "nvmlDeviceGetTotalEnergyConsumption", "synthetic-desktop",
                 "sampler.period_s", "llama.cpp build.system_info"):
        assert text in md
    summary = json.loads(files["json"].read_text())
    assert {r["objective"] for r in summary["recommendations"]} == set(OBJECTIVES)
    assert any("synthetic data" in w for w in summary["warnings"])  # generated data says so
    assert built.n_runs == runs.height


def test_recommendation_is_the_true_minimum(built, results):
    runs = read_runs(results).filter((pl.col("status") == "ok") & ~pl.col("is_warmup"))
    med = (runs.with_columns(jpt=pl.col("energy_j") / pl.col("n_gen_tokens"),
                             edp=pl.col("energy_j") * pl.col("window_s"))
           .group_by("point_id").agg(pl.col("jpt").median(), pl.col("edp").median(), pl.col("window_s").median()))
    recs = {r.objective: r for r in built.recommendations}
    assert recs["energy"].best.point_id == med.sort("jpt")["point_id"][0]
    assert recs["energy"].best.value == pytest.approx(med["jpt"].min())
    assert recs["edp"].best.point_id == med.sort("edp")["point_id"][0]
    assert recs["latency"].best.value == pytest.approx(med["window_s"].min())
    r = recs["energy"]
    assert r.best.ci_lo <= r.best.value <= r.best.ci_hi
    assert r.runner_up is not None and r.runner_up.value >= r.best.value
    assert set(r.best.config) == {"n_threads", "n_gpu_layers", "n_batch"}  # ubatch/mode follow these


def test_failed_run_and_race_window(built):
    a = built.analysis
    failed = a.cfg.filter(pl.col("n_failed") > 0)
    assert failed.height == 1 and failed["n_reps"][0] == 2  # 3 repetitions, one crashed
    assert any(w.startswith("failed:") for w in failed["warnings"][0])
    (wl,) = a.windows
    slowest = a.cfg["e2e_s"].max()
    assert a.windows[wl] == pytest.approx(slowest)  # T = slowest configuration's median time
    # E(T) per configuration = E + P_idle (T - t), medians of per-run values
    row = a.cfg.sort("e2e_s").row(0, named=True)
    runs = a.valid.filter(pl.col("point_id") == row["point_id"])
    expect = (runs["energy_j"] + runs["idle_power_w"] * (slowest - runs["e2e_s"])).median()
    assert row["race_energy_j"] == pytest.approx(expect)


def test_window_option_and_too_short_window(results, tmp_path):
    s = build_report([results], tmp_path / "a", window_s=1000.0, **FAST)
    assert set(s.analysis.windows.values()) == {1000.0}
    assert s.analysis.cfg["race_energy_j"].min() > 1000.0 * 20  # >= idle power x T
    s2 = build_report([results], tmp_path / "b", window_s=0.5, **FAST)
    assert any("--window" in w and "shorter" in w for w in s2.warnings)
    from energybench.errors import UsageError

    with pytest.raises(UsageError, match="--window"):
        build_report([results], tmp_path / "c", window_s=-1, **FAST)


def test_csv_exports(built, results):
    """The study's files in its layout (measured runs only, one power row per latency row) and ours."""
    tables = built.out_dir / "tables"
    with open(tables / "latency_results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == LATENCY_RESULTS_COLUMNS
    runs = read_runs(results)
    measured = runs.filter((pl.col("status") == "ok") & ~pl.col("is_warmup"))
    assert len(rows) == measured.height < runs.height  # no warm-up, no failed run
    assert all(float(r["latency_ms"]) > 0 and int(r["tokens_generated"]) == 64 and float(r["energy_joules"]) > 0
               for r in rows)
    assert {r["prompt_id"] for r in rows} == {"sd-01"}
    assert {r["prompt_template"] for r in rows} == {"short_dialogue"}  # the suite, as the study wrote it
    assert {int(r["prompt_length_chars"]) for r in rows} == {len(_sd01())}
    assert {r["backend"] for r in rows} == {"cpu", "gpu"}
    # configuration ids: base threads 1, 0 layers, batch 128 (the first values of the stored grid)
    # (one setting away: the study's form; several: every one that differs, dot-separated)
    assert {r["run_id"] for r in rows} == {"cpu-t1", "cpu-t4", "cpu-b512", "gpu-l22", "cpu.t4.b512", "gpu.t4.l22",
                                           "gpu.l22.b512", "gpu.t4.l22.b512"}
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    assert rows[0]["timestamp"].startswith("2025-01-06T") and len(rows[0]["timestamp"]) == 23  # naive, ms
    with open(tables / "power_logs.csv", newline="") as f:
        logs = list(csv.DictReader(f))
    assert tuple(logs[0]) == POWER_LOGS_COLUMNS and len(logs) == len(rows)
    assert [(x["timestamp"], x["backend"], x["energy_joules"]) for x in logs] == \
        [(r["timestamp"], r["backend"], r["energy_joules"]) for r in rows]
    # per-run traces: every measured run has a CPU trace, the runs that offload a GPU trace too
    cpu, gpu = sorted(tables.glob("raw_cpu_power_*.csv")), sorted(tables.glob("raw_gpu_power_*.csv"))
    assert len(cpu) == len(rows) and len(gpu) == len(rows)  # synthetic: a GPU domain in every run
    trace = pl.read_csv(gpu[0])
    assert tuple(trace.columns) == TRACE_COLUMNS and trace.height > 2 and (trace["power_w"] > 0).all()
    samples_csv = pl.read_csv(tables / "power_samples.csv")
    assert tuple(samples_csv.columns) == POWER_SAMPLES_COLUMNS
    samples = read_samples(results)
    n_series = samples.select(["run_id", "meter", "domain"]).unique().height
    assert samples_csv.height == samples.height - n_series  # counters: one power value per interval
    assert (samples_csv["power_w"] > 0).all()
    assert samples_csv["timestamp"].str.starts_with("2025-01-06T").all()  # wall clock via clock_offset_ns
    for name in ("runs.csv", "configurations.csv", "domains.csv", "domain_runs.csv"):
        assert pl.read_csv(tables / name, infer_schema_length=0).height > 0


def _sd01() -> str:
    from energybench.prompts import get_prompt

    return get_prompt("short_dialogue", "sd-01").text


def test_in_progress_sweep_parts_only(tmp_path):
    root = tmp_path / "running"
    generate_results(root, small_spec(max_runs=11, n_failed=0), layout="parts")
    assert not (root / "runs.parquet").exists()
    s = build_report([root], tmp_path / "out", **FAST)
    assert s.n_runs == 11
    assert any("in progress or interrupted" in w for w in s.warnings)
    assert "## Results per configuration" in s.files["md"].read_text()


def test_empty_directory_metadata_only(tmp_path):
    root = tmp_path / "empty"
    ResultsStore(root).create({"kind": "sweep"})
    s = build_report([root], tmp_path / "out", **FAST)
    assert s.n_runs == 0 and s.recommendations == []
    assert any("no runs yet" in w for w in s.warnings)
    assert "No runs yet" in s.files["md"].read_text()


def _plain_run(i: int, **kw) -> dict:
    row = dict(run_id=f"r{i}", sweep_id="s", point_id=f"p{i % 2}", point_index=i % 2, rep_index=i // 2,
               is_warmup=False, status="ok", model="m.gguf", model_name="m", n_threads=1 + i % 2, n_gpu_layers=0,
               n_batch=512, n_prompt=16, n_gen=8, n_prompt_tokens=16, n_gen_tokens=8, window_s=0.5 + 0.01 * i,
               prefill_s=0.1, decode_s=0.4 + 0.01 * i, t_start_ns=10**9 * i, t_prefill_end_ns=10**9 * i + 10**8,
               t_end_ns=10**9 * i + 5 * 10**8, energy_source="none")
    row.update(kw)
    return row


def _store_runs(root: Path, rows: list[dict], meta: dict | None = None) -> None:
    store = ResultsStore(root)
    store.create(meta or {"kind": "sweep"})
    for row in rows:
        store.add_run(row)


def test_no_energy_at_all_latency_only(tmp_path):
    root = tmp_path / "noenergy"
    _store_runs(root, [_plain_run(i) for i in range(6)])
    s = build_report([root], tmp_path / "out", **FAST)
    assert any("no energy measured" in w for w in s.warnings)
    assert {r.objective for r in s.recommendations} == {"latency"}
    md = s.files["md"].read_text()
    assert "J/token" not in md.split("## Results per configuration")[1].split("\n")[2]  # no empty energy column


def test_all_runs_failed(tmp_path):
    root = tmp_path / "failed"
    _store_runs(root, [_plain_run(i, status="failed", error="worker was killed by SIGSEGV", window_s=None,
                                  t_end_ns=None, t_prefill_end_ns=None) for i in range(3)])
    s = build_report([root], tmp_path / "out", **FAST)
    assert s.recommendations == []
    assert any("3 failed run" in w for w in s.warnings)
    assert any("no finished repetition" in w for w in s.warnings)
    assert s.analysis.cfg["n_failed"].sum() == 3


def test_single_run_missing_domains_no_idle(tmp_path):
    root = tmp_path / "single"
    _store_runs(root, [_plain_run(0, energy_source="measured", energy_j=5.0, energy_net_j=None, domains=None,
                                  idle_power_w=None)])
    s = build_report([root], tmp_path / "out", **FAST)
    cfg = s.analysis.cfg.row(0, named=True)
    assert cfg["j_per_output_token"] == pytest.approx(5.0 / 8) and cfg["j_per_output_token_lo"] is None
    assert "single-run:" in cfg["warnings"]
    assert any("no idle baseline" in w for w in s.warnings)
    assert cfg["race_energy_j"] is None
    assert s.analysis.domains.height == 0


def test_estimate_only_and_missing_bandwidth(tmp_path):
    root = tmp_path / "est"
    generate_results(root, small_spec(estimate=True, gpu=False, memory_bandwidth_gbs=None, n_failed=0))
    s = build_report([root], tmp_path / "out", **FAST)
    assert any("*estimate*" in w for w in s.warnings)
    assert any("memory_bandwidth_gbs" in w for w in s.warnings)
    assert s.analysis.cfg["roofline_frac"].null_count() == s.analysis.cfg.height
    assert s.analysis.cfg["any_estimate"].all()
    s2 = build_report([root], tmp_path / "out2", measure_bandwidth=True, **FAST)
    bw, src = s2.analysis.bandwidth[root.name]
    assert bw > 0 and "measured now" in src
    assert s2.analysis.cfg["roofline_frac"].drop_nulls().len() == s2.analysis.cfg.height  # all CPU-only
    assert "## Decode roofline" in s2.files["md"].read_text()


def test_compare_two_sets(tmp_path):
    a, b = tmp_path / "machine-a", tmp_path / "machine-b"
    generate_results(a, small_spec(seed=2, n_failed=0))
    generate_results(b, small_spec(seed=3, n_failed=0, noisy_points=0))
    s = build_report([a, b], tmp_path / "out", export=("csv",), **FAST)
    assert [x["label"] for x in s.summary["sets"]] == ["machine-a", "machine-b"]
    md = s.files["md"].read_text()
    assert "## Comparison of result sets" in md and "J/token machine-b / machine-a" in md
    assert {r.set for r in s.recommendations} == {"machine-a", "machine-b"}
    assert (s.out_dir / "tables" / "machine-a" / "latency_results.csv").exists()
    assert (s.out_dir / "tables" / "machine-b" / "power_logs.csv").exists()
    # the same grid on both: 8 configurations compared side by side
    table = md.split("## Comparison of result sets")[1].split("\n\n")[1]
    assert len(table.strip().splitlines()) == 2 + 8


def test_cli_json_and_errors(results, tmp_path, capsys):
    rc = main(["report", str(results), "-o", str(tmp_path / "o"), "--format", "json", "--no-figures",
               "--bootstrap", "300"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    assert doc["files"]["html"].endswith("report.html") and doc["recommendations"]
    assert doc["config_warning_counts"]["failed"] == 1
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(results), "-o", str(tmp_path / "o"), "--window", "-3", "--no-figures"]) == 2
    assert main(["report", str(results), "-o", str(tmp_path / "o"), "--export", "xlsx", "--no-figures"]) == 2
    assert "unknown export" in capsys.readouterr().err
    rc = main(["report", str(results), "-o", str(tmp_path / "t"), "--no-figures", "--bootstrap", "300"])
    text = capsys.readouterr().out
    assert rc == 0 and "threads=" in text and "report.html" in text and "median [95% CI]" in text


def _engine_metadata_keys(monkeypatch) -> set[str]:
    """The top-level keys of the metadata the engine writes (no machine probed: stand-ins)."""
    from types import SimpleNamespace

    from energybench.backends.base import BackendInfo
    from energybench.engine import results_dir

    monkeypatch.setattr(results_dir, "memory_bandwidth_gbs", lambda: None)
    monkeypatch.setattr(results_dir, "_gpus", lambda: [])
    plan = SimpleNamespace(kind="sweep", config={}, config_hash="h", gpu_protocol=None, sweep_id="", shard=None)
    selection = SimpleNamespace(meters=[], domains=[], warnings=[])
    return set(results_dir.metadata(plan, backend_info=BackendInfo(name="llama.cpp", version="0"), selection=selection,
                                    models={}, sampler=SimpleNamespace(period_s=0.05, nice=19), amx={}))


def test_generator_writes_what_a_sweep_writes(results, monkeypatch):
    runs = read_runs(results)
    meta = json.loads((results / "metadata.json").read_text())
    assert meta["generator"] == GENERATOR
    assert set(meta) - {"generator", "schema_version"} == _engine_metadata_keys(monkeypatch)
    assert meta["status"] == "running"  # parts only: a sweep in progress
    assert runs["is_warmup"].sum() == 8 and (runs["status"] == "failed").sum() == 1
    ok = runs.filter(pl.col("status") == "ok")
    # energy totals = top-level domains only (the RAPL core domain is inside the package)
    for row in ok.head(5).iter_rows(named=True):
        top = sum(d["energy_j"] for d in row["domains"] if d["parent"] is None)
        assert row["energy_j"] == pytest.approx(top)
        assert np.isclose(row["energy_net_j"], row["energy_j"] - row["idle_power_w"] * row["window_s"])
    assert runs_frame(ok.head(1).to_dicts()).height == 1  # rows conform to RUNS_SCHEMA
    # the stored metric columns are the metrics vocabulary's, computed from the stored columns
    from energybench.engine.session import STORED_METRICS
    from energybench.metrics import row_metrics

    row = ok.row(0, named=True)
    assert row_metrics(row, STORED_METRICS) == pytest.approx({m: row[m] for m in STORED_METRICS})


def test_generator_consolidated_is_a_finished_sweep(tmp_path):
    from energybench.results import read_metadata

    generate_results(tmp_path / "r", small_spec(n_failed=1), layout="consolidated")
    meta = read_metadata(tmp_path / "r")
    assert meta["status"] == "partial" and len(meta["failed_points"]) == 1 and meta["n_runs_failed"] == 1
    assert not (tmp_path / "r" / "parts").exists() or not any((tmp_path / "r" / "parts").iterdir())


@pytest.mark.slow
def test_report_of_a_real_llama_cpp_sweep(tmp_path, cli, tiny_model):
    """A real sweep (llama.cpp worker, this machine's meters) reported through the CLI."""
    import yaml

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "r", "models": ["synthetic:tiny"],
        "grid": {"threads": [1, 2], "batch": [32], "prompt": {"n_prompt": 24}, "n_gen": 8},
        "warmup": 1, "repetitions": {"fixed": 3}, "cooldown": {"fixed_s": 0}, "idle_baseline_s": 0.3,
        "sample_period_ms": 20}))
    out = tmp_path / "out"
    r = cli("sweep", "--config", str(cfg), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    r = cli("report", str(out), "-o", str(tmp_path / "rep"), "--format", "json", "--no-figures", "--export", "csv")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["varied"] == ["n_threads"] and doc["sets"][0]["ok"] == 6 and doc["sets"][0]["warmups"] == 2
    recs = {x["objective"]: x for x in doc["recommendations"]}
    assert recs["latency"]["best"]["config"]["n_threads"] in (1, 2) and recs["latency"]["best"]["value"] > 0
    # this machine has no RAPL/NVML: energy is an estimate or absent, and the report says which
    assert any("estimate" in w or "no energy" in w for w in doc["warnings"])
    runs = read_runs(out)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert runs["model_sha256"][0] in md and "synthetic:24" in md
    with open(tmp_path / "rep" / "tables" / "latency_results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["tokens_generated"] for r in rows} == {"8"}  # measured runs only
    assert {r["run_id"] for r in rows} == {"cpu-t1", "cpu-t2"}


def test_domain_table_has_a_system_total_per_configuration_and_phase(tmp_path):
    """CPU + DRAM + GPU per phase, next to the total the run attributes to itself (issue: CUDA)."""
    import re

    from energybench.report import build_report
    from energybench.testing.synthetic_results import generate_results, small_spec

    generate_results(tmp_path / "r", small_spec())
    build_report([tmp_path / "r"], tmp_path / "out", formats=("md",), figures=False)
    md = (tmp_path / "out" / "report.md").read_text()
    section = md.split("## Power per domain", 1)[1].split("\n## ", 1)[0]
    rows = [r.split("|")[1:-1] for r in section.splitlines() if r.startswith("| ") and "---" not in r][1:]
    by_cfg: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        by_cfg.setdefault(r[0].strip(), {})[r[1].strip()] = [c.strip() for c in r]
    assert by_cfg and all("system total" in doms for doms in by_cfg.values())
    num = lambda s: float(re.sub(r"[^0-9.e+-]", "", s))  # noqa: E731
    for doms in by_cfg.values():
        top = [v for k, v in doms.items() if k != "system total" and not v[3]]  # no parent
        total = doms["system total"]
        # energy J, prefill J, decode J of the total = sum of the top-level domains (medians: 5 %)
        for col in (7, 8, 9):
            assert num(total[col]) == pytest.approx(sum(num(v[col]) for v in top), rel=0.05)
