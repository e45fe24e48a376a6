"""The backend contract: what an inference engine must offer energybench.

A backend loads one model at a time (:class:`LoadParams` are the load-time parameters: changing
any of them means a new load) and runs generations with runtime parameters
(:class:`ContextParams`, :class:`GenerationRequest`). Every timestamp is ``time.monotonic_ns()``
(CLOCK_MONOTONIC), the clock the power sampler uses too, so windows and samples line up even
when the backend runs in another process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FlashAttn = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class LoadParams:
    """Load-time parameters: a change in any of them needs the model loaded again."""

    model_path: str
    n_gpu_layers: int = 0  # -1 = all layers (and the output layer)
    main_gpu: int = 0
    use_mmap: bool = True
    # llama.cpp "extra buffer types": weight repacking (and AMX). False is the runtime workaround
    # for builds whose AMX kernels crash (measured: a default -march=native build segfaults in
    # ggml_backend_amx_mul_mat on quantized models on Sapphire Rapids KVM guests; llama.cpp
    # ggml/src/ggml-cpu/amx).
    repack: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ContextParams:
    """Runtime parameters of one llama.cpp context."""

    n_ctx: int = 2048
    n_batch: int = 512
    n_ubatch: int = 512
    n_threads: int = 1
    n_threads_batch: int | None = None  # None = same as n_threads
    flash_attn: FlashAttn = "auto"
    offload_kqv: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def threads_batch(self) -> int:
        return self.n_threads if self.n_threads_batch is None else self.n_threads_batch


@dataclass(frozen=True)
class GenerationRequest:
    """One generation: a prompt (token ids) and an exact number of tokens to generate.

    ``n_gen`` tokens are always generated: end-of-generation tokens are suppressed (random-weight
    shape twins almost never emit EOS, real models do; either way the length is fixed).
    ``min_window_s``: if > 0, the decode phase is repeated (KV cache cleared, same prompt) until
    prefill + decode has lasted at least this long; token counts then cover every repetition.
    """

    prompt_tokens: tuple[int, ...]
    n_gen: int
    seed: int = 0
    min_window_s: float = 0.0
    # test hook: ask the worker to crash in native code ("segv") or abort ("abort") mid-run
    crash: str | None = None

    @property
    def n_prompt(self) -> int:
        return len(self.prompt_tokens)


@dataclass
class PerfCounters:
    """llama.cpp's own counters (``llama_perf_context``), reported beside ours."""

    t_load_ms: float = 0.0
    t_p_eval_ms: float = 0.0
    t_eval_ms: float = 0.0
    n_p_eval: int = 0
    n_eval: int = 0
    n_reused: int = 0


@dataclass
class RunResult:
    """What one generation produced. Timestamps are ``time.monotonic_ns()``."""

    ok: bool
    t_start_ns: int = 0
    t_prefill_end_ns: int = 0  # prefill decoded and first token sampled (TTFT end)
    t_end_ns: int = 0
    token_t_ns: list[int] = field(default_factory=list)  # one per generated token
    n_prompt_tokens: int = 0  # prompt tokens evaluated (x repeats with min_window_s)
    n_gen_tokens: int = 0  # tokens generated (x repeats with min_window_s)
    n_repeats: int = 1
    perf: PerfCounters = field(default_factory=PerfCounters)
    gpu_mem_used_bytes: int | None = None
    error: str | None = None
    stderr_tail: str | None = None
    returncode: int | None = None  # set when the worker process died

    @property
    def window_ns(self) -> int:
        return self.t_end_ns - self.t_start_ns


@dataclass
class ModelInfo:
    """What the backend knows about a loaded model."""

    path: str
    description: str = ""
    n_layer: int = 0
    n_params: int = 0
    size_bytes: int = 0
    n_ctx_train: int = 0
    n_vocab: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    load_ns: int = 0  # wall time the load took


@dataclass
class BackendInfo:
    """Static facts about a backend build (``energybench doctor``, results metadata)."""

    name: str
    version: str
    system_info: str = ""
    supports_gpu_offload: bool = False
    devices: list[str] = field(default_factory=list)
    build_flags: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """An inference engine. Implementations: :mod:`energybench.backends.llamacpp`."""

    name: str

    def info(self) -> BackendInfo:
        """Facts about the backend build (does not load a model)."""
        ...

    def load(self, params: LoadParams) -> ModelInfo:
        """Load a model (a no-op when the same params are already loaded)."""
        ...

    def tokenize(self, text: str, *, add_bos: bool = True) -> list[int]:
        """Tokenize with the loaded model's vocabulary."""
        ...

    def detokenize(self, tokens: list[int]) -> str:
        ...

    def run(self, ctx: ContextParams, req: GenerationRequest) -> RunResult:
        """Run one generation. A failure (even a native crash) is a ``RunResult`` with ok=False."""
        ...

    def close(self) -> None:
        ...
