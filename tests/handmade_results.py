"""Results directories written by hand, with known effects, for the compare and cost tests.

Each run holds what a sweep stores (timestamps, token counts, energies per phase); every metric
is then computed by :mod:`energybench.metrics`, as for measured results. Run-to-run noise is
lognormal with a given sigma, from a seed; an effect scales the decode time (and with it decode
speed and the decode energy) or the power.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from energybench.point import PromptSpec, RunPoint
from energybench.results import ResultsStore, atomic_write_parquet, runs_frame

MODEL = "synthetic:tiny"
SHA = "a" * 64
PREFILL_S, DECODE_S = 0.05, 0.5  # noise-free phase times of one run
PREFILL_W, DECODE_W = 30.0, 20.0  # noise-free powers
N_PROMPT, N_GEN = 32, 64


def metadata(cpu: str = "Test CPU 9000", version: str = "0.3.36", sha: str = SHA, meter: str = "rapl",
             **extra: Any) -> dict[str, Any]:
    return {"kind": "sweep", "host": {"cpu_model": cpu, "hostname": "bench"}, "gpus": [],
            "backend": {"name": "llama.cpp", "version": version, "system_info": "CPU : AVX2 = 1 |",
                        "supports_gpu_offload": False},
            "models": {MODEL: {"name": "synthetic:tiny:Q4_K_M", "sha256": sha}},
            "meters": [{"name": meter, "estimate": meter == "estimate"}], **extra}


def point(threads: int) -> RunPoint:
    return RunPoint(model=MODEL, n_gen=N_GEN, prompt=PromptSpec(kind="synthetic", n_prompt=N_PROMPT),
                    n_threads=threads)


def rows(threads: int, *, reps: int = 10, sigma: float = 0.03, decode: float = 1.0, power: float = 1.0,
         seed: int = 0, energy_source: str = "measured") -> list[dict[str, Any]]:
    """``reps`` runs of the point with ``threads``: decode time x ``decode``, powers x ``power``."""
    rng = np.random.default_rng((seed, threads))
    p = point(threads)
    out = []
    for i in range(reps):
        pre_s = PREFILL_S * rng.lognormal(0, sigma)
        dec_s = DECODE_S * decode * rng.lognormal(0, sigma)
        t0 = 10**12 + i * 10**10
        t1, t2 = t0 + int(pre_s * 1e9), t0 + int((pre_s + dec_s) * 1e9)
        e_pre, e_dec = PREFILL_W * power * pre_s, DECODE_W * power * dec_s
        has_energy = energy_source != "none"
        out.append({
            "run_id": f"{p.point_id}-r{i:03d}", "point_id": p.point_id, "point_index": threads, "rep_index": i,
            "is_warmup": False, "status": "ok", "model": MODEL, "model_name": "synthetic:tiny:Q4_K_M",
            "backend": "llama.cpp", "backend_mode": "cpu", "n_threads": threads, "n_threads_batch": threads,
            "n_gpu_layers": 0, "n_batch": 512, "n_ubatch": 512, "n_ctx": 256, "flash_attn": "auto", "repack": True,
            "prompt_id": f"synthetic:{N_PROMPT}", "n_prompt": N_PROMPT, "n_gen": N_GEN, "seed": 0,
            "t_start_ns": t0, "t_prefill_end_ns": t1, "t_end_ns": t2, "window_s": (t2 - t0) / 1e9,
            "n_prompt_tokens": N_PROMPT, "n_gen_tokens": N_GEN, "n_repeats": 1,
            "energy_source": energy_source, "flag_estimate": energy_source == "estimate",
            "energy_j": e_pre + e_dec if has_energy else None,
            "prefill_energy_j": e_pre if has_energy else None, "decode_energy_j": e_dec if has_energy else None,
        })
    return out


def write_set(root: Path, threads: tuple[int, ...] = (1,), meta: dict[str, Any] | None = None,
              **effects: Any) -> Path:
    """A consolidated results directory: ``metadata.json`` and ``runs.parquet``."""
    store = ResultsStore(root)
    store.create(meta if meta is not None else metadata())
    atomic_write_parquet(runs_frame([r for t in threads for r in rows(t, **effects)]), root / "runs.parquet")
    return root
