"""The GPU measurement protocol (Yang et al. SC'24), its config section, the plan it produces,
rise-time handling in attribution (analytic traces), backend_mode and the config warnings."""

from __future__ import annotations

import numpy as np
import pytest

from energybench.config import config_hash, gpu_warnings, load_config, offloads, parse_config
from energybench.energy import attribute_run, make_series
from energybench.errors import BackendError, ConfigError
from energybench.gpu_protocol import DISABLED, GpuProtocol, gap_s
from energybench.meters.base import Domain
from energybench.point import RunPoint
from energybench.engine.session import backend_mode
from energybench.plan import plan_from_config

S = 1_000_000_000
T0 = 9_000 * S


# ----------------------------------------------------------------------------- backend_mode


@pytest.mark.parametrize("ngl,n_layer,supports,expected", [
    (0, 22, True, "cpu"),
    (0, 22, False, "cpu"),
    (11, 22, True, "cuda-partial"),
    (22, 22, True, "cuda-partial"),  # every repeating layer, but the output layer stays on the CPU
    (23, 22, True, "cuda-full"),  # n_layer + 1 = all, output included
    (99, 22, True, "cuda-full"),  # llama.cpp clamps; everything is offloaded
    (-1, 22, True, "cuda-full"),
    (5, 22, False, "cpu"),  # a CPU-only build runs everything on the CPU
    (1, 2, True, "cuda-partial"),
    (3, 2, True, "cuda-full"),
    (7, None, True, "cuda-partial"),  # layer count unknown (failed row): a positive request is partial
    (-1, None, True, "cuda-full"),
])
def test_backend_mode(ngl: int, n_layer: int | None, supports: bool, expected: str) -> None:
    assert backend_mode(ngl, n_layer, supports, CUDA_BUILD) == expected


CUDA_BUILD = ["CPU (Intel(R) Xeon(R), cpu)", "CUDA0 (NVIDIA GeForce RTX 4090, gpu)"]


@pytest.mark.parametrize("devices,partial", [
    (CUDA_BUILD, "cuda-partial"),
    (["MTL0 (Apple M2 Max, gpu)", "BLAS (Accelerate, accel)", "CPU (Apple M2 Max, cpu)"], "metal-partial"),
    (["Metal (Apple M1, gpu)"], "metal-partial"),  # builds before Metal's multi-device support
    (["Vulkan0 (AMD Radeon RX 7900 XTX (RADV NAVI31), gpu)", "CPU (AMD Ryzen 9, cpu)"], "vulkan-partial"),
    (["ROCm0 (AMD Radeon RX 7900 XTX, gpu)"], "hip-partial"),  # a HIP build names its devices ROCm
    (["SYCL0 (Intel(R) Arc(TM) A770 Graphics, gpu)"], "sycl-partial"),
    (["CPU (x, cpu)", "Vulkan0 (Intel(R) Iris(R) Xe Graphics, igpu)", "CUDA0 (NVIDIA RTX A2000, gpu)"],
     "vulkan-partial"),  # the first GPU device takes the layers
    (["NPU0 (some accelerator, gpu)"], "gpu-partial"),  # a GPU of a backend energybench does not know
    (["CPU (x, cpu)"], "gpu-partial"),  # offload supported but no GPU listed (devices_note): unknown
])
def test_backend_mode_names_the_device_that_takes_the_layers(devices: list[str], partial: str) -> None:
    assert backend_mode(11, 22, True, devices) == partial
    assert backend_mode(-1, 22, True, devices) == partial.replace("-partial", "-full")
    assert backend_mode(11, 22, False, devices) == backend_mode(0, 22, True, devices) == "cpu"


# ----------------------------------------------------------------------------- GpuProtocol


def gpu_dom(kind: str = "power", period: float = 1.0, name: str = "gpu-0") -> Domain:
    return Domain(name=name, kind=kind, meter="nvml", component="gpu", source="NVML test", update_period_s=period)


def cpu_dom() -> Domain:
    return Domain(name="package-0", kind="energy", meter="rapl", component="cpu", source="sysfs test",
                  update_period_s=0.001)


