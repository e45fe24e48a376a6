"""The sampler: a background thread in the measuring (parent) process that reads every meter.

Never run it in the inference worker: the worker's native code would stall it, and a crash there
must not take the measurement down. The thread reads every opened meter each ``period_s``
(default 20 ms; 10 ms = 100 Hz works), records every reading and its scheduling jitter (actual
minus intended time), and keeps going when a read fails (the error is recorded; a meter that keeps
failing -- a GPU that fell off the bus -- is retried once a second). The caller is never blocked
by reads, except :meth:`Sampler.mark`, which reads the *counter* meters right now so that a run's
boundaries have their own reads (attribution then interpolates over microseconds, not a period).

Memory: readings accumulate until :meth:`Sampler.drop_before`; a sweep calls it after each run.
"""

from __future__ import annotations

import bisect
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from energybench.energy import UNIT_ENERGY, UNIT_POWER, domain_keys, make_series, peak_interval_ns
from energybench.meters.base import Domain, PowerMeter, Reading
from energybench.results import SAMPLE_AUX_COLUMNS, SAMPLES_SCHEMA

DEFAULT_PERIOD_S = 0.02
#: After this many consecutive failed reads a meter is read only every RETRY_FAILED_S.
FAILURES_BEFORE_BACKOFF = 5
RETRY_FAILED_S = 1.0
#: Keep at most this many error records (later failures are not recorded).
MAX_ERRORS_KEPT = 200


@dataclass(frozen=True)
class SampleError:
    """A failed read: when, which meter, and the message."""

    t_ns: int
    meter: str
    message: str


class _Track:
    """Readings of one meter, in time order, guarded by the meter's lock."""

    def __init__(self, meter: PowerMeter, domains: Sequence[Domain]) -> None:
        self.meter = meter
        self.domains = list(domains)
        #: a meter whose readings describe the past (``data_delay_s``: powermetrics emits each sample at
        #: its end) is never read for a boundary; windows wait up to that long for its data instead
        self.delay_ns = int(float(getattr(meter, "data_delay_s", 0.0) or 0.0) * 1e9)
        self.is_counter = any(d.kind == "energy" for d in self.domains) and not self.delay_ns
        self.lock = threading.Lock()  # one read of this meter at a time (thread vs mark)
        self.t: list[int] = []
        self.readings: list[Reading] = []
        self.failures = 0
        self.next_retry_ns = 0

    def add(self, r: Reading) -> None:
        if self.t and r.t_ns <= self.t[-1]:  # keep strictly increasing (clock ties across threads)
            idx = bisect.bisect_right(self.t, r.t_ns)
            if idx and self.t[idx - 1] == r.t_ns:
                return
            self.t.insert(idx, r.t_ns)
            self.readings.insert(idx, r)
            return
        self.t.append(r.t_ns)
        self.readings.append(r)


def _normalise(meters: Any) -> list[tuple[PowerMeter, list[Domain]]]:
    """Accept a Selection, its ``meters`` (OpenMeter objects), or (meter, domains) pairs."""
    opened = getattr(meters, "opened", meters)
    out = []
    for item in opened:
        if isinstance(item, tuple):
            meter, domains = item
        elif hasattr(item, "domains") and hasattr(item, "meter"):
            meter, domains = item.meter, item.domains
        else:
            raise TypeError(f"the sampler needs opened meters with their domains, got {item!r}: pass the "
                            "Selection from select_meters() (or (meter, domains) pairs)")
        out.append((meter, list(domains)))
    return out


#: Environment variable overriding the sampler thread's nice value (0 = normal priority).
SAMPLER_NICE_ENV = "ENERGYBENCH_SAMPLER_NICE"
DEFAULT_SAMPLER_NICE = 19


