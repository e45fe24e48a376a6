"""Regenerate ``tests/data/results_cuda/``: a small recorded results directory with CUDA rows.

SYNTHETIC TEST DATA, NOT A MEASUREMENT. It is written by the real engine (``energybench sweep``,
real llama.cpp worker, real sampler, real attribution, real ResultsStore) on a machine WITHOUT a
GPU, with two things faked at the hardware boundary:

* ``tests/fakes/pretend_gpu.py``: the llama.cpp backend claims GPU offload support; llama.cpp
  (a CPU-only build) keeps every layer on the CPU, so all timings are CPU timings;
* ``tests/fakes/nvml_fake.c``: the NVIDIA driver's libnvidia-ml.so.1, one "NVIDIA H100 80GB HBM3"
  whose energy counter advances at a constant 300 W (refresh every 100 ms).

So the GPU energies are the stand-in's analytic power and the CPU energies are the labelled
estimate of a machine without RAPL. The shape is what a CUDA sweep writes: backend_mode cpu /
cuda-partial / cuda-full, an nvml ``gpu-0`` domain beside the CPU, the GPU protocol applied to
the offloading points (shortened here: 0.3 s windows instead of the sweep's 0.2 s, 3 trials,
0.05-0.15 s gaps) with its
provenance in metadata.json.

Run from the repository root (takes ~1 minute): ``.venv/bin/python tests/data/results_cuda/generate.py``
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[1]

CONFIG = {
    "name": "results-cuda-fixture",
    # synthetic:tiny has 2 layers: 1 = partial, 2 = every block (output layer on the CPU), 3 = all
    "models": ["synthetic:tiny"],
    "grid": {"threads": 1, "n_gpu_layers": [0, 1, 2, 3], "batch": 32, "prompt": {"n_prompt": 16}, "n_gen": 8},
    "warmup": 1,
    "repetitions": {"fixed": 2},
    "cooldown": {"fixed_s": 0},
    "idle_baseline_s": 0.5,
    "order": "grouped",
    "sample_period_ms": 20,
    "min_window_s": 0.2,  # every point; the protocol raises the offloading ones to 0.3 s
    "gpu_protocol": {"min_window_s": 0.3, "min_trials": 3, "random_gap_s": [0.05, 0.15], "seed": 11},
}

NOTE = ("SYNTHETIC TEST DATA, NOT A MEASUREMENT: written by the real engine on a machine without a GPU, "
        "with a backend that only claims GPU offload (llama.cpp ran every layer on the CPU) and the NVML "
        "stand-in tests/fakes/nvml_fake.c (constant 300 W H100); see tests/data/results_cuda/generate.py")


def main() -> int:
    gcc = shutil.which("gcc")
    if gcc is None:
        print("gcc is needed to build the NVML stand-in", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="eb-results-cuda-") as tmp:
        t = Path(tmp)
        subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(t / "libnvidia-ml.so.1"),
                        str(TESTS / "fakes" / "nvml_fake.c")], check=True)
        cfg = t / "config.yaml"
        cfg.write_text(yaml.safe_dump(CONFIG))
        out = t / "out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_NVML_")}
        env.update(LD_LIBRARY_PATH=str(t), ENERGYBENCH_HOME=str(t / "home"), COLUMNS="200")
        subprocess.run([sys.executable, str(TESTS / "fakes" / "pretend_gpu.py"), "sweep", "--config", str(cfg),
                        "--out", str(out), "-q"], check=True, env=env)
        meta = json.loads((out / "metadata.json").read_text())
        meta["note"] = NOTE
        for m in meta.get("models", {}).values():  # a temporary path that no longer exists
            m["path"] = "<temporary ENERGYBENCH_HOME>/" + Path(m["path"]).name
        for name in ("runs.parquet", "samples.parquet", "metadata.json", "journal.jsonl"):
            (HERE / name).unlink(missing_ok=True)
        shutil.copy2(out / "runs.parquet", HERE / "runs.parquet")
        shutil.copy2(out / "samples.parquet", HERE / "samples.parquet")
        (HERE / "metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    size = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    print(f"wrote {HERE} ({size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
