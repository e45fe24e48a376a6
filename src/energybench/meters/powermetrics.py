"""Apple Silicon CPU, GPU and ANE energy from macOS ``powermetrics`` (a child process; needs root).

``powermetrics --samplers cpu_power,gpu_power,ane_power -f plist -i N`` (powermetrics(1)) writes one
property list per sample interval of N ms. Facts (powermetrics(1); the same stream is read by asitop
and CodeCarbon):

* documents follow each other separated by a NUL byte after ``</plist>``; a single sample (``-n 1``)
  has none. We split on ``</plist>`` and drop NULs and blanks between documents, so a sample is used
  as soon as its closing tag arrives, wherever the NUL falls;
* a sample covers ``elapsed_ns``; ``processor.cpu_energy``, ``gpu_energy`` and ``ane_energy`` are
  millijoules over that window, the ``*_power`` keys milliwatts, ``combined_power`` their sum. Some
  macOS versions have no top-level ``gpu`` dictionary (``gpu_energy`` is then only in
  ``processor``), older ones have it only there; ``package_energy`` is usually absent;
* it runs as root only ("powermetrics must be invoked as the superuser").

Domains: ``cpu`` (component cpu), ``gpu`` (gpu), ``ane`` (accelerator: the Neural Engine), ``dram``
where a macOS version reports ``dram_energy``, and ``soc``, the combined total (``package_energy``
when present, else ``combined_power``). ``soc`` has component ``psys``, which energybench counts only
when no CPU domain is measured: it is reported beside its parts and never added to them.

Each domain is a cumulative counter (joules since :meth:`PowermetricsMeter.open`) that advances at
each sample's end: the previous sample's end plus ``elapsed_ns``, but never later than the sample's
arrival (so the time powermetrics takes to write one sample does not stretch the window before it;
the first sample is placed at its arrival). A sample arrives after its window, so the data for a moment comes up
to one interval later: ``data_delay_s`` tells the sampler, which never reads this meter for a window
boundary and lets a window's end wait for the sample that covers it. A child that exits, stalls or
sends a sample it cannot parse makes :meth:`~PowermetricsMeter.read` raise -- never a silent zero.

Which command runs: ``$ENERGYBENCH_POWERMETRICS`` (a path, or a name looked up on PATH) runs as
given, on any OS -- a wrapper that elevates itself, or a test stand-in. Otherwise, on Apple Silicon
macOS, ``/usr/bin/powermetrics`` when running as root, else ``sudo -n /usr/bin/powermetrics`` (sudo
never prompts: without a sudoers rule it fails, and the error names the exact rule to add).

Not here: IOReport's "Energy Model" channels (what macmon and Zeus read without root). They need a
ctypes layer over a private framework (CoreFoundation objects, IOReport subscriptions and deltas)
that a Linux test could only exercise against stand-ins of both; it belongs with a real Apple
Silicon machine to test on.
"""

from __future__ import annotations

import getpass
import os
import platform
import plistlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from energybench.errors import MeterError
from energybench.meters.base import Component, Domain, ProbeResult, Reading

METER_NAME = "powermetrics"
ENV_EXECUTABLE = "ENERGYBENCH_POWERMETRICS"
SYSTEM_EXECUTABLE = "/usr/bin/powermetrics"
SAMPLERS = "cpu_power,gpu_power,ane_power"
#: Sample interval (ms): every sample costs powermetrics some CPU time; 100 ms keeps the energy of
#: a 1 s window within about one tenth of an interval at each end.
DEFAULT_INTERVAL_MS = 100
#: How long the first sample may take (powermetrics starts its samplers first).
START_TIMEOUT_S = 10.0
#: No sample for this many intervals (and at least STALE_MIN_S): the child has stalled.
STALE_INTERVALS = 5
STALE_MIN_S = 1.0

_END = b"</plist>"
_BETWEEN = b"\x00\r\n\t "

NOT_MAC_FIX = (f"powermetrics exists only on Apple Silicon macOS; elsewhere use rapl/nvml/hwmon, or set "
               f"{ENV_EXECUTABLE} to a powermetrics-compatible executable")

