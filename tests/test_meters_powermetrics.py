"""powermetrics meter: the plist stream parser on written documents, and the meter through a stand-in
``powermetrics`` executable (``tests/fakes/powermetrics_fake.py``) named by ``$ENERGYBENCH_POWERMETRICS``:
the real child-process path, at the requested interval, with its failures (refusals, death, stalls)."""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from energybench.cmdmeasure import measure_command
from energybench.errors import MeterError
from energybench.meters import select_meters
from energybench.meters.powermetrics import (
    ENV_EXECUTABLE,
    PlistStream,
    PowermetricsMeter,
    parse_sample,
    powermetrics_args,
    resolve_command,
    sudoers_line,
)

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
import powermetrics_fake  # noqa: E402

#: the stand-in's default constant powers (W): cpu, gpu, ane; the combined total is their sum
CPU_W, GPU_W, ANE_W = 4.0, 1.5, 0.5


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory) -> Path:
    return powermetrics_fake.install(tmp_path_factory.mktemp("pm") / "bin")


@pytest.fixture
def pm(monkeypatch, stand_in):
    """The stand-in selected through the documented variable; FAKE_PM_* reset."""
    for key in [k for k in os.environ if k.startswith("FAKE_PM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv(ENV_EXECUTABLE, str(stand_in))
    return monkeypatch


def pm_env(stand_in: Path, **fake: str | float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_PM_")}
    env[ENV_EXECUTABLE] = str(stand_in)
    env.update({k: str(v) for k, v in fake.items()})
    return env


def doc(elapsed_ns: int = 100_000_000, *, gpu_dict: bool = True, gpu_in_processor: bool = True,
        package: bool = False, energy: bool = True, dram: bool = False) -> bytes:
    """A powermetrics cpu_power/gpu_power/ane_power sample as written by macOS 14 on an M2."""
    proc = {"clusters": [{"name": "P-Cluster", "freq_hz": 3.2e9, "idle_ratio": 0.5, "cpus": []}],
            "cpu_power": 1234.5, "ane_power": 10.0, "combined_power": 1234.5 + 321.0 + 10.0}
    if energy:
        proc.update(cpu_energy=123, ane_energy=1)
    if gpu_in_processor:
        proc["gpu_power"] = 321.0
        if energy:
            proc["gpu_energy"] = 32
    if package:
        proc["package_energy"] = 160
    if dram:
        proc["dram_energy"] = 7
    d = {"is_delta": True, "elapsed_ns": elapsed_ns, "hw_model": "Mac14,2", "processor": proc}
    if gpu_dict:
        d["gpu"] = {"freq_hz": 1398.0, "idle_ratio": 0.3, "gpu_energy": 32}
    return plistlib.dumps(d, fmt=plistlib.FMT_XML)


# ----------------------------------------------------------------------------- the stream and one sample


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_stream_of_samples_split_after_each_closing_tag(chunk):
    stream = doc(100_000_000) + b"\x00" + doc(120_000_000) + b"\x00" + doc(80_000_000) + b"\x00"
    s, docs = PlistStream(), []
    for i in range(0, len(stream), chunk):
        docs += s.feed(stream[i:i + chunk])
    assert [parse_sample(d).elapsed_ns for d in docs] == [100_000_000, 120_000_000, 80_000_000]


def test_single_sample_without_nul_and_nul_at_the_next_line():
    assert len(PlistStream().feed(doc())) == 1  # `-n 1`: no NUL at all
    s = PlistStream()
    first = s.feed(doc() + b"\x00" + doc()[:200])  # asitop's view: the NUL starts the next line
    assert len(first) == 1 and s.feed(doc()[200:]) and s.feed(b"") == []
    assert PlistStream().feed(doc()[:-30]) == []  # no sample before its closing tag


def test_sample_energies_and_units():
    s = parse_sample(doc(250_000_000))
    assert s.energy_j == pytest.approx({"cpu": 0.123, "gpu": 0.032, "ane": 0.001,
                                        "soc": 1565.5e-3 * 0.25})  # combined_power mW x 0.25 s
    assert s.soc_source.startswith("processor.combined_power")
    with_package = parse_sample(doc(package=True, dram=True))
    assert with_package.energy_j["soc"] == pytest.approx(0.160) and with_package.energy_j["dram"] == pytest.approx(0.007)
    assert with_package.soc_source == "processor.package_energy"


def test_missing_gpu_dict_and_gpu_only_in_the_gpu_dict():
    assert parse_sample(doc(gpu_dict=False)).energy_j["gpu"] == pytest.approx(0.032)  # processor still has it
    assert parse_sample(doc(gpu_in_processor=False)).energy_j["gpu"] == pytest.approx(0.032)  # only gpu{}
    assert "gpu" not in parse_sample(doc(gpu_dict=False, gpu_in_processor=False)).energy_j


def test_power_only_samples_use_power_times_the_window():
    s = parse_sample(doc(200_000_000, energy=False))
    assert s.energy_j["cpu"] == pytest.approx(1.2345 * 0.2) and s.energy_j["gpu"] == pytest.approx(0.321 * 0.2)


def test_unreadable_documents_are_errors():
    with pytest.raises(ValueError, match="not a powermetrics cpu_power sample"):
        parse_sample(b"<?xml version='1.0'?><plist version='1.0'><dict><key>x</key></dict></plist>")
    no_cpu = plistlib.dumps({"elapsed_ns": 1, "processor": {"gpu_energy": 3}})
    with pytest.raises(ValueError, match="cpu_energy"):
        parse_sample(no_cpu)


# ----------------------------------------------------------------------------- which command


def test_command_sudoers_line_and_platforms(tmp_path):
    args = ["--samplers", "cpu_power,gpu_power,ane_power", "-f", "plist", "-i", "100"]
    assert powermetrics_args(100) == args
    line = sudoers_line(100, user="ada")
    assert line == ("ada ALL=(root) NOPASSWD: /usr/bin/powermetrics --samplers cpu_power\\,gpu_power\\,ane_power "
                    "-f plist -i 100")
    argv, _ = resolve_command(100, env={}, system="darwin", machine="arm64", euid=501)
    if os.path.exists("/usr/bin/powermetrics"):
        assert argv == ["sudo", "-n", "/usr/bin/powermetrics", *args]
    assert resolve_command(100, env={}, system="linux", machine="x86_64")[1] == "powermetrics is macOS only (this is linux)"
    assert "not Apple Silicon" in resolve_command(100, env={}, system="darwin", machine="x86_64")[1]
    not_exe = tmp_path / "powermetrics"
    not_exe.write_text("")
    assert resolve_command(100, env={ENV_EXECUTABLE: str(not_exe)})[0] is None
    not_exe.chmod(0o755)
    assert resolve_command(100, env={ENV_EXECUTABLE: str(not_exe)}, system="linux")[0] == [str(not_exe), *args]


def test_unavailable_off_macos_says_why_and_how(monkeypatch):
    monkeypatch.delenv(ENV_EXECUTABLE, raising=False)
    probe = PowermetricsMeter().probe()
    if sys.platform == "darwin":
        pytest.skip("on macOS the real powermetrics decides")
    assert not probe.available and "macOS only" in probe.reason and ENV_EXECUTABLE in probe.fix
    with pytest.raises(MeterError, match="macOS only"):
        PowermetricsMeter().open()


@pytest.mark.parametrize("refusal,words", [("root", "must run as root"), ("sudo", "sudo needs a password")])
def test_refusals_name_the_exact_sudoers_line(pm, refusal, words):
    pm.setenv("FAKE_PM_REFUSE", refusal)
    probe = PowermetricsMeter(interval_ms=250).probe()
    assert not probe.available and words in probe.reason
    assert sudoers_line(250) in probe.fix and "visudo" in probe.fix
    with pytest.raises(MeterError) as err:
        PowermetricsMeter(interval_ms=250).open()
    assert words in err.value.message and sudoers_line(250) in err.value.hint


# ----------------------------------------------------------------------------- the meter on the stand-in


def rates(r0, r1):
    dt = (r1.t_ns - r0.t_ns) / 1e9
    return {k: (r1.values[k] - r0.values[k]) / dt for k in r1.values}


def settled(meter: PowermetricsMeter, samples: int = 2):
    """A reading after ``samples`` more samples: the first ones are placed at their arrival, which the
    stand-in's start-up delays (later ones are chained by elapsed_ns)."""
    seen = {meter.read().t_ns}
    while len(seen) <= samples:
        time.sleep(0.005)
        seen.add(meter.read().t_ns)
    return meter.read()


def test_domains_and_constant_power_at_the_requested_interval(pm, tmp_path):
    pm.setenv("FAKE_PM_ARGV_LOG", str(tmp_path / "argv"))
    meter = PowermetricsMeter()
    domains = {d.name: d for d in meter.open()}
    try:
        assert list(domains) == ["cpu", "gpu", "ane", "soc"]
        assert {n: d.component for n, d in domains.items()} == {"cpu": "cpu", "gpu": "gpu", "ane": "accelerator",
                                                                "soc": "psys"}
        assert all(d.kind == "energy" and d.update_period_s == 0.1 for d in domains.values())
        assert meter.data_delay_s == pytest.approx(0.45)
        r0 = settled(meter)
        seen = {r0.t_ns}
        while len(seen) < 11:  # ten more samples
            time.sleep(0.01)
            seen.add(meter.read().t_ns)
        r1 = meter.read()
    finally:
        meter.close()
    assert rates(r0, r1) == pytest.approx({"cpu": CPU_W, "gpu": GPU_W, "ane": ANE_W, "soc": 6.0}, rel=0.01)
    gaps = sorted(b - a for a, b in zip(sorted(seen), sorted(seen)[1:], strict=False))
    assert 0.08e9 < gaps[len(gaps) // 2] < 0.12e9  # samples arrive at the interval asked for
    assert json.loads((tmp_path / "argv").read_text().splitlines()[-1]) == powermetrics_args(100)


def test_a_varying_sample_window(pm):
    pm.setenv("FAKE_PM_JITTER", "0.5")  # windows of 50, 150 and 125 ms in turn
    meter = PowermetricsMeter()
    meter.open()
    try:
        r0 = settled(meter)
        times = [r0.t_ns]
        while len(times) < 13:
            time.sleep(0.005)
            r = meter.read()
            if r.t_ns != times[-1]:
                times.append(r.t_ns)
        r1 = meter.read()
    finally:
        meter.close()
    gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) < 70 and max(gaps) > 130
    assert rates(r0, r1)["cpu"] == pytest.approx(CPU_W, rel=0.01)


@pytest.mark.parametrize("layout", ["no_gpu_dict", "gpu_dict_only", "package", "power_only"])
def test_macos_layouts_through_the_child(pm, layout):
    pm.setenv("FAKE_PM_LAYOUT", layout)
    meter = PowermetricsMeter()
    domains = {d.name: d for d in meter.open()}
    try:
        r0 = settled(meter)
        time.sleep(0.6)
        r1 = meter.read()
    finally:
        meter.close()
    assert set(domains) == {"cpu", "gpu", "ane", "soc"}
    assert ("package_energy" in domains["soc"].source) == (layout == "package")
    assert rates(r0, r1) == pytest.approx({"cpu": CPU_W, "gpu": GPU_W, "ane": ANE_W, "soc": 6.0}, rel=0.02)


def test_a_single_sample_has_no_nul(stand_in):
    out = subprocess.run([str(stand_in), *powermetrics_args(50), "-n", "1"], capture_output=True, timeout=30,
                         env=pm_env(stand_in)).stdout
    assert b"\x00" not in out and out.rstrip().endswith(b"</plist>")
    (one,) = PlistStream().feed(out)
    assert parse_sample(one).energy_j["cpu"] > 0


# ----------------------------------------------------------------------------- faults: never a silent zero


def test_child_that_dies_mid_run_fails_reads(pm):
    pm.setenv("FAKE_PM_DIE_AFTER_S", "0.4")
    meter = PowermetricsMeter()
    meter.open()
    try:
        meter.read()
        time.sleep(0.8)
        with pytest.raises(MeterError, match="stopped mid-run.*lost connection to the power sampler"):
            meter.read()
    finally:
        meter.close()


def test_child_that_stalls_fails_reads(pm):
    pm.setenv("FAKE_PM_STALL_AFTER_S", "0.3")
    meter = PowermetricsMeter()
    meter.open()
    try:
        first = meter.read()
        time.sleep(1.5)
        with pytest.raises(MeterError, match="stalled"):
            meter.read()
        assert first.values["cpu"] == 0.0
    finally:
        meter.close()


def test_a_run_whose_meter_dies_has_unknown_energy_and_says_why(pm):
    pm.setenv("FAKE_PM_DIE_AFTER_S", "0.8")
    with select_meters(["powermetrics"]) as sel:
        m = measure_command(["sleep", "1.5"], sel, period_s=0.02)
    assert m.returncode == 0 and m.energy_j is None
    assert {d["domain"]: d["energy_j"] for d in m.domains} == dict.fromkeys(["cpu", "gpu", "ane", "soc"])
    assert any("meter read failed (powermetrics)" in w and "stopped mid-run" in w for w in m.warnings)
    assert any("do not cover the window" in w for w in m.warnings)


def test_a_command_is_measured_to_the_samples_after_its_end(pm):
    """The window's end waits for the sample covering it (data_delay_s): energy = constant power x time."""
    with select_meters(["powermetrics"]) as sel:
        m = measure_command(["sleep", "0.75"], sel, period_s=0.02)
    assert m.energy_source == "measured" and m.meters == "powermetrics"
    assert m.energy_j == pytest.approx((CPU_W + GPU_W + ANE_W) * m.elapsed_s, rel=0.02)
    soc = next(d for d in m.domains if d["domain"] == "soc")
    assert soc["energy_j"] == pytest.approx(m.energy_j, rel=0.01)  # reported beside its parts, not added