def default_sampler_nice() -> int:
    """The sampler thread's nice value: ``$ENERGYBENCH_SAMPLER_NICE`` or 19 (lowest priority).

    Why lowest: when inference keeps every core busy (2 threads on 2 vCPUs here), a sampler that
    wakes 100x a second at normal priority preempts an inference thread and llama.cpp's whole thread
    team waits for it at the next barrier. Measured here (TinyLlama twin, 2 threads, 15 interleaved
    rounds): decode at 0.968x [95% CI 0.940, 1.000] of unsampled speed at nice 0, 0.967x at nice 10,
    1.005x [0.956, 1.015] at nice 19. The price at nice 19 is timing, not energy: under full load
    about a third of the 100 Hz ticks are skipped (each reading keeps its exact timestamp, skipped
    ticks are counted, jitter recorded per run), while counters are still read exactly at every
    window boundary by :meth:`Sampler.mark` on the caller's thread. When a core is free (fewer
    inference threads than cores, GPU offload) the sampler runs on time at any nice value.
    """
    raw = os.environ.get(SAMPLER_NICE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_SAMPLER_NICE
    try:
        return max(-20, min(19, int(raw)))
    except ValueError:
        return DEFAULT_SAMPLER_NICE


def _set_thread_nice(nice: int) -> None:
    """Set the calling thread's nice value (Linux gives every thread its own); best effort."""
    if nice == 0 or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):
        pass


