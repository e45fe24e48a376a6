"""The sections of a sweep config and :class:`SweepConfig`, plus what is computed from a config.

A sweep config names the models, a grid of llama.cpp settings (:class:`Grid`: every axis a
scalar, a list or a range string, see :mod:`energybench.config.axes`) or a union of grids
(``grids:``, a list of :class:`NamedGrid` over the shared ``grid:``), and the measurement protocol
(warm-ups, :class:`Repetitions`, :class:`Cooldown`, idle baseline, order, :class:`GpuProtocolConfig`).
Every model is ``extra="forbid"``: an unknown key is an error that lists the allowed keys and
suggests the closest one (:mod:`energybench.config.messages`).

Minimal file (everything else has a default; ``energybench config schema`` prints them all)::

    models: [synthetic:tiny]

The defaults live in :mod:`energybench.defaults`: warm-ups kept but flagged, enough repetitions for
confidence intervals, an idle baseline, and a cooldown until power is back near idle (pyperf
practice, "Tune the system for benchmarks", pyperf documentation).

Also here: :func:`prompt_specs` (the prompt axis as :class:`~energybench.point.PromptSpec` values),
:func:`config_hash`, :func:`config_json_schema` and :func:`offloads`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from energybench import defaults
from energybench.config.axes import (
    _NUMERIC_START,
    BatchAxis,
    BoolAxis,
    CtxAxis,
    FieldProblem,
    FlashAxis,
    GapRange,
    GenAxis,
    GpuLayersAxis,
    MainGpuAxis,
    NonNegFloat,
    NonNegInt,
    NPromptAxis,
    PosFloat,
    PosInt,
    RiseField,
    SeedAxis,
    StrAxis,
    TextAxis,
    ThreadsAxis,
    ThreadsBatchAxis,
    UbatchAxis,
    _no_duplicates,
    _not_bool,
    _str_list,
)
from energybench.metrics import ADAPTIVE_METRICS

ORDERS = ("grouped", "shuffled", "interleaved")
Order = Literal["grouped", "shuffled", "interleaved"]
#: Metrics an adaptive repetition count can watch: exactly the vocabulary's per-run metrics.
AdaptiveMetric = Literal[ADAPTIVE_METRICS]  # type: ignore[valid-type]
#: Names that older energybench versions accepted, and what to write instead.
RENAMED_METRICS = {
    "j_per_token": "'j_per_token' meant different things in different places and is gone: use "
                   "j_per_output_token (energy per generated token) or j_per_processed_token (per prompt + "
                   "generated token)",
    "j_per_token_net": "'j_per_token_net' is gone: use j_per_output_token_net or j_per_processed_token_net",
    "window_s": "'window_s' is not a metric: use e2e_s (request latency) or energy_j (window energy)",
}
#: Meter names known when the meter registry cannot be imported (see :func:`known_meters`).
FALLBACK_METERS = ("rapl", "nvml", "amdsmi", "hwmon", "powermetrics", "powergadget", "estimate")
#: Version tag mixed into :func:`config_hash` (bump when normalisation changes meaning).
HASH_VERSION = "energybench-sweep-config-v1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _short_list(items: Sequence[Any], limit: int = 12) -> str:
    items = [str(i) for i in items]
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


# ----------------------------------------------------------------------------- sections

class PromptAxis(_Strict):
    __doc__ = f"""What to feed the model: any combination of exact synthetic lengths, suite prompts and
    literal texts (each is one value of the prompt axis). Default: ``n_prompt: [{defaults.N_PROMPT}]``."""

    n_prompt: NPromptAxis | None = Field(None, description="exact synthetic prompt lengths in tokens (BOS counted)")
    suites: StrAxis | None = Field(None, description="shipped prompt suites: short_dialogue, analytical_reasoning, narrative_generation")
    prompt_ids: StrAxis | None = Field(None, description="only these prompt ids of the suites (default: all)")
    text: TextAxis | None = Field(None, description="literal prompt text(s)")

    @model_validator(mode="before")
    @classmethod
    def _default_length(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not any(data.get(k) is not None for k in ("n_prompt", "suites", "text")):
            if data.get("prompt_ids") is None:
                return {**data, "n_prompt": [defaults.N_PROMPT]}
        return data

    @model_validator(mode="after")
    def _check_suites(self) -> PromptAxis:
        from energybench.prompts import list_suites, load_suite, unknown_suite_message

        if self.prompt_ids is not None and self.suites is None:
            raise FieldProblem("prompt_ids needs suites (the suites the ids belong to)", path=("prompt_ids",),
                               value=self.prompt_ids)
        if self.suites is None:
            return self
        known = list_suites()
        for i, s in enumerate(self.suites):
            if s not in known:
                raise FieldProblem(unknown_suite_message(s).replace(f"unknown prompt suite {s!r}", "unknown prompt suite"),
                                   path=("suites", i), value=s)
        if self.prompt_ids is not None:
            ids_by_suite = {s: [p.id for p in load_suite(s)] for s in self.suites}
            every = [i for ids in ids_by_suite.values() for i in ids]
            for i, pid in enumerate(self.prompt_ids):
                if pid not in every:
                    close = difflib.get_close_matches(pid, every, n=1, cutoff=0.5)
                    guess = f"; did you mean {close[0]!r}?" if close else ""
                    raise FieldProblem(f"no prompt with this id in suites {', '.join(self.suites)}{guess} "
                                       f"(ids: {_short_list(every)})", path=("prompt_ids", i), value=pid)
            for i, s in enumerate(self.suites):
                if not set(ids_by_suite[s]) & set(self.prompt_ids):
                    raise FieldProblem(f"none of prompt_ids belongs to suite {s!r}; remove the suite or add its ids "
                                       f"({_short_list(ids_by_suite[s])})", path=("suites", i), value=s)
        return self

    def synthetic_lengths(self) -> list[int]:
        return list(self.n_prompt or [])


def _axis_path(name: str, index: int, values: Sequence[Any]) -> tuple[str | int, ...]:
    """``(name, index)``, or just ``(name,)`` for a one-value axis (most likely written as a scalar)."""
    return (name, index) if len(values) > 1 else (name,)


class Grid(_Strict):
    """The axes of the sweep. Every axis takes a scalar, a list or a range string; the sweep runs
    the cartesian product (models outermost)."""

    threads: ThreadsAxis = Field(default_factory=lambda: [defaults.threads()],
                                 description="CPU threads for generation (llama-bench -t); default: the physical cores")
    threads_batch: ThreadsBatchAxis = Field([None], description="CPU threads for prompt processing (-tb); auto = threads")
    n_gpu_layers: GpuLayersAxis = Field([defaults.N_GPU_LAYERS],
                                        description="layers offloaded to the GPU (-ngl); -1/all = every layer")
    batch: BatchAxis = Field([defaults.BATCH], description="logical batch size n_batch (-b)")
    ubatch: UbatchAxis = Field([None], description="physical batch size n_ubatch (-ub); "
                                                     f"auto = min(batch, {defaults.LLAMA_DEFAULT_UBATCH})")
    flash_attn: FlashAxis = Field([defaults.FLASH_ATTN_MODE], description="flash attention (-fa): auto, on, off")
    n_ctx: CtxAxis = Field([None], description="context size (-c); auto = prompt + generation rounded up to 256")
    prompt: PromptAxis = Field(default_factory=PromptAxis, description="prompts (-p synthetic lengths, suites or text)")
    n_gen: GenAxis = Field([defaults.N_GEN], description="tokens generated per run (-n), exactly")
    # repack false: llama.cpp AMX kernels (ggml-cpu/amx) crash on quantized models on some Sapphire
    # Rapids VMs; llama_model_params.use_extra_bufts = false disables them. True keeps the faster
    # repacked weights.
    repack: BoolAxis = Field([defaults.REPACK], description="llama.cpp weight repacking (extra buffer types); "
                                                 "false avoids AMX kernel crashes on some builds")
    seed: SeedAxis = Field([defaults.SEED], description="sampler seed")
    main_gpu: MainGpuAxis = Field([defaults.MAIN_GPU], description="main GPU index (-mg)")
    offload_kqv: BoolAxis = Field([defaults.OFFLOAD_KQV], description="keep the KV cache on the GPU (-nkvo inverts)")
    use_mmap: BoolAxis = Field([defaults.USE_MMAP], description="memory-map the model file (--mmap)")

    @model_validator(mode="before")
    @classmethod
    def _prompt_shortcuts(cls, data: Any) -> Any:
        # ``prompt: 128`` / ``prompt: [128, 512]`` / ``prompt: "64,128"`` mean synthetic lengths;
        # ``prompt: short_dialogue`` / ``prompt: [short_dialogue, narrative_generation]`` mean suites.
        if isinstance(data, Mapping) and "prompt" in data:
            p = data["prompt"]
            items = list(p) if isinstance(p, (list, tuple)) else [p]
            if items and all(isinstance(i, str) and not _NUMERIC_START.match(i) for i in items):
                return {**data, "prompt": {"suites": p}}
            if isinstance(p, (int, str, list, tuple)) and not isinstance(p, bool):
                return {**data, "prompt": {"n_prompt": p}}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Grid:
        # n_ubatch <= n_batch for every combination the product will run.
        min_batch = min(self.batch)
        for i, ub in enumerate(self.ubatch):
            if ub is not None and ub > min_batch:
                raise FieldProblem(f"n_ubatch must be <= n_batch, and the grid pairs it with batch {min_batch} "
                                   f"(use ubatch values <= {min_batch}, "
                                   f"or ubatch: auto = min(batch, {defaults.LLAMA_DEFAULT_UBATCH}))",
                                   path=_axis_path("ubatch", i, self.ubatch), value=ub)
        # n_ctx >= n_prompt + n_gen for every synthetic prompt (suite/text lengths are checked at
        # run time with the model's tokenizer). Checked here because the low-level llama_decode has
        # no n_ctx guard (llama-cpp-python's high-level Llama raises ValueError).
        lengths = self.prompt.synthetic_lengths()
        if lengths:
            need = max(lengths) + max(self.n_gen)
            for i, c in enumerate(self.n_ctx):
                if c is not None and c < need:
                    raise FieldProblem(f"too small: the grid runs n_prompt {max(lengths)} + n_gen {max(self.n_gen)} "
                                       f"= {need} tokens (use n_ctx >= {need}, or n_ctx: auto)",
                                       path=_axis_path("n_ctx", i, self.n_ctx), value=c)
        return self

    def axis_sizes(self) -> dict[str, int]:
        """Number of values of each axis (the prompt axis counts every prompt it selects)."""
        sizes = {name: len(getattr(self, name)) for name in Grid.model_fields if name != "prompt"}
        sizes["prompt"] = len(prompt_specs(self.prompt))
        return sizes


#: The label of a grid: the prefix of its configuration ids (``cpu`` in ``cpu-t4``).
GRID_LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9]{0,15}$"


class NamedGrid(Grid):
    """One grid of a union (``grids:``): its axes, and how its configurations are named.

    A configuration's id is ``<label>-<code><value>`` (``cpu-t4``, ``gpu-l11``, ``gpu-b512``: the
    scheme of the study energybench grew from) when the point differs from the grid's ``base`` in
    at most one axis, and a compact label of every differing axis otherwise (``cpu.t8.b1024``);
    see :mod:`energybench.grid`. ``base`` defaults to the first value of every axis."""

    label: str | None = Field(None, pattern=GRID_LABEL_PATTERN,
                              description="prefix of this grid's configuration ids (cpu-t4: cpu); default: cpu for "
                                          "a point with n_gpu_layers 0, gpu otherwise")
    base: dict[str, Any] | None = Field(None, description="the grid's base point, {axis: value}; a point one axis "
                                                          "away from it is named <label>-<code><value>; default: "
                                                          "the first value of every axis")

    @field_validator("base", mode="before")
    @classmethod
    def _base_mapping(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, Mapping):
            raise FieldProblem("expected a mapping {axis: value}, e.g. {threads: 4, batch: 512}", value=v)
        return v

    @staticmethod
    def _axis_values(name: str, raw: Any) -> list[Any]:
        """``raw`` parsed as the grid axis ``name`` parses it (``auto``, ``all``, ranges ...)."""
        from pydantic import TypeAdapter

        info = Grid.model_fields[name]
        return TypeAdapter(Annotated[info.annotation, *info.metadata]).validate_python(raw)

    @model_validator(mode="after")
    def _check_base(self) -> NamedGrid:
        axes = [n for n in Grid.model_fields if n != "prompt"]
        for name, raw in (self.base or {}).items():
            if name not in axes:
                close = difflib.get_close_matches(str(name), axes, n=1, cutoff=0.5)
                guess = f"; did you mean {close[0]!r}?" if close else ""
                raise FieldProblem(f"not an axis of the grid{guess} (axes: {', '.join(axes)})", path=("base", name),
                                   value=raw)
            try:
                value = self._axis_values(name, raw)
            except Exception:  # noqa: BLE001 - any parse failure is the same problem for the user
                value = [object()]
            values = getattr(self, name)
            if len(value) != 1 or value[0] not in values:
                raise FieldProblem(f"the base must be one of the grid's values of {name} ({_short_list(values)})",
                                   path=("base", name), value=raw)
        return self

    def base_values(self) -> dict[str, Any]:
        """The base point: ``base`` where given, the axis's first value otherwise (prompt excluded)."""
        out = {n: getattr(self, n)[0] for n in Grid.model_fields if n != "prompt"}
        for name, raw in (self.base or {}).items():
            out[name] = self._axis_values(name, raw)[0]
        return out


