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


def _gib(n: Any) -> str:
    try:
        return f"{float(n) / 2**30:.0f} GiB"
    except (TypeError, ValueError):
        return "memory unknown"


def host_key(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """What makes a kind of machine: CPU, logical CPUs, memory, OS and GPUs (never the host name,
    so alike machines of a fleet are one kind)."""
    host = meta.get("host") or {}
    return (str(host.get("cpu_model")), str(host.get("cpu_logical")), _gib(host.get("memory_total_bytes")),
            str(host.get("os")), _gpus(meta))


def describe_host(meta: Mapping[str, Any]) -> str:
    """'Intel Xeon ... · 2 CPUs · 8 GiB · Linux 6.8.0 · GPUs: none' for a machine table."""
    host = meta.get("host") or {}
    cpus = f"{host.get('cpu_logical')} CPUs" if host.get("cpu_logical") else "CPUs unknown"
    os_name = " ".join(str(x) for x in (host.get("os"), host.get("os_release")) if x) or "OS unknown"
    return " · ".join([str(host.get("cpu_model") or "CPU unknown"), cpus, _gib(host.get("memory_total_bytes")),
                       os_name, f"GPUs: {_gpus(meta)}"])


def energy_components(meta: Mapping[str, Any]) -> str:
    """'cpu+dram': the components of the top-level energy domains a set's totals add up."""
    comps = sorted({str(d.get("component") or d.get("name")) for d in meta.get("domains") or []
                    if isinstance(d, Mapping) and not d.get("parent")})
    return "+".join(comps) or "none"
