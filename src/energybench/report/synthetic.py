"""A generator of realistic, clearly-labelled *synthetic* results directories.

Used by the report tests and ``benchmarks/bench_report.py``. It writes what a sweep writes, through
:class:`~energybench.results.ResultsStore` (``metadata.json``, ``journal.jsonl``, ``parts/``; or the
consolidated ``runs.parquet``/``samples.parquet`` that ``ResultsStore.consolidate`` produces), for a
grid over threads x n_gpu_layers x n_batch x prompts of the TinyLlama-1.1B twin on a desktop-like
machine (the original study's grid, ../shared/README.md §1): warm-ups (flagged), repetitions, a
failed run (a worker killed by SIGSEGV), RAPL-like CPU counters (package + core, core nested in
package) and an NVML-like GPU counter with aux channels, an idle baseline, short-window and
throttling flags, optionally estimate-only energy.

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

from energybench.point import PromptSpec, RunPoint
from energybench.results import (
    SAMPLES_SCHEMA,
    ResultsStore,
    atomic_write_parquet,
    runs_frame,
)

GENERATOR = "energybench.report.synthetic"

#: TinyLlama-1.1B: 22 layers (../shared/README.md §3, "shape twin").
N_LAYER = 22
MODEL_REF = "synthetic:tinyllama-1.1b:Q4_0"
#: Size of the TinyLlama-1.1B Q4_0 GGUF (~638 MB), the bytes decode reads per token.
MODEL_SIZE_BYTES = 637_699_456

# Update periods (§2): RAPL counters ~1 ms, NVML total energy ~20-100 ms.
RAPL_UPDATE_S = 0.001
NVML_UPDATE_S = 0.1

#: (suite, prompt id, prompt tokens): ids of the shipped suites (energybench/prompts/data).
DEFAULT_PROMPTS: tuple[tuple[str, str, int], ...] = (
    ("short_dialogue", "sd-01", 48),
    ("analytical_reasoning", "ar-01", 180),
    ("narrative_generation", "ng-01", 120),
)
_PREFIX = {"short_dialogue": "sd", "analytical_reasoning": "ar", "narrative_generation": "ng"}


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


# ----------------------------------------------------------------------------- generation


def _metadata(spec: SyntheticSpec, sweep_id: str, sha: str, clock_offset_ns: int, t_first_ns: int) -> dict[str, Any]:
    doms = _domains_meta(spec)
    meters: dict[str, list[dict[str, Any]]] = {}
    for d in doms:
        meters.setdefault(d["meter"], []).append(d)
    # the shape the runner writes (energybench.runner.run_metadata), plus ``generator``
    meta: dict[str, Any] = {
        "generator": GENERATOR,
        "kind": "sweep",
        "energybench_version": "synthetic",
        "sweep_id": sweep_id,
        "name": "synthetic-tinyllama-grid",
        "created_at": datetime(2025, 1, 6, 9, 0, tzinfo=UTC).isoformat(),
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns)",
        "clock_offset_ns": clock_offset_ns,
        "host": {"hostname": "synthetic-desktop", "os": "Linux", "os_release": "6.8.0", "machine": "x86_64",
                 "cpu_model": "13th Gen Intel(R) Core(TM) i5-13600K (synthetic)", "cpu_logical": 20,
                 "cpu_physical": 14, "memory_total_bytes": 32 * 1024**3, "python": "3.11", "virtualized": False},
        "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3060 (synthetic)"}] if spec.gpu else [],
        "backend": {"name": "llama.cpp", "version": "0.3.36 (synthetic)",
                    "system_info": "CPU : SSE3 = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1",
                    "supports_gpu_offload": spec.gpu, "devices": ["CUDA0 (synthetic)"] if spec.gpu else [],
                    "build_flags": {}},
        "meters": [{"name": k, "description": f"{k} (synthetic)", "estimate": any(d["estimate"] for d in v)}
                   for k, v in meters.items()],
        "domains": doms,
        "sample_period_s": spec.sample_period_s,
        "models": {MODEL_REF: {"name": "tinyllama-1.1b-twin-Q4_0", "sha256": sha, "size_bytes": MODEL_SIZE_BYTES,
                               "quant": "Q4_0", "synthetic": spec.synthetic_model}},
        "config": {"threads": list(spec.threads), "n_gpu_layers": list(spec.n_gpu_layers),
                   "batch": list(spec.n_batch), "n_gen": spec.n_gen, "repetitions": spec.reps,
                   "warmup": spec.warmups, "seed": spec.seed},
        "status": "complete" if spec.max_runs is None else "interrupted",
    }
    if spec.memory_bandwidth_gbs is not None:
        meta["memory_bandwidth_gbs"] = spec.memory_bandwidth_gbs
    if spec.idle_baseline:
        meta["idle_baselines"] = [{
            "name": "idle-0", "t_start_ns": t_first_ns - 5 * 10**9, "t_end_ns": t_first_ns,
            "power_w": {d["name"]: round(_phase_powers(_point_model(1, 0, 512, 1), d)[0], 3) for d in doms}}]
    meta.update(spec.extra_metadata)
    return meta


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


def generate_results(root: Path | str, spec: SyntheticSpec | None = None, *,
                     layout: str = "parts") -> GeneratedInfo:
    """Write a synthetic results directory at ``root`` and say what was written.

    ``layout``: ``"parts"`` (through ``ResultsStore.add_run``, as a sweep in progress leaves it),
    ``"consolidated"`` (the same, then ``ResultsStore.consolidate()``), or ``"bulk"`` (the
    consolidated files written directly -- the same bytes a consolidate would write, without
    10,000 intermediate part files; for the benchmark).
    """
    if layout not in ("parts", "consolidated", "bulk"):
        raise ValueError(f"layout={layout!r}: use parts, consolidated or bulk")
    spec = spec or SyntheticSpec()
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    sweep_id = f"syn{spec.seed:04d}"
    sha = hashlib.sha256(f"{MODEL_REF}:{spec.seed}".encode()).hexdigest()
    t_first_ns = 10**12  # monotonic clock at the first run
    started = datetime(2025, 1, 6, 9, 0, 5, tzinfo=UTC)
    clock_offset_ns = int(started.timestamp()) * 10**9 - t_first_ns  # wall = monotonic + offset
    store = ResultsStore(root)
    store.create(_metadata(spec, sweep_id, sha, clock_offset_ns, t_first_ns))
    doms = _domains_meta(spec)
    top = [d for d in doms if d["parent"] is None]
    slowest_update = max(d["update_period_s"] for d in doms)

    points = _points(spec)
    noisy = set(rng.choice(len(points), size=min(spec.noisy_points, len(points)), replace=False).tolist()) \
        if spec.noisy_points else set()
    n_per_point = spec.warmups + spec.reps
    total = len(points) * n_per_point
    failed_at = set(rng.choice(np.arange(total), size=min(spec.n_failed, total), replace=False).tolist()) \
        if spec.n_failed else set()
    # a failure must not hit a warm-up only: move it to the first repetition of that point
    failed_at = {(i // n_per_point) * n_per_point + max(i % n_per_point, spec.warmups) for i in failed_at}

    counters = {d["name"]: 1000.0 * rng.random() for d in doms}
    t_ns = t_first_ns
    rows: list[dict[str, Any]] = []
    sample_frames: list[pl.DataFrame] = []
    sample_cols: dict[str, list[np.ndarray]] = {}
    n_samples = 0

    if spec.idle_baseline:
        idle_frames = []
        t_idle = _sample_times(t_ns - 5 * 10**9, t_ns, spec.sample_period_s, spec.samples_per_domain)
        base = _point_model(1, 0, 512, 1)
        for d in doms:
            idle = _phase_powers(base, d)[0]
            cols = _domain_samples(rng, d, (idle, idle, idle), t_idle, t_ns, t_ns, t_ns, counters[d["name"]], False)
            counters[d["name"]] = float(cols["value"][-1]) if d["kind"] == "energy" else counters[d["name"]]
            idle_frames.append(_samples_frame("idle-0", d, cols))
        idle_df = pl.concat(idle_frames)
        n_samples += idle_df.height
        if layout == "bulk":
            sample_frames.append(idle_df)
        else:
            store.add_samples("idle-0", idle_df)

    run_no = 0
    for pi, (point, suite, n_prompt) in enumerate(points):
        m = _point_model(point.n_threads, point.n_gpu_layers, point.n_batch, n_prompt)
        sigma = 0.15 if pi in noisy else 0.02
        throttled_point = spec.throttle and spec.gpu and point.n_gpu_layers >= N_LAYER
        for k in range(n_per_point):
            if spec.max_runs is not None and run_no >= spec.max_runs:
                break
            is_warm = k < spec.warmups
            rep = k if is_warm else k - spec.warmups
            run_id = f"{sweep_id}-p{pi:04d}-{'w' if is_warm else 'r'}{rep:02d}"
            warm_factor = 1.25 if is_warm else 1.0  # cold caches
            base_row: dict[str, Any] = {
                "run_id": run_id, "sweep_id": sweep_id, "point_id": point.point_id, "point_index": pi,
                "rep_index": rep, "is_warmup": is_warm, "started_at": started,
                "model": MODEL_REF, "model_name": "tinyllama-1.1b-twin-Q4_0", "model_sha256": sha,
                "model_synthetic": spec.synthetic_model, "model_size_bytes": MODEL_SIZE_BYTES, "model_quant": "Q4_0",
                "backend": "llama.cpp", "backend_mode": _backend_mode(point.n_gpu_layers),
                "load_group": point.load_key, "n_threads": point.n_threads, "n_threads_batch": point.n_threads,
                "n_gpu_layers": point.n_gpu_layers, "n_batch": point.n_batch, "n_ubatch": point.n_ubatch,
                "n_ctx": point.resolved_n_ctx(n_prompt), "flash_attn": point.flash_attn, "repack": point.repack,
                "prompt_suite": suite, "prompt_id": point.prompt.prompt_id, "n_prompt": n_prompt,
                "n_gen": point.n_gen, "seed": point.seed, "flag_synthetic_model": spec.synthetic_model,
            }
            if run_no in failed_at:
                row = dict(base_row, status="failed",
                           error="worker was killed by SIGSEGV (segmentation fault) during decode",
                           stderr_tail="ggml_backend_amx_mul_mat: ...\nSegmentation fault",
                           t_start_ns=t_ns, energy_source="none", flag_short_window=False,
                           flag_throttled=False, flag_estimate=spec.estimate)
                rows.append(row)
                if layout != "bulk":
                    store.add_run(row)
                t_ns += 2 * 10**9
                started += timedelta(seconds=2)
                run_no += 1
                continue
            noise_t = rng.lognormal(0.0, sigma)
            t_prefill = n_prompt * m["t_ptok_s"] * noise_t * warm_factor + 0.004
            itl = m["t_tok_s"] * noise_t * rng.lognormal(0.0, 0.03, size=point.n_gen)
            decode_s = float(itl.sum())
            t_start = t_ns
            t_pre = t_start + int(t_prefill * 1e9)
            token_t = (t_pre + np.cumsum(np.concatenate([[0.0], itl[1:]])) * 1e9).astype(np.int64)
            t_end = int(t_pre + decode_s * 1e9)
            window_s = (t_end - t_start) / 1e9
            throttled = bool(throttled_point and rng.random() < 0.3)
            noise_p = rng.lognormal(0.0, sigma / 2)
            t = _sample_times(t_start - int(spec.sample_period_s * 1e9), t_end + int(spec.sample_period_s * 1e9),
                              spec.sample_period_s, spec.samples_per_domain)
            dom_rows = []
            run_samples = []
            for d in doms:
                idle, pre, dec = _phase_powers(m, d)
                pre, dec = pre * noise_p, dec * noise_p
                e_pre, e_dec = pre * t_prefill, dec * decode_s
                e = e_pre + e_dec
                dom_rows.append({
                    "domain": d["name"], "meter": d["meter"], "kind": d["kind"], "component": d["component"],
                    "parent": d["parent"], "estimate": d["estimate"], "source": d["source"],
                    "update_period_s": d["update_period_s"], "sample_period_s": spec.sample_period_s,
                    "n_samples": int(t.size), "energy_j": e, "energy_net_j": e - idle * window_s,
                    "prefill_energy_j": e_pre, "decode_energy_j": e_dec, "avg_power_w": e / window_s,
                    "peak_power_w": max(pre, dec) * 1.04, "idle_power_w": idle,
                })
                cols = _domain_samples(rng, d, (idle, pre, dec), t, t_start, t_pre, t_end,
                                       counters[d["name"]], throttled)
                if d["kind"] == "energy":
                    counters[d["name"]] = float(cols["value"][-1])
                run_samples.append((d, cols))
            tops = [r for r in dom_rows if r["parent"] is None]
            e_tot = sum(r["energy_j"] for r in tops)
            idle_tot = sum(r["idle_power_w"] for r in tops)
            e_pre = sum(r["prefill_energy_j"] for r in tops)
            e_dec = sum(r["decode_energy_j"] for r in tops)
            itl_ms = itl[1:] * 1e3 if itl.size > 1 else itl * 1e3
            row = dict(
                base_row, status="ok", t_start_ns=t_start, t_prefill_end_ns=t_pre, t_end_ns=t_end,
                window_s=window_s, ttft_ms=(t_pre - t_start) / 1e6, prefill_s=(t_pre - t_start) / 1e9,
                decode_s=(t_end - t_pre) / 1e9, prefill_tok_s=n_prompt / ((t_pre - t_start) / 1e9),
                decode_tok_s=point.n_gen / ((t_end - t_pre) / 1e9),
                itl_p50_ms=float(np.percentile(itl_ms, 50)), itl_p95_ms=float(np.percentile(itl_ms, 95)),
                itl_max_ms=float(itl_ms.max()), n_prompt_tokens=n_prompt, n_gen_tokens=point.n_gen, n_repeats=1,
                token_t_ns=token_t.tolist(), model_load_s=2.1 if k == 0 else None,
                gpu_mem_used_bytes=int(1.1e9) if point.n_gpu_layers > 0 else None,
                perf_t_p_eval_ms=t_prefill * 1e3 * 0.98, perf_t_eval_ms=decode_s * 1e3 * 0.99,
                perf_n_p_eval=n_prompt, perf_n_eval=point.n_gen - 1,
                energy_source="estimate" if spec.estimate else "measured",
                meters=",".join(sorted({d["meter"] for d in top})),
                energy_j=e_tot, energy_net_j=e_tot - idle_tot * window_s, prefill_energy_j=e_pre,
                decode_energy_j=e_dec, prefill_energy_net_j=e_pre - idle_tot * (t_pre - t_start) / 1e9,
                decode_energy_net_j=e_dec - idle_tot * (t_end - t_pre) / 1e9, idle_power_w=idle_tot,
                avg_power_w=e_tot / window_s, peak_power_w=sum(r["peak_power_w"] for r in tops),
                sample_jitter_p99_ms=float(rng.gamma(2.0, 0.4)), domains=dom_rows,
                flag_short_window=window_s < 10 * slowest_update, flag_throttled=throttled,
                flag_estimate=spec.estimate,
            )
            rows.append(row)
            if layout == "bulk":
                for d, cols in run_samples:
                    n = cols["t_ns"].size
                    sample_cols.setdefault("run_id", []).append(np.full(n, run_id, dtype=object))
                    sample_cols.setdefault("meter", []).append(np.full(n, d["meter"], dtype=object))
                    sample_cols.setdefault("domain", []).append(np.full(n, d["name"], dtype=object))
                    for name in SAMPLES_SCHEMA:
                        if name in ("run_id", "meter", "domain"):
                            continue
                        sample_cols.setdefault(name, []).append(cols.get(name, np.full(n, np.nan)))
                    n_samples += n
            else:
                sdf = pl.concat([_samples_frame(run_id, d, cols) for d, cols in run_samples])
                n_samples += sdf.height
                store.add_run(row, sdf)
            t_ns = t_end + int((0.5 + rng.random()) * 1e9)  # cooldown gap
            started += timedelta(seconds=(t_ns - t_start) / 1e9)
            run_no += 1

    if layout == "bulk":
        runs = runs_frame(rows)
        atomic_write_parquet(runs, root / "runs.parquet")
        data = {k: np.concatenate(v) for k, v in sample_cols.items()}
        frames = list(sample_frames)
        if data:
            aux = [k for k in SAMPLES_SCHEMA if SAMPLES_SCHEMA[k] == pl.Float64 and k != "value"]
            frames.append(pl.DataFrame({k: data[k] for k in SAMPLES_SCHEMA})
                          .cast(dict(SAMPLES_SCHEMA), strict=False)
                          .with_columns(pl.col(aux).fill_nan(None)))
        if frames:
            atomic_write_parquet(pl.concat([f.select(list(SAMPLES_SCHEMA)) for f in frames]),
                                 root / "samples.parquet")
        store._journal({"event": "bulk", "runs": len(rows)})
    elif layout == "consolidated":
        store.consolidate()
    return GeneratedInfo(root=root, n_runs=len(rows), n_samples=n_samples, n_points=len(points), layout=layout)


def small_spec(**changes: Any) -> SyntheticSpec:
    """A quick spec for tests: 2 threads x 2 GPU layers x 2 batch sizes, 1 warm-up + 3 repetitions."""
    base = dict(threads=(1, 4), n_gpu_layers=(0, 22), n_batch=(128, 512), reps=3, warmups=1,
                sample_period_s=0.1)
    base.update(changes)
    return SyntheticSpec(**base)


def spec_for_size(n_runs: int, n_samples: int, *, seed: int = 0) -> SyntheticSpec:
    """A spec whose dataset has about ``n_runs`` runs and ``n_samples`` samples (for the benchmark)."""
    threads = (1, 2, 4, 6, 8, 12, 16)
    ngl = (0, 6, 11, 16, 22)
    batch = (64, 128, 256, 512, 1024)
    per_point = 11  # 1 warm-up + 10 repetitions
    n_points_grid = len(threads) * len(ngl) * len(batch)
    n_prompts = max(1, math.ceil(n_runs / (per_point * n_points_grid)))
    prompts = tuple((s, f"{_PREFIX[s]}-{i + 1:02d}", n) for i in range(n_prompts)
                    for s, _, n in DEFAULT_PROMPTS)[:n_prompts]
    total = min(n_points_grid * n_prompts * per_point, n_runs)
    n_domains = 3
    n_failed = 5  # failed runs have no samples
    per_domain = max(2, math.ceil(n_samples / (max(1, total - n_failed) * n_domains)))  # at least n_samples
    return SyntheticSpec(seed=seed, threads=threads, n_gpu_layers=ngl, n_batch=batch, prompts=prompts,
                         reps=10, warmups=1, n_failed=n_failed, noisy_points=3, samples_per_domain=per_domain,
                         max_runs=n_runs)



def main(argv: list[str] | None = None) -> int:
    """``python -m energybench.report.synthetic DIR [--seed N] [--layout parts|consolidated|bulk] [--runs N
    --samples N]``: write a synthetic results directory (for trying ``energybench report``)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m energybench.report.synthetic", description=main.__doc__)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=("parts", "consolidated", "bulk"), default="consolidated")
    ap.add_argument("--runs", type=int, default=None, help="about this many runs (with --samples)")
    ap.add_argument("--samples", type=int, default=1_000_000)
    ns = ap.parse_args(argv)
    spec = spec_for_size(ns.runs, ns.samples, seed=ns.seed) if ns.runs else SyntheticSpec(seed=ns.seed)
    info = generate_results(ns.dir, spec, layout=ns.layout)
    print(f"wrote {info.n_runs} runs, {info.n_samples} samples, {info.n_points} configurations to {info.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
