"""Throughput cost of measuring: `energybench measure` vs a bare llama.cpp loop, same model, same run.

    uv run python benchmarks/bench_measure.py [--model synthetic:tinyllama-1.1b:Q4_0] [--threads 2]
                                              [--mode paired|cli]

``--mode paired`` (default): both arms stay alive and alternate run by run (AB BA ...), so each
pair is seconds apart and the machine's drift (large on a shared VM) cancels. The measure arm is
energybench's own measuring machinery -- ``engine.session.Session.run`` as ``energybench measure`` uses it:
the crash-isolated worker, the meters sampled by the sampler thread, energy attribution and the
durable Parquet write of every run. ``--mode cli`` alternates whole ``energybench measure``
processes with whole baseline processes, round by round (coarser pairing, more drift).

Alternates the two arms round by round (baseline then measure, then measure then baseline, ...),
so drift hits both alike; each round gives one paired ratio measure/baseline (of the round's
medians). Prints tokens/s of each arm and the median of the paired ratios with a 95% bootstrap CI
(on a VM, runs vary by several %). Target: both ratios >= 0.98.

The baseline is ``benchmarks/baseline_loop.py``: llama-cpp-python's low-level C API, llama_decode on
one-token batches, llama.cpp's greedy sampler chain, no logits copied to Python. ``measure`` runs
with its meters sampling at the default period, its worker process and its Parquet writes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def resolve(model: str) -> str:
    from energybench.models import resolve_model

    return str(resolve_model(model).path)


def run_baseline(path: str, args: argparse.Namespace) -> list[dict[str, float]]:
    out = subprocess.run([sys.executable, str(HERE / "baseline_loop.py"), path, "--threads", str(args.threads),
                          "--n-prompt", str(args.n_prompt), "--n-gen", str(args.n_gen), "--batch", str(args.batch),
                          "--reps", str(args.reps), "--warmup", "1"],
                         capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run_measure(path: str, args: argparse.Namespace) -> list[dict[str, float]]:
    import polars as pl

    from energybench.results import read_runs

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m"
        subprocess.run([sys.executable, "-m", "energybench", "measure", "-m", path, "-t", str(args.threads),
                        "-p", str(args.n_prompt), "-n", str(args.n_gen), "-b", str(args.batch), "-ub", str(args.batch),
                        "-r", str(args.reps), "--warmup", "1", "--idle", "0", "--cooldown", "0", "--json", "-o", str(out)],
                       capture_output=True, text=True, check=True)
        runs = read_runs(out).filter(~pl.col("is_warmup") & (pl.col("status") == "ok"))
        return runs.select("prefill_tok_s", "decode_tok_s").to_dicts()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic:tinyllama-1.1b:Q4_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3, help="repetitions per arm and round")
    ap.add_argument("--rounds", type=int, default=6, help="cli mode: alternations of the two arms")
    ap.add_argument("--pairs", type=int, default=30, help="paired mode: run pairs")
    ap.add_argument("--mode", choices=("paired", "cli"), default="paired")
    args = ap.parse_args()

    path = resolve(args.model)
    if args.mode == "paired":
        return paired(path, args)
    print(f"model {args.model} ({path}), threads {args.threads}, prompt {args.n_prompt}, gen {args.n_gen}, "
          f"batch {args.batch}, {args.rounds} rounds x {args.reps} reps per arm", flush=True)
    rounds: list[tuple[list[dict[str, float]], list[dict[str, float]]]] = []
    t0 = time.monotonic()
    for r in range(args.rounds):
        # alternate which arm goes first, so neither always follows the other
        if r % 2 == 0:
            b = run_baseline(path, args)
            m = run_measure(path, args)
        else:
            m = run_measure(path, args)
            b = run_baseline(path, args)
        rounds.append((b, m))
        print(f"  round {r + 1}/{args.rounds} done ({time.monotonic() - t0:.0f} s)", flush=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    rng = np.random.default_rng(0)
    print(f"{'':14} {'baseline':>10} {'measure':>10} {'ratio':>8}  95% CI of the ratio")
    ok = True
    for key, label in (("prefill_tok_s", "prefill"), ("decode_tok_s", "decode")):
        b_all = [row for b, _ in rounds for row in b]
        m_all = [row for _, m in rounds for row in m]
        ratios = np.array([med(m, key) / med(b, key) for b, m in rounds])
        boot = np.median(rng.choice(ratios, (5000, ratios.size)), axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        ratio = float(np.median(ratios))
        ok &= ratio >= 0.98
        print(f"{label + ' tok/s':14} {med(b_all, key):10.2f} {med(m_all, key):10.2f} {ratio:8.3f}  [{lo:.3f}, {hi:.3f}]")
    print(f"{args.rounds} rounds x {args.reps} runs per arm; ratio = median over rounds of measure/baseline; "
          f"target >= 0.98: {'met' if ok else 'NOT met'}")
    return 0


def _ratio_line(label: str, b: list[float], m: list[float], ratios: np.ndarray) -> tuple[str, float]:
    boot = np.median(np.random.default_rng(0).choice(ratios, (5000, ratios.size)), axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    r = float(np.median(ratios))
    return (f"{label + ' tok/s':14} {statistics.median(b):10.2f} {statistics.median(m):10.2f} {r:8.3f}  "
            f"[{lo:.3f}, {hi:.3f}]"), r


def paired(path: str, args: argparse.Namespace) -> int:
    from energybench.backends import create_backend
    from energybench.engine.session import Session
    from energybench.meters import select_meters
    from energybench.point import PromptSpec, RunPoint
    from energybench.results import ResultsStore

    base = subprocess.Popen([sys.executable, str(HERE / "baseline_loop.py"), path, "--threads", str(args.threads),
                             "--n-prompt", str(args.n_prompt), "--n-gen", str(args.n_gen), "--batch", str(args.batch),
                             "--warmup", "1", "--serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    assert base.stdout is not None and base.stdin is not None
    json.loads(base.stdout.readline())  # ready: model loaded, warmed up

    def base_run() -> dict[str, float]:
        base.stdin.write("go\n")
        base.stdin.flush()
        return json.loads(base.stdout.readline())

    point = RunPoint(model=path, n_gen=args.n_gen, prompt=PromptSpec(n_prompt=args.n_prompt), n_threads=args.threads,
                     n_batch=args.batch, n_ubatch=args.batch)
    selection = select_meters(None)
    meters = ", ".join(f"{d.meter}:{d.name}" for d in selection.domains) or "none"
    print(f"model {args.model}, threads {args.threads}, prompt {args.n_prompt}, gen {args.n_gen}, batch {args.batch}; "
          f"{args.pairs} run pairs alternating AB/BA; measure arm = Session.run with meters {meters}", flush=True)
    b_rows: list[dict[str, float]] = []
    m_rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultsStore(Path(tmp) / "m")
        store.create({})
        backend = create_backend("llama.cpp", start=True)
        with selection, Session(store, selection, backend, sample_period_s=0.02) as session:
            prep = session.prepare(point)
            one = dict(point_index=0, load_s=None, protocol=None)
            session.run(prep, run_id="warm", rep_index=0, is_warmup=True, **one)
            for i in range(args.pairs):
                for arm in (("b", "m") if i % 2 == 0 else ("m", "b")):
                    if arm == "b":
                        b_rows.append(base_run())
                    else:
                        row = session.run(prep, run_id=f"r{i:03d}", rep_index=i, is_warmup=False, **one)
                        m_rows.append({"prefill_tok_s": row["prefill_tok_s"], "decode_tok_s": row["decode_tok_s"]})
                if (i + 1) % 5 == 0:
                    print(f"  {i + 1}/{args.pairs} pairs", flush=True)
        backend.close()
    base.stdin.close()
    base.wait(timeout=60)
    print(f"{'':14} {'baseline':>10} {'measure':>10} {'ratio':>8}  95% CI of the ratio (median of per-pair ratios)")
    ok = True
    for key, label in (("prefill_tok_s", "prefill"), ("decode_tok_s", "decode")):
        b = [r[key] for r in b_rows]
        m = [r[key] for r in m_rows]
        line, r = _ratio_line(label, b, m, np.array(m) / np.array(b))
        ok &= r >= 0.98
        print(line)
    print(f"target >= 0.98: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
