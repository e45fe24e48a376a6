"""Sweep configuration: YAML file and/or llama-bench-style flags → a validated :class:`SweepConfig`.

A sweep config names the models, a grid of llama.cpp settings (every axis a scalar, a list, or a
range string), and the measurement protocol (warm-ups, repetitions, cooldown, idle baseline,
order). Every model is ``extra="forbid"``: an unknown key is an error that lists the allowed keys
and suggests the closest one. Every error is one :class:`~energybench.errors.ConfigError` line
naming the file, the field path (``grid.threads[1]``), the value and what is allowed.

Axis syntax (any integer axis)::

    threads: 4               # scalar
    threads: [1, 2, 4]       # list (items may themselves be range strings)
    threads: "1-8*2"         # 1,2,4,8   (first-last*factor, llama-bench syntax)
    threads: "1-4"           # 1,2,3,4   (first-last)
    n_gpu_layers: "0-22+11"  # 0,11,22   (first-last+step)
    n_gpu_layers: "0,11,22"  # comma list

Minimal file (everything else has a default; ``energybench config schema`` prints them all)::

    models: [synthetic:tiny]

Defaults follow llama-bench/pyperf practice and ../shared/README.md §2 (warm-ups kept but flagged,
>= 10 repetitions for confidence intervals, idle baseline, cooldown until power is back near idle).

Flags (:func:`config_from_flags`, llama-bench spelling: ``-m -t -tb -ngl -b -ub -fa -c -p -n -r``)
are merged over a file when both are given: **a flag replaces the whole field it names** (``-t 1,2``
replaces ``grid.threads``; ``-p 128`` replaces the whole ``grid.prompt`` axis); everything else
keeps the file's value.

Public API::

    load_config(path) -> SweepConfig
    parse_config(data: Mapping, source="<config>") -> SweepConfig
    config_from_flags(base=None, *, models=..., threads=..., ...) -> SweepConfig
    resolve_sweep_config(config_path=None, **flags) -> SweepConfig   # what `energybench sweep` calls
    config_hash(config) -> str
    config_json_schema() -> dict
    parse_range(text) -> list[int]
    SweepConfig.to_yaml() / .normalized()
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from energybench.errors import ConfigError

# ----------------------------------------------------------------------------- constants

ORDERS = ("grouped", "shuffled", "interleaved")
Order = Literal["grouped", "shuffled", "interleaved"]
FLASH_ATTN = ("auto", "on", "off")
#: Metrics an adaptive repetition count can watch (columns/derived columns of runs.parquet).
#: j_per_token(_net) = energy(_net)_j / n_gen_tokens; the others are runs.parquet columns.
ADAPTIVE_METRICS = ("j_per_token", "j_per_token_net", "energy_j", "energy_net_j", "window_s", "ttft_ms",
                    "decode_tok_s", "prefill_tok_s")
AdaptiveMetric = Literal["j_per_token", "j_per_token_net", "energy_j", "energy_net_j", "window_s", "ttft_ms",
                         "decode_tok_s", "prefill_tok_s"]
#: Meter names known when the meter registry cannot be imported (see :func:`known_meters`).
FALLBACK_METERS = ("rapl", "nvml", "powergadget", "estimate")
#: Default n_ubatch when ``ubatch: auto``: llama.cpp's default, clamped to n_batch (llama.cpp
#: itself silently clamps n_ubatch to n_batch; we make it explicit so the recorded value is true).
LLAMA_DEFAULT_UBATCH = 512
#: Most values one axis may expand to (guards against "1-1000000").
MAX_AXIS_VALUES = 4096
#: llama.cpp seeds are uint32.
MAX_SEED = 2**32 - 1
#: Version tag mixed into :func:`config_hash` (bump when normalisation changes meaning).
HASH_VERSION = "energybench-sweep-config-v1"

_MISSING = object()


class FieldProblem(ValueError):
    """A validation problem at ``path`` (relative to the model or field that raised it)."""

    def __init__(self, message: str, *, path: Sequence[str | int] = (), value: Any = _MISSING) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(path)
        self.value = value


# ----------------------------------------------------------------------------- range strings

_NUMERIC_START = re.compile(r"^\s*-?\d")
_RANGE_ITEM = re.compile(r"^(-?\d+)(?:-(-?\d+)(?:([*+])(\d+))?)?$")


def parse_range(text: str) -> list[int]:
    """Expand a llama-bench style range string into integers, in order.

    ``"4"`` → [4]; ``"-1"`` → [-1]; ``"1-4"`` → [1, 2, 3, 4]; ``"1-8*2"`` → [1, 2, 4, 8];
    ``"0-22+11"`` → [0, 11, 22]; ``"0,11,22"`` → [0, 11, 22]; items combine: ``"1-2,8"``.
    Raises :class:`ValueError` with a message naming the bad part.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty range string (expected e.g. '4', '1-8', '1-8*2', '0-22+11' or '0,11,22')")
    out: list[int] = []
    for raw in text.split(","):
        item = raw.strip().replace(" ", "")
        m = _RANGE_ITEM.match(item)
        if not m:
            raise ValueError(f"cannot parse {raw.strip()!r} as a number or range "
                             "(use N, FIRST-LAST, FIRST-LAST*FACTOR or FIRST-LAST+STEP, comma-separated)")
        first = int(m.group(1))
        if m.group(2) is None:
            out.append(first)
            continue
        last = int(m.group(2))
        if last < first:
            raise ValueError(f"range {item!r} runs backwards ({first} > {last})")
        op, k = m.group(3), int(m.group(4)) if m.group(4) else 1
        if op == "*":
            if k < 2:
                raise ValueError(f"range {item!r}: the factor after '*' must be at least 2")
            if first < 1:
                raise ValueError(f"range {item!r}: a multiplicative range must start at 1 or more")
            v = first
            while v <= last:
                out.append(v)
                v *= k
                if len(out) > MAX_AXIS_VALUES:
                    break
        else:
            if k < 1:
                raise ValueError(f"range {item!r}: the step after '+' must be at least 1")
            if (last - first) // k + 1 > MAX_AXIS_VALUES:
                raise ValueError(f"range {item!r} expands to more than {MAX_AXIS_VALUES} values")
            out.extend(range(first, last + 1, k))
        if len(out) > MAX_AXIS_VALUES:
            raise ValueError(f"{text!r} expands to more than {MAX_AXIS_VALUES} values")
    return out


