"""NVIDIA GPU energy and power through NVML (package ``nvidia-ml-py``, module ``pynvml``).

One domain ``gpu-N`` per GPU (N = the NVML index, which follows PCI bus order and ignores
``CUDA_VISIBLE_DEVICES``). The kind is chosen per device, best first (facts from the NVIDIA NVML
API Reference Guide unless marked otherwise):

1. ``nvmlDeviceGetTotalEnergyConsumption``: a cumulative counter in mJ since the driver was loaded
   (Volta and newer) that refreshes every ~20-100 ms (observed; NVML documents no period). Domain
   kind ``energy``, reported in joules since :meth:`NvmlMeter.open`; ``update_period_s`` 0.1 (the
   slow end of that range, so the "window >= 10x update period" rule stays conservative).
2. ``nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)``: instantaneous power in mW. Kind ``power``.
3. ``nvmlDeviceGetPowerUsage``: power in mW, on Ampere (except GA100) and newer a 1 s moving
   average. Kind ``power``, ``update_period_s`` 1.0; the domain's ``source`` says so.

On A100/H100 the power sensor observes only ~25 % of each 100 ms period (Yang et al., SC'24,
"Part-time Power Measurements"): naive energy is off by 39 % on average; their protocol (windows
>= 5 s or >= 32 iterations, >= 4 trials with randomised gaps, discard the rise time) brings it to
~5 %. The domain ``source`` of such GPUs carries that caveat.

Every reading also carries auxiliary channels per GPU (the names of SAMPLES_SCHEMA in
``results.py``): ``sm_clock_mhz``, ``mem_clock_mhz``, ``temperature_c``, ``pstate`` (0 = P0),
``throttle_reasons`` (the clocks-event-reason bit mask) and ``mem_used_bytes``. A channel the GPU
does not support is left out.

NVML errors become :class:`~energybench.errors.MeterError` carrying NVML's error string; a GPU that
falls off the bus mid-run raises :class:`GpuLost` (a ``MeterError``) from :meth:`NvmlMeter.read`,
which the sampler records like any failed read.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pynvml

from energybench.errors import MeterError
from energybench.meters.base import Domain, ProbeResult, Reading

METER_NAME = "nvml"

#: Nominal refresh period of the total-energy counter: ~20-100 ms (observed; NVML documents none).
COUNTER_UPDATE_PERIOD_S = 0.1
#: NVML documents no refresh period for the instantaneous-power field; A100/H100 sensors work in
#: 100 ms windows (Yang et al., SC'24, arXiv:2312.02741), so 0.1 s is nominal.
INSTANT_UPDATE_PERIOD_S = 0.1
#: nvmlDeviceGetPowerUsage is a 1 s average on Ampere (except GA100) and newer (NVML API Reference Guide).
AVERAGE_UPDATE_PERIOD_S = 1.0

PART_TIME_CAVEAT = (
    "CAVEAT (A100/H100): the power sensor observes only ~25% of each 100 ms period (Yang et al., "
    "SC'24, 'Part-time Power Measurements'); naive energy is off by 39% on average -- use windows "
    ">= 5 s or >= 32 iterations and >= 4 trials with randomised gaps, discarding the rise time (~5%)"
)
_PART_TIME_GPUS = re.compile(r"\b(A100|H100)\b", re.IGNORECASE)

NO_DRIVER_REASON = "no NVIDIA driver (libnvidia-ml.so.1 not found)"
NO_DRIVER_FIX = ("install the NVIDIA driver (it provides libnvidia-ml.so.1; nvml.dll on Windows) "
                 "on a machine with an NVIDIA GPU; check with `nvidia-smi`")

#: NVML codes meaning "this query does not exist on this GPU/driver": try the next method.
_UNSUPPORTED = frozenset({
    pynvml.NVML_ERROR_NOT_SUPPORTED,
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
    pynvml.NVML_ERROR_NO_DATA,
    pynvml.NVML_ERROR_INVALID_ARGUMENT,
})
#: NVML codes meaning the GPU is gone (fell off the bus, reset, removed).
_LOST = frozenset({
    pynvml.NVML_ERROR_GPU_IS_LOST,
    pynvml.NVML_ERROR_GPU_NOT_FOUND,
    pynvml.NVML_ERROR_NOT_FOUND,
    pynvml.NVML_ERROR_RESET_REQUIRED,
})

class GpuLost(MeterError):
    """A GPU disappeared while being measured (NVML_ERROR_GPU_IS_LOST / NOT_FOUND / RESET_REQUIRED)."""


# ------------------------------------------------------------------------------------ errors
def nvml_error_text(exc: BaseException) -> str:
    """NVML's own error string for ``exc`` (``"GPU is lost"``, ``"Not Supported"``...)."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - str() of an NVMLError may call into the library
        return f"NVML error {getattr(exc, 'value', '?')}"


