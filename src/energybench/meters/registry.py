"""Power meters found by name, and the choice of which ones a measurement uses.

Adding a meter = one module implementing :class:`~energybench.meters.base.PowerMeter` plus one line
in :data:`REGISTRY`. Modules are imported lazily: a meter whose module or optional library is
missing shows up as unavailable (with the import error as the reason); it never breaks import.

Choice (:func:`select_meters`): by default every *real* meter that works here; the estimate meter
only when no real meter measures the CPU, and then :attr:`Selection.warnings` says that CPU energy
is an ESTIMATE. Asking explicitly for a meter that does not work is an error naming why and the fix.
"""

from __future__ import annotations

import importlib
import inspect
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from energybench.errors import MeterError, UsageError
from energybench.meters.base import Domain, PowerMeter, ProbeResult, Reading

#: name -> "module:Class" (lazy import). The order is the order of preference in totals.
REGISTRY: dict[str, str] = {
    "rapl": "energybench.meters.rapl:RaplMeter",
    "nvml": "energybench.meters.nvml:NvmlMeter",
    "amdsmi": "energybench.meters.amdsmi:AmdSmiMeter",  # before hwmon: its counter wins for the same GPU
    "hwmon": "energybench.meters.hwmon:HwmonMeter",
    "powermetrics": "energybench.meters.powermetrics:PowermetricsMeter",
    "powergadget": "energybench.meters.powergadget:PowerGadgetMeter",
    "estimate": "energybench.meters.estimate:EstimateMeter",
}

#: Components that count as "the CPU is measured" (psys is the platform and contains the package).
CPU_COMPONENTS = frozenset({"cpu", "psys"})


class MeterUnavailableError(MeterError, UsageError):
    """A meter asked for by name does not work here (exit code 2: fix the request or the machine)."""

    exit_code = 2


class UnavailableMeter:
    """Stand-in for a registered meter whose module cannot be imported here."""

    estimate = False

    def __init__(self, name: str, reason: str, fix: str | None = None) -> None:
        self.name = name
        self.description = f"{name} (cannot be loaded)"
        self._reason, self._fix = reason, fix

    def probe(self) -> ProbeResult:
        return ProbeResult(False, self._reason, self._fix)

    def open(self) -> list[Domain]:
        raise MeterError(self._reason, hint=self._fix)

    def read(self) -> Reading:
        raise MeterError(self._reason, hint=self._fix)

    def close(self) -> None:
        return None


def meter_names() -> list[str]:
    """Registered meter names, in preference order."""
    return list(REGISTRY)


def _load_class(name: str) -> Any:
    module_name, _, cls_name = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def _accepted(cls: Any, opts: dict[str, Any]) -> dict[str, Any]:
    """The options ``cls`` accepts (every meter gets only its own: cpu_tdp_w, sysfs_root ...)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(opts)
    return {k: v for k, v in opts.items() if k in params}


def create_meter(name: str, **opts: Any) -> PowerMeter:
    """Instantiate meter ``name``; options it does not take are ignored, ``None`` options dropped.

    A meter whose module cannot be imported becomes an :class:`UnavailableMeter` saying why.
    """
    if name not in REGISTRY:
        raise MeterUnavailableError(f"unknown meter {name!r}", hint=f"choose from: {', '.join(meter_names())}")
    opts = {k: v for k, v in opts.items() if v is not None}
    try:
        cls = _load_class(name)
    except ImportError as exc:  # includes ModuleNotFoundError: the module or an optional library
        return UnavailableMeter(name, f"meter module {REGISTRY[name].partition(':')[0]} cannot be imported: {exc}",
                                "install energybench's optional dependency for this meter")
    except AttributeError as exc:
        return UnavailableMeter(name, f"meter class missing: {exc}")
    return cls(**_accepted(cls, opts))


def all_meters(**opts: Any) -> list[PowerMeter]:
    """One instance of every registered meter (unavailable ones included, they say why)."""
    return [create_meter(name, **opts) for name in REGISTRY]


def _safe_probe(meter: PowerMeter) -> ProbeResult:
    try:
        return meter.probe()
    except Exception as exc:  # noqa: BLE001 - probe() must never raise; a buggy one is unavailable
        return ProbeResult(False, f"probe failed: {type(exc).__name__}: {exc}")


@dataclass
class OpenMeter:
    """A meter in use and its domains. Behaves as the meter itself (attributes are delegated), so
    code that wants plain meters can use it as one and code that needs domains finds them here."""

    meter: PowerMeter
    domains: list[Domain]

    def __getattr__(self, name: str) -> Any:  # only called for attributes OpenMeter lacks
        if name in ("meter", "domains"):
            raise AttributeError(name)
        return getattr(self.meter, name)


@dataclass
class Selection:
    """The meters a measurement uses (opened), every meter's probe result, and warnings to show."""

    opened: list[OpenMeter] = field(default_factory=list)
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def meters(self) -> list[OpenMeter]:
        """The opened meters, each with its ``domains`` (an :class:`OpenMeter` acts as its meter)."""
        return list(self.opened)

    @property
    def names(self) -> list[str]:
        return [o.meter.name for o in self.opened]

    @property
    def domains(self) -> list[Domain]:
        return [d for o in self.opened for d in o.domains]

    @property
    def estimate(self) -> bool:
        """True when any energy number will be an estimate."""
        return any(d.estimate for d in self.domains)

    def close(self) -> None:
        for o in self.opened:
            try:
                o.meter.close()
            except Exception:  # noqa: BLE001,S110 - closing must not mask the caller's error
                pass

    def __enter__(self) -> Selection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[OpenMeter]:
        return iter(self.opened)


