"""The consumer-hardware meters end to end through the real CLI, each on its fake of the hardware edge:
``meters`` lists them, ``measure -- sleep`` gets the fake's constant power to within 1%, a sweep on the
tiny twin (real llama.cpp) attributes prefill and decode, and a fault mid-run is flagged, never a zero.

* powermetrics: the stand-in executable (tests/fakes/powermetrics_fake.py) via $ENERGYBENCH_POWERMETRICS;
  the sweep pretends a Metal build (tests/fakes/pretend_gpu.py, PRETEND_GPU_DEVICE=MTL0 ...);
* hwmon: a generated sysfs tree via $ENERGYBENCH_HWMON_ROOT whose counters a writer thread advances;
  the sweep pretends a Vulkan build;
* amdsmi: the libamd_smi.so stand-in under the real amdsmi package via ROCM_PATH (skipped without the
  ``amd`` extra); the sweep pretends a HIP build (ROCm0).
Energies here are the fakes' analytic powers: synthetic test data, never measurements.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from energybench.results import read_runs

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "fakes"))
import amdsmi_build  # noqa: E402
from hwmon_tree import AMD_ENERGY, AMDGPU_DGPU, XE_ARC, CounterWriter, add_device  # noqa: E402
import powermetrics_fake  # noqa: E402

pytestmark = pytest.mark.slow

PRETEND = TESTS / "fakes" / "pretend_gpu.py"
NOT_HERE = {"ENERGYBENCH_HWMON_ROOT": "/nonexistent-hwmon", "ROCM_PATH": "/nonexistent-rocm"}


def cli(*args: str, env: dict[str, str], pretend: bool = False, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_PM_", "FAKE_AMDSMI_"))}
    full.update(NOT_HERE)
    full.update({"COLUMNS": "200", "LD_LIBRARY_PATH": ""}, **env)
    cmd = [sys.executable, str(PRETEND)] if pretend else [sys.executable, "-m", "energybench"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=full, timeout=timeout)


def meters_row(env: dict[str, str], name: str) -> tuple[dict, dict]:
    r = cli("meters", "--json", env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    return next(m for m in report["meters"] if m["name"] == name), report["measure_uses"]


def measure_command(env: dict[str, str], argv: list[str], *meters: str) -> dict:
    flags = [a for m in meters for a in ("--meter", m)]
    r = cli("measure", *flags, "--idle", "0", "--json", "--", *argv, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def measure_sleep(env: dict[str, str], seconds: float, *meters: str) -> dict:
    return measure_command(env, ["sleep", str(seconds)], *meters)


def sweep(tmp_path: Path, env: dict[str, str], device: str) -> pl.DataFrame:
    cfg = {"name": "consumer-e2e", "models": ["synthetic:tiny"],
           "grid": {"threads": 1, "n_gpu_layers": [0, 1, 3], "batch": 32, "prompt": {"n_prompt": 16}, "n_gen": 4},
           "warmup": 0, "repetitions": {"fixed": 1}, "cooldown": {"fixed_s": 0}, "idle_baseline_s": 0.3,
           "sample_period_ms": 20, "min_window_s": 0.5, "gpu_protocol": {"enabled": False}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    r = cli("sweep", "--config", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--json",
            env={**env, "PRETEND_GPU_DEVICE": device}, pretend=True)
    assert r.returncode == 0, r.stderr
    runs = read_runs(tmp_path / "out")
    assert runs["status"].to_list() == ["ok"] * runs.height
    return runs


def check_phases(runs: pl.DataFrame, domain: str, watts: float, rel: float) -> None:
    """The domain's energy is its constant power x the window, split exactly into prefill and decode."""
    for row in runs.iter_rows(named=True):
        d = next(x for x in row["domains"] if x["domain"] == domain)
        assert d["energy_j"] == pytest.approx(watts * row["window_s"], rel=rel)
        assert d["prefill_energy_j"] + d["decode_energy_j"] == pytest.approx(d["energy_j"], rel=1e-9)
        assert d["prefill_energy_j"] == pytest.approx(watts * row["prefill_s"], rel=rel, abs=watts * 0.004)


def check_fault(out: dict, meter: str) -> None:
    assert out["returncode"] == 0 and out["energy_j"] is None
    assert any(f"meter read failed ({meter})" in w for w in out["warnings"])
    assert any("do not cover the window" in w for w in out["warnings"])


# ----------------------------------------------------------------------------- listing where none works