class AdaptiveRepetitions(_Strict):
    """Repeat until the 95% CI half-width of ``metric`` (Student t, over the measured runs) is
    below ``target_ci_pct`` % of its mean, with at least ``min`` and at most ``max`` measured
    repetitions per point."""

    target_ci_pct: PosFloat = Field(defaults.ADAPTIVE_TARGET_CI_PCT, le=100,
                                    description="stop when the 95% CI half-width < this % of the mean")
    min: Annotated[int, BeforeValidator(_not_bool), Field(ge=2)] = Field(
        defaults.ADAPTIVE_MIN, description="repetitions before the first check (>= 2)")
    max: PosInt = Field(defaults.ADAPTIVE_MAX, description="never more repetitions than this")
    metric: AdaptiveMetric = Field(defaults.ADAPTIVE_METRIC, description="the per-run value whose CI is watched "
                                                                        "(a metric name of the README's glossary)")

    @field_validator("metric", mode="before")
    @classmethod
    def _renamed_metric(cls, v: Any) -> Any:
        if v in RENAMED_METRICS:
            raise FieldProblem(RENAMED_METRICS[v], value=v)
        return v

    @model_validator(mode="after")
    def _min_le_max(self) -> AdaptiveRepetitions:
        if self.min > self.max:
            raise FieldProblem(f"min repetitions ({self.min}) is larger than max ({self.max})", path=("min",),
                               value=self.min)
        return self


