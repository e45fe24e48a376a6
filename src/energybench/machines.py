"""What machine, build and model files a results directory was measured with, from its
``metadata.json``; and what differs between two of them.

Two result sets are comparable when they come from one CPU and GPU model, one llama.cpp build and
the same model files: pyperf's rule for runs of one benchmark is the same idea (it refuses a run
whose ``cpu_model_name``, ``hostname``, ``python_version`` ... differ from the benchmark's;
pyperf/_bench.py, ``Benchmark.add_run``). A host name is not compared: two alike machines of a
fleet are one kind of machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Difference:
    """One thing that differs between BASE's machine/build/models and NEW's."""

    what: str
    base: str
    new: str

    def text(self) -> str:
        return f"{self.what}: {self.base} (BASE) vs {self.new} (NEW)"


def _gpus(meta: Mapping[str, Any]) -> str:
    names = sorted(str(g.get("name")) for g in meta.get("gpus") or [] if isinstance(g, Mapping))
    return ", ".join(names) or "none"


#: What makes two sets comparable: (what, how to read it from metadata.json).
_MACHINE_CHECKS: tuple[tuple[str, Any], ...] = (
    ("CPU", lambda m: str((m.get("host") or {}).get("cpu_model"))),
    ("GPUs", _gpus),
    ("llama.cpp build (llama-cpp-python version)", lambda m: str((m.get("backend") or {}).get("version"))),
    ("llama.cpp build (features)", lambda m: str((m.get("backend") or {}).get("system_info", "")).strip(" |")),
    ("llama.cpp build (GPU offload)", lambda m: str((m.get("backend") or {}).get("supports_gpu_offload"))),
)


def machine_differences(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[Difference]:
    """What differs between two results directories' metadata: CPU, GPUs, llama.cpp build, and the
    sha256 of every model reference both used."""
    out = [Difference(what, get(base), get(new)) for what, get in _MACHINE_CHECKS if get(base) != get(new)]
    bm, nm = base.get("models") or {}, new.get("models") or {}
    for ref in sorted(set(bm) & set(nm)):
        b, n = (bm[ref] or {}).get("sha256"), (nm[ref] or {}).get("sha256")
        if b != n:
            out.append(Difference(f"model {ref} (sha256)", str(b), str(n)))
    return out


def describe_machine(meta: Mapping[str, Any]) -> str:
    """'CPU · llama-cpp-python 0.3.36 · GPUs' for a header line."""
    host, backend = meta.get("host") or {}, meta.get("backend") or {}
    parts = [str(host.get("cpu_model") or "CPU unknown"), f"llama-cpp-python {backend.get('version', '?')}"]
    if meta.get("gpus"):
        parts.append(_gpus(meta))
    return " · ".join(parts)


def meter_names(meta: Mapping[str, Any]) -> str:
    """'estimate' or 'nvml,rapl': the meters a set's energy came from."""
    return ",".join(sorted(str(m.get("name")) for m in meta.get("meters") or [] if isinstance(m, Mapping))) or "none"
