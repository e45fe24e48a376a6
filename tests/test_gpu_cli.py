"""GPU paths through the real CLI, on a machine without a GPU.

* A CPU-only llama-cpp-python build: asking for GPU layers (``measure -ngl``, a sweep whose grid
  offloads, the shipped p2 ablation) is one line and exit code 2 before any work starts.
* NVML is sampled by default next to the CPU meters when an NVIDIA driver is present: the driver
  is the C stand-in ``tests/fakes/nvml_fake.c`` loaded by the real pynvml (LD_LIBRARY_PATH).
* End to end with "GPU offload": ``tests/fakes/pretend_gpu.py`` runs the real CLI with the real
  llama.cpp worker, faking only the build's claim that it can offload (llama.cpp keeps the layers
  on the CPU). With the NVML stand-in this exercises backend_mode, GPU domains, the GPU protocol
  (windows, trials, gaps, rise time) and its provenance. GPU energies here are the stand-in's
  analytic power: synthetic, not measurements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from energybench.gpu_protocol import gap_s
from energybench.results import read_metadata, read_runs, read_samples

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
PRETEND = TESTS / "fakes" / "pretend_gpu.py"


@pytest.fixture(scope="module")
def cpu_only_build() -> None:
    from energybench.gpu import supports_gpu_offload

    if supports_gpu_offload():
        pytest.skip("this llama-cpp-python build supports GPU offload: the CPU-only refusal cannot be shown")




def nvml_env(lib_dir: Path, **fake: str | int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_NVML_")}
    env["LD_LIBRARY_PATH"] = str(lib_dir)
    env["COLUMNS"] = "200"
    env.update({k: str(v) for k, v in fake.items()})
    return env


def pretend_cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The energybench CLI with the pretend-GPU backend installed (see tests/fakes/pretend_gpu.py)."""
    return subprocess.run([sys.executable, str(PRETEND), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def one_line(stderr: str) -> str:
    text = stderr.strip()
    assert text.count("\n") == 0, stderr
    assert "Traceback" not in text
    return text


# ----------------------------------------------------------------------------- CPU-only build


def test_measure_with_gpu_layers_on_a_cpu_only_build_is_one_line_exit_2(tmp_path, cli, cpu_only_build):
    out = tmp_path / "m"
    home = tmp_path / "home"
    r = cli("measure", "-m", "synthetic:tiny", "-ngl", "5", "--idle", "0", "-o", str(out),
            env={"ENERGYBENCH_HOME": str(home)})
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_line(r.stderr)
    assert "n_gpu_layers 5 asks for GPU offload" in line and "CPU-only build" in line and "docs/cuda.md" in line
    assert not out.exists()  # refused before any work: no results directory
    assert not list(home.rglob("*.gguf"))  # and no model synthesized


def test_sweep_whose_grid_offloads_on_a_cpu_only_build_is_one_line_exit_2(tmp_path, cli, cpu_only_build):
    out = tmp_path / "s"
    home = tmp_path / "home"
    r = cli("sweep", "-m", "synthetic:tiny", "-ngl", "0,1", "-n", "4", "-p", "8", "--idle", "0", "--cooldown", "0", "--out", str(out),
            "-q", env={"ENERGYBENCH_HOME": str(home)})
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_line(r.stderr)
    assert "n_gpu_layers 1 asks for GPU offload" in line and "CPU-only build" in line and "docs/cuda.md" in line
    assert not out.exists() and not list(home.rglob("*.gguf"))


def test_p2_ablation_as_written_fails_cleanly_before_work(tmp_path, cli, cpu_only_build):
    out = tmp_path / "p2"
    home = tmp_path / "home"
    r = cli("sweep", "--config", str(TESTS.parent / "examples" / "p2_ablation.yaml"), "--out", str(out), "-q",
            env={"ENERGYBENCH_HOME": str(home)})
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = one_line(r.stderr)
    assert "n_gpu_layers 11, 22, 23 asks for GPU offload" in line and "CPU-only build" in line
    # the 0.6 GB TinyLlama twin was not synthesized and nothing was measured
    assert not out.exists() and not list(home.rglob("*.gguf"))


# ----------------------------------------------------------------------------- NVML next to the CPU meters


def test_default_meter_selection_samples_nvml_next_to_the_cpu(fake_nvml_dir):
    code = ("import json; from energybench.meters import select_meters\n"
            "sel = select_meters(None, cpu_tdp_w=65)\n"
            "print(json.dumps({'names': sel.names, 'domains': [d.to_dict() for d in sel.domains]}))\n"
            "sel.close()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=nvml_env(fake_nvml_dir, FAKE_NVML_COUNT=2))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert "nvml" in data["names"]
    gpus = [d for d in data["domains"] if d["meter"] == "nvml"]
    assert [d["name"] for d in gpus] == ["gpu-0", "gpu-1"] and {d["component"] for d in gpus} == {"gpu"}
    # the CPU is still measured (RAPL where it works, else the labelled estimate, given a TDP), beside the GPUs
    assert any(d["component"] in ("cpu", "psys") and d["parent"] is None for d in data["domains"])


# ----------------------------------------------------------------------------- pretend GPU, end to end


def write_cfg(path: Path, **over) -> Path:
    cfg = {
        "name": "gpu-e2e",
        "models": ["synthetic:tiny"],  # 2 layers: 1 = partial, 3 = every layer + output
        "grid": {"threads": 1, "n_gpu_layers": [0, 1, 3], "batch": 32, "prompt": {"n_prompt": 16}, "n_gen": 4},
        "warmup": 1,
        "repetitions": {"fixed": 2},
        "cooldown": {"fixed_s": 0},
        "idle_baseline_s": 0.3,
        "order": "grouped",
        "sample_period_ms": 20,
        "gpu_protocol": {"min_window_s": 0.4, "min_trials": 3, "random_gap_s": [0.05, 0.15], "seed": 7},
        "cpu_tdp_w": 65,  # the CPU measured beside the GPU on any host: RAPL, or the estimate with this TDP
    }
    cfg.update(over)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_sweep_with_gpu_offload_end_to_end(tmp_path, fake_nvml_dir, tiny_model):
    cfg = write_cfg(tmp_path / "gpu.yaml")
    out = tmp_path / "out"
    # one GPU reporting instantaneous power (a power domain: the protocol's rise-time rule applies)
    env = nvml_env(fake_nvml_dir, FAKE_NVML_0_MODE="instant", FAKE_NVML_0_POWER_MW=300000)
    r = pretend_cli("sweep", "--config", str(cfg), "--out", str(out), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "finished"

    runs = read_runs(out)
    assert runs["status"].to_list() == ["ok"] * runs.height
    mode = dict(runs.select("n_gpu_layers", "backend_mode").unique().iter_rows())
    assert mode == {0: "cpu", 1: "cuda-partial", 3: "cuda-full"}
    measured = runs.filter(~pl.col("is_warmup")).group_by("n_gpu_layers").len()
    assert dict(measured.iter_rows()) == {0: 2, 1: 3, 3: 3}  # min_trials raised the offloading points only

    gpu_runs = runs.filter(pl.col("n_gpu_layers") != 0)
    cpu_runs = runs.filter(pl.col("n_gpu_layers") == 0)
    assert (gpu_runs["window_s"] >= 0.4).all()  # the protocol's minimum window (decoding repeated)
    assert (gpu_runs["n_repeats"] >= 1).all() and (cpu_runs["n_repeats"] == 1).all()
    assert (gpu_runs["n_gen_tokens"] == 4 * gpu_runs["n_repeats"]).all()

    # NVML was chosen automatically, next to the CPU meter; GPU energy = the stand-in's 300 W x window
    assert all("nvml" in m.split(",") for m in runs["meters"].to_list())
    for row in runs.iter_rows(named=True):
        doms = {d["domain"]: d for d in row["domains"]}
        gpu = doms["gpu-0"]
        assert gpu["meter"] == "nvml" and gpu["component"] == "gpu" and gpu["kind"] == "power"
        assert gpu["energy_j"] == pytest.approx(300.0 * row["window_s"], rel=1e-6)
        assert gpu["prefill_energy_j"] + gpu["decode_energy_j"] == pytest.approx(gpu["energy_j"], rel=1e-9)
        cpu = [d for d in row["domains"] if d["component"] in ("cpu", "psys") and d["parent"] is None]
        assert cpu, "the CPU is measured beside the GPU"
        assert row["energy_j"] == pytest.approx(gpu["energy_j"] + sum(d["energy_j"] for d in cpu), rel=1e-9)
        # the rise-time rule of the protocol touched the GPU power domain of offloading points only
        assert ("replaced by the steady-state" in gpu["source"]) == (row["n_gpu_layers"] != 0)

    samples = read_samples(out)
    gpu_samples = samples.filter(pl.col("meter") == "nvml")
    assert gpu_samples.height > 0 and (gpu_samples["value"] == 300.0).all()
    assert gpu_samples["temperature_c"].drop_nulls().len() > 0  # aux channels logged beside power

    meta = read_metadata(out)
    proto = meta["gpu_protocol"]
    assert (proto["min_window_s"], proto["min_trials"], proto["random_gap_s"], proto["seed"]) == (0.4, 3, [0.05, 0.15], 7)
    assert "Yang" in proto["reference"]
    assert set(proto["points"]) == set(gpu_runs["point_id"].unique().to_list())
    assert set(proto["gaps_s"]) == set(gpu_runs["run_id"].to_list())  # every offloading run paused, CPU runs not
    for run_id, g in proto["gaps_s"].items():
        assert 0.05 <= g <= 0.15 and g == pytest.approx(gap_s(7, run_id, (0.05, 0.15)), abs=0)
    assert gpu_runs["gap_before_s"].is_not_null().all()
    assert any("pretend" in d for d in meta["backend"]["devices"])
    assert [g["name"] for g in meta["gpus"]] == ["NVIDIA H100 80GB HBM3"]


def test_measure_with_gpu_offload_applies_the_protocol_unless_told_not_to(tmp_path, fake_nvml_dir, tiny_model):
    env = nvml_env(fake_nvml_dir)  # one counter GPU (an H100 by name)
    common = ["measure", "-m", "synthetic:tiny", "-t", "1", "-p", "8", "-n", "4", "-ngl", "1", "--warmup", "0",
              "-r", "1", "--idle", "0.2", "--json"]

    off = pretend_cli(*common, "--no-gpu-protocol", "-o", str(tmp_path / "off"), env=env)
    assert off.returncode == 0, off.stderr
    s = json.loads(off.stdout)
    assert s["n_ok"] == 1 and s["backend_mode"] == "cuda-partial"
    assert not any("GPU measurement protocol" in w for w in s["warnings"])
    assert read_metadata(tmp_path / "off")["gpu_protocol"] is None
    assert read_runs(tmp_path / "off")["n_repeats"].to_list() == [1]

    on = pretend_cli(*common, "-o", str(tmp_path / "on"), env=env)  # default protocol: 4 x >= 5 s runs
    assert on.returncode == 0, on.stderr
    s = json.loads(on.stdout)
    assert s["n_ok"] == 4 and s["backend_mode"] == "cuda-partial"
    assert any("GPU measurement protocol" in w and "raised from 1" in w for w in s["warnings"])
    runs = read_runs(tmp_path / "on")
    assert (runs["window_s"] >= 5.0).all() and (runs["n_repeats"] > 1).all()
    meta = read_metadata(tmp_path / "on")
    assert meta["config"]["gpu_protocol"]["min_window_s"] == 5.0 and meta["config"]["min_window_s"] == 0
    proto = meta["gpu_protocol"]
    assert proto["points"] == runs["point_id"].unique().to_list()
    assert set(proto["gaps_s"]) == set(runs["run_id"].to_list())
    # a counter GPU: auto leaves its energy alone (no rise-time note), it is NVML's joules
    for row in runs.iter_rows(named=True):
        gpu = next(d for d in row["domains"] if d["domain"] == "gpu-0")
        assert gpu["kind"] == "energy" and "steady-state" not in gpu["source"] and gpu["energy_j"] > 0


# ----------------------------------------------------------------------------- config validate


def test_config_validate_warns_about_gpu_layers_on_a_cpu_only_build(cli, cpu_only_build):
    p2 = str(TESTS.parent / "examples" / "p2_ablation.yaml")
    r = cli("config", "validate", p2)
    assert r.returncode == 0, r.stderr  # the file is valid; this machine just cannot run it
    assert r.stdout.startswith(f"ok: {p2}")
    assert "warning:" in r.stderr and "CPU-only build" in r.stderr and "[11, 22, 23]" in r.stderr
    r = cli("config", "validate", "--json", p2)
    assert r.returncode == 0 and any("CPU-only build" in w for w in json.loads(r.stdout)["warnings"])
    quick = cli("config", "validate", "--json", str(TESTS.parent / "examples" / "quick.yaml"))
    assert quick.returncode == 0 and json.loads(quick.stdout)["warnings"] == [] and "warning" not in quick.stderr


def test_sweep_no_gpu_protocol_flag_turns_the_protocol_off(tmp_path, fake_nvml_dir, tiny_model):
    cfg = write_cfg(tmp_path / "gpu.yaml", grid={"threads": 1, "n_gpu_layers": [0, 1], "batch": 32,
                                                 "prompt": {"n_prompt": 16}, "n_gen": 4})
    out = tmp_path / "out"
    r = pretend_cli("sweep", "--config", str(cfg), "--out", str(out), "--json", "--no-gpu-protocol",
                    env=nvml_env(fake_nvml_dir))
    assert r.returncode == 0, r.stderr
    runs = read_runs(out)
    measured = runs.filter(~pl.col("is_warmup")).group_by("n_gpu_layers").len()
    assert dict(measured.iter_rows()) == {0: 2, 1: 2}  # no extra trials
    assert (runs["n_repeats"] == 1).all() and runs["gap_before_s"].is_null().all()  # no window, no gaps
    assert read_metadata(out)["config"]["gpu_protocol"]["enabled"] is False