def _exactly_one_of(data: Any, keys: tuple[str, str], what: str) -> None:
    """Raise unless the mapping ``data`` sets exactly one of ``keys`` (unknown keys are left to
    ``extra="forbid"``, which names them)."""
    if not isinstance(data, Mapping) or any(k not in keys for k in data):
        return
    given = [k for k in keys if data.get(k) is not None]
    if len(given) != 1:
        raise FieldProblem(f"give exactly one of {what}", value=dict(data))


class Repetitions(_Strict):
    """``{fixed: N}`` (or just ``N``) or ``{adaptive: {...}}``; measured runs per point, warm-ups not counted."""

    fixed: PosInt | None = Field(None, description="exactly this many measured repetitions per point")
    adaptive: AdaptiveRepetitions | None = None

    @model_validator(mode="before")
    @classmethod
    def _shortcut(cls, data: Any) -> Any:
        if isinstance(data, (int, float, str)) and not isinstance(data, bool):
            return {"fixed": data}
        _exactly_one_of(data, ("fixed", "adaptive"), "fixed: N or adaptive: {target_ci_pct, min, max, metric}")
        return data


class UntilIdle(_Strict):
    """Wait until total power is within ``within_pct`` % of the idle baseline for ``hold_s``
    seconds, at most ``max_s`` seconds (measure from a settled machine: pyperf documentation,
    "Tune the system for benchmarks")."""

    within_pct: PosFloat = Field(defaults.UNTIL_IDLE_WITHIN_PCT,
                                 description="power within this % of idle counts as idle")
    hold_s: NonNegFloat = Field(defaults.UNTIL_IDLE_HOLD_S, description="seconds power must stay near idle")
    max_s: NonNegFloat = Field(defaults.UNTIL_IDLE_MAX_S, description="give up waiting after this many seconds")

    @model_validator(mode="after")
    def _hold_le_max(self) -> UntilIdle:
        if self.hold_s > self.max_s:
            raise FieldProblem(f"hold_s ({self.hold_s:g}) is longer than max_s ({self.max_s:g})", path=("hold_s",),
                               value=self.hold_s)
        return self


