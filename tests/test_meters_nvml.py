"""NVML meter against a C stand-in for libnvidia-ml.so.1, loaded by the REAL pynvml.

``tests/fakes/nvml_fake.c`` is compiled with gcc into ``DIR/libnvidia-ml.so.1``; each scenario runs
in a fresh Python subprocess with ``LD_LIBRARY_PATH=DIR`` because pynvml loads and caches the
library handle once per process. The fake's behaviour (kinds, power, counter period, a GPU that is
lost after N ms) is set through ``FAKE_NVML_*`` environment variables documented in the C file.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from energybench.energy import THROTTLE_MASK
from energybench.errors import MeterError
from energybench.meters.base import PowerMeter
from energybench.meters.nvml import NvmlMeter





def _real_nvml_installed() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


PRELUDE = """
import json, sys, time
from energybench.meters.nvml import NvmlMeter, GpuLost, gpu_inventory
from energybench.errors import MeterError
def emit(obj):
    sys.stdout.write("RESULT " + json.dumps(obj) + "\\n")
def dom(d):
    return {"name": d.name, "kind": d.kind, "meter": d.meter, "component": d.component,
            "source": d.source, "update_period_s": d.update_period_s, "estimate": d.estimate}
def err(e):
    return {"type": type(e).__name__, "is_meter_error": isinstance(e, MeterError),
            "line": e.one_line() if isinstance(e, MeterError) else str(e)}
"""


def run_fake(lib_dir: Path | None, code: str, **env: str | int) -> dict:
    """Run ``code`` (after PRELUDE) in a subprocess that loads the stand-in; return its RESULT."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_NVML_")}
    full_env["LD_LIBRARY_PATH"] = str(lib_dir) if lib_dir else ""
    full_env.update({k: str(v) for k, v in env.items()})
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    return json.loads(lines[0][len("RESULT "):])


# ------------------------------------------------------------------------------ counter GPU
COUNTER_LOOP = """
m = NvmlMeter()
ta = time.monotonic_ns(); doms = m.open(); tb = time.monotonic_ns()
reads = []
deadline = time.monotonic() + 0.55
while time.monotonic() < deadline:
    ts = time.monotonic_ns(); r = m.read(); te = time.monotonic_ns()
    reads.append({"ts": ts, "te": te, "t": r.t_ns, "values": r.values, "aux": r.aux})
    time.sleep(0.01)
m.close()
emit({"ta": ta, "tb": tb, "domains": [dom(d) for d in doms], "reads": reads})
"""


def test_counter_gpu_energy_matches_the_analytic_staircase(fake_nvml_dir: Path) -> None:
    power_w, period_ms = 300.0, 100
    out = run_fake(fake_nvml_dir, COUNTER_LOOP, FAKE_NVML_COUNT=1, FAKE_NVML_0_MODE="counter",
                   FAKE_NVML_0_POWER_MW=int(power_w * 1000), FAKE_NVML_0_PERIOD_MS=period_ms)
    (d,) = out["domains"]
    assert d["name"] == "gpu-0" and d["kind"] == "energy" and d["meter"] == "nvml"
    assert d["component"] == "gpu" and d["estimate"] is False
    assert d["update_period_s"] == pytest.approx(0.1)
    assert "nvmlDeviceGetTotalEnergyConsumption" in d["source"]
    # the fake names itself an H100: the part-time sampling caveat must travel with the domain
    assert "Yang et al" in d["source"] and "25%" in d["source"]

    period_ns = period_ms * 1_000_000
    step_j = power_w * period_ms / 1000.0  # 30 J per counter refresh
    ta, tb = out["ta"], out["tb"]
    values = [r["values"]["gpu-0"] for r in out["reads"]]
    assert len(values) >= 10
    assert values == sorted(values), "a cumulative counter never decreases"
    for r in out["reads"]:
        e = r["values"]["gpu-0"]
        # The fake's counter is BASE + step * floor(t / period), evaluated once inside open() (in
        # [ta, tb]) for the baseline and once inside read() (in [ts, te]). So the number of steps
        # seen is an integer between these two bounds: an exact check with no timing tolerance.
        k = e / step_j
        assert k == pytest.approx(round(k), abs=1e-9), "energy comes in whole counter steps"
        lo = r["ts"] // period_ns - tb // period_ns
        hi = r["te"] // period_ns - ta // period_ns
        assert lo <= round(k) <= hi
        # Against the true energy P * (t - t_open): the counter lags by less than one refresh
        # period at each end (it holds its value for up to one period), so |error| < one step,
        # plus the power drawn during the read/open calls whose exact instant is unknown.
        t_open = (ta + tb) / 2
        analytic = power_w * (r["t"] - t_open) / 1e9
        slack = power_w * ((r["te"] - r["ts"]) + (tb - ta)) / 1e9
        assert abs(e - analytic) <= step_j + slack
    # over 0.55 s at a 100 ms refresh the counter must have advanced several times
    assert len(set(values)) >= 3


