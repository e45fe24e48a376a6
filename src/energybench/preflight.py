"""Refuse impossible work before any model is loaded, synthesized or downloaded.

A point whose prompt + generation is longer than the model's training context, or whose model +
KV cache cannot fit in the memory of a CPU-only run, would otherwise load (or first synthesize or
download) the model and then run for minutes or fail deep inside llama.cpp. The checks here need
only a few facts about the model (:class:`ModelFacts`), found without the network and without
synthesizing anything: from the shape table for a ``synthetic:`` twin that is not cached yet, or
from the GGUF header of a file already on disk. Where the facts are unknown, nothing is checked.

Everything here is pure: it raises :class:`~energybench.errors.ConfigError` (exit code 2) or
returns warning strings; it never prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from energybench.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from energybench.models.gguf_check import GGUFInfo
    from energybench.models.resolve import ParsedRef
    from energybench.point import RunPoint

#: Bytes per element of llama.cpp's default KV cache type (f16).
F16_BYTES = 2

SOURCE_SHAPES = "shape table"
SOURCE_GGUF = "GGUF header"


@dataclass(frozen=True)
class ModelFacts:
    """What preflight knows about a model.

    ``n_ctx_train`` is the training context (tokens). The KV layout (``n_layer``, ``n_head_kv``,
    ``head_dim`` = key length per head, ``head_dim_v`` = value length per head) is None where the
    source does not say (e.g. a recurrent architecture); ``size_bytes`` is the GGUF file size, None
    when no file exists yet. ``source`` is :data:`SOURCE_SHAPES` or :data:`SOURCE_GGUF`.
    """

    n_ctx_train: int
    n_layer: int | None
    n_head_kv: int | None
    head_dim: int | None
    head_dim_v: int | None
    size_bytes: int | None
    source: str

    @property
    def n_embd_k_gqa(self) -> int | None:
        """K width per layer (n_head_kv * key length), as llama.cpp names it."""
        return _product(self.n_head_kv, self.head_dim)

    @property
    def n_embd_v_gqa(self) -> int | None:
        """V width per layer (n_head_kv * value length)."""
        return _product(self.n_head_kv, self.head_dim_v)


def _product(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a * b


# ----------------------------------------------------------------------------- facts


def model_facts(ref: str) -> ModelFacts | None:
    """Facts about model ``ref`` from a file already on disk or the shape table; None if unknown.

    Never downloads or synthesizes. A malformed reference raises the same
    :class:`~energybench.errors.ModelError` that resolving it would.
    """
    from energybench.models.resolve import parse_ref

    parsed = parse_ref(ref)
    path = _file_on_disk(parsed)
    if path is not None:
        facts = _facts_from_file(path)
        if facts is not None:
            return facts
    if parsed.kind == "synthetic":
        return shape_facts(parsed.shape or "")
    return None


def _file_on_disk(parsed: ParsedRef) -> Path | None:
    """The GGUF file resolving ``parsed`` would use without fetching anything, if there is one."""
    from energybench.models.manifest import Manifest
    from energybench.models.resolve import _entry_usable, _lookup

    manifest = Manifest()
    if parsed.kind in ("synthetic", "hf", "url", "alias"):
        entry = _lookup(manifest, parsed)
        return Path(entry.path) if entry is not None and _entry_usable(entry) else None
    entry = manifest.entries().get(parsed.ref)
    if entry is not None:
        return Path(entry.path) if Path(entry.path).is_file() else None
    return parsed.path if parsed.path is not None and parsed.path.is_file() else None


def _facts_from_file(path: Path) -> ModelFacts | None:
    """Facts from the header of the GGUF file at ``path``; None when it is unreadable (resolving
    the model reports that, or fetches the file again)."""
    from energybench.models.gguf_check import read_gguf_info

    try:
        info = read_gguf_info(path)
    except ModelError:
        return None
    return gguf_facts(info)


def shape_facts(shape_name: str) -> ModelFacts:
    """Facts of a shape in :data:`energybench.models.shapes.SHAPES` (size unknown: no file yet)."""
    from energybench.models.shapes import get_shape

    s = get_shape(shape_name)
    return ModelFacts(n_ctx_train=s.n_ctx, n_layer=s.n_layer, n_head_kv=s.n_head_kv, head_dim=s.head_dim,
                      head_dim_v=s.head_dim, size_bytes=None, source=SOURCE_SHAPES)


def gguf_facts(info: GGUFInfo) -> ModelFacts | None:
    """Facts from a parsed GGUF header, with llama.cpp's defaults for absent keys (head_count_kv =
    head_count, key/value length = embedding_length / head_count). None without a context length.
    Per-layer arrays (a few architectures) leave that part of the KV layout unknown."""
    md, arch = info.metadata, info.architecture
    n_ctx_train = _int_key(md, f"{arch}.context_length")
    if arch is None or n_ctx_train is None or n_ctx_train <= 0:
        return None
    n_head = _int_key(md, f"{arch}.attention.head_count")
    n_embd = _int_key(md, f"{arch}.embedding_length")
    kv_key = f"{arch}.attention.head_count_kv"
    n_head_kv = _int_key(md, kv_key) if kv_key in md else n_head
    head_dim = _int_key(md, f"{arch}.attention.key_length") or (n_embd // n_head if n_embd and n_head else None)
    return ModelFacts(n_ctx_train=n_ctx_train, n_layer=_int_key(md, f"{arch}.block_count"), n_head_kv=n_head_kv,
                      head_dim=head_dim, head_dim_v=_int_key(md, f"{arch}.attention.value_length") or head_dim,
                      size_bytes=info.file_size, source=SOURCE_GGUF)


def _int_key(metadata: dict[str, Any], key: str) -> int | None:
    """An integer metadata value; None when absent or not a plain integer (e.g. per-layer arrays)."""
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ----------------------------------------------------------------------------- checks


def check_context(n_prompt: int | None, n_gen: int, n_ctx: int | None, facts: ModelFacts | None, *,
                  what: str) -> list[str]:
    """Refuse a prompt + generation longer than the training context; warn on an explicit n_ctx above it.

    ``n_prompt`` None means unknown (suite or text prompts need the tokenizer): only the generation
    alone is checked against the training context (a prompt is never shorter than 0 tokens). An
    explicit ``n_ctx`` larger than the training context is only a warning, as in llama.cpp itself:
    the positions actually used stay within the training context (the error above guarantees it),
    so the run is valid; only the KV cache is larger (which :func:`check_memory` weighs).
    """
    if facts is None:
        return []
    limit = facts.n_ctx_train
    if (n_prompt or 0) + n_gen > limit:
        raise ConfigError(
            f"{what}: {_length_text(n_prompt, n_gen)} exceeds the model's training context of {limit} tokens "
            f"(from the {facts.source})",
            hint=f"shorten --n-prompt/--n-gen to at most {limit} tokens together, "
                 "or pick a model with a longer context")
    if n_ctx is not None and n_ctx > limit:
        return [f"{what}: n_ctx={n_ctx} exceeds the model's training context ({limit} tokens)"]
    return []


def _length_text(n_prompt: int | None, n_gen: int) -> str:
    if n_prompt is None:
        return f"the generation alone ({n_gen} tokens, before a prompt of unknown length)"
    return f"prompt ({n_prompt} tokens) + generation ({n_gen}) = {n_prompt + n_gen} tokens"


def kv_cache_bytes(facts: ModelFacts, n_ctx: int, type_bytes: int = F16_BYTES) -> int | None:
    """Size of llama.cpp's K and V caches for ``n_ctx`` cells (f16 by default); None if the layout is unknown.

    2 * n_layer * n_ctx * n_head_kv * head_dim * type_bytes when keys and values have the same length.
    """
    k, v = facts.n_embd_k_gqa, facts.n_embd_v_gqa
    if facts.n_layer is None or k is None or v is None:
        return None
    return facts.n_layer * n_ctx * (k + v) * type_bytes


def check_memory(facts: ModelFacts | None, n_ctx: int, n_gpu_layers: int, available_bytes: int, *,
                 what: str = "this run") -> None:
    """Refuse a CPU-only point whose model + KV cache exceeds ``available_bytes``.

    A lower bound of the need (compute buffers are not counted), so only the clearly impossible is
    refused. Skipped when the facts are unknown and when layers are offloaded (``n_gpu_layers`` != 0:
    GPU memory is not known here). An unknown model size counts as 0 (the KV cache alone is checked).
    """
    if facts is None or n_gpu_layers != 0:
        return
    kv_bytes = kv_cache_bytes(facts, n_ctx)
    if kv_bytes is None and facts.size_bytes is None:
        return
    need_bytes = (facts.size_bytes or 0) + (kv_bytes or 0)
    if need_bytes > available_bytes:
        raise ConfigError(
            f"{what}: needs at least {format_bytes(need_bytes)} of memory (model {_size_text(facts.size_bytes)} + "
            f"KV cache {_size_text(kv_bytes)} at n_ctx={n_ctx}) but {format_bytes(available_bytes)} is available",
            hint="use a smaller n_ctx (--ctx) or prompt (--n-prompt), a smaller model or quant, "
                 "or offload layers to a GPU (--n-gpu-layers)")


def format_bytes(n_bytes: int) -> str:
    """``1.50 GiB`` from 1 GiB up, ``12.3 MiB`` below."""
    if n_bytes >= 1 << 30:
        return f"{n_bytes / (1 << 30):.2f} GiB"
    return f"{n_bytes / (1 << 20):.1f} MiB"


def _size_text(n_bytes: int | None) -> str:
    return "size unknown" if n_bytes is None else format_bytes(n_bytes)


def check_point(point: RunPoint, facts: ModelFacts | None, available_bytes: int | None = None) -> list[str]:
    """Both checks for one point; returns the warnings. ``available_bytes`` defaults to the
    system's available memory (``psutil.virtual_memory().available``), read only when needed."""
    n_prompt = point.prompt.n_prompt if point.prompt.kind == "synthetic" else None
    what = point_label(point)
    warnings = check_context(n_prompt, point.n_gen, point.n_ctx, facts, what=what)
    n_ctx = point.resolved_n_ctx(n_prompt) if n_prompt is not None else point.n_ctx
    if facts is not None and n_ctx is not None and point.n_gpu_layers == 0:
        if available_bytes is None:
            import psutil

            available_bytes = int(psutil.virtual_memory().available)
        check_memory(facts, n_ctx, point.n_gpu_layers, available_bytes, what=what)
    return warnings


def point_label(point: RunPoint) -> str:
    """The point, compactly: ``synthetic:tiny n_prompt=100000 n_gen=8``."""
    if point.prompt.kind == "synthetic":
        return f"{point.model} n_prompt={point.prompt.n_prompt} n_gen={point.n_gen}"
    return f"{point.model} prompt {point.prompt.label()} n_gen={point.n_gen}"


def check_plan(points: Iterable[RunPoint], available_bytes: int | None = None) -> list[str]:
    """:func:`check_point` for every point (each model's facts read once); returns the distinct
    warnings. Models not on disk yet (to be downloaded) have no facts and are not checked."""
    points = list(points)
    facts = {ref: model_facts(ref) for ref in dict.fromkeys(p.model for p in points)}
    notes: list[str] = []
    for p in points:
        notes += check_point(p, facts[p.model], available_bytes)
    return list(dict.fromkeys(notes))