class Cooldown(_Strict):
    """Pause after every run: ``{fixed_s: S}`` (or just ``S``) or ``{until_idle: {...}}``."""

    fixed_s: NonNegFloat | None = Field(None, description="sleep this many seconds after each run")
    until_idle: UntilIdle | None = None

    @model_validator(mode="before")
    @classmethod
    def _shortcut(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"fixed_s": data}
        if isinstance(data, str) and data.strip().lower() == "until_idle":
            return {"until_idle": {}}
        _exactly_one_of(data, ("fixed_s", "until_idle"), "fixed_s: SECONDS or until_idle: {within_pct, hold_s, max_s}")
        return data

    @property
    def min_s(self) -> float:
        """The shortest this cooldown can take, seconds."""
        return self.fixed_s if self.fixed_s is not None else self.until_idle.hold_s  # type: ignore[union-attr]

    @property
    def max_s(self) -> float:
        """The longest this cooldown can take, seconds."""
        return self.fixed_s if self.fixed_s is not None else self.until_idle.max_s  # type: ignore[union-attr]


class GpuProtocolConfig(_Strict):
    """The GPU measurement protocol of Yang et al. (SC'24), applied to every point that offloads
    (``n_gpu_layers != 0``); CPU-only points are untouched. Defaults follow the paper's good practice
    (Yang et al., "Part-time Power Measurements: nvidia-smi's Lack of Attention", SC'24,
    arXiv:2312.02741): windows >= 5 s, >= 4 trials with randomised gaps, rise time discarded.
    See :mod:`energybench.gpu_protocol` for what each setting does."""

    enabled: bool = Field(defaults.GPU_PROTOCOL_ENABLED,
                          description="apply the protocol to points that offload (false: measure them like CPU points)")
    min_window_s: NonNegFloat = Field(defaults.GPU_MIN_WINDOW_S,
                                      description="each run of an offloading point lasts at least this long "
                                                  "(decoding repeats); the paper: >= 5 s")
    min_trials: PosInt = Field(defaults.GPU_MIN_TRIALS,
                               description="at least this many measured repetitions per offloading point; "
                                           "the paper: >= 4")
    random_gap_s: GapRange = Field(list(defaults.GPU_RANDOM_GAP_S),
                                   description="seeded random pause before each run of an offloading point, "
                                               "[lo, hi] seconds")
    discard_rise_s: RiseField = Field(defaults.GPU_DISCARD_RISE_S,
                                      description="rise time replaced by steady-state power in GPU energy: "
                                                  "auto or seconds")
    seed: NonNegInt = Field(defaults.GPU_GAP_SEED,
                            description="seed of the random gaps (a gap is a function of seed and run id)")