def test_counter_gpu_reports_aux_channels(fake_nvml_dir: Path) -> None:
    reasons = 0x4 | 0x1  # SwPowerCap + GpuIdle
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter(); m.open(); r = m.read(); m.close()
        emit({"aux": r.aux})
        """, FAKE_NVML_0_REASONS=reasons)
    assert out["aux"]["gpu-0"] == {
        "sm_clock_mhz": 1980.0, "mem_clock_mhz": 2619.0, "temperature_c": 47.0, "pstate": 0.0,
        "throttle_reasons": float(reasons), "mem_used_bytes": 1048576000.0,
    }
    assert int(out["aux"]["gpu-0"]["throttle_reasons"]) & THROTTLE_MASK


def test_unsupported_aux_channels_are_left_out(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter(); m.open(); r1 = m.read(); r2 = m.read(); m.close()
        emit({"aux1": r1.aux, "aux2": r2.aux, "v": r2.values})
        """, FAKE_NVML_0_AUX="unsupported")
    # the stand-in keeps memory info (the inventory needs it) but refuses clocks/temp/pstate/reasons
    assert out["aux1"]["gpu-0"] == {"mem_used_bytes": 0.0}
    assert out["aux2"]["gpu-0"] == {"mem_used_bytes": 0.0}
    assert out["v"]["gpu-0"] >= 0.0


def test_throttle_mask_is_pynvmls_slowdown_reasons() -> None:
    import pynvml

    assert THROTTLE_MASK == (pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonHwSlowdown
                             | pynvml.nvmlClocksEventReasonSwThermalSlowdown
                             | pynvml.nvmlClocksEventReasonHwThermalSlowdown
                             | pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown)
    assert THROTTLE_MASK & (0x1 | 0x2 | 0x10 | 0x100) == 0  # GpuIdle, app clocks, sync boost, display clock


# ------------------------------------------------------------------------------ power GPUs
def test_instant_power_gpu_without_energy_counter(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter(); doms = m.open()
        rs = [m.read() for _ in range(5)]
        m.close()
        emit({"domains": [dom(d) for d in doms], "w": [r.values["gpu-0"] for r in rs],
              "t": [r.t_ns for r in rs]})
        """, FAKE_NVML_0_MODE="instant", FAKE_NVML_0_POWER_MW=151250,
        FAKE_NVML_0_NAME="NVIDIA GeForce RTX 3060")
    (d,) = out["domains"]
    assert d["kind"] == "power"
    assert "NVML_FI_DEV_POWER_INSTANT" in d["source"]
    assert "Yang et al" not in d["source"], "the part-time caveat is for A100/H100 only"
    assert d["update_period_s"] == pytest.approx(0.1)
    assert out["w"] == [151.25] * 5  # mW -> W
    assert out["t"] == sorted(out["t"])


def test_average_power_gpu_says_it_is_a_one_second_average(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter(); doms = m.open(); r = m.read(); m.close()
        emit({"domains": [dom(d) for d in doms], "w": r.values["gpu-0"]})
        """, FAKE_NVML_0_MODE="average", FAKE_NVML_0_POWER_MW=80000,
        FAKE_NVML_0_NAME="NVIDIA A100-SXM4-40GB")
    (d,) = out["domains"]
    assert d["kind"] == "power" and d["update_period_s"] == 1.0
    assert "nvmlDeviceGetPowerUsage" in d["source"] and "1 s moving AVERAGE" in d["source"]
    assert "Yang et al" in d["source"]  # an A100
    assert out["w"] == 80.0


def test_kind_is_chosen_per_device_and_powerless_gpus_are_skipped(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter(); doms = m.open(); r = m.read(); m.close()
        emit({"domains": [dom(d) for d in doms], "values": r.values, "skipped": m.skipped})
        """, FAKE_NVML_COUNT=3, FAKE_NVML_0_MODE="none", FAKE_NVML_1_MODE="counter",
        FAKE_NVML_2_MODE="instant", FAKE_NVML_2_POWER_MW=50000)
    assert [(d["name"], d["kind"]) for d in out["domains"]] == [("gpu-1", "energy"), ("gpu-2", "power")]
    assert set(out["values"]) == {"gpu-1", "gpu-2"} and out["values"]["gpu-2"] == 50.0
    assert list(out["skipped"]) == ["0"]


def test_device_selection(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter(devices=[1]); doms = m.open(); m.close()
        bad = NvmlMeter(devices=[5])
        p = bad.probe()
        try:
            bad.open(); e = None
        except MeterError as exc:
            e = err(exc)
        emit({"names": [d.name for d in doms], "probe": [p.available, p.reason], "err": e})
        """, FAKE_NVML_COUNT=2)
    assert out["names"] == ["gpu-1"]
    assert out["probe"][0] is False and "index 5" in out["probe"][1]
    assert out["err"]["is_meter_error"] and "GPU index 5 does not exist" in out["err"]["line"]