def test_meters_and_doctor_list_the_new_meters_with_reason_and_fix(tmp_path):
    env = {"ENERGYBENCH_HWMON_ROOT": str(tmp_path / "no-hwmon")}
    r = cli("meters", "--json", "--no-measure", env=env)
    assert r.returncode == 0, r.stderr
    rows = {m["name"]: m for m in json.loads(r.stdout)["meters"]}
    d = cli("doctor", "--json", env=env)
    assert d.returncode == 0, d.stderr
    doctor = {m["name"]: m for m in json.loads(d.stdout)["meters"]}
    for name in ("amdsmi", "hwmon", "powermetrics"):
        for row in (rows[name], doctor[name]):
            assert row["available"] is False and row["reason"] and row["fix"], row
    assert "not Linux" in rows["hwmon"]["reason"] and "amdgpu" in rows["hwmon"]["fix"]
    assert "amdsmi" in rows["amdsmi"]["reason"] and "libamd_smi.so" in rows["amdsmi"]["fix"]
    if sys.platform.startswith("linux"):
        assert "macOS only" in rows["powermetrics"]["reason"]
    text = cli("meters", "--no-measure", env=env)
    assert "powermetrics" in text.stdout and "fix:" in text.stdout
    if amdsmi_build.amdsmi_wrapper_source() is None:  # brackets in a fix are text, not console markup
        assert "pip install 'energybench[amd]'" in text.stdout


# ----------------------------------------------------------------------------- powermetrics


@pytest.fixture(scope="module")
def pm_env(tmp_path_factory) -> dict[str, str]:
    return {"ENERGYBENCH_POWERMETRICS": str(powermetrics_fake.install(tmp_path_factory.mktemp("pm") / "bin"))}


def test_powermetrics_listed_and_measures_a_command(pm_env):
    row, uses = meters_row(pm_env, "powermetrics")
    assert row["available"] and [d["name"] for d in row["domains"]] == ["cpu", "gpu", "ane", "soc"]
    assert all(0.08 <= d["measured_update_period_s"] <= 0.12 for d in row["domains"])
    assert uses["meters"] == ["powermetrics"] and not uses["estimate"]  # the CPU is measured: no estimate
    out = measure_sleep(pm_env, 3)
    assert out["meters"] == "powermetrics" and out["energy_source"] == "measured"
    assert out["energy_j"] == pytest.approx(6.0 * out["elapsed_s"], rel=0.01)  # cpu + gpu + ane, soc not added
    per = {d["domain"]: d["energy_j"] for d in out["domains"]}
    assert per["cpu"] == pytest.approx(4.0 * out["elapsed_s"], rel=0.01)
    assert per["soc"] == pytest.approx(out["energy_j"], rel=0.01)


def test_powermetrics_dying_mid_run_is_flagged(pm_env):
    check_fault(measure_sleep({**pm_env, "FAKE_PM_DIE_AFTER_S": "1.0"}, 2), "powermetrics")


def test_powermetrics_sweep_on_a_pretend_metal_build(tmp_path, pm_env, tiny_model):
    runs = sweep(tmp_path, pm_env, "MTL0 (Apple M2 Max (pretend), gpu)")
    assert dict(runs.select("n_gpu_layers", "backend_mode").unique().iter_rows()) == {
        0: "cpu", 1: "metal-partial", 3: "metal-full"}
    assert set(runs["meters"].to_list()) == {"powermetrics"}
    check_phases(runs, "gpu", 1.5, rel=0.05)  # 100 ms samples: prefill is within one sample


# ----------------------------------------------------------------------------- hwmon


DGPU, ARC = "0000:03:00.0", "0000:04:00.0"


@pytest.fixture
def hwmon(tmp_path):
    """A desktop: a Radeon dGPU at 45 W (an instantaneous sensor), an Arc card at 20 W (package 15 W) and a
    Zen CPU at 30 W (cores 10 W each) as counters advanced every 2 ms, starting 120 J below the 2^32 uJ
    wrap (the socket's wraps about 4 s after the writer starts). The total is 45 + 20 + 30 = 95 W."""
    root = tmp_path / "sys"
    add_device(root, "hwmon1", AMDGPU_DGPU, f"pci0000:00/0000:00:01.1/{DGPU}")
    add_device(root, "hwmon2", XE_ARC, f"pci0000:00/0000:00:01.2/{ARC}")
    cls = add_device(root, "hwmon3", AMD_ENERGY, "platform/amd_energy.0")
    hw = root / "class" / "hwmon"
    writer = CounterWriter({hw / "hwmon2" / "energy1_input": 20.0, hw / "hwmon2" / "energy2_input": 15.0,
                            hw / "hwmon3" / "energy1_input": 10.0, hw / "hwmon3" / "energy2_input": 10.0,
                            hw / "hwmon3" / "energy3_input": 30.0}, start_uj=2**32 - 120_000_000, wrap_uj=2**32)
    with writer:
        yield {"ENERGYBENCH_HWMON_ROOT": str(cls)}, hw, writer


def counter_files(hw: Path) -> dict[str, Path]:
    return {f"gpu-{ARC}": hw / "hwmon2" / "energy1_input", f"gpu-{ARC}-pkg": hw / "hwmon2" / "energy2_input",
            "cpu-package-0": hw / "hwmon3" / "energy3_input"}


