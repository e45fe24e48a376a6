"""The original study's files and scripts on our export of a real sweep.

The export test runs everywhere: a real llama.cpp sweep of two grids on the tiny model, exported
with ``report --export csv``, read back in the study's layout (its telemetry.py writes those
columns in that order; its readers pair rows by order and by timestamp).

The study's own scripts run when a local copy of its repository is given::

    ENERGYBENCH_STUDY_REPO=~/src/Energy-Aware-LLM-Inference-on-Consumer-Hardware \\
    ENERGYBENCH_STUDY_PYTHON=~/study-venv/bin/python \\
        uv run pytest tests/test_study_compat.py

``ENERGYBENCH_STUDY_PYTHON`` is an interpreter with the study's dependencies (pandas, matplotlib,
seaborn, flask; default: this one). The scripts run unchanged, in a scratch copy of the repository
whose ``data/`` holds our export instead of the study's files: ``src/analysis/generate_report.py``,
``get_stats.py`` and ``src/demo_server.py`` (served by ``flask run`` on 127.0.0.1; ``/history`` and
``/latest_trace``). Each must see every measured run with its energy.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from energybench.report.export import LATENCY_RESULTS_COLUMNS, POWER_LOGS_COLUMNS, TRACE_COLUMNS

pytestmark = pytest.mark.slow

#: two grids over a shared one: threads 1/2 (cpu-t1, cpu-t2) and batch 16/32 at 1 thread
#: (cpu-b16; batch 32 at 1 thread is cpu-t1 again, measured once)
CONFIG = {
    "name": "study-compat", "models": ["synthetic:tiny"],
    "grid": {"threads": 1, "batch": 32, "prompt": {"suites": ["short_dialogue"], "prompt_ids": ["sd-01", "sd-02"]},
             "n_gen": 8},
    "grids": [{"label": "cpu", "threads": [1, 2]}, {"label": "cpu", "batch": [16, 32]}],
    "warmup": 1, "repetitions": {"fixed": 2}, "cooldown": {"fixed_s": 0}, "idle_baseline_s": 0.3,
    "sample_period_ms": 20, "min_window_s": 0.2, "cpu_tdp_w": 65,
}
N_MEASURED = 3 * 2 * 2  # configurations x prompts x repetitions


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Path:
    """tables/ of `report --export csv` over a real sweep (the estimate meter where no RAPL is)."""
    tmp = tmp_path_factory.mktemp("study")
    cfg = tmp / "study.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    r = run_cli("sweep", "--config", str(cfg), "--out", str(tmp / "res"), "--json")
    assert r.returncode == 0, r.stderr
    r = run_cli("report", str(tmp / "res"), "-o", str(tmp / "rep"), "--no-figures", "--export", "csv",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    return tmp / "rep" / "tables"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_export_is_the_study_layout(exported: Path) -> None:
    lat, pw = _rows(exported / "latency_results.csv"), _rows(exported / "power_logs.csv")
    assert tuple(lat[0]) == LATENCY_RESULTS_COLUMNS and tuple(pw[0]) == POWER_LOGS_COLUMNS
    assert len(lat) == len(pw) == N_MEASURED  # measured runs only: no warm-up, no failure
    assert {r["run_id"] for r in lat} == {"cpu-t1", "cpu-t2", "cpu-b16"}
    assert {r["backend"] for r in lat} == {"cpu"} and {r["prompt_template"] for r in lat} == {"short_dialogue"}
    stamps = [r["timestamp"] for r in lat]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", t) for t in stamps)  # naive, ms
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for a, b in zip(lat, pw, strict=True):  # one power row per latency row, same order and time
        assert (a["timestamp"], a["backend"], a["energy_joules"]) == (b["timestamp"], b["backend"], b["energy_joules"])
        assert b["notes"] == f"prompt={a['prompt_id']}"
        assert float(a["energy_joules"]) > 0 and float(a["latency_ms"]) > 0 and a["tokens_generated"] == "8"
    traces = sorted(exported.glob("raw_cpu_power_*.csv"))
    assert len(traces) == N_MEASURED and not list(exported.glob("raw_gpu_power_*.csv"))
    assert {m.group(1) for r in lat if (m := re.search(r"trace=(\S+?)(;|$)", r["notes"]))} == \
        {p.stem.removeprefix("raw_cpu_power_") for p in traces}
    trace = _rows(traces[0])
    assert tuple(trace[0]) == TRACE_COLUMNS and len(trace) >= 3 and all(float(t["power_w"]) > 0 for t in trace)
    assert (exported / "power_samples.csv").exists() and (exported / "runs.csv").exists()


# ----------------------------------------------------------------------------- the study's own scripts


@pytest.fixture(scope="module")
def study(exported: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A scratch copy of the study's repository whose data/ holds our export; its interpreter."""
    repo = os.environ.get("ENERGYBENCH_STUDY_REPO")
    if not repo:
        pytest.skip("ENERGYBENCH_STUDY_REPO is not set (a local copy of the study's repository; see this module)")
    python = os.environ.get("ENERGYBENCH_STUDY_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import pandas, matplotlib, seaborn, flask"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} lacks the study's dependencies (pandas, matplotlib, seaborn, flask): "
                    "set ENERGYBENCH_STUDY_PYTHON")
    scratch = tmp_path_factory.mktemp("study-scratch") / "repo"
    shutil.copytree(Path(repo).expanduser(), scratch, ignore=shutil.ignore_patterns(".git"))
    for old in (scratch / "data").glob("*.csv"):
        old.unlink()
    for p in [exported / "latency_results.csv", exported / "power_logs.csv", *exported.glob("raw_*_power_*.csv")]:
        shutil.copy2(p, scratch / "data" / p.name)
    return scratch, python


