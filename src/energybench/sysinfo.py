"""Facts about the host, recorded in every results directory's metadata (pyperf-style)."""

from __future__ import annotations

import functools
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from energybench import __version__


PROC_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuInfo:
    """What the OS says about the processor (the first processor of ``/proc/cpuinfo``)."""

    model_name: str
    vendor: str = ""
    family: int | None = None
    model: int | None = None
    flags: frozenset[str] = frozenset()


def _first_block(text: str) -> dict[str, str]:
    """``key: value`` fields of the first processor block (first value of each key wins)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _int(value: str | None) -> int | None:
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model name, vendor, family, model and flags of the first processor in a cpuinfo text."""
    f = _first_block(text)
    name = f.get("model name") or f.get("Model") or f.get("Hardware") or ""
    return CpuInfo(model_name=name, vendor=f.get("vendor_id", ""), family=_int(f.get("cpu family")),
                   model=_int(f.get("model")), flags=frozenset(f.get("flags", "").split()))


def read_cpuinfo(path: str | os.PathLike[str] | None = None) -> CpuInfo | None:
    """The parsed cpuinfo file ``path``; by default this machine's ``/proc/cpuinfo``, read once
    per process. None when the file cannot be read (not Linux)."""
    if path is None:
        return _proc_cpuinfo()
    try:
        return parse_cpuinfo(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _proc_cpuinfo() -> CpuInfo | None:
    return read_cpuinfo(PROC_CPUINFO)


def cpu_model(cpuinfo: str | os.PathLike[str] | None = None) -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, platform elsewhere)."""
    info = read_cpuinfo(cpuinfo)
    return (info.model_name if info else "") or platform.processor() or platform.machine()


def cpu_flags(cpuinfo: str | os.PathLike[str] | None = None) -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty when not Linux)."""
    info = read_cpuinfo(cpuinfo)
    return info.flags if info else frozenset()


def _cpu_governor() -> str | None:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        return p.read_text().strip() if p.exists() else None
    except OSError:
        return None


def _virtualized(flags: frozenset[str]) -> bool:
    return "hypervisor" in flags


def host_info() -> dict[str, Any]:
    """Host, OS, CPU, memory, Python: the context a reader needs to trust or compare a number."""
    flags = cpu_flags()
    freq = None
    try:
        f = psutil.cpu_freq()
        freq = f.max or f.current if f else None
    except (OSError, NotImplementedError, AttributeError):
        freq = None
    try:
        load = os.getloadavg()
    except (OSError, AttributeError):
        load = None
    return {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_logical": psutil.cpu_count(logical=True),
        "cpu_physical": psutil.cpu_count(logical=False),
        "cpu_freq_max_mhz": freq,
        "cpu_governor": _cpu_governor(),
        "cpu_amx": any(f.startswith("amx") for f in flags),
        "cpu_avx512": any(f.startswith("avx512") for f in flags),
        "virtualized": _virtualized(flags),
        "memory_total_bytes": psutil.virtual_memory().total,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "loadavg_at_start": load,
        "energybench_version": __version__,
    }


def clock_info() -> dict[str, Any]:
    """Links the monotonic clock of every ``t_ns`` to wall time (for PowerLog import etc.)."""
    wall = time.time_ns()
    mono = time.monotonic_ns()
    return {
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns)",
        "clock_offset_ns": wall - mono,  # wall_ns = t_ns + clock_offset_ns
        "created_at": datetime.now(UTC).isoformat(),
    }


def memory_bandwidth_gbs(*, refresh: bool = False) -> float | None:
    """This machine's memory copy bandwidth (GB/s), measured once and cached in the energybench home.

    The decode roofline of reports needs it (tokens/s <= bandwidth / bytes per token). The copy
    benchmark takes about a second, so it runs once per machine (keyed by host, CPU and memory
    size); ``refresh=True`` measures again. None when it cannot be measured.
    """
    import json

    from energybench.paths import home

    info = host_info()
    key = f"{info['hostname']}|{info['cpu_model']}|{info['cpu_logical']}|{info['memory_total_bytes']}"
    path = home() / "host-bandwidth.json"
    cache: dict[str, Any] = {}
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if not refresh and isinstance(cache.get(key), dict) and cache[key].get("gbs"):
        return float(cache[key]["gbs"])
    try:
        from energybench.report.bandwidth import measure_memory_bandwidth

        gbs = float(measure_memory_bandwidth())
    except Exception:  # noqa: BLE001 - the roofline is optional: never fail a measurement for it
        return None
    cache[key] = {"gbs": gbs, "measured_at": datetime.now(UTC).isoformat()}
    try:
        from energybench.results import atomic_write_json

        atomic_write_json(path, cache)
    except OSError:
        pass
    return gbs
