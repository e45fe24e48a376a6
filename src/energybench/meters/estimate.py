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
load), else the TDP of the processor model from :data:`GENERATIONS` (matched by model name).
``TDP_eff = TDP x visible_logical_cpus / package_threads`` (at most the whole package) -- a VM with
2 vCPUs of a 128-thread EPYC is charged 2/128 of the package. Cloud VMs often hide the SKU
("AMD EPYC", "Intel(R) Xeon(R) Processor"); then the CPUID vendor/family/model from
``/proc/cpuinfo`` picks the generation, Intel and AMD alike, and its flagship is taken: the
domain's ``source`` says it is a GUESS and gives the range the generation's other parts would give
(their TDP per thread differs up to ~5x). A CPU whose flags contradict its model number (AMX
on a model number of a generation without AMX: the hypervisor rewrote it; e.g. a KVM guest showing
"family 6 model 167", Rocket Lake, with ``amx_tile``) is not guessed from: ``--cpu-tdp-w`` is asked.

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


def _sku(pattern: str, tdp_w: float, threads: int, label: str) -> tuple[str, CpuSpec]:
    return pattern, CpuSpec(tdp_w, threads, label)


@dataclass(frozen=True)
class Generation:
    """Processors of one CPUID vendor/family/model range: a few SKUs, the first the flagship.

    ``lacks``: CPU flags no part of the generation has. A CPU that shows one while its CPUID model
    says this generation has a model number its hypervisor rewrote: it is not guessed from.
    """

    vendor: str
    family: int
    models: tuple[int, ...]
    name: str
    skus: tuple[tuple[str, CpuSpec], ...]
    lacks: frozenset[str] = frozenset()


_INTEL, _AMD = "GenuineIntel", "AuthenticAMD"
_NO_AMX = frozenset({"amx_tile"})  # AMX arrived with Sapphire Rapids (Intel SDM Vol. 1, ch. 18)
_NO_AVX512 = frozenset({"avx512f"})  # AMD has AVX-512 from Zen 4 on


def _one(*models: int) -> tuple[int, ...]:
    return models


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