def test_defaults_follow_the_paper() -> None:
    p = GpuProtocol()
    assert p.enabled and p.min_window_s == 5.0 and p.min_trials == 4
    assert p.random_gap_s == (0.5, 2.0) and p.discard_rise_s is None and p.seed == 0
    meta = p.metadata(point_ids=["b", "a", "a"], gaps_s={"x": 1.0})
    assert meta["points"] == ["a", "b"] and meta["gaps_s"] == {"x": 1.0}
    assert "Yang" in meta["reference"] and "2312.02741" in meta["reference"]
    assert meta["discard_rise_s"] == "auto" and meta["applies_to"] == "points with n_gpu_layers != 0"
    assert "sha256" in meta["gap_rule"] and meta["not_implemented"]


def test_gaps_are_seeded_per_run_and_uniform() -> None:
    p = GpuProtocol(random_gap_s=(0.5, 2.0), seed=3)
    ids = [f"abc123-r{i:03d}" for i in range(2000)]
    gaps = np.array([p.gap_s(i) for i in ids])
    assert ((gaps >= 0.5) & (gaps <= 2.0)).all()
    assert [p.gap_s(i) for i in ids[:5]] == [gap_s(3, i, (0.5, 2.0)) for i in ids[:5]]  # a pure function
    assert len(set(gaps.round(9))) == len(ids)  # random phases, not one fixed delay
    # uniform over [0.5, 2.0]: mean 1.25, each quarter of the range holds about a quarter of the gaps
    assert 1.2 < gaps.mean() < 1.3
    counts = np.histogram(gaps, bins=4, range=(0.5, 2.0))[0]
    assert (counts > 400).all() and (counts < 600).all()
    assert GpuProtocol(seed=4).gap_s(ids[0]) != GpuProtocol(seed=3).gap_s(ids[0])
    assert GpuProtocol(random_gap_s=(1.5, 1.5)).gap_s("any") == 1.5


def test_applies_only_to_offloading_points() -> None:
    p = GpuProtocol(min_window_s=5.0, min_trials=4)
    cpu = RunPoint(model="synthetic:tiny", n_gpu_layers=0, min_window_s=0.5)
    gpu = cpu.with_(n_gpu_layers=11)
    assert p.apply_to_point(cpu) is cpu
    assert p.apply_to_point(gpu).min_window_s == 5.0
    assert p.apply_to_point(gpu.with_(min_window_s=8.0)).min_window_s == 8.0  # never lowered
    assert p.apply_to_point(gpu.with_(n_gpu_layers=-1)).min_window_s == 5.0
    assert (p.trials(0, 2), p.trials(11, 2), p.trials(11, 10)) == (2, 4, 10)
    assert DISABLED.apply_to_point(gpu) is gpu and DISABLED.trials(11, 2) == 2


def test_rise_time_auto_is_for_gpu_power_domains_only() -> None:
    auto = GpuProtocol()
    assert auto.rise_s(gpu_dom("power", 1.0)) == 1.0  # 1 s moving average: ramps for one window
    assert auto.rise_s(gpu_dom("power", 0.1)) == 0.1  # instantaneous power
    assert auto.rise_s(gpu_dom("energy", 0.1)) == 0.0  # the energy counter accumulates real joules
    assert auto.rise_s(cpu_dom()) == 0.0
    fixed = GpuProtocol(discard_rise_s=0.5)
    assert fixed.rise_s(gpu_dom("energy", 0.1)) == 0.5 and fixed.rise_s(cpu_dom()) == 0.0
    assert DISABLED.rise_s(gpu_dom()) == 0.0
    assert auto.rise_by_domain([cpu_dom(), gpu_dom("power", 1.0), gpu_dom("energy", 0.1, "gpu-1")]) == {
        "nvml/gpu-0": 1.0}


@pytest.mark.parametrize("kwargs", [{"random_gap_s": (2.0, 1.0)}, {"random_gap_s": (-1.0, 1.0)},
                                    {"min_trials": 0}, {"min_window_s": -1.0}, {"discard_rise_s": -0.1}])
def test_invalid_protocol_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        GpuProtocol(**kwargs)


# ----------------------------------------------------------------------------- rise time in attribution


