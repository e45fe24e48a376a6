"""RAPL meter on a generated powercap sysfs tree whose counters the test advances."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from energybench.energy import window_energy, make_series
from energybench.errors import MeterError
from energybench.meters.rapl import NO_POWERCAP_REASON, RaplMeter, discover_zones

REPO = Path(__file__).resolve().parents[1]


def make_zone(path: Path, name: str, energy_uj: int = 0, max_uj: int = 262_143_328_850) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (path / "enabled").write_text("1\n")
    return path


def make_tree(root: Path, zones: dict[str, str], *, max_uj: int = 262_143_328_850) -> Path:
    """A powercap tree laid out like the kernel's: zones nested under devices/virtual/powercap/
    intel-rapl, and /sys/class/powercap holding a symlink per zone (sub-zones included)."""
    devices = root / "devices" / "virtual" / "powercap" / "intel-rapl"
    cls = root / "class" / "powercap"
    cls.mkdir(parents=True)
    devices.mkdir(parents=True)
    (cls / "intel-rapl").symlink_to(devices)
    for zone, name in sorted(zones.items(), key=lambda kv: kv[0].count(":")):
        parts = zone.split(":")
        path = devices / zone if len(parts) == 2 else devices / ":".join(parts[:2]) / zone
        make_zone(path, name, max_uj=max_uj)
        (cls / zone).symlink_to(path)
    return cls


INTEL = {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core", "intel-rapl:0:1": "uncore",
         "intel-rapl:0:2": "dram", "intel-rapl:1": "psys"}


def set_uj(cls: Path, zone: str, value: int) -> None:
    # written in place, like the kernel updates the same sysfs file
    with open(cls / zone / "energy_uj", "r+") as f:
        f.seek(0)
        f.write(f"{value}\n")
        f.truncate()


def test_intel_tree_domains_and_nesting(tmp_path):
    cls = make_tree(tmp_path, INTEL)
    meter = RaplMeter(sysfs_root=cls)
    probe = meter.probe()
    assert probe.available, probe.reason
    domains = {d.name: d for d in meter.open()}
    assert set(domains) == {"cpu-package-0", "cpu-core-0", "uncore-0", "dram-0", "psys"}
    assert domains["cpu-core-0"].parent == "cpu-package-0"
    assert domains["uncore-0"].parent == "cpu-package-0"
    assert domains["dram-0"].parent is None  # its own RAPL domain, not inside the package
    assert domains["psys"].component == "psys"
    assert all(d.kind == "energy" and d.meter == "rapl" and d.update_period_s == 0.001 for d in domains.values())
    assert domains["cpu-package-0"].source.endswith("intel-rapl:0/energy_uj")
    meter.close()


def test_amd_two_sockets_and_multi_die_naming(tmp_path):
    # AMD Zen: same intel-rapl control type, package + core, no DRAM; a two-die Intel part names
    # its packages package-N-die-M (drivers/powercap/intel_rapl_common.c)
    amd = make_tree(tmp_path / "amd", {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core",
                                       "intel-rapl:1": "package-1", "intel-rapl:1:0": "core"})
    names = {z.domain.name: z.domain.parent for z in discover_zones(amd)}
    assert names == {"cpu-package-0": None, "cpu-core-0": "cpu-package-0",
                     "cpu-package-1": None, "cpu-core-1": "cpu-package-1"}
    dies = make_tree(tmp_path / "dies", {"intel-rapl:0": "package-0-die-0", "intel-rapl:0:0": "dram",
                                         "intel-rapl:1": "package-0-die-1", "intel-rapl:1:0": "dram"})
    assert sorted(z.domain.name for z in discover_zones(dies)) == [
        "cpu-package-0-die-0", "cpu-package-0-die-1", "dram-0-die-0", "dram-0-die-1"]


def test_mmio_mirror_is_not_a_second_package(tmp_path):
    cls = make_tree(tmp_path, {"intel-rapl:0": "package-0"})
    make_zone(cls / "intel-rapl-mmio:0", "package-0")
    assert [z.domain.name for z in discover_zones(cls)] == ["cpu-package-0"]


def test_counters_in_joules_since_open_with_wrap(tmp_path):
    max_uj = 1_000_000_000  # a 1 kJ range so the test can wrap it
    cls = make_tree(tmp_path, {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core"}, max_uj=max_uj)
    set_uj(cls, "intel-rapl:0", 999_000_000)
    set_uj(cls, "intel-rapl:0:0", 5)
    meter = RaplMeter(sysfs_root=cls)
    meter.open()
    set_uj(cls, "intel-rapl:0", 999_600_000)  # +0.6 J
    set_uj(cls, "intel-rapl:0:0", 300_005)
    r1 = meter.read()
    assert r1.values == pytest.approx({"cpu-package-0": 0.6, "cpu-core-0": 0.3})
    set_uj(cls, "intel-rapl:0", 400_000)  # wrapped: max - prev + cur = 0.4 + 0.4 = 0.8 J more
    r2 = meter.read()
    assert r2.values["cpu-package-0"] == pytest.approx(1.4)
    assert r2.t_ns > r1.t_ns
    # many wraps over a long run: the 64-bit (Python int) accumulator never loses a microjoule
    total = 1_400_000
    cur = 400_000
    for _ in range(50):
        cur = (cur + 700_000_123) % max_uj
        total += 700_000_123
        set_uj(cls, "intel-rapl:0", cur)
        meter.read()
    assert meter.read().values["cpu-package-0"] == total / 1e6


def test_attribution_over_rapl_readings(tmp_path):
    """Energy between two marks equals what the counters advanced between them (<= 0.5%)."""
    cls = make_tree(tmp_path, {"intel-rapl:0": "package-0"}, max_uj=2**24)  # 16.7 J: wraps twice
    meter = RaplMeter(sysfs_root=cls)
    meter.open()
    t, e = [], []
    uj = 0
    for step in range(40):  # 1 J per step
        uj += 1_000_000
        set_uj(cls, "intel-rapl:0", uj % 2**24)
        r = meter.read()
        t.append(r.t_ns)
        e.append(r.values["cpu-package-0"])
    s = make_series(np.array(t), np.array(e), "energy")
    assert window_energy(s, t[5], t[35]) == pytest.approx(30.0, rel=0.005)


def test_missing_powercap_is_unavailable_with_reason(tmp_path):
    probe = RaplMeter(sysfs_root=tmp_path / "nope").probe()
    assert not probe.available
    assert probe.reason == NO_POWERCAP_REASON
    assert "modprobe" in probe.fix
    with pytest.raises(MeterError):
        RaplMeter(sysfs_root=tmp_path / "nope").open()


def test_powercap_without_rapl_zones(tmp_path):
    (tmp_path / "powercap").mkdir()
    probe = RaplMeter(sysfs_root=tmp_path / "powercap").probe()
    assert not probe.available and "no intel-rapl zones" in probe.reason


_PROBE_SNIPPET = """
import json, sys
from energybench.meters.rapl import RaplMeter
p = RaplMeter(sysfs_root=sys.argv[1]).probe()
print(json.dumps({"available": p.available, "reason": p.reason, "fix": p.fix}))
"""


def _drop_dac_override() -> None:
    """preexec: remove CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) from the bounding set, so the
    exec'd root process is subject to file permissions like any user (PR_CAPBSET_DROP = 24)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_energy_uj_is_unavailable_naming_files_and_fix(tmp_path):
    """Since Linux 5.10 energy_uj is 0400 root (CVE-2020-8694). Reproduced with real permissions:
    as a normal user, chmod 000; as root (which bypasses permission bits through CAP_DAC_OVERRIDE),
    the file is owned by another uid with mode 0400 and the probe runs in a child process whose
    capability bounding set lacks CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH -- the kernel then answers
    EACCES exactly as it does for an unprivileged reader of the real file."""
    cls = make_tree(tmp_path, {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core"})
    energy = cls / "intel-rapl:0" / "energy_uj"
    if os.geteuid() != 0:
        energy.chmod(0o000)
        probe = RaplMeter(sysfs_root=cls).probe()
        result = {"available": probe.available, "reason": probe.reason, "fix": probe.fix}
    else:
        os.chown(energy.resolve(), 65534, 65534)
        energy.resolve().chmod(0o400)
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        try:
            proc = subprocess.run([sys.executable, "-c", _PROBE_SNIPPET, str(cls)], capture_output=True, text=True,
                                  env=env, preexec_fn=_drop_dac_override, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"running as root and cannot drop CAP_DAC_OVERRIDE here: {exc}")
        if proc.returncode != 0:
            pytest.skip(f"running as root and cannot drop CAP_DAC_OVERRIDE here: {proc.stderr[-300:]}")
        result = json.loads(proc.stdout)
    assert result["available"] is False
    assert "permission denied" in result["reason"] and "intel-rapl:0/energy_uj" in result["reason"]
    assert "intel-rapl:0:0" not in result["reason"]  # only the unreadable file is named
    assert "chmod a+r" in result["fix"] and "CVE-2020-8694" in result["fix"] and "udev" in result["fix"]
