"""Intel Power Gadget (EnergyLib) through ctypes: Windows and Intel macOS.

API (Intel Power Gadget API documentation, EnergyLib): ``IntelEnergyLibInitialize, GetNumNodes,
GetNumMsrs, GetMsrName, GetMsrFunc`` (0 frequency, 1 power, 2 temperature, 3 limit), ``ReadSample``,
``GetPowerData(node, msr, double* results, int* n)`` -- for power MSRs the results are
``[W, cumulative J, cumulative mWh]``, valid only after two ``ReadSample`` calls. ``GetMsrName``
takes ``wchar_t*`` on Windows and ``char*`` on macOS (``EnergyLib.h`` of each platform).

Power Gadget reached end of life in October 2023; Intel names PCM (Performance Counter Monitor)
as its successor (Intel's Power Gadget end-of-life notice, 2023). On Linux use the ``rapl`` meter
instead.

Library search: the ``library_path`` option, then ``$ENERGYBENCH_ENERGYLIB``, then on Windows
``EnergyLib64.dll`` in ``$IPG_Dir`` / ``$IPG_ES_Dir`` (set by the installer) or the default
install folder, on macOS the ``IntelPowerGadget`` framework.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from pathlib import Path

from energybench.errors import MeterError
from energybench.meters.base import Component, Domain, ProbeResult, Reading

ENV_LIBRARY = "ENERGYBENCH_ENERGYLIB"
MAC_FRAMEWORK = "/Library/Frameworks/IntelPowerGadget.framework/IntelPowerGadget"
WINDOWS_DLL = "EnergyLib64.dll"

EOL_NOTE = "Intel Power Gadget reached end of life in Oct 2023; Intel names PCM as its successor"

#: EnergyLib ``GetMsrFunc`` code of a power MSR (0 frequency, 1 power, 2 temperature, 3 power limit).
MSR_FUNC_POWER = 1

#: Power MSRs expose cumulative energy read at each ReadSample; RAPL counters refresh about
#: every 1 ms underneath (Intel SDM Vol. 3B §15.10, RAPL interfaces).
UPDATE_PERIOD_S = 0.001


def candidate_paths(library_path: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where EnergyLib is looked for, in order."""
    if library_path:
        return [Path(library_path)]
    env = os.environ.get(ENV_LIBRARY)
    if env:
        return [Path(env)]
    paths: list[Path] = []
    if sys.platform == "win32":
        for var in ("IPG_Dir", "IPG_ES_Dir"):
            d = os.environ.get(var)
            if d:
                paths.append(Path(d) / WINDOWS_DLL)
        for pf in (os.environ.get("ProgramFiles", r"C:\Program Files"), os.environ.get("ProgramW6432")):
            if pf:
                paths.append(Path(pf) / "Intel" / "Power Gadget 3.6" / WINDOWS_DLL)
                paths.append(Path(pf) / "Intel" / "Power Gadget 3.5" / WINDOWS_DLL)
    elif sys.platform == "darwin":
        paths.append(Path(MAC_FRAMEWORK))
    return paths


def find_library(library_path: str | os.PathLike[str] | None = None) -> Path | None:
    for p in candidate_paths(library_path):
        if p.exists():
            return p
    return None


