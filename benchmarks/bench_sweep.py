"""Sweep overhead: wall time of `energybench sweep` on a config divided by the time that is
necessarily spent (measured run windows + cooldowns + the model loads that were needed), and the
number of model loads against the number of distinct load groups.

    uv run python benchmarks/bench_sweep.py [--config examples/quick.yaml]

The sweep runs as a real CLI subprocess (``--json``); the wall time is taken around the whole
process (interpreter start, model resolution, worker start, idle baseline and Parquet writes all
count as overhead). Targets: ratio <= 1.10; model loads == load groups. The ratio is also shown
with the idle baseline counted as necessary time (it is a measured window too).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(REPO / "examples" / "quick.yaml"))
    args = ap.parse_args()

    # make sure the model exists first: synthesizing it is a one-time cost, not sweep overhead
    from energybench.config import load_config

    cfg = load_config(args.config)
    from energybench.models import resolve_model

    for ref in cfg.models:
        resolve_model(ref)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep"
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "energybench", "sweep", "--config", args.config, "--out", str(out),
                               "--json"], capture_output=True, text=True)
        wall = time.monotonic() - t0
        if proc.returncode not in (0, 3):
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        s = json.loads(proc.stdout)
    necessary = s["measured_s"] + s["cooldown_s"] + s["load_s"]
    print(f"config {args.config}: {s['n_points']} points, {s['n_runs_this_session']} runs, status {s['status']}")
    print(f"wall {wall:.2f} s (process) | measured windows {s['measured_s']:.2f} s + cooldowns {s['cooldown_s']:.2f} s "
          f"+ model loads {s['load_s']:.2f} s = {necessary:.2f} s | idle baseline {s['idle_s']:.2f} s")
    ratio = wall / necessary
    ratio_idle = wall / (necessary + s["idle_s"])
    print(f"wall / (windows + cooldowns + loads)        = {ratio:.3f}  (target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    print(f"wall / (windows + cooldowns + loads + idle) = {ratio_idle:.3f}")
    print(f"model loads {s['model_loads']} vs load groups {s['load_groups']}: "
          f"{'equal' if s['model_loads'] == s['load_groups'] else 'DIFFERENT'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