#: component of each domain; the plist key prefix it is read from
_PARTS: dict[str, Component] = {"cpu": "cpu", "gpu": "gpu", "ane": "accelerator", "dram": "dram"}


def powermetrics_args(interval_ms: int) -> list[str]:
    """The arguments energybench passes to powermetrics (also what the sudoers rule allows)."""
    return ["--samplers", SAMPLERS, "-f", "plist", "-i", str(int(interval_ms))]


def sudoers_line(interval_ms: int, user: str | None = None) -> str:
    """The sudoers rule that lets ``user`` run exactly our powermetrics command without a password.

    sudoers(5): a command with arguments matches only those arguments; ``,`` must be escaped.
    """
    args = " ".join(powermetrics_args(interval_ms)).replace(",", "\\,")
    return f"{user or getpass.getuser()} ALL=(root) NOPASSWD: {SYSTEM_EXECUTABLE} {args}"


def sudoers_fix(interval_ms: int) -> str:
    return ("powermetrics needs root: run energybench as root, or allow exactly this command without a "
            f"password (`sudo visudo -f /etc/sudoers.d/energybench`, then add the line) {sudoers_line(interval_ms)}")


def resolve_command(interval_ms: int, *, env: dict[str, str] | None = None, system: str | None = None,
                    machine: str | None = None, euid: int | None = None) -> tuple[list[str] | None, str]:
    """``(argv, where)`` of the powermetrics command to run here, or ``(None, why not)``."""
    env = os.environ if env is None else env
    args = powermetrics_args(interval_ms)
    override = env.get(ENV_EXECUTABLE)
    if override:
        exe = override if os.sep in override else shutil.which(override)
        if not exe or not os.access(exe, os.X_OK):
            return None, f"${ENV_EXECUTABLE}={override!r} is not an executable file"
        return [exe, *args], f"{exe} (from ${ENV_EXECUTABLE})"
    system = system or sys.platform
    machine = machine or platform.machine()
    if system != "darwin":
        return None, f"powermetrics is macOS only (this is {system})"
    if machine != "arm64":
        return None, f"this Mac is {machine}, not Apple Silicon (Intel Macs: use the powergadget meter)"
    if not os.path.exists(SYSTEM_EXECUTABLE):
        return None, f"{SYSTEM_EXECUTABLE} not found"
    if (os.geteuid() if euid is None else euid) == 0:
        return [SYSTEM_EXECUTABLE, *args], SYSTEM_EXECUTABLE
    return ["sudo", "-n", SYSTEM_EXECUTABLE, *args], f"sudo -n {SYSTEM_EXECUTABLE}"


def failure(stderr: str, returncode: int | None, interval_ms: int) -> tuple[str, str | None]:
    """(reason, fix) for a powermetrics child that ended before (or instead of) its samples."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else "no message"
    if "password is required" in text or "a terminal is required" in text:
        return f"sudo needs a password to run powermetrics ({last})", sudoers_fix(interval_ms)
    if "superuser" in text or "must be run as root" in text:
        return f"powermetrics must run as root ({last})", sudoers_fix(interval_ms)
    return f"powermetrics exited (code {returncode}): {last}", None


# ----------------------------------------------------------------------------- the stream


class PlistStream:
    """Cuts powermetrics' output, fed in arbitrary chunks, into complete plist documents."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        docs: list[bytes] = []
        while (end := self._buf.find(_END)) >= 0:
            end += len(_END)
            docs.append(self._buf[:end].lstrip(_BETWEEN))
            self._buf = self._buf[end:].lstrip(_BETWEEN)
        return docs


def _mj(d: dict[str, Any], part: str, elapsed_ns: int) -> float | None:
    """``{part}_energy`` (mJ), else ``{part}_power`` (mW) x the sample window; None when neither."""
    if f"{part}_energy" in d:
        return float(d[f"{part}_energy"])
    if f"{part}_power" in d:
        return float(d[f"{part}_power"]) * elapsed_ns / 1e9
    return None