class Sampler:
    """Reads opened meters on a background thread; see the module docstring."""

    def __init__(self, meters: Any, *, period_s: float = DEFAULT_PERIOD_S, jitter_keep: int = 1_000_000,
                 nice: int | None = None) -> None:
        if not (period_s > 0):
            raise ValueError(f"period_s must be > 0, not {period_s!r}")
        self.period_s = float(period_s)
        self.nice = default_sampler_nice() if nice is None else int(nice)
        self._tracks = [_Track(m, d) for m, d in _normalise(meters)]
        self._keys = domain_keys(self.domains)
        self._jitter: deque[tuple[int, int]] = deque(maxlen=jitter_keep)  # (intended_ns, jitter_ns)
        self._jlock = threading.Lock()
        self._errors: list[SampleError] = []
        self.n_missed_ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def domains(self) -> list[Domain]:
        return [d for t in self._tracks for d in t.domains]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Sampler:
        """Start the thread; without a meter there is nothing to read, and no thread starts."""
        if self.running or not self._tracks:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="energybench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ reading
    def _read(self, track: _Track, now_ns: int | None = None) -> Reading | None:
        now = now_ns if now_ns is not None else time.monotonic_ns()
        if track.failures >= FAILURES_BEFORE_BACKOFF and now < track.next_retry_ns:
            return None
        with track.lock:
            try:
                r = track.meter.read()
            except Exception as exc:  # noqa: BLE001 - any failing meter is recorded, never fatal
                track.failures += 1
                track.next_retry_ns = now + int(RETRY_FAILED_S * 1e9)
                self._record_error(track.meter.name, exc)
                return None
            track.failures = 0
            track.add(r)
            return r

    def _record_error(self, meter: str, exc: BaseException) -> None:
        if len(self._errors) < MAX_ERRORS_KEPT:
            msg = getattr(exc, "one_line", None)
            text = msg() if callable(msg) else f"{type(exc).__name__}: {exc}"
            self._errors.append(SampleError(time.monotonic_ns(), meter, text))

    def _loop(self) -> None:
        _set_thread_nice(self.nice)
        period_ns = int(self.period_s * 1e9)
        start = time.monotonic_ns()
        k = 0
        while not self._stop.is_set():
            intended = start + k * period_ns
            now = time.monotonic_ns()
            if intended > now:
                if self._stop.wait((intended - now) / 1e9):
                    break
                now = time.monotonic_ns()
            with self._jlock:
                self._jitter.append((intended, now - intended))
            for track in self._tracks:
                self._read(track, now)
            # next tick; skip the ticks we are already late for (recorded, never bunched up)
            k += 1
            after = time.monotonic_ns()
            behind = (after - (start + k * period_ns)) // period_ns
            if behind > 0:
                k += int(behind)
                self.n_missed_ticks += int(behind)

    def read_all(self) -> None:
        """Read every meter now, in the calling thread."""
        for track in self._tracks:
            self._read(track)

    def mark(self) -> int:
        """Read every counter meter now (a window boundary) and return the boundary time (monotonic ns).

        The time returned is that of the boundary reads themselves (their mean when several counter
        meters are read), so a counter's energy at the boundary is its read value, not an
        interpolation towards the previous sample. Without counter meters: the clock now.
        """
        t = time.monotonic_ns()
        times = []
        for track in self._tracks:
            if track.is_counter:
                r = self._read(track, t)
                if r is not None:
                    times.append(r.t_ns)
        return round(sum(times) / len(times)) if times else t

    def measure_idle(self, seconds: float, run_id: str = "idle") -> tuple[pl.DataFrame, int, int]:
        """Wait ``seconds`` between two boundary reads while the machine idles (the sampler running).

        Returns the window's SAMPLES_SCHEMA frame and its bounds ``(frame, t0_ns, t1_ns)``, ready for
        :func:`energybench.energy.idle_baseline`. Every meter is read once more after the window, so
        a power meter (not read by :meth:`mark`) has a sample past its end even when a tick is late.
        """
        if not seconds > 0:
            raise ValueError(f"an idle window needs seconds > 0, not {seconds!r}")
        t0 = self.mark()
        time.sleep(seconds)
        t1 = self.mark()
        self.read_all()
        return self.to_frame(run_id, t0, t1), t0, t1

    # ------------------------------------------------------------------ access
    @property
    def errors(self) -> list[SampleError]:
        return list(self._errors)

    def readings(self, meter: str) -> list[Reading]:
        for track in self._tracks:
            if track.meter.name == meter:
                with track.lock:
                    return list(track.readings)
        raise KeyError(meter)

    def samples_between(self, t0_ns: int, t1_ns: int, margin_ns: int = 0) -> dict[str, list[Reading]]:
        """Readings per meter in ``[t0 - margin, t1 + margin]`` plus the nearest one before and after.

        That is everything needed to attribute the window (the outer readings bound the
        interpolation at both ends).
        """
        lo, hi = int(t0_ns) - int(margin_ns), int(t1_ns) + int(margin_ns)
        out: dict[str, list[Reading]] = {}
        for track in self._tracks:
            with track.lock:
                i = max(bisect.bisect_left(track.t, lo) - 1, 0)
                j = min(bisect.bisect_right(track.t, hi) + 1, len(track.t))
                out[track.meter.name] = list(track.readings[i:j])
        return out

    def to_frame(self, run_id: str, t0_ns: int, t1_ns: int, margin_ns: int = 0) -> pl.DataFrame:
        """The readings of a window as a SAMPLES_SCHEMA frame (aux channels filled where present).

        A delayed meter (``data_delay_s``) is first given up to that long to deliver a reading at or
        after ``t1_ns``; one that does not (it stalled or died) leaves the window uncovered.
        """
        self._await_delayed(int(t1_ns))
        by_meter = self.samples_between(t0_ns, t1_ns, margin_ns)
        return frames_concat(
            readings_to_frame(run_id, t.meter.name, {d.name: d.kind for d in t.domains}, by_meter.get(t.meter.name, []))
            for t in self._tracks)

    def _await_delayed(self, t_ns: int) -> None:
        """Give every delayed meter until ``t_ns`` + its delay to deliver a reading at or after ``t_ns``."""
        for track in self._tracks:
            while track.delay_ns and not (track.t and track.t[-1] >= t_ns):
                self._read(track)
                if time.monotonic_ns() >= t_ns + track.delay_ns:
                    break
                time.sleep(0.005)

    def latest_power_w(self) -> dict[str, float]:
        """Current power per domain key (W), for a live view.

        Power domains: the last sample. Counters: the average over the most recent span of at least
        max(10 update periods, one sample period) (see :func:`energybench.energy.peak_interval_ns`).
        """
        out: dict[str, float] = {}
        for track in self._tracks:
            with track.lock:
                recent = track.readings[-2000:]
            if not recent:
                continue
            for d in track.domains:
                key = self._keys[(d.meter, d.name)]
                pts = [(r.t_ns, r.values[d.name]) for r in recent if r.values.get(d.name) is not None]
                if not pts:
                    continue
                if d.kind == "power":
                    out[key] = float(pts[-1][1])
                    continue
                if len(pts) < 2:
                    continue
                s = make_series([p[0] for p in pts], [p[1] for p in pts], "energy")
                span = peak_interval_ns(d, s)
                t_end = int(s.t_ns[-1])
                i = int(np.searchsorted(s.t_ns, t_end - span, side="right")) - 1
                i = max(min(i, len(s) - 2), 0)
                dt = (t_end - int(s.t_ns[i])) / 1e9
                if dt > 0:
                    out[key] = float((s.value[-1] - s.value[i]) / dt)
        return out

    def jitter_stats(self, t0_ns: int | None = None, t1_ns: int | None = None) -> dict[str, float | int | None]:
        """Scheduling jitter of the sampler's ticks (actual - intended), in ms: p50, p95, p99, max."""
        with self._jlock:
            data = list(self._jitter)
        if t0_ns is not None or t1_ns is not None:
            lo = -(2**63) if t0_ns is None else int(t0_ns)
            hi = 2**63 - 1 if t1_ns is None else int(t1_ns)
            data = [x for x in data if lo <= x[0] <= hi]
        if not data:
            return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None,
                    "missed_ticks": self.n_missed_ticks}
        j = np.array([x[1] for x in data], dtype=np.float64) / 1e6
        return {"n": int(j.size), "p50_ms": float(np.percentile(j, 50)), "p95_ms": float(np.percentile(j, 95)),
                "p99_ms": float(np.percentile(j, 99)), "max_ms": float(j.max()), "missed_ticks": self.n_missed_ticks}

    def drop_before(self, t_ns: int) -> int:
        """Forget readings older than ``t_ns`` (keeping the last one before it); returns how many went."""
        dropped = 0
        for track in self._tracks:
            with track.lock:
                i = max(bisect.bisect_left(track.t, int(t_ns)) - 1, 0)
                if i:
                    del track.t[:i]
                    del track.readings[:i]
                    dropped += i
        with self._jlock:
            while self._jitter and self._jitter[0][0] < t_ns:
                self._jitter.popleft()
        return dropped

