"""The AMX check end to end: a CPU and a build that both claim AMX (tests/fakes/pretend_amx.py), the
real llama.cpp worker, and a real crash of it whenever weight repacking is on (the worker's crash hook)
standing for the AMX kernels' SIGSEGV/SIGILL on quantized models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from energybench.results import read_metadata, read_runs

pytestmark = pytest.mark.slow

PRETEND = Path(__file__).resolve().parent / "fakes" / "pretend_amx.py"
FLAGS = "fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8"


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                 f"model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: {flags}\n\n")
    return p


def measure(tmp_path: Path, name: str, flags: str, crash: str | None, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENERGYBENCH_TEST_CRASH"}
    env.update(PRETEND_CPUINFO=str(cpuinfo(tmp_path, flags)), ENERGYBENCH_HOME=str(home), COLUMNS="200")
    if crash:
        env["ENERGYBENCH_TEST_CRASH"] = crash
    args = ["measure", "-m", "synthetic:tiny", "-t", "1", "-p", "8", "-n", "4", "-r", "2", "--warmup", "0",
            "--idle", "0", "--meter", "none", "--json", "-o", str(tmp_path / name)]
    return subprocess.run([sys.executable, str(PRETEND), *args], capture_output=True, text=True, env=env, timeout=600)


def test_broken_amx_turns_repacking_off_says_so_and_remembers(tmp_path, tiny_model, eb_home):
    home = eb_home  # the tiny twin is there already
    r = measure(tmp_path, "a", FLAGS, "segv@repack=True", home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_ok"] == 2 and json.loads(r.stdout)["n_failed"] == 0
    assert read_runs(tmp_path / "a")["repack"].to_list() == [False, False]
    amx = read_metadata(tmp_path / "a")["amx"]
    assert amx["checked"] and not amx["repack_ok"] and not amx["cached"] and "SIGSEGV" in amx["reason"]
    assert any("switched off" in w for w in json.loads(r.stdout)["warnings"])
    cached = list((home / "amx").glob("*.json"))
    assert len(cached) == 1
    again = measure(tmp_path, "b", FLAGS, "segv@repack=True", home)  # the verdict is remembered
    assert again.returncode == 0, again.stderr
    assert read_metadata(tmp_path / "b")["amx"]["cached"] is True
    assert read_runs(tmp_path / "b")["repack"].to_list() == [False, False]
    cached[0].unlink()


def test_working_amx_keeps_repacking(tmp_path, tiny_model, eb_home):
    r = measure(tmp_path, "a", FLAGS, None, eb_home)
    assert r.returncode == 0, r.stderr
    assert read_runs(tmp_path / "a")["repack"].to_list() == [True, True]
    amx = read_metadata(tmp_path / "a")["amx"]
    assert amx["checked"] and amx["repack_ok"]
    for f in (eb_home / "amx").glob("*.json"):
        f.unlink()


def test_no_amx_on_the_cpu_means_no_check(tmp_path, tiny_model, eb_home):
    # even with the crash hook set for repacked runs, no probe runs: the measurement itself crashes
    r = measure(tmp_path, "a", "fpu sse2 avx2 avx512f", "segv@repack=True", eb_home)
    assert r.returncode == 1
    amx = read_metadata(tmp_path / "a")["amx"]
    assert amx == {"checked": False, "repack_ok": True, "reason": "no AMX on this CPU or in this llama.cpp build",
                   "cached": False}
    assert not list((eb_home / "amx").glob("*.json"))
