"""CPU energy ESTIMATE from utilisation x TDP, for machines without any power meter (VMs, clouds).

Model (the approach of CodeCarbon, whose own documentation measures -60% to +190% error against
RAPL: CodeCarbon docs, "Accuracy and validation", CPU load x TDP fallback)::

    P = TDP_eff x (IDLE_FRACTION + (1 - IDLE_FRACTION) x utilisation)

``IDLE_FRACTION = 0.1``: CodeCarbon's CPU-load mode floors the estimate at 10% of TDP
(``max(TDP x load, 0.1 x TDP)``, later ``TDP x (0.1 + 0.9 x load^3)``); we keep the 10% floor and
a linear load term. ``utilisation`` is the busy share of all logical CPUs this OS sees, from
``/proc/stat`` (``psutil.cpu_times``: user + nice + system + irq + softirq; idle, iowait and steal
are not busy -- steal is time the hypervisor gave to someone else).

``TDP_eff``: ``--cpu-tdp-w`` as given (taken as the power of the CPUs this machine sees at full
load), else the TDP of the processor model from :data:`CPU_TABLE`. When the table knows the
package's thread count, ``TDP_eff = TDP x visible_logical_cpus / package_threads`` -- a VM with 2
vCPUs of a 128-thread EPYC is charged 2/128 of the package. VMs often hide the model name ("AMD
EPYC"); then the CPUID family/model from ``/proc/cpuinfo`` picks the generation's flagship part
(:data:`FAMILY_TABLE`), and the domain's ``source`` says that this is a guess.

The meter is a *counter* (kind ``energy``): it integrates the model exactly from cumulative CPU
times, so its joules do not depend on how often it is read::

    E(t) = TDP_eff x (IDLE_FRACTION x elapsed_s + (1 - IDLE_FRACTION) x busy_cpu_s / n_cpus)

The kernel counts CPU time in USER_HZ ticks (10 ms), hence ``update_period_s`` = 1/USER_HZ.
Everything it produces is labelled ``estimate``.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from energybench.errors import ConfigError, MeterError
from energybench.meters.base import Domain, ProbeResult, Reading
from energybench.sysinfo import CpuInfo, read_cpuinfo

#: Share of TDP drawn at 0% utilisation (CodeCarbon's 10%-of-TDP floor; see module docstring).
IDLE_FRACTION = 0.1

#: CodeCarbon's own measured error of TDP x load against RAPL (CodeCarbon docs, "Accuracy and validation").
ERROR_RANGE = "-60%..+190%"

DOMAIN_NAME = "cpu-package-0"


@dataclass(frozen=True)
class CpuSpec:
    """TDP (W) of one processor package and its hardware thread count (None = unknown)."""

    tdp_w: float
    threads: int | None
    label: str


#: Processor model -> TDP (processor base power) and threads, from Intel ARK / AMD product pages.
#: Matched as a case-insensitive regular expression against the model name; first match wins.
CPU_TABLE: list[tuple[str, CpuSpec]] = [
    (r"i5-13600K\b", CpuSpec(125, 20, "Intel Core i5-13600K")),
    (r"i7-13700K\b", CpuSpec(125, 24, "Intel Core i7-13700K")),
    (r"i9-13900K\b", CpuSpec(125, 32, "Intel Core i9-13900K")),
    (r"i9-14900K\b", CpuSpec(125, 32, "Intel Core i9-14900K")),
    (r"i5-12600K\b", CpuSpec(125, 16, "Intel Core i5-12600K")),
    (r"i7-12700K\b", CpuSpec(125, 20, "Intel Core i7-12700K")),
    (r"i9-12900K\b", CpuSpec(125, 24, "Intel Core i9-12900K")),
    (r"Ultra 7 265K\b", CpuSpec(125, 20, "Intel Core Ultra 7 265K")),
    (r"Ultra 9 285K\b", CpuSpec(125, 24, "Intel Core Ultra 9 285K")),
    (r"i7-1165G7\b", CpuSpec(28, 8, "Intel Core i7-1165G7")),
    (r"Platinum 8480\+", CpuSpec(350, 112, "Intel Xeon Platinum 8480+")),
    (r"Platinum 8380\b", CpuSpec(270, 80, "Intel Xeon Platinum 8380")),
    (r"Platinum 8280\b", CpuSpec(205, 56, "Intel Xeon Platinum 8280")),
    (r"Ryzen 9 7950X\b", CpuSpec(170, 32, "AMD Ryzen 9 7950X")),
    (r"Ryzen 7 7700X\b", CpuSpec(105, 16, "AMD Ryzen 7 7700X")),
    (r"Ryzen 9 5950X\b", CpuSpec(105, 32, "AMD Ryzen 9 5950X")),
    (r"Ryzen 7 5800X\b", CpuSpec(105, 16, "AMD Ryzen 7 5800X")),
    (r"EPYC 7763\b", CpuSpec(280, 128, "AMD EPYC 7763")),
    (r"EPYC 7742\b", CpuSpec(225, 128, "AMD EPYC 7742")),
    (r"EPYC 9654\b", CpuSpec(360, 192, "AMD EPYC 9654")),
]

#: (vendor_id, cpu family, model) -> the generation's flagship server part, for VMs whose model name
#: hides the SKU (e.g. just "AMD EPYC"). A guess: the domain source says so.
FAMILY_TABLE: dict[tuple[str, int, int], CpuSpec] = {
    ("AuthenticAMD", 23, 49): CpuSpec(225, 128, "AMD EPYC 7742 (Zen 2 'Rome' flagship)"),
    ("AuthenticAMD", 25, 1): CpuSpec(280, 128, "AMD EPYC 7763 (Zen 3 'Milan' flagship)"),
    ("AuthenticAMD", 25, 17): CpuSpec(360, 192, "AMD EPYC 9654 (Zen 4 'Genoa' flagship)"),
    ("GenuineIntel", 6, 85): CpuSpec(205, 56, "Intel Xeon Platinum 8280 (Cascade Lake flagship)"),
    ("GenuineIntel", 6, 106): CpuSpec(270, 80, "Intel Xeon Platinum 8380 (Ice Lake-SP flagship)"),
    ("GenuineIntel", 6, 143): CpuSpec(350, 112, "Intel Xeon Platinum 8480+ (Sapphire Rapids flagship)"),
}


def detect_cpu(cpuinfo_path: str | os.PathLike[str] | None = None) -> CpuInfo:
    """Processor identity on this OS: /proc/cpuinfo (Linux), the registry (Windows), sysctl (macOS)."""
    info = read_cpuinfo(cpuinfo_path)
    if info is not None:
        return info
    if sys.platform == "win32":
        try:
            import winreg

            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as k:
                return CpuInfo(model_name=str(winreg.QueryValueEx(k, "ProcessorNameString")[0]).strip())
        except OSError:
            pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                 timeout=5, check=False)
            if out.stdout.strip():
                return CpuInfo(model_name=out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return CpuInfo(model_name=platform.processor() or "")


def lookup_cpu(info: CpuInfo) -> tuple[CpuSpec | None, bool]:
    """(spec, is_family_guess) for a processor, or (None, False) when unknown."""
    for pattern, spec in CPU_TABLE:
        if re.search(pattern, info.model_name, flags=re.IGNORECASE):
            return spec, False
    if info.family is not None and info.model is not None:
        spec = FAMILY_TABLE.get((info.vendor, info.family, info.model))
        if spec is not None:
            return spec, True
    return None, False


def estimate_power_w(tdp_w: float, utilisation: float, idle_fraction: float = IDLE_FRACTION) -> float:
    """Modelled package power (W) at a utilisation in [0, 1]."""
    u = min(max(utilisation, 0.0), 1.0)
    return tdp_w * (idle_fraction + (1.0 - idle_fraction) * u)


def estimate_energy_j(tdp_w: float, elapsed_s: float, busy_cpu_s: float, n_cpus: int,
                      idle_fraction: float = IDLE_FRACTION) -> float:
    """Modelled energy (J) over ``elapsed_s`` in which all CPUs together were busy ``busy_cpu_s``."""
    busy = min(max(busy_cpu_s, 0.0), elapsed_s * n_cpus)
    return tdp_w * (idle_fraction * elapsed_s + (1.0 - idle_fraction) * busy / n_cpus)


def busy_cpu_seconds(times: object) -> float:
    """Busy CPU-seconds summed over CPUs from a ``psutil.cpu_times()`` result."""
    names = ("user", "nice", "system", "irq", "softirq")  # guest time is already inside user/nice
    return float(sum(getattr(times, n, 0.0) for n in names))


def _user_hz() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


class EstimateMeter:
    """Estimated CPU package energy (an ESTIMATE, never a measurement): TDP x utilisation model."""

    name = "estimate"
    description = f"ESTIMATE: TDP x CPU utilisation (CodeCarbon-style; {ERROR_RANGE} error vs RAPL)"
    estimate = True

    def __init__(self, cpu_tdp_w: float | None = None, *, idle_fraction: float = IDLE_FRACTION,
                 cpuinfo_path: str | os.PathLike[str] | None = None) -> None:
        if cpu_tdp_w is not None and not (cpu_tdp_w > 0 and cpu_tdp_w < 10_000):
            raise ConfigError(f"--cpu-tdp-w must be a positive number of watts (below 10000), not {cpu_tdp_w!r}",
                              hint="give the processor's TDP / base power, e.g. --cpu-tdp-w 65")
        self.cpu_tdp_w = cpu_tdp_w
        self.idle_fraction = idle_fraction
        self.cpuinfo_path = Path(cpuinfo_path) if cpuinfo_path is not None else None
        self._lock = threading.Lock()
        self._opened = False
        self._tdp_eff = 0.0
        self._n_cpus = 1
        self._t0 = self._t_last = 0
        self._busy_last = self._busy_acc = self._pending = 0.0

    # -- what TDP do we use, and why
    def resolve_tdp(self) -> tuple[float | None, str]:
        """(effective TDP in W, how it was obtained) -- (None, why not) when unknown."""
        n = psutil.cpu_count(logical=True) or 1
        if self.cpu_tdp_w is not None:
            return float(self.cpu_tdp_w), f"TDP {self.cpu_tdp_w:g} W from --cpu-tdp-w"
        info = detect_cpu(self.cpuinfo_path)
        spec, guess = lookup_cpu(info)
        name = info.model_name or "unknown processor"
        if spec is None:
            ids = "" if info.family is None else f", {info.vendor} family {info.family} model {info.model}"
            return None, f"TDP of {name!r}{ids} is not in energybench's table"
        how = (f"a guess: model name {name!r} hides the SKU, family {info.family} model {info.model} "
               f"taken as {spec.label} ({spec.tdp_w:g} W)") if guess else f"{spec.label} ({spec.tdp_w:g} W)"
        if spec.threads:
            frac = min(1.0, n / spec.threads)
            return spec.tdp_w * frac, (f"TDP {spec.tdp_w * frac:.3g} W = {spec.tdp_w:g} W x {n}/{spec.threads} "
                                       f"visible logical CPUs; {how}")
        return spec.tdp_w, f"TDP {spec.tdp_w:g} W; {how}"

    def _source(self, how: str) -> str:
        f = self.idle_fraction
        return (f"ESTIMATE: P = TDP x ({f:g} + {1 - f:g} x utilisation), {how}; utilisation of "
                f"{self._n_cpus} logical CPUs from /proc/stat (psutil.cpu_times); CodeCarbon-style model, "
                f"{ERROR_RANGE} error vs RAPL")

    # -- PowerMeter
    def probe(self) -> ProbeResult:
        try:
            psutil.cpu_times()
        except Exception as exc:  # noqa: BLE001 - any failure means no utilisation
            return ProbeResult(False, f"cannot read CPU utilisation: {exc}")
        tdp, how = self.resolve_tdp()
        if tdp is None:
            return ProbeResult(False, how, "pass --cpu-tdp-w W (the processor's TDP / base power in watts)")
        return ProbeResult(True, f"ESTIMATE ({ERROR_RANGE} error): {how}")

    def open(self) -> list[Domain]:
        tdp, how = self.resolve_tdp()
        if tdp is None:
            raise MeterError(how, hint="pass --cpu-tdp-w W (the processor's TDP / base power in watts)")
        with self._lock:
            self._n_cpus = psutil.cpu_count(logical=True) or 1
            self._tdp_eff = tdp
            self._t0 = self._t_last = time.monotonic_ns()
            self._busy_last = busy_cpu_seconds(psutil.cpu_times())
            self._busy_acc = 0.0
            self._pending = 0.0
            self._opened = True
            self._domain = Domain(name=DOMAIN_NAME, kind="energy", meter=self.name, component="cpu",
                                  source=self._source(how), update_period_s=1.0 / _user_hz(),
                                  estimate=True)
        return [self._domain]

    def read(self) -> Reading:
        with self._lock:
            if not self._opened:
                raise MeterError("estimate meter read before open()")
            t0 = time.monotonic_ns()
            busy = busy_cpu_seconds(psutil.cpu_times())
            t1 = time.monotonic_ns()
            t = (t0 + t1) // 2
            # CPU time arrives in whole ticks, so between two close reads it can exceed wall time x
            # CPUs; credit at most that and carry the rest to the next read (none is lost).
            pending = self._pending + (busy - self._busy_last)
            credit = min(max(pending, 0.0), (t - self._t_last) / 1e9 * self._n_cpus)
            self._pending = pending - credit
            self._busy_acc += credit
            self._busy_last, self._t_last = busy, t
            energy = estimate_energy_j(self._tdp_eff, (t - self._t0) / 1e9, self._busy_acc, self._n_cpus,
                                       self.idle_fraction)
        return Reading(t_ns=t, values={DOMAIN_NAME: energy})

    def close(self) -> None:
        with self._lock:
            self._opened = False