def known_meters() -> list[str]:
    """Meter names the registry offers (falls back to the documented names if it is absent)."""
    try:
        from energybench.meters import registry  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the registry is optional at config time
        return list(FALLBACK_METERS)
    for attr in ("meter_names", "names"):
        fn = getattr(registry, attr, None)
        if callable(fn):
            try:
                return sorted(fn())
            except Exception:  # noqa: BLE001
                break
    reg = getattr(registry, "REGISTRY", None)
    if isinstance(reg, Mapping):
        return sorted(reg)
    return list(FALLBACK_METERS)


def parse_meters(value: Any) -> Any:
    """``auto``, ``none`` (= ``[]``: time only) or a list of known meter names (FieldProblem otherwise)."""
    if value is None:
        return "auto"
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if value in ("none", ["none"], ("none",), []):
        return []  # time only: no energy measured
    names = _str_list(value, what="a meter name, auto, or none")
    known = known_meters()
    raw = value if isinstance(value, (list, tuple)) else None
    for i, n in enumerate(names):
        path = (i,) if raw is not None and len(raw) == len(names) else ()
        if n == "auto":
            raise FieldProblem("'auto' cannot be combined with meter names; write meters: auto alone", path=path, value=n)
        if n not in known:
            close = difflib.get_close_matches(n, known, n=1, cutoff=0.5)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            raise FieldProblem(f"unknown meter{guess} (known: {', '.join(known)}, or auto, or none)", path=path,
                               value=n)
    return names