# ----------------------------------------------------------------------------- axis parsers

def _items(value: Any) -> list[tuple[int, Any]]:
    """(index, item) pairs of a scalar or a list; an empty list is an error (empty grid axis)."""
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise FieldProblem("the list is empty; give at least one value (or leave the key out for the default)",
                               value=list(value))
        return list(enumerate(value))
    if isinstance(value, Mapping):
        raise FieldProblem("expected a value or a list of values, got a mapping", value=dict(value))
    return [(-1, value)]  # a scalar: its problems are reported at the field itself, not [0]


def _int_axis(value: Any, *, minimum: int, maximum: int | None = None, what: str,
              none_words: tuple[str, ...] = (), none_allowed: bool = False,
              words: Mapping[str, int] | None = None) -> list[int | None]:
    out: list[int | None] = []
    for idx, item in _items(value):
        path = () if idx < 0 else (idx,)
        if item is None or (isinstance(item, str) and item.strip().lower() in none_words):
            if not none_allowed:
                raise FieldProblem(f"a value is required ({what})", path=path, value=item)
            out.append(None)
            continue
        if isinstance(item, bool):
            raise FieldProblem(f"expected an integer, got a boolean ({what})", path=path, value=item)
        if isinstance(item, float):
            if not item.is_integer():
                raise FieldProblem(f"expected an integer ({what})", path=path, value=item)
            item = int(item)
        if isinstance(item, str):
            word = item.strip().lower()
            if words and word in words:
                out.append(words[word])
                continue
            if "," in word and none_words and any(w.strip() in none_words for w in word.split(",")):
                raise FieldProblem(f"write {'/'.join(none_words)} alone, not inside a list string", path=path,
                                   value=item)
            try:
                values = parse_range(item)
            except ValueError as exc:
                raise FieldProblem(str(exc), path=path, value=item) from None
            for v in values:
                _check_int(v, minimum, maximum, what, path, item)
            out.extend(values)
            continue
        if not isinstance(item, int):
            raise FieldProblem(f"expected an integer or a range string ({what})", path=path, value=item)
        _check_int(item, minimum, maximum, what, path, item)
        out.append(item)
    return _no_duplicates(out, value)


