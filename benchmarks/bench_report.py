"""Benchmark: ``energybench report`` on 10,000 runs and 1,000,000 samples (target: <= 10 s here).

Generates a synthetic result set (``energybench.testing.synthetic_results``, consolidated files), then runs
``energybench report DIR -o OUT --format json`` in a subprocess and prints its wall time and peak
memory (``os.wait4``'s rusage ``ru_maxrss``: the largest process of the report, i.e. the main
process or a figure worker). Baselines measured in the same run, printed as ratios:

- ``startup``: a subprocess that only imports the report's libraries (polars, numpy, plotnine) --
  the floor any Python CLI with these libraries pays;
- ``no-figures``: the same report with ``--no-figures`` (data + statistics + Markdown/HTML only).

Bytecode: this environment sets ``PYTHONDONTWRITEBYTECODE=1`` and the venv has no ``__pycache__``,
so every import compiles from source (seconds for plotnine/matplotlib/pandas). A normal
installation has bytecode; the benchmark gives the subprocesses a private ``PYTHONPYCACHEPREFIX``
(warmed by one untimed run) unless ``--cold``.

usage: python benchmarks/bench_report.py [--runs 10000] [--samples 1000000] [--repeat 3] [--dir D] [--cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0


def _env(cold: bool, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    if not cold:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child: ``os.wait4``'s rusage covers the child and the
    descendants it waited for (the figure workers), ru_maxrss being the largest of them (KiB on Linux)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.stderr.write(err.read()[-3000:].decode(errors="replace"))
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, ru.ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep the generated result set here")
    ap.add_argument("--cold", action="store_true", help="no bytecode cache (compile every import)")
    ns = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="eb-bench-report-"))
    root = ns.dir or tmp / "results"
    cache = tmp / "pycache"
    env = _env(ns.cold, cache)
    py = sys.executable

    if not (root / "runs.parquet").exists():
        from energybench.testing.synthetic_results import generate_results, spec_for_size

        t0 = time.perf_counter()
        info = generate_results(root, spec_for_size(ns.runs, ns.samples), layout="bulk")
        print(f"generated {info.n_runs} runs, {info.n_samples} samples, {info.n_points} configurations "
              f"in {time.perf_counter() - t0:.1f} s -> {root}")
    else:
        print(f"reusing {root}")

    out = tmp / "report"
    report = [py, "-m", "energybench", "report", str(root), "-o", str(out), "--format", "json"]
    startup = [py, "-c", "import polars, numpy, pandas, matplotlib.pyplot, plotnine, energybench.report.build"]
    if not ns.cold:
        _run(report, env)  # warm the private bytecode cache (untimed)

    rows: dict[str, list[tuple[float, float]]] = {"startup": [], "no-figures": [], "report": []}
    for _ in range(ns.repeat):
        rows["startup"].append(_run(startup, env))
        rows["no-figures"].append(_run([*report, "--no-figures"], env))
        rows["report"].append(_run(report, env))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nenergybench report, {ns.runs} runs / {ns.samples} samples, {ns.repeat} repeats, "
          f"{os.cpu_count()} CPUs, load average {load:.2f}, bytecode {'off (cold)' if ns.cold else 'cached'}")
    med = {k: statistics.median(w for w, _ in v) for k, v in rows.items()}
    for k, v in rows.items():
        walls = ", ".join(f"{w:.2f}" for w, _ in v)
        print(f"  {k:<11} median {med[k]:6.2f} s   (runs: {walls})")
    peak = max(m for _, m in rows["report"])
    print(f"  peak memory (largest process of the report): {peak:.0f} MiB")
    print(f"  ratios: report / startup = {med['report'] / med['startup']:.2f}, "
          f"report / no-figures = {med['report'] / med['no-figures']:.2f}, "
          f"no-figures / startup = {med['no-figures'] / med['startup']:.2f}")
    verdict = "meets" if med["report"] <= TARGET_S else "misses"
    print(f"  target <= {TARGET_S:.0f} s: {verdict} ({med['report']:.2f} s)")
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    print(f"  wrote {len(files)} files: {', '.join(map(str, files[:12]))}{' ...' if len(files) > 12 else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