@dataclass(frozen=True)
class Sample:
    """One powermetrics sample: its window and the energy (J) of each domain over it."""

    elapsed_ns: int
    energy_j: dict[str, float]
    soc_source: str  # which key the soc total came from


def parse_sample(doc: bytes) -> Sample:
    """The energies of one plist document (raises ValueError when it is not a cpu_power sample)."""
    try:
        d = plistlib.loads(doc)
        elapsed = int(d["elapsed_ns"])
        proc = d["processor"]
    except (plistlib.InvalidFileException, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a powermetrics cpu_power sample: {type(exc).__name__}: {exc}") from exc
    gpu_dict = d.get("gpu") if isinstance(d.get("gpu"), dict) else {}
    mj: dict[str, float] = {}
    for part in _PARTS:
        value = _mj(proc, part, elapsed)
        if value is None and part == "gpu":
            value = _mj(gpu_dict, "gpu", elapsed)
        if value is not None:
            mj[part] = value
    if "cpu" not in mj:
        raise ValueError("the sample has neither processor.cpu_energy nor cpu_power")
    if "package_energy" in proc:
        mj["soc"], source = float(proc["package_energy"]), "processor.package_energy"
    elif "combined_power" in proc:
        mj["soc"], source = float(proc["combined_power"]) * elapsed / 1e9, "processor.combined_power x elapsed_ns"
    else:
        mj["soc"], source = sum(v for k, v in mj.items() if k != "dram"), "sum of cpu, gpu and ane"
    return Sample(elapsed_ns=elapsed, energy_j={k: v / 1000.0 for k, v in mj.items()}, soc_source=source)


def domains_for(sample: Sample, interval_ms: int, where: str) -> list[Domain]:
    """The meter's domains, from the keys its first sample has."""
    period = interval_ms / 1000.0
    out = []
    for name, component in (*_PARTS.items(), ("soc", "psys")):
        if name not in sample.energy_j:
            continue
        key = sample.soc_source if name == "soc" else f"processor.{name}_energy (mJ per sample)"
        out.append(Domain(name=name, kind="energy", meter=METER_NAME, component=component,
                          source=f"powermetrics {key}, every {interval_ms} ms via {where}; joules since open",
                          update_period_s=period))
    return out


# ----------------------------------------------------------------------------- the child process


class _Child:
    """A running powermetrics: a reader thread turns its samples into cumulative joules."""

    def __init__(self, argv: list[str], interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=self._stderr)
        except OSError as exc:
            self._stderr.close()
            raise MeterError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
        self.cond = threading.Condition()
        self.totals: dict[str, float] = {}
        self.t_ns: int | None = None
        self.first: Sample | None = None
        self.error: MeterError | None = None
        self._thread = threading.Thread(target=self._pump, name="energybench-powermetrics", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        stream, fd = PlistStream(), self.proc.stdout.fileno()  # type: ignore[union-attr]
        while chunk := os.read(fd, 65536):
            for doc in stream.feed(chunk):
                arrived = time.monotonic_ns()
                try:
                    sample = parse_sample(doc)
                except ValueError as exc:
                    self._fail(MeterError(f"powermetrics sent a sample energybench cannot read: {exc}"))
                    return
                self._add(sample, arrived)
        code = self.proc.wait()
        reason, fix = failure(self.stderr_text(), code, self.interval_ms)
        self._fail(MeterError(reason if self.first is None else f"powermetrics stopped mid-run: {reason}", hint=fix))

    def _add(self, sample: Sample, arrived: int) -> None:
        with self.cond:
            if self.error is not None:
                return
            if self.first is None:
                self.first = sample
                self.totals = dict.fromkeys(sample.energy_j, 0.0)
            else:
                missing = set(self.totals) - set(sample.energy_j)
                if missing:
                    self.error = MeterError(f"a powermetrics sample lacks {', '.join(sorted(missing))}")
                    self.cond.notify_all()
                    return
                for k in self.totals:
                    self.totals[k] += sample.energy_j[k]
            # the window's end: the previous end + elapsed_ns, never later than the arrival (a sample
            # written late must not stretch the one before it); the first one: its arrival
            self.t_ns = arrived if self.t_ns is None else min(self.t_ns + sample.elapsed_ns, arrived)
            self.cond.notify_all()

    def _fail(self, error: MeterError) -> None:
        with self.cond:
            self.error = self.error or error
            self.cond.notify_all()

    def stderr_text(self) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read()[-4000:].decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def wait_first(self, timeout_s: float) -> Sample:
        with self.cond:
            self.cond.wait_for(lambda: self.first is not None or self.error is not None, timeout_s)
            if self.first is not None and self.error is None:
                return self.first
            if self.error is not None:
                raise self.error
        raise MeterError(f"powermetrics sent no sample within {timeout_s:.0f} s",
                         hint="check that `powermetrics -f plist -i 100` prints samples on this Mac")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # under sudo: sudo relays the signal to powermetrics
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(timeout=3)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


# ----------------------------------------------------------------------------- the meter


class PowermetricsMeter:
    """Apple Silicon energy through powermetrics; see the module docstring."""

    name = METER_NAME
    description = "Apple Silicon CPU, GPU and ANE energy from macOS powermetrics (needs root)"
    estimate = False

    def __init__(self, interval_ms: int = DEFAULT_INTERVAL_MS) -> None:
        self.interval_ms = int(interval_ms)
        self._child: _Child | None = None
        self._domains: list[Domain] = []
        self._lock = threading.Lock()

    @property
    def data_delay_s(self) -> float:
        """Data for a moment is complete at most this long after it (a sample ends, then is written)."""
        return 2 * self.interval_ms / 1000.0 + 0.25

    def probe(self) -> ProbeResult:
        argv, where = resolve_command(self.interval_ms)
        if argv is None:
            return ProbeResult(False, where, NOT_MAC_FIX)
        try:
            child = _Child(argv, self.interval_ms)
        except MeterError as exc:
            return ProbeResult(False, exc.message, exc.hint)
        try:
            first = child.wait_first(START_TIMEOUT_S + self.interval_ms / 1000.0)
        except MeterError as exc:
            return ProbeResult(False, exc.message, exc.hint)
        finally:
            child.stop()
        names = ", ".join(d.name for d in domains_for(first, self.interval_ms, where))
        return ProbeResult(True, f"{where}, every {self.interval_ms} ms: {names}")

    def open(self) -> list[Domain]:
        argv, where = resolve_command(self.interval_ms)
        if argv is None:
            raise MeterError(f"powermetrics meter unavailable: {where}", hint=NOT_MAC_FIX)
        child = _Child(argv, self.interval_ms)
        try:
            first = child.wait_first(START_TIMEOUT_S + self.interval_ms / 1000.0)
        except BaseException:
            child.stop()
            raise
        with self._lock:
            self._child, self._domains = child, domains_for(first, self.interval_ms, where)
            return list(self._domains)

    def read(self) -> Reading:
        """Joules since open as of the latest sample, stamped with that sample's end."""
        with self._lock:
            child = self._child
            if child is None:
                raise MeterError("powermetrics meter read before open()")
            with child.cond:
                if child.error is not None:
                    raise child.error
                age_s = (time.monotonic_ns() - int(child.t_ns or 0)) / 1e9
                stale_s = max(STALE_INTERVALS * self.interval_ms / 1000.0, STALE_MIN_S)
                if age_s > stale_s:
                    raise MeterError(f"powermetrics sent no sample for {age_s:.1f} s (one was due every "
                                     f"{self.interval_ms} ms): it has stalled",
                                     hint="run the same powermetrics command by hand to see why; the energy of "
                                          "windows without samples is reported as unknown")
                return Reading(t_ns=int(child.t_ns or 0), values=dict(child.totals))

    def close(self) -> None:
        with self._lock:
            child, self._child, self._domains = self._child, None, []
        if child is not None:
            child.stop()
