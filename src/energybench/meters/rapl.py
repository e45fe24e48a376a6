"""RAPL energy counters through the Linux powercap interface (Intel, and AMD Zen).

Facts (Linux Documentation/power/powercap/powercap.rst; Intel SDM Vol. 3B §15.10): every zone
``/sys/class/powercap/intel-rapl:N[:M]/`` has ``name`` (``package-N``, ``core``, ``uncore``,
``dram``, ``psys``), ``energy_uj`` (cumulative microjoules) and ``max_energy_range_uj`` (the wrap
range). Counters update about every 1 ms and can wrap within a minute under load, so the sampler
reads them at least every few seconds. ``core``/``uncore`` are inside the package and are never
added to it. Since Linux 5.10 (CVE-2020-8694, Platypus: https://platypusattack.com) ``energy_uj``
is readable by root only.

AMD Zen packages use the *same* driver and the same ``intel-rapl`` control type: the kernel's
AMD support ("powercap: Add AMD Fam17h RAPL support", Linux 5.11, tested against
``/sys/class/powercap/intel-rapl/intel-rapl:0/energy_uj``) adds no ``amd-rapl`` naming; AMD exposes
the package (and a ``core`` sub-zone) but no DRAM domain. The kernel names a package
``package-N`` or, on parts with several dies per package, ``package-N-die-M``
(``drivers/powercap/intel_rapl_common.c``). The ``intel-rapl-mmio:*`` zones (a second, MMIO
interface to the same package counter on recent Intel client parts) are skipped so the package
is not counted twice.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from energybench.energy import counter_delta
from energybench.errors import MeterError
from energybench.meters.base import Component, Domain, ProbeResult, Reading

DEFAULT_SYSFS_ROOT = "/sys/class/powercap"

#: Nominal refresh period of RAPL energy counters (Intel SDM Vol. 3B §15.10: about every 1 ms).
UPDATE_PERIOD_S = 0.001

_ZONE_RE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
_PACKAGE_RE = re.compile(r"^package-(\d+(?:-die-\d+)?)$")

NO_POWERCAP_REASON = "no powercap (RAPL) interface: not Linux, or a VM without RAPL"
NO_POWERCAP_FIX = ("on bare-metal Linux load the driver (`sudo modprobe intel_rapl_msr`; AMD Zen needs "
                   "Linux 5.11 or newer); in a VM or on another OS use another meter or --cpu-tdp-w for an estimate")


def permission_fix(root: str | Path = DEFAULT_SYSFS_ROOT) -> str:
    """How to make ``energy_uj`` readable (root-only since Linux 5.10, CVE-2020-8694)."""
    return (f"energy_uj is root-only since Linux 5.10 (CVE-2020-8694): run `sudo chmod a+r {root}/intel-rapl:*/energy_uj "
            f"{root}/intel-rapl:*:*/energy_uj` (until reboot), or make it permanent with a udev rule or "
            "/etc/sysfs.conf entries (`mode class/powercap/intel-rapl:0/energy_uj = 0444`)")


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone and the domain it becomes."""

    zone: str  # intel-rapl:0 or intel-rapl:0:1
    path: Path
    raw_name: str  # content of the zone's ``name`` file
    max_range_uj: int
    domain: Domain

    @property
    def energy_path(self) -> Path:
        return self.path / "energy_uj"


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read().strip()


def _read_int(path: Path) -> int:
    with open(path, "rb") as f:
        return int(f.read().strip())


def _zone_dirs(root: Path) -> dict[tuple[int, int | None], Path]:
    """Every ``intel-rapl:N`` and ``intel-rapl:N:M`` zone: flat links (the class dir) or nested dirs."""
    found: dict[tuple[int, int | None], Path] = {}
    tops: list[Path] = []
    candidates = list(root.iterdir())
    ctl = root / "intel-rapl"  # the control-type directory (real sysfs nests zones under it too)
    if ctl.is_dir():
        candidates.extend(ctl.iterdir())
    for entry in candidates:
        m = _ZONE_RE.match(entry.name)
        if not m or not entry.is_dir():
            continue
        key = (int(m.group(1)), None if m.group(2) is None else int(m.group(2)))
        found.setdefault(key, entry)
        if key[1] is None:
            tops.append(entry)
    for top in tops:
        for sub in top.iterdir():
            m = _ZONE_RE.match(sub.name)
            if m and m.group(2) is not None and sub.is_dir():
                found.setdefault((int(m.group(1)), int(m.group(2))), sub)
    return found


def _domain_for(raw: str, zone: str, path: Path, parent_raw: str | None) -> Domain:
    """Map a powercap zone name to our domain (naming of the module docstring)."""
    src = str(path / "energy_uj")
    pkg_m = _PACKAGE_RE.match(parent_raw or raw)
    pkg = pkg_m.group(1) if pkg_m else zone.split(":")[1]
    package = f"cpu-package-{pkg}"

    def dom(name: str, component: Component, parent: str | None) -> Domain:
        return Domain(name=name, kind="energy", meter="rapl", component=component, source=src,
                      update_period_s=UPDATE_PERIOD_S, parent=parent)

    if parent_raw is None:  # top-level zone
        if _PACKAGE_RE.match(raw):
            return dom(package, "cpu", None)
        if raw == "psys":
            return dom("psys", "psys", None)
        if raw == "dram":
            return dom(f"dram-{pkg}", "dram", None)
        return dom(f"rapl-{raw}-{pkg}", "other", None)
    # sub-zones of a package
    if raw == "core":
        return dom(f"cpu-core-{pkg}", "cpu-core", package)
    if raw == "uncore":
        return dom(f"uncore-{pkg}", "uncore", package)
    if raw == "dram":  # DRAM is its own RAPL domain: sysfs hangs it under the package, it is not inside it
        return dom(f"dram-{pkg}", "dram", None)
    # an unknown plane below a package: report it, never add it (it may be part of the package)
    return dom(f"rapl-{raw}-{pkg}", "other", package)


