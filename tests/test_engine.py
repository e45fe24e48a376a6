"""The engine's decisions, exercised through the real loop with an in-memory backend and scripted
meters (tests/fakes/scripted.py): adaptive stopping, until-idle cooldown, idle re-baselining,
max_failures, resume, and that meters and backend are closed on every path.

Each expected count is computed here from the rule as documented, so a changed rule (stopping
one repetition late, counting failures differently) fails a test.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from energybench import events as ev
from energybench.engine import run
from energybench.engine.decisions import IdleHold, adaptive_stop, ci_half_width_pct, point_exhausted, rebaseline_due
from energybench.errors import ResultsError, UsageError
from energybench.plan import Cooldown, Plan, Repetitions
from energybench.point import PromptSpec, RunPoint
from energybench.results import read_metadata, read_runs

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))
from scripted import ReplayMeter, ScriptedBackend, Step, selection, steps  # noqa: E402

MODEL = "synthetic:tiny"


@pytest.fixture(autouse=True)
def _model(tiny_model):
    """The engine resolves its model references: the tiny twin, synthesized once per session."""


def point(**kw) -> RunPoint:
    return RunPoint(model=MODEL, n_gen=4, prompt=PromptSpec(n_prompt=8), **kw)


def plan(points, **kw) -> Plan:
    kw.setdefault("idle_baseline_s", 0.0)
    kw.setdefault("warmup", 0)
    return Plan(name="t", points=list(points), meters=[], **kw)


def measure(tmp_path: Path, p: Plan, backend: ScriptedBackend, *, meters=(), **kw):
    seen: list = []
    result = run(p, tmp_path / "out", backend=backend, selection=selection(*meters), events=seen.append, **kw)
    return result, read_runs(tmp_path / "out"), seen


def first_k_within(values: list[float], lo: int, hi: int, target_pct: float) -> int:
    """The documented rule, computed independently: the first count k in [lo, hi] whose 95 % Student-t
    CI half-width of the mean is <= target % of the mean; hi when none is."""
    for k in range(lo, hi + 1):
        v = np.asarray(values[:k])
        half = stats.t.ppf(0.975, k - 1) * v.std(ddof=1) / math.sqrt(k)
        if abs(half / v.mean()) * 100 <= target_pct:
            return k
    return hi


# ----------------------------------------------------------------------------- adaptive repetitions


def prefills(values_ms: list[float]) -> ScriptedBackend:
    """A backend whose k-th run has a TTFT of ``values_ms[k]``."""
    return ScriptedBackend(steps([Step(prefill_s=v / 1e3) for v in values_ms]))


@pytest.mark.parametrize(("values", "target", "lo"), [
    ([100, 112, 95, 104, 98, 101, 99, 100, 100, 100, 100, 100], 5.0, 3),  # CI 4.99 % at the 7th run
    ([100, 101, 100, 120, 80, 100, 100, 100, 100, 101, 100, 99], 8.0, 4),  # within at 3, but min is 4
])
def test_adaptive_stops_at_the_first_repetition_within_target(tmp_path, values, target, lo):
    reps = Repetitions(adaptive=True, target_ci_pct=target, min=lo, max=12, metric="ttft_ms")
    expected = first_k_within(values, lo, 12, target)
    assert lo < expected < 12  # the data make the rule matter
    result, runs, seen = measure(tmp_path, plan([point()], repetitions=reps), prefills(values))
    assert runs.height == expected == result.n_runs_done
    assert runs["ttft_ms"].to_list() == pytest.approx(values[:expected], rel=1e-6)
    stop = [e for e in seen if isinstance(e, ev.AdaptiveStopped)]
    assert len(stop) == 1 and stop[0].reps == expected and stop[0].ci_pct <= target
    assert stop[0].runs_left_out == 12 - expected


def test_adaptive_never_stops_before_min(tmp_path):
    reps = Repetitions(adaptive=True, target_ci_pct=5.0, min=4, max=10, metric="ttft_ms")
    _, runs, _ = measure(tmp_path, plan([point()], repetitions=reps), prefills([50.0] * 10))
    assert runs.height == 4  # the CI is 0 from the second run on, but min is 4


def test_adaptive_never_runs_past_max(tmp_path):
    reps = Repetitions(adaptive=True, target_ci_pct=1.0, min=2, max=6, metric="ttft_ms")
    _, runs, seen = measure(tmp_path, plan([point()], repetitions=reps), prefills([10.0, 90.0] * 5))
    assert runs.height == 6
    assert [e.reps for e in seen if isinstance(e, ev.AdaptiveStopped)] == [6]


def test_adaptive_watches_the_vocabulary_metric(tmp_path):
    """j_per_output_token from a constant 20 W meter: request time x 20 W / output tokens."""
    reps = Repetitions(adaptive=True, target_ci_pct=50.0, min=3, max=5, metric="j_per_output_token")
    backend = ScriptedBackend(steps([Step(prefill_s=0.02, decode_s=0.06)]), sleep=True)
    _, runs, seen = measure(tmp_path, plan([point()], repetitions=reps), backend, meters=[ReplayMeter(lambda t: 20.0)])
    assert runs.height == 3
    done = [e for e in seen if isinstance(e, ev.RunFinished)]
    assert all(e.metrics["j_per_output_token"] == pytest.approx(20.0 * 0.08 / 4, rel=0.05) for e in done)


def test_adaptive_stop_rule_alone():
    r = Repetitions(adaptive=True, target_ci_pct=5.0, min=3, max=5)
    assert adaptive_stop(r, [1.0, 1.0]) == (False, 0.0)  # below min
    assert adaptive_stop(r, [1.0, 1.0, 1.0])[0]
    assert not adaptive_stop(r, [1.0, 2.0, 3.0, 4.0])[0]
    assert adaptive_stop(r, [1.0, 2.0, 3.0, 4.0, 5.0])[0]  # at max whatever the CI
    assert ci_half_width_pct([1.0, None]) == math.inf


# ----------------------------------------------------------------------------- failures


def test_max_failures_skips_the_point_and_the_rest_completes(tmp_path):
    bad = point(n_threads=2)
    script = lambda k, ctx, req: Step(fail="scripted failure") if ctx.n_threads == 2 else Step()  # noqa: E731
    p = plan([point(), bad], repetitions=Repetitions(fixed=4), warmup=1, max_failures=2)
    result, runs, seen = measure(tmp_path, p, ScriptedBackend(script))
    failed = runs.filter(pl.col("status") == "failed")
    assert failed.height == 2 and set(failed["point_id"]) == {bad.point_id}  # the warm-up's failure counts
    assert runs.filter(pl.col("status") == "ok").height == 5
    assert result.status == "partial" and result.skipped_points == [bad.point_id]
    assert [e.failures for e in seen if isinstance(e, ev.PointSkipped)] == [2]
    assert read_metadata(tmp_path / "out")["status"] == "partial"


def test_failures_below_the_limit_are_retried_in_later_repetitions(tmp_path):
    seq = [Step(), Step(fail="x"), Step(), Step(fail="x"), Step()]
    p = plan([point()], repetitions=Repetitions(fixed=5), max_failures=3)
    result, runs, _ = measure(tmp_path, p, ScriptedBackend(steps(seq)))
    assert runs.height == 5 and runs.filter(pl.col("status") == "failed").height == 2
    assert result.skipped_points == [] and result.status == "partial"  # failed runs remain: partial
    assert not point_exhausted(2, 3) and point_exhausted(3, 3)


# ----------------------------------------------------------------------------- idle baselines


def test_idle_every_min_measures_the_baseline_again(tmp_path):
    # a re-baseline is due before every run once 1e-9 minutes have passed since the last
    p = plan([point()], repetitions=Repetitions(fixed=3), idle_baseline_s=0.05, idle_every_min=1e-9)
    _, _, seen = measure(tmp_path, p, ScriptedBackend(), meters=[ReplayMeter(lambda t: 5.0)])
    names = [b["name"] for b in read_metadata(tmp_path / "out")["idle_baselines"]]
    assert names == ["idle-0", "idle-1", "idle-2", "idle-3"]
    assert [e.name for e in seen if isinstance(e, ev.IdleStarted)] == names


def test_no_idle_every_min_means_one_baseline(tmp_path):
    p = plan([point()], repetitions=Repetitions(fixed=3), idle_baseline_s=0.05)
    measure(tmp_path, p, ScriptedBackend(), meters=[ReplayMeter(lambda t: 5.0)])
    assert [b["name"] for b in read_metadata(tmp_path / "out")["idle_baselines"]] == ["idle-0"]


def test_rebaseline_rule_alone():
    assert not rebaseline_due(None, 0.0, 1e9)
    assert not rebaseline_due(2.0, 100.0, 219.9)
    assert rebaseline_due(2.0, 100.0, 220.0)


# ----------------------------------------------------------------------------- until-idle cooldown


def test_idle_hold_ends_after_hold_s_within_the_band():
    h = IdleHold(idle_w=10.0, within_pct=10.0, hold_s=1.0, max_s=30.0, began_s=0.0)
    trace = [(0.0, 30.0), (0.5, 11.5), (1.0, 11.0), (1.5, 10.5), (2.0, 12.0), (2.5, 10.9), (3.0, 10.0), (3.4, 9.0)]
    assert [h.over(t, p) for t, p in trace] == [False] * 8  # 11.0 W is the band's edge; 12 W resets
    assert h.over(3.5, 10.2)  # within since 2.5 s: 1 s held


def test_idle_hold_gives_up_at_max_s():
    h = IdleHold(idle_w=10.0, within_pct=10.0, hold_s=1.0, max_s=5.0, began_s=100.0)
    assert not h.over(104.9, 50.0)
    assert h.over(105.0, 50.0)


def test_until_idle_cooldown_waits_for_power_to_settle(tmp_path):
    """Power is 40 W for the first 0.3 s of each cooldown (a machine still hot), then 10 W = idle."""
    hot_until = [0.0]
    seen: list = []

    def power(t: float) -> float:
        return 40.0 if time.monotonic() < hot_until[0] else 10.0

    def sink(e) -> None:
        seen.append(e)
        if isinstance(e, ev.CooldownStarted):
            hot_until[0] = time.monotonic() + 0.3

    rule = Cooldown(until_idle=True, within_pct=10.0, hold_s=0.2, max_s=5.0)
    p = plan([point()], repetitions=Repetitions(fixed=3), cooldown=rule, idle_baseline_s=0.1)
    result = run(p, tmp_path / "out", backend=ScriptedBackend(), selection=selection(ReplayMeter(power)), events=sink)
    cools = [e for e in seen if isinstance(e, ev.CooldownStarted)]
    assert len(cools) == 2 and all(c.seconds is None and c.max_s == 5.0 for c in cools)
    # each: >= 0.3 s hot + 0.2 s held within the band (a stale sample can only make it later); well under max_s
    assert 2 * 0.5 <= result.cooldown_s < 2 * 1.5


def test_until_idle_cooldown_stops_at_max_s_when_power_never_settles(tmp_path):
    calls = []

    def power(t: float) -> float:
        return 10.0 if not calls else 50.0  # idle during the baseline, hot ever after

    class Backend(ScriptedBackend):
        def run(self, ctx, req):
            calls.append(1)
            return super().run(ctx, req)

    rule = Cooldown(until_idle=True, within_pct=10.0, hold_s=0.1, max_s=0.4)
    p = plan([point()], repetitions=Repetitions(fixed=2), cooldown=rule, idle_baseline_s=0.1)
    result, _, _ = measure(tmp_path, p, Backend(), meters=[ReplayMeter(power)])
    assert 0.4 <= result.cooldown_s < 0.9


def test_fixed_cooldown_counts_from_the_end_of_the_previous_run(tmp_path):
    p = plan([point()], repetitions=Repetitions(fixed=3), cooldown=Cooldown(fixed_s=0.2))
    result, runs, _ = measure(tmp_path, p, ScriptedBackend(sleep=True))
    starts, ends = runs["t_start_ns"].to_list(), runs["t_end_ns"].to_list()
    gaps = [(s - e) / 1e9 for e, s in zip(ends, starts[1:], strict=False)]
    assert all(0.2 <= g < 0.35 for g in gaps), gaps
    assert 0.4 <= result.cooldown_s < 0.7


# ----------------------------------------------------------------------------- resume


def test_resume_runs_only_what_is_missing(tmp_path):
    p = plan([point()], repetitions=Repetitions(fixed=4), warmup=1, config_hash="h1")
    seq = [Step(), Step(), Step(fail="x"), Step(fail="x"), Step(fail="x")]
    measure(tmp_path, p, ScriptedBackend(steps(seq)))
    backend = ScriptedBackend()
    result = run(p, tmp_path / "out", resume=True, backend=backend, selection=selection())
    assert len(backend.calls) == 3 and result.n_runs_this_session == 3
    runs = read_runs(tmp_path / "out")
    assert runs.filter(pl.col("status") == "ok")["run_id"].n_unique() == 5


def test_resume_of_unreadable_results_is_an_error_not_a_rerun(tmp_path):
    p = plan([point()], repetitions=Repetitions(fixed=2), config_hash="h1")
    measure(tmp_path, p, ScriptedBackend())
    (tmp_path / "out" / "runs.parquet").write_bytes(b"not parquet at all")
    backend = ScriptedBackend()
    with pytest.raises(ResultsError, match="cannot resume .* cannot be read"):
        run(p, tmp_path / "out", resume=True, backend=backend, selection=selection())
    assert backend.calls == [] and backend.closed


def test_resume_with_a_changed_config_is_refused(tmp_path):
    measure(tmp_path, plan([point()], config_hash="h1", repetitions=Repetitions(fixed=1)), ScriptedBackend())
    with pytest.raises(ResultsError, match="config changed"):
        run(plan([point()], config_hash="h2"), tmp_path / "out", resume=True, backend=ScriptedBackend(),
            selection=selection())


def test_adaptive_point_that_stopped_is_not_run_again_on_resume(tmp_path):
    reps = Repetitions(adaptive=True, target_ci_pct=5.0, min=3, max=10, metric="ttft_ms")
    p = plan([point()], repetitions=reps, config_hash="h1")
    measure(tmp_path, p, prefills([20.0] * 10))
    backend = prefills([20.0] * 10)
    run(p, tmp_path / "out", resume=True, backend=backend, selection=selection())
    assert backend.calls == [] and backend.model_loads == 0


# ----------------------------------------------------------------------------- closing


def test_meters_and_backend_are_closed_on_success_and_on_error(tmp_path):
    meter, backend = ReplayMeter(lambda t: 1.0), ScriptedBackend()
    run(plan([point()], repetitions=Repetitions(fixed=1)), tmp_path / "a", backend=backend, selection=selection(meter))
    assert (meter.opens, meter.closes, backend.closed) == (1, 1, True)
    meter, backend = ReplayMeter(lambda t: 1.0), ScriptedBackend()
    with pytest.raises(UsageError, match="CPU-only"):
        run(plan([point(n_gpu_layers=3)]), tmp_path / "b", backend=backend, selection=selection(meter))
    assert (meter.opens, meter.closes, backend.closed) == (1, 1, True)
    assert not (tmp_path / "b").exists()  # refused before anything was written