#: Processors by CPUID family/model (Intel: Linux arch/x86/include/asm/intel-family.h; AMD: LLVM
#: lib/TargetParser/Host.cpp model ranges). TDP and threads of each SKU: Intel ARK ("TDP", or
#: "Processor Base Power" from 12th gen Core on; "Total Threads") and AMD's product pages
#: ("Default TDP", "# of Threads"). The first SKU of a generation is the one a hidden model name is
#: taken as; the others bound how far off that guess can be.
GENERATIONS: tuple[Generation, ...] = (
    Generation(_INTEL, 6, _one(0x55), "Skylake-SP/Cascade Lake-SP (Xeon Scalable 1st/2nd gen)", (
        _sku(r"Platinum 8280\b", 205, 56, "Intel Xeon Platinum 8280"),
        _sku(r"Platinum 8180\b", 205, 56, "Intel Xeon Platinum 8180"),
        _sku(r"Platinum 9282\b", 400, 112, "Intel Xeon Platinum 9282"),
        _sku(r"Gold 6248\b", 150, 40, "Intel Xeon Gold 6248"),
        _sku(r"Gold 6230\b", 125, 40, "Intel Xeon Gold 6230"),
        _sku(r"Gold 6244\b", 150, 16, "Intel Xeon Gold 6244"),
        _sku(r"Silver 4214\b", 85, 24, "Intel Xeon Silver 4214"),
        _sku(r"Bronze 3204\b", 85, 6, "Intel Xeon Bronze 3204")), _NO_AMX),
    Generation(_INTEL, 6, _one(0x6A), "Ice Lake-SP (Xeon Scalable 3rd gen)", (
        _sku(r"Platinum 8380\b", 270, 80, "Intel Xeon Platinum 8380"),
        _sku(r"Platinum 8358\b", 250, 64, "Intel Xeon Platinum 8358"),
        _sku(r"Gold 6338\b", 205, 64, "Intel Xeon Gold 6338"),
        _sku(r"Gold 6346\b", 205, 32, "Intel Xeon Gold 6346"),
        _sku(r"Silver 4314\b", 135, 32, "Intel Xeon Silver 4314")), _NO_AMX),
    Generation(_INTEL, 6, _one(0x8F), "Sapphire Rapids (Xeon Scalable 4th gen)", (
        _sku(r"Platinum 8480\+", 350, 112, "Intel Xeon Platinum 8480+"),
        _sku(r"Platinum 8490H\b", 350, 120, "Intel Xeon Platinum 8490H"),
        _sku(r"Gold 6430\b", 270, 64, "Intel Xeon Gold 6430"),
        _sku(r"Gold 6448Y\b", 225, 64, "Intel Xeon Gold 6448Y"),
        _sku(r"Gold 6444Y\b", 270, 32, "Intel Xeon Gold 6444Y"),
        _sku(r"Gold 5415\+", 150, 16, "Intel Xeon Gold 5415+"),
        _sku(r"Silver 4410Y\b", 150, 24, "Intel Xeon Silver 4410Y"))),
    Generation(_INTEL, 6, _one(0xCF), "Emerald Rapids (Xeon Scalable 5th gen)", (
        _sku(r"Platinum 8592\+", 350, 128, "Intel Xeon Platinum 8592+"),
        _sku(r"Platinum 8580\b", 350, 120, "Intel Xeon Platinum 8580"),
        _sku(r"Gold 6548Y\+", 250, 64, "Intel Xeon Gold 6548Y+"),
        _sku(r"Gold 6544Y\b", 270, 32, "Intel Xeon Gold 6544Y"),
        _sku(r"Gold 5515\+", 165, 16, "Intel Xeon Gold 5515+"),
        _sku(r"Silver 4514Y\b", 150, 32, "Intel Xeon Silver 4514Y"))),
    Generation(_INTEL, 6, _one(0xAD), "Granite Rapids (Xeon 6 P-core)", (
        _sku(r"Xeon 6980P\b", 500, 256, "Intel Xeon 6980P"),
        _sku(r"Xeon 6972P\b", 500, 192, "Intel Xeon 6972P"),
        _sku(r"Xeon 6952P\b", 400, 192, "Intel Xeon 6952P"),
        _sku(r"Xeon 6960P\b", 500, 144, "Intel Xeon 6960P"))),
    Generation(_INTEL, 6, _one(0xA7), "Rocket Lake (11th gen Core, Xeon E-2300)", (
        _sku(r"i9-11900K\b", 125, 16, "Intel Core i9-11900K"),
        _sku(r"i7-11700K\b", 125, 16, "Intel Core i7-11700K"),
        _sku(r"i5-11600K\b", 125, 12, "Intel Core i5-11600K"),
        _sku(r"i5-11400\b", 65, 12, "Intel Core i5-11400"),
        _sku(r"E-2388G\b", 95, 16, "Intel Xeon E-2388G"),
        _sku(r"E-2314\b", 65, 4, "Intel Xeon E-2314")), _NO_AMX),
    Generation(_INTEL, 6, _one(0x8C), "Tiger Lake-UP3 (11th gen Core mobile)", (
        _sku(r"i7-1165G7\b", 28, 8, "Intel Core i7-1165G7"),), _NO_AMX),
    Generation(_INTEL, 6, _one(0x97), "Alder Lake-S (12th gen Core)", (
        _sku(r"i9-12900K\b", 125, 24, "Intel Core i9-12900K"),
        _sku(r"i7-12700K\b", 125, 20, "Intel Core i7-12700K"),
        _sku(r"i5-12600K\b", 125, 16, "Intel Core i5-12600K"),
        _sku(r"i5-12400\b", 65, 12, "Intel Core i5-12400")), _NO_AMX),
    Generation(_INTEL, 6, _one(0xB7, 0xBF), "Raptor Lake-S (13th/14th gen Core)", (
        _sku(r"i9-14900K\b", 125, 32, "Intel Core i9-14900K"),
        _sku(r"i9-13900K\b", 125, 32, "Intel Core i9-13900K"),
        _sku(r"i7-13700K\b", 125, 24, "Intel Core i7-13700K"),
        _sku(r"i5-13600K\b", 125, 20, "Intel Core i5-13600K"),
        _sku(r"i5-13400\b", 65, 16, "Intel Core i5-13400")), _NO_AMX),
    Generation(_INTEL, 6, _one(0xC6), "Arrow Lake-S (Core Ultra 200S)", (
        _sku(r"Ultra 9 285K\b", 125, 24, "Intel Core Ultra 9 285K"),
        _sku(r"Ultra 7 265K\b", 125, 20, "Intel Core Ultra 7 265K"),
        _sku(r"Ultra 5 245K\b", 125, 14, "Intel Core Ultra 5 245K")), _NO_AMX),
    Generation(_AMD, 0x17, _span(0x30, 0x3F), "Zen 2 EPYC 7002 'Rome'", (
        _sku(r"EPYC 7742\b", 225, 128, "AMD EPYC 7742"),
        _sku(r"EPYC 7H12\b", 280, 128, "AMD EPYC 7H12"),
        _sku(r"EPYC 7702\b", 200, 128, "AMD EPYC 7702"),
        _sku(r"EPYC 7502\b", 180, 64, "AMD EPYC 7502"),
        _sku(r"EPYC 7302\b", 155, 32, "AMD EPYC 7302"),
        _sku(r"EPYC 7F52\b", 240, 32, "AMD EPYC 7F52"),
        _sku(r"EPYC 7252\b", 120, 16, "AMD EPYC 7252")), _NO_AVX512),
    Generation(_AMD, 0x17, _span(0x70, 0x7F), "Zen 2 Ryzen 3000 'Matisse'", (
        _sku(r"Ryzen 9 3950X\b", 105, 32, "AMD Ryzen 9 3950X"),
        _sku(r"Ryzen 9 3900X\b", 105, 24, "AMD Ryzen 9 3900X"),
        _sku(r"Ryzen 7 3700X\b", 65, 16, "AMD Ryzen 7 3700X"),
        _sku(r"Ryzen 5 3600\b", 65, 12, "AMD Ryzen 5 3600")), _NO_AVX512),
    Generation(_AMD, 0x19, _span(0x00, 0x0F), "Zen 3 EPYC 7003 'Milan'", (
        _sku(r"EPYC 7763\b", 280, 128, "AMD EPYC 7763"),
        _sku(r"EPYC 7713\b", 225, 128, "AMD EPYC 7713"),
        _sku(r"EPYC 7543\b", 225, 64, "AMD EPYC 7543"),
        _sku(r"EPYC 7313\b", 155, 32, "AMD EPYC 7313"),
        _sku(r"EPYC 72F3\b", 180, 16, "AMD EPYC 72F3")), _NO_AVX512),
    Generation(_AMD, 0x19, _span(0x20, 0x2F), "Zen 3 Ryzen 5000 'Vermeer'", (
        _sku(r"Ryzen 9 5950X\b", 105, 32, "AMD Ryzen 9 5950X"),
        _sku(r"Ryzen 9 5900X\b", 105, 24, "AMD Ryzen 9 5900X"),
        _sku(r"Ryzen 7 5800X\b", 105, 16, "AMD Ryzen 7 5800X"),
        _sku(r"Ryzen 5 5600X\b", 65, 12, "AMD Ryzen 5 5600X")), _NO_AVX512),
    Generation(_AMD, 0x19, _span(0x10, 0x1F), "Zen 4 EPYC 9004 'Genoa'", (
        _sku(r"EPYC 9654\b", 360, 192, "AMD EPYC 9654"),
        _sku(r"EPYC 9554\b", 360, 128, "AMD EPYC 9554"),
        _sku(r"EPYC 9454\b", 290, 96, "AMD EPYC 9454"),
        _sku(r"EPYC 9354\b", 280, 64, "AMD EPYC 9354"),
        _sku(r"EPYC 9124\b", 200, 32, "AMD EPYC 9124"),
        _sku(r"EPYC 9174F\b", 320, 32, "AMD EPYC 9174F"))),
    Generation(_AMD, 0x19, _span(0xA0, 0xAF), "Zen 4c EPYC 9004 'Bergamo'", (
        _sku(r"EPYC 9754\b", 360, 256, "AMD EPYC 9754"),
        _sku(r"EPYC 9734\b", 340, 224, "AMD EPYC 9734"))),
    Generation(_AMD, 0x19, _span(0x60, 0x6F), "Zen 4 Ryzen 7000 'Raphael'", (
        _sku(r"Ryzen 9 7950X\b", 170, 32, "AMD Ryzen 9 7950X"),
        _sku(r"Ryzen 9 7900X\b", 170, 24, "AMD Ryzen 9 7900X"),
        _sku(r"Ryzen 7 7700X\b", 105, 16, "AMD Ryzen 7 7700X"),
        _sku(r"Ryzen 5 7600X\b", 105, 12, "AMD Ryzen 5 7600X"),
        _sku(r"Ryzen 5 7600\b", 65, 12, "AMD Ryzen 5 7600"))),
    Generation(_AMD, 0x1A, _span(0x00, 0x0F), "Zen 5 EPYC 9005 'Turin'", (
        _sku(r"EPYC 9755\b", 500, 256, "AMD EPYC 9755"),
        _sku(r"EPYC 9655\b", 400, 192, "AMD EPYC 9655"),
        _sku(r"EPYC 9555\b", 360, 128, "AMD EPYC 9555"),
        _sku(r"EPYC 9355\b", 280, 64, "AMD EPYC 9355"),
        _sku(r"EPYC 9135\b", 200, 32, "AMD EPYC 9135"),
        _sku(r"EPYC 9175F\b", 320, 32, "AMD EPYC 9175F"))),
    Generation(_AMD, 0x1A, _span(0x10, 0x1F), "Zen 5c EPYC 9005 'Turin Dense'", (
        _sku(r"EPYC 9965\b", 500, 384, "AMD EPYC 9965"),
        _sku(r"EPYC 9845\b", 390, 320, "AMD EPYC 9845"))),
    Generation(_AMD, 0x1A, _span(0x40, 0x4F), "Zen 5 Ryzen 9000 'Granite Ridge'", (
        _sku(r"Ryzen 9 9950X\b", 170, 32, "AMD Ryzen 9 9950X"),
        _sku(r"Ryzen 9 9900X\b", 120, 24, "AMD Ryzen 9 9900X"),
        _sku(r"Ryzen 7 9700X\b", 65, 16, "AMD Ryzen 7 9700X"),
        _sku(r"Ryzen 5 9600X\b", 65, 12, "AMD Ryzen 5 9600X"))),
)


