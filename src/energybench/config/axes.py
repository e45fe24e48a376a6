"""Axis values of a sweep config: range strings, the axis parsers and the field types built on them.

Every grid axis takes a scalar, a list, or a range string (any integer axis)::

    threads: 4               # scalar
    threads: [1, 2, 4]       # list (items may themselves be range strings)
    threads: "1-8*2"         # 1,2,4,8   (first-last*factor, llama-bench syntax)
    threads: "1-4"           # 1,2,3,4   (first-last)
    n_gpu_layers: "0-22+11"  # 0,11,22   (first-last+step)
    n_gpu_layers: "0,11,22"  # comma list

Each parser returns the expanded list (values distinct) or raises :class:`FieldProblem`, which
:mod:`energybench.config.messages` turns into one line naming the field path and the value. The
``Annotated`` types (``ThreadsAxis`` ... ``TextAxis``, ``NonNegInt`` ..., ``GapRange``, ``RiseField``)
attach a parser and a JSON Schema to a field of :mod:`energybench.config.schema`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from energybench.defaults import LLAMA_DEFAULT_UBATCH

FLASH_ATTN = ("auto", "on", "off")
#: Most values one axis may expand to (guards against "1-1000000").
MAX_AXIS_VALUES = 4096
#: llama.cpp seeds are uint32.
MAX_SEED = 2**32 - 1

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
        out.extend(_range_item(raw))
        if len(out) > MAX_AXIS_VALUES:
            raise ValueError(f"{text!r} expands to more than {MAX_AXIS_VALUES} values")
    return out


def _range_item(raw: str) -> list[int]:
    """One comma-separated item: N, FIRST-LAST, FIRST-LAST*FACTOR or FIRST-LAST+STEP."""
    item = raw.strip().replace(" ", "")
    m = _RANGE_ITEM.match(item)
    if not m:
        raise ValueError(f"cannot parse {raw.strip()!r} as a number or range "
                         "(use N, FIRST-LAST, FIRST-LAST*FACTOR or FIRST-LAST+STEP, comma-separated)")
    first = int(m.group(1))
    if m.group(2) is None:
        return [first]
    last = int(m.group(2))
    if last < first:
        raise ValueError(f"range {item!r} runs backwards ({first} > {last})")
    op, k = m.group(3), int(m.group(4)) if m.group(4) else 1
    if op == "*":
        return _geometric(item, first, last, k)
    if k < 1:
        raise ValueError(f"range {item!r}: the step after '+' must be at least 1")
    if (last - first) // k + 1 > MAX_AXIS_VALUES:
        raise ValueError(f"range {item!r} expands to more than {MAX_AXIS_VALUES} values")
    return list(range(first, last + 1, k))


def _geometric(item: str, first: int, last: int, factor: int) -> list[int]:
    """``first, first*factor, ...`` up to ``last`` (stops past :data:`MAX_AXIS_VALUES` values)."""
    if factor < 2:
        raise ValueError(f"range {item!r}: the factor after '*' must be at least 2")
    if first < 1:
        raise ValueError(f"range {item!r}: a multiplicative range must start at 1 or more")
    out: list[int] = []
    v = first
    while v <= last and len(out) <= MAX_AXIS_VALUES:
        out.append(v)
        v *= factor
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
    BeforeValidator(lambda v: _int_axis(v, minimum=1, none_words=("auto",), none_allowed=True,
                                        what=f"physical batch size n_ubatch, or auto = min(batch, {LLAMA_DEFAULT_UBATCH})")),
    _axis_schema(_INT_OR_NULL, f"physical batch size (n_ubatch) <= batch; auto = min(batch, {LLAMA_DEFAULT_UBATCH})")]
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


# ----------------------------------------------------------------------------- GPU protocol values

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


__all__ = [
    "FLASH_ATTN", "MAX_AXIS_VALUES", "MAX_SEED", "BatchAxis", "BoolAxis", "CtxAxis", "FieldProblem", "FlashAxis",
    "GapRange", "GenAxis", "GpuLayersAxis", "MainGpuAxis", "NPromptAxis", "NonNegFloat", "NonNegInt", "PosFloat",
    "PosInt", "RiseField", "SeedAxis", "StrAxis", "TextAxis", "ThreadsAxis", "ThreadsBatchAxis", "UbatchAxis",
    "parse_range",
]
