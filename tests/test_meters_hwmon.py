"""hwmon meter on generated /sys/class/hwmon trees (tests/fakes/hwmon_tree.py): what each driver's
channels become, counters and wrap, permissions, and a device that disappears mid-run."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from energybench.cmdmeasure import measure_command
from energybench.energy import attribute_run, counted_domains
from energybench.errors import MeterError
from energybench.meters import select_meters
from energybench.meters.hwmon import ENV_ROOT, HwmonMeter, discover_channels, energy_delta_uj

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from hwmon_tree import (  # noqa: E402
    AMD_ENERGY,
    AMDGPU_APU,
    AMDGPU_DGPU,
    I915_ARC,
    INA,
    K10TEMP,
    POWER_METER,
    XE_ARC,
    CounterWriter,
    add_device,
    write_value,
)

REPO = Path(__file__).resolve().parents[1]
DGPU, ARC, APU, I915 = "0000:03:00.0", "0000:04:00.0", "0000:c4:00.0", "0000:05:00.0"


def machine(root: Path) -> Path:
    """A desktop with every kind of device: two GPUs, an APU, an Intel card, CPU counters, a platform meter."""
    add_device(root, "hwmon0", K10TEMP, "pci0000:00/0000:00:18.3")
    add_device(root, "hwmon1", AMDGPU_DGPU, f"pci0000:00/0000:00:01.1/{DGPU}")
    add_device(root, "hwmon2", XE_ARC, f"pci0000:00/0000:00:01.2/{ARC}")
    add_device(root, "hwmon3", AMDGPU_APU, f"pci0000:00/0000:00:08.1/{APU}")
    add_device(root, "hwmon4", I915_ARC, f"pci0000:00/0000:00:01.3/{I915}")
    add_device(root, "hwmon5", AMD_ENERGY, "platform/amd_energy.0")
    add_device(root, "hwmon6", POWER_METER, "LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00")
    return add_device(root, "hwmon10", INA, "platform/3280000.i2c/i2c-0/0-0040")


def test_every_driver_becomes_named_domains(tmp_path):
    channels, denied = discover_channels(machine(tmp_path))
    assert denied == []
    got = {c.domain.name: (c.domain.kind, c.domain.component, c.domain.parent, c.path.name) for c in channels}
    assert got == {
        f"gpu-{DGPU}": ("power", "gpu", None, "power1_input"),  # instantaneous preferred over the average
        f"gpu-{ARC}": ("energy", "gpu", None, "energy1_input"),  # the card ...
        f"gpu-{ARC}-pkg": ("energy", "gpu", f"gpu-{ARC}", "energy2_input"),  # ... contains its package
        f"gpu-{APU}": ("power", "psys", None, "power1_average"),  # an APU: the whole SoC, CPU included
        f"gpu-{I915}": ("energy", "gpu", None, "energy1_input"),
        "cpu-package-0": ("energy", "cpu", None, "energy3_input"),  # RAPL's name for the same socket
        "cpu-core-000": ("energy", "cpu-core", "cpu-package-0", "energy1_input"),
        "cpu-core-001": ("energy", "cpu-core", "cpu-package-0", "energy2_input"),
        "power-meter-acpi000d-00": ("power", "system", None, "power1_average"),
        "ina3221-0-0040-vdd-in": ("power", "other", "hwmon:ina3221", "power1_input"),  # unknown: never added
    }
    by = {c.domain.name: c.domain for c in channels}
    assert by[f"gpu-{APU}"].source.count("CPU included") == 1
    assert by["power-meter-acpi000d-00"].update_period_s == 1.0  # power1_average_interval, ms
    assert by["cpu-package-0"].update_period_s == 0.001 and by[f"gpu-{DGPU}"].update_period_s == 0.1
    assert "never added" in by["ina3221-0-0040-vdd-in"].source


def test_energy_counter_preferred_and_power_kept_beside_it(tmp_path):
    cls = add_device(tmp_path, "hwmon0", {"name": "amdgpu", "energy1_input": 10, "power1_average": 30_000_000,
                                          "power1_label": "PPT"}, f"pci0000:00/0000:00:01.1/{DGPU}")
    (main, extra) = [c.domain for c in discover_channels(cls)[0]]
    assert (main.name, main.kind, main.parent) == (f"gpu-{DGPU}", "energy", None)
    assert (extra.name, extra.kind, extra.parent) == (f"gpu-{DGPU}-ppt", "power", f"gpu-{DGPU}")


def test_counters_in_joules_since_open_power_in_watts(tmp_path):
    cls = machine(tmp_path)
    hw = tmp_path / "class" / "hwmon"
    meter = HwmonMeter(hwmon_root=cls)
    meter.open()
    try:
        write_value(hw / "hwmon2" / "energy1_input", 7_500_000)
        write_value(hw / "hwmon2" / "energy2_input", 5_000_000)
        write_value(hw / "hwmon1" / "power1_input", 123_456_789)
        r = meter.read()
    finally:
        meter.close()
    assert r.values[f"gpu-{ARC}"] == 7.5 and r.values[f"gpu-{ARC}-pkg"] == 5.0
    assert r.values[f"gpu-{DGPU}"] == pytest.approx(123.456789)
    assert r.values[f"gpu-{APU}"] == pytest.approx(9.5) and r.values["cpu-package-0"] == 0.0


def test_wrap_and_reset():
    assert energy_delta_uj(2**32 - 1000, 500, 0.02, "x") == 1500  # a 32-bit register wrapped
    assert energy_delta_uj(2**64 - 100, 50, 0.02, "x") == 150  # a 64-bit accumulator wrapped
    with pytest.raises(MeterError, match="went backwards"):  # 4295 J in 20 ms: a reset, not a wrap
        energy_delta_uj(10_000_000, 5, 0.02, "gpu-x")
    with pytest.raises(MeterError, match="driver was reloaded"):
        energy_delta_uj(2**40 + 10, 5, 0.02, "gpu-x")


def test_wrap_through_the_meter(tmp_path):
    cls = add_device(tmp_path, "hwmon0", dict(I915_ARC, energy1_input=2**32 - 2_000_000), f"pci0000:00/{I915}")
    meter = HwmonMeter(hwmon_root=cls)
    meter.open()
    try:
        write_value(tmp_path / "class" / "hwmon" / "hwmon0" / "energy1_input", 1_000_000)
        assert meter.read().values[f"gpu-{I915}"] == pytest.approx(3.0)
        write_value(tmp_path / "class" / "hwmon" / "hwmon0" / "energy1_input", 4_000_000)
        assert meter.read().values[f"gpu-{I915}"] == pytest.approx(6.0)
    finally:
        meter.close()


def test_probe_without_hwmon_or_without_sensors(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_ROOT, raising=False)
    missing = HwmonMeter(hwmon_root=tmp_path / "none").probe()
    assert not missing.available and "not Linux" in missing.reason and "amdgpu" in missing.fix
    cls = add_device(tmp_path, "hwmon0", K10TEMP, "pci0000:00/0000:00:18.3")
    quiet = HwmonMeter(hwmon_root=cls).probe()
    assert not quiet.available and "exposes energy or power" in quiet.reason
    monkeypatch.setenv(ENV_ROOT, str(machine(tmp_path / "m")))  # the documented override
    found = HwmonMeter().probe()
    assert found.available and "10 channel(s)" in found.reason and "xe (0000:04:00.0)" in found.reason


_PROBE = """
import json, sys
from energybench.meters.hwmon import HwmonMeter
p = HwmonMeter(hwmon_root=sys.argv[1]).probe()
print(json.dumps({"available": p.available, "reason": p.reason, "fix": p.fix}))
"""


def _drop_dac_override() -> None:
    """preexec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH so root obeys file modes (PR_CAPBSET_DROP)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _probe_as_user(cls: Path, files: list[Path]) -> dict:
    """Probe with ``files`` unreadable, the way an unprivileged user meets amd_energy's 0400 counters."""
    for f in files:
        os.chown(f, 65534, 65534)
        f.chmod(0o400)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    kw = {"preexec_fn": _drop_dac_override} if os.geteuid() == 0 else {}
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(cls)], capture_output=True, text=True, env=env,
                              timeout=60, **kw)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {proc.stderr[-300:]}")
    return json.loads(proc.stdout)


