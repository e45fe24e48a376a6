"""A fully resolved measurement point: one configuration of one model.

``measure`` runs one :class:`RunPoint`; ``sweep`` expands a grid into many. The point knows which
of its fields are *load-time* (a change needs the model loaded again) and which are runtime, so
a sweep can load each model once per load group.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from energybench.backends.base import ContextParams, FlashAttn, LoadParams

#: Fields whose change requires a new model load (llama.cpp model params).
LOAD_FIELDS = ("model", "backend", "n_gpu_layers", "main_gpu", "repack", "use_mmap")


@dataclass(frozen=True)
class PromptSpec:
    """What to feed the model.

    - ``kind="synthetic"``: exactly ``n_prompt`` tokens, cut from a fixed English text with the
      model's own tokenizer (so the count is exact whatever the vocabulary).
    - ``kind="suite"``: prompt ``prompt_id`` of suite ``suite`` (shipped JSONL), its natural length.
    - ``kind="text"``: literal ``text`` (``--prompt``/``--prompt-file``).
    """

    kind: str = "synthetic"  # synthetic | suite | text
    n_prompt: int | None = 128  # exact for synthetic; None for suite/text (measured)
    suite: str | None = None
    prompt_id: str | None = None
    text: str | None = None

    def label(self) -> str:
        if self.kind == "suite":
            return f"{self.suite}/{self.prompt_id}"
        if self.kind == "text":
            digest = hashlib.sha256((self.text or "").encode()).hexdigest()[:8]
            return f"text:{digest}"
        return f"synthetic:{self.n_prompt}"


@dataclass(frozen=True)
class RunPoint:
    """One configuration. ``n_ctx=None`` means: prompt + generation, rounded up to 256."""

    model: str
    n_gen: int = 64
    prompt: PromptSpec = field(default_factory=PromptSpec)
    backend: str = "llama.cpp"
    n_threads: int = 1
    n_threads_batch: int | None = None
    n_gpu_layers: int = 0
    main_gpu: int = 0
    n_batch: int = 512
    n_ubatch: int = 512
    n_ctx: int | None = None
    flash_attn: FlashAttn = "auto"
    offload_kqv: bool = True
    repack: bool = True
    use_mmap: bool = True
    seed: int = 0
    min_window_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def point_id(self) -> str:
        """Stable short hash of every field: the identity of a point across runs and resumes."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def load_key(self) -> str:
        """Points with equal load keys share one loaded model."""
        blob = json.dumps({k: getattr(self, k) for k in LOAD_FIELDS}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def load_params(self, model_path: str) -> LoadParams:
        return LoadParams(model_path=model_path, n_gpu_layers=self.n_gpu_layers,
                          main_gpu=self.main_gpu, use_mmap=self.use_mmap, repack=self.repack)

    def context_params(self, n_prompt_tokens: int) -> ContextParams:
        return ContextParams(n_ctx=self.resolved_n_ctx(n_prompt_tokens), n_batch=self.n_batch,
                             n_ubatch=self.n_ubatch, n_threads=self.n_threads,
                             n_threads_batch=self.n_threads_batch, flash_attn=self.flash_attn,
                             offload_kqv=self.offload_kqv)

    def resolved_n_ctx(self, n_prompt_tokens: int) -> int:
        if self.n_ctx is not None:
            return self.n_ctx
        need = n_prompt_tokens + self.n_gen
        return max(256, -(-need // 256) * 256)

    def with_(self, **changes: Any) -> RunPoint:
        return replace(self, **changes)
