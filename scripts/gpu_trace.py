#!/usr/bin/env python3
"""Record an NVML trace of one GPU around a load command (the data half of scripts/gpu_check.sh).

Needs only the standard library, ``pynvml`` (nvidia-ml-py) and energybench's ``src/`` on
``PYTHONPATH``: no numpy, no llama.cpp, so it runs on a bare GPU machine.

Phases: ``idle`` (``--idle-s``), ``load`` (the ``--load-cmd`` subprocess runs), ``tail``
(``--tail-s``). Every ``--sample-ms`` one row is written with, for GPU ``--device``:

* ``counter_j``: energybench's :class:`NvmlMeter` value (joules since open from
  ``nvmlDeviceGetTotalEnergyConsumption``; empty if this GPU has no counter) and its aux channels;
* ``instant_w``: ``nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)`` in W (empty if unsupported);
* ``average_w``: ``nvmlDeviceGetPowerUsage`` in W (a 1 s average on Ampere and newer);
* ``read_us``: how long the meter's ``read()`` took.

The load command may print a JSON line ``{"t_start_ns": ..., "t_end_ns": ...}`` with
CLOCK_MONOTONIC times (the clock of ``time.monotonic_ns()`` on Linux) bracketing its real work;
otherwise the process start/exit times are used. Output: ``OUT/trace.csv``, ``OUT/meta.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

FIELDS = ("t_ns", "phase", "counter_j", "instant_w", "average_w", "read_us", "sm_clock_mhz",
          "mem_clock_mhz", "temperature_c", "pstate", "throttle_reasons", "mem_used_bytes", "error")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--device", type=int, default=0, help="NVML index of the GPU")
    p.add_argument("--idle-s", type=float, default=3.0)
    p.add_argument("--tail-s", type=float, default=3.0)
    p.add_argument("--sample-ms", type=float, default=10.0)
    p.add_argument("--load-cmd", required=True, help="command that loads the GPU (shell-split)")
    p.add_argument("--load-timeout-s", type=float, default=120.0, help="kill the load after this")
    return p.parse_args(argv)


class _Load:
    """The load subprocess, its output and its own timing line."""

    def __init__(self, cmd: str, timeout_s: float) -> None:
        self.cmd = cmd
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.t_spawn_ns = 0
        self.t_exit_ns = 0
        self.stdout = ""
        self.stderr = ""
        self.timing: dict[str, Any] = {}
        self.returncode: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.t_spawn_ns = time.monotonic_ns()
        self.proc = subprocess.Popen(shlex.split(self.cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        assert self.proc is not None
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stdout, self.stderr = self.proc.communicate()
            self.stderr += f"\n[gpu_trace] load killed after {self.timeout_s} s"
        self.t_exit_ns = time.monotonic_ns()
        self.returncode = self.proc.returncode
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.timing = json.loads(line)
                except json.JSONDecodeError:
                    pass

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


def _pynvml_power(pynvml: Any, handle: Any) -> tuple[float | None, float | None]:
    """(instant W, average W) straight from pynvml; None where this GPU does not answer."""
    instant = average = None
    try:
        fv = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0]
        if fv.nvmlReturn == pynvml.NVML_SUCCESS:
            from energybench.meters.nvml import _field_number

            instant = _field_number(fv) / 1000.0
    except pynvml.NVMLError:
        pass
    try:
        average = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
    except pynvml.NVMLError:
        pass
    return instant, average


def record(args: argparse.Namespace) -> dict[str, Any]:
    import pynvml

    from energybench.errors import MeterError
    from energybench.meters.nvml import NvmlMeter, gpu_inventory

    args.out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"argv": sys.argv, "device": args.device, "sample_ms": args.sample_ms,
                            "pynvml_file": getattr(pynvml, "__file__", None)}
    meta["inventory"] = gpu_inventory()
    meter = NvmlMeter(devices=[args.device])
    probe = meter.probe()
    meta["probe"] = {"available": probe.available, "reason": probe.reason, "fix": probe.fix}
    if not probe.available:
        raise MeterError(f"NVML meter not available: {probe.reason}", hint=probe.fix)
    domains = meter.open()
    meta["domains"] = [d.to_dict() for d in domains]
    domain = f"gpu-{args.device}"
    counter = domains[0].kind == "energy"
    pynvml.nvmlInit()  # our own reference for the power readings (refcounted with the meter's)
    handle = pynvml.nvmlDeviceGetHandleByIndex(args.device)

    load = _Load(args.load_cmd, args.load_timeout_s)
    period_ns = int(args.sample_ms * 1e6)
    t0 = time.monotonic_ns()
    phase = "idle"
    tail_end: int | None = None
    next_t = t0
    rows: list[dict[str, Any]] = []
    try:
        while True:
            now = time.monotonic_ns()
            if phase == "idle" and now - t0 >= args.idle_s * 1e9:
                load.start()
                phase = "load"
            elif phase == "load" and not load.running():
                phase = "tail"
                tail_end = time.monotonic_ns() + int(args.tail_s * 1e9)
            elif phase == "tail" and tail_end is not None and now >= tail_end:
                break
            row: dict[str, Any] = {"phase": phase, "error": ""}
            ts = time.monotonic_ns()
            try:
                r = meter.read()
                te = time.monotonic_ns()
                row["t_ns"] = r.t_ns
                row["read_us"] = (te - ts) / 1e3
                if counter:
                    row["counter_j"] = r.values[domain]
                row.update(r.aux.get(domain, {}))
            except MeterError as exc:
                row["t_ns"] = ts
                row["error"] = exc.one_line()
            row["instant_w"], row["average_w"] = _pynvml_power(pynvml, handle)
            rows.append(row)
            next_t += period_ns
            delay = (next_t - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic_ns()
    finally:
        load.join()
        meter.close()
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass

    meta["load"] = {"cmd": args.load_cmd, "returncode": load.returncode, "t_spawn_ns": load.t_spawn_ns,
                    "t_exit_ns": load.t_exit_ns, "timing": load.timing,
                    "stdout_tail": load.stdout[-2000:], "stderr_tail": load.stderr[-2000:]}
    meta["load_window_ns"] = [int(load.timing.get("t_start_ns") or load.t_spawn_ns),
                              int(load.timing.get("t_end_ns") or load.t_exit_ns)]
    meta["n_rows"] = len(rows)
    with open(args.out / "trace.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in FIELDS})
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        meta = record(args)
    except Exception as exc:  # noqa: BLE001 - say what failed, in one line, and exit non-zero
        line = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
        print(f"gpu_trace: FAILED: {line}", file=sys.stderr)
        return 1
    load = meta["load"]
    print(f"gpu_trace: {meta['n_rows']} samples, load exit code {load['returncode']}, "
          f"trace in {args.out / 'trace.csv'}")
    if load["returncode"] != 0:
        print(f"gpu_trace: load command failed: {load['stderr_tail'][-500:]}", file=sys.stderr)
    return 0 if load["returncode"] == 0 else 2


if __name__ == "__main__":
    # energybench's src/ next to this script, unless the caller already put energybench on the path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    sys.exit(main())
