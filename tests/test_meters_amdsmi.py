"""amdsmi meter against a C stand-in for libamd_smi.so (tests/fakes/amdsmi_fake.c) loaded by AMD's REAL
``amdsmi`` package, found through ``ROCM_PATH`` as the package documents. Each scenario runs in a fresh
subprocess: the package loads its library once per process. Needs the ``amd`` extra (amdsmi) and gcc;
the missing-package case runs everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
import amdsmi_build  # noqa: E402
from hwmon_tree import AMDGPU_DGPU, add_device  # noqa: E402

GPU0, GPU1 = "gpu-0000:03:00.0", "gpu-0000:13:00.0"

PRELUDE = """
import json, sys, time
from energybench.meters.amdsmi import AmdSmiMeter
from energybench.errors import MeterError
def emit(obj):
    sys.stdout.write("RESULT " + json.dumps(obj) + "\\n")
"""


@pytest.fixture(scope="module")
def rocm(tmp_path_factory) -> Path:
    """A ROCm-like tree holding the stand-in libamd_smi.so, built for the installed binding."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the libamd_smi.so stand-in")
    if amdsmi_build.amdsmi_wrapper_source() is None:
        pytest.skip("the amdsmi package (energybench[amd]) is not installed")
    return amdsmi_build.build(gcc, tmp_path_factory.mktemp("rocm"))


def run_fake(rocm_path: Path | None, code: str, **env: str | int) -> tuple[dict, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_AMDSMI_")}
    full.pop("ROCM_HOME", None)
    full["ROCM_PATH"] = str(rocm_path) if rocm_path else "/nonexistent-rocm"
    full["LD_LIBRARY_PATH"] = ""
    full.update({k: str(v) for k, v in env.items()})
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], env=full, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    return json.loads(lines[0][len("RESULT "):]), proc.stdout


PROBE = """
p = AmdSmiMeter().probe()
emit({"available": p.available, "reason": p.reason, "fix": p.fix})
"""

LOOP = """
m = AmdSmiMeter()
doms = m.open()
r0 = m.read(); time.sleep(0.5); r1 = m.read()
m.close()
emit({"domains": [d.to_dict() for d in doms], "r0": [r0.t_ns, r0.values], "r1": [r1.t_ns, r1.values]})
"""


def test_package_not_installed_says_how_to_get_it():
    out, _ = run_fake(None, "sys.modules['amdsmi'] = None\n" + PROBE)  # what a missing package looks like
    assert out["available"] is False and "amdsmi package is not installed" in out["reason"]
    assert "energybench[amd]" in out["fix"]


def test_missing_library_is_explained_and_prints_nothing(rocm, tmp_path):
    out, stdout = run_fake(tmp_path, PROBE)  # ROCM_PATH without lib/libamd_smi.so
    assert out["available"] is False and "cannot load libamd_smi.so" in out["reason"]
    assert "amd-smi-lib" in out["fix"] and "ROCM_PATH" in out["fix"]
    assert stdout.splitlines() == [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]  # no stray print


def test_counter_gpu_energy_and_the_power_cross_check(rocm):
    out, _ = run_fake(rocm, LOOP, FAKE_AMDSMI_0_POWER_W=250, FAKE_AMDSMI_0_RES_UJ=15.3)
    doms = {d["name"]: d for d in out["domains"]}
    assert list(doms) == [GPU0, f"{GPU0}-power"]
    assert (doms[GPU0]["kind"], doms[GPU0]["component"], doms[GPU0]["parent"]) == ("energy", "gpu", None)
    assert "amdsmi_get_energy_count" in doms[GPU0]["source"] and "MI300X" in doms[GPU0]["source"]
    assert (doms[f"{GPU0}-power"]["kind"], doms[f"{GPU0}-power"]["parent"]) == ("power", GPU0)
    (t0, v0), (t1, v1) = out["r0"], out["r1"]
    assert 0 <= v0[GPU0] < 1.0  # joules since open, not since the driver loaded
    # counts of 15.3 uJ refreshed every 1 ms: within one refresh (0.25 J) of 250 W x the time between reads
    assert v1[GPU0] - v0[GPU0] == pytest.approx(250 * (t1 - t0) / 1e9, abs=0.3)
    assert v1[f"{GPU0}-power"] == 250.0


