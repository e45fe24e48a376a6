"""A CPU and a llama.cpp build that *claim* AMX, for the AMX check's tests on any machine.

The check (energybench.amx) runs when the CPU's flags (``/proc/cpuinfo``) and the build's system
info (``AMX_INT8 = 1``) both say AMX. Here both are faked at their edge: the cpuinfo file is the one
named by ``PRETEND_CPUINFO``, and the REAL llama.cpp backend reports ``AMX_INT8 = 1`` in its system
info. Whether the AMX kernels "crash" is the worker's crash hook (``ENERGYBENCH_TEST_CRASH=
segv@repack=True``: a real SIGSEGV of the real worker whenever weight repacking is on).

Usage (a subprocess)::

    PRETEND_CPUINFO=cpuinfo.txt python tests/fakes/pretend_amx.py measure ...
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from energybench.backends.base import BackendInfo
from energybench.backends.llamacpp import LlamaCppBackend


class PretendAmxBackend(LlamaCppBackend):
    """The real llama.cpp backend, reporting AMX kernels its build does not have."""

    def info(self) -> BackendInfo:
        info = super().info()
        return replace(info, system_info=f"{info.system_info} AMX_INT8 = 1 |")


def install(cpuinfo: Path) -> None:
    from energybench import backends, sysinfo

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    backends.REGISTRY["llama.cpp"] = "pretend_amx:PretendAmxBackend"
    sysinfo.PROC_CPUINFO = cpuinfo
    sysinfo._proc_cpuinfo.cache_clear()


def main(argv: list[str]) -> int:
    install(Path(os.environ["PRETEND_CPUINFO"]))
    from energybench.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