def _means(exported: Path, key: str) -> dict[str, tuple[float, float]]:
    """Our mean latency and energy per ``key`` value (what the study's scripts must print)."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in _rows(exported / "latency_results.csv"):
        groups.setdefault(r[key], []).append((float(r["latency_ms"]), float(r["energy_joules"])))
    return {k: (sum(v[0] for v in vs) / len(vs), sum(v[1] for v in vs) / len(vs)) for k, vs in groups.items()}


def test_generate_report_reads_our_export(study: tuple[Path, str], exported: Path) -> None:
    scratch, python = study
    r = subprocess.run([python, "src/analysis/generate_report.py"], cwd=scratch, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Loaded {N_MEASURED} latency records and {N_MEASURED} power records." in r.stdout
    assert "mismatch" not in r.stdout and "Failed" not in r.stdout
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("cpu ") and "short_dialogue" in ln)
    lat_ms, energy_j = _means(exported, "backend")["cpu"]
    cells = [c.strip() for c in line.split("|")]
    assert float(cells[2]) == pytest.approx(lat_ms, abs=0.01) and float(cells[3]) == pytest.approx(energy_j, abs=0.01)
    for fig in ("energy_vs_latency", "metrics_comparison", "ablation_threads", "ablation_batch"):
        assert (scratch / "doc" / "figures" / f"{fig}.png").stat().st_size > 1000, fig


def test_get_stats_reads_our_export(study: tuple[Path, str], exported: Path) -> None:
    scratch, python = study
    r = subprocess.run([python, "get_stats.py"], cwd=scratch, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    per_suite, per_run = (json.loads(part) for part in (scratch / "stats_output.json").read_text().split("\n\n"))
    assert [(s["backend"], s["prompt_template"]) for s in per_suite] == [("cpu", "short_dialogue")]
    ours = _means(exported, "run_id")
    assert {s["run_id"] for s in per_run} == set(ours)
    for s in per_run:
        assert s["avg_energy_joules"] == pytest.approx(ours[s["run_id"]][1], rel=1e-9)
    assert [s["avg_edp"] for s in per_run] == sorted(s["avg_edp"] for s in per_run)  # its EDP ranking


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def test_demo_server_history_sees_every_run_with_its_energy(study: tuple[Path, str], exported: Path) -> None:
    scratch, python = study
    port = _free_port()
    proc = subprocess.Popen([python, "-m", "flask", "--app", "src/demo_server.py", "run", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"http://127.0.0.1:{port}/status", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the study's server did not start"
                time.sleep(0.3)
        runs = _get(f"http://127.0.0.1:{port}/history")["runs"]
        trace = _get(f"http://127.0.0.1:{port}/latest_trace?backend=cpu")["runs"][0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat = _rows(exported / "latency_results.csv")
    assert len(runs) == len(lat) and not any(r["run_id"].startswith("power_only_") for r in runs)
    for mine, theirs in zip(lat, runs, strict=True):
        assert theirs["run_id"] == mine["run_id"] and theirs["energy_joules"] == float(mine["energy_joules"]) > 0
    assert trace["power_trace"] and trace["energy_joules"] > 0