@dataclass(frozen=True)
class Lookup:
    """What the table says of a processor: its SKU (``guess`` False), its generation's flagship
    taken for a hidden model name (``guess`` True), or nothing (``why`` says why not)."""

    spec: CpuSpec | None
    generation: Generation | None = None
    guess: bool = False
    why: str = ""


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


def lookup_cpu(info: CpuInfo) -> Lookup:
    """The table's answer for a processor: its SKU by model name, else its generation's flagship by
    CPUID vendor/family/model (a guess), else nothing, with the reason."""
    for gen in GENERATIONS:
        for pattern, spec in gen.skus:
            if re.search(pattern, info.model_name, flags=re.IGNORECASE):
                return Lookup(spec, gen)
    if info.family is None or info.model is None:
        return Lookup(None, why="no CPUID family/model to look it up by")
    ids = f"{info.vendor} family {info.family} model {info.model}"
    gen = next((g for g in GENERATIONS if (g.vendor, g.family) == (info.vendor, info.family)
                and info.model in g.models), None)
    if gen is None:
        return Lookup(None, why=f"{ids} is not in energybench's table")
    shown = sorted(gen.lacks & info.flags)
    if shown:
        return Lookup(None, gen, why=(f"{ids} is {gen.name}, but this CPU reports {', '.join(shown)}, which "
                                      "that generation lacks: a hypervisor rewrote the model number, so the "
                                      "processor is unknown"))
    return Lookup(gen.skus[0][1], gen, guess=True)


