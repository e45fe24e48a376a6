"""The sweep engine end to end: real CLI subprocesses, real llama.cpp worker, real Parquet files."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from energybench.results import read_metadata, read_runs, read_samples

pytestmark = pytest.mark.slow


def write_config(path: Path, **overrides) -> Path:
    cfg = {
        "name": "t",
        "models": ["synthetic:tiny"],
        "grid": {"threads": [1, 2], "batch": [32], "prompt": {"n_prompt": 24}, "n_gen": 8},
        "warmup": 1,
        "repetitions": {"fixed": 2},
        "cooldown": {"fixed_s": 0},
        "idle_baseline_s": 0.3,
        "order": "grouped",
        "sample_period_ms": 20,
        # the meter the tests assert on, whatever this machine has: the estimate with a given TDP
        "meters": ["estimate"],
        "cpu_tdp_w": 65,
    }
    cfg.update(overrides)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_sweep_runs_every_point_and_consolidates(tmp_path, cli, tiny_model):
    cfg = write_config(tmp_path / "s.yaml")
    out = tmp_path / "out"
    r = cli("sweep", "--config", str(cfg), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["status"] == "finished" and summary["n_points"] == 2
    assert summary["model_loads"] == summary["load_groups"] == 1  # threads are runtime-only
    assert (out / "runs.parquet").exists() and (out / "samples.parquet").exists()
    assert not list((out / "parts").glob("*.parquet"))  # consolidated
    runs = read_runs(out)
    assert runs.height == 6  # 2 points x (1 warm-up + 2 reps)
    assert runs["status"].to_list() == ["ok"] * 6
    assert runs.filter(pl.col("is_warmup")).height == 2
    assert sorted(runs["n_threads"].unique().to_list()) == [1, 2]
    assert (runs["n_gen_tokens"] == 8).all() and (runs["n_prompt_tokens"] == 24).all()
    assert runs["model_synthetic"].all() and runs["flag_synthetic_model"].all()
    assert runs["model_sha256"].str.len_chars().eq(64).all()
    meta = read_metadata(out)
    assert meta["status"] == "finished" and meta["config_hash"]
    assert meta["idle_baselines"] and meta["host"]["cpu_model"]
    assert meta["models"]["synthetic:tiny"]["synthetic"] is True
    samples = read_samples(out)
    assert set(samples["run_id"].unique().to_list()) >= set(runs["run_id"].to_list()) | {"idle-0"}


def test_segfaulting_point_is_recorded_and_the_rest_completes(tmp_path, cli, tiny_model):
    cfg = write_config(tmp_path / "s.yaml", max_failures=2)
    out = tmp_path / "out"
    r = cli("sweep", "--config", str(cfg), "--out", str(out), "--json",
            env={"ENERGYBENCH_TEST_CRASH": "segv@n_threads=2"})
    assert r.returncode == 3, r.stderr  # partial failure
    summary = json.loads(r.stdout)
    assert summary["status"] == "partial" and len(summary["skipped_points"]) == 1
    runs = read_runs(out)
    ok = runs.filter(pl.col("status") == "ok")
    bad = runs.filter(pl.col("status") == "failed")
    assert ok.height == 3 and (ok["n_threads"] == 1).all()
    assert bad.height == 2 and (bad["n_threads"] == 2).all()  # skipped after max_failures=2
    assert all("SIGSEGV" in e for e in bad["error"].to_list())
    assert all(t for t in bad["stderr_tail"].to_list())


def test_resume_with_changed_config_needs_force(tmp_path, cli, tiny_model):
    cfg = write_config(tmp_path / "s.yaml", grid={"threads": [1], "batch": [32], "prompt": {"n_prompt": 24}, "n_gen": 8})
    out = tmp_path / "out"
    assert cli("sweep", "--config", str(cfg), "--out", str(out), "-q").returncode == 0
    cfg2 = write_config(tmp_path / "s2.yaml", grid={"threads": [1, 2], "batch": [32], "prompt": {"n_prompt": 24}, "n_gen": 8})
    r = cli("sweep", "--config", str(cfg2), "--resume", str(out), "-q")
    assert r.returncode == 2 and "config changed" in r.stderr and "--force" in r.stderr
    r = cli("sweep", "--config", str(cfg2), "--resume", str(out), "--force", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_runs_this_session"] == 3  # only the new point ran
    assert read_runs(out).height == 6
    # a fresh sweep into a non-empty directory is refused, with the way out in the message
    r = cli("sweep", "--config", str(cfg), "--out", str(out), "-q")
    assert r.returncode == 2 and "--resume" in r.stderr


def test_sigkill_at_random_moments_loses_nothing(tmp_path, tiny_model):
    """kill -9 the sweep at >= 10 random moments, resuming each time: every run exactly once."""
    cfg = write_config(tmp_path / "s.yaml", grid={"threads": [1, 2], "batch": [16, 32], "prompt": {"n_prompt": 24},
                                                  "n_gen": 8},
                       repetitions={"fixed": 11}, cooldown={"fixed_s": 0.05}, min_window_s=0.3, idle_baseline_s=0.2)
    out = tmp_path / "out"
    rng = random.Random(1234)
    env = dict(os.environ, COLUMNS="120")
    kills = 0
    for attempt in range(40):
        args = [sys.executable, "-m", "energybench", "sweep", "-q", "--config", str(cfg)]
        args += ["--resume", str(out)] if (out / "metadata.json").exists() else ["--out", str(out)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        if kills < 10:
            time.sleep(rng.uniform(0.3, 2.5))  # ~1.5 s of start-up, then runs of >= 0.35 s each
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, no chance to clean up
                proc.wait()
                kills += 1
                continue
        stdout, stderr = proc.communicate(timeout=600)
        if proc.returncode == 0:
            break
        assert proc.returncode in (0, -9), stderr
    assert kills >= 10
    runs = read_runs(out)
    expected = 4 * (1 + 11)
    assert runs.height == expected
    assert runs["run_id"].n_unique() == expected
    assert (runs["status"] == "ok").all()
    per_point = runs.group_by("point_id").agg(pl.len().alias("n"), pl.col("is_warmup").sum().alias("w"))
    assert per_point.height == 4 and (per_point["n"] == 12).all() and (per_point["w"] == 1).all()
    # every file reads back; no temp files left as if they were results
    for p in out.rglob("*.parquet"):
        pl.read_parquet(p)
    assert not list(out.rglob(".*.tmp"))  # a killed writer's temp files are cleaned on resume
    assert read_metadata(out)["status"] == "finished"
    assert len(read_metadata(out)["resumes"]) >= 1
