"""The background sampler, with test meters whose readings are analytic functions of the clock.

The meters here stand in for hardware: each read returns the exact energy (or power) of a known
trace at the instant it reads ``time.monotonic_ns()``, so attribution can be checked to 0.5%
whatever the scheduling delays on a shared machine.
"""

from __future__ import annotations

import math
import sys
import threading
import time

import polars as pl
import pytest

from energybench.energy import attribute_run, idle_baseline
from energybench.errors import MeterError
from energybench.meters.base import Domain, ProbeResult, Reading
from energybench.results import SAMPLES_SCHEMA
from energybench.sampling import FAILURES_BEFORE_BACKOFF, Sampler

W = 2 * math.pi * 1.7  # rad/s of the test load


class ClockMeter:
    """Counter (cumulative J) or power (W) of P(t) = p0 + a sin(W t), t since open()."""

    estimate = False
    description = "analytic test meter"

    def __init__(self, name: str, kind: str, p0: float, a: float = 0.0, *, aux: dict | None = None) -> None:
        self.name, self.kind, self.p0, self.a, self.aux = name, kind, p0, a, aux
        self.t_open = 0
        self.domain = f"{name}-0"

    def probe(self) -> ProbeResult:
        return ProbeResult(True)

    def open(self) -> list[Domain]:
        self.t_open = time.monotonic_ns()
        return [Domain(self.domain, self.kind, self.name, "gpu" if self.kind == "power" else "cpu", "test", 0.001)]

    def energy(self, t_ns: int) -> float:
        t = (t_ns - self.t_open) / 1e9
        return self.p0 * t + self.a / W * (1 - math.cos(W * t))

    def power(self, t_ns: int) -> float:
        return self.p0 + self.a * math.sin(W * (t_ns - self.t_open) / 1e9)

    def read(self) -> Reading:
        t = time.monotonic_ns()
        v = self.energy(t) if self.kind == "energy" else self.power(t)
        return Reading(t, {self.domain: v}, {self.domain: dict(self.aux)} if self.aux else {})

    def close(self) -> None:
        pass


class FlakyMeter(ClockMeter):
    """Fails every other read; or, with ``vanish_after``, fails for good (a GPU off the bus)."""

    def __init__(self, name: str, vanish_after: int | None = None) -> None:
        super().__init__(name, "power", 50.0)
        self.calls = 0
        self.vanish_after = vanish_after

    def read(self) -> Reading:
        self.calls += 1
        if self.vanish_after is not None and self.calls > self.vanish_after:
            raise MeterError(f"{self.name}: GPU is lost")
        if self.vanish_after is None and self.calls % 2 == 0:
            raise RuntimeError("transient read failure")
        return super().read()


def opened(*meters):
    return [(m, m.open()) for m in meters]


@pytest.mark.parametrize("period_s", [0.01, 0.02])
def test_sampled_energy_matches_analytic_within_half_percent(period_s):
    counter = ClockMeter("ctr", "energy", 40.0, 25.0)
    power = ClockMeter("pwr", "power", 90.0, 60.0, aux={"temperature_c": 61.0, "throttle_reasons": 0.0})
    pairs = opened(counter, power)
    with Sampler(pairs, period_s=period_s) as s:
        time.sleep(0.05)
        t0 = s.mark()
        time.sleep(0.6)
        t1 = s.mark()
        time.sleep(2 * period_s)
        f = s.to_frame("run-1", t0, t1)
    domains = [d for _, ds in pairs for d in ds]
    res = attribute_run(domains, f, t_start_ns=t0, t_end_ns=t1)
    per = {d.domain.name: d for d in res.domains}
    expected_ctr = counter.energy(t1) - counter.energy(t0)
    expected_pwr = power.energy(t1) - power.energy(t0)  # same trace, integrated analytically
    assert per["ctr-0"].energy_j == pytest.approx(expected_ctr, rel=0.005)
    assert per["pwr-0"].energy_j == pytest.approx(expected_pwr, rel=0.005)
    assert res.columns["energy_j"] == pytest.approx(expected_ctr + expected_pwr, rel=0.005)
    assert f.schema == pl.Schema(SAMPLES_SCHEMA)
    pw = f.filter(pl.col("meter") == "pwr")
    assert set(pw["temperature_c"].to_list()) == {61.0} and set(pw["unit"]) == {"W"}
    assert set(f.filter(pl.col("meter") == "ctr")["unit"]) == {"J"}
    assert res.columns["flag_throttled"] is False


def test_mark_reads_counters_only_and_needs_no_thread():
    counter, power = ClockMeter("ctr", "energy", 10.0), ClockMeter("pwr", "power", 10.0)
    s = Sampler(opened(counter, power))
    t = s.mark()
    assert len(s.readings("ctr")) == 1 and s.readings("ctr")[0].t_ns == t  # the boundary is the read
    assert s.readings("pwr") == []
    assert not s.running


def test_without_a_meter_no_thread_runs():
    before = threading.active_count()
    with Sampler(opened(), period_s=0.01) as s:
        assert not s.running and threading.active_count() == before
        t0 = time.monotonic_ns()
        assert t0 <= s.mark() <= time.monotonic_ns()  # a boundary is the clock
    assert s.jitter_stats()["n"] == 0 and s.latest_power_w() == {}