def test_hwmon_listed_and_measures_a_command(hwmon):
    env, hw, writer = hwmon
    row, uses = meters_row(env, "hwmon")
    assert row["available"] and "amdgpu (0000:03:00.0)" in row["reason"]
    assert {d["name"] for d in row["domains"]} == {f"gpu-{DGPU}", f"gpu-{ARC}", f"gpu-{ARC}-pkg", "cpu-package-0",
                                                   "cpu-core-000", "cpu-core-001"}
    assert "hwmon" in uses["meters"] and not uses["estimate"]  # amd_energy measures the CPU package
    out = measure_sleep(env, 3, "hwmon")
    t0, t1, elapsed = out["t_start_ns"], out["t_end_ns"], out["elapsed_s"]
    per = {d["domain"]: d["energy_j"] for d in out["domains"]}
    assert per[f"gpu-{DGPU}"] == pytest.approx(45.0 * elapsed, rel=1e-6)  # the constant sensor, exactly
    # each counter: exactly what the writer made it advance, to within one write at each end -- whatever
    # the load on this machine did to the writer's 2 ms pace (unloaded, that is the constant power)
    expected, slack = 45.0 * elapsed, 0.0
    for name, path in counter_files(hw).items():
        step = writer.step_j(path, t0) + writer.step_j(path, t1) + 1e-6
        assert abs(per[name] - writer.energy_j(path, t0, t1)) <= step, name
        if name != f"gpu-{ARC}-pkg":  # inside the card: reported, not added
            expected, slack = expected + writer.energy_j(path, t0, t1), slack + step
    assert abs(out["energy_j"] - expected) <= slack
    gaps = [b - a for (a, _), (b, _) in zip(writer.rounds, writer.rounds[1:], strict=False) if t0 <= a <= t1]
    if max(gaps) < 10_000_000:  # the writer kept its pace: the counters ran at their constant power
        assert out["energy_j"] == pytest.approx(95.0 * elapsed, rel=0.01)


def test_hwmon_device_removed_mid_run_is_flagged(hwmon):
    env, hw, _ = hwmon
    unplug = f"import os, time; time.sleep(1); os.rename({str((hw / 'hwmon2').resolve())!r}, '{hw.parent}/gone'); time.sleep(1)"
    check_fault(measure_command(env, [sys.executable, "-c", unplug], "hwmon"), "hwmon")  # the command unplugs the card


def test_hwmon_sweep_on_a_pretend_vulkan_build(tmp_path, hwmon, tiny_model):
    env, hw, writer = hwmon
    runs = sweep(tmp_path, {**env}, "Vulkan0 (AMD Radeon RX 7900 XTX (RADV NAVI31) (pretend), gpu)")
    assert dict(runs.select("n_gpu_layers", "backend_mode").unique().iter_rows()) == {
        0: "cpu", 1: "vulkan-partial", 3: "vulkan-full"}
    check_phases(runs, f"gpu-{DGPU}", 45.0, rel=1e-6)  # a power sensor: exact for constant power
    path = counter_files(hw)[f"gpu-{ARC}"]
    for row in runs.iter_rows(named=True):  # a counter: what the writer counted, to a write and a sampler read
        d = next(x for x in row["domains"] if x["domain"] == f"gpu-{ARC}")
        t0, t1 = row["t_start_ns"], row["t_end_ns"]
        slack = writer.step_j(path, t0) + writer.step_j(path, t1) + 20.0 * 0.04
        assert abs(d["energy_j"] - writer.energy_j(path, t0, t1)) <= slack
        assert d["prefill_energy_j"] + d["decode_energy_j"] == pytest.approx(d["energy_j"], rel=1e-9)


# ----------------------------------------------------------------------------- amdsmi


@pytest.fixture(scope="module")
def amd_env(tmp_path_factory) -> dict[str, str]:
    gcc = shutil.which("gcc")
    if gcc is None or amdsmi_build.amdsmi_wrapper_source() is None:
        pytest.skip("needs gcc and the amdsmi package (energybench[amd])")
    return {"ROCM_PATH": str(amdsmi_build.build(gcc, tmp_path_factory.mktemp("rocm")))}


def test_amdsmi_listed_and_measures_a_command(amd_env):
    row, uses = meters_row(amd_env, "amdsmi")
    assert row["available"] and [d["name"] for d in row["domains"]] == ["gpu-0000:03:00.0", "gpu-0000:03:00.0-power"]
    assert "amdsmi" in uses["meters"]
    out = measure_sleep(amd_env, 3, "amdsmi")
    assert out["energy_j"] == pytest.approx(300.0 * out["elapsed_s"], rel=0.01)


def test_amdsmi_gpu_lost_mid_run_is_flagged(amd_env):
    check_fault(measure_sleep({**amd_env, "FAKE_AMDSMI_0_LOST_AFTER_MS": "1000"}, 2, "amdsmi"), "amdsmi")


def test_amdsmi_sweep_on_a_pretend_hip_build(tmp_path, amd_env, tiny_model):
    runs = sweep(tmp_path, amd_env, "ROCm0 (AMD Instinct MI300X (pretend), gpu)")
    assert dict(runs.select("n_gpu_layers", "backend_mode").unique().iter_rows()) == {
        0: "cpu", 1: "hip-partial", 3: "hip-full"}
    check_phases(runs, "gpu-0000:03:00.0", 300.0, rel=0.02)
