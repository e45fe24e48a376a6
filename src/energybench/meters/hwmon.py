"""Energy and power sensors of Linux hwmon devices: AMD and Intel GPUs, AMD CPUs, platform meters.

Facts (Linux Documentation/hwmon/sysfs-interface.rst): every ``/sys/class/hwmon/hwmonN/`` has a
``name`` (the driver's), may have a ``device`` link to the device it belongs to, and exposes
``energy[1-*]_input`` (cumulative energy, microjoules), ``power[1-*]_input`` (instantaneous power,
microwatts), ``power[1-*]_average`` (average power, microwatts; ``power[1-*]_average_interval`` in
ms where the driver says) and optional ``*_label`` files naming each channel. The drivers that
matter here:

* ``amdgpu`` (Radeon and Instinct; Documentation/gpu/amdgpu/thermal.rst): ``power1_average`` is the
  average power of the SoC -- "on APUs this includes the CPU" -- and newer GPUs add ``power1_input``.
  APUs are the ones with a Northbridge voltage (``in1_input``, "APUs only" in the same document):
  their domain gets component ``psys``, counted only when no CPU package is measured;
* ``i915`` and ``xe`` (Intel Arc and data-centre GPUs; Documentation/ABI/testing/
  sysfs-driver-intel-i915-hwmon and -xe-hwmon): ``energy1_input`` of the card; xe adds
  ``energy2_input``, the package, labelled ``card`` and ``pkg`` -- the package is inside the card;
* ``amd_energy`` (Documentation/hwmon/amd_energy.rst; out of tree since Linux 5.13): RAPL counters
  of every core (``Ecore000``...) and socket (``Esocket0``), root-only since the Platypus fix;
* ``power_meter`` (ACPI 4.0 power meter device, Documentation/hwmon/acpi_power_meter.rst): the
  platform's power as the firmware measures it, treated as a whole-machine (``system``) domain.

Domains: per device, one main domain (its energy counter if it has one, else its first power
channel) and the other channels beside it, reported with ``parent`` = the main domain and never
added. A GPU's main domain is ``gpu-<PCI address>`` (the ``device`` link), the name the amdsmi meter
gives the same GPU, so totals count it once whichever meters are open; amd_energy sockets are
``cpu-package-N`` like RAPL's. Channels of drivers energybench does not know are reported, never
added (they may overlap other domains: board rails, a PSU). Counters are joules since open; the
interface documents no wrap range, so a counter that goes backwards is taken to have wrapped at
2^32 (or 2^64) microjoules when the implied power is plausible, and as a reset (a failed read) when
not. Every read opens the files anew: a device that disappears mid-run fails the read.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from energybench.energy import counter_delta
from energybench.errors import MeterError
from energybench.meters.base import Component, Domain, ProbeResult, Reading

METER_NAME = "hwmon"
DEFAULT_ROOT = "/sys/class/hwmon"
#: Overrides DEFAULT_ROOT (a copy of a hwmon tree, a test tree).
ENV_ROOT = "ENERGYBENCH_HWMON_ROOT"

GPU_DRIVERS = frozenset({"amdgpu", "i915", "xe", "nouveau", "radeon"})
#: A wrapped counter implying more than this (per domain) is a reset, not a wrap.
MAX_PLAUSIBLE_W = 5000.0
#: Nominal refresh periods where the driver states none (``energybench meters`` measures the real
#: one): RAPL-backed counters refresh every ~1 ms (amd_energy: AMD PPR, RAPL MSRs); other energy
#: counters 10 ms; instantaneous power 0.1 s; averages 1 s unless ``powerN_average_interval`` says.
PERIOD_S = {"amd_energy": 0.001, "energy": 0.01, "input": 0.1, "average": 1.0}

_FILE_RE = re.compile(r"^(energy|power)(\d+)_(input|average)$")
_PCI_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_AMD_ENERGY_RE = re.compile(r"^E(socket|core)(\d+)$", re.IGNORECASE)

NO_HWMON_FIX = ("hwmon sensors come from drivers: amdgpu (AMD GPUs), i915/xe (Intel GPUs), amd_energy "
                "(AMD CPUs); in a VM or on another OS use another meter")


def permission_fix(paths: Iterable[str]) -> str:
    files = " ".join(sorted(paths))
    return (f"these files are root-only: `sudo chmod a+r {files}` (until reboot), or a udev rule, e.g. "
            "ACTION==\"add\", SUBSYSTEM==\"hwmon\", RUN+=\"/bin/sh -c 'chmod a+r /sys%p/energy*_input'\"")


def root_from_env(root: str | os.PathLike[str] | None) -> Path:
    return Path(root or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


@dataclass(frozen=True)
class Channel:
    """One energy or power file of one hwmon device, and the domain it becomes."""

    hwmon: str  # hwmon3
    driver: str  # content of ``name``
    device: str  # PCI address or device name (from the ``device`` link), else the hwmon name
    path: Path
    label: str | None
    domain: Domain

    @property
    def kind(self) -> str:
        return self.domain.kind


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read().strip()


def _read_int(path: Path) -> int:
    with open(path, "rb") as f:
        return int(f.read().strip())


def _hwmon_dirs(root: Path) -> list[Path]:
    def number(p: Path) -> int:
        digits = p.name[5:]
        return int(digits) if digits.isdigit() else 1 << 30
    return sorted((p for p in root.iterdir() if p.name.startswith("hwmon") and p.is_dir()), key=number)


def _device_name(hwmon: Path) -> str:
    link = hwmon / "device"
    return Path(os.path.realpath(link)).name if link.exists() else hwmon.name


@dataclass(frozen=True)
class _Raw:
    """A sensor file found on disk, before it is named."""

    kind: str  # energy | power
    index: int
    suffix: str  # input | average
    path: Path
    label: str | None


def _raw_channels(hwmon: Path, denied: list[str]) -> list[_Raw]:
    """The readable energy/power files of one device (power: ``_input`` before ``_average``)."""
    found: dict[tuple[str, int], _Raw] = {}
    for entry in sorted(hwmon.iterdir(), key=lambda p: p.name):
        m = _FILE_RE.match(entry.name)
        if not m:
            continue
        kind, index, suffix = m.group(1), int(m.group(2)), m.group(3)
        if (kind, index) in found and found[(kind, index)].suffix == "input":
            continue
        try:
            _read_int(entry)
        except PermissionError:
            denied.append(str(entry))
            continue
        except (OSError, ValueError):
            continue  # listed but unsupported here (amdgpu answers EOPNOTSUPP/ENODATA): not a channel
        label_file = hwmon / f"{kind}{index}_label"
        label = _read_text(label_file) if label_file.exists() else None
        found[(kind, index)] = _Raw(kind, index, suffix, entry, label)
    return sorted(found.values(), key=lambda r: (r.kind != "energy", r.index))


def _period(driver: str, raw: _Raw) -> float:
    if raw.kind == "energy":
        return PERIOD_S["amd_energy"] if driver == "amd_energy" else PERIOD_S["energy"]
    interval = raw.path.parent / f"power{raw.index}_average_interval"
    if raw.suffix == "average" and interval.exists():
        try:
            return _read_int(interval) / 1000.0
        except (OSError, ValueError):
            pass
    return PERIOD_S[raw.suffix]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _gpu_names(device: str, raws: list[_Raw], apu: bool) -> list[tuple[str, Component, str | None]]:
    main = next((r for r in raws if r.kind == "energy" and (r.label or "").lower() == "card"), raws[0])
    base = f"gpu-{device}"
    out = []
    for r in raws:
        if r is main:
            out.append((base, "psys" if apu else "gpu", None))
        else:
            out.append((f"{base}-{_slug(r.label or f'{r.kind}{r.index}-{r.suffix}')}", "gpu", base))
    return out


def _amd_energy_names(raws: list[_Raw]) -> list[tuple[str, Component, str | None]]:
    sockets = sorted(int(m.group(2)) for r in raws if (m := _AMD_ENERGY_RE.match(r.label or "")) and
                     m.group(1).lower() == "socket") or [0]
    cores = sum(1 for r in raws if (r.label or "").lower().startswith("ecore"))
    per_socket = max(cores // len(sockets), 1)
    out: list[tuple[str, Component, str | None]] = []
    for r in raws:
        m = _AMD_ENERGY_RE.match(r.label or "")
        if m and m.group(1).lower() == "socket":
            out.append((f"cpu-package-{int(m.group(2))}", "cpu", None))
        elif m:  # cores are numbered socket by socket (amd_energy.rst)
            socket = sockets[min(int(m.group(2)) // per_socket, len(sockets) - 1)]
            out.append((f"cpu-core-{int(m.group(2)):03d}", "cpu-core", f"cpu-package-{socket}"))
        else:
            out.append((f"amd-energy-{r.kind}{r.index}", "other", f"cpu-package-{sockets[0]}"))
    return out


def _names(driver: str, device: str, hwmon: Path, raws: list[_Raw]) -> list[tuple[str, Component, str | None]]:
    """(domain name, component, parent) of each channel, by driver (see the module docstring)."""
    if driver in GPU_DRIVERS:
        return _gpu_names(device, raws, apu=driver == "amdgpu" and (hwmon / "in1_input").exists())
    if driver == "amd_energy":
        return _amd_energy_names(raws)
    base = f"{_slug(driver)}-{_slug(device)}"
    if driver == "power_meter":
        return [(base if i == 0 else f"{base}-{r.kind}{r.index}", "system", None if i == 0 else base)
                for i, r in enumerate(raws)]
    return [(f"{base}-{_slug(r.label or f'{r.kind}{r.index}')}", "other", f"hwmon:{driver}") for r in raws]


def _source(driver: str, raw: _Raw, device: str, apu: bool) -> str:
    unit = "cumulative uJ -> J since open" if raw.kind == "energy" else "uW -> W"
    what = {"input": "instantaneous" if raw.kind == "power" else "counter", "average": "average"}[raw.suffix]
    label = f" '{raw.label}'" if raw.label else ""
    note = ""
    if apu:
        note = "; an APU: this is the whole SoC, CPU included (amdgpu thermal.rst), counted only without a CPU meter"
    elif driver not in GPU_DRIVERS | {"amd_energy", "power_meter"}:
        note = "; a driver energybench does not classify: reported, never added to totals"
    return f"hwmon {driver}{label} ({device}) {raw.path}: {what}, {unit}{note}"


def discover_channels(root: str | os.PathLike[str]) -> tuple[list[Channel], list[str]]:
    """Every readable energy/power channel under ``root``, and the files that were permission-denied.

    Raises OSError when ``root`` cannot be listed.
    """
    channels: list[Channel] = []
    denied: list[str] = []
    for hwmon in _hwmon_dirs(Path(root)):
        try:
            driver = _read_text(hwmon / "name")
        except OSError:
            continue
        raws = _raw_channels(hwmon, denied)
        if not raws:
            continue
        device = _device_name(hwmon)
        device = device if _PCI_RE.match(device) or driver not in GPU_DRIVERS else hwmon.name
        apu = driver == "amdgpu" and (hwmon / "in1_input").exists()
        for raw, (name, component, parent) in zip(raws, _names(driver, device, hwmon, raws), strict=True):
            is_main_apu = apu and parent is None
            domain = Domain(name=name, kind="energy" if raw.kind == "energy" else "power", meter=METER_NAME,
                            component=component, source=_source(driver, raw, device, is_main_apu),
                            update_period_s=_period(driver, raw), parent=parent)
            channels.append(Channel(hwmon=hwmon.name, driver=driver, device=device, path=raw.path,
                                    label=raw.label, domain=domain))
    return channels, denied


def energy_delta_uj(prev: int, cur: int, dt_s: float, where: str) -> int:
    """Increase of a hwmon energy counter between two reads (wrap at 2^32 or 2^64 uJ; see docstring)."""
    if cur >= prev:
        return cur - prev
    delta = counter_delta(prev, cur, 2**32 if prev < 2**32 else 2**64)
    if delta > MAX_PLAUSIBLE_W * max(dt_s, 1e-3) * 1e6:
        raise MeterError(f"{where}: energy counter went backwards ({prev} -> {cur} uJ): the driver was reloaded "
                         "or the device reset", hint="the energy of this window is unknown; run it again")
    return delta


class HwmonMeter:
    """Every hwmon energy counter and power sensor here (see the module docstring)."""

    name = METER_NAME
    description = "Linux hwmon energy/power sensors (amdgpu, i915/xe, amd_energy, ACPI power meter)"
    estimate = False

    def __init__(self, hwmon_root: str | os.PathLike[str] | None = None) -> None:
        self.root = root_from_env(hwmon_root)
        self._channels: list[Channel] = []
        self._prev: list[int] = []
        self._acc_uj: list[int] = []
        self._t_prev = 0
        self._lock = threading.Lock()

    def _discover(self) -> tuple[list[Channel], list[str]]:
        if not self.root.is_dir():
            raise MeterError(f"no {self.root} (not Linux, or sysfs is not mounted)", hint=NO_HWMON_FIX)
        try:
            return discover_channels(self.root)
        except OSError as exc:
            raise MeterError(f"cannot list {self.root}: {exc.strerror or exc}", hint=NO_HWMON_FIX) from exc

    def probe(self) -> ProbeResult:
        try:
            channels, denied = self._discover()
        except MeterError as exc:
            return ProbeResult(False, exc.message, exc.hint)
        if not channels and denied:
            return ProbeResult(False, f"permission denied reading {', '.join(denied)}", permission_fix(denied))
        if not channels:
            return ProbeResult(False, f"no hwmon device under {self.root} exposes energy or power", NO_HWMON_FIX)
        devices = dict.fromkeys(f"{c.driver} ({c.device})" for c in channels)
        reason = f"{len(channels)} channel(s) of {', '.join(devices)}"
        if denied:
            reason += f"; skipped, permission denied: {', '.join(denied)}"
        return ProbeResult(True, reason, permission_fix(denied) if denied else None)

    def open(self) -> list[Domain]:
        channels, denied = self._discover()
        if not channels:
            why = f"permission denied reading {', '.join(denied)}" if denied else "no energy or power channel"
            raise MeterError(f"hwmon meter unavailable: {why}",
                             hint=permission_fix(denied) if denied else NO_HWMON_FIX)
        t0 = time.monotonic_ns()
        prev = [self._read_raw(c) if c.kind == "energy" else 0 for c in channels]
        with self._lock:
            self._channels, self._prev, self._acc_uj = channels, prev, [0] * len(channels)
            self._t_prev = t0
        return [c.domain for c in channels]

    def _read_raw(self, channel: Channel) -> int:
        try:
            return _read_int(channel.path)
        except PermissionError as exc:
            raise MeterError(f"permission denied reading {channel.path}",
                             hint=permission_fix([str(channel.path)])) from exc
        except (OSError, ValueError) as exc:
            raise MeterError(f"{channel.domain.name}: cannot read {channel.path}: {exc} (the device went away "
                             "or was reset)", hint="check `dmesg`; the energy of this window is unknown") from exc

    def read(self) -> Reading:
        with self._lock:
            if not self._channels:
                raise MeterError("hwmon meter read before open()")
            t0 = time.monotonic_ns()
            raw = [self._read_raw(c) for c in self._channels]
            t1 = time.monotonic_ns()
            dt_s = (t0 - self._t_prev) / 1e9
            values: dict[str, float] = {}
            for i, c in enumerate(self._channels):
                if c.kind == "energy":
                    self._acc_uj[i] += energy_delta_uj(self._prev[i], raw[i], dt_s, c.domain.name)
                    self._prev[i] = raw[i]
                    values[c.domain.name] = self._acc_uj[i] / 1e6
                else:
                    values[c.domain.name] = raw[i] / 1e6
            self._t_prev = t0
        return Reading(t_ns=(t0 + t1) // 2, values=values)

    def close(self) -> None:
        with self._lock:
            self._channels, self._prev, self._acc_uj = [], [], []
