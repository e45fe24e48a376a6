"""Cost of sampling the meters: decode tok/s with every available meter sampled at 100 Hz divided by
decode tok/s with no sampling — same model, same threads, same worker, one run.

    uv run python benchmarks/bench_sampler.py [--model synthetic:tinyllama-1.1b:Q4_0] [--threads 2]

The arms alternate run by run (AB BA AB ...); each pair gives one ratio sampled/bare, so slow drift
of the machine cancels out. Prints the median of the per-pair ratios with a 95% bootstrap CI (on a
VM, single runs vary by several %: the CI says how much the number can be trusted), and the
sampler's scheduling jitter (p50/p99/max) while inference runs. Target: ratio >= 0.99.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic:tinyllama-1.1b:Q4_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-prompt", type=int, default=32)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=20, help="sampled/unsampled run pairs")
    ap.add_argument("--period-ms", type=float, default=10.0)
    args = ap.parse_args()

    from energybench.backends import ContextParams, GenerationRequest, LoadParams, create_backend
    from energybench.meters import select_meters
    from energybench.models import resolve_model
    from energybench.prompts import exact_prompt_tokens
    from energybench.sampling import Sampler

    model = resolve_model(args.model)
    selection = select_meters(None)
    names = ", ".join(f"{d.meter}:{d.name}" + (" (estimate)" if d.estimate else "") for d in selection.domains)
    print(f"model {args.model}, threads {args.threads}, gen {args.n_gen}; meters sampled at "
          f"{1000 / args.period_ms:.0f} Hz: {names or 'none'}", flush=True)
    backend = create_backend()
    backend.load(LoadParams(model_path=str(model.path)))
    prompt = tuple(exact_prompt_tokens(backend.tokenize, args.n_prompt))
    ctx = ContextParams(n_ctx=256 * (1 + (args.n_prompt + args.n_gen) // 256), n_threads=args.threads)
    req = GenerationRequest(prompt_tokens=prompt, n_gen=args.n_gen)

    def decode_tok_s(res) -> float:
        return (args.n_gen - 1) / ((res.t_end_ns - res.t_prefill_end_ns) / 1e9)

    backend.run(ctx, req)  # warm-up
    sampled: list[float] = []
    bare: list[float] = []
    jitter_windows = []
    sampler = Sampler(selection, period_s=args.period_ms / 1000.0)
    for i in range(args.pairs):
        for arm in (("sampled", "bare") if i % 2 == 0 else ("bare", "sampled")):
            if arm == "sampled":
                sampler.start()
                time.sleep(0.05)
                res = backend.run(ctx, req)
                jitter_windows.append((res.t_start_ns, res.t_end_ns))
                sampler.stop()
                sampled.append(decode_tok_s(res))
            else:
                res = backend.run(ctx, req)
                bare.append(decode_tok_s(res))
        print(f"  pair {i + 1}/{args.pairs}: sampled {sampled[-1]:.2f}  bare {bare[-1]:.2f} tok/s", flush=True)
    backend.close()
    jit = sampler.jitter_stats()
    ratios = np.array(sampled) / np.array(bare)
    boot = np.median(np.random.default_rng(0).choice(ratios, (5000, ratios.size)), axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    med = float(np.median(ratios))
    print(f"decode tok/s: sampled {statistics.median(sampled):.2f}, bare {statistics.median(bare):.2f} (medians)")
    print(f"ratio sampled/bare, median of {ratios.size} paired runs: {med:.4f} [95% CI {lo:.4f}, {hi:.4f}] "
          f"(target >= 0.99: {'met' if med >= 0.99 else 'NOT met'})")
    print(f"sampler jitter at {args.period_ms:g} ms: p50 {jit['p50_ms']:.3f} ms, p99 {jit['p99_ms']:.3f} ms, "
          f"max {jit['max_ms']:.3f} ms over {jit['n']} ticks ({jit['missed_ticks']} missed)")
    selection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
