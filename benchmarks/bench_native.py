"""energybench against llama.cpp's own ``llama-bench``: prefill and decode speed, paired.

``llama-bench`` is built from the llama.cpp source the installed llama-cpp-python vendors
(benchmarks/llama_bench_build.py: same version, same CPU flags). For each thread count, pairs of
runs alternate AB / BA: ``llama-bench`` (prefill ``-p N -n 0``; decode ``-p 0 -n M -d N``, i.e.
generation at the KV depth a prompt of N tokens leaves) and ``energybench measure -p N -n M`` (no
meter, no idle baseline, no cooldown: speed only). Each pair gives a ratio energybench / llama-bench
of the two tools' median tokens/s; the benchmark prints the median ratio over pairs with a
percentile-bootstrap 95 % CI. Target: >= 0.98 for both phases.

    uv run python benchmarks/bench_native.py [--threads 1,2] [--pairs 8] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from llama_bench_build import build, run_env  # noqa: E402


def llama_bench(binary: Path, model: str, threads: int, args: argparse.Namespace) -> dict[str, float]:
    """llama-bench's mean tokens/s for prefill and for decode at the prompt's KV depth."""
    out = {}
    for phase, extra in (("prefill_tok_s", ["-p", str(args.n_prompt), "-n", "0"]),
                         ("decode_tok_s", ["-p", "0", "-n", str(args.n_gen), "-d", str(args.n_prompt)])):
        r = subprocess.run([str(binary), "-m", model, "-t", str(threads), "-r", str(args.reps), "-o", "json", *extra],
                           capture_output=True, text=True, check=True, env=run_env(binary))
        (test,) = json.loads(r.stdout)
        out[phase] = statistics.median(test["samples_ts"])
    return out


def energybench(model: str, threads: int, args: argparse.Namespace) -> dict[str, float]:
    """energybench measure's median tokens/s (prefill and decode) over its repetitions."""
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "energybench", "measure", "-m", model, "-t", str(threads),
                            "-p", str(args.n_prompt), "-n", str(args.n_gen), "-r", str(args.reps), "--warmup", "1",
                            "--idle", "0", "--cooldown", "0", "--meter", "none", "--json", "-o", f"{tmp}/m"],
                           capture_output=True, text=True, check=True)
    metrics = json.loads(r.stdout)["metrics"]
    return {k: metrics[k]["median"] for k in ("prefill_tok_s", "decode_tok_s")}


def ci(ratios: list[float], seed: int = 0) -> tuple[float, float, float]:
    """Median of per-pair ratios and its percentile-bootstrap 95 % CI."""
    a = np.asarray(ratios)
    boot = np.median(np.random.default_rng(seed).choice(a, (5000, a.size)), axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(np.median(a)), float(lo), float(hi)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic:tinyllama-1.1b:Q4_0")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=64)
    args = ap.parse_args()
    from energybench.models import resolve_model

    model = str(resolve_model(args.model).path)
    binary = build()
    print(f"llama-bench: {binary}\nmodel {args.model}; prompt {args.n_prompt}, generation {args.n_gen} at depth "
          f"{args.n_prompt}; {args.pairs} pairs AB/BA x {args.reps} repetitions per arm", flush=True)
    print(f"{'threads':>7} {'phase':8} {'llama-bench':>12} {'energybench':>12} {'ratio':>7}  95% CI")
    met = True
    for threads in (int(t) for t in args.threads.split(",")):
        rows: dict[str, list[tuple[float, float]]] = {"prefill_tok_s": [], "decode_tok_s": []}
        for i in range(args.pairs):
            if i % 2 == 0:
                native = llama_bench(binary, model, threads, args)
                ours = energybench(model, threads, args)
            else:
                ours = energybench(model, threads, args)
                native = llama_bench(binary, model, threads, args)
            for k in rows:
                rows[k].append((native[k], ours[k]))
        for k, pairs in rows.items():
            r, lo, hi = ci([e / n for n, e in pairs])
            met &= r >= 0.98
            print(f"{threads:>7} {k.split('_')[0]:8} {statistics.median(n for n, _ in pairs):12.2f} "
                  f"{statistics.median(e for _, e in pairs):12.2f} {r:7.3f}  [{lo:.3f}, {hi:.3f}]", flush=True)
    print(f"tok/s are medians over pairs; ratio = median over pairs of energybench / llama-bench; "
          f"target >= 0.98: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
