"""``energybench measure -- CMD ARGS...``: energy and time of any command, the way ``perf stat -e
power/energy-pkg/`` or Zeus's monitor is used.

The command runs as a child process with inherited stdin/stdout/stderr; the sampler runs in this
(parent) process, with boundary reads right before the child starts and right after it exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from energybench.energy import attribute_run, idle_baseline
from energybench.errors import UsageError
from energybench.meters.registry import Selection
from energybench.sampling import DEFAULT_PERIOD_S, Sampler


@dataclass
class CommandMeasurement:
    """What one command cost. Energies in J, powers in W, times in s (``t_*_ns``: monotonic ns)."""

    argv: list[str]
    returncode: int  # the command's exit status (negative: killed by that signal)
    t_start_ns: int
    t_end_ns: int
    elapsed_s: float
    energy_source: str  # measured | estimate | none
    meters: str
    energy_j: float | None
    energy_net_j: float | None
    avg_power_w: float | None
    peak_power_w: float | None
    idle_power_w: float | None
    domains: list[dict[str, Any]]  # DOMAIN_STRUCT dicts, per domain
    flag_short_window: bool
    flag_estimate: bool
    sample_jitter_p99_ms: float | None
    warnings: list[str] = field(default_factory=list)
    samples: pl.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the samples)."""
        d = {k: v for k, v in self.__dict__.items() if k != "samples"}
        return d


def _resolve(argv: list[str]) -> list[str]:
    if not argv:
        raise UsageError("no command given", hint="usage: energybench measure -- CMD ARGS...")
    exe = argv[0]
    if os.sep in exe or (os.altsep and os.altsep in exe):
        if not os.path.exists(exe):
            raise UsageError(f"command {exe!r} does not exist", hint="check the path")
        return list(argv)
    found = shutil.which(exe)
    if found is None:
        raise UsageError(f"command {exe!r} not found on PATH", hint="check the spelling or give its full path")
    return [found, *argv[1:]]


def measure_command(argv: list[str], selection: Selection, *, period_s: float = DEFAULT_PERIOD_S,
                    idle_s: float = 0.0, run_id: str = "cmd", env: dict[str, str] | None = None,
                    cwd: str | None = None) -> CommandMeasurement:
    """Run ``argv`` to completion while sampling ``selection``'s meters; attribute its energy.

    ``idle_s`` > 0: first measure idle power for that long (the command's net energy is then
    gross minus idle power x its duration). The command's exit code is returned, not raised.
    """
    cmd = _resolve(argv)
    sampler = Sampler(selection, period_s=period_s)
    idle: dict[str, float] = {}
    with sampler:
        if idle_s > 0:
            idle_frame, i0, i1 = sampler.measure_idle(idle_s)
            idle = idle_baseline(idle_frame, sampler.domains, i0, i1)
        t0 = sampler.mark()
        try:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd)
        except OSError as exc:
            raise UsageError(f"cannot start {argv[0]!r}: {exc.strerror or exc}", hint="check the command") from exc
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # the child got the same SIGINT from the terminal: let it finish, then stop too
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        t1 = sampler.mark()
        jitter = sampler.jitter_stats(t0, t1)
        frame = sampler.to_frame(run_id, t0, t1)
    result = attribute_run(selection.domains, frame, t_start_ns=t0, t_end_ns=t1, idle_power_w=idle or None,
                           jitter_p99_ms=jitter["p99_ms"])
    c = result.columns
    warnings = list(selection.warnings) + result.warnings
    warnings += [f"meter read failed ({e.meter}): {e.message}" for e in sampler.errors[:5]]
    if c["flag_short_window"]:
        warnings.append("the command ran for less than 10 update periods of the slowest meter: its energy is coarse")
    return CommandMeasurement(
        argv=list(argv), returncode=code, t_start_ns=t0, t_end_ns=t1, elapsed_s=(t1 - t0) / 1e9,
        energy_source=c["energy_source"], meters=c["meters"], energy_j=c["energy_j"], energy_net_j=c["energy_net_j"],
        avg_power_w=c["avg_power_w"], peak_power_w=c["peak_power_w"], idle_power_w=c["idle_power_w"],
        domains=c["domains"], flag_short_window=bool(c["flag_short_window"]), flag_estimate=bool(c["flag_estimate"]),
        sample_jitter_p99_ms=c["sample_jitter_p99_ms"], warnings=warnings, samples=frame)
