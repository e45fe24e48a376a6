"""The TDP x utilisation ESTIMATE meter: table lookup, scaling, formula, and real /proc/stat reads."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from energybench.errors import ConfigError, MeterError
from energybench.meters.estimate import (
    GENERATIONS,
    IDLE_FRACTION,
    EstimateMeter,
    estimate_energy_j,
    estimate_power_w,
    guess_range_w,
    lookup_cpu,
)
from energybench.sysinfo import read_cpuinfo

N_CPUS = psutil.cpu_count(logical=True) or 1


def cpuinfo(tmp_path: Path, model_name: str, vendor: str = "GenuineIntel", family: int = 6, model: int = 183,
            flags: str = "fpu vme") -> Path:
    """A /proc/cpuinfo with two processors, in the kernel's format."""
    block = (f"processor\t: {{i}}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
             f"model name\t: {model_name}\nstepping\t: 1\ncpu MHz\t\t: 3500.000\nflags\t\t: {flags}\n\n")
    p = tmp_path / "cpuinfo"
    p.write_text(block.format(i=0) + block.format(i=1))
    return p


def test_formula():
    assert estimate_power_w(100, 0.0) == pytest.approx(100 * IDLE_FRACTION)
    assert estimate_power_w(100, 1.0) == pytest.approx(100)
    assert estimate_power_w(100, 0.5) == pytest.approx(100 * (IDLE_FRACTION + (1 - IDLE_FRACTION) * 0.5))
    # energy over 2 s with 4 CPUs, 3 CPU-seconds busy: utilisation 3/8
    assert estimate_energy_j(80, 2.0, 3.0, 4) == pytest.approx(estimate_power_w(80, 3 / 8) * 2.0)
    assert estimate_energy_j(80, 1.0, 99.0, 4) == pytest.approx(80.0)  # utilisation capped at 100%


def test_table_model_scaled_to_visible_cpus(tmp_path):
    meter = EstimateMeter(cpuinfo_path=cpuinfo(tmp_path, "13th Gen Intel(R) Core(TM) i5-13600K"))
    tdp, how = meter.resolve_tdp()
    assert tdp == pytest.approx(125 * min(1.0, N_CPUS / 20))
    assert "i5-13600K" in how and f"{N_CPUS}/20" in how
    probe = meter.probe()
    assert probe.available and "ESTIMATE" in probe.reason and "-60%..+190%" in probe.reason


def test_vm_hiding_the_model_uses_family_guess(tmp_path):
    meter = EstimateMeter(cpuinfo_path=cpuinfo(tmp_path, "AMD EPYC", "AuthenticAMD", 25, 1))
    tdp, how = meter.resolve_tdp()
    assert tdp == pytest.approx(280 * min(1.0, N_CPUS / 128))
    assert "guess" in how and "Milan" in how


#: Flags of this project's KVM guests (an AMX Xeon), cut to the ones that matter here.
XEON_VM_FLAGS = "fpu vme avx2 avx512f avx512_fp16 amx_bf16 amx_tile amx_int8 hypervisor"


def test_intel_vm_hiding_the_sku_gets_the_labelled_guess_as_amd(tmp_path):
    # Emerald Rapids (family 6 model 207) shown as "Intel(R) Xeon(R) Processor": taken as its flagship
    meter = EstimateMeter(cpuinfo_path=cpuinfo(tmp_path, "Intel(R) Xeon(R) Processor", model=207, flags=XEON_VM_FLAGS))
    tdp, how = meter.resolve_tdp()
    assert tdp == pytest.approx(350 * min(1.0, N_CPUS / 128))
    assert "GUESS" in how and "Emerald Rapids" in how and "Platinum 8592+" in how
    lo, hi = guess_range_w(next(g for g in GENERATIONS if 207 in g.models), N_CPUS)
    assert f"{lo:.3g}-{hi:.3g} W" in how and lo <= tdp < hi
    assert meter.probe().available
    amd = EstimateMeter(cpuinfo_path=cpuinfo(tmp_path, "AMD EPYC", "AuthenticAMD", 0x1A, 0x02))
    tdp, how = amd.resolve_tdp()
    assert tdp == pytest.approx(500 * min(1.0, N_CPUS / 256)) and "GUESS" in how and "Turin" in how