def discover_zones(root: str | Path = DEFAULT_SYSFS_ROOT) -> list[RaplZone]:
    """All RAPL zones under ``root`` (raises OSError when ``root`` cannot be listed)."""
    root = Path(root)
    dirs = _zone_dirs(root)
    names: dict[tuple[int, int | None], str] = {}
    for key, path in dirs.items():
        try:
            names[key] = _read_text(path / "name")
        except OSError:
            continue
    zones: list[RaplZone] = []
    seen: set[str] = set()
    for key in sorted(names, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
        path = dirs[key]
        raw = names[key]
        zone = f"intel-rapl:{key[0]}" + ("" if key[1] is None else f":{key[1]}")
        parent_raw = None if key[1] is None else names.get((key[0], None), f"package-{key[0]}")
        domain = _domain_for(raw, zone, path, parent_raw)
        if domain.name in seen:  # two zones mapping to one name (unusual firmware): keep both, distinctly
            domain = Domain(**{**domain.to_dict(), "name": f"{domain.name}-{zone.replace(':', '-')}"})
        seen.add(domain.name)
        try:
            max_range = _read_int(path / "max_energy_range_uj")
        except (OSError, ValueError):
            max_range = 2**32  # the MSR counter width when the kernel does not say (never seen)
        zones.append(RaplZone(zone=zone, path=path, raw_name=raw, max_range_uj=max_range, domain=domain))
    return zones


class RaplMeter:
    """Cumulative joules since :meth:`open` for every RAPL zone (wrap-around handled, exact ints)."""

    name = "rapl"
    description = "Linux powercap RAPL energy counters (Intel; AMD Zen packages)"
    estimate = False

    def __init__(self, sysfs_root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(sysfs_root) if sysfs_root is not None else Path(DEFAULT_SYSFS_ROOT)
        self._zones: list[RaplZone] = []
        self._prev: list[int] = []
        self._acc_uj: list[int] = []
        self._lock = threading.Lock()

    # -- availability
    def probe(self) -> ProbeResult:
        if not self.root.is_dir():
            return ProbeResult(False, NO_POWERCAP_REASON, NO_POWERCAP_FIX)
        try:
            zones = discover_zones(self.root)
        except OSError as exc:
            return ProbeResult(False, f"cannot list {self.root}: {exc.strerror or exc}", NO_POWERCAP_FIX)
        if not zones:
            return ProbeResult(False, f"{self.root} has no intel-rapl zones (RAPL driver not loaded)",
                               "sudo modprobe intel_rapl_msr (Intel, and AMD Zen on Linux 5.11+)")
        denied, broken = [], []
        for z in zones:
            try:
                _read_int(z.energy_path)
            except PermissionError:
                denied.append(str(z.energy_path))
            except (OSError, ValueError) as exc:
                broken.append(f"{z.energy_path}: {exc}")
        if denied:
            return ProbeResult(False, f"permission denied reading {', '.join(denied)}", permission_fix(self.root))
        if broken:
            return ProbeResult(False, f"cannot read {'; '.join(broken)}", NO_POWERCAP_FIX)
        names = ", ".join(f"{z.domain.name} ({z.zone})" for z in zones)
        return ProbeResult(True, f"{len(zones)} RAPL zones: {names}")

    # -- use
    def open(self) -> list[Domain]:
        if not self.root.is_dir():
            raise MeterError(NO_POWERCAP_REASON, hint=NO_POWERCAP_FIX)
        try:
            zones = discover_zones(self.root)
        except OSError as exc:
            raise MeterError(f"cannot list {self.root}: {exc}", hint=NO_POWERCAP_FIX) from exc
        if not zones:
            raise MeterError(f"{self.root} has no intel-rapl zones", hint="sudo modprobe intel_rapl_msr")
        prev = []
        for z in zones:
            prev.append(self._read_raw(z))
        with self._lock:
            self._zones = zones
            self._prev = prev
            self._acc_uj = [0] * len(zones)
        return [z.domain for z in zones]

    def _read_raw(self, zone: RaplZone) -> int:
        try:
            return _read_int(zone.energy_path)
        except PermissionError as exc:
            raise MeterError(f"permission denied reading {zone.energy_path}", hint=permission_fix(self.root)) from exc
        except (OSError, ValueError) as exc:
            raise MeterError(f"cannot read {zone.energy_path}: {exc}") from exc

    def read(self) -> Reading:
        with self._lock:
            if not self._zones:
                raise MeterError("RAPL meter read before open()")
            t0 = time.monotonic_ns()
            raw = [self._read_raw(z) for z in self._zones]
            t1 = time.monotonic_ns()
            values: dict[str, float] = {}
            for i, z in enumerate(self._zones):
                self._acc_uj[i] += counter_delta(self._prev[i], raw[i], z.max_range_uj)
                self._prev[i] = raw[i]
                values[z.domain.name] = self._acc_uj[i] / 1e6
        return Reading(t_ns=(t0 + t1) // 2, values=values)

    def close(self) -> None:
        with self._lock:
            self._zones, self._prev, self._acc_uj = [], [], []

    @property
    def zones(self) -> list[RaplZone]:
        return list(self._zones)