def test_power_only_gpu_and_gpus_without_power(rocm):
    out, _ = run_fake(rocm, LOOP, FAKE_AMDSMI_COUNT=3, FAKE_AMDSMI_0_MODE="power", FAKE_AMDSMI_1_MODE="none",
                      FAKE_AMDSMI_2_POWER_W=90)
    doms = {d["name"]: d for d in out["domains"]}
    assert list(doms) == [GPU0, "gpu-0000:23:00.0", "gpu-0000:23:00.0-power"]  # the GPU without power is left out
    assert doms[GPU0]["kind"] == "power" and "no energy counter" in doms[GPU0]["source"]
    assert out["r1"][1][GPU0] == 300.0
    none, _ = run_fake(rocm, PROBE, FAKE_AMDSMI_0_MODE="none")
    assert none["available"] is False and "no AMD GPU reports energy or power" in none["reason"]


@pytest.mark.parametrize("code,fix", [(34, "modprobe amdgpu"), (10, "render")])
def test_init_failures(rocm, code, fix):
    out, _ = run_fake(rocm, PROBE, FAKE_AMDSMI_INIT_RET=code)
    assert out["available"] is False and "amdsmi_init failed" in out["reason"] and fix in out["fix"]


def test_probe_describes_each_gpu(rocm):
    out, _ = run_fake(rocm, PROBE, FAKE_AMDSMI_COUNT=2, FAKE_AMDSMI_1_MODE="power", FAKE_AMDSMI_1_NAME="AMD Radeon PRO W7900")
    assert out["available"] is True
    assert out["reason"] == (f"{GPU0} AMD Instinct MI300X: energy counter; "
                             f"{GPU1} AMD Radeon PRO W7900: instantaneous power")


def test_a_gpu_lost_mid_run_fails_reads_and_leaves_energy_unknown(rocm):
    out, _ = run_fake(rocm, """
        from energybench.cmdmeasure import measure_command
        from energybench.meters import select_meters
        m = AmdSmiMeter(); m.open(); m.read(); time.sleep(0.6)
        try:
            m.read(); err = None
        except MeterError as e:
            err = e.one_line()
        m.close()
        with select_meters(["amdsmi"]) as sel:
            r = measure_command(["sleep", "1.2"], sel, period_s=0.02)
        emit({"err": err, "energy_j": r.energy_j, "warnings": r.warnings})
        """, FAKE_AMDSMI_0_LOST_AFTER_MS=400)
    assert "amdsmi read failed" in out["err"] and "reset" in out["err"]
    assert out["energy_j"] is None
    assert any("meter read failed (amdsmi)" in w for w in out["warnings"])
    assert any("do not cover the window" in w for w in out["warnings"])


def test_the_same_gpu_in_hwmon_and_amdsmi_is_counted_once(rocm, tmp_path):
    cls = add_device(tmp_path, "hwmon1", AMDGPU_DGPU, "pci0000:00/0000:00:01.1/0000:03:00.0")
    out, _ = run_fake(rocm, """
        from energybench.cmdmeasure import measure_command
        from energybench.meters import select_meters
        with select_meters(["amdsmi", "hwmon"]) as sel:
            r = measure_command(["sleep", "0.6"], sel, period_s=0.02)
        emit({"energy_j": r.energy_j, "elapsed_s": r.elapsed_s, "meters": r.meters,
              "domains": [(d["meter"], d["domain"], d["energy_j"]) for d in r.domains]})
        """, FAKE_AMDSMI_0_POWER_W=300, ENERGYBENCH_HWMON_ROOT=str(cls))
    names = {(m, d) for m, d, _ in out["domains"]}
    assert ("amdsmi", GPU0) in names and ("hwmon", GPU0) in names
    assert out["meters"] == "amdsmi"  # the amdsmi counter is the GPU's total; hwmon's 45 W is reported beside it
    assert out["energy_j"] == pytest.approx(300 * out["elapsed_s"], rel=0.01)