def _check_int(v: int, minimum: int, maximum: int | None, what: str, path: tuple, shown: Any) -> None:
    if v < minimum or (maximum is not None and v > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise FieldProblem(f"must be {bound} ({what})", path=path, value=shown)


def _no_duplicates(values: list[Any], raw: Any) -> list[Any]:
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        key = (type(v).__name__, v)
        if key in seen:
            path = (i,) if isinstance(raw, (list, tuple)) and len(raw) == len(values) else ()
            raise FieldProblem(f"value {v!r} appears twice; every value of an axis must be distinct", path=path,
                               value=raw[i] if path else raw)
        seen[key] = i
    return values


_TRUE = {"true", "on", "yes", "1", "enabled"}
_FALSE = {"false", "off", "no", "0", "disabled"}


def _bool_axis(value: Any) -> list[bool]:
    out: list[bool] = []
    for idx, item in _items(value):
        path = () if idx < 0 else (idx,)
        if isinstance(item, bool):
            out.append(item)
            continue
        if isinstance(item, str):
            words = [w.strip().lower() for w in item.split(",")]
            parsed: list[bool] = []
            for w in words:
                if w in _TRUE:
                    parsed.append(True)
                elif w in _FALSE:
                    parsed.append(False)
                else:
                    raise FieldProblem("expected true/false (or on/off)", path=path, value=item)
            out.extend(parsed)
            continue
        if isinstance(item, int) and item in (0, 1):
            out.append(bool(item))
            continue
        raise FieldProblem("expected true/false (or on/off)", path=path, value=item)
    return _no_duplicates(out, value)


def _flash_axis(value: Any) -> list[str]:
    out: list[str] = []
    for idx, item in _items(value):
        path = () if idx < 0 else (idx,)
        if isinstance(item, bool):  # YAML 1.1 reads a bare on/off as a boolean
            out.append("on" if item else "off")
            continue
        if isinstance(item, str):
            for w in (w.strip().lower() for w in item.split(",")):
                w = {"true": "on", "false": "off", "1": "on", "0": "off", "enabled": "on", "disabled": "off"}.get(w, w)
                if w not in FLASH_ATTN:
                    raise FieldProblem(f"must be one of {', '.join(FLASH_ATTN)}", path=path, value=item)
                out.append(w)
            continue
        raise FieldProblem(f"must be one of {', '.join(FLASH_ATTN)}", path=path, value=item)
    return _no_duplicates(out, value)


def _str_list(value: Any, *, what: str, split_commas: bool = True) -> list[str]:
    out: list[str] = []
    for idx, item in _items(value):
        path = () if idx < 0 else (idx,)
        if not isinstance(item, str):
            raise FieldProblem(f"expected a string ({what})", path=path, value=item)
        parts = [p.strip() for p in item.split(",")] if split_commas else [item]
        for p in parts:
            if not p.strip():
                raise FieldProblem(f"empty string ({what})", path=path, value=item)
            out.append(p if not split_commas else p.strip())
    return _no_duplicates(out, value)


def _axis_schema(item_schema: dict[str, Any], description: str) -> WithJsonSchema:
    return WithJsonSchema({
        "description": description,
        "anyOf": [item_schema, {"type": "string", "description": "range/list string: '1-8*2', '1-4', '0,11,22'"},
                  {"type": "array", "minItems": 1, "items": {"anyOf": [item_schema, {"type": "string"}]}}],
    })


_INT = {"type": "integer"}
_INT_OR_NULL = {"anyOf": [{"type": "integer"}, {"type": "null"}, {"type": "string", "enum": ["auto"]}]}
_BOOL = {"type": "boolean"}

ThreadsAxis = Annotated[list[int], BeforeValidator(lambda v: _int_axis(v, minimum=1, what="CPU threads")),
                        _axis_schema(_INT, "CPU threads for generation (n_threads), >= 1")]
ThreadsBatchAxis = Annotated[
    list[int | None],
    BeforeValidator(lambda v: _int_axis(v, minimum=1, what="CPU threads for prompt processing, or auto = same as threads",
                                        none_words=("auto", "same"), none_allowed=True)),
    _axis_schema(_INT_OR_NULL, "CPU threads for prompt processing (n_threads_batch); auto/null = same as threads")]
GpuLayersAxis = Annotated[
    list[int],
    BeforeValidator(lambda v: _int_axis(v, minimum=-1, what="layers offloaded to the GPU; -1 or 'all' = every layer",
                                        words={"all": -1})),
    _axis_schema(_INT, "layers offloaded to the GPU (n_gpu_layers); -1 or 'all' = all layers; 0 = CPU only")]
BatchAxis = Annotated[list[int], BeforeValidator(lambda v: _int_axis(v, minimum=1, what="logical batch size n_batch")),
                      _axis_schema(_INT, "logical batch size (n_batch), >= 1")]
UbatchAxis = Annotated[
    list[int | None],
    BeforeValidator(lambda v: _int_axis(v, minimum=1, what="physical batch size n_ubatch, or auto = min(batch, 512)",
                                        none_words=("auto",), none_allowed=True)),
    _axis_schema(_INT_OR_NULL, "physical batch size (n_ubatch) <= batch; auto = min(batch, 512)")]
CtxAxis = Annotated[
    list[int | None],
    BeforeValidator(lambda v: _int_axis(v, minimum=8, what="context size n_ctx, or auto = prompt + generation rounded up to 256",
                                        none_words=("auto",), none_allowed=True)),
    _axis_schema(_INT_OR_NULL, "context size (n_ctx) >= n_prompt + n_gen; auto = prompt + generation rounded up to 256")]
GenAxis = Annotated[list[int], BeforeValidator(lambda v: _int_axis(v, minimum=1, what="tokens to generate")),
                    _axis_schema(_INT, "tokens generated per run (n_gen), always exactly this many")]
NPromptAxis = Annotated[list[int], BeforeValidator(lambda v: _int_axis(v, minimum=1, what="synthetic prompt length in tokens")),
                        _axis_schema(_INT, "exact synthetic prompt lengths in tokens")]
SeedAxis = Annotated[list[int], BeforeValidator(lambda v: _int_axis(v, minimum=0, maximum=MAX_SEED, what="sampler seed (uint32)")),
                     _axis_schema(_INT, "sampler seed(s), 0..2^32-1")]
MainGpuAxis = Annotated[list[int], BeforeValidator(lambda v: _int_axis(v, minimum=0, what="GPU index")),
                        _axis_schema(_INT, "main GPU index")]
BoolAxis = Annotated[list[bool], BeforeValidator(_bool_axis), _axis_schema(_BOOL, "true/false or a list of both")]
FlashAxis = Annotated[list[Literal["auto", "on", "off"]], BeforeValidator(_flash_axis),
                      _axis_schema({"type": "string", "enum": list(FLASH_ATTN)}, "flash attention: auto, on or off")]
StrAxis = Annotated[list[str], BeforeValidator(lambda v: _str_list(v, what="a name")),
                    _axis_schema({"type": "string"}, "a name or a list of names")]
TextAxis = Annotated[list[str], BeforeValidator(lambda v: _str_list(v, what="literal prompt text", split_commas=False)),
                     WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}],
                                     "description": "literal prompt text(s)"})]


def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise FieldProblem("expected a number, got a boolean", value=v)
    return v


