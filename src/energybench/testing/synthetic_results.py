"""A generator of realistic, clearly labelled *synthetic* results directories.

Used by the report tests, ``benchmarks/bench_report.py`` and for trying ``energybench report``
(``python -m energybench.testing.synthetic_results DIR``). It writes what a sweep writes, through
:class:`~energybench.results.ResultsStore` (``metadata.json``, ``journal.jsonl``, ``parts/``; or the
consolidated ``runs.parquet``/``samples.parquet`` that ``ResultsStore.consolidate`` produces):

- metadata with the top-level keys of :func:`energybench.engine.results_dir.metadata` (values
  synthetic; ``config`` is a valid sweep config of the generated grid), plus ``generator``; a
  consolidated directory also carries the keys the engine adds when a sweep finishes;
- runs with the columns of :data:`energybench.results.RUNS_SCHEMA` only: timestamps, token counts
  and energies, from which :mod:`energybench.metrics` computes every metric; the stored metric
  columns and ITL percentiles are computed by it here too, as the engine does.

The grid crosses the knobs of the original study's ablations, which varied one at a time
(github.com/csce585-mlsystems/Energy-Aware-LLM-Inference-on-Consumer-Hardware: config/p2_ablation.yaml
runs TinyLlama-1.1B-Chat-v1.0 Q4_0 at CPU threads 1/4/8, GPU layers 0/11/22 and batch 128/512/1024;
config/p1_runs.yaml names the prompt suites short_dialogue, analytical_reasoning and
narrative_generation), on a desktop-like machine: warm-ups (flagged), repetitions, a failed run (a
worker killed by SIGSEGV), RAPL-like CPU counters (package + core, core nested in package) and an
NVML-like GPU counter with aux channels, an idle baseline, short-window and throttling flags,
optionally estimate-only energy.

The numbers come from a simple seeded physical model (memory-bound decode, compute-bound prefill,
per-thread CPU power, GPU power by offloaded fraction, lognormal noise) -- they are *not*
measurements, and the metadata says so (``generator``), which the report turns into a warning.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from energybench.meters.nvml import COUNTER_UPDATE_PERIOD_S as NVML_UPDATE_S
from energybench.meters.rapl import UPDATE_PERIOD_S as RAPL_UPDATE_S
from energybench.metrics import itl_columns, with_run_metrics
from energybench.point import PromptSpec, RunPoint
from energybench.results import (
    SAMPLES_SCHEMA,
    ResultsStore,
    atomic_write_parquet,
    runs_frame,
)

GENERATOR = "energybench.testing.synthetic_results"

#: TinyLlama-1.1B-Chat-v1.0 has 22 layers (``num_hidden_layers`` in the config.json of
#: TinyLlama/TinyLlama-1.1B-Chat-v1.0 on Hugging Face).
N_LAYER = 22
MODEL_REF = "synthetic:tinyllama-1.1b:Q4_0"
MODEL_NAME = "tinyllama-1.1b-twin-Q4_0"
#: Size of TinyLlama-1.1B-Chat-v1.0 in Q4_0 (~638 MB; TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF,
#: pinned in :mod:`energybench.models.aliases`): the bytes decode reads per token.
MODEL_SIZE_BYTES = 637_699_456

# RAPL_UPDATE_S (~1 ms) and NVML_UPDATE_S (0.1 s) are the meters' own update periods, with their
# sources in energybench.meters.rapl and energybench.meters.nvml.

#: (suite, prompt id, prompt tokens): ids of the shipped suites (energybench/prompts/data).
DEFAULT_PROMPTS: tuple[tuple[str, str, int], ...] = (
    ("short_dialogue", "sd-01", 48),
    ("analytical_reasoning", "ar-01", 180),
    ("narrative_generation", "ng-01", 120),
)

@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Every random draw derives from ``seed``."""

    seed: int = 0
    threads: tuple[int, ...] = (1, 2, 4, 8)
    n_gpu_layers: tuple[int, ...] = (0, 11, 22)
    n_batch: tuple[int, ...] = (128, 512, 1024)
    prompts: tuple[tuple[str, str, int], ...] = DEFAULT_PROMPTS[:1]  # (suite, prompt_id, n_prompt)
    n_gen: int = 64
    reps: int = 10
    warmups: int = 1
    n_failed: int = 1  # failed runs (worker crash), spread over points
    gpu: bool = True  # a GPU domain (n_gpu_layers > 0 needs it)
    estimate: bool = False  # CPU energy from the TDP x load estimate instead of RAPL
    noisy_points: int = 1  # points with ~15 % run-to-run noise (CV > 10 %)
    throttle: bool = True  # flag throttling on some GPU-heavy runs
    sample_period_s: float = 0.05
    samples_per_domain: int | None = None  # force this many samples per domain and run
    memory_bandwidth_gbs: float | None = 56.0
    idle_baseline: bool = True
    synthetic_model: bool = True
    max_runs: int | None = None  # stop early: an interrupted sweep
    extra_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratedInfo:
    root: Path
    n_runs: int
    n_samples: int
    n_points: int
    layout: str