def _measures_cpu(domains: Sequence[Domain]) -> bool:
    return any(d.component in CPU_COMPONENTS and d.parent is None and not d.estimate for d in domains)


def _first_clause(text: str) -> str:
    for sep in ("; ", ". "):
        text = text.split(sep, 1)[0]
    return text


def _why_no_cpu(probes: dict[str, ProbeResult]) -> str:
    parts = [f"{n}: {_first_clause(p.reason)}" for n, p in probes.items()
             if n in ("rapl", "powermetrics", "powergadget") and not p.available]
    return "; ".join(parts) or "no real CPU meter registered"


def select_meters(requested: list[str] | None = None, *, cpu_tdp_w: float | None = None, sysfs_root: Any = None,
                  allow_estimate: bool = True, **opts: Any) -> Selection:
    """Choose, probe and open the meters of one measurement.

    ``requested`` None: every available real meter; the estimate meter only when none of them
    measures the CPU (and ``allow_estimate``), with a warning. ``requested`` a list: exactly those,
    each must work (:class:`MeterUnavailableError` naming the reason and fix otherwise); ``[]``
    measures no energy at all. Extra ``opts`` go to the meters that accept them.
    """
    meter_opts = dict(opts, cpu_tdp_w=cpu_tdp_w, sysfs_root=sysfs_root)
    sel = Selection()
    try:
        if requested is not None:
            _select_explicit(sel, requested, meter_opts)
        else:
            _select_default(sel, meter_opts, allow_estimate)
    except BaseException:
        sel.close()
        raise
    return sel


def _select_explicit(sel: Selection, requested: list[str], meter_opts: dict[str, Any]) -> None:
    unknown = [n for n in requested if n not in REGISTRY]
    if unknown:
        raise MeterUnavailableError(f"unknown meter(s): {', '.join(map(repr, unknown))}",
                                    hint=f"choose from: {', '.join(meter_names())}")
    for name in dict.fromkeys(requested):
        meter = create_meter(name, **meter_opts)
        probe = _safe_probe(meter)
        sel.probes[name] = probe
        if not probe.available:
            raise MeterUnavailableError(f"meter {name!r} is not available here: {probe.reason}",
                                        hint=probe.fix or "run `energybench meters` to see what works here")
        try:
            domains = meter.open()
        except MeterError as exc:
            raise MeterUnavailableError(f"meter {name!r} failed to open: {exc.message}", hint=exc.hint) from exc
        sel.opened.append(OpenMeter(meter, domains))
    if not requested:
        sel.warnings.append("no meters requested: energy is not measured (time only)")
    elif sel.estimate:
        sel.warnings.append(_estimate_warning(sel))


def _estimate_warning(sel: Selection) -> str:
    how = "; ".join(p.reason for n, p in sel.probes.items()
                    if any(o.meter.name == n and o.meter.estimate for o in sel.opened))
    return f"CPU energy is an ESTIMATE, not a measurement: {how or 'see the domain source'}"