NonNegInt = Annotated[int, BeforeValidator(_not_bool), Field(ge=0)]
PosInt = Annotated[int, BeforeValidator(_not_bool), Field(ge=1)]
NonNegFloat = Annotated[float, BeforeValidator(_not_bool), Field(ge=0, allow_inf_nan=False)]
PosFloat = Annotated[float, BeforeValidator(_not_bool), Field(gt=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# ----------------------------------------------------------------------------- sections


class PromptAxis(_Strict):
    """What to feed the model: any combination of exact synthetic lengths, suite prompts and
    literal texts (each is one value of the prompt axis). Default: ``n_prompt: [128]``."""

    n_prompt: NPromptAxis | None = Field(None, description="exact synthetic prompt lengths in tokens (BOS counted)")
    suites: StrAxis | None = Field(None, description="shipped prompt suites: short_dialogue, analytical_reasoning, narrative_generation")
    prompt_ids: StrAxis | None = Field(None, description="only these prompt ids of the suites (default: all)")
    text: TextAxis | None = Field(None, description="literal prompt text(s)")

    @model_validator(mode="before")
    @classmethod
    def _default_length(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not any(data.get(k) is not None for k in ("n_prompt", "suites", "text")):
            if data.get("prompt_ids") is None:
                return {**data, "n_prompt": [128]}
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

    threads: ThreadsAxis = Field([1], description="CPU threads for generation (llama-bench -t)")
    threads_batch: ThreadsBatchAxis = Field([None], description="CPU threads for prompt processing (-tb); auto = threads")
    n_gpu_layers: GpuLayersAxis = Field([0], description="layers offloaded to the GPU (-ngl); -1/all = every layer")
    batch: BatchAxis = Field([512], description="logical batch size n_batch (-b)")
    ubatch: UbatchAxis = Field([None], description="physical batch size n_ubatch (-ub); auto = min(batch, 512)")
    flash_attn: FlashAxis = Field(["auto"], description="flash attention (-fa): auto, on, off")
    n_ctx: CtxAxis = Field([None], description="context size (-c); auto = prompt + generation rounded up to 256")
    prompt: PromptAxis = Field(default_factory=PromptAxis, description="prompts (-p synthetic lengths, suites or text)")
    n_gen: GenAxis = Field([64], description="tokens generated per run (-n), exactly")
    # repack false: runtime workaround for llama.cpp builds whose AMX kernels crash on quantized
    # models (../shared/README.md §3, workaround A); true keeps the faster repacked weights.
    repack: BoolAxis = Field([True], description="llama.cpp weight repacking (extra buffer types); "
                                                 "false avoids AMX kernel crashes on some builds")
    seed: SeedAxis = Field([0], description="sampler seed")
    main_gpu: MainGpuAxis = Field([0], description="main GPU index (-mg)")
    offload_kqv: BoolAxis = Field([True], description="keep the KV cache on the GPU (-nkvo inverts)")
    use_mmap: BoolAxis = Field([True], description="memory-map the model file (--mmap)")

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
                                   f"(use ubatch values <= {min_batch}, or ubatch: auto = min(batch, 512))",
                                   path=_axis_path("ubatch", i, self.ubatch), value=ub)
        # n_ctx >= n_prompt + n_gen for every synthetic prompt (suite/text lengths are checked at
        # run time with the model's tokenizer): ../shared/README.md §3, check it before llama.cpp.
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
        sizes = {name: len(getattr(self, name)) for name in type(self).model_fields if name != "prompt"}
        sizes["prompt"] = len(prompt_specs(self.prompt))
        return sizes


class AdaptiveRepetitions(_Strict):
    """Repeat until the 95% CI half-width of ``metric`` (Student t, over the measured runs) is
    below ``target_ci_pct`` % of its mean, with at least ``min`` and at most ``max`` measured
    repetitions per point."""

    target_ci_pct: PosFloat = Field(5.0, le=100, description="stop when the 95% CI half-width < this % of the mean")
    min: Annotated[int, BeforeValidator(_not_bool), Field(ge=2)] = Field(5, description="repetitions before the first check (>= 2)")
    max: PosInt = Field(30, description="never more repetitions than this")
    metric: AdaptiveMetric = Field(
        "j_per_token", description="the per-run value whose CI is watched")

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

    @property
    def min_reps(self) -> int:
        return self.fixed if self.fixed is not None else self.adaptive.min  # type: ignore[union-attr]

    @property
    def max_reps(self) -> int:
        return self.fixed if self.fixed is not None else self.adaptive.max  # type: ignore[union-attr]


class UntilIdle(_Strict):
    """Wait until total power is within ``within_pct`` % of the idle baseline for ``hold_s``
    seconds, at most ``max_s`` seconds (../shared/README.md §2: cooldown until near idle)."""

    within_pct: PosFloat = Field(10.0, description="power within this % of idle counts as idle")
    hold_s: NonNegFloat = Field(3.0, description="seconds power must stay near idle")
    max_s: NonNegFloat = Field(60.0, description="give up waiting after this many seconds")

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


def _gap_range(value: Any) -> Any:
    """``random_gap_s``: ``[lo, hi]`` seconds, or one number for a fixed pause."""
    if isinstance(value, bool):
        raise FieldProblem("expected [lo, hi] seconds, got a boolean", value=value)
    if isinstance(value, (int, float)):
        value = [value, value]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise FieldProblem("expected [lo, hi] seconds (two numbers, lo <= hi) or one number", value=value)
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise FieldProblem("expected a number of seconds", path=(i,), value=v)
        if v < 0:
            raise FieldProblem("must be >= 0 seconds", path=(i,), value=v)
        out.append(float(v))
    if out[0] > out[1]:
        raise FieldProblem(f"lo ({out[0]:g}) is larger than hi ({out[1]:g})", value=list(value))
    return out


def _rise(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldProblem("expected auto or a number of seconds >= 0", value=value)
    if value != value or value < 0 or value == float("inf"):
        raise FieldProblem("expected auto or a number of seconds >= 0", value=value)
    return float(value)


GapRange = Annotated[list[float], BeforeValidator(_gap_range),
                     WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                                               {"type": "array", "minItems": 2, "maxItems": 2,
                                                "items": {"type": "number", "minimum": 0}}],
                                     "description": "pause before each run, uniform in [lo, hi] seconds"})]