def scaled_tdp_w(spec: CpuSpec, n_cpus: int) -> float:
    """TDP of the share of the package this OS sees: TDP x visible CPUs / package threads (at most 1)."""
    return spec.tdp_w * min(1.0, n_cpus / spec.threads) if spec.threads else spec.tdp_w


def guess_range_w(gen: Generation, n_cpus: int) -> tuple[float, float]:
    """The lowest and highest :func:`scaled_tdp_w` over the generation's SKUs in the table."""
    values = [scaled_tdp_w(spec, n_cpus) for _, spec in gen.skus]
    return min(values), max(values)


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
        found = lookup_cpu(info)
        name = info.model_name or "unknown processor"
        spec, gen = found.spec, found.generation
        if spec is None:
            return None, f"TDP of {name!r} unknown: {found.why}"
        tdp = scaled_tdp_w(spec, n)
        head = f"TDP {tdp:.3g} W" + (f" = {spec.tdp_w:g} W x {n}/{spec.threads} visible logical CPUs"
                                      if spec.threads and n < spec.threads else "")
        if not found.guess or gen is None:
            return tdp, f"{head}; {spec.label} ({spec.tdp_w:g} W)"
        lo, hi = guess_range_w(gen, n)
        return tdp, (f"{head}; a GUESS: model name {name!r} hides the SKU; family {info.family} model "
                     f"{info.model} is {gen.name}, taken as its flagship {spec.label} ({spec.tdp_w:g} W, "
                     f"{spec.threads} threads); the generation's parts in energybench's table give {lo:.3g}-{hi:.3g} W "
                     f"here (x{lo / tdp:.2g} to x{hi / tdp:.2g} of this guess)")

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
