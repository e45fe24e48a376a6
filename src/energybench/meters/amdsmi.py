"""AMD GPUs (Instinct, Radeon) through AMD SMI's Python binding, the ``amdsmi`` package (``energybench[amd]``).

Facts (AMD SMI Python API reference, rocm.docs.amd.com/projects/amdsmi; the package's source):

* importing ``amdsmi`` loads ``libamd_smi.so`` (ROCm's ``amd-smi-lib``) from ``$ROCM_HOME/lib`` or
  ``$ROCM_PATH/lib``, then the linker's path, then ``/opt/rocm/lib``; without it the import *prints*
  to stdout and fails with KeyError, so it is imported here lazily with stdout captured, and a
  binding newer than the library fails with AttributeError (a missing symbol);
* ``amdsmi_init(AmdSmiInitFlags.INIT_AMD_GPUS)``, ``amdsmi_get_processor_handles()``,
  ``amdsmi_shut_down()``; failures raise ``AmdSmiLibraryException`` carrying an AMDSMI_STATUS code;
* ``amdsmi_get_energy_count(h)``: ``energy_accumulator`` (``power`` before amdsmi 6.2.1) counts of
  ``counter_resolution`` microjoules each, and a ``timestamp`` in ns -- a 64-bit accumulator;
* ``amdsmi_get_power_info(h)``: ``current_socket_power`` / ``average_socket_power`` in W, ``"N/A"``
  where the GPU has none;
* ``amdsmi_get_gpu_device_bdf(h)`` (``0000:03:00.0``), ``amdsmi_get_gpu_asic_info(h)["market_name"]``.

Per GPU, one domain ``gpu-<PCI address>`` -- the name the hwmon meter gives the same GPU's amdgpu
sensor, so totals count the GPU once when both meters are open (this one first). It is the energy
counter (joules since open) where the GPU has one, else the instantaneous (or else average) power.
The counter is known to be wrong on some GPUs and ROCm versions (ROCm/amdsmi issue #38; Zeus checks
it against power for that reason), so a GPU with both also gets ``gpu-<PCI>-power``, a cross-check
reported beside the counter (parent: the counter domain, never added). On MI250/MI250X the odd GCD
reports no power of its own -- the even GCD's reading holds both (Zeus documents the same) -- so
totals stay right, but per-GCD energies do not.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from dataclasses import dataclass
from typing import Any

from energybench.errors import MeterError
from energybench.meters.base import Domain, ProbeResult, Reading

METER_NAME = "amdsmi"
INSTALL_FIX = ("install AMD's binding with `pip install 'energybench[amd]'` (the amdsmi version of your ROCm); "
               "it needs ROCm's libamd_smi.so (package amd-smi-lib)")
LIBRARY_FIX = ("install ROCm's amd-smi-lib (it provides libamd_smi.so) and set ROCM_PATH to the ROCm root "
               "(e.g. /opt/rocm); on a machine without an AMD GPU use another meter")
#: The counter's refresh period is not documented; nominal, `energybench meters` measures it.
COUNTER_UPDATE_PERIOD_S = 0.01
POWER_UPDATE_PERIOD_S = 0.1
#: AMDSMI_STATUS codes (amdsmi_wrapper): the GPU or its driver is gone.
_LOST = {12: "IO", 14: "FILE_ERROR", 31: "NOT_FOUND", 34: "DRIVER_NOT_LOADED", 51: "NO_DRV", 54: "AMDGPU_RESTART_ERR"}
_INIT_FIXES = {
    34: "load the amdgpu kernel driver (`sudo modprobe amdgpu`); check with `amd-smi list`",
    10: "give this user access to /dev/kfd and /dev/dri/renderD* (the `render` and `video` groups)",
}


def load_amdsmi() -> Any:
    """The ``amdsmi`` module, or MeterError saying why it cannot be used here."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            import amdsmi
    except ImportError as exc:
        raise MeterError(f"the amdsmi package is not installed ({exc})", hint=INSTALL_FIX) from exc
    except (KeyError, OSError) as exc:
        said = " ".join(captured.getvalue().split()) or str(exc)
        raise MeterError(f"amdsmi cannot load libamd_smi.so: {said}", hint=LIBRARY_FIX) from exc
    except AttributeError as exc:
        raise MeterError(f"the amdsmi package does not match this libamd_smi.so: {exc}",
                         hint="install the amdsmi version of your ROCm release") from exc
    return amdsmi


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "err_code", None)
    return int(code) if isinstance(code, int) else None