# ----------------------------------------------------------------------------- the physical model


def _point_model(n_threads: int, ngl: int, n_batch: int, n_prompt: int) -> dict[str, float]:
    """Noise-free times (s per token) and powers (W) of one configuration."""
    f = min(max(ngl, 0), N_LAYER) / N_LAYER
    # decode: memory bound. CPU bandwidth grows with threads up to ~55 GB/s, llama.cpp reaches ~70 %.
    bw_cpu = min(14.0 * n_threads, 55.0) * 0.7e9
    bw_gpu = 360e9 * 0.6
    t_tok = MODEL_SIZE_BYTES * (1 - f) / bw_cpu + MODEL_SIZE_BYTES * f / bw_gpu + 0.002
    if 0 < f < 1:
        t_tok += 0.003  # activations cross PCIe twice per token
    # prefill: compute bound, sublinear in threads, better with a batch that holds the prompt
    rate_cpu = 42.0 * n_threads**0.85
    rate_gpu = 2600.0
    batch_eff = 1.0 if n_batch >= n_prompt else 0.86
    t_ptok = ((1 - f) / rate_cpu + f / rate_gpu) / batch_eff
    # with layers offloaded, the CPU threads still poll while the GPU works
    busy = n_threads * (1 - f) + ((0.5 + 0.3 * n_threads) if f > 0 else 0.0)
    return {
        "t_tok_s": t_tok,
        "t_ptok_s": t_ptok,
        "cpu_idle_w": 12.0,
        "cpu_prefill_w": 12.0 + min(10.5 * busy, 120.0) + 0.004 * n_batch,
        "cpu_decode_w": 12.0 + min(8.0 * busy, 110.0),
        "gpu_idle_w": 14.0,
        "gpu_prefill_w": 14.0 + 150.0 * f + (6.0 if f > 0 else 0.0),
        "gpu_decode_w": 14.0 + 105.0 * f + (4.0 if f > 0 else 0.0),
    }


def _backend_mode(ngl: int) -> str:
    if ngl <= 0:
        return "cpu"
    return "cuda-full" if ngl >= N_LAYER else "cuda-partial"


def _domains_meta(spec: SyntheticSpec) -> list[dict[str, Any]]:
    """Domains as the meters would describe them (meters.base.Domain fields)."""
    if spec.estimate:
        doms = [dict(name="cpu-package-0", kind="power", meter="estimate", component="cpu",
                     source="estimate: P = TDP 125 W x (0.1 + 0.9 x util) (synthetic)",
                     update_period_s=spec.sample_period_s, parent=None, estimate=True)]
    else:
        doms = [
            dict(name="cpu-package-0", kind="energy", meter="rapl", component="cpu",
                 source="/sys/class/powercap/intel-rapl:0/energy_uj (synthetic)",
                 update_period_s=RAPL_UPDATE_S, parent=None, estimate=False),
            dict(name="cpu-core-0", kind="energy", meter="rapl", component="cpu-core",
                 source="/sys/class/powercap/intel-rapl:0:0/energy_uj (synthetic)",
                 update_period_s=RAPL_UPDATE_S, parent="cpu-package-0", estimate=False),
        ]
    if spec.gpu:
        doms.append(dict(name="gpu-0", kind="energy", meter="nvml", component="gpu",
                         source="nvmlDeviceGetTotalEnergyConsumption (synthetic)",
                         update_period_s=NVML_UPDATE_S, parent=None, estimate=False))
    return doms


def _phase_powers(m: dict[str, float], dom: dict[str, Any]) -> tuple[float, float, float]:
    """(idle, prefill, decode) watts of one domain."""
    if dom["component"] == "gpu":
        return m["gpu_idle_w"], m["gpu_prefill_w"], m["gpu_decode_w"]
    idle, pre, dec = m["cpu_idle_w"], m["cpu_prefill_w"], m["cpu_decode_w"]
    if dom["component"] == "cpu-core":  # cores: most of the package's dynamic power
        return 3.0, 3.0 + 0.8 * (pre - idle), 3.0 + 0.8 * (dec - idle)
    return idle, pre, dec