def _select_default(sel: Selection, meter_opts: dict[str, Any], allow_estimate: bool) -> None:
    estimate_meter: PowerMeter | None = None
    for name in REGISTRY:
        meter = create_meter(name, **meter_opts)
        if getattr(meter, "estimate", False):
            estimate_meter = estimate_meter or meter
            continue
        probe = _safe_probe(meter)
        sel.probes[name] = probe
        if not probe.available:
            continue
        try:
            domains = meter.open()
        except MeterError as exc:
            sel.probes[name] = ProbeResult(False, f"open failed: {exc.message}", exc.hint)
            sel.warnings.append(f"meter {name!r} probed fine but failed to open: {exc.one_line()}")
            continue
        sel.opened.append(OpenMeter(meter, domains))
    if estimate_meter is None:
        return
    probe = _safe_probe(estimate_meter)
    sel.probes[estimate_meter.name] = probe
    if _measures_cpu(sel.domains):
        return
    why = _why_no_cpu(sel.probes)
    if not allow_estimate:
        sel.warnings.append(f"CPU energy is not measured: no real CPU meter works ({why}); estimate disabled")
        return
    if not probe.available:
        sel.warnings.append(f"CPU energy is not measured: no real CPU meter works ({why}), and no estimate is "
                            f"possible: {probe.reason}" + (f" ({probe.fix})" if probe.fix else ""))
        return
    try:
        domains = estimate_meter.open()
    except MeterError as exc:
        sel.warnings.append(f"CPU energy is not measured: the estimate failed to open: {exc.one_line()}")
        return
    sel.opened.append(OpenMeter(estimate_meter, domains))
    sel.warnings.append(f"no real CPU meter works here ({why}); " + _estimate_warning(sel))


# ----------------------------------------------------------------------------- update period


@dataclass(frozen=True)
class UpdatePeriod:
    """Measured refresh period of one domain: median interval between value changes (s)."""

    median_s: float | None
    n_changes: int
    n_reads: int
    elapsed_s: float


def measure_update_period(meter: PowerMeter, domain: str | Domain, max_s: float = 1.0, *,
                          changes: int = 6) -> UpdatePeriod:
    """Poll an *opened* meter until ``domain``'s value changed ``changes`` times (or ``max_s``).

    The median interval between changes is the refresh period, to within one read (a read of
    RAPL sysfs takes microseconds). ``median_s`` is None when fewer than two changes were seen.
    """
    name = domain.name if isinstance(domain, Domain) else domain
    t_start = time.monotonic_ns()
    deadline = t_start + int(max_s * 1e9)
    last = meter.read().values.get(name)
    change_t: list[int] = []
    reads = 1
    while time.monotonic_ns() < deadline and len(change_t) < changes + 1:
        r = meter.read()
        reads += 1
        v = r.values.get(name)
        if v != last:
            change_t.append(r.t_ns)
            last = v
        time.sleep(0)
    intervals = [(b - a) / 1e9 for a, b in zip(change_t, change_t[1:], strict=False)]
    med = statistics.median(intervals) if intervals else None
    return UpdatePeriod(median_s=med, n_changes=len(change_t), n_reads=reads,
                        elapsed_s=(time.monotonic_ns() - t_start) / 1e9)


# ----------------------------------------------------------------------------- report (`energybench meters`)


def meters_report(*, cpu_tdp_w: float | None = None, sysfs_root: Any = None, measure_periods: bool = True,
                  max_s: float = 0.5, **opts: Any) -> dict[str, Any]:
    """Every registered meter: available or not and why (with the fix), domains, kinds, nominal
    and measured update periods; and what ``measure`` would use here, with its warnings."""
    meter_opts = dict(opts, cpu_tdp_w=cpu_tdp_w, sysfs_root=sysfs_root)
    rows: list[dict[str, Any]] = []
    for name in REGISTRY:
        meter = create_meter(name, **meter_opts)
        probe = _safe_probe(meter)
        row: dict[str, Any] = {"name": name, "description": getattr(meter, "description", ""),
                               "estimate": bool(getattr(meter, "estimate", False)),
                               "available": probe.available, "reason": probe.reason, "fix": probe.fix,
                               "domains": []}
        if probe.available:
            try:
                domains = meter.open()
            except MeterError as exc:
                row.update(available=False, reason=f"open failed: {exc.message}", fix=exc.hint)
                domains = []
            try:
                for d in domains:
                    entry = d.to_dict()
                    entry["measured_update_period_s"] = None
                    if measure_periods and not d.estimate:
                        try:
                            entry["measured_update_period_s"] = measure_update_period(meter, d, max_s).median_s
                        except MeterError as exc:
                            entry["measure_error"] = exc.one_line()
                    row["domains"].append(entry)
            finally:
                if domains:
                    meter.close()
        rows.append(row)
    sel = select_meters(None, **meter_opts)
    try:
        plan = {"meters": sel.names, "estimate": sel.estimate, "warnings": list(sel.warnings)}
    finally:
        sel.close()
    return {"meters": rows, "measure_uses": plan}
