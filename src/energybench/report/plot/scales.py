"""Axis scales: where a value lands on a panel, and which ticks a reader sees.

A :class:`Continuous` axis is linear or logarithmic; its domain is the data's range over every panel
that shares it, widened by 5 % each side (ggplot's default). A :class:`Band` axis is a list of
categories at positions 0..n-1; figures place marks at ``index + offset`` to dodge them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round numbers (1, 2 or 5 times a power of ten apart) inside [lo, hi]; the step is
    the round number nearest (span / n) on a log scale, as d3-scale's ``ticks`` picks it."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10.0 ** math.floor(math.log10(raw))
    err = raw / mag  # 1..10: round to the nearest of 1, 2, 5, 10 on a log scale (d3's rule)
    step = mag * (10 if err >= math.sqrt(50) else 5 if err >= math.sqrt(10) else 2 if err >= math.sqrt(2) else 1)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def log_ticks(lo: float, hi: float, base: float = 10.0) -> list[float]:
    """Ticks of a log axis over [lo, hi] (values, not logs): powers of ``base``, and 2 and 5 times
    them when fewer than three powers fall inside."""
    if not (lo > 0 and hi > 0):
        return []
    e0, e1 = math.floor(math.log(lo, base)), math.ceil(math.log(hi, base))
    powers = [base**e for e in range(e0, e1 + 1)]
    inside = [p for p in powers if lo * (1 - 1e-9) <= p <= hi * (1 + 1e-9)]
    if len(inside) >= 3 or base != 10:
        return inside
    more = sorted(m * p for p in powers for m in (1, 2, 5))
    return [v for v in more if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]


def tick_labels(values: Sequence[float]) -> list[str]:
    """Labels with the fewest decimals that still show every tick exactly (0.4, 0.45, 0.5; 4.001,
    4.002); scientific notation for very large or very small magnitudes."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    big = max((abs(v) for v in vals), default=0.0)
    if big >= 1e6 or 0 < big < 1e-3:
        return [f"{float(v):.2e}" for v in values]
    decimals = next((d for d in range(7) if all(abs(round(v, d) - v) <= 1e-9 * max(1.0, abs(v)) for v in vals)), 6)
    return [f"{float(v):.{decimals}f}" for v in values]


@dataclass(frozen=True)
class Continuous:
    """A numeric axis. ``log``: the base of a log axis (2 or 10), None for linear. ``breaks`` and
    ``labels``: explicit ticks (default: round numbers). ``zero``: the domain includes 0."""

    log: float | None = None
    breaks: Sequence[float] | None = None
    labels: Sequence[str] | None = None
    zero: bool = False

    def fwd(self, v: float) -> float:
        return math.log(v, self.log) if self.log else v

    def domain(self, values: Iterable[float]) -> tuple[float, float]:
        """The transformed range of ``values`` (and the breaks), widened 5 % each side."""
        vals = [self.fwd(v) for v in values if v is not None and math.isfinite(v) and (not self.log or v > 0)]
        vals += [self.fwd(b) for b in self.breaks or ()]
        if self.zero:
            vals.append(0.0)
        if not vals:
            return 0.0, 1.0
        lo, hi = min(vals), max(vals)
        pad = (hi - lo) * 0.05 if hi > lo else (abs(lo) * 0.05 or 0.5)
        return lo - pad, hi + pad

    def ticks(self, dom: tuple[float, float]) -> list[tuple[float, str]]:
        """(transformed position, label) of each tick inside ``dom``."""
        if self.breaks is not None:
            labels = list(self.labels) if self.labels is not None else tick_labels(self.breaks)
            return [(self.fwd(b), lab) for b, lab in zip(self.breaks, labels, strict=True)]
        if self.log:
            vals = log_ticks(self.log ** dom[0], self.log ** dom[1], self.log)
            return [(self.fwd(v), f"{v:g}") for v in vals]  # 0.5, 1, 2, 5: each its own precision
        vals = nice_ticks(*dom)
        return list(zip(vals, tick_labels(vals), strict=True))


@dataclass(frozen=True)
class Band:
    """A categorical axis: ``levels`` at positions 0..n-1 (on a vertical axis the first on top)."""

    levels: Sequence[str]

    def fwd(self, v: float) -> float:
        return v

    def index(self, level: str) -> int:
        return list(self.levels).index(level)

    def domain(self, values: Iterable[float]) -> tuple[float, float]:
        return -0.5, len(self.levels) - 0.5

    def ticks(self, dom: tuple[float, float]) -> list[tuple[float, str]]:
        return [(float(i), str(lab)) for i, lab in enumerate(self.levels)]


Axis = Continuous | Band
