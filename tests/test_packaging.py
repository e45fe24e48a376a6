"""The wheel is complete: built with `uv build`, installed into a fresh venv, the CLI runs from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_wheel_installs_and_runs(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(["uv", "build", "--wheel", "-o", str(dist)], cwd=REPO, check=True, capture_output=True)
    wheel = next(dist.glob("energybench-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run(["uv", "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # the wheel alone; its dependencies come from this test environment (they are compiled here already)
    subprocess.run(["uv", "pip", "install", "--python", str(py), "--no-deps", str(wheel)], check=True,
                   capture_output=True)
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"], COLUMNS="200")
    exe = venv / ("Scripts/energybench.exe" if os.name == "nt" else "bin/energybench")
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "sweep" in r.stdout and "measure" in r.stdout
    # package data travels: the built-in example configs and the prompt suites
    r = subprocess.run([str(py), "-c", "import energybench, energybench.examples as e, energybench.prompts as p;"
                        "print(energybench.__file__); print(e.list_builtin()); print(p.list_suites())"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(venv) in r.stdout.splitlines()[0]  # imported from the wheel, not the checkout
    assert "quick" in r.stdout and "p1_baseline" in r.stdout and "short_dialogue" in r.stdout
    assert "seed_p1" in r.stdout and "seed_p2" in r.stdout  # the study's designs, built in
    r = subprocess.run([str(exe), "config", "validate", "quick"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