def _points(spec: SyntheticSpec) -> list[tuple[RunPoint, str, int]]:
    ngls = spec.n_gpu_layers if spec.gpu else (0,)
    out = []
    for suite, pid, n_prompt in spec.prompts:
        for t in spec.threads:
            for ngl in ngls:
                for b in spec.n_batch:
                    p = RunPoint(model=MODEL_REF, n_gen=spec.n_gen,
                                 prompt=PromptSpec(kind="suite", n_prompt=None, suite=suite, prompt_id=pid),
                                 n_threads=t, n_gpu_layers=ngl, n_batch=b, n_ubatch=min(b, 512), seed=spec.seed)
                    out.append((p, suite, n_prompt))
    return out


# ----------------------------------------------------------------------------- metadata


_HOST = {
    "hostname": "synthetic-desktop", "os": "Linux", "os_release": "6.8.0", "platform": "Linux-6.8.0-x86_64 (synthetic)",
    "machine": "x86_64", "cpu_model": "13th Gen Intel(R) Core(TM) i5-13600K (synthetic)", "cpu_logical": 20,
    "cpu_physical": 14, "cpu_freq_max_mhz": 5100.0, "cpu_governor": "performance", "cpu_amx": False,
    "cpu_avx512": False, "virtualized": False, "memory_total_bytes": 32 * 1024**3, "python": "3.11",
    "python_executable": "python3 (synthetic)", "loadavg_at_start": [0.1, 0.1, 0.1], "energybench_version": "synthetic",
}
_GPU = {"index": 0, "name": "NVIDIA GeForce RTX 3060 (synthetic)", "uuid": "GPU-00000000-synthetic",
        "driver_version": "550.54 (synthetic)", "cuda_driver_version": "12.4", "memory_total_bytes": 12 * 1024**3,
        "power_limit_w": 170.0, "compute_capability": "8.6", "power_method": "energy"}


def _metadata(spec: SyntheticSpec, sha: str, clock_offset_ns: int, t_first_ns: int) -> dict[str, Any]:
    """metadata.json with the top-level keys of energybench.engine.results_dir.metadata (values
    synthetic), plus ``generator``; ``spec.extra_metadata`` last."""
    doms = _domains_meta(spec)
    meters: dict[str, list[dict[str, Any]]] = {}
    for d in doms:
        meters.setdefault(d["meter"], []).append(d)
    config, config_hash = _config(spec)
    meta: dict[str, Any] = {
        "generator": GENERATOR,
        "kind": "sweep",
        "energybench_version": "synthetic",
        "host": _HOST,
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns)",
        "clock_offset_ns": clock_offset_ns,
        "created_at": datetime(2025, 1, 6, 9, 0, tzinfo=UTC).isoformat(),
        "gpus": [_GPU] if spec.gpu else [],
        "backend": {"name": "llama.cpp", "version": "0.3.36 (synthetic)",
                    "system_info": "CPU : SSE3 = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1",
                    "supports_gpu_offload": spec.gpu, "devices": ["CUDA0 (synthetic)"] if spec.gpu else [],
                    "build_flags": {}},
        "amx": {"checked": False, "repack_ok": True, "reason": "no AMX on this CPU or in this llama.cpp build",
                "cached": False},
        "meters": [{"name": k, "description": f"{k} (synthetic)", "estimate": any(d["estimate"] for d in v)}
                   for k, v in meters.items()],
        "domains": doms,
        "meter_warnings": [],
        "models": {MODEL_REF: {"name": MODEL_NAME, "path": f"synthetic/{MODEL_NAME}.gguf (no file)", "sha256": sha,
                               "size_bytes": MODEL_SIZE_BYTES, "synthetic": spec.synthetic_model, "quant": "Q4_0",
                               "shape": "tinyllama-1.1b", "source": MODEL_REF}},
        "config": config,
        "config_hash": config_hash,
        "sweep_id": config_hash,
        "shard": None,
        "memory_bandwidth_gbs": spec.memory_bandwidth_gbs,
        "sampler": {"period_s": spec.sample_period_s, "thread_nice": 19,
                    "where": f"nowhere: samples written by {GENERATOR}"},
        "idle_baselines": _idle_baselines(spec, doms, t_first_ns),
        "gpu_protocol": None,  # the model has no protocol pauses (gap_before_s) nor discarded rise time
        "status": "running",
    }
    meta.update(spec.extra_metadata)
    return meta


def _idle_baselines(spec: SyntheticSpec, doms: list[dict[str, Any]], t_first_ns: int) -> list[dict[str, Any]]:
    if not spec.idle_baseline:
        return []
    idle = _point_model(1, 0, 512, 1)
    return [{"name": "idle-0", "t_start_ns": t_first_ns - 5 * 10**9, "t_end_ns": t_first_ns,
             "power_w": {d["name"]: round(_phase_powers(idle, d)[0], 3) for d in doms}}]