def test_a_model_number_the_flags_contradict_is_refused(tmp_path):
    # this project's machine: CPUID family 6 model 167 is Rocket Lake (a desktop part without AMX), but
    # the CPU reports AMX: the hypervisor rewrote the model number; no guess, --cpu-tdp-w is asked
    path = cpuinfo(tmp_path, "Intel(R) Xeon(R) Processor", model=167, flags=XEON_VM_FLAGS)
    probe = EstimateMeter(cpuinfo_path=path).probe()
    assert not probe.available and "--cpu-tdp-w" in probe.fix
    assert "Rocket Lake" in probe.reason and "amx_tile" in probe.reason and "rewrote the model number" in probe.reason
    assert EstimateMeter(cpu_tdp_w=150, cpuinfo_path=path).resolve_tdp() == (150.0, "TDP 150 W from --cpu-tdp-w")
    # the same model number without AMX is a Rocket Lake: by name exactly, or guessed when the name hides it
    exact = EstimateMeter(cpuinfo_path=cpuinfo(tmp_path, "Intel(R) Xeon(R) E-2388G CPU @ 3.20GHz", model=167))
    assert exact.resolve_tdp()[0] == pytest.approx(95 * min(1.0, N_CPUS / 16))
    hidden = EstimateMeter(cpuinfo_path=cpuinfo(tmp_path, "Intel(R) Xeon(R) Processor", model=167))
    assert "GUESS" in hidden.resolve_tdp()[1] and "i9-11900K" in hidden.resolve_tdp()[1]


def test_cpu_tdp_flag_comes_first(tmp_path):
    meter = EstimateMeter(cpu_tdp_w=42, cpuinfo_path=cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor",
                                                             "AuthenticAMD", 25, 1))
    assert meter.resolve_tdp() == (42.0, "TDP 42 W from --cpu-tdp-w")


def test_guess_range_spans_the_generations_parts():
    milan = next(g for g in GENERATIONS if g.vendor == "AuthenticAMD" and g.family == 25 and 1 in g.models)
    # 2 CPUs: EPYC 7713 gives the least (225 W / 128 threads), EPYC 72F3 the most (180 W / 16 threads)
    assert guess_range_w(milan, 2) == pytest.approx((225 * 2 / 128, 180 * 2 / 16))
    assert guess_range_w(milan, 1024) == pytest.approx((155, 280))  # whole packages


def test_table_is_consistent():
    seen: dict[tuple[str, int, int], str] = {}
    for gen in GENERATIONS:
        assert gen.skus and all(spec.threads and spec.tdp_w > 0 for _, spec in gen.skus), gen.name
        for model in gen.models:
            key = (gen.vendor, gen.family, model)
            assert key not in seen, f"{gen.name} and {seen.get(key)} share {key}"
            seen[key] = gen.name
        for _, spec in gen.skus:  # every part is found by its own name, as itself
            from energybench.sysinfo import CpuInfo

            found = lookup_cpu(CpuInfo(model_name=spec.label))
            assert found.spec == spec and not found.guess, spec.label


def test_unknown_cpu_needs_tdp(tmp_path):
    meter = EstimateMeter(cpuinfo_path=cpuinfo(tmp_path, "Imaginary CPU 3000", "SomeVendor", 1, 2))
    probe = meter.probe()
    assert not probe.available
    assert "Imaginary CPU 3000" in probe.reason and "--cpu-tdp-w" in probe.fix
    with pytest.raises(MeterError, match="not in energybench's table"):
        meter.open()
    given = EstimateMeter(cpu_tdp_w=65, cpuinfo_path=cpuinfo(tmp_path, "Imaginary CPU 3000", "SomeVendor", 1, 2))
    assert given.probe().available
    assert given.resolve_tdp() == (65.0, "TDP 65 W from --cpu-tdp-w")


def test_bad_tdp_rejected():
    for bad in (0, -5, float("nan")):
        with pytest.raises(ConfigError, match="positive") as exc:
            EstimateMeter(cpu_tdp_w=bad)
        assert exc.value.exit_code == 2


def test_read_cpuinfo_fields(tmp_path):
    info = read_cpuinfo(cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", "AuthenticAMD", 25, 1))
    assert (info.model_name, info.vendor, info.family, info.model) == ("AMD EPYC 7763 64-Core Processor",
                                                                       "AuthenticAMD", 25, 1)
    assert info.flags == frozenset({"fpu", "vme"})
    assert read_cpuinfo(tmp_path / "missing") is None


def test_domain_is_labelled_estimate_and_counts_busy_time(tmp_path):
    meter = EstimateMeter(cpu_tdp_w=100)
    (d,) = meter.open()
    assert d.name == "cpu-package-0" and d.estimate and d.kind == "energy" and d.component == "cpu"
    assert "ESTIMATE" in d.source and "P = TDP x (0.1 + 0.9 x utilisation)" in d.source and "100 W" in d.source
    # one CPU kept busy by a child process for ~0.6 s: utilisation of this machine >= 1/N_CPUS
    # (other load can only raise it), so the estimated power is at least the model at that share
    r1 = meter.read()
    subprocess.run([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<0.6: pass"], check=True)
    r2 = meter.read()
    dt = (r2.t_ns - r1.t_ns) / 1e9
    power = (r2.values[d.name] - r1.values[d.name]) / dt
    assert power >= estimate_power_w(100, 0.8 / N_CPUS)  # 0.8: the child's startup is not busy time
    assert power <= 100.0 + 1e-9
    time.sleep(0.05)
    r3 = meter.read()
    assert r3.values[d.name] > r2.values[d.name]  # the idle floor keeps the counter moving
    meter.close()
    with pytest.raises(MeterError):
        meter.read()
