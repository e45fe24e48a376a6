"""A llama.cpp backend that *claims* GPU offload support, for tests on machines without a GPU.

This machine's llama-cpp-python is a CPU-only build, so energybench (rightly) refuses any
``n_gpu_layers != 0``. To exercise the engine's GPU paths end to end (protocol, backend_mode,
metadata) the tests swap in :class:`PretendGpuBackend`: the REAL llama.cpp worker, model loads and
generations, with one thing faked at the hardware boundary -- ``info().supports_gpu_offload`` says
True and a pretend ``CUDA0`` device is listed. llama.cpp itself, given n_gpu_layers > 0 on a
CPU-only build, keeps every layer on the CPU, so timings are CPU timings and GPU memory stays
unknown. Combined with the NVML stand-in (``tests/fakes/nvml_fake.c``) the GPU energy is the
stand-in's analytic power: synthetic test data, never a measurement.

Usage (a subprocess, so that LD_LIBRARY_PATH can point pynvml at the stand-in)::

    python tests/fakes/pretend_gpu.py sweep --config CFG --out DIR --json

``PRETEND_GPU_DEVICE`` names the pretend device instead (e.g. ``MTL0 (Apple M2 Max, gpu)`` for a
Metal build), in the worker's ``NAME (description, type)`` form.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from energybench.backends.base import BackendInfo
from energybench.backends.llamacpp import LlamaCppBackend

PRETEND_DEVICE = "CUDA0 (pretend: CPU-only build, tests/fakes/pretend_gpu.py)"


class PretendGpuBackend(LlamaCppBackend):
    """The real llama.cpp backend, reporting GPU offload support it does not have."""

    def info(self) -> BackendInfo:
        info = super().info()
        device = os.environ.get("PRETEND_GPU_DEVICE") or PRETEND_DEVICE  # e.g. "MTL0 (Apple M2, gpu)"
        return replace(info, supports_gpu_offload=True, devices=[*info.devices, device])


def install() -> None:
    """Make ``llama.cpp`` in energybench's backend registry resolve to :class:`PretendGpuBackend`."""
    from energybench import backends

    here = Path(__file__).resolve().parent
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    backends.REGISTRY["llama.cpp"] = "pretend_gpu:PretendGpuBackend"


def main(argv: list[str]) -> int:
    install()
    from energybench.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