def _config(spec: SyntheticSpec) -> tuple[dict[str, Any], str]:
    """The sweep config that describes the generated grid (normalized, validated) and its hash."""
    from energybench.config import SweepConfig, config_hash

    meters = ["estimate"] if spec.estimate else ["rapl", "nvml"] if spec.gpu else ["rapl"]
    suites = list(dict.fromkeys(s for s, _, _ in spec.prompts))
    cfg = SweepConfig.model_validate({
        "name": "synthetic-tinyllama-grid", "models": [MODEL_REF],
        "grid": {"threads": list(spec.threads), "n_gpu_layers": list(spec.n_gpu_layers if spec.gpu else (0,)),
                 "batch": list(spec.n_batch), "n_gen": spec.n_gen, "seed": spec.seed,
                 "prompt": {"suites": suites, "prompt_ids": [pid for _, pid, _ in spec.prompts]}},
        "warmup": spec.warmups, "repetitions": {"fixed": spec.reps}, "cooldown": {"fixed_s": 1.0},
        "idle_baseline_s": 5.0 if spec.idle_baseline else 0.0, "order": "grouped", "meters": meters,
        "cpu_tdp_w": 125.0 if spec.estimate else None, "sample_period_ms": spec.sample_period_s * 1000.0,
        "gpu_protocol": {"enabled": False},
    })
    return cfg.normalized(), config_hash(cfg)