def frames_concat(frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate SAMPLES_SCHEMA frames (empty input gives an empty frame)."""
    frames = [f for f in frames if f is not None and f.height]
    if not frames:
        return pl.DataFrame(schema=SAMPLES_SCHEMA)
    return pl.concat(frames, how="vertical")


def readings_to_frame(run_id: str, meter: str, domains: Mapping[str, str], readings: Iterable[Reading]) -> pl.DataFrame:
    """SAMPLES_SCHEMA frame from bare readings (``domains``: name -> kind)."""
    cols: dict[str, list[Any]] = {c: [] for c in SAMPLES_SCHEMA}
    for r in readings:
        for dom, value in r.values.items():
            if dom not in domains or value is None:
                continue
            aux = r.aux.get(dom, {}) if r.aux else {}
            cols["run_id"].append(run_id)
            cols["meter"].append(meter)
            cols["domain"].append(dom)
            cols["t_ns"].append(r.t_ns)
            cols["value"].append(float(value))
            cols["unit"].append(UNIT_ENERGY if domains[dom] == "energy" else UNIT_POWER)
            for c in SAMPLE_AUX_COLUMNS:
                v = aux.get(c)
                cols[c].append(None if v is None else float(v))
    return pl.DataFrame(cols, schema=SAMPLES_SCHEMA)
