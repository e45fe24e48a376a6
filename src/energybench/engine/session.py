"""The machinery of a measurement: backend, meters and their sampler, results store.

A :class:`Session` prepares points (model loaded, prompt tokenized), measures idle baselines and
cooldowns, and performs single runs: each :meth:`Session.run` is one generation, its energy
attributed from the samples taken during it, its row made durable before it returns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from energybench import events as ev
from energybench.backends import Backend, GenerationRequest, ModelInfo, RunResult
from energybench.energy import attribute_run, idle_baseline
from energybench.engine.decisions import IdleHold
from energybench.errors import ConfigError, UsageError
from energybench.gpu import offload_backend
from energybench.gpu_protocol import GpuProtocol
from energybench.metrics import itl_columns, row_metrics
from energybench.plan import Cooldown
from energybench.point import PromptSpec, RunPoint
from energybench.results import ResultsStore
from energybench.sampling import Sampler

#: Metrics stored in every runs.parquet row (computed by the metrics vocabulary, stored for readers
#: of the raw table) and shown by live views.
STORED_METRICS = ("ttft_ms", "prefill_tok_s", "decode_tok_s")
HEADLINE_METRICS = (*STORED_METRICS, "j_per_output_token")
#: How often an until-idle cooldown looks at the power (s).
COOLDOWN_POLL_S = 0.25


@dataclass
class Prepared:
    """A point ready to run: model resolved and loaded, prompt tokenized."""

    point: RunPoint
    model: Any  # energybench.models.ResolvedModel
    model_info: ModelInfo
    prompt_tokens: tuple[int, ...]
    load_s: float | None  # None when the loaded model was reused
    backend_mode: str


def backend_mode(n_gpu_layers: int, n_layer: int | None, supports_gpu: bool, devices: Sequence[str]) -> str:
    """``cpu``, or ``<backend>-partial`` / ``<backend>-full`` from the offload request and the layer count.

    ``<backend>``: the ggml backend of the device that takes the layers (``devices``: BackendInfo.devices,
    see :func:`energybench.gpu.offload_backend`): cuda, metal, vulkan, hip, sycl..., gpu when unknown.
    llama.cpp counts the output layer as one more offloadable layer: n_layer + 1 (or -1) = all,
    so n_gpu_layers == n_layer (every repeating layer, output layer on the CPU) is still partial.
    ``n_layer`` None (the model could not be read, e.g. for a failed row): a positive request
    counts as partial. A build without GPU offload runs everything on the CPU.
    """
    if n_gpu_layers == 0 or not supports_gpu:
        return "cpu"
    backend = offload_backend(devices) or "gpu"
    if n_gpu_layers < 0 or (n_layer is not None and n_gpu_layers >= n_layer + 1):
        return f"{backend}-full"
    return f"{backend}-partial"


class Session:
    """Backend + sampler + store for a sequence of runs. The caller owns the meters (``selection``)."""

    def __init__(self, store: ResultsStore, selection: Any, backend: Backend, *, sample_period_s: float,
                 events: ev.EventSink = ev.ignore, sweep_id: str = "") -> None:
        self.store = store
        self.backend = backend
        self.sampler = Sampler(selection, period_s=sample_period_s)
        self.events = events
        self.sweep_id = sweep_id
        self.domains = list(self.sampler.domains)
        self.idle_power_w: dict[str, float] = {}
        self._models: dict[str, Any] = {}
        self.model_loads = 0
        self.model_load_s_total = 0.0

    def __enter__(self) -> Session:
        self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()

    def power_w(self) -> dict[str, float]:
        return self.sampler.latest_power_w()

    # ------------------------------------------------------------------ idle and cooldown
    def idle_baseline(self, seconds: float, name: str) -> None:
        """Measure power with nothing running for ``seconds``; record it (samples and metadata)."""
        self.events(ev.IdleStarted(seconds=seconds, name=name))
        samples, t0, t1 = self.sampler.measure_idle(seconds, name)
        self.idle_power_w = idle_baseline(samples, self.domains, t0, t1) if self.domains else {}
        self.store.add_samples(name, samples)
        baselines = self.store.read_metadata().get("idle_baselines", [])
        baselines.append({"name": name, "t_start_ns": t0, "t_end_ns": t1, "power_w": self.idle_power_w})
        self.store.update_metadata(idle_baselines=baselines)
        self.sampler.drop_before(t1)

    def cooldown(self, rule: Cooldown, since_ns: int) -> float:
        """Pause between runs by ``rule``; returns the seconds counted as cooldown.

        A fixed cooldown counts from the end of the previous run (``since_ns``): the time spent
        storing that run is part of it. Until-idle watches total power of the top-level domains;
        with nothing to compare against (no meter, no idle baseline) it waits ``hold_s``.
        """
        if not rule.until_idle:
            if rule.fixed_s <= 0:
                return 0.0
            wait = rule.fixed_s - (time.monotonic_ns() - since_ns) / 1e9
            if wait > 0:
                self.events(ev.CooldownStarted(seconds=wait))
                time.sleep(wait)
            return (time.monotonic_ns() - since_ns) / 1e9
        t0 = time.monotonic()
        idle_w = self._total(self.idle_power_w)
        if idle_w is None or idle_w <= 0:
            self.events(ev.CooldownStarted(seconds=min(rule.hold_s, rule.max_s)))
            time.sleep(min(rule.hold_s, rule.max_s))
            return time.monotonic() - t0
        self.events(ev.CooldownStarted(seconds=None, max_s=rule.max_s))
        hold = IdleHold(idle_w=idle_w, within_pct=rule.within_pct, hold_s=rule.hold_s, max_s=rule.max_s, began_s=t0)
        while not hold.over(time.monotonic(), self._total(self.power_w())):
            time.sleep(min(COOLDOWN_POLL_S, max(rule.hold_s / 4, 0.01)))
        return time.monotonic() - t0

    def _total(self, by_domain: dict[str, float]) -> float | None:
        """Sum over top-level domains (nested ones are inside another); None when none is known."""
        vals = [by_domain[d.name] for d in self.domains if d.parent is None and d.name in by_domain]
        return sum(vals) if vals else None

    # ------------------------------------------------------------------ points
    def resolve(self, ref: str) -> Any:
        from energybench.models import resolve_model

        if ref not in self._models:
            self._models[ref] = resolve_model(ref)
        return self._models[ref]

    @property
    def models(self) -> dict[str, Any]:
        return dict(self._models)

    def prepare(self, point: RunPoint) -> Prepared:
        """Load ``point``'s model (a no-op when it is loaded already) and tokenize its prompt."""
        model = self.resolve(point.model)
        before = getattr(self.backend, "model_loads", None)
        t0 = time.monotonic()
        info = self.backend.load(point.load_params(str(model.path)))
        load_s = None
        if getattr(self.backend, "model_loads", None) != before:
            load_s = time.monotonic() - t0
            self.model_loads += 1
            self.model_load_s_total += load_s
            self.events(ev.ModelLoaded(model=point.model, seconds=load_s))
        tokens = self.prompt_tokens(point.prompt)
        n_ctx = point.resolved_n_ctx(len(tokens))
        if len(tokens) + point.n_gen > n_ctx:
            raise ConfigError(f"n_ctx={n_ctx} is smaller than prompt ({len(tokens)} tokens) + n_gen ({point.n_gen})",
                              hint=f"set n_ctx >= {len(tokens) + point.n_gen} or shorten the prompt")
        build = self.backend.info()
        mode = backend_mode(point.n_gpu_layers, info.n_layer, build.supports_gpu_offload, build.devices)
        return Prepared(point=point, model=model, model_info=info, prompt_tokens=tuple(tokens), load_s=load_s,
                        backend_mode=mode)

    def prompt_tokens(self, spec: PromptSpec) -> list[int]:
        from energybench import prompts

        if spec.kind == "synthetic":
            return prompts.exact_prompt_tokens(self.backend.tokenize, int(spec.n_prompt or 0))
        text = prompts.get_prompt(spec.suite or "", spec.prompt_id or "").text if spec.kind == "suite" else spec.text
        tokens = self.backend.tokenize(text or "")
        if len(tokens) < 2:
            raise UsageError("the prompt is empty", hint="pass a non-empty --prompt or --prompt-file")
        return tokens

    # ------------------------------------------------------------------ one run
    def run(self, prep: Prepared, *, run_id: str, rep_index: int, is_warmup: bool, point_index: int,
            load_s: float | None, protocol: GpuProtocol | None) -> dict[str, Any]:
        """One generation, measured, attributed and stored; returns its runs.parquet row.

        ``protocol``: the GPU measurement protocol when it applies to this point: a seeded random
        pause before the run (``gap_before_s``) and the GPU power domains' rise time discarded.
        """
        p = prep.point
        gap = protocol.gap_s(run_id) if protocol is not None else None
        if gap:
            self.events(ev.GapStarted(run_id=run_id, seconds=gap))
            time.sleep(gap)
        req = GenerationRequest(prompt_tokens=prep.prompt_tokens, n_gen=p.n_gen, seed=p.seed,
                                min_window_s=p.min_window_s)
        started_at = datetime.now(UTC)
        self.events(ev.RunStarted(run_id=run_id, warmup=is_warmup))
        self.sampler.read_all()  # every meter, power ones included, has a reading just before the window
        m0 = self.sampler.mark()
        res = self.backend.run(p.context_params(len(prep.prompt_tokens)), req)
        m1 = self.sampler.mark()
        self.sampler.read_all()  # ... and just after it, however late the sampler's next tick is
        row = self._base_row(prep, run_id=run_id, rep_index=rep_index, is_warmup=is_warmup,
                             point_index=point_index, started_at=started_at, load_s=load_s)
        row["gap_before_s"] = gap
        samples = None
        if res.ok:
            samples = self.sampler.to_frame(run_id, min(m0, res.t_start_ns), max(m1, res.t_end_ns))
            row.update(self._measured(res, p.n_gen, samples, protocol))
        else:
            row.update(status="failed", error=res.error, stderr_tail=res.stderr_tail, t_start_ns=m0, t_end_ns=m1,
                       energy_source="none")
        row["flag_estimate"] = bool(row.get("flag_estimate")) or any(d.estimate for d in self.domains)
        self.store.add_run(row, samples)
        self.sampler.drop_before(m1)
        shown = row_metrics(row, HEADLINE_METRICS) if res.ok else {}
        self.events(ev.RunFinished(run_id=run_id, ok=res.ok, row=row, metrics=shown))
        return row

    def _measured(self, res: RunResult, n_gen: int, samples: Any, protocol: GpuProtocol | None) -> dict[str, Any]:
        """The columns of a finished run: timestamps, token counts, energy, and the stored metrics."""
        out: dict[str, Any] = dict(
            status="ok", t_start_ns=res.t_start_ns, t_prefill_end_ns=res.t_prefill_end_ns, t_end_ns=res.t_end_ns,
            window_s=res.window_ns / 1e9, prefill_s=(res.t_prefill_end_ns - res.t_start_ns) / 1e9,
            decode_s=(res.t_end_ns - res.t_prefill_end_ns) / 1e9,
            n_prompt_tokens=res.n_prompt_tokens, n_gen_tokens=res.n_gen_tokens, n_repeats=res.n_repeats,
            token_t_ns=res.token_t_ns, gpu_mem_used_bytes=res.gpu_mem_used_bytes,
            perf_t_p_eval_ms=res.perf.t_p_eval_ms, perf_t_eval_ms=res.perf.t_eval_ms,
            perf_n_p_eval=res.perf.n_p_eval, perf_n_eval=res.perf.n_eval,
        )
        out.update(itl_columns(res.token_t_ns, n_gen))
        jitter = self.sampler.jitter_stats(res.t_start_ns, res.t_end_ns).get("p99_ms")
        rise = protocol.rise_by_domain(self.domains) if protocol is not None else None
        out.update(attribute_run(self.domains, samples, t_start_ns=res.t_start_ns, t_end_ns=res.t_end_ns,
                                 t_prefill_end_ns=res.t_prefill_end_ns, idle_power_w=self.idle_power_w,
                                 jitter_p99_ms=jitter, rise_s=rise).columns)
        out.update(row_metrics(out, STORED_METRICS))
        return out

    def _base_row(self, prep: Prepared, *, run_id: str, rep_index: int, is_warmup: bool, point_index: int,
                  started_at: datetime, load_s: float | None) -> dict[str, Any]:
        p, m = prep.point, prep.model
        return {
            **point_columns(p, run_id=run_id, sweep_id=self.sweep_id, point_index=point_index, rep_index=rep_index,
                            is_warmup=is_warmup, backend=self.backend.name, mode=prep.backend_mode),
            "started_at": started_at, "model_name": m.name, "model_sha256": m.sha256,
            "model_synthetic": bool(m.synthetic), "model_size_bytes": m.size_bytes, "model_quant": m.quant,
            "n_ctx": p.resolved_n_ctx(len(prep.prompt_tokens)), "n_prompt": len(prep.prompt_tokens),
            "model_load_s": load_s, "flag_synthetic_model": bool(m.synthetic),
        }


def point_columns(p: RunPoint, *, run_id: str, sweep_id: str, point_index: int, rep_index: int, is_warmup: bool,
                  backend: str, mode: str) -> dict[str, Any]:
    """The columns of a run that come from its point alone (also what a failed point's row holds)."""
    prompt = p.prompt
    return {
        "run_id": run_id, "sweep_id": sweep_id, "point_id": p.point_id, "point_index": point_index,
        "rep_index": rep_index, "is_warmup": is_warmup, "model": p.model, "backend": backend, "backend_mode": mode,
        "load_group": p.load_key, "n_threads": p.n_threads,
        "n_threads_batch": p.n_threads_batch if p.n_threads_batch is not None else p.n_threads,
        "n_gpu_layers": p.n_gpu_layers, "n_batch": p.n_batch, "n_ubatch": p.n_ubatch, "n_ctx": p.n_ctx,
        "flash_attn": p.flash_attn, "repack": p.repack,
        "prompt_suite": prompt.suite if prompt.kind == "suite" else prompt.kind,
        "prompt_id": prompt.prompt_id if prompt.kind == "suite" else prompt.label(),
        "n_prompt": prompt.n_prompt, "n_gen": p.n_gen, "seed": p.seed,
    }

