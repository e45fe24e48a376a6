"""Power meters: the protocol (:mod:`.base`) and the registry that finds them by name.

Meter modules (``rapl``, ``nvml``, ``amdsmi``, ``hwmon``, ``powermetrics``, ``powergadget``,
``estimate``) are imported lazily by the registry, so a missing optional library never breaks
``import energybench.meters``.
"""

from __future__ import annotations

from energybench.meters.base import Domain, PowerMeter, ProbeResult, Reading
from energybench.meters.registry import (
    REGISTRY,
    MeterUnavailableError,
    OpenMeter,
    Selection,
    UpdatePeriod,
    all_meters,
    create_meter,
    measure_update_period,
    meter_names,
    meters_report,
    select_meters,
)

__all__ = [
    "Domain", "PowerMeter", "ProbeResult", "Reading", "REGISTRY", "MeterUnavailableError", "OpenMeter",
    "Selection", "UpdatePeriod", "all_meters", "create_meter", "measure_update_period", "meter_names",
    "meters_report", "select_meters",
]
