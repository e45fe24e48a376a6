"""An in-memory backend and replaying meters for the engine's decision tests.

:class:`ScriptedBackend` implements the ``Backend`` protocol without llama.cpp: each ``run`` returns
the timings its script gives (prefill and decode seconds, or a failure), optionally sleeping them so
that meters sampled meanwhile see the run. :class:`ReplayMeter` implements ``PowerMeter``: its power
is a scripted function of time, read through the real sampler like any meter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from energybench.backends.base import (
    BackendInfo,
    ContextParams,
    GenerationRequest,
    LoadParams,
    ModelInfo,
    PerfCounters,
    RunResult,
)
from energybench.meters.base import Domain, ProbeResult, Reading
from energybench.meters.registry import OpenMeter, Selection


@dataclass(frozen=True)
class Step:
    """One scripted run: ``prefill_s`` and ``decode_s`` (as reported), or a failure."""

    prefill_s: float = 0.01
    decode_s: float = 0.02
    fail: str | None = None


Script = Callable[[int, ContextParams, GenerationRequest], Step]


def steps(seq: Sequence[Step]) -> Script:
    """A script that plays ``seq`` in order (call k gets ``seq[k]``; the last one repeats)."""
    return lambda k, ctx, req: seq[min(k, len(seq) - 1)]


@dataclass
class ScriptedBackend:
    """A ``Backend`` whose runs take the times its script says. ``sleep``: really take them (so a
    meter sees the run); otherwise timestamps are computed and the call returns at once."""

    script: Script = field(default_factory=lambda: steps([Step()]))
    sleep: bool = False
    name: str = "scripted"
    calls: list[ContextParams] = field(default_factory=list)
    model_loads: int = 0
    closed: bool = False
    _loaded: LoadParams | None = None

    def info(self) -> BackendInfo:
        return BackendInfo(name=self.name, version="0", supports_gpu_offload=False)

    def load(self, params: LoadParams) -> ModelInfo:
        if params != self._loaded:
            self._loaded = params
            self.model_loads += 1
        return ModelInfo(path=params.model_path, n_layer=2, n_ctx_train=2048)

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        return [1] * add_bos + [ord(c) % 1000 + 2 for c in text]

    def detokenize(self, tokens: list[int]) -> str:
        return ""

    def run(self, ctx: ContextParams, req: GenerationRequest) -> RunResult:
        step = self.script(len(self.calls), ctx, req)
        self.calls.append(ctx)
        if step.fail:
            return RunResult(ok=False, error=step.fail)
        t0 = time.monotonic_ns()
        t_pf = t0 + int(step.prefill_s * 1e9)
        t_end = t_pf + int(step.decode_s * 1e9)
        if self.sleep:
            time.sleep(max(0.0, (t_end - time.monotonic_ns()) / 1e9))
        per = (t_end - t_pf) // max(1, req.n_gen - 1)
        tokens = [t_pf + i * per for i in range(req.n_gen - 1)] + [t_end]
        return RunResult(ok=True, t_start_ns=t0, t_prefill_end_ns=t_pf, t_end_ns=t_end, token_t_ns=tokens,
                         n_prompt_tokens=req.n_prompt, n_gen_tokens=req.n_gen, n_repeats=1, perf=PerfCounters())

    def close(self) -> None:
        self.closed = True


class ReplayMeter:
    """A power meter (one CPU package domain) whose watts are ``power_w(t)``, t in seconds since open."""

    name = "replay"
    description = "scripted power trace"
    estimate = False

    def __init__(self, power_w: Callable[[float], float], update_period_s: float = 0.01) -> None:
        self.power_w = power_w
        self.domain = Domain(name="cpu-package-0", kind="power", meter=self.name, component="cpu",
                             source="test script", update_period_s=update_period_s)
        self.t_open_ns = 0
        self.opens = self.closes = 0

    def probe(self) -> ProbeResult:
        return ProbeResult(True)

    def open(self) -> list[Domain]:
        self.opens += 1
        self.t_open_ns = time.monotonic_ns()
        return [self.domain]

    def read(self) -> Reading:
        t = time.monotonic_ns()
        return Reading(t_ns=t, values={self.domain.name: float(self.power_w((t - self.t_open_ns) / 1e9))})

    def close(self) -> None:
        self.closes += 1


def selection(*meters: ReplayMeter) -> Selection:
    """An opened selection of ``meters`` (what ``select_meters`` returns)."""
    return Selection(opened=[OpenMeter(m, m.open()) for m in meters])
