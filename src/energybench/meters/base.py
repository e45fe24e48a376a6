"""The power-meter contract.

A meter exposes one or more *domains* (``cpu-package-0``, ``dram-0``, ``gpu-0`` ...). Each domain
is either a cumulative energy counter (``kind="energy"``, values in joules, monotonic: the meter
handles wrap-around itself, as Zeus does) or a power reading (``kind="power"``, values in watts).
Every reading carries ``t_ns`` from ``time.monotonic_ns()``, the clock the backend uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

DomainKind = Literal["energy", "power"]
#: What a domain measures. ``psys``: the platform (contains the CPU package and DRAM; counted only
#: when no CPU package is measured); ``system``: the whole machine at the wall (contains everything;
#: when measured, it is the run's total); ``accelerator``: an NPU/ANE.
Component = Literal["cpu", "cpu-core", "uncore", "dram", "gpu", "accelerator", "psys", "system", "other"]


@dataclass(frozen=True)
class Domain:
    """One measured quantity of a meter.

    ``parent``: the domain that already contains this one (RAPL ``core``/``uncore`` are inside
    ``package``): such a domain is reported but never added into a total.
    ``update_period_s``: how often the underlying counter or sensor refreshes (nominal or measured).
    ``source``: where the number comes from (sysfs path, NVML call, formula), for provenance.
    ``estimate``: True when the value is modelled, not measured.
    """

    name: str
    kind: DomainKind
    meter: str
    component: Component
    source: str
    update_period_s: float
    parent: str | None = None
    estimate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reading:
    """One timestamped read of all domains of a meter.

    ``values``: domain name -> joules (energy domains, cumulative since the meter was opened) or
    watts (power domains). ``aux``: optional auxiliary channels per domain (e.g. NVML
    ``sm_clock_mhz``, ``temperature_c``, ``pstate``, ``throttle_reasons``, ``mem_used_bytes``).
    """

    t_ns: int
    values: dict[str, float]
    aux: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    """Is the meter usable here? If not, why, and how to fix it."""

    available: bool
    reason: str = ""
    fix: str | None = None


@runtime_checkable
class PowerMeter(Protocol):
    """A source of energy or power readings. Register implementations in :mod:`.registry`."""

    name: str  # registry name: "rapl", "nvml", "hwmon", "estimate" ... (meters.registry.REGISTRY)
    description: str
    estimate: bool  # True for modelled (never measured) meters

    def probe(self) -> ProbeResult:
        """Cheap check whether the meter works here; never raises."""
        ...

    def open(self) -> list[Domain]:
        """Start using the meter; returns its domains. Raises MeterError when unusable."""
        ...

    def read(self) -> Reading:
        """Read every domain now. Energy values are cumulative joules since open()."""
        ...

    def close(self) -> None:
        ...