def test_unreadable_counters_are_named_with_the_fix(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    cls = add_device(tmp_path, "hwmon5", AMD_ENERGY, "platform/amd_energy.0")
    hw = (cls / "hwmon5").resolve()
    every = _probe_as_user(cls, [hw / f"energy{i}_input" for i in (1, 2, 3)])
    assert every["available"] is False and "permission denied" in every["reason"]
    assert "hwmon5/energy3_input" in every["reason"]
    assert "sudo chmod a+r" in every["fix"] and "energy3_input" in every["fix"] and "udev" in every["fix"]
    add_device(tmp_path, "hwmon1", AMDGPU_DGPU, f"pci0000:00/{DGPU}")
    some = _probe_as_user(cls, [])  # the GPU is readable, the CPU counters are not
    assert some["available"] is True and "skipped, permission denied" in some["reason"]
    assert "energy1_input" in some["fix"]


def test_a_device_that_disappears_mid_run_gives_unknown_energy(tmp_path):
    cls = machine(tmp_path)
    hw = tmp_path / "class" / "hwmon"
    unplug = f"import os, time; time.sleep(0.5); os.rename({str((hw / 'hwmon2').resolve())!r}, '{tmp_path}/gone'); time.sleep(0.5)"
    with CounterWriter({hw / "hwmon2" / "energy1_input": 20.0}), select_meters(["hwmon"], hwmon_root=cls) as sel:
        m = measure_command([sys.executable, "-c", unplug], sel, period_s=0.02)  # the command unplugs the card
    assert m.energy_j is None
    assert any("meter read failed (hwmon)" in w and "went away" in w for w in m.warnings)
    assert any("do not cover the window" in w for w in m.warnings)
    assert all(d["energy_j"] is None for d in m.domains)  # one meter, one read: every domain is unknown


def test_totals_count_a_gpu_once_and_the_apu_only_without_a_cpu(tmp_path):
    channels, _ = discover_channels(machine(tmp_path))
    domains = [c.domain for c in channels]
    t0, t1 = 10**12, 10**12 + 10**9
    samples = {(d.meter, d.name): _series(d, 10.0, t0, t1) for d in domains}
    run = attribute_run(domains, samples, t_start_ns=t0, t_end_ns=t1)
    counted = sorted(r.domain.name for r in counted_domains(run.domains))
    assert counted == ["power-meter-acpi000d-00"]  # a whole-machine meter is the total
    without = [d for d in domains if d.component != "system"]
    run = attribute_run(without, samples, t_start_ns=t0, t_end_ns=t1)
    counted = sorted(r.domain.name for r in counted_domains(run.domains))
    assert counted == sorted(["cpu-package-0", f"gpu-{DGPU}", f"gpu-{ARC}", f"gpu-{I915}"])  # no psys, no parts
    assert run.columns["energy_j"] == pytest.approx(40.0)


def _series(domain, watts, t0, t1):
    from energybench.energy import make_series

    ts = [t0 - 10**7, t1 + 10**7]
    if domain.kind == "power":
        return make_series(ts, [watts, watts], "power")
    return make_series(ts, [0.0, watts * (ts[1] - ts[0]) / 1e9], "energy")