class EnergyLib:
    """Thin ctypes binding of EnergyLib; every call that returns false raises :class:`MeterError`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            self._lib = ctypes.CDLL(self.path)
        except OSError as exc:
            raise MeterError(f"cannot load EnergyLib {self.path}: {exc}") from exc
        self._wide = sys.platform == "win32"
        c_int_p = ctypes.POINTER(ctypes.c_int)
        name_t = ctypes.c_wchar_p if self._wide else ctypes.c_char_p
        sigs = {
            "IntelEnergyLibInitialize": [],
            "GetNumNodes": [c_int_p],
            "GetNumMsrs": [c_int_p],
            "GetMsrName": [ctypes.c_int, name_t],
            "GetMsrFunc": [ctypes.c_int, c_int_p],
            "ReadSample": [],
            "GetPowerData": [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_double), c_int_p],
        }
        for fname, args in sigs.items():
            try:
                fn = getattr(self._lib, fname)
            except AttributeError as exc:
                raise MeterError(f"{self.path} is not EnergyLib: it has no {fname}") from exc
            fn.argtypes = args
            fn.restype = ctypes.c_bool  # bool (Windows) / int 0-1 (macOS): the low byte decides
        shutdown = getattr(self._lib, "IntelEnergyLibShutdown", None)
        if shutdown is not None:
            shutdown.argtypes, shutdown.restype = [], None
        self._shutdown = shutdown

    def _check(self, ok: bool, call: str) -> None:
        if not ok:
            raise MeterError(f"EnergyLib {call} failed ({self.path})",
                             hint="is the Power Gadget driver installed and running? " + EOL_NOTE)

    def initialize(self) -> None:
        self._check(self._lib.IntelEnergyLibInitialize(), "IntelEnergyLibInitialize")

    def num_nodes(self) -> int:
        n = ctypes.c_int(0)
        self._check(self._lib.GetNumNodes(ctypes.byref(n)), "GetNumNodes")
        return n.value

    def num_msrs(self) -> int:
        n = ctypes.c_int(0)
        self._check(self._lib.GetNumMsrs(ctypes.byref(n)), "GetNumMsrs")
        return n.value

    def msr_name(self, msr: int) -> str:
        if self._wide:
            buf = ctypes.create_unicode_buffer(1024)
            self._check(self._lib.GetMsrName(msr, buf), f"GetMsrName({msr})")
            return buf.value
        cbuf = ctypes.create_string_buffer(1024)
        self._check(self._lib.GetMsrName(msr, cbuf), f"GetMsrName({msr})")
        return cbuf.value.decode("utf-8", "replace")

    def msr_func(self, msr: int) -> int:
        f = ctypes.c_int(-1)
        self._check(self._lib.GetMsrFunc(msr, ctypes.byref(f)), f"GetMsrFunc({msr})")
        return f.value

    def read_sample(self) -> None:
        self._check(self._lib.ReadSample(), "ReadSample")

    def power_data(self, node: int, msr: int) -> list[float]:
        results = (ctypes.c_double * 8)()
        n = ctypes.c_int(0)
        self._check(self._lib.GetPowerData(node, msr, results, ctypes.byref(n)), f"GetPowerData({node}, {msr})")
        return [results[i] for i in range(max(0, min(n.value, 8)))]

    def shutdown(self) -> None:
        if self._shutdown is not None:
            self._shutdown()


def _domain_for(msr_name: str, node: int, source: str) -> Domain:
    """Power Gadget MSR name -> our domain (Processor/Package, IA, GT, DRAM, Platform)."""
    key = msr_name.strip().lower()
    package = f"cpu-package-{node}"

    def dom(name: str, component: Component, parent: str | None) -> Domain:
        return Domain(name=name, kind="energy", meter="powergadget", component=component, source=source,
                      update_period_s=UPDATE_PERIOD_S, parent=parent)

    if key in ("processor", "package"):
        return dom(package, "cpu", None)
    if key == "ia":
        return dom(f"cpu-core-{node}", "cpu-core", package)
    if key == "gt":  # the integrated GPU plane (RAPL PP1) inside the package
        return dom(f"gt-{node}", "uncore", package)
    if key == "dram":
        return dom(f"dram-{node}", "dram", None)
    if key in ("platform", "psys"):
        return dom("psys", "psys", None)
    slug = "-".join(key.split()) or "msr"
    return dom(f"pg-{slug}-{node}", "other", package)  # unknown plane: reported, never added


class PowerGadgetMeter:
    """Cumulative joules since :meth:`open` of every power MSR of every node, via EnergyLib."""

    name = "powergadget"
    description = f"Intel Power Gadget EnergyLib (Windows, Intel macOS; {EOL_NOTE})"
    estimate = False

    def __init__(self, library_path: str | os.PathLike[str] | None = None) -> None:
        self.library_path = library_path
        self._lib: EnergyLib | None = None
        self._chans: list[tuple[int, int, Domain]] = []  # (node, msr, domain)
        self._base: list[float] = []
        self._lock = threading.Lock()

    def probe(self) -> ProbeResult:
        path = find_library(self.library_path)
        if path is None:
            looked = ", ".join(str(p) for p in candidate_paths(self.library_path)) or "nothing (not Windows or macOS)"
            where = "Linux (use the rapl meter)" if sys.platform.startswith("linux") else sys.platform
            return ProbeResult(False, f"Intel Power Gadget not found on {where}; looked for EnergyLib in: {looked}. "
                               f"{EOL_NOTE}",
                               f"on Windows/Intel macOS install Power Gadget 3.6 or set {ENV_LIBRARY} to EnergyLib's path")
        try:
            lib = EnergyLib(path)
            lib.initialize()
            n_nodes, n_msrs = lib.num_nodes(), lib.num_msrs()
        except MeterError as exc:
            return ProbeResult(False, f"{exc.message}. {EOL_NOTE}", exc.hint)
        return ProbeResult(True, f"EnergyLib {path}: {n_nodes} node(s), {n_msrs} MSRs. {EOL_NOTE}")

    def open(self) -> list[Domain]:
        path = find_library(self.library_path)
        if path is None:
            raise MeterError("Intel Power Gadget EnergyLib not found",
                             hint=f"install Power Gadget or set {ENV_LIBRARY}; {EOL_NOTE}")
        lib = EnergyLib(path)
        lib.initialize()
        chans: list[tuple[int, int, Domain]] = []
        for msr in range(lib.num_msrs()):
            if lib.msr_func(msr) != MSR_FUNC_POWER:
                continue
            name = lib.msr_name(msr)
            for node in range(lib.num_nodes()):
                src = f"EnergyLib {path}: GetPowerData(node {node}, msr {msr} '{name}')[1] cumulative J"
                chans.append((node, msr, _domain_for(name, node, src)))
        if not chans:
            raise MeterError(f"EnergyLib {path} reports no power MSRs")
        # Two ReadSample calls before the data is valid (the API's rule); a short gap between them.
        lib.read_sample()
        time.sleep(0.01)
        lib.read_sample()
        base = [self._cumulative_j(lib, node, msr) for node, msr, _ in chans]
        with self._lock:
            self._lib, self._chans, self._base = lib, chans, base
        return [d for _, _, d in chans]

    @staticmethod
    def _cumulative_j(lib: EnergyLib, node: int, msr: int) -> float:
        data = lib.power_data(node, msr)
        if len(data) < 2:
            raise MeterError(f"EnergyLib GetPowerData({node}, {msr}) returned {len(data)} values, expected 3 "
                             "[W, cumulative J, cumulative mWh]")
        return data[1]

    def read(self) -> Reading:
        with self._lock:
            lib = self._lib
            if lib is None:
                raise MeterError("Power Gadget meter read before open()")
            t0 = time.monotonic_ns()
            lib.read_sample()
            t1 = time.monotonic_ns()
            values = {d.name: self._cumulative_j(lib, node, msr) - self._base[i]
                      for i, (node, msr, d) in enumerate(self._chans)}
        return Reading(t_ns=(t0 + t1) // 2, values=values)

    def close(self) -> None:
        with self._lock:
            if self._lib is not None:
                try:
                    self._lib.shutdown()
                finally:
                    self._lib, self._chans, self._base = None, [], []
