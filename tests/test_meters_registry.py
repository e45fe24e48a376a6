"""Meter registry and selection: real meters first, the estimate only as a labelled fallback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from energybench.errors import MeterError, UsageError
from energybench.meters import (
    REGISTRY,
    MeterUnavailableError,
    all_meters,
    create_meter,
    measure_update_period,
    meters_report,
    select_meters,
)
from energybench.meters.base import Domain, ProbeResult, Reading
from energybench.meters.rapl import RaplMeter


def rapl_tree(root: Path) -> Path:
    """A flat powercap tree: package-0 with a core sub-zone, and DRAM."""
    for zone, name in {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core", "intel-rapl:0:1": "dram"}.items():
        z = root / zone
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text("1000\n")
        (z / "max_energy_range_uj").write_text("262143328850\n")
    return root


@pytest.fixture
def no_energylib(monkeypatch):
    monkeypatch.delenv("ENERGYBENCH_ENERGYLIB", raising=False)


def test_registry_names_and_lazy_modules():
    assert list(REGISTRY) == ["rapl", "nvml", "amdsmi", "hwmon", "powermetrics", "powergadget", "estimate"]
    assert [m.name for m in all_meters(sysfs_root="/nonexistent")] == list(REGISTRY)
    assert isinstance(create_meter("rapl", sysfs_root="/x", cpu_tdp_w=5), RaplMeter)  # foreign options ignored


def test_unknown_meter_is_usage_error():
    with pytest.raises(MeterUnavailableError, match="unknown meter") as exc:
        create_meter("wattmeter3000")
    assert exc.value.exit_code == 2 and isinstance(exc.value, UsageError) and isinstance(exc.value, MeterError)


def test_meter_whose_module_is_missing_is_unavailable_not_an_import_error(monkeypatch):
    monkeypatch.setitem(REGISTRY, "ghost", "energybench.meters.not_written_yet:GhostMeter")
    m = create_meter("ghost")
    probe = m.probe()
    assert not probe.available and "cannot be imported" in probe.reason
    assert "ghost" in [x.name for x in all_meters()]
    with pytest.raises(MeterUnavailableError, match="ghost"):
        select_meters(["ghost"])
    # the default selection just skips it
    sel = select_meters(None, sysfs_root="/nonexistent", cpu_tdp_w=10)
    sel.close()
    assert "ghost" not in sel.names and not sel.probes["ghost"].available


def test_default_uses_real_cpu_meter_and_never_the_estimate(tmp_path, no_energylib):
    with select_meters(None, sysfs_root=rapl_tree(tmp_path), cpu_tdp_w=50) as sel:
        assert "rapl" in sel.names and "estimate" not in sel.names
        assert not sel.estimate
        assert not any("ESTIMATE" in w for w in sel.warnings)
        assert {d.name for d in sel.domains} >= {"cpu-package-0", "cpu-core-0", "dram-0"}


def test_default_falls_back_to_estimate_with_warning(tmp_path, no_energylib):
    with select_meters(None, sysfs_root=tmp_path / "none", cpu_tdp_w=50) as sel:
        assert sel.names[-1] == "estimate" and "rapl" not in sel.names
        assert sel.estimate
        (w,) = [w for w in sel.warnings if "ESTIMATE" in w]
        assert "no powercap (RAPL) interface" in w and "50 W" in w


def test_no_estimate_when_disallowed_or_impossible(tmp_path, no_energylib):
    with select_meters(None, sysfs_root=tmp_path / "none", cpu_tdp_w=50, allow_estimate=False) as sel:
        assert "estimate" not in sel.names
        assert any("not measured" in w for w in sel.warnings)
    ci = tmp_path / "cpuinfo"
    ci.write_text("processor\t: 0\nvendor_id\t: Nobody\ncpu family\t: 1\nmodel\t\t: 1\nmodel name\t: Mystery\n\n")
    with select_meters(None, sysfs_root=tmp_path / "none", cpuinfo_path=ci) as sel:
        assert "estimate" not in sel.names
        assert any("--cpu-tdp-w" in w for w in sel.warnings)


def test_explicit_unavailable_meter_is_an_error_naming_why_and_fix(tmp_path):
    with pytest.raises(MeterUnavailableError) as exc:
        select_meters(["rapl"], sysfs_root=tmp_path / "none")
    assert exc.value.exit_code == 2
    line = exc.value.one_line()
    assert "'rapl' is not available here" in line and "no powercap" in line and "modprobe" in line


def test_explicit_list_opens_exactly_those(tmp_path):
    with select_meters(["rapl", "estimate"], sysfs_root=rapl_tree(tmp_path), cpu_tdp_w=30) as sel:
        assert sel.names == ["rapl", "estimate"]
        assert any("ESTIMATE" in w for w in sel.warnings)  # asked for, but still labelled
    with select_meters([]) as sel:
        assert sel.names == [] and sel.warnings


class _StepMeter:
    """A counter that changes every 50 ms of the monotonic clock (like NVML's ~100 ms counter)."""

    name, description, estimate = "step", "test", False

    def probe(self) -> ProbeResult:
        return ProbeResult(True)

    def open(self) -> list[Domain]:
        return [Domain("gpu-0", "energy", "step", "gpu", "test", 0.05)]

    def read(self) -> Reading:
        import time

        t = time.monotonic_ns()
        return Reading(t, {"gpu-0": float(t // 50_000_000)})

    def close(self) -> None:
        pass


def test_measure_update_period_of_a_step_counter():
    m = _StepMeter()
    m.open()
    p = measure_update_period(m, "gpu-0", max_s=1.0)
    assert p.n_changes >= 3
    assert 0.035 < p.median_s < 0.075  # 50 ms steps, seen to within one poll


def test_report_on_this_machine_explains_every_meter(tmp_path, no_energylib):
    rep = meters_report(sysfs_root=tmp_path / "none", cpu_tdp_w=20, measure_periods=False)
    rows = {r["name"]: r for r in rep["meters"]}
    assert set(rows) == set(REGISTRY)
    assert not rows["rapl"]["available"] and rows["rapl"]["fix"]
    assert not rows["powergadget"]["available"] and "PCM" in rows["powergadget"]["reason"]
    assert rows["estimate"]["available"] and rows["estimate"]["domains"][0]["estimate"] is True
    if not os.path.exists("/dev/nvidia0"):
        assert not rows["nvml"]["available"] and rows["nvml"]["reason"]
        assert rep["measure_uses"]["meters"] == ["estimate"] and rep["measure_uses"]["estimate"] is True
    json.dumps(rep)


def test_report_measures_rapl_update_period(tmp_path, no_energylib):
    rep = meters_report(sysfs_root=rapl_tree(tmp_path), cpu_tdp_w=20, measure_periods=True, max_s=0.05)
    (rapl,) = [r for r in rep["meters"] if r["name"] == "rapl"]
    assert rapl["available"]
    # static test counters never change: measured period unknown rather than made up
    assert all(d["measured_update_period_s"] is None for d in rapl["domains"])
    assert rep["measure_uses"]["estimate"] is False