def lagging_power_trace(p_idle: float, p_load: float, lag_s: float, t_from: float, t_to: float,
                        period_s: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """What a sensor reporting a ``lag_s`` moving average shows for a load step at T0: a linear
    ramp from idle to load power over ``lag_s`` (samples on a grid through T0 and T0 + lag)."""
    k = np.arange(int(round(t_from / period_s)), int(round(t_to / period_s)) + 1)
    t_rel = k * period_s
    w = p_idle + (p_load - p_idle) * np.clip(t_rel / lag_s, 0.0, 1.0)
    return T0 + np.round(t_rel * S).astype(np.int64), w


def attribute(domains, series, t_end_s: float, *, prefill_s: float | None = None, rise=None):
    t_pf = None if prefill_s is None else T0 + int(prefill_s * S)
    return attribute_run(domains, series, t_start_ns=T0, t_end_ns=T0 + int(t_end_s * S), t_prefill_end_ns=t_pf,
                         rise_s=rise)


def test_rise_time_of_a_lagging_power_sensor_is_replaced_by_steady_state() -> None:
    # 300 W from T0 on, after 60 W idle; the sensor reports a 1 s moving average (NVML
    # nvmlDeviceGetPowerUsage on Ampere+), so the reported power ramps linearly for 1 s.
    g = gpu_dom("power", 1.0)
    t, w = lagging_power_trace(60.0, 300.0, 1.0, -1.0, 6.2)
    series = {("nvml", "gpu-0"): make_series(t, w, "power")}
    naive = attribute([g], series, 6.0, prefill_s=0.3)
    # integral of the ramp: 300 W x 6 s less the missing triangle 240 W x 1 s / 2 = 1680 J (true: 1800 J)
    assert naive.columns["energy_j"] == pytest.approx(1680.0, rel=1e-9)
    rise = GpuProtocol().rise_by_domain([g])
    fixed = attribute([g], series, 6.0, prefill_s=0.3, rise=rise)
    d = fixed.domains[0]
    assert fixed.columns["energy_j"] == pytest.approx(1800.0, rel=1e-9)
    assert d.avg_power_w == pytest.approx(300.0, rel=1e-9) and fixed.columns["avg_power_w"] == pytest.approx(300.0)
    assert d.prefill_energy_j == pytest.approx(300.0 * 0.3, rel=1e-9)  # prefill inside the rise: steady power
    assert d.prefill_energy_j + d.decode_energy_j == pytest.approx(d.energy_j, rel=1e-12)
    struct = fixed.columns["domains"][0]
    assert "rise time" in struct["source"] and "Yang et al" in struct["source"] and struct["source"].startswith("NVML test")
    # prefill after the rise: the rise part at steady power plus the measured rest
    later = attribute([g], series, 6.0, prefill_s=2.0, rise=rise).domains[0]
    assert later.prefill_energy_j == pytest.approx(300.0 * 2.0, rel=1e-9)


def test_rise_time_with_idle_subtraction_and_other_domains_untouched() -> None:
    g, c = gpu_dom("power", 1.0), cpu_dom()
    t, w = lagging_power_trace(60.0, 300.0, 1.0, -1.0, 6.2)
    cpu_t = T0 + np.arange(-1000, 6201) * 1_000_000  # a 1 ms counter at a constant 50 W
    cpu_e = 50.0 * (cpu_t - cpu_t[0]) / S
    series = {("nvml", "gpu-0"): make_series(t, w, "power"), ("rapl", "package-0"): make_series(cpu_t, cpu_e, "energy")}
    res = attribute_run([c, g], series, t_start_ns=T0, t_end_ns=T0 + 6 * S,
                        idle_power_w={"gpu-0": 60.0, "package-0": 10.0}, rise_s=GpuProtocol().rise_by_domain([c, g]))
    cpu, gpu = res.domains
    assert cpu.energy_j == pytest.approx(300.0, rel=1e-9) and cpu.note is None and cpu.rise_s == 0
    assert gpu.energy_j == pytest.approx(1800.0, rel=1e-9) and gpu.rise_s == 1.0
    assert gpu.energy_net_j == pytest.approx(1800.0 - 60.0 * 6, rel=1e-9)
    assert res.columns["energy_j"] == pytest.approx(2100.0, rel=1e-9)
    assert res.columns["energy_net_j"] == pytest.approx(2100.0 - 70.0 * 6, rel=1e-9)


def test_window_shorter_than_the_rise_time_is_left_alone_and_warned() -> None:
    g = gpu_dom("power", 1.0)
    t, w = lagging_power_trace(60.0, 300.0, 1.0, -1.0, 1.2)
    series = {("nvml", "gpu-0"): make_series(t, w, "power")}
    naive = attribute([g], series, 0.5)
    res = attribute([g], series, 0.5, rise={"gpu-0": 1.0})
    assert res.columns["energy_j"] == pytest.approx(naive.columns["energy_j"], rel=1e-12)
    assert any("NOT discarded" in x for x in res.warnings)
    assert "NOT discarded" in res.columns["domains"][0]["source"]


def test_energy_counter_is_not_corrected_under_auto_but_is_with_an_explicit_rise() -> None:
    g = gpu_dom("energy", 0.1)
    t, w = lagging_power_trace(60.0, 300.0, 1.0, -1.0, 6.2, period_s=0.1)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * 0.1)])  # the counter of that power
    series = {("nvml", "gpu-0"): make_series(t, cum, "energy")}
    auto = attribute([g], series, 6.0, rise=GpuProtocol().rise_by_domain([g]))
    assert auto.columns["energy_j"] == pytest.approx(1680.0, rel=1e-9)
    explicit = attribute([g], series, 6.0, rise=GpuProtocol(discard_rise_s=1.0).rise_by_domain([g]))
    assert explicit.columns["energy_j"] == pytest.approx(1800.0, rel=1e-9)