def _error(amdsmi: Any, exc: BaseException, call: str, where: str) -> MeterError:
    code = _status(exc)
    text = exc.get_error_info() if hasattr(exc, "get_error_info") else str(exc)
    if code in _LOST:
        return MeterError(f"{where}: amdsmi {call} failed: {text}",
                          hint="the GPU was reset or its driver went away; check `amd-smi list` and `dmesg`")
    return MeterError(f"{where}: amdsmi {call} failed: {text}")


@dataclass
class _Gpu:
    handle: Any
    bdf: str
    name: str
    method: str  # energy | current | average
    cross_check: str | None  # the power key beside a counter
    base_uj: float = 0.0
    last_uj: float = 0.0

    @property
    def domain_name(self) -> str:
        return f"gpu-{self.bdf}"


def _energy_uj(amdsmi: Any, handle: Any) -> float:
    d = amdsmi.amdsmi_get_energy_count(handle)
    counts = d["energy_accumulator"] if "energy_accumulator" in d else d["power"]
    return float(counts) * float(d["counter_resolution"])


def _power_keys(amdsmi: Any, handle: Any) -> list[str]:
    """The power_info keys this GPU answers with a number (instantaneous first)."""
    try:
        info = amdsmi.amdsmi_get_power_info(handle)
    except amdsmi.AmdSmiException:
        return []
    return [k for k in ("current_socket_power", "average_socket_power") if isinstance(info.get(k), int | float)]


def _describe(amdsmi: Any, handle: Any) -> _Gpu:
    bdf = str(amdsmi.amdsmi_get_gpu_device_bdf(handle))
    try:
        name = str(amdsmi.amdsmi_get_gpu_asic_info(handle).get("market_name") or "AMD GPU")
    except amdsmi.AmdSmiException:
        name = "AMD GPU"
    powers = _power_keys(amdsmi, handle)
    try:
        energy = _energy_uj(amdsmi, handle)
    except amdsmi.AmdSmiException:
        energy = None
    if energy is not None:
        return _Gpu(handle, bdf, name, "energy", powers[0] if powers else None, energy, energy)
    method = {"current_socket_power": "current", "average_socket_power": "average"}.get(powers[0] if powers else "", "")
    return _Gpu(handle, bdf, name, method, None)


def _domains(gpu: _Gpu) -> list[Domain]:
    base = f"amdsmi GPU {gpu.bdf} ({gpu.name})"
    if gpu.method == "energy":
        out = [Domain(name=gpu.domain_name, kind="energy", meter=METER_NAME, component="gpu",
                      source=f"{base}: amdsmi_get_energy_count, accumulator x resolution (uJ) -> J since open",
                      update_period_s=COUNTER_UPDATE_PERIOD_S)]
        if gpu.cross_check:
            out.append(Domain(name=f"{gpu.domain_name}-power", kind="power", meter=METER_NAME, component="gpu",
                              source=f"{base}: amdsmi_get_power_info {gpu.cross_check} (W), a cross-check of the "
                                     "counter (ROCm/amdsmi issue #38), never added",
                              update_period_s=POWER_UPDATE_PERIOD_S, parent=gpu.domain_name))
        return out
    key = f"{gpu.method}_socket_power"
    return [Domain(name=gpu.domain_name, kind="power", meter=METER_NAME, component="gpu",
                   source=f"{base}: amdsmi_get_power_info {key} (W); no energy counter on this GPU",
                   update_period_s=POWER_UPDATE_PERIOD_S if gpu.method == "current" else 1.0)]


