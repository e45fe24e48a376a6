"""The GPU measurement protocol of Yang, Adámek and Armour (SC'24), applied to points that offload.

NVIDIA's on-board power sensor is a poor observer on recent GPUs: on A100 and H100 the power it
reports is averaged over only ~25 ms of every 100 ms update period, so ~75 % of the run time is
never seen, and naive energy is off by 39 % on average (up to ~70 %). Their "good practice"
brings it to ~5 % (Yang, Adámek, Armour, "Accurate and Convenient Energy Measurements for GPUs:
A Detailed Study of NVIDIA GPU's Built-In Power Sensor", SC'24, pp. 307-323, DOI
10.1109/SC41406.2024.00028; preprint arXiv:2312.02741 "Part-time Power Measurements: nvidia-smi's
Lack of Attention"):

1. measure windows of at least 5 s (or >= 32 consecutive iterations) -- here: ``min_window_s``,
   the existing ``--min-window`` mechanism that repeats decoding until a run lasts that long;
2. at least 4 separate trials with randomised delays between them, so the runs fall at random
   phases of the sensor's update period -- here: ``min_trials`` measured repetitions and a seeded
   random pause of ``random_gap_s`` before every run of an offloading point;
3. discard the rise time (the reported power lags and ramps up after the load starts) and
   realign -- here: ``discard_rise_s``, applied in attribution (:mod:`energybench.energy`): the
   first ``rise`` seconds of a GPU *power* domain are replaced by the steady-state power of the
   rest of the window. The paper characterises the power readings (``power.draw``,
   ``.instant``, ``.average``), which is what a ``power`` domain integrates; an NVML energy
   *counter* accumulates joules, its rise is energy really drawn, and its lag is at most one
   update period (< 2 % of a 5 s window), so ``auto`` leaves counters alone. ``auto`` uses each
   power domain's update period as its rise time (0.1 s instantaneous power, 1 s for the 1 s
   moving average of ``nvmlDeviceGetPowerUsage``, whose reported value ramps linearly for one
   averaging window after a step); a number applies that rise to every GPU domain.

Not implemented: the paper's "8 evenly spaced controlled delays" *inside* a window of repeated
iterations (for sensors whose averaging window is shorter than their period); a llama.cpp decode
loop runs uninterrupted. The random gaps between trials cover the same phase problem across runs.

The protocol applies to points with ``n_gpu_layers != 0`` only; CPU-only points are untouched.
Every pause is a pure function of ``(seed, run_id)`` (:func:`gap_s`): a resumed sweep pauses
exactly as the first attempt would have, and anyone can recompute the gaps from the metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from energybench import defaults

#: The paper, for provenance strings (results metadata, domain sources, docs).
REFERENCE = ("Yang, Adamek, Armour, 'Accurate and Convenient Energy Measurements for GPUs: A Detailed "
             "Study of NVIDIA GPU's Built-In Power Sensor', SC'24 (arXiv:2312.02741)")

#: How a gap is derived (stored in metadata so the gaps can be recomputed).
GAP_RULE = ("gap_s = lo + (hi - lo) * u, u = int.from_bytes(sha256(f'{seed}:{run_id}')[:8], 'big') / 2**64; "
            "slept before every run (warm-ups included) of a point with n_gpu_layers != 0")
RISE_RULE = ("GPU power domains (kind 'power'): energy over [t_start, t_start + rise] replaced by the "
             "steady-state power of [t_start + rise, t_end] x rise; rise = the domain's update period "
             "('auto') or discard_rise_s; energy counters untouched under 'auto'")
NOT_IMPLEMENTED = ("controlled delays inside one window (the paper's 8 evenly spaced delays for sensors "
                   "whose averaging window is shorter than their update period)")


def _rise(value: Any) -> float | None:
    """A ``discard_rise_s`` setting (``"auto"``, None or seconds) as :class:`GpuProtocol` holds it."""
    return None if value in (None, "auto") else float(value)


@dataclass(frozen=True)
class GpuProtocol:
    """The protocol's settings. ``discard_rise_s`` None means ``auto`` (see the module docstring).

    Times in seconds. ``random_gap_s`` is ``(lo, hi)``: each pause is uniform in that range.
    Defaults: :mod:`energybench.defaults` (the paper's good practice: windows >= 5 s, >= 4 trials
    with randomised gaps, rise time discarded).
    """

    enabled: bool = defaults.GPU_PROTOCOL_ENABLED
    min_window_s: float = defaults.GPU_MIN_WINDOW_S
    min_trials: int = defaults.GPU_MIN_TRIALS
    random_gap_s: tuple[float, float] = defaults.GPU_RANDOM_GAP_S
    discard_rise_s: float | None = _rise(defaults.GPU_DISCARD_RISE_S)
    seed: int = defaults.GPU_GAP_SEED

    def __post_init__(self) -> None:
        lo, hi = self.random_gap_s
        if lo < 0 or hi < lo:
            raise ValueError(f"random_gap_s must be (lo, hi) with 0 <= lo <= hi, got {self.random_gap_s}")
        if self.min_window_s < 0 or self.min_trials < 1:
            raise ValueError("min_window_s must be >= 0 and min_trials >= 1")
        if self.discard_rise_s is not None and self.discard_rise_s < 0:
            raise ValueError("discard_rise_s must be >= 0 (or None for auto)")

    # ---------------------------------------------------------------- where it applies
    def applies_to(self, n_gpu_layers: int) -> bool:
        """True for a point that offloads layers (``n_gpu_layers != 0``) while enabled."""
        return self.enabled and n_gpu_layers != 0

    def apply_to_point(self, point: Any) -> Any:
        """``point`` (a :class:`~energybench.point.RunPoint`) with its window raised to ``min_window_s``."""
        if not self.applies_to(point.n_gpu_layers) or point.min_window_s >= self.min_window_s:
            return point
        return point.with_(min_window_s=self.min_window_s)

    def trials(self, n_gpu_layers: int, reps: int) -> int:
        """Measured repetitions for a point: at least ``min_trials`` when the protocol applies."""
        return max(reps, self.min_trials) if self.applies_to(n_gpu_layers) else reps

    # ---------------------------------------------------------------- gaps
    def gap_s(self, run_id: str) -> float:
        """The pause (s) before run ``run_id``: see :func:`gap_s`."""
        return gap_s(self.seed, run_id, self.random_gap_s)

    # ---------------------------------------------------------------- rise time
    def rise_s(self, domain: Any) -> float:
        """Seconds of the window start replaced by steady-state power for ``domain`` (0 = none)."""
        if not self.enabled or getattr(domain, "component", None) != "gpu":
            return 0.0
        if self.discard_rise_s is not None:
            return float(self.discard_rise_s)
        if getattr(domain, "kind", None) == "power":
            return float(getattr(domain, "update_period_s", 0.0) or 0.0)
        return 0.0

    def rise_by_domain(self, domains: Iterable[Any]) -> dict[str, float]:
        """``{meter/domain: rise_s}`` for the domains that get a rise-time correction."""
        out: dict[str, float] = {}
        for d in domains:
            r = self.rise_s(d)
            if r > 0:
                out[f"{d.meter}/{d.name}"] = r
        return out

    def note(self, reps_asked: int) -> str:
        """One line saying what the protocol changes for the points that offload."""
        lo, hi = self.random_gap_s
        rise = "auto" if self.discard_rise_s is None else f"{self.discard_rise_s:g} s"
        reps = self.trials(1, reps_asked)
        more = f" (raised from {reps_asked})" if reps > reps_asked else ""
        return (f"GPU measurement protocol (Yang et al. SC'24) applied to the points that offload: runs of "
                f">= {self.min_window_s:g} s, >= {reps} measured repetitions{more}, random {lo:g}-{hi:g} s gaps, "
                f"rise time {rise}; turn it off with --no-gpu-protocol")

    # ---------------------------------------------------------------- provenance
    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (``discard_rise_s`` ``"auto"`` when None)."""
        return {"enabled": self.enabled, "min_window_s": self.min_window_s, "min_trials": self.min_trials,
                "random_gap_s": list(self.random_gap_s),
                "discard_rise_s": "auto" if self.discard_rise_s is None else self.discard_rise_s,
                "seed": self.seed}

    def metadata(self, *, point_ids: Iterable[str] = (), gaps_s: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The ``gpu_protocol`` entry of results metadata: settings, rules, reference, and which
        points it applied to (``point_ids``) with the pauses actually taken (``gaps_s``)."""
        return {**self.to_dict(), "reference": REFERENCE, "applies_to": "points with n_gpu_layers != 0",
                "gap_rule": GAP_RULE, "rise_rule": RISE_RULE, "not_implemented": NOT_IMPLEMENTED,
                "points": sorted(set(point_ids)), "gaps_s": dict(sorted((gaps_s or {}).items()))}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | Any | None) -> GpuProtocol:
        """From a config section (a mapping or an object with the same attributes); None = defaults."""
        if settings is None:
            return cls()
        get = settings.get if isinstance(settings, Mapping) else (lambda k, d=None: getattr(settings, k, d))
        gap = get("random_gap_s", defaults.GPU_RANDOM_GAP_S)
        return cls(enabled=bool(get("enabled", defaults.GPU_PROTOCOL_ENABLED)),
                   min_window_s=float(get("min_window_s", defaults.GPU_MIN_WINDOW_S)),
                   min_trials=int(get("min_trials", defaults.GPU_MIN_TRIALS)),
                   random_gap_s=(float(gap[0]), float(gap[1])),
                   discard_rise_s=_rise(get("discard_rise_s", defaults.GPU_DISCARD_RISE_S)),
                   seed=int(get("seed", defaults.GPU_GAP_SEED)))


#: The protocol switched off (``--no-gpu-protocol``, ``gpu_protocol: {enabled: false}``).
DISABLED = GpuProtocol(enabled=False)


def gap_s(seed: int, run_id: str, gap_range: tuple[float, float]) -> float:
    """A pause in ``[lo, hi]`` seconds, uniform over runs, the same for the same ``(seed, run_id)``."""
    lo, hi = float(gap_range[0]), float(gap_range[1])
    digest = hashlib.sha256(f"{seed}:{run_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return lo + (hi - lo) * u


__all__ = ["DISABLED", "GAP_RULE", "NOT_IMPLEMENTED", "REFERENCE", "RISE_RULE", "GpuProtocol", "gap_s"]