def test_samples_between_includes_neighbours_and_drop_before_keeps_one():
    m = ClockMeter("ctr", "energy", 10.0)
    s = Sampler(opened(m))
    for _ in range(4):
        s.read_all()
        time.sleep(0.002)
    r = s.readings("ctr")
    got = s.samples_between(r[1].t_ns + 1, r[2].t_ns - 1)["ctr"]
    assert [x.t_ns for x in got] == [r[1].t_ns, r[2].t_ns]
    got = s.samples_between(r[1].t_ns, r[2].t_ns)["ctr"]
    assert [x.t_ns for x in got] == [r[0].t_ns, r[1].t_ns, r[2].t_ns, r[3].t_ns]
    assert s.drop_before(r[2].t_ns + 1) == 2
    assert [x.t_ns for x in s.readings("ctr")] == [r[2].t_ns, r[3].t_ns]


def test_failing_and_vanishing_meters_never_stop_the_sampler():
    good = ClockMeter("good", "energy", 10.0)
    flaky = FlakyMeter("flaky")
    lost = FlakyMeter("gpu", vanish_after=3)
    s = Sampler(opened(good, flaky, lost), period_s=0.01)
    with s:
        time.sleep(0.4)
        assert s.running
        t = s.mark()
    assert s.errors and {e.meter for e in s.errors} == {"flaky", "gpu"}
    assert any("GPU is lost" in e.message for e in s.errors)
    assert len(s.readings("good")) >= 3 and s.readings("good")[-1].t_ns >= t
    assert len(s.readings("flaky")) >= 1
    # a meter that keeps failing is retried once a second, not every tick
    assert sum(e.meter == "gpu" for e in s.errors) <= FAILURES_BEFORE_BACKOFF + 1
    assert not s.running


def test_latest_power_and_jitter_stats():
    counter = ClockMeter("ctr", "energy", 33.0)
    power = ClockMeter("pwr", "power", 120.0)
    with Sampler(opened(counter, power), period_s=0.01) as s:
        time.sleep(0.25)
        live = s.latest_power_w()
        j = s.jitter_stats()
    assert live["ctr-0"] == pytest.approx(33.0, rel=0.005)
    assert live["pwr-0"] == pytest.approx(120.0)
    assert j["n"] > 0 and 0 <= j["p50_ms"] <= j["p99_ms"] <= j["max_ms"]


def test_idle_baseline_from_a_running_sampler():
    counter = ClockMeter("ctr", "energy", 7.5)
    power = ClockMeter("pwr", "power", 21.0)
    with Sampler(opened(counter, power), period_s=0.01) as s:
        frame, t0, t1 = s.measure_idle(0.3)
    assert t1 - t0 >= 0.3e9 and set(frame["run_id"]) == {"idle"}
    idle = idle_baseline(frame, s.domains, t0, t1)
    assert idle["ctr-0"] == pytest.approx(7.5, rel=0.005)
    assert idle["pwr-0"] == pytest.approx(21.0)


def test_measure_idle_needs_a_positive_duration():
    with pytest.raises(ValueError):
        Sampler([]).measure_idle(0)


def test_rejects_bad_period():
    with pytest.raises(ValueError):
        Sampler([], period_s=0)


def test_accepts_a_selection_or_its_meters_but_not_bare_meters():
    from energybench.meters import select_meters

    with select_meters(["estimate"], cpu_tdp_w=50) as sel:
        for source in (sel, sel.meters):
            s = Sampler(source)
            assert [d.name for d in s.domains] == ["cpu-package-0"]
            s.mark()
            assert len(s.readings("estimate")) == 1
        assert sel.meters[0].name == "estimate" and sel.meters[0].estimate  # acts as the meter
    with pytest.raises(TypeError, match="Selection"):
        Sampler([ClockMeter("ctr", "energy", 1.0)])


def test_idle_baseline_from_a_frame():
    counter = ClockMeter("ctr", "energy", 12.0)
    pairs = opened(counter)
    s = Sampler(pairs)
    t0 = s.mark()
    for _ in range(5):
        time.sleep(0.01)
        s.read_all()
    t1 = s.mark()
    idle = idle_baseline(s.to_frame("idle-0", t0, t1), s.domains, t0, t1)
    assert idle["ctr-0"] == pytest.approx(12.0, rel=0.005)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux-only")
@pytest.mark.parametrize("env,expected", [(None, 19), ("0", 0), ("7", 7)])
def test_sampler_thread_runs_at_the_configured_nice(monkeypatch, env, expected):
    """The sampler must not preempt inference threads on a saturated machine (see default_sampler_nice)."""
    import os

    from energybench.sampling import SAMPLER_NICE_ENV, Sampler, default_sampler_nice

    if env is None:
        monkeypatch.delenv(SAMPLER_NICE_ENV, raising=False)
    else:
        monkeypatch.setenv(SAMPLER_NICE_ENV, env)
    assert default_sampler_nice() == expected
    base = os.getpriority(os.PRIO_PROCESS, 0)
    s = Sampler(opened(ClockMeter("ctr", "energy", 10.0)), period_s=0.01)
    s.start()
    try:
        time.sleep(0.05)
        assert os.getpriority(os.PRIO_PROCESS, s._thread.native_id) == max(base, expected)
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the caller's own priority is untouched
    finally:
        s.stop()