MetersField = Annotated[
    Literal["auto"] | list[str], BeforeValidator(parse_meters),
    WithJsonSchema({"anyOf": [{"type": "string", "enum": ["auto", "none"]},
                              {"type": "array", "items": {"type": "string", "enum": list(FALLBACK_METERS)}}],
                    "description": "meters to use, auto = every available real meter (estimate only as a fallback), "
                                   "or none = time only"})]


def _models(value: Any) -> list[str]:
    if value is None:
        raise FieldProblem("at least one model is required (a GGUF path, a cached name, an alias such as "
                           "tinyllama-1.1b-chat:Q4_K_M, or synthetic:tiny)", value=value)
    names = [n.strip() for n in _str_list(value, what="a model reference: path, cached name, alias or "
                                                      "synthetic:SHAPE[:QUANT]", split_commas=False)]
    _no_duplicates(names, value)
    try:
        from energybench.models import parse_ref  # syntax only: no file, network or synthesis here
    except ImportError:  # pragma: no cover - the models package is part of energybench
        return names
    from energybench.errors import EnergybenchError

    for i, ref in enumerate(names):
        try:
            parse_ref(ref)
        except EnergybenchError as exc:
            path = (i,) if isinstance(value, (list, tuple)) else ()
            raise FieldProblem(exc.one_line(), path=path, value=ref) from None
    return names


ModelsField = Annotated[
    list[str], BeforeValidator(_models),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}],
                    "description": "model references (energybench.models.resolve_model syntax): GGUF path, "
                                   "cached name, alias (tinyllama-1.1b-chat:Q4_K_M), hf:REPO/FILE, https://..., "
                                   "synthetic:SHAPE[:QUANT]"})]


