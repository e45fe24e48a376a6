"""Running measurement points: model, prompt, meters, sampler, backend, results — for one run.

:class:`Session` is the machinery ``measure`` and ``sweep`` share: it owns the backend (a
crash-isolated llama.cpp worker), the opened meters and their sampler, and the results store. Each
:meth:`Session.run` performs one generation, attributes energy to it from the samples, and makes the
row durable before returning.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from energybench import __version__
from energybench.backends import Backend, GenerationRequest, ModelInfo, RunResult, create_backend
from energybench.errors import ConfigError, EnergybenchError, UsageError
from energybench.gpu_protocol import GpuProtocol
from energybench.plan import PromptSpec, RunPoint
from energybench.results import ResultsStore, read_runs
from energybench.sysinfo import clock_info, host_info, memory_bandwidth_gbs

EventSink = Callable[[str, dict[str, Any]], None]


def _noop(kind: str, payload: dict[str, Any]) -> None:
    return None


@dataclass
class Prepared:
    """A point ready to run: model resolved and loaded, prompt tokenized."""

    point: RunPoint
    model: Any  # energybench.models.ResolvedModel
    model_info: ModelInfo
    prompt_tokens: tuple[int, ...]
    load_s: float | None  # None when the loaded model was reused
    backend_mode: str


def backend_mode(n_gpu_layers: int, n_layer: int | None, supports_gpu: bool) -> str:
    """cpu / cuda-partial / cuda-full from the offload request and the model's layer count.

    llama.cpp counts the output layer as one more offloadable layer: n_layer + 1 (or -1) = all,
    so n_gpu_layers == n_layer (every repeating layer, output layer on the CPU) is still partial.
    ``n_layer`` None (the model could not be read, e.g. for a failed row): a positive request
    counts as partial. A build without GPU offload runs everything on the CPU.
    """
    if n_gpu_layers == 0 or not supports_gpu:
        return "cpu"
    if n_gpu_layers < 0 or (n_layer is not None and n_gpu_layers >= n_layer + 1):
        return "cuda-full"
    return "cuda-partial"


def timing_columns(res: RunResult, n_gen_requested: int) -> dict[str, Any]:
    """Latency figures of one run from its per-token timestamps."""
    if not res.ok or not res.token_t_ns:
        return {}
    prefill_s = (res.t_prefill_end_ns - res.t_start_ns) / 1e9
    decode_s = (res.t_end_ns - res.t_prefill_end_ns) / 1e9
    t = np.asarray(res.token_t_ns, dtype=np.int64)
    # inter-token latencies within each repeat (the re-start marker of a --min-window repeat is
    # not a real token interval)
    per = max(1, n_gen_requested)
    itl = []
    for k in range(0, len(t), per):
        chunk = t[k:k + per]
        if len(chunk) > 1:
            itl.append(np.diff(chunk))
    itl_ms = np.concatenate(itl) / 1e6 if itl else np.array([])
    decode_tokens = max(0, per - 1) * res.n_repeats
    return {
        "window_s": (res.t_end_ns - res.t_start_ns) / 1e9,
        "ttft_ms": prefill_s * 1e3,
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "prefill_tok_s": res.n_prompt_tokens / prefill_s if prefill_s > 0 else None,
        "decode_tok_s": decode_tokens / decode_s if decode_s > 0 and decode_tokens else None,
        "itl_p50_ms": float(np.percentile(itl_ms, 50)) if itl_ms.size else None,
        "itl_p95_ms": float(np.percentile(itl_ms, 95)) if itl_ms.size else None,
        "itl_max_ms": float(itl_ms.max()) if itl_ms.size else None,
    }


class Session:
    """Backend + meters + sampler + store for a sequence of runs."""

    def __init__(
        self,
        store: ResultsStore,
        selection: Any,  # energybench.meters.Selection
        *,
        sample_period_s: float = 0.02,
        backend: Backend | None = None,
        backend_name: str = "llama.cpp",
        events: EventSink | None = None,
        sweep_id: str = "",
    ) -> None:
        from energybench.sampling import Sampler

        self.store = store
        self.selection = selection
        self.backend: Backend = backend or create_backend(backend_name)
        self.sampler = Sampler(selection, period_s=sample_period_s)
        self.events = events or _noop
        self.sweep_id = sweep_id
        self.domains = list(getattr(self.sampler, "domains", []))
        self.idle_power_w: dict[str, float] = {}
        #: pauses taken before runs under the GPU protocol, run_id -> seconds (callers record them)
        self.gaps_s: dict[str, float] = {}
        self._models: dict[str, Any] = {}
        self._loaded_key: str | None = None
        self.model_loads = 0
        self.model_load_s_total = 0.0

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Session:
        self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sampler.stop()
        finally:
            self.backend.close()

    # ------------------------------------------------------------------ idle and cooldown
    def idle_baseline(self, seconds: float, name: str = "idle-0") -> dict[str, float]:
        """Measure power with nothing running; stores its samples; returns W per domain."""
        from energybench.energy import idle_baseline

        if seconds <= 0 or not self.domains:
            return self.idle_power_w
        self.events("idle", {"seconds": seconds, "name": name})
        t0 = self.sampler.mark()
        time.sleep(seconds)
        t1 = self.sampler.mark()
        samples = self.sampler.to_frame(name, t0, t1)
        self.idle_power_w = idle_baseline(samples, self.domains, t0, t1)
        self.store.add_samples(name, samples)
        baselines = self.store.read_metadata().get("idle_baselines", [])
        baselines.append({"name": name, "t_start_ns": t0, "t_end_ns": t1, "power_w": self.idle_power_w})
        self.store.update_metadata(idle_baselines=baselines)
        self.sampler.drop_before(t1)
        return self.idle_power_w

    def cooldown(self, seconds: float) -> None:
        if seconds > 0:
            self.events("cooldown", {"seconds": seconds})
            time.sleep(seconds)

    def cooldown_until_idle(self, within_pct: float, hold_s: float, max_s: float) -> float:
        """Wait until total power is within ``within_pct`` of idle for ``hold_s`` (capped at ``max_s``)."""
        idle_total = sum(self.idle_power_w.get(d.name, 0.0) for d in self.domains if d.parent is None)
        t_start = time.monotonic()
        if idle_total <= 0:
            self.cooldown(min(hold_s, max_s))
            return time.monotonic() - t_start
        self.events("cooldown", {"until_idle": True, "max_s": max_s})
        held_since = None
        while time.monotonic() - t_start < max_s:
            time.sleep(min(0.25, hold_s / 4 if hold_s > 0 else 0.25))
            power = self.sampler.latest_power_w()
            total = sum(power.get(d.name, 0.0) for d in self.domains if d.parent is None)
            if total <= idle_total * (1 + within_pct / 100.0):
                held_since = held_since or time.monotonic()
                if time.monotonic() - held_since >= hold_s:
                    break
            else:
                held_since = None
        return time.monotonic() - t_start

    # ------------------------------------------------------------------ points
    def resolve(self, ref: str) -> Any:
        from energybench.models import resolve_model

        if ref not in self._models:
            self._models[ref] = resolve_model(ref)
        return self._models[ref]

    def prepare(self, point: RunPoint) -> Prepared:
        model = self.resolve(point.model)
        load_s = None
        before = getattr(self.backend, "model_loads", None)
        t0 = time.monotonic()
        info = self.backend.load(point.load_params(str(model.path)))
        if getattr(self.backend, "model_loads", None) != before:
            load_s = time.monotonic() - t0
            self.model_loads += 1
            self.model_load_s_total += load_s
            self.events("load", {"model": point.model, "seconds": load_s})
        tokens = self.prompt_tokens(point.prompt)
        n_ctx = point.resolved_n_ctx(len(tokens))
        if len(tokens) + point.n_gen > n_ctx:
            raise ConfigError(f"n_ctx={n_ctx} is smaller than prompt ({len(tokens)} tokens) + n_gen ({point.n_gen})",
                              hint=f"set n_ctx >= {len(tokens) + point.n_gen} or shorten the prompt")
        if n_ctx > info.n_ctx_train > 0:
            self.events("warning", {"message": f"n_ctx={n_ctx} exceeds the model's training context ({info.n_ctx_train})"})
        supports = self.backend.info().supports_gpu_offload
        return Prepared(point=point, model=model, model_info=info, prompt_tokens=tuple(tokens), load_s=load_s,
                        backend_mode=backend_mode(point.n_gpu_layers, info.n_layer, supports))

    def prompt_tokens(self, spec: PromptSpec) -> list[int]:
        from energybench import prompts

        if spec.kind == "synthetic":
            if not spec.n_prompt or spec.n_prompt < 1:
                raise ConfigError(f"n_prompt={spec.n_prompt} must be >= 1")
            return prompts.exact_prompt_tokens(self.backend.tokenize, spec.n_prompt)
        if spec.kind == "suite":
            text = prompts.get_prompt(spec.suite or "", spec.prompt_id or "").text
        elif spec.kind == "text":
            text = spec.text or ""
        else:
            raise ConfigError(f"prompt kind {spec.kind!r} is not one of synthetic, suite, text")
        tokens = self.backend.tokenize(text)
        if len(tokens) < 2:
            raise UsageError("the prompt is empty", hint="pass a non-empty --prompt or --prompt-file")
        return tokens

    # ------------------------------------------------------------------ one run
    def run(self, prep: Prepared, *, run_id: str, rep_index: int, is_warmup: bool, point_index: int = 0,
            load_s: float | None = None, protocol: GpuProtocol | None = None) -> dict[str, Any]:
        """One generation, measured, attributed and stored. Returns the row.

        ``protocol``: the GPU measurement protocol; for a point that offloads it pauses a seeded
        random gap before the run (recorded in :attr:`gaps_s`) and discards the rise time of GPU
        power domains in attribution. (Its minimum window is already in ``prep.point``.)
        """
        from energybench.energy import energy_columns

        p = prep.point
        gpu = protocol is not None and protocol.applies_to(p.n_gpu_layers)
        gap = protocol.gap_s(run_id) if gpu else 0.0  # type: ignore[union-attr]
        if gap > 0:
            self.events("gap", {"run_id": run_id, "seconds": gap})
            time.sleep(gap)
        if gpu:
            self.gaps_s[run_id] = gap
        req = GenerationRequest(prompt_tokens=prep.prompt_tokens, n_gen=p.n_gen, seed=p.seed,
                                min_window_s=p.min_window_s)
        ctx = p.context_params(len(prep.prompt_tokens))
        started_at = datetime.now(UTC)
        self.events("run_start", {"run_id": run_id, "warmup": is_warmup})
        m0 = self.sampler.mark()
        res = self.backend.run(ctx, req)
        m1 = self.sampler.mark()
        row = self._base_row(prep, run_id=run_id, rep_index=rep_index, is_warmup=is_warmup,
                             point_index=point_index, started_at=started_at, load_s=load_s)
        samples = None
        if res.ok:
            row.update(timing_columns(res, p.n_gen))
            row.update(
                status="ok",
                t_start_ns=res.t_start_ns, t_prefill_end_ns=res.t_prefill_end_ns, t_end_ns=res.t_end_ns,
                n_prompt_tokens=res.n_prompt_tokens, n_gen_tokens=res.n_gen_tokens, n_repeats=res.n_repeats,
                token_t_ns=res.token_t_ns, gpu_mem_used_bytes=res.gpu_mem_used_bytes,
                perf_t_p_eval_ms=res.perf.t_p_eval_ms, perf_t_eval_ms=res.perf.t_eval_ms,
                perf_n_p_eval=res.perf.n_p_eval, perf_n_eval=res.perf.n_eval,
            )
            samples = self.sampler.to_frame(run_id, min(m0, res.t_start_ns), max(m1, res.t_end_ns))
            jitter = self.sampler.jitter_stats(res.t_start_ns, res.t_end_ns).get("p99_ms")
            rise = protocol.rise_by_domain(self.domains) if gpu else None  # type: ignore[union-attr]
            row.update(energy_columns(self.domains, samples, res.t_start_ns, res.t_prefill_end_ns, res.t_end_ns,
                                      self.idle_power_w, jitter_p99_ms=jitter, rise_s=rise))
        else:
            row.update(status="failed", error=res.error, stderr_tail=res.stderr_tail,
                       t_start_ns=m0, t_end_ns=m1, energy_source="none")
        row["flag_estimate"] = bool(row.get("flag_estimate")) or any(d.estimate for d in self.domains)
        if gpu:
            row["gap_before_s"] = gap
        self.store.add_run(row, samples)
        self.sampler.drop_before(m1)
        self.events("run_end", {"run_id": run_id, "row": row})
        return row

    def _base_row(self, prep: Prepared, *, run_id: str, rep_index: int, is_warmup: bool, point_index: int,
                  started_at: datetime, load_s: float | None) -> dict[str, Any]:
        p, m = prep.point, prep.model
        prompt = p.prompt
        return {
            "run_id": run_id, "sweep_id": self.sweep_id, "point_id": p.point_id, "point_index": point_index,
            "rep_index": rep_index, "is_warmup": is_warmup, "started_at": started_at,
            "model": p.model, "model_name": m.name, "model_sha256": m.sha256, "model_synthetic": bool(m.synthetic),
            "model_size_bytes": m.size_bytes, "model_quant": m.quant,
            "backend": self.backend.name, "backend_mode": prep.backend_mode, "load_group": p.load_key,
            "n_threads": p.n_threads, "n_threads_batch": p.n_threads_batch if p.n_threads_batch is not None else p.n_threads,
            "n_gpu_layers": p.n_gpu_layers, "n_batch": p.n_batch, "n_ubatch": p.n_ubatch,
            "n_ctx": p.resolved_n_ctx(len(prep.prompt_tokens)), "flash_attn": p.flash_attn, "repack": p.repack,
            "prompt_suite": prompt.suite if prompt.kind == "suite" else prompt.kind,
            "prompt_id": prompt.prompt_id if prompt.kind == "suite" else prompt.label(),
            "n_prompt": len(prep.prompt_tokens), "n_gen": p.n_gen, "seed": p.seed,
            "model_load_s": load_s, "flag_synthetic_model": bool(m.synthetic),
        }


# ---------------------------------------------------------------------------- measure


@dataclass
class MeasureOptions:
    """How to measure one point (the ``measure`` command's options)."""

    warmup: int = 1
    reps: int = 5
    idle_s: float = 2.0
    cooldown_s: float = 0.0
    sample_period_s: float = 0.02
    meters: list[str] | None = None  # None = automatic selection
    cpu_tdp_w: float | None = None
    allow_estimate: bool = True
    out_dir: Path | None = None
    #: GPU measurement protocol (Yang et al. SC'24) for a point that offloads; None = off
    #: (``--no-gpu-protocol``). It raises the window to ``min_window_s`` and ``reps`` to
    #: ``min_trials``, pauses a random gap before each run and discards the GPU rise time.
    gpu_protocol: GpuProtocol | None = field(default_factory=GpuProtocol)


@dataclass
class MeasureResult:
    out_dir: Path
    runs: pl.DataFrame
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def default_out_dir(prefix: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{prefix}-{stamp}"


def validate_measure(point: RunPoint, opts: MeasureOptions) -> None:
    """Check a measure request's values (ConfigError naming the option, the value and what is allowed)."""
    checks = [
        ("--threads", point.n_threads, point.n_threads >= 1, "an integer >= 1"),
        ("--n-gen", point.n_gen, point.n_gen >= 1, "an integer >= 1"),
        ("--batch", point.n_batch, point.n_batch >= 1, "an integer >= 1"),
        ("--ubatch", point.n_ubatch, 1 <= point.n_ubatch <= point.n_batch, f"between 1 and --batch ({point.n_batch})"),
        ("--reps", opts.reps, opts.reps >= 1, "an integer >= 1"),
        ("--warmup", opts.warmup, opts.warmup >= 0, "an integer >= 0"),
        ("--n-gpu-layers", point.n_gpu_layers, point.n_gpu_layers >= -1, "-1 (all) or >= 0"),
        ("--idle", opts.idle_s, opts.idle_s >= 0, "seconds >= 0"),
    ]
    if point.prompt.kind == "synthetic":
        checks.append(("--n-prompt", point.prompt.n_prompt, (point.prompt.n_prompt or 0) >= 1, "an integer >= 1"))
    if point.n_ctx is not None and point.prompt.kind == "synthetic":
        need = (point.prompt.n_prompt or 0) + point.n_gen
        checks.append(("--ctx", point.n_ctx, point.n_ctx >= need, f">= n_prompt + n_gen = {need}"))
    for name, value, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"{name}={value} is invalid: must be {allowed}")


def run_metadata(*, kind: str, backend_info: Any, selection: Any, models: dict[str, Any], config: dict[str, Any],
                 config_hash: str | None = None, sampler: Any = None) -> dict[str, Any]:
    """The metadata.json of a results directory."""
    from dataclasses import asdict

    meters = []
    for m in selection.meters:
        meters.append({"name": m.name, "description": getattr(m, "description", ""), "estimate": bool(getattr(m, "estimate", False))})
    domains = [d.to_dict() for d in getattr(selection, "domains", [])]
    gpus: list[dict[str, Any]] = []
    try:
        from energybench.meters.nvml import gpu_inventory

        gpus = gpu_inventory()
    except Exception:  # noqa: BLE001 - no NVIDIA driver: no GPUs to list
        gpus = []
    return {
        "kind": kind,
        "energybench_version": __version__,
        "host": host_info(),
        **clock_info(),
        "gpus": gpus,
        "backend": asdict(backend_info),
        "meters": meters,
        "domains": domains,
        "meter_warnings": list(getattr(selection, "warnings", [])),
        "models": {ref: {"name": m.name, "path": str(m.path), "sha256": m.sha256, "size_bytes": m.size_bytes,
                         "synthetic": bool(m.synthetic), "quant": m.quant, "shape": m.shape, "source": m.source}
                   for ref, m in models.items()},
        "config": config,
        "config_hash": config_hash,
        "memory_bandwidth_gbs": memory_bandwidth_gbs(),  # decode roofline ceiling (cached per machine)
        "sampler": ({"period_s": sampler.period_s, "thread_nice": sampler.nice,
                     "where": "a thread of the measuring process (never the inference worker)"}
                    if sampler is not None else None),
        "status": "running",
    }


def measure(point: RunPoint, opts: MeasureOptions, *, events: EventSink | None = None) -> MeasureResult:
    """Measure one configuration: idle baseline, warm-ups, repetitions; results written as Parquet."""
    from energybench.meters import select_meters

    validate_measure(point, opts)
    events = events or _noop
    out_dir = Path(opts.out_dir) if opts.out_dir else default_out_dir("measure")
    store = ResultsStore(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UsageError(f"output directory {str(out_dir)!r} is not empty", hint="choose another --out")
    backend = create_backend(point.backend, start=True)  # its start overlaps meter selection
    try:
        selection = select_meters(opts.meters, cpu_tdp_w=opts.cpu_tdp_w, allow_estimate=opts.allow_estimate)
        info = backend.info()
        if point.n_gpu_layers != 0 and not info.supports_gpu_offload:
            raise UsageError(
                f"--n-gpu-layers {point.n_gpu_layers} asks for GPU offload, but the installed llama-cpp-python is a "
                "CPU-only build", hint="install a CUDA build: see docs/cuda.md, or use --n-gpu-layers 0")
        session = Session(store, selection, sample_period_s=opts.sample_period_s, backend=backend, events=events)
    except BaseException:
        backend.close()
        raise
    protocol = opts.gpu_protocol if opts.gpu_protocol is not None and opts.gpu_protocol.enabled else None
    gpu = protocol is not None and protocol.applies_to(point.n_gpu_layers)
    notes: list[str] = []
    reps = opts.reps
    if gpu:
        assert protocol is not None
        point = protocol.apply_to_point(point)
        reps = protocol.trials(point.n_gpu_layers, opts.reps)
        notes.append(gpu_protocol_note(protocol, opts.reps, reps))
    with session:
        model = session.resolve(point.model)
        meta = run_metadata(kind="measure", backend_info=info, selection=selection, models={point.model: model},
                            config={"point": point.to_dict(), "options": _opts_dict(opts)}, sampler=session.sampler)
        if protocol is not None:
            meta["gpu_protocol"] = protocol.metadata(point_ids=[point.point_id] if gpu else [])
        store.create(meta)
        prep = session.prepare(point)
        session.idle_baseline(opts.idle_s)
        total = opts.warmup + reps
        for i in range(total):
            warm = i < opts.warmup
            idx = i if warm else i - opts.warmup
            run_id = f"{point.point_id}-{'w' if warm else 'r'}{idx:03d}"
            if i and opts.cooldown_s:
                session.cooldown(opts.cooldown_s)
            session.run(prep, run_id=run_id, rep_index=idx, is_warmup=warm,
                        load_s=prep.load_s if i == 0 else None, protocol=protocol)
            events("progress", {"done": i + 1, "total": total})
    finish: dict[str, Any] = {"status": "finished"}
    if protocol is not None:
        finish["gpu_protocol"] = protocol.metadata(point_ids=[point.point_id] if gpu else [], gaps_s=session.gaps_s)
    store.update_metadata(**finish)
    store.consolidate()
    runs = read_runs(out_dir)
    summary = summarize(runs)
    warnings = list(getattr(selection, "warnings", [])) + notes + summary.pop("warnings", [])
    return MeasureResult(out_dir=out_dir, runs=runs, summary=summary, warnings=warnings)


def gpu_protocol_note(protocol: GpuProtocol, reps_asked: int, reps: int) -> str:
    """One line saying what the GPU protocol changed for a measurement that offloads."""
    lo, hi = protocol.random_gap_s
    rise = "auto" if protocol.discard_rise_s is None else f"{protocol.discard_rise_s:g} s"
    more = f" (raised from {reps_asked})" if reps > reps_asked else ""
    return (f"GPU measurement protocol (Yang et al. SC'24) applied: runs of >= {protocol.min_window_s:g} s, "
            f"{reps} measured repetitions{more}, random {lo:g}-{hi:g} s gaps, rise time {rise}; "
            "turn it off with --no-gpu-protocol")


def _opts_dict(opts: MeasureOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in opts.__dict__.items():
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, GpuProtocol):
            v = v.to_dict()
        out[k] = v
    return out


SUMMARY_METRICS = [
    ("ttft_ms", "TTFT", "ms"),
    ("prefill_tok_s", "prefill", "tok/s"),
    ("decode_tok_s", "decode", "tok/s"),
    ("itl_p50_ms", "ITL p50", "ms"),
    ("itl_p95_ms", "ITL p95", "ms"),
    ("energy_j", "energy", "J"),
    ("energy_net_j", "energy (net)", "J"),
    ("j_per_token", "J/token", "J/tok"),
    ("j_per_token_net", "J/token (net)", "J/tok"),
    ("avg_power_w", "avg power", "W"),
]


def summarize(runs: pl.DataFrame) -> dict[str, Any]:
    """Median and spread (min, max) over the measured (non-warm-up, ok) runs of one point."""
    ok = runs.filter(~pl.col("is_warmup") & (pl.col("status") == "ok"))
    failed = runs.filter(pl.col("status") != "ok")
    # per-request energy per output token, as the report computes it (a --min-window run repeats
    # the decode: one request = one prefill + one decode)
    from energybench.report.metrics import with_energy, with_latency

    per_req = with_energy(with_latency(ok.lazy())).select("j_per_out_token", "j_per_out_token_net").collect()
    ok = ok.with_columns(j_per_token=per_req["j_per_out_token"], j_per_token_net=per_req["j_per_out_token_net"])
    metrics: dict[str, Any] = {}
    for col, label, unit in SUMMARY_METRICS:
        vals = [v for v in ok[col].to_list() if v is not None] if col in ok.columns else []
        if not vals:
            continue
        metrics[col] = {"label": label, "unit": unit, "median": statistics.median(vals), "min": min(vals),
                        "max": max(vals), "n": len(vals),
                        "cv_pct": (statistics.stdev(vals) / statistics.mean(vals) * 100) if len(vals) > 1 and statistics.mean(vals) else None}
    domains: dict[str, dict[str, Any]] = {}
    if ok.height and "domains" in ok.columns:
        exploded = ok.select("domains").explode("domains").unnest("domains").drop_nulls("domain")
        for d in exploded["domain"].unique(maintain_order=True).to_list():
            sub = exploded.filter(pl.col("domain") == d)
            first = sub.row(0, named=True)
            domains[d] = {"meter": first["meter"], "estimate": first["estimate"], "parent": first["parent"],
                          "avg_power_w": _median(sub["avg_power_w"]), "energy_j": _median(sub["energy_j"]),
                          "idle_power_w": first["idle_power_w"]}
    warnings = []
    if failed.height:
        errs = failed["error"].drop_nulls().unique().to_list()
        warnings.append(f"{failed.height} run(s) failed: {'; '.join(errs)[:300]}")
    if ok.height and ok["flag_estimate"].any():
        warnings.append("energy is an ESTIMATE (no hardware meter available): not a measurement")
    if ok.height and ok["flag_short_window"].fill_null(False).any():
        warnings.append("some windows are shorter than 10x the meter's update period: energy unreliable "
                        "(use --min-window)")
    if ok.height and ok["flag_synthetic_model"].any():
        warnings.append("synthetic model (shape twin with random weights): speed/energy only, no quality")
    for col in ("decode_tok_s", "energy_j"):
        m = metrics.get(col)
        if m and m.get("cv_pct") and m["cv_pct"] > 10:
            warnings.append(f"{m['label']} varies a lot between runs (CV {m['cv_pct']:.0f}% > 10%): results unstable")
    if 0 < ok.height < 10:
        warnings.append(f"only {ok.height} repetition(s): use >= 10 for confidence intervals")
    first = runs.row(0, named=True) if runs.height else {}
    return {
        "n_runs": runs.height, "n_ok": ok.height, "n_failed": failed.height,
        "model": first.get("model"), "model_sha256": first.get("model_sha256"),
        "synthetic": first.get("model_synthetic"), "backend_mode": first.get("backend_mode"),
        "energy_source": (ok["energy_source"].drop_nulls().unique().to_list() or ["none"])[0] if ok.height else "none",
        "meters": first.get("meters"),
        "metrics": metrics, "domains": domains, "warnings": warnings,
    }


def _median(series: pl.Series) -> float | None:
    vals = [v for v in series.to_list() if v is not None]
    return statistics.median(vals) if vals else None


__all__ = ["Session", "Prepared", "MeasureOptions", "MeasureResult", "measure", "summarize", "timing_columns",
           "backend_mode", "gpu_protocol_note", "run_metadata", "EnergybenchError"]