# ------------------------------------------------------------------------------ lost GPU
def test_gpu_lost_mid_run_raises_meter_error_and_does_not_hang(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter(); m.open()
        ok, errors = 0, []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(errors) < 3:
            try:
                m.read(); ok += 1
            except MeterError as exc:
                errors.append(err(exc))
            time.sleep(0.01)
        m.close(); m.close()
        emit({"ok": ok, "errors": errors})
        """, FAKE_NVML_0_LOST_AFTER_MS=250)
    assert out["ok"] >= 1, "the GPU worked before it was lost"
    assert len(out["errors"]) == 3, "every read after the loss fails promptly, none hangs"
    for e in out["errors"]:
        assert e["type"] == "GpuLost" and e["is_meter_error"]
        assert "gpu-0" in e["line"] and "GPU is lost" in e["line"]
        assert "nvmlDeviceGetTotalEnergyConsumption" in e["line"] and "nvidia-smi" in e["line"]


def test_gpu_lost_at_open(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, """
        m = NvmlMeter()
        try:
            m.open(); e = None
        except MeterError as exc:
            e = err(exc)
        emit({"err": e})
        """, FAKE_NVML_0_LOST_AFTER_MS=0)
    assert out["err"]["type"] == "GpuLost" and "GPU is lost" in out["err"]["line"]


# ------------------------------------------------------------------------------ probe / init errors
PROBE_AND_OPEN = """
m = NvmlMeter()
p = m.probe()
try:
    m.open(); e = None; m.close()
except MeterError as exc:
    e = err(exc)
emit({"available": p.available, "reason": p.reason, "fix": p.fix, "err": e})
"""


def test_probe_without_driver_library(tmp_path: Path) -> None:
    if _real_nvml_installed():
        pytest.skip("a real libnvidia-ml.so.1 is installed here, so its absence cannot be emulated")
    out = run_fake(tmp_path, PROBE_AND_OPEN)  # an empty directory: nothing to load
    assert out["available"] is False
    assert out["reason"] == "no NVIDIA driver (libnvidia-ml.so.1 not found)"
    assert "install the NVIDIA driver" in out["fix"]
    assert out["err"]["is_meter_error"] and "libnvidia-ml.so.1 not found" in out["err"]["line"]


@pytest.mark.parametrize(("code", "words"), [
    (4, "insufficient permissions to use NVML (NVML: Insufficient Permissions)"),
    (9, "the NVIDIA kernel driver is not loaded (NVML: Driver Not Loaded)"),
])
def test_probe_init_failures(fake_nvml_dir: Path, code: int, words: str) -> None:
    out = run_fake(fake_nvml_dir, PROBE_AND_OPEN, FAKE_NVML_INIT_RET=code)
    assert out["available"] is False and out["reason"] == words and out["fix"]
    assert out["err"]["type"] == "MeterError" and words in out["err"]["line"]


def test_probe_no_gpu_and_no_power(fake_nvml_dir: Path) -> None:
    none = run_fake(fake_nvml_dir, PROBE_AND_OPEN, FAKE_NVML_COUNT=0)
    assert none["available"] is False and "reports no GPU" in none["reason"]
    assert "reports no GPU" in none["err"]["line"]
    powerless = run_fake(fake_nvml_dir, PROBE_AND_OPEN, FAKE_NVML_0_MODE="none")
    assert powerless["available"] is False and "no GPU reports power" in powerless["reason"]
    assert "no GPU reports power" in powerless["err"]["line"]


def test_probe_available_describes_each_gpu(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, PROBE_AND_OPEN, FAKE_NVML_COUNT=2, FAKE_NVML_1_MODE="average",
                   FAKE_NVML_1_NAME="NVIDIA L4")
    assert out["available"] is True and out["err"] is None
    assert out["reason"] == ("gpu-0 NVIDIA H100 80GB HBM3: energy counter; "
                             "gpu-1 NVIDIA L4: 1 s average power")


# ------------------------------------------------------------------------------ inventory, protocol
def test_gpu_inventory(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, "emit(gpu_inventory())", FAKE_NVML_COUNT=2,
                   FAKE_NVML_1_MODE="instant", FAKE_NVML_1_NAME="NVIDIA L4", FAKE_NVML_DRIVER="560.35.03")
    assert [g["index"] for g in out] == [0, 1]
    g0, g1 = out
    assert g0["name"] == "NVIDIA H100 80GB HBM3" and g1["name"] == "NVIDIA L4"
    assert g0["uuid"].startswith("GPU-") and g0["uuid"] != g1["uuid"]
    assert g0["driver_version"] == "560.35.03" and g0["cuda_driver_version"] == "12.4"
    assert g0["memory_total_bytes"] == 85520809984
    assert g0["power_limit_w"] == 700.0 and g0["compute_capability"] == "9.0"
    assert (g0["power_method"], g1["power_method"]) == ("energy", "instant")


def test_gpu_inventory_without_nvml_is_empty(fake_nvml_dir: Path) -> None:
    out = run_fake(fake_nvml_dir, "emit(gpu_inventory())", FAKE_NVML_INIT_RET=9)
    assert out == []


def test_read_before_open_and_protocol() -> None:
    m = NvmlMeter()
    assert isinstance(m, PowerMeter)
    assert m.name == "nvml" and m.estimate is False
    with pytest.raises(MeterError, match="before open"):
        m.read()
    m.close()  # closing an unopened meter is harmless


# ------------------------------------------------------------------------------ scripts/gpu_*.py
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_analyze_helpers_on_analytic_series() -> None:
    ga = _load_script("gpu_analyze")
    ts = [0, 1_000_000_000, 2_000_000_000, 4_000_000_000]  # ns
    ramp = [100.0, 200.0, 300.0, 500.0]  # W = 100 + 100 t: a straight line
    # integral of 100 + 100 t over [0.5, 3] s = 100*2.5 + 50*(9 - 0.25) = 687.5 J (exact for a line)
    assert ga.trapezoid(ts, ramp, 0.5e9, 3e9) == pytest.approx(687.5, rel=1e-12)
    assert ga.trapezoid(ts, ramp, -1, 3e9) is None  # outside the samples: refuse, don't extrapolate
    counter = [0.0, 10.0, 20.0, 40.0]  # J, linear at 10 W
    assert ga.counter_energy(ts, counter, 0.25e9, 3.5e9) == pytest.approx(32.5, rel=1e-12)
    assert ga.change_intervals_ms([0, 10_000_000, 20_000_000, 30_000_000, 40_000_000],
                                  [0.0, 0.0, 1.0, 1.0, 2.0]) == [20.0]


def test_gpu_trace_and_analysis_against_the_stand_in(fake_nvml_dir: Path, tmp_path: Path) -> None:
    """The GPU check's recording and analysis halves, end to end, on the fake GPU (300 W constant,
    counter refreshed every 20 ms) with a CPU-only stand-in for the CUDA load."""
    power_w, period_ms = 300.0, 20
    out = tmp_path / "gpu_check"
    load = (f"{sys.executable} -c \"import json, time; t0 = time.monotonic_ns(); time.sleep(0.6); "
            "print(json.dumps({'t_start_ns': t0, 't_end_ns': time.monotonic_ns()}))\"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_NVML_")}
    env.update(LD_LIBRARY_PATH=str(fake_nvml_dir), FAKE_NVML_0_POWER_MW=str(int(power_w * 1000)),
               FAKE_NVML_0_PERIOD_MS=str(period_ms))
    trace = subprocess.run([sys.executable, str(SCRIPTS / "gpu_trace.py"), "--out", str(out),
                            "--idle-s", "0.3", "--tail-s", "0.2", "--sample-ms", "5", "--load-cmd", load],
                           env=env, capture_output=True, text=True, timeout=120)
    assert trace.returncode == 0, trace.stderr
    analysis = subprocess.run([sys.executable, str(SCRIPTS / "gpu_analyze.py"), str(out)],
                              capture_output=True, text=True, timeout=120)
    assert analysis.returncode == 0, analysis.stderr
    assert "cnt/inst" in analysis.stdout and "load" in analysis.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["n_errors"] == 0 and s["domains"][0]["kind"] == "energy"
    max_gap_s = s["sample_interval_ms"]["max"] / 1000
    step_j = power_w * period_ms / 1000
    for name in ("whole", "load", "idle"):
        w = s["windows"][name]
        analytic = power_w * w["duration_s"]
        # constant power: the trapezoid of the instantaneous samples is exact
        assert w["instant_j"] == pytest.approx(analytic, rel=1e-9)
        assert w["average_j"] == pytest.approx(analytic, rel=1e-9)
        # the counter is a staircase: each interpolated edge may be off by up to one refresh step
        # plus the energy of one sample gap, and a window has two edges (a derived bound, not tuned)
        assert abs(w["counter_j"] - analytic) <= 2 * (step_j + power_w * max_gap_s)
    assert s["windows"]["load"]["duration_s"] == pytest.approx(0.6, abs=0.2)
    # the measured refresh period of the counter is the fake's, to within one sample interval
    assert abs(s["counter_update_ms"]["median"] - period_ms) <= s["sample_interval_ms"]["max"]
    assert s["instant_update_ms"] is None  # constant power never changes
    assert s["load_aux"]["sm_clock_mhz"]["median"] == 1980.0