RiseField = Annotated[Literal["auto"] | float, BeforeValidator(_rise),
                      WithJsonSchema({"anyOf": [{"type": "string", "enum": ["auto"]}, {"type": "number", "minimum": 0}],
                                      "description": "rise time to discard: auto = each GPU power domain's update "
                                                     "period (energy counters untouched), or seconds (every GPU domain)"})]


class GpuProtocolConfig(_Strict):
    """The GPU measurement protocol of Yang et al. (SC'24), applied to every point that offloads
    (``n_gpu_layers != 0``); CPU-only points are untouched. Defaults follow the paper's good practice
    (../shared/README.md section 2): windows >= 5 s, >= 4 trials with randomised gaps, rise time
    discarded. See :mod:`energybench.gpu_protocol` for what each setting does."""

    enabled: bool = Field(True, description="apply the protocol to points that offload (false: measure them like CPU points)")
    min_window_s: NonNegFloat = Field(5.0, description="each run of an offloading point lasts at least this long "
                                                       "(decoding repeats); the paper: >= 5 s")
    min_trials: PosInt = Field(4, description="at least this many measured repetitions per offloading point; the paper: >= 4")
    random_gap_s: GapRange = Field([0.5, 2.0], description="seeded random pause before each run of an offloading point, "
                                                           "[lo, hi] seconds")
    discard_rise_s: RiseField = Field("auto", description="rise time replaced by steady-state power in GPU energy: "
                                                          "auto or seconds")
    seed: NonNegInt = Field(0, description="seed of the random gaps (a gap is a function of seed and run id)")


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


def _meters(value: Any) -> Any:
    if value is None:
        return "auto"
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    names = _str_list(value, what="a meter name, or auto")
    known = known_meters()
    raw = value if isinstance(value, (list, tuple)) else None
    for i, n in enumerate(names):
        path = (i,) if raw is not None and len(raw) == len(names) else ()
        if n == "auto":
            raise FieldProblem("'auto' cannot be combined with meter names; write meters: auto alone", path=path, value=n)
        if n not in known:
            close = difflib.get_close_matches(n, known, n=1, cutoff=0.5)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            raise FieldProblem(f"unknown meter{guess} (known: {', '.join(known)}, or auto)", path=path, value=n)
    return names


