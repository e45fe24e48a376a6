"""The engine's decisions, as small pure functions of recorded values (no clock, no I/O).

- :func:`adaptive_stop`: whether a point has enough repetitions (the CI rule of adaptive repetitions);
- :class:`IdleHold`: whether an until-idle cooldown is over;
- :func:`rebaseline_due`: whether the idle baseline must be measured again;
- :func:`point_exhausted`: whether a point has failed too often to go on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from energybench.plan import Repetitions


def ci_half_width_pct(values: Sequence[float | None]) -> float:
    """95% CI half-width of the mean (Student t), in % of the mean; inf when undefined."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    if n < 2:
        return math.inf
    mean = sum(vals) / n
    if mean == 0:
        return math.inf
    sd = (sum((v - mean) ** 2 for v in vals) / (n - 1)) ** 0.5
    half = float(stats.t.ppf(0.975, n - 1)) * sd / n**0.5
    return abs(half / mean) * 100.0


def adaptive_stop(reps: Repetitions, values: Sequence[float | None]) -> tuple[bool, float]:
    """(stop?, CI half-width %) after the measured repetitions whose watched values are ``values``.

    Stops at the first count from ``reps.min`` on whose CI is within ``target_ci_pct``, and at
    ``reps.max`` whatever the CI. A repetition without a value (e.g. no energy measured) counts
    towards the number but not towards the CI.
    """
    done = len(values)
    ci = ci_half_width_pct(values)
    if done >= reps.max:
        return True, ci
    return done >= reps.min and ci <= reps.target_ci_pct, ci


@dataclass
class IdleHold:
    """An until-idle cooldown: over once total power has stayed within ``within_pct`` % of idle
    power for ``hold_s`` seconds, or ``max_s`` seconds after it began. Feed it observations."""

    idle_w: float
    within_pct: float
    hold_s: float
    max_s: float
    began_s: float
    held_since_s: float | None = None

    def over(self, now_s: float, power_w: float | None) -> bool:
        """Record total power ``power_w`` seen at ``now_s``; True when the cooldown is over."""
        if now_s - self.began_s >= self.max_s:
            return True
        if power_w is None or power_w > self.idle_w * (1.0 + self.within_pct / 100.0):
            self.held_since_s = None
            return False
        if self.held_since_s is None:
            self.held_since_s = now_s
        return now_s - self.held_since_s >= self.hold_s


def rebaseline_due(every_min: float | None, last_baseline_s: float, now_s: float) -> bool:
    """True when ``every_min`` minutes have passed since the last idle baseline ended."""
    return every_min is not None and now_s - last_baseline_s >= every_min * 60.0


def point_exhausted(failures: int, max_failures: int) -> bool:
    """True when a point has failed ``max_failures`` times: the rest of it is skipped."""
    return failures >= max_failures
