"""Power Gadget meter through its real ctypes binding, on a C stand-in for EnergyLib compiled here."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from energybench.errors import MeterError
from energybench.meters.powergadget import ENV_LIBRARY, EnergyLib, PowerGadgetMeter

FAKE_SRC = Path(__file__).parent / "fakes" / "energylib.c"


@pytest.fixture(scope="module")
def energylib(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the EnergyLib stand-in")
    out = tmp_path_factory.mktemp("energylib") / "libEnergyLibFake.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), str(FAKE_SRC)], check=True)
    return out


@pytest.fixture
def fake_env(monkeypatch, energylib):
    for var in ("ENERGYLIB_FAKE_P0_W", "ENERGYLIB_FAKE_RAMP_W_S", "ENERGYLIB_FAKE_NODES", "ENERGYLIB_FAKE_INIT_FAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(ENV_LIBRARY, str(energylib))
    return monkeypatch


def test_missing_library_says_why_and_mentions_end_of_life(tmp_path):
    probe = PowerGadgetMeter(library_path=tmp_path / "EnergyLib64.dll").probe()
    assert not probe.available
    assert "Oct 2023" in probe.reason and "PCM" in probe.reason
    assert ENV_LIBRARY in probe.fix


def test_found_through_env_var_with_domains(fake_env):
    fake_env.setenv("ENERGYLIB_FAKE_NODES", "2")
    meter = PowerGadgetMeter()
    probe = meter.probe()
    assert probe.available, probe.reason
    assert "2 node(s)" in probe.reason and "PCM" in probe.reason
    domains = {d.name: d for d in meter.open()}
    try:
        assert set(domains) == {"cpu-package-0", "cpu-core-0", "gt-0", "dram-0",
                                "cpu-package-1", "cpu-core-1", "gt-1", "dram-1"}
        assert domains["cpu-core-1"].parent == "cpu-package-1"
        assert domains["gt-0"].parent == "cpu-package-0"
        assert domains["dram-0"].parent is None
        assert all(d.kind == "energy" and d.meter == "powergadget" for d in domains.values())
    finally:
        meter.close()


def test_constant_power_energy_matches(fake_env):
    fake_env.setenv("ENERGYLIB_FAKE_P0_W", "40")
    meter = PowerGadgetMeter()
    meter.open()
    try:
        r1 = meter.read()
        time.sleep(0.2)
        r2 = meter.read()
    finally:
        meter.close()
    dt = (r2.t_ns - r1.t_ns) / 1e9
    assert r2.values["cpu-package-0"] - r1.values["cpu-package-0"] == pytest.approx(40 * dt, rel=0.005)
    assert r2.values["cpu-core-0"] - r1.values["cpu-core-0"] == pytest.approx(0.6 * 40 * dt, rel=0.005)
    assert r2.values["dram-0"] - r1.values["dram-0"] == pytest.approx(3.0 * dt, rel=0.005)
    assert r1.values["cpu-package-0"] >= 0  # joules since open, not since the library started


def test_ramp_power_increases_as_defined(fake_env):
    # P(t) = 10 + 50 t: the average power over an interval is P at its midpoint, so two intervals
    # differ by 50 W/s x the distance between their midpoints, whatever the start time
    fake_env.setenv("ENERGYLIB_FAKE_P0_W", "10")
    fake_env.setenv("ENERGYLIB_FAKE_RAMP_W_S", "50")
    meter = PowerGadgetMeter()
    meter.open()
    try:
        rs = []
        for _ in range(3):
            rs.append(meter.read())
            time.sleep(0.15)
        rs.append(meter.read())
    finally:
        meter.close()

    def avg_w(a, b):
        return (b.values["cpu-package-0"] - a.values["cpu-package-0"]) / ((b.t_ns - a.t_ns) / 1e9)

    mid = [(a.t_ns + b.t_ns) / 2e9 for a, b in zip(rs, rs[1:], strict=False)]
    p = [avg_w(a, b) for a, b in zip(rs, rs[1:], strict=False)]
    assert p[2] - p[0] == pytest.approx(50 * (mid[2] - mid[0]), rel=0.005)


def test_two_read_samples_needed_before_data(fake_env, energylib):
    lib = EnergyLib(energylib)
    lib.initialize()
    lib.read_sample()
    with pytest.raises(MeterError, match="GetPowerData"):
        lib.power_data(0, 1)
    lib.read_sample()
    data = lib.power_data(0, 1)
    assert len(data) == 3 and data[1] > 0 and data[2] == pytest.approx(data[1] / 3.6)
    assert lib.msr_name(1) == "Processor" and lib.msr_func(1) == 1 and lib.msr_func(0) == 0


def test_driver_not_running_is_unavailable(fake_env):
    fake_env.setenv("ENERGYLIB_FAKE_INIT_FAIL", "1")
    probe = PowerGadgetMeter().probe()
    assert not probe.available
    assert "IntelEnergyLibInitialize" in probe.reason and "PCM" in probe.reason


def test_not_energylib(tmp_path):
    other = tmp_path / "libother.so"
    src = tmp_path / "other.c"
    src.write_text("int something(void) { return 1; }\n")
    if shutil.which("gcc") is None:
        pytest.skip("gcc needed")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(other), str(src)], check=True)
    probe = PowerGadgetMeter(library_path=other).probe()
    assert not probe.available and "is not EnergyLib" in probe.reason
