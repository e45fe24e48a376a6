"""End to end: a real sweep on the tiny twin, logs for its wall-clock range written by stand-ins of
PowerLog, nvidia-smi and a wall meter (``fakes/logtools.py``, run as the small script a user would
run beside the sweep), ``energybench attach``, then ``energybench report``: the attached domains are
in every run, per phase, in the report's domain table and in its JSON summary.

The stand-ins log constant powers (CPU package 20 W, IA 12 W, DRAM 3 W, GPU 55 W, wall 80 W) from
2 s before the idle baseline to 2 s after the last run, so each run's attached energy is known:
power x its window, per phase.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from energybench.results import read_metadata, read_runs

pytestmark = pytest.mark.slow

FAKES = Path(__file__).parent / "fakes"
SWEEP = ["-m", "synthetic:tiny", "-p", "16", "-n", "4", "-r", "2", "--idle", "0.3", "--cooldown", "0",
         "--meter", "estimate", "--cpu-tdp-w", "65", "-q"]
WATTS = {("powerlog", "cpu-package-0"): 20.0, ("powerlog", "cpu-core-0"): 12.0, ("powerlog", "dram-0"): 3.0,
         ("nvidia-smi", "gpu-0"): 55.0, ("wall-csv", "wall"): 80.0}


@pytest.fixture(scope="module")
def attached(tmp_path_factory, tiny_model):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("attach-e2e")
    res, logs = root / "sweep", root / "logs"
    r = run_cli("sweep", *SWEEP, "-o", str(res))
    assert r.returncode == 0, r.stderr
    before = read_runs(res)
    subprocess.run([sys.executable, str(FAKES / "logtools.py"), str(res), str(logs)], check=True, capture_output=True)
    r = run_cli("attach", str(res), str(logs / "PowerLog.csv"), str(logs / "gpu.csv"), str(logs / "wall.csv"), "--json")
    assert r.returncode == 0, r.stderr
    return res, before, json.loads(r.stdout)


def test_every_run_gets_the_attached_domains_per_phase(attached):
    res, before, out = attached
    runs = read_runs(res).filter(pl.col("status") == "ok")
    assert out["runs_updated"] == out["runs_ok"] == runs.height >= 3
    assert [x["format"] for x in out["logs"]] == ["powerlog", "nvidia-smi", "csv"]
    assert out["logs"][0]["date_source"] == "inferred"
    for row in runs.iter_rows(named=True):
        window, prefill = row["window_s"], row["prefill_s"]
        per = {(d["meter"], d["domain"]): d for d in row["domains"]}
        for key, watts in WATTS.items():
            assert per[key]["energy_j"] == pytest.approx(watts * window, rel=0.005), key
            assert per[key]["prefill_energy_j"] == pytest.approx(watts * prefill, rel=0.005), key
            assert per[key]["decode_energy_j"] == pytest.approx(watts * (window - prefill), rel=0.005), key
            assert per[key]["idle_power_w"] == pytest.approx(watts, rel=0.005), key  # from idle-0's window
        assert row["meters"] == "wall-csv" and row["energy_source"] == "measured"
        assert row["energy_j"] == pytest.approx(80.0 * window, rel=0.005)
        live = before.filter(pl.col("run_id") == row["run_id"]).row(0, named=True)
        (est,) = [d for d in live["domains"] if d["meter"] == "estimate"]
        assert per[("estimate", "cpu-package-0")] == pytest.approx(est)  # the live domain as measured
    meta = read_metadata(res)
    assert {m["name"] for m in meta["meters"]} == {"estimate", "powerlog", "nvidia-smi", "wall-csv"}
    assert len(meta["attached"]) == 3


def test_report_shows_the_attached_domains(attached, cli):
    res, _, _ = attached
    r = cli("report", str(res), "--format", "json", "--no-figures")
    assert r.returncode == 0, r.stderr
    doms = {(d["meter"], d["domain"]): d for d in json.loads(r.stdout)["domains"]}
    for key, watts in WATTS.items():
        assert doms[key]["avg_power_w"] == pytest.approx(watts, rel=0.005), key
        assert doms[key]["prefill_energy_j"] > 0 and doms[key]["decode_energy_j"] > 0, key
    assert ("estimate", "cpu-package-0") in doms  # two meters name the CPU alike: both reported
    md = (res / "report" / "report.md").read_text()
    assert "| wall | wall-csv |" in md and "| gpu-0 | nvidia-smi |" in md
    total = next(line for line in md.splitlines() if "| system total | wall-csv |" in line)
    assert "80.0" in total
