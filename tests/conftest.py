"""Shared fixtures.

Every test session gets its own energybench home (models cache, manifest) in a temp dir, exported
through ``ENERGYBENCH_HOME`` so subprocesses (the llama.cpp worker, CLI runs) see it too. The tiny
shape twin is synthesized once per session through the real ``synthetic:tiny`` path.

Native inference never runs in the pytest process: it happens in energybench's worker subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def eb_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private ENERGYBENCH_HOME for the whole session (models are cached there)."""
    home = tmp_path_factory.mktemp("eb-home")
    old = os.environ.get("ENERGYBENCH_HOME")
    os.environ["ENERGYBENCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("ENERGYBENCH_HOME", None)
    else:
        os.environ["ENERGYBENCH_HOME"] = old


@pytest.fixture(scope="session")
def tiny_model(eb_home: Path):
    """The `synthetic:tiny` shape twin (Q4_K_M), synthesized once per session: a ResolvedModel."""
    from energybench.models import resolve_model

    return resolve_model("synthetic:tiny")


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model) -> Path:
    return Path(tiny_model.path)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `energybench` CLI in a subprocess (python -m energybench)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    full_env.setdefault("COLUMNS", "200")
    return subprocess.run([sys.executable, "-m", "energybench", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def fake_nvml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``libnvidia-ml.so.1`` built from ``tests/fakes/nvml_fake.c``: point
    ``LD_LIBRARY_PATH`` at it and the real pynvml (in a subprocess) loads the stand-in."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the NVML stand-in")
    out = tmp_path_factory.mktemp("fake_nvml")
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(out / "libnvidia-ml.so.1"),
                    str(REPO / "tests" / "fakes" / "nvml_fake.c")], check=True)
    return out