# ----------------------------------------------------------------------------- config section


def base(**over) -> dict:
    cfg = {"models": ["synthetic:tiny"],
           "grid": {"n_gpu_layers": [0, 1, -1], "n_gen": 8, "prompt": 16, "batch": 32},
           "warmup": 1, "repetitions": 2, "cooldown": 0, "idle_baseline_s": 0, "min_window_s": 0.2}
    cfg.update(over)
    return cfg


def test_config_section_defaults_and_spellings() -> None:
    c = parse_config(base())
    g = c.gpu_protocol
    assert (g.enabled, g.min_window_s, g.min_trials, g.random_gap_s, g.discard_rise_s, g.seed) == (
        True, 5.0, 4, [0.5, 2.0], "auto", 0)
    c2 = parse_config(base(gpu_protocol={"random_gap_s": 1, "discard_rise_s": 0.25, "enabled": "on", "seed": 9}))
    assert c2.gpu_protocol.random_gap_s == [1.0, 1.0] and c2.gpu_protocol.discard_rise_s == 0.25
    assert c2.gpu_protocol.enabled is True and c2.gpu_protocol.seed == 9
    again = parse_config(c2.normalized())
    assert again.normalized() == c2.normalized() and config_hash(again) == config_hash(c2)


@pytest.mark.parametrize("section,needle", [
    ({"random_gap_s": [2, 1]}, "gpu_protocol.random_gap_s = [2, 1]: lo (2) is larger than hi (1)"),
    ({"random_gap_s": [1]}, "gpu_protocol.random_gap_s"),
    ({"random_gap_s": [0.5, -1]}, "gpu_protocol.random_gap_s[1] = -1: must be >= 0 seconds"),
    ({"random_gap_s": True}, "boolean"),
    ({"min_trials": 0}, "gpu_protocol.min_trials"),
    ({"min_window_s": -5}, "gpu_protocol.min_window_s"),
    ({"discard_rise_s": "soon"}, "gpu_protocol.discard_rise_s = 'soon': expected auto or a number"),
    ({"trials": 4}, "unknown key 'trials' in gpu_protocol; did you mean 'min_trials'?"),
])
def test_config_section_errors_name_the_field(section: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(base(gpu_protocol=section), source="t.yaml")
    line = info.value.one_line()
    assert needle in line and line.startswith("t.yaml: ") and "\n" not in line


def test_hash_ignores_the_protocol_of_a_cpu_only_grid() -> None:
    cpu = base(grid={"n_gpu_layers": 0, "n_gen": 8})
    assert not offloads(parse_config(cpu))
    assert config_hash(parse_config(cpu)) == config_hash(parse_config({**cpu, "gpu_protocol": {"enabled": False}}))
    gpu = base()
    assert offloads(parse_config(gpu))
    assert config_hash(parse_config(gpu)) != config_hash(parse_config({**gpu, "gpu_protocol": {"min_trials": 6}}))


# ----------------------------------------------------------------------------- the plan


def test_plan_applies_the_protocol_to_offloading_points_only() -> None:
    plan = plan_from_config(parse_config(base()))
    assert plan.gpu_protocol == GpuProtocol()
    by_ngl = {p.n_gpu_layers: p for p in plan.points}
    assert by_ngl[0].min_window_s == 0.2  # the config's own minimum window
    assert by_ngl[1].min_window_s == 5.0 and by_ngl[-1].min_window_s == 5.0
    assert plan.repetitions_for(by_ngl[0]).upper == 2
    assert plan.repetitions_for(by_ngl[1]).upper == 4 and not plan.repetitions_for(by_ngl[1]).adaptive
    assert plan.runs_total() == (1 + 2) + 2 * (1 + 4)


def test_plan_keeps_longer_windows_and_raises_adaptive_bounds() -> None:
    cfg = base(min_window_s=7, repetitions={"adaptive": {"min": 2, "max": 3, "target_ci_pct": 5}})
    plan = plan_from_config(parse_config(cfg))
    gpu = next(p for p in plan.points if p.n_gpu_layers == 1)
    assert gpu.min_window_s == 7.0
    r = plan.repetitions_for(gpu)
    assert r.adaptive and (r.min, r.max, r.upper) == (4, 4, 4)
    cpu = next(p for p in plan.points if p.n_gpu_layers == 0)
    assert (plan.repetitions_for(cpu).min, plan.repetitions_for(cpu).max) == (2, 3)


def test_disabled_protocol_changes_nothing() -> None:
    plan = plan_from_config(parse_config(base(gpu_protocol={"enabled": False})))
    assert plan.gpu_protocol is None
    assert all(p.min_window_s == 0.2 for p in plan.points)
    assert all(plan.repetitions_for(p).upper == 2 for p in plan.points)


def test_p2_ablation_offloads_to_all_layers_including_the_output() -> None:
    c = load_config("examples/p2_ablation.yaml")
    assert c.grid.n_gpu_layers == [0, 11, 22, 23]
    plan = plan_from_config(c)
    n_layer = 22  # TinyLlama-1.1B (models/shapes.py)
    modes = {p.n_gpu_layers: backend_mode(p.n_gpu_layers, n_layer, True, CUDA_BUILD) for p in plan.points}
    assert modes == {0: "cpu", 11: "cuda-partial", 22: "cuda-partial", 23: "cuda-full"}
    assert {p.min_window_s for p in plan.points if p.n_gpu_layers} == {5.0}
    assert c.gpu_protocol.enabled


# ----------------------------------------------------------------------------- warnings (config validate)


def test_gpu_warnings() -> None:
    def never() -> bool:
        raise AssertionError("a CPU-only grid must not probe llama.cpp")

    assert gpu_warnings(parse_config(base(grid={"n_gpu_layers": 0})), supports_gpu_offload=never) == []
    (w,) = gpu_warnings(parse_config(base()), supports_gpu_offload=lambda: False)
    assert "grid.n_gpu_layers [-1, 1]" in w and "CPU-only build" in w and "docs/cuda.md" in w
    assert gpu_warnings(parse_config(base()), supports_gpu_offload=lambda: True) == []

    def broken() -> bool:
        raise BackendError("the llama.cpp probe died")

    (w,) = gpu_warnings(parse_config(base()), supports_gpu_offload=broken)
    assert "could not be checked" in w and "probe died" in w
    off = gpu_warnings(parse_config(base(gpu_protocol={"enabled": False})), supports_gpu_offload=lambda: True)
    assert len(off) == 1 and "gpu_protocol.enabled is false" in off[0]


def test_gpu_warnings_ask_the_installed_build() -> None:
    from energybench.gpu import supports_gpu_offload

    if supports_gpu_offload():
        pytest.skip("this llama-cpp-python build supports GPU offload")
    warnings = gpu_warnings(load_config("examples/p2_ablation.yaml"))
    assert any("CPU-only build" in w and "[11, 22, 23]" in w for w in warnings)