def _code(exc: BaseException) -> int | None:
    return getattr(exc, "value", None) if isinstance(exc, pynvml.NVMLError) else None


def _init_failure(exc: pynvml.NVMLError) -> tuple[str, str]:
    """(reason, fix) for a failed nvmlInit."""
    code = _code(exc)
    text = nvml_error_text(exc)
    if code == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return NO_DRIVER_REASON, NO_DRIVER_FIX
    if code == pynvml.NVML_ERROR_DRIVER_NOT_LOADED:
        return (f"the NVIDIA kernel driver is not loaded (NVML: {text})",
                "load it (`sudo modprobe nvidia`) or reinstall the driver; check with `nvidia-smi`")
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return (f"insufficient permissions to use NVML (NVML: {text})",
                "give this user read/write access to /dev/nvidia* (e.g. the `video` group) or run "
                "where the GPU is accessible (in a container: --gpus all)")
    if code == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        return (f"NVML library and kernel driver versions differ (NVML: {text})",
                "reboot, or reload the nvidia kernel module after the driver update")
    return f"NVML initialisation failed (NVML: {text})", "check the driver with `nvidia-smi`"


def _meter_error(exc: BaseException, call: str, where: str) -> MeterError:
    """Map an NVML error from ``call`` on ``where`` (``gpu-0`` or ``NVML``) to a MeterError."""
    code = _code(exc)
    text = nvml_error_text(exc)
    message = f"{where}: NVML {call} failed: {text}"
    if code in _LOST:
        return GpuLost(message, hint="the GPU fell off the bus or was reset; check `nvidia-smi` and "
                                     "the kernel log (`dmesg`, Xid errors)")
    if code == pynvml.NVML_ERROR_NO_PERMISSION:
        return MeterError(message, hint="this user may not query the GPU; check /dev/nvidia* permissions")
    if code == pynvml.NVML_ERROR_UNINITIALIZED:
        return MeterError(message, hint="the NVML meter was closed (or never opened) before reading")
    return MeterError(message)


# ------------------------------------------------------------------------------------ devices
@dataclass
class _Gpu:
    """One opened GPU: handle, chosen reading method and per-channel support."""

    index: int
    handle: Any
    name: str
    method: str  # "energy" | "instant" | "average"
    domain: Domain
    base_mj: int = 0  # counter value at open()
    last_mj: int = 0
    aux_off: set[str] = field(default_factory=set)  # aux channels this GPU does not support

    @property
    def domain_name(self) -> str:
        return self.domain.name