def _finished(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The keys the engine adds to metadata.json when a sweep finishes (energybench.engine.run)."""
    failed = sorted({r["point_id"] for r in runs if r["status"] != "ok"})
    n_failed = sum(r["status"] != "ok" for r in runs)
    return {"status": "partial" if failed else "finished",
            "finished_at": datetime(2025, 1, 6, 18, 0, tzinfo=UTC).isoformat(),
            "n_runs_ok": len(runs) - n_failed, "n_runs_failed": n_failed, "failed_points": failed,
            "skipped_points": [], "model_loads": sum(r.get("model_load_s") is not None for r in runs)}


# ----------------------------------------------------------------------------- samples


def _sample_times(t0: int, t1: int, period_s: float, n_forced: int | None) -> np.ndarray:
    if n_forced:
        return np.linspace(t0, t1, max(n_forced, 2)).astype(np.int64)
    period_ns = int(period_s * 1e9)
    n = max(2, int(math.ceil((t1 - t0) / period_ns)) + 1)
    t = t0 + np.arange(n, dtype=np.int64) * period_ns
    t[-1] = max(t[-1], t1)
    return t


def _domain_samples(rng: np.random.Generator, dom: dict[str, Any], powers: tuple[float, float, float],
                    t: np.ndarray, t_start: int, t_pre: int, t_end: int, counter0: float,
                    throttled: bool) -> dict[str, np.ndarray]:
    """Samples of one domain over one run: cumulative joules (energy) or watts (power)."""
    idle, pre, dec = powers
    p = np.where(t < t_start, idle, np.where(t < t_pre, pre, np.where(t <= t_end, dec, idle)))
    p = p * rng.lognormal(0.0, 0.03, size=t.size)
    cols: dict[str, np.ndarray] = {"t_ns": t}
    if dom["kind"] == "energy":
        dt = np.diff(t, prepend=t[0]) / 1e9
        cols["value"] = counter0 + np.cumsum(p * dt)
        cols["unit"] = np.full(t.size, "J")
    else:
        cols["value"] = p
        cols["unit"] = np.full(t.size, "W")
    if dom["component"] == "gpu":
        busy = (t >= t_start) & (t <= t_end) & (pre > idle + 1)
        cols["sm_clock_mhz"] = np.where(busy, 1777.0, 210.0)
        cols["mem_clock_mhz"] = np.where(busy, 7501.0, 405.0)
        cols["temperature_c"] = np.where(busy, 71.0 if throttled else 58.0, 41.0)
        cols["pstate"] = np.where(busy, 2.0, 8.0)
        cols["throttle_reasons"] = np.where(busy & throttled, 32.0, 0.0)  # 0x20 = SW thermal slowdown
        cols["mem_used_bytes"] = np.full(t.size, 1.1e9 if pre > idle + 1 else 0.3e9)
    return cols


def _samples_frame(run_id: str, dom: dict[str, Any], cols: dict[str, np.ndarray]) -> pl.DataFrame:
    n = cols["t_ns"].size
    data: dict[str, Any] = {"run_id": [run_id] * n, "meter": [dom["meter"]] * n, "domain": [dom["name"]] * n}
    for name in SAMPLES_SCHEMA:
        if name in data:
            continue
        data[name] = cols.get(name, np.full(n, None))
    return pl.DataFrame(data, schema=SAMPLES_SCHEMA)


# ----------------------------------------------------------------------------- the simulated sweep

Samples = list[tuple[dict[str, Any], dict[str, np.ndarray]]]  # (domain, sample columns) per domain


@dataclass
class _Run:
    row: dict[str, Any]
    samples: Samples


class _Sweep:
    """The simulated sweep: every random draw, in a fixed order, from ``spec.seed``."""

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        self.rng = rng = np.random.default_rng(spec.seed)
        self.sweep_id = f"syn{spec.seed:04d}"
        self.sha = hashlib.sha256(f"{MODEL_REF}:{spec.seed}".encode()).hexdigest()
        self.t_first_ns = self.t_ns = 10**12  # monotonic clock at the first run
        self.started = datetime(2025, 1, 6, 9, 0, 5, tzinfo=UTC)
        self.clock_offset_ns = int(self.started.timestamp()) * 10**9 - self.t_first_ns  # wall = monotonic + offset
        self.doms = _domains_meta(spec)
        self.slowest_update = max(d["update_period_s"] for d in self.doms)
        self.points = _points(spec)
        self.noisy = set(rng.choice(len(self.points), size=min(spec.noisy_points, len(self.points)),
                                    replace=False).tolist()) if spec.noisy_points else set()
        per_point = spec.warmups + spec.reps
        total = len(self.points) * per_point
        failed = set(rng.choice(np.arange(total), size=min(spec.n_failed, total), replace=False).tolist()) \
            if spec.n_failed else set()
        # a failure must not hit a warm-up only: move it to the first repetition of that point
        self.failed_at = {(i // per_point) * per_point + max(i % per_point, spec.warmups) for i in failed}
        self.counters = {d["name"]: 1000.0 * rng.random() for d in self.doms}

    def idle(self) -> Samples:
        """The idle baseline's samples (5 s before the first run)."""
        spec, t_ns = self.spec, self.t_ns
        t = _sample_times(t_ns - 5 * 10**9, t_ns, spec.sample_period_s, spec.samples_per_domain)
        base = _point_model(1, 0, 512, 1)
        out = []
        for d in self.doms:
            idle = _phase_powers(base, d)[0]
            cols = _domain_samples(self.rng, d, (idle, idle, idle), t, t_ns, t_ns, t_ns, self.counters[d["name"]],
                                   False)
            if d["kind"] == "energy":
                self.counters[d["name"]] = float(cols["value"][-1])
            out.append((d, cols))
        return out

    def runs(self) -> list[_Run]:
        """Every run, warm-ups first within each point; stops after ``spec.max_runs``."""
        spec, out = self.spec, []
        for pi, (point, suite, n_prompt) in enumerate(self.points):
            for k in range(spec.warmups + spec.reps):
                if spec.max_runs is not None and len(out) >= spec.max_runs:
                    return out
                base = self._base_row(pi, point, suite, n_prompt, k)
                failed = len(out) in self.failed_at
                out.append(self._failed(base) if failed else self._measured(pi, point, n_prompt, k, base))
        return out

    def _base_row(self, pi: int, point: RunPoint, suite: str, n_prompt: int, k: int) -> dict[str, Any]:
        """The columns of a run that come from its point (and its place in the sweep)."""
        is_warm = k < self.spec.warmups
        rep = k if is_warm else k - self.spec.warmups
        return {
            "run_id": f"{self.sweep_id}-p{pi:04d}-{'w' if is_warm else 'r'}{rep:02d}", "sweep_id": self.sweep_id,
            "point_id": point.point_id, "point_index": pi, "rep_index": rep, "is_warmup": is_warm,
            "started_at": self.started, "model": MODEL_REF, "model_name": MODEL_NAME, "model_sha256": self.sha,
            "model_synthetic": self.spec.synthetic_model, "model_size_bytes": MODEL_SIZE_BYTES, "model_quant": "Q4_0",
            "backend": "llama.cpp", "backend_mode": _backend_mode(point.n_gpu_layers),
            "load_group": point.load_key, "n_threads": point.n_threads, "n_threads_batch": point.n_threads,
            "n_gpu_layers": point.n_gpu_layers, "n_batch": point.n_batch, "n_ubatch": point.n_ubatch,
            "n_ctx": point.resolved_n_ctx(n_prompt), "flash_attn": point.flash_attn, "repack": point.repack,
            "prompt_suite": suite, "prompt_id": point.prompt.prompt_id, "n_prompt": n_prompt,
            "n_gen": point.n_gen, "seed": point.seed, "flag_synthetic_model": self.spec.synthetic_model,
            "model_load_s": 2.1 if k == 0 else None,
        }

    def _failed(self, base: dict[str, Any]) -> _Run:
        """A worker crash: no timings after the start, no energy, no samples."""
        row = dict(base, status="failed", error="worker was killed by SIGSEGV (segmentation fault) during decode",
                   stderr_tail="ggml_backend_amx_mul_mat: ...\nSegmentation fault", t_start_ns=self.t_ns,
                   t_end_ns=self.t_ns + 15 * 10**8, energy_source="none", flag_short_window=False,
                   flag_throttled=False, flag_estimate=self.spec.estimate)
        self.t_ns += 2 * 10**9
        self.started += timedelta(seconds=2)
        return _Run(row, [])

    def _measured(self, pi: int, point: RunPoint, n_prompt: int, k: int, base: dict[str, Any]) -> _Run:
        """A finished run: timings from the model with noise, energy per domain, samples."""
        spec, rng = self.spec, self.rng
        m = _point_model(point.n_threads, point.n_gpu_layers, point.n_batch, n_prompt)
        sigma = 0.15 if pi in self.noisy else 0.02
        noise_t = rng.lognormal(0.0, sigma)
        warm_factor = 1.25 if k < spec.warmups else 1.0  # cold caches
        t_prefill = n_prompt * m["t_ptok_s"] * noise_t * warm_factor + 0.004
        itl = m["t_tok_s"] * noise_t * rng.lognormal(0.0, 0.03, size=point.n_gen)
        t_start = self.t_ns
        t_pre = t_start + int(t_prefill * 1e9)
        t_end = int(t_pre + float(itl.sum()) * 1e9)
        token_t = (t_pre + np.cumsum(np.concatenate([[0.0], itl[1:]])) * 1e9).astype(np.int64)
        throttled = bool(spec.throttle and spec.gpu and point.n_gpu_layers >= N_LAYER and rng.random() < 0.3)
        noise_p = rng.lognormal(0.0, sigma / 2)
        samples, dom_rows = self._domains(m, noise_p, t_start, t_pre, t_end, throttled)
        row = dict(base, status="ok", t_start_ns=t_start, t_prefill_end_ns=t_pre, t_end_ns=t_end,
                   window_s=(t_end - t_start) / 1e9, prefill_s=(t_pre - t_start) / 1e9, decode_s=(t_end - t_pre) / 1e9,
                   n_prompt_tokens=n_prompt, n_gen_tokens=point.n_gen, n_repeats=1, token_t_ns=token_t.tolist(),
                   gpu_mem_used_bytes=int(1.1e9) if point.n_gpu_layers > 0 else None,
                   perf_t_p_eval_ms=t_prefill * 1e3 * 0.98, perf_t_eval_ms=float(itl.sum()) * 1e3 * 0.99,
                   perf_n_p_eval=n_prompt, perf_n_eval=point.n_gen - 1,
                   **itl_columns(token_t.tolist(), point.n_gen), **self._energy(dom_rows, t_start, t_pre, t_end),
                   sample_jitter_p99_ms=float(rng.gamma(2.0, 0.4)), flag_throttled=throttled)
        self.t_ns = t_end + int((0.5 + rng.random()) * 1e9)  # cooldown gap
        self.started += timedelta(seconds=(self.t_ns - t_start) / 1e9)
        return _Run(row, samples)

    def _domains(self, m: dict[str, float], noise_p: float, t_start: int, t_pre: int, t_end: int,
                 throttled: bool) -> tuple[Samples, list[dict[str, Any]]]:
        """Each domain's samples and its ``domains`` entry (energy per phase, powers) over one run."""
        spec, period_ns = self.spec, int(self.spec.sample_period_s * 1e9)
        t = _sample_times(t_start - period_ns, t_end + period_ns, spec.sample_period_s, spec.samples_per_domain)
        window_s, samples, rows = (t_end - t_start) / 1e9, [], []
        for d in self.doms:
            idle, pre, dec = _phase_powers(m, d)
            pre, dec = pre * noise_p, dec * noise_p
            e_pre, e_dec = pre * (t_pre - t_start) / 1e9, dec * (t_end - t_pre) / 1e9
            rows.append({
                "domain": d["name"], "meter": d["meter"], "kind": d["kind"], "component": d["component"],
                "parent": d["parent"], "estimate": d["estimate"], "source": d["source"],
                "update_period_s": d["update_period_s"], "sample_period_s": spec.sample_period_s,
                "n_samples": int(t.size), "energy_j": e_pre + e_dec, "energy_net_j": e_pre + e_dec - idle * window_s,
                "prefill_energy_j": e_pre, "decode_energy_j": e_dec, "avg_power_w": (e_pre + e_dec) / window_s,
                "peak_power_w": max(pre, dec) * 1.04, "idle_power_w": idle,
            })
            cols = _domain_samples(self.rng, d, (idle, pre, dec), t, t_start, t_pre, t_end, self.counters[d["name"]],
                                   throttled)
            if d["kind"] == "energy":
                self.counters[d["name"]] = float(cols["value"][-1])
            samples.append((d, cols))
        return samples, rows

    def _energy(self, dom_rows: list[dict[str, Any]], t_start: int, t_pre: int, t_end: int) -> dict[str, Any]:
        """The run's energy columns: totals over the top-level domains, as energybench.energy attributes them."""
        tops = [r for r in dom_rows if r["parent"] is None]
        window_s, prefill_s, decode_s = (t_end - t_start) / 1e9, (t_pre - t_start) / 1e9, (t_end - t_pre) / 1e9
        e, idle = sum(r["energy_j"] for r in tops), sum(r["idle_power_w"] for r in tops)
        e_pre, e_dec = sum(r["prefill_energy_j"] for r in tops), sum(r["decode_energy_j"] for r in tops)
        return dict(energy_source="estimate" if self.spec.estimate else "measured",
                    meters=",".join(dict.fromkeys(r["meter"] for r in tops)), domains=dom_rows,
                    energy_j=e, energy_net_j=e - idle * window_s, prefill_energy_j=e_pre, decode_energy_j=e_dec,
                    prefill_energy_net_j=e_pre - idle * prefill_s, decode_energy_net_j=e_dec - idle * decode_s,
                    idle_power_w=idle, avg_power_w=e / window_s, peak_power_w=sum(r["peak_power_w"] for r in tops),
                    flag_short_window=window_s < 10 * self.slowest_update, flag_estimate=self.spec.estimate)


def _store_metrics(runs: list[_Run]) -> None:
    """Add the metric columns the engine stores in every finished run, computed by the metrics
    vocabulary from the run's columns (one vectorised pass)."""
    from energybench.engine.session import STORED_METRICS

    ok = [r.row for r in runs if r.row["status"] == "ok"]
    if not ok:
        return
    frame = runs_frame([{k: v for k, v in row.items() if k not in ("domains", "token_t_ns")} for row in ok])
    values = with_run_metrics(frame.lazy()).select(STORED_METRICS).collect().to_dicts()
    for row, v in zip(ok, values, strict=True):
        row.update(v)


# ----------------------------------------------------------------------------- writing


LAYOUTS = ("parts", "consolidated", "bulk")


def generate_results(root: Path | str, spec: SyntheticSpec | None = None, *,
                     layout: str = "parts") -> GeneratedInfo:
    """Write a synthetic results directory at ``root`` and say what was written.

    ``layout``: ``"parts"`` (through ``ResultsStore.add_run``, as a sweep in progress leaves it),
    ``"consolidated"`` (the same, then ``ResultsStore.consolidate()``, as a finished sweep leaves it),
    or ``"bulk"`` (the consolidated files written directly -- the same bytes a consolidate would
    write, without 10,000 intermediate part files; for the benchmark).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: use parts, consolidated or bulk")
    spec = spec or SyntheticSpec()
    root = Path(root)
    sweep = _Sweep(spec)
    idle = sweep.idle() if spec.idle_baseline else []
    runs = sweep.runs()
    _store_metrics(runs)
    store = ResultsStore(root)
    store.create(_metadata(spec, sweep.sha, sweep.clock_offset_ns, sweep.t_first_ns))
    if layout == "bulk":
        _write_bulk(store, idle, runs)
    else:
        _write_parts(store, idle, runs)
    if layout != "parts":  # a finished sweep: the engine consolidates it and records how it went
        store.update_metadata(**_finished([r.row for r in runs]))
        if layout == "consolidated":
            store.consolidate()
    n_samples = sum(cols["t_ns"].size for _, cols in idle) + sum(c["t_ns"].size for r in runs for _, c in r.samples)
    return GeneratedInfo(root=root, n_runs=len(runs), n_samples=n_samples, n_points=len(sweep.points), layout=layout)


def _write_parts(store: ResultsStore, idle: Samples, runs: list[_Run]) -> None:
    """One part per run (and one for the idle baseline), as the engine writes them."""
    if idle:
        store.add_samples("idle-0", pl.concat([_samples_frame("idle-0", d, cols) for d, cols in idle]))
    for r in runs:
        frame = pl.concat([_samples_frame(r.row["run_id"], d, cols) for d, cols in r.samples]) if r.samples else None
        store.add_run(r.row, frame)


def _write_bulk(store: ResultsStore, idle: Samples, runs: list[_Run]) -> None:
    """runs.parquet and samples.parquet written at once (numpy columns, no per-run frames)."""
    atomic_write_parquet(runs_frame([r.row for r in runs]), store.root / "runs.parquet")
    frames = [pl.concat([_samples_frame("idle-0", d, cols) for d, cols in idle])] if idle else []
    sample_cols: dict[str, list[np.ndarray]] = {}
    for r in runs:
        for d, cols in r.samples:
            n = cols["t_ns"].size
            sample_cols.setdefault("run_id", []).append(np.full(n, r.row["run_id"], dtype=object))
            sample_cols.setdefault("meter", []).append(np.full(n, d["meter"], dtype=object))
            sample_cols.setdefault("domain", []).append(np.full(n, d["name"], dtype=object))
            for name in SAMPLES_SCHEMA:
                if name not in ("run_id", "meter", "domain"):
                    sample_cols.setdefault(name, []).append(cols.get(name, np.full(n, np.nan)))
    if sample_cols:
        data = {k: np.concatenate(v) for k, v in sample_cols.items()}
        aux = [k for k in SAMPLES_SCHEMA if SAMPLES_SCHEMA[k] == pl.Float64 and k != "value"]
        frames.append(pl.DataFrame({k: data[k] for k in SAMPLES_SCHEMA}).cast(dict(SAMPLES_SCHEMA), strict=False)
                      .with_columns(pl.col(aux).fill_nan(None)))
    if frames:
        atomic_write_parquet(pl.concat([f.select(list(SAMPLES_SCHEMA)) for f in frames]),
                             store.root / "samples.parquet")
    store._journal({"event": "bulk", "runs": len(runs)})


def small_spec(**changes: Any) -> SyntheticSpec:
    """A quick spec for tests: 2 threads x 2 GPU layers x 2 batch sizes, 1 warm-up + 3 repetitions."""
    base = dict(threads=(1, 4), n_gpu_layers=(0, 22), n_batch=(128, 512), reps=3, warmups=1,
                sample_period_s=0.1)
    base.update(changes)
    return SyntheticSpec(**base)


def spec_for_size(n_runs: int, n_samples: int, *, seed: int = 0) -> SyntheticSpec:
    """A spec whose dataset has about ``n_runs`` runs and ``n_samples`` samples (for the benchmark);
    at most one point per shipped prompt (30) and grid configuration (175), 11 runs each."""
    threads = (1, 2, 4, 6, 8, 12, 16)
    ngl = (0, 6, 11, 16, 22)
    batch = (64, 128, 256, 512, 1024)
    per_point = 11  # 1 warm-up + 10 repetitions
    n_points_grid = len(threads) * len(ngl) * len(batch)
    n_prompts = max(1, math.ceil(n_runs / (per_point * n_points_grid)))
    prompts = _suite_prompts()[:n_prompts]
    total = min(n_points_grid * len(prompts) * per_point, n_runs)
    n_domains = 3
    n_failed = 5  # failed runs have no samples
    per_domain = max(2, math.ceil(n_samples / (max(1, total - n_failed) * n_domains)))  # at least n_samples
    return SyntheticSpec(seed=seed, threads=threads, n_gpu_layers=ngl, n_batch=batch, prompts=prompts,
                         reps=10, warmups=1, n_failed=n_failed, noisy_points=3, samples_per_domain=per_domain,
                         max_runs=n_runs)


def _suite_prompts() -> tuple[tuple[str, str, int], ...]:
    """Every prompt of the suites in DEFAULT_PROMPTS, taking the suites in turn (their prompt
    token counts as in DEFAULT_PROMPTS)."""
    from energybench.prompts import load_suite

    ids = {s: [p.id for p in load_suite(s)] for s, _, _ in DEFAULT_PROMPTS}
    return tuple((s, ids[s][i], n) for i in range(max(map(len, ids.values())))
                 for s, _, n in DEFAULT_PROMPTS if i < len(ids[s]))


def main(argv: list[str] | None = None) -> int:
    """``python -m energybench.testing.synthetic_results DIR [--seed N] [--layout parts|consolidated|bulk]
    [--runs N --samples N]``: write a synthetic results directory (for trying ``energybench report``)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m energybench.testing.synthetic_results", description=main.__doc__)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=LAYOUTS, default="consolidated")
    ap.add_argument("--runs", type=int, default=None, help="about this many runs (with --samples)")
    ap.add_argument("--samples", type=int, default=1_000_000)
    ns = ap.parse_args(argv)
    spec = spec_for_size(ns.runs, ns.samples, seed=ns.seed) if ns.runs else SyntheticSpec(seed=ns.seed)
    info = generate_results(ns.dir, spec, layout=ns.layout)
    print(f"wrote {info.n_runs} runs, {info.n_samples} samples, {info.n_points} configurations to {info.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
