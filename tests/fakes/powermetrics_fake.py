"""A stand-in for macOS ``powermetrics -f plist`` on machines without it (tests install it as an executable).

It takes powermetrics' own arguments (``--samplers S -f plist -i MS [-n N]``) and writes one plist
document per interval, laid out like the Apple Silicon output of powermetrics(1): a top-level dict with
``elapsed_ns``, ``timestamp``, ``processor`` (clusters, ``cpu_energy``/``gpu_energy``/``ane_energy`` in
mJ over the sample, ``*_power`` in mW, ``combined_power``) and a ``gpu`` dict. Documents are followed by
a NUL byte, except when a single sample is asked for (``-n 1``). ``elapsed_ns`` is the real time since
the previous sample, and energies are constant power x that window (whole mJ, as powermetrics prints).

Behaviour, from the environment:

``FAKE_PM_CPU_MW`` / ``FAKE_PM_GPU_MW`` / ``FAKE_PM_ANE_MW``  constant powers (default 4000 / 1500 / 500)
``FAKE_PM_LAYOUT``   ``full`` (default), ``no_gpu_dict`` (no top-level ``gpu`` dict), ``gpu_dict_only``
                     (``gpu_energy`` only inside ``gpu``), ``package`` (adds ``package_energy``),
                     ``power_only`` (``*_power`` without ``*_energy``)
``FAKE_PM_JITTER``   the sample window varies: interval x (1 +/- this fraction), deterministic
``FAKE_PM_DIE_AFTER_S``    exit with code 1 and a message on stderr after this many seconds
``FAKE_PM_STALL_AFTER_S``  stop writing samples (but stay alive) after this many seconds
``FAKE_PM_REFUSE``   ``root``: powermetrics' own refusal when not run as root; ``sudo``: sudo -n's
                     refusal when a password would be needed (both exit 1 before any sample)
``FAKE_PM_ARGV_LOG`` append the arguments (JSON) to this file
"""

import json
import os
import plistlib
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def install(bin_dir):
    """This file as an executable named ``powermetrics`` in ``bin_dir`` (shebang: the running interpreter)."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "powermetrics"
    exe.write_text(f"#!{sys.executable}\n" + Path(__file__).read_text())
    exe.chmod(0o755)
    return exe


def parse_args(argv):
    opts = {"-n": 0}
    i = 0
    while i < len(argv):
        key = argv[i]
        if key in ("--samplers", "-f", "-i", "-n") and i + 1 < len(argv):
            opts[key] = argv[i + 1]
            i += 2
        else:
            sys.stderr.write(f"powermetrics: unrecognized option {key}\n")
            sys.exit(64)
    if opts.get("-f") != "plist":
        sys.stderr.write("fake powermetrics: only -f plist is implemented\n")
        sys.exit(64)
    return int(opts.get("-i", 5000)), int(opts["-n"]), opts.get("--samplers", "")


def sample(elapsed_ns, layout):
    mw = {p: float(os.environ.get(f"FAKE_PM_{p.upper()}_MW", d)) for p, d in (("cpu", 4000), ("gpu", 1500), ("ane", 500))}
    mj = {p: round(w * elapsed_ns / 1e9) for p, w in mw.items()}
    proc = {"clusters": [{"name": "E-Cluster", "freq_hz": 972e6, "idle_ratio": 0.9, "cpus": []},
                         {"name": "P-Cluster", "freq_hz": 3.2e9, "idle_ratio": 0.4, "cpus": []}]}
    for p in mw:
        if not (layout == "gpu_dict_only" and p == "gpu"):
            if layout != "power_only":
                proc[f"{p}_energy"] = mj[p]
            proc[f"{p}_power"] = mw[p]
    proc["combined_power"] = sum(mw.values())
    if layout == "package":
        proc["package_energy"] = sum(mj.values())
    doc = {"is_delta": True, "elapsed_ns": int(elapsed_ns), "hw_model": "Mac14,6", "kern_osversion": "23F79",
           "timestamp": datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None), "processor": proc}
    if layout != "no_gpu_dict":
        doc["gpu"] = {"freq_hz": 1398.0, "idle_ratio": 0.2, "dvfm_states": []}
        if layout in ("full", "gpu_dict_only", "package"):
            doc["gpu"]["gpu_energy"] = mj["gpu"]
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML)


def refuse(kind):
    if kind == "root":
        sys.stderr.write("powermetrics must be invoked as the superuser\n")
    else:
        sys.stderr.write("sudo: a password is required\n")
    sys.exit(1)


def main(argv):
    log = os.environ.get("FAKE_PM_ARGV_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(argv) + "\n")
    if os.environ.get("FAKE_PM_REFUSE"):
        refuse(os.environ["FAKE_PM_REFUSE"])
    interval_ms, count, _samplers = parse_args(argv)
    layout = os.environ.get("FAKE_PM_LAYOUT", "full")
    jitter = float(os.environ.get("FAKE_PM_JITTER", "0"))
    die_after = float(os.environ.get("FAKE_PM_DIE_AFTER_S", "inf"))
    stall_after = float(os.environ.get("FAKE_PM_STALL_AFTER_S", "inf"))
    out = sys.stdout.buffer
    start = prev = time.monotonic_ns()
    due = start
    k = 0
    while count == 0 or k < count:
        factor = 1.0 + (jitter * (1 if k % 3 == 0 else -1 if k % 3 == 1 else 0.5))
        due += int(interval_ms * 1e6 * factor)
        time.sleep(max(due - time.monotonic_ns(), 0) / 1e9)
        now = time.monotonic_ns()
        if (now - start) / 1e9 > die_after:
            sys.stderr.write("powermetrics: lost connection to the power sampler\n")
            sys.exit(1)
        if (now - start) / 1e9 > stall_after:
            time.sleep(3600)
        out.write(sample(now - prev, layout) + (b"" if count == 1 else b"\x00"))
        out.flush()
        prev = now
        k += 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