def _str(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _field_number(fv: Any) -> float:
    """The number in an ``nvmlFieldValue_t`` according to its ``valueType``."""
    vt = fv.valueType
    v = fv.value
    if vt == pynvml.NVML_VALUE_TYPE_DOUBLE:
        return float(v.dVal)
    if vt == pynvml.NVML_VALUE_TYPE_UNSIGNED_INT:
        return float(v.uiVal)
    if vt == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG:
        return float(v.ulVal)
    if vt == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG:
        return float(v.ullVal)
    if vt == pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        return float(v.sllVal)
    if vt == pynvml.NVML_VALUE_TYPE_SIGNED_INT:
        return float(v.siVal)
    if vt == pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT:
        return float(v.usVal)
    raise ValueError(f"unknown NVML value type {vt}")


def _instant_power_mw(handle: Any) -> float:
    """Instantaneous power in mW via FieldValues(NVML_FI_DEV_POWER_INSTANT); raises NVMLError."""
    values = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
    fv = values[0]
    if fv.nvmlReturn != pynvml.NVML_SUCCESS:
        raise pynvml.NVMLError(fv.nvmlReturn)
    return _field_number(fv)


def _choose_method(handle: Any) -> str | None:
    """The best power/energy query this GPU answers: energy, instant, average, or None."""
    probes = (
        ("energy", lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
        ("instant", lambda: _instant_power_mw(handle)),
        ("average", lambda: pynvml.nvmlDeviceGetPowerUsage(handle)),
    )
    for method, call in probes:
        try:
            call()
            return method
        except pynvml.NVMLError as exc:
            if _code(exc) not in _UNSUPPORTED:
                raise
    return None


def _domain(index: int, name: str, method: str) -> Domain:
    caveat = f"; {PART_TIME_CAVEAT}" if _PART_TIME_GPUS.search(name) else ""
    if method == "energy":
        kind, period = "energy", COUNTER_UPDATE_PERIOD_S
        source = (f"NVML nvmlDeviceGetTotalEnergyConsumption (GPU {index}, {name}): cumulative mJ "
                  "since driver load (Volta+), refreshes every ~20-100 ms; joules since meter open")
    elif method == "instant":
        kind, period = "power", INSTANT_UPDATE_PERIOD_S
        source = (f"NVML nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT) (GPU {index}, {name}): "
                  "instantaneous board power, mW -> W")
    else:
        kind, period = "power", AVERAGE_UPDATE_PERIOD_S
        source = (f"NVML nvmlDeviceGetPowerUsage (GPU {index}, {name}): board power, mW -> W; on "
                  "Ampere (except GA100) and newer a 1 s moving AVERAGE, so short phases are smeared")
    return Domain(name=f"gpu-{index}", kind=kind, meter=METER_NAME, component="gpu",
                  source=source + caveat, update_period_s=period)


# ------------------------------------------------------------------------------------ meter
class NvmlMeter:
    """NVIDIA GPUs through NVML: one ``gpu-N`` domain per GPU (see the module docstring).

    ``devices``: NVML indices to measure (default: every GPU NVML sees).
    ``aux``: also read clocks, temperature, P-state, throttle reasons and memory each read.
    Other keyword options are accepted and ignored, so a registry can hand one option set to
    every meter.
    """

    name = METER_NAME
    description = "NVIDIA GPUs via NVML (energy counter where supported, else power)"
    estimate = False

    def __init__(self, devices: list[int] | None = None, *, aux: bool = True, **_ignored: Any) -> None:
        self.devices = list(devices) if devices is not None else None
        self.aux = aux
        self._gpus: list[_Gpu] = []
        self._open = False
        self._lock = threading.Lock()
        #: devices skipped at open() because they report no power at all (index -> reason)
        self.skipped: dict[int, str] = {}

    # ---------------------------------------------------------------- probe
    def probe(self) -> ProbeResult:
        """Is NVML usable here, and what would each GPU report? Never raises."""
        try:
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as exc:
                reason, fix = _init_failure(exc)
                return ProbeResult(False, reason, fix)
            try:
                count = pynvml.nvmlDeviceGetCount()
                if count == 0:
                    return ProbeResult(False, "the NVIDIA driver is loaded but reports no GPU",
                                       "check `nvidia-smi`; in a container pass the GPUs (--gpus all)")
                indices, bad = self._indices(count)
                if bad:
                    return ProbeResult(False, f"requested GPU index {bad} does not exist "
                                              f"(NVML sees {count}: 0..{count - 1})",
                                       "pick indices from `energybench doctor`")
                parts: list[str] = []
                for i in indices:
                    handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                    name = _str(pynvml.nvmlDeviceGetName(handle))
                    method = _choose_method(handle)
                    label = {"energy": "energy counter", "instant": "instantaneous power",
                             "average": "1 s average power", None: "no power reading"}[method]
                    parts.append(f"gpu-{i} {name}: {label}")
                if all(p.endswith("no power reading") for p in parts):
                    return ProbeResult(False, "no GPU reports power or energy through NVML ("
                                       + "; ".join(parts) + ")",
                                       "this GPU/driver does not expose power; use another meter")
                return ProbeResult(True, "; ".join(parts))
            finally:
                try:
                    pynvml.nvmlShutdown()
                except pynvml.NVMLError:
                    pass
        except pynvml.NVMLError as exc:
            return ProbeResult(False, f"NVML query failed: {nvml_error_text(exc)}",
                               "check the GPU with `nvidia-smi`")
        except Exception as exc:  # noqa: BLE001 - probe() never raises
            return ProbeResult(False, f"NVML probe failed: {type(exc).__name__}: {exc}")

    def _indices(self, count: int) -> tuple[list[int], int | None]:
        if self.devices is None:
            return list(range(count)), None
        for i in self.devices:
            if not 0 <= i < count:
                return [], i
        return list(self.devices), None

    # ---------------------------------------------------------------- open / read / close
    def open(self) -> list[Domain]:
        """Initialise NVML, choose each GPU's method, remember counter baselines; returns domains."""
        with self._lock:
            if self._open:
                return [g.domain for g in self._gpus]
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as exc:
                reason, fix = _init_failure(exc)
                raise MeterError(f"NVML meter unavailable: {reason}", hint=fix) from exc
            try:
                self._gpus = self._open_devices()
            except BaseException:
                self._gpus = []
                try:
                    pynvml.nvmlShutdown()
                except pynvml.NVMLError:
                    pass
                raise
            self._open = True
            return [g.domain for g in self._gpus]

    def _open_devices(self) -> list[_Gpu]:
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            raise _meter_error(exc, "nvmlDeviceGetCount", "NVML") from exc
        if count == 0:
            raise MeterError("NVML meter unavailable: the NVIDIA driver reports no GPU",
                             hint="check `nvidia-smi`; in a container pass the GPUs (--gpus all)")
        indices, bad = self._indices(count)
        if bad is not None:
            raise MeterError(f"NVML meter: GPU index {bad} does not exist (NVML sees {count} GPU(s): "
                             f"0..{count - 1})", hint="pick indices listed by `energybench doctor`")
        gpus: list[_Gpu] = []
        self.skipped = {}
        for i in indices:
            where = f"gpu-{i}"
            call = "nvmlDeviceGetHandleByIndex"
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                call = "nvmlDeviceGetName"
                name = _str(pynvml.nvmlDeviceGetName(handle))
                call = "power/energy query"
                method = _choose_method(handle)
            except pynvml.NVMLError as exc:
                raise _meter_error(exc, call, where) from exc
            if method is None:
                self.skipped[i] = f"{name}: NVML reports neither energy nor power"
                continue
            gpu = _Gpu(index=i, handle=handle, name=name, method=method, domain=_domain(i, name, method))
            if method == "energy":
                try:
                    gpu.base_mj = gpu.last_mj = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
                except pynvml.NVMLError as exc:
                    raise _meter_error(exc, "nvmlDeviceGetTotalEnergyConsumption", where) from exc
            gpus.append(gpu)
        if not gpus:
            raise MeterError("NVML meter unavailable: no GPU reports power or energy ("
                             + "; ".join(f"gpu-{i} {why}" for i, why in self.skipped.items()) + ")",
                             hint="this GPU/driver does not expose power through NVML")
        return gpus

    def read(self) -> Reading:
        """Read every GPU: joules since open (counter GPUs) or watts (power GPUs), plus aux channels.

        ``t_ns`` is the midpoint of the primary (energy/power) queries. Raises :class:`GpuLost`
        when a GPU disappeared, :class:`MeterError` for any other NVML failure.
        """
        with self._lock:
            if not self._open:
                raise MeterError("NVML meter read before open()", hint="call open() first")
            values: dict[str, float] = {}
            t0 = time.monotonic_ns()
            for gpu in self._gpus:
                values[gpu.domain_name] = self._read_primary(gpu)
            t1 = time.monotonic_ns()
            aux: dict[str, dict[str, float]] = {}
            if self.aux:
                for gpu in self._gpus:
                    aux[gpu.domain_name] = self._read_aux(gpu)
            return Reading(t_ns=(t0 + t1) // 2, values=values, aux=aux)

    def _read_primary(self, gpu: _Gpu) -> float:
        try:
            if gpu.method == "energy":
                mj = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
                if mj < gpu.last_mj:
                    raise MeterError(f"{gpu.domain_name}: NVML energy counter went backwards "
                                     f"({gpu.last_mj} -> {mj} mJ)",
                                     hint="the driver was reloaded or the GPU reset during the run")
                gpu.last_mj = mj
                return (mj - gpu.base_mj) / 1000.0
            if gpu.method == "instant":
                return _instant_power_mw(gpu.handle) / 1000.0
            return pynvml.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0
        except pynvml.NVMLError as exc:
            call = {"energy": "nvmlDeviceGetTotalEnergyConsumption",
                    "instant": "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)",
                    "average": "nvmlDeviceGetPowerUsage"}[gpu.method]
            raise _meter_error(exc, call, gpu.domain_name) from exc

    def _read_aux(self, gpu: _Gpu) -> dict[str, float]:
        h = gpu.handle
        queries = {
            "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
            "temperature_c": lambda: _temperature_c(h),
            "pstate": lambda: pynvml.nvmlDeviceGetPerformanceState(h),
            "throttle_reasons": lambda: _clocks_event_reasons(h),
            "mem_used_bytes": lambda: pynvml.nvmlDeviceGetMemoryInfo(h).used,
        }
        out: dict[str, float] = {}
        for channel, query in queries.items():
            if channel in gpu.aux_off:
                continue
            try:
                out[channel] = float(query())
            except pynvml.NVMLError as exc:
                code = _code(exc)
                if code in _LOST:
                    raise _meter_error(exc, f"aux query {channel}", gpu.domain_name) from exc
                if code in _UNSUPPORTED:
                    gpu.aux_off.add(channel)
                # any other error: leave this one value out of this reading
        return out

    def close(self) -> None:
        """Shut NVML down (idempotent)."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            self._gpus = []
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass

    def __enter__(self) -> NvmlMeter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _temperature_c(handle: Any) -> int:
    """GPU core temperature in degC (nvmlDeviceGetTemperature; newer drivers: ...TemperatureV)."""
    try:
        return pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
    except pynvml.NVMLError as exc:
        if _code(exc) != pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
            raise
        return pynvml.nvmlDeviceGetTemperatureV(handle, pynvml.NVML_TEMPERATURE_GPU)


def _clocks_event_reasons(handle: Any) -> int:
    """Clocks event (throttle) reasons bit mask; drivers before r535 only have the old name."""
    try:
        return pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle)
    except pynvml.NVMLError as exc:
        if _code(exc) != pynvml.NVML_ERROR_FUNCTION_NOT_FOUND:
            raise
        return pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)


# ------------------------------------------------------------------------------------ inventory
def gpu_inventory() -> list[dict[str, Any]]:
    """Every GPU NVML sees, for results metadata and ``doctor``; ``[]`` when NVML is unusable.

    Keys: ``index``, ``name``, ``uuid``, ``driver_version``, ``cuda_driver_version`` (e.g.
    ``"12.4"``), ``memory_total_bytes``, ``power_limit_w``, ``compute_capability`` (``"9.0"``),
    ``power_method`` (``energy`` | ``instant`` | ``average`` | ``None``). A field the GPU does not
    answer is ``None``. Raises :class:`GpuLost` if a GPU disappears while being listed.
    """
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        driver = _maybe(lambda: _str(pynvml.nvmlSystemGetDriverVersion()))
        cuda = _maybe(pynvml.nvmlSystemGetCudaDriverVersion)
        cuda_s = f"{cuda // 1000}.{(cuda % 1000) // 10}" if isinstance(cuda, int) else None
        out: list[dict[str, Any]] = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            try:
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
            except pynvml.NVMLError as exc:
                raise _meter_error(exc, "nvmlDeviceGetHandleByIndex", f"gpu-{i}") from exc
            where = f"gpu-{i}"
            limit_mw = _maybe(lambda: pynvml.nvmlDeviceGetPowerManagementLimit(h), where)
            cc = _maybe(lambda: pynvml.nvmlDeviceGetCudaComputeCapability(h), where)
            mem = _maybe(lambda: pynvml.nvmlDeviceGetMemoryInfo(h), where)
            out.append({
                "index": i,
                "name": _maybe(lambda: _str(pynvml.nvmlDeviceGetName(h)), where),
                "uuid": _maybe(lambda: _str(pynvml.nvmlDeviceGetUUID(h)), where),
                "driver_version": driver,
                "cuda_driver_version": cuda_s,
                "memory_total_bytes": int(mem.total) if mem is not None else None,
                "power_limit_w": limit_mw / 1000.0 if limit_mw is not None else None,
                "compute_capability": f"{cc[0]}.{cc[1]}" if cc is not None else None,
                "power_method": _maybe(lambda: _choose_method(h), where),
            })
        return out
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _maybe(query: Any, where: str = "NVML") -> Any:
    """``query()``, or None on a non-fatal NVML error (unsupported...); a lost GPU raises GpuLost."""
    try:
        return query()
    except pynvml.NVMLError as exc:
        if _code(exc) in _LOST:
            raise _meter_error(exc, "inventory query", where) from exc
        return None
