"""Benchmark: ``energybench report`` on a quick-sized result set (target <= 2 s) and on 10,000 runs and
1,000,000 samples (target <= 2.5 s), figures included.

Generates synthetic result sets (``energybench.testing.synthetic_results``), then runs
``energybench report DIR -o OUT --format json`` in a subprocess and prints its wall time and peak
memory (``os.wait4``'s rusage ``ru_maxrss``). Baselines measured in the same run, printed as ratios:

- ``startup``: a subprocess that only imports the report's libraries (polars, numpy, the report
  package) -- the floor any Python CLI with these libraries pays;
- ``no-figures``: the same report with ``--no-figures`` (data + statistics + Markdown/HTML only);
- ``png``: the report with ``--png`` too (each figure's SVG rasterised by resvg).

Bytecode: this environment sets ``PYTHONDONTWRITEBYTECODE=1`` and the venv has no ``__pycache__``,
so every import compiles from source (about a second for polars/numpy/scipy). A normal
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

#: Targets: a report of the built-in quick sweep, and of 10,000 runs + 1,000,000 samples, figures included.
QUICK_TARGET_S = 2.0
TARGET_S = 2.5


def _env(cold: bool, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    if not cold:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child: ``os.wait4``'s rusage covers the child and the
    descendants it waited for, ru_maxrss being the largest of them (KiB on Linux)."""
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


def _report_rows(name: str, data: Path, target: float, tmp: Path, startup: list[str], env: dict[str, str],
                 ns: argparse.Namespace) -> None:
    """Time the report of ``data``: with its figures (SVG), with PNG too, without figures; and the
    imports alone. Each run writes into a new output directory."""
    py = sys.executable
    out = tmp / f"report-{data.name}"
    report = [py, "-m", "energybench", "report", str(data), "--format", "json"]
    if not ns.cold:
        _run([*report, "-o", str(out)], env)  # warm the private bytecode cache (untimed)
    rows: dict[str, list[tuple[float, float]]] = {"startup": [], "no-figures": [], "report": [], "png": []}
    for i in range(ns.repeat):
        rows["startup"].append(_run(startup, env))
        rows["no-figures"].append(_run([*report, "-o", str(tmp / f"nofig-{data.name}-{i}"), "--no-figures"], env))
        rows["report"].append(_run([*report, "-o", str(tmp / f"fresh-{data.name}-{i}")], env))
        rows["png"].append(_run([*report, "-o", str(tmp / f"png-{data.name}-{i}"), "--png"], env))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nenergybench report, {name}, {ns.repeat} repeats, {os.cpu_count()} CPUs, load average {load:.2f}, "
          f"bytecode {'off (cold)' if ns.cold else 'cached'}")
    med = {k: statistics.median(w for w, _ in v) for k, v in rows.items()}
    for k, v in rows.items():
        print(f"  {k:<11} median {med[k]:6.2f} s   (runs: {', '.join(f'{w:.2f}' for w, _ in v)})")
    print(f"  peak memory: {max(m for _, m in rows['report']):.0f} MiB")
    print(f"  ratios: report / startup = {med['report'] / med['startup']:.2f}, "
          f"report / no-figures = {med['report'] / med['no-figures']:.2f}")
    print(f"  target <= {target:g} s (figures drawn): {'meets' if med['report'] <= target else 'misses'} "
          f"({med['report']:.2f} s); with PNG too: {med['png']:.2f} s")


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

    # generated in a child: a process forked from a parent that held the 10,000 runs would report
    # the parent's memory as its own peak (Linux carries ru_maxrss over fork and exec)
    if not (root / "runs.parquet").exists():
        t0 = time.perf_counter()
        subprocess.run([py, "-c", "import sys; from energybench.testing.synthetic_results import generate_results, "
                        "spec_for_size as s; generate_results(sys.argv[1], s(int(sys.argv[2]), int(sys.argv[3])), "
                        "layout='bulk')", str(root), str(ns.runs), str(ns.samples)], check=True)
        print(f"generated {ns.runs} runs, {ns.samples} samples in {time.perf_counter() - t0:.1f} s -> {root}")
    else:
        print(f"reusing {root}")

    quick = tmp / "quick"
    subprocess.run([py, "-c", "import sys; from energybench.testing.synthetic_results import generate_results, "
                    "small_spec; generate_results(sys.argv[1], small_spec(threads=(1, 2), n_gpu_layers=(0,), "
                    "n_batch=(16, 64), reps=5, gpu=False))", str(quick)], check=True)
    startup = [py, "-c", "import polars, numpy, energybench.report.build"]
    for name, data, target in (("quick-sized (24 runs)", quick, QUICK_TARGET_S), (f"{ns.runs} runs", root, TARGET_S)):
        _report_rows(name, data, target, tmp, startup, env, ns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