class AmdSmiMeter:
    """AMD GPUs through amdsmi; see the module docstring."""

    name = METER_NAME
    description = "AMD GPUs via AMD SMI (amdsmi package: energy counter, else power)"
    estimate = False

    def __init__(self) -> None:
        self._amdsmi: Any = None
        self._gpus: list[_Gpu] = []
        self._lock = threading.Lock()

    def _start(self) -> tuple[Any, list[_Gpu]]:
        """Load and initialise amdsmi, describe every GPU (amdsmi left initialised)."""
        amdsmi = load_amdsmi()
        try:
            amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except amdsmi.AmdSmiException as exc:
            text = exc.get_error_info() if hasattr(exc, "get_error_info") else str(exc)
            raise MeterError(f"amdsmi_init failed: {text}",
                             hint=_INIT_FIXES.get(_status(exc) or -1, LIBRARY_FIX)) from exc
        try:
            gpus = [_describe(amdsmi, h) for h in amdsmi.amdsmi_get_processor_handles()]
        except amdsmi.AmdSmiException as exc:
            _shut_down(amdsmi)
            raise _error(amdsmi, exc, "GPU enumeration", "amdsmi") from exc
        if not [g for g in gpus if g.method]:
            _shut_down(amdsmi)
            why = "; ".join(f"{g.bdf} {g.name}" for g in gpus) or "none found"
            raise MeterError(f"no AMD GPU reports energy or power through amdsmi ({why})",
                             hint="check `amd-smi metric --power`; on a machine without an AMD GPU use another meter")
        return amdsmi, [g for g in gpus if g.method]

    def probe(self) -> ProbeResult:
        try:
            amdsmi, gpus = self._start()
        except MeterError as exc:
            return ProbeResult(False, exc.message, exc.hint)
        except Exception as exc:  # noqa: BLE001 - probe() never raises
            return ProbeResult(False, f"amdsmi probe failed: {type(exc).__name__}: {exc}")
        _shut_down(amdsmi)
        label = {"energy": "energy counter", "current": "instantaneous power", "average": "average power"}
        return ProbeResult(True, "; ".join(f"gpu-{g.bdf} {g.name}: {label[g.method]}" for g in gpus))

    def open(self) -> list[Domain]:
        amdsmi, gpus = self._start()
        with self._lock:
            self._amdsmi, self._gpus = amdsmi, gpus
        return [d for g in gpus for d in _domains(g)]

    def read(self) -> Reading:
        with self._lock:
            amdsmi = self._amdsmi
            if amdsmi is None:
                raise MeterError("amdsmi meter read before open()")
            values: dict[str, float] = {}
            t0 = time.monotonic_ns()
            for gpu in self._gpus:
                values.update(self._read_gpu(amdsmi, gpu))
            t1 = time.monotonic_ns()
        return Reading(t_ns=(t0 + t1) // 2, values=values)

    @staticmethod
    def _read_gpu(amdsmi: Any, gpu: _Gpu) -> dict[str, float]:
        try:
            if gpu.method != "energy":
                return {gpu.domain_name: float(amdsmi.amdsmi_get_power_info(gpu.handle)[f"{gpu.method}_socket_power"])}
            uj = _energy_uj(amdsmi, gpu.handle)
            out = {gpu.domain_name: (uj - gpu.base_uj) / 1e6}
            if gpu.cross_check:
                value = amdsmi.amdsmi_get_power_info(gpu.handle)[gpu.cross_check]
                if isinstance(value, int | float):
                    out[f"{gpu.domain_name}-power"] = float(value)
        except amdsmi.AmdSmiException as exc:
            raise _error(amdsmi, exc, "read", gpu.domain_name) from exc
        if uj < gpu.last_uj:
            raise MeterError(f"{gpu.domain_name}: amdsmi energy counter went backwards ({gpu.last_uj:.0f} -> "
                             f"{uj:.0f} uJ)", hint="the driver was reloaded or the GPU reset during the run")
        gpu.last_uj = uj
        return out

    def close(self) -> None:
        with self._lock:
            amdsmi, self._amdsmi, self._gpus = self._amdsmi, None, []
        if amdsmi is not None:
            _shut_down(amdsmi)


def _shut_down(amdsmi: Any) -> None:
    with contextlib.suppress(Exception):
        amdsmi.amdsmi_shut_down()