MetersField = Annotated[
    Literal["auto"] | list[str], BeforeValidator(_meters),
    WithJsonSchema({"anyOf": [{"type": "string", "enum": ["auto"]},
                              {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(FALLBACK_METERS)}}],
                    "description": "meters to use, or auto = every available real meter (estimate only as a fallback)"})]


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

    name: str = Field("sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                      description="a short name for the sweep (letters, digits, . _ -)")
    models: ModelsField = Field(..., description="at least one model: a GGUF path, a cached name, an alias like "
                                                 "tinyllama-1.1b-chat:Q4_K_M, or synthetic:tiny")
    backend: str = Field("llama.cpp", description="inference backend (registry name)")
    grid: Grid = Field(default_factory=Grid)
    warmup: NonNegInt = Field(1, description="warm-up runs per point (kept in the results, flagged is_warmup)")
    repetitions: Repetitions = Field(default_factory=lambda: Repetitions(fixed=10),
                                     description="measured runs per point: N, {fixed: N} or {adaptive: {...}}")
    cooldown: Cooldown = Field(default_factory=lambda: Cooldown(until_idle=UntilIdle()),
                               description="pause after each run: seconds, {fixed_s: S} or {until_idle: {...}}")
    idle_baseline_s: NonNegFloat = Field(10.0, description="seconds of idle power measured before the sweep (0 = none)")
    idle_every_min: PosFloat | None = Field(None, description="measure the idle baseline again every this many minutes")
    order: Order = Field("shuffled", description="grouped | shuffled (within load group, seeded) | "
                                                 "interleaved (round-robin across load groups)")
    order_seed: NonNegInt = Field(0, description="seed of the shuffled/interleaved order")
    max_failures: PosInt = Field(3, description="failed runs of one point before it is skipped (and reported)")
    meters: MetersField = Field("auto", description="meter names or auto")
    sample_period_ms: PosFloat = Field(20.0, le=10_000, description="power sampling period, milliseconds")
    cpu_tdp_w: PosFloat | None = Field(None, description="CPU TDP in watts for the estimate meter (no real meter)")
    min_window_s: NonNegFloat = Field(0.0, description="repeat decoding until a run lasts at least this long (short-window meters)")
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

    def normalized(self) -> dict[str, Any]:
        """Every field, with defaults filled and axes expanded to lists (JSON types)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The normalized config as YAML (``energybench config show``); loads back to an equal config."""
        def auto(obj: Any) -> Any:  # None inside an axis list means "auto"; unset fields are left out
            if isinstance(obj, dict):
                return {k: auto(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return ["auto" if v is None else auto(v) for v in obj]
            return obj

        data = auto(self.model_dump(mode="json", exclude_none=True))
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)

    def runs_per_point(self) -> tuple[int, int]:
        """(fewest, most) runs of one point, warm-ups included."""
        return self.warmup + self.repetitions.min_reps, self.warmup + self.repetitions.max_reps


# ----------------------------------------------------------------------------- prompt specs


def prompt_specs(axis: PromptAxis) -> list[Any]:
    """The :class:`~energybench.plan.PromptSpec` values of the prompt axis, in order: synthetic
    lengths, then each selected suite prompt (suite order, file order), then literal texts."""
    from energybench.plan import PromptSpec
    from energybench.prompts import load_suite

    specs: list[PromptSpec] = [PromptSpec(kind="synthetic", n_prompt=n) for n in axis.n_prompt or []]
    wanted = set(axis.prompt_ids) if axis.prompt_ids is not None else None
    for suite in axis.suites or []:
        for p in load_suite(suite):
            if wanted is None or p.id in wanted:
                specs.append(p.spec())
    specs.extend(PromptSpec(kind="text", n_prompt=None, text=t) for t in axis.text or [])
    return specs


# ----------------------------------------------------------------------------- error messages


def _short_list(items: Sequence[Any], limit: int = 12) -> str:
    items = [str(i) for i in items]
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


def _show(value: Any, limit: int = 60) -> str:
    if value is _MISSING:
        return ""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if isinstance(value, str):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(loc: Iterable[str | int]) -> str:
    """('grid', 'threads', 1) → 'grid.threads[1]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation (Optional[X], Annotated[X, ...], list[X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def _model_at(loc: Sequence[str | int], root: type[BaseModel] = None) -> type[BaseModel] | None:  # type: ignore[assignment]
    model: type[BaseModel] | None = root or SweepConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _unwrap_model(model.model_fields[part].annotation)
    return model


def _all_key_paths(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Every key path of the config ('grid.threads', 'cooldown.until_idle.hold_s', ...)."""
    out: list[str] = []
    for name, info in (model or SweepConfig).model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        sub = _unwrap_model(info.annotation)
        if sub is not None:
            out.extend(_all_key_paths(sub, path + "."))
    return out


def allowed_keys(loc: Sequence[str | int] = ()) -> list[str]:
    """The keys a mapping at ``loc`` may hold (``()`` = top level)."""
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def _describe_error(err: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """(field path, one-line problem) for one pydantic error."""
    loc = tuple(err.get("loc", ()))
    typ = err.get("type", "")
    value = err.get("input", _MISSING)
    ctx = err.get("ctx") or {}
    exc = ctx.get("error")
    if isinstance(exc, FieldProblem):
        loc = loc + exc.path
        shown = exc.value if exc.value is not _MISSING else value
        where = format_path(loc)
        return loc, (f"{where} = {_show(shown)}: {exc.message}" if where else f"{_show(shown)}: {exc.message}")
    where = format_path(loc) or "(top level)"
    if typ == "extra_forbidden":
        key = str(loc[-1])
        parent = loc[:-1]
        keys = allowed_keys(parent)
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        if close:
            guess = f"; did you mean {close[0]!r}?"
        else:  # maybe it belongs at another level (``threads`` at the top instead of in grid)
            elsewhere = {path.rsplit(".", 1)[-1]: path for path in _all_key_paths() if path.count(".")}
            near = difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.75)
            guess = f"; did you mean {elsewhere[near[0]]!r}?" if near else ""
        inside = f" in {format_path(parent)}" if parent else ""
        return loc, f"unknown key {key!r}{inside}{guess} (allowed keys: {', '.join(keys)})"
    if typ == "missing":
        parent = _model_at(loc[:-1])
        field = parent.model_fields.get(str(loc[-1])) if parent else None
        about = f" ({field.description})" if field is not None and field.description else ""
        return loc, f"{where}: required field is missing{about}"
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        keys = allowed_keys(loc)
        kind = type(value).__name__ if value is not _MISSING else "nothing"
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number",
                "NoneType": "nothing (null)", "bool": "a boolean"}.get(kind, kind)
        return loc, (f"{where} = {_show(value)}: expected a mapping (key: value) with keys "
                     f"{', '.join(keys)}, got {kind}")
    if typ == "literal_error":
        return loc, f"{where} = {_show(value)}: must be one of {ctx.get('expected', '')}"
    if typ == "string_pattern_mismatch" and loc == ("name",):
        return loc, f"{where} = {_show(value)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ").replace("Input should be", "must be")
    msg = msg[0].lower() + msg[1:] if msg else msg
    return loc, f"{where} = {_show(value)}: {msg}"


def config_error_from_validation(exc: ValidationError, source: str,
                                 labels: Mapping[str, str] | None = None) -> ConfigError:
    """One-line :class:`ConfigError` for a pydantic ``ValidationError``: the first problem, then
    ``(and N more)``. ``labels`` maps a field path prefix to where its value came from (e.g. a
    command-line flag) to name that instead of ``source``."""
    errors = exc.errors()
    if not errors:  # pragma: no cover - pydantic never raises an empty one
        return ConfigError(f"{source}: invalid configuration")
    loc, text = _describe_error(errors[0])
    origin = source
    if labels:
        path = format_path(loc)
        for prefix, label in sorted(labels.items(), key=lambda kv: -len(kv[0])):
            if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
                origin = label
                break
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ConfigError(f"{origin}: {text}{more}")