class SweepConfig(_Strict):
    """A whole sweep: models × grid, and how every point is measured."""

    name: str = Field(defaults.SWEEP_NAME, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                      description="a short name for the sweep (letters, digits, . _ -)")
    models: ModelsField = Field(..., description="at least one model: a GGUF path, a cached name, an alias like "
                                                 "tinyllama-1.1b-chat:Q4_K_M, or synthetic:tiny")
    backend: str = Field(defaults.BACKEND, description="inference backend (registry name)")
    grid: Grid = Field(default_factory=Grid, description="the axes of the sweep; with grids: the axes every grid "
                                                         "shares (each grid's own keys replace them)")
    grids: list[NamedGrid] | None = Field(None, min_length=1,
                                          description="a union of grids, each with its own axes over grid: (points "
                                                      "shared by two grids run once)")
    cpu_only: bool = Field(False, description="run only the points that need no GPU (n_gpu_layers 0); the others are "
                                              "listed as left out (sweep --cpu-only)")
    warmup: NonNegInt = Field(defaults.WARMUP,
                              description="warm-up runs per point (kept in the results, flagged is_warmup)")
    repetitions: Repetitions = Field(default_factory=lambda: Repetitions(fixed=defaults.REPETITIONS),
                                     description="measured runs per point: N, {fixed: N} or {adaptive: {...}}")
    cooldown: Cooldown = Field(default_factory=lambda: Cooldown(until_idle=UntilIdle()),
                               description="pause after each run: seconds, {fixed_s: S} or {until_idle: {...}}; "
                                           "default: until idle, or none when idle_baseline_s is 0")
    idle_baseline_s: NonNegFloat = Field(defaults.IDLE_BASELINE_S,
                                         description="seconds of idle power measured before the sweep (0 = none)")
    idle_every_min: PosFloat | None = Field(None, description="measure the idle baseline again every this many minutes")
    order: Order = Field(defaults.ORDER, description="grouped | shuffled (within load group, seeded) | "
                                                    "interleaved (round-robin across load groups)")
    order_seed: NonNegInt = Field(defaults.ORDER_SEED, description="seed of the shuffled/interleaved order")
    max_failures: PosInt = Field(defaults.MAX_FAILURES,
                                 description="failed runs of one point before it is skipped (and reported)")
    meters: MetersField = Field(defaults.METERS, description="meter names or auto")
    sample_period_ms: PosFloat = Field(defaults.SAMPLE_PERIOD_MS, le=10_000,
                                       description="power sampling period, milliseconds")
    cpu_tdp_w: PosFloat | None = Field(None, description="CPU TDP in watts for the estimate meter (no real meter)")
    allow_estimate: bool = Field(True, description="fall back to the labelled estimate meter when no real meter "
                                                   "measures the CPU (false: no CPU energy then)")
    min_window_s: NonNegFloat = Field(defaults.MIN_WINDOW_S, description="repeat decoding until a run lasts at least "
                                                                     "this long (short-window meters)")
    gpu_protocol: GpuProtocolConfig = Field(default_factory=GpuProtocolConfig,
                                            description="GPU measurement protocol (Yang et al. SC'24) for points that "
                                                        "offload: minimum window, trials, random gaps, rise time")
    output_dir: str | None = Field(None, description="results directory (relative to the working directory); --out wins")

    _source: str = PrivateAttr(default="<config>")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from energybench.backends import backend_names

        names = backend_names()
        if v not in names:
            close = difflib.get_close_matches(v, names, n=1, cutoff=0.5)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            raise FieldProblem(f"unknown backend{guess} (available: {', '.join(names)})", value=v)
        return v

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise FieldProblem("empty path; leave output_dir out or name a directory", value=v)
        return v

    @model_validator(mode="before")
    @classmethod
    def _shared_grid(cls, data: Any) -> Any:
        # grids: each entry is the shared grid: with the entry's own keys replacing it
        if isinstance(data, Mapping) and isinstance(data.get("grids"), (list, tuple)):
            shared = data.get("grid") if isinstance(data.get("grid"), Mapping) else {}
            if data.get("grid") is not None and not shared:
                raise FieldProblem("with grids:, grid: holds the axes every grid shares and must be a mapping",
                                   path=("grid",), value=data.get("grid"))
            grids = [{**shared, **g} if isinstance(g, Mapping) else g for g in data["grids"]]
            return {k: v for k, v in data.items() if k != "grid"} | {"grids": grids}
        return data

    @model_validator(mode="before")
    @classmethod
    def _default_cooldown(cls, data: Any) -> Any:
        # the default cooldown waits for power to come back near the idle baseline; without a
        # baseline (idle_baseline_s: 0) there is nothing to compare with, and no cooldown is the default
        if isinstance(data, Mapping) and "cooldown" not in data and data.get("idle_baseline_s") == 0:
            return {**data, "cooldown": {"fixed_s": 0.0}}
        return data

    @model_validator(mode="after")
    def _cross(self) -> SweepConfig:
        if self.idle_every_min is not None and self.idle_baseline_s <= 0:
            raise FieldProblem("idle_every_min needs idle_baseline_s > 0 (the length of each idle measurement)",
                               path=("idle_every_min",), value=self.idle_every_min)
        if isinstance(self.cooldown.until_idle, UntilIdle) and self.idle_baseline_s <= 0:
            raise FieldProblem("cooldown until_idle compares power with the idle baseline: set idle_baseline_s > 0, "
                               "or use cooldown: {fixed_s: S}", path=("cooldown", "until_idle"),
                               value=self.cooldown.until_idle.model_dump())
        return self

    # -- conveniences
    @property
    def source(self) -> str:
        """Where this config came from (file path, 'command line', '<config>')."""
        return self._source

    def all_grids(self) -> list[Grid]:
        """The grids whose union the sweep runs: ``grids``, or the one ``grid``."""
        return list(self.grids) if self.grids else [self.grid]

    def _dump_exclude(self) -> set[str]:
        return {"grid"} if self.grids else set()  # merged into every grids entry

    def normalized(self) -> dict[str, Any]:
        """Every field, with defaults filled and axes expanded to lists (JSON types)."""
        return self.model_dump(mode="json", exclude=self._dump_exclude())

    def to_yaml(self) -> str:
        """The normalized config as YAML (``energybench config show``); loads back to an equal config."""
        def auto(obj: Any) -> Any:  # None inside an axis list means "auto"; unset fields are left out
            if isinstance(obj, dict):
                return {k: auto(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return ["auto" if v is None else auto(v) for v in obj]
            return obj

        data = auto(self.model_dump(mode="json", exclude_none=True, exclude=self._dump_exclude()))
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


# ----------------------------------------------------------------------------- computed from a config

def prompt_specs(axis: PromptAxis) -> list[Any]:
    """The :class:`~energybench.point.PromptSpec` values of the prompt axis, in order: synthetic
    lengths, then each selected suite prompt (suite order, file order), then literal texts."""
    from energybench.point import PromptSpec
    from energybench.prompts import load_suite

    specs: list[PromptSpec] = [PromptSpec(kind="synthetic", n_prompt=n) for n in axis.n_prompt or []]
    wanted = set(axis.prompt_ids) if axis.prompt_ids is not None else None
    for suite in axis.suites or []:
        for p in load_suite(suite):
            if wanted is None or p.id in wanted:
                specs.append(p.spec())
    specs.extend(PromptSpec(kind="text", n_prompt=None, text=t) for t in axis.text or [])
    return specs


#: Fields added after the first release -> their default (left out of the hash at that value).
ADDED_LATER: dict[str, Any] = {"allow_estimate": True, "grids": None, "cpu_only": False}


def config_hash(config: SweepConfig, *, exclude: Iterable[str] = ("output_dir",)) -> str:
    """Stable sha256 (hex) of the normalized config: equal for configs that measure the same
    thing, whatever their spelling (``"1-4"`` vs ``[1, 2, 3, 4]``, defaults written out or not).
    ``output_dir`` is left out by default: moving a results dir must not break a resume.
    ``gpu_protocol`` is left out when no point offloads: it changes nothing then (and CPU-only
    configs keep the hash they had before the section existed). Fields added later are left out
    at their default (:data:`ADDED_LATER`), so results written before they existed still resume."""
    data = config.normalized()
    for key in exclude:
        data.pop(key, None)
    if not offloads(config):
        data.pop("gpu_protocol", None)
    for key, default in ADDED_LATER.items():
        if data.get(key) == default:
            data.pop(key)
    blob = json.dumps({"v": HASH_VERSION, "config": data}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode()
    return hashlib.sha256(blob).hexdigest()


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep config file (``energybench config schema``)."""
    schema = SweepConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "energybench sweep config"
    return schema


def offloads(config: SweepConfig) -> bool:
    """Whether any point of ``config`` offloads layers to a GPU (``n_gpu_layers != 0``)."""
    return any(n != 0 for g in config.all_grids() for n in g.n_gpu_layers)


__all__ = [
    "ADAPTIVE_METRICS", "ORDERS", "AdaptiveRepetitions", "Cooldown", "GpuProtocolConfig", "Grid", "NamedGrid", "PromptAxis",
    "Repetitions", "SweepConfig", "UntilIdle", "config_hash", "config_json_schema", "known_meters", "offloads", "parse_meters",
    "prompt_specs",
]
