"""Generated ``/sys/class/hwmon`` trees, laid out like the kernel's, and a writer that advances counters.

Like sysfs: each ``hwmonN`` directory lives under its device (``devices/pci0000:00/.../0000:03:00.0/
hwmon/hwmonN``) with a ``device`` link back to it, and ``class/hwmon/hwmonN`` is a symlink to it. The
files hold what the drivers print: microjoules and microwatts as decimal integers with a newline
(Documentation/hwmon/sysfs-interface.rst). Counter updates replace the file atomically, so a reader
in another process sees the old or the new value, never a half-written one.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path

AMDGPU_DGPU = {  # a Radeon dGPU: PPT power (average and instantaneous), temperatures, clocks
    "name": "amdgpu", "power1_average": 42_000_000, "power1_input": 45_000_000, "power1_label": "PPT",
    "power1_cap": 300_000_000, "temp1_input": 45000, "temp1_label": "edge", "in0_input": 1100,
    "freq1_input": 2_400_000_000,
}
AMDGPU_APU = {  # a Ryzen APU's iGPU: in1_input (the Northbridge voltage) exists on APUs only
    "name": "amdgpu", "power1_average": 9_500_000, "power1_label": "slowPPT", "in0_input": 1000,
    "in1_input": 900, "temp1_input": 50000,
}
XE_ARC = {  # an Intel Arc card on the xe driver: card and package counters
    "name": "xe", "energy1_input": 0, "energy1_label": "card", "energy2_input": 0, "energy2_label": "pkg",
    "power1_max": 225_000_000, "power1_label": "card",
}
I915_ARC = {"name": "i915", "energy1_input": 0, "power1_max": 190_000_000, "in0_input": 900}
AMD_ENERGY = {  # 2 cores + the socket of a Zen CPU (amd_energy.rst)
    "name": "amd_energy", "energy1_input": 0, "energy1_label": "Ecore000", "energy2_input": 0,
    "energy2_label": "Ecore001", "energy3_input": 0, "energy3_label": "Esocket0",
}
K10TEMP = {"name": "k10temp", "temp1_input": 41000, "temp1_label": "Tctl"}  # no energy, no power
POWER_METER = {"name": "power_meter", "power1_average": 180_000_000, "power1_average_interval": 1000}
INA = {"name": "ina3221", "power1_input": 2_000_000, "power1_label": "VDD_IN"}


def write_value(path: Path, value: int | str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{value}\n")
    os.replace(tmp, path)


def add_device(root: Path, hwmon: str, files: dict[str, int | str], device: str | None) -> Path:
    """``root/class/hwmon/<hwmon>`` for a device at ``root/devices/<device>`` (None: a virtual device)."""
    dev = root / "devices" / (device or "virtual")
    hw = dev / "hwmon" / hwmon
    hw.mkdir(parents=True)
    for name, value in files.items():
        (hw / name).write_text(f"{value}\n")
    if device is not None:
        (hw / "device").symlink_to(Path("..") / "..")
    cls = root / "class" / "hwmon"
    cls.mkdir(parents=True, exist_ok=True)
    (cls / hwmon).symlink_to(os.path.relpath(hw, cls))
    return cls


class CounterWriter:
    """Advances energy files like the kernel would at constant power: value = watts x elapsed (uJ).

    Every round of writes is logged, so a test can compute exactly what a reader saw between two
    instants even when this thread was late (a loaded machine): :meth:`energy_j`, :meth:`step_j`.
    A file whose device directory was removed (the device went away) is no longer written.
    """

    def __init__(self, files: dict[Path, float], period_s: float = 0.002, start_uj: int = 0,
                 wrap_uj: int | None = None) -> None:
        self.files = dict(files)
        self.period_s, self.start_uj, self.wrap_uj = period_s, start_uj, wrap_uj
        self.rounds: list[tuple[int, float]] = []  # (monotonic ns when a round was written, its elapsed s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            elapsed = time.monotonic() - t0
            for path, watts in self.files.items():
                uj = self.start_uj + int(watts * elapsed * 1e6)
                try:
                    write_value(path, uj % self.wrap_uj if self.wrap_uj else uj)
                except FileNotFoundError:
                    continue
            self.rounds.append((time.monotonic_ns(), elapsed))
            self._stop.wait(self.period_s)

    def _elapsed_at(self, t_ns: int, after: int = 0) -> float:
        i = bisect.bisect_right([t for t, _ in self.rounds], t_ns) - 1 + after
        return self.rounds[max(min(i, len(self.rounds) - 1), 0)][1]

    def energy_j(self, path: Path, t0_ns: int, t1_ns: int) -> float:
        """What a reader of ``path`` saw the counter advance by between two instants (J)."""
        return self.files[path] * (self._elapsed_at(t1_ns) - self._elapsed_at(t0_ns))

    def step_j(self, path: Path, t_ns: int) -> float:
        """The counter's step at ``t_ns`` (J): how far a read at that instant may be off."""
        return self.files[path] * (self._elapsed_at(t_ns, after=1) - self._elapsed_at(t_ns))

    def __enter__(self) -> CounterWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