# ----------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                    key_node.start_mark) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{context}, {problem}" if context and context not in problem else problem
    return f"invalid YAML{where}: {' '.join(str(detail).split())}"


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; every failure is a one-line :class:`ConfigError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist",
                          hint="check the path; examples/quick.yaml is a starting point") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {str(p)!r} is a directory, not a YAML file") from None
    except PermissionError:
        raise ConfigError(f"cannot read config file {str(p)!r}: permission denied",
                          hint="make it readable (chmod a+r) or copy it") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start}); a config must be a YAML text file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: {_yaml_problem(exc)}") from None
    if data is None:
        raise ConfigError(f"{p}: the file is empty (a sweep config needs at least 'models:'; "
                          "see examples/quick.yaml)")
    if not isinstance(data, dict):
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number",
                "bool": "a boolean"}.get(type(data).__name__, type(data).__name__)
        raise ConfigError(f"{p}: the top level must be a mapping of keys ({', '.join(allowed_keys())}), got {kind}")
    return data


# ----------------------------------------------------------------------------- public API


def parse_config(data: Mapping[str, Any], source: str = "<config>",
                 labels: Mapping[str, str] | None = None) -> SweepConfig:
    """Validate a mapping (parsed YAML or built from flags). ``source`` names it in errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of keys ({', '.join(allowed_keys())})")
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{source}: key {bad_keys[0]!r} is not a name (allowed keys: {', '.join(allowed_keys())})")
    try:
        config = SweepConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise config_error_from_validation(exc, source, labels) from None
    except ConfigError as exc:  # e.g. a broken shipped prompt suite
        raise ConfigError(f"{source}: {exc.one_line()}") from None
    config._source = source
    return config


def load_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a sweep config YAML file. Raises :class:`ConfigError` (one line, exit 2)."""
    return parse_config(read_yaml(path), source=str(path))


def config_hash(config: SweepConfig, *, exclude: Iterable[str] = ("output_dir",)) -> str:
    """Stable sha256 (hex) of the normalized config: equal for configs that measure the same
    thing, whatever their spelling (``"1-4"`` vs ``[1, 2, 3, 4]``, defaults written out or not).
    ``output_dir`` is left out by default: moving a results dir must not break a resume.
    ``gpu_protocol`` is left out when no point offloads: it changes nothing then (and CPU-only
    configs keep the hash they had before the section existed)."""
    data = config.normalized()
    for key in exclude:
        data.pop(key, None)
    if not offloads(config):
        data.pop("gpu_protocol", None)
    blob = json.dumps({"v": HASH_VERSION, "config": data}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode()
    return hashlib.sha256(blob).hexdigest()


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep config file (``energybench config schema``)."""
    schema = SweepConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "energybench sweep config"
    return schema


#: Flag spellings (llama-bench's, where it has one) for each config field they set.
FLAG_NAMES: dict[str, str] = {
    "models": "-m/--model",
    "grid.threads": "-t/--threads",
    "grid.threads_batch": "-tb/--threads-batch",
    "grid.n_gpu_layers": "-ngl/--n-gpu-layers",
    "grid.batch": "-b/--batch-size",
    "grid.ubatch": "-ub/--ubatch-size",
    "grid.flash_attn": "-fa/--flash-attn",
    "grid.n_ctx": "-c/--ctx-size",
    "grid.prompt": "-p/--n-prompt, --suite, --prompt-id or --prompt",
    "grid.n_gen": "-n/--n-gen",
    "grid.repack": "--repack",
    "grid.seed": "--seed",
    "repetitions": "-r/--repetitions",
    "warmup": "--warmup",
    "cooldown": "--cooldown",
    "idle_baseline_s": "--idle",
    "order": "--order",
    "max_failures": "--max-failures",
    "meters": "--meter",
    "sample_period_ms": "--sample-period-ms",
    "cpu_tdp_w": "--cpu-tdp-w",
    "min_window_s": "--min-window",
    "output_dir": "--out",
    "name": "--name",
    "backend": "--backend",
}

AxisArg = str | int | Sequence[str | int] | None


def _flag_value(v: Any) -> Any:
    """Typer gives a multiple option as a list; a single item stays a scalar (keeps paths short)."""
    if isinstance(v, (list, tuple)):
        return v[0] if len(v) == 1 else list(v)
    return v


def config_from_flags(
    base: SweepConfig | None = None,
    *,
    models: str | Sequence[str] | None = None,
    threads: AxisArg = None,
    threads_batch: AxisArg = None,
    n_gpu_layers: AxisArg = None,
    batch: AxisArg = None,
    ubatch: AxisArg = None,
    flash_attn: AxisArg = None,
    n_ctx: AxisArg = None,
    n_prompt: AxisArg = None,
    suites: str | Sequence[str] | None = None,
    prompt_ids: str | Sequence[str] | None = None,
    prompt_text: str | Sequence[str] | None = None,
    n_gen: AxisArg = None,
    repack: AxisArg = None,
    seed: AxisArg = None,
    repetitions: int | str | None = None,
    warmup: int | str | None = None,
    cooldown_s: float | str | None = None,
    idle_baseline_s: float | str | None = None,
    order: str | None = None,
    max_failures: int | str | None = None,
    meters: str | Sequence[str] | None = None,
    sample_period_ms: float | str | None = None,
    cpu_tdp_w: float | str | None = None,
    min_window_s: float | str | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    backend: str | None = None,
) -> SweepConfig:
    """A config from llama-bench-style flags, merged over ``base`` (a loaded file) if given.

    Every argument left ``None`` keeps the base's value (or the default). An argument that is
    given **replaces** the whole field: ``threads="1,2"`` replaces ``grid.threads``; any of
    ``n_prompt``/``suites``/``prompt_ids``/``prompt_text`` replaces the whole prompt axis.
    Axis arguments accept what the file accepts: ``"1,2,4"``, ``"1-8*2"``, ``4`` or a list of those
    (a repeated typer option). ``repetitions`` is a fixed count; ``cooldown_s`` a fixed pause.
    Errors name the flag: ``-t/--threads: grid.threads = '0': must be at least 1 ...``.
    """
    data: dict[str, Any] = base.normalized() if base is not None else {}
    grid: dict[str, Any] = dict(data.get("grid") or {})
    labels: dict[str, str] = {}

    def put(target: dict[str, Any], key: str, path: str, value: Any) -> None:
        if value is None:
            return
        target[key] = _flag_value(value)
        labels[path] = f"command line {FLAG_NAMES.get(path, path)}"

    if models is not None:
        put(data, "models", "models", [models] if isinstance(models, str) else list(models))
    for key, value in (("threads", threads), ("threads_batch", threads_batch), ("n_gpu_layers", n_gpu_layers),
                       ("batch", batch), ("ubatch", ubatch), ("flash_attn", flash_attn), ("n_ctx", n_ctx),
                       ("n_gen", n_gen), ("repack", repack), ("seed", seed)):
        put(grid, key, f"grid.{key}", value)
    prompt: dict[str, Any] = {}
    for key, value in (("n_prompt", n_prompt), ("suites", suites), ("prompt_ids", prompt_ids),
                       ("text", prompt_text)):
        if value is not None:
            prompt[key] = _flag_value(value)
    if prompt:
        put(grid, "prompt", "grid.prompt", prompt)
    if grid:
        data["grid"] = grid
    if repetitions is not None:
        put(data, "repetitions", "repetitions", {"fixed": _flag_value(repetitions)})
    if cooldown_s is not None:
        put(data, "cooldown", "cooldown", {"fixed_s": _flag_value(cooldown_s)})
    for key, value in (("warmup", warmup), ("idle_baseline_s", idle_baseline_s), ("order", order),
                       ("max_failures", max_failures), ("meters", meters), ("sample_period_ms", sample_period_ms),
                       ("cpu_tdp_w", cpu_tdp_w), ("min_window_s", min_window_s), ("name", name),
                       ("backend", backend)):
        put(data, key, key, value)
    if output_dir is not None:
        put(data, "output_dir", "output_dir", os.fspath(output_dir))
    if "models" not in data:
        raise ConfigError("no model given", hint="pass -m MODEL (e.g. -m synthetic:tiny) or --config FILE")
    source = base.source if base is not None else "command line"
    config = parse_config(data, source=source, labels=labels)
    config._source = source if not labels else (f"{source} + flags" if base is not None else "command line")
    return config


def resolve_sweep_config(config_path: str | os.PathLike[str] | None = None, **flags: Any) -> SweepConfig:
    """What ``energybench sweep`` calls: load ``config_path`` (if any), then apply ``flags``
    (keyword arguments of :func:`config_from_flags`; ``None`` = not given). Flags win."""
    base = load_config(config_path) if config_path is not None else None
    if base is not None and all(v is None for v in flags.values()):
        return base
    return config_from_flags(base, **flags)


def offloads(config: SweepConfig) -> bool:
    """Whether any point of ``config`` offloads layers to a GPU (``n_gpu_layers != 0``)."""
    return any(n != 0 for n in config.grid.n_gpu_layers)


def gpu_warnings(config: SweepConfig, *, supports_gpu_offload: Any = None) -> list[str]:
    """Warnings about the GPU side of ``config`` (``energybench config validate`` prints them).

    Only a config whose grid offloads is checked: then whether the installed llama-cpp-python can
    offload at all (asked in a child process, cached; ``supports_gpu_offload`` may be given as a
    callable returning bool, for tests), and whether the GPU protocol is switched off.
    """
    if not offloads(config):
        return []
    from energybench.errors import EnergybenchError

    layers = sorted(n for n in config.grid.n_gpu_layers if n != 0)
    out: list[str] = []
    if supports_gpu_offload is None:
        from energybench.gpu import supports_gpu_offload
    try:
        ok = bool(supports_gpu_offload())
    except EnergybenchError as exc:
        out.append(f"grid.n_gpu_layers {layers} offloads to the GPU, but whether this llama-cpp-python build can "
                   f"do that could not be checked: {exc.one_line()}")
    else:
        if not ok:
            from energybench.gpu import CUDA_INSTALL_ONE_LINER

            out.append(f"grid.n_gpu_layers {layers} offloads to the GPU, but the installed llama-cpp-python is a "
                       f"CPU-only build: `energybench sweep` will refuse to start (install a CUDA build: "
                       f"{CUDA_INSTALL_ONE_LINER}, see docs/cuda.md; or use n_gpu_layers: [0])")
    if not config.gpu_protocol.enabled:
        out.append("gpu_protocol.enabled is false: GPU energy of offloading points is measured without the "
                   "Yang et al. protocol (NVML energy on A100/H100 was off by 39% on average without it)")
    return out


def estimate_note(config: SweepConfig) -> str:
    """A short human note on what the cooldown setting means for time (for summaries)."""
    if config.cooldown.fixed_s is not None:
        return f"fixed {config.cooldown.fixed_s:g} s cooldown after each run"
    ui = config.cooldown.until_idle
    assert ui is not None
    return f"cooldown until within {ui.within_pct:g}% of idle for {ui.hold_s:g} s (at most {ui.max_s:g} s)"


__all__ = [
    "ADAPTIVE_METRICS", "FLAG_NAMES", "FLASH_ATTN", "ORDERS", "AdaptiveRepetitions", "Cooldown", "FieldProblem",
    "GpuProtocolConfig", "Grid", "PromptAxis", "Repetitions", "SweepConfig", "UntilIdle", "allowed_keys",
    "config_error_from_validation", "config_from_flags", "config_hash", "config_json_schema", "estimate_note",
    "format_path", "gpu_warnings", "known_meters", "load_config", "offloads", "parse_config", "parse_range",
    "prompt_specs", "read_yaml", "resolve_sweep_config",
]
