"""Shapes of real models, for shape twins (same hyperparameters, seeded random weights).

A shape twin has exactly the tensor shapes, layer count, head layout and vocabulary size of the
real model, so llama.cpp does the same work per token and reads the same number of bytes: speed
and energy match the real file, output quality is meaningless. Adding a shape is one entry in
:data:`SHAPES`; cite where its numbers come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from energybench.errors import ModelError


@dataclass(frozen=True)
class Shape:
    """Hyperparameters of one decoder-only transformer, in GGUF terms.

    ``n_embd`` hidden size, ``n_ff`` feed-forward size, ``n_head``/``n_head_kv`` query and
    key/value heads (GQA), ``head_dim`` per head, ``n_vocab`` vocabulary size, ``n_ctx`` training
    context length (tokens), ``rms_eps`` RMSNorm epsilon, ``rope_theta`` RoPE base frequency.
    """

    name: str
    arch: str  # llama.cpp architecture: "llama" or "qwen2"
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_vocab: int
    n_ctx: int
    rms_eps: float
    rope_theta: float
    tied_embeddings: bool = False  # no output.weight: llama.cpp reuses token_embd
    qkv_bias: bool = False  # Qwen2 has biases on q, k, v
    #: Llama 3 RoPE scaling (written as a ``rope_freqs.weight`` tensor, as llama.cpp's converter does)
    rope_scaling: dict[str, float] | None = field(default=None, hash=False, compare=False)
    source: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.n_head % self.n_head_kv:
            raise ValueError(f"shape {self.name}: n_head {self.n_head} not a multiple of n_head_kv {self.n_head_kv}")
        if self.arch not in ("llama", "qwen2"):
            raise ValueError(f"shape {self.name}: unsupported arch {self.arch!r}")

    @property
    def n_embd_q(self) -> int:
        return self.n_head * self.head_dim

    @property
    def n_embd_kv(self) -> int:
        return self.n_head_kv * self.head_dim

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...], bool]]:
        """(name, numpy shape (rows, cols), is_matrix) of every tensor, in file order.

        Matrices are stored F16 in the intermediate file and quantized; vectors (norms, biases,
        rope factors) stay F32 as in real GGUF files.
        """
        e, q, kv, ff, v = self.n_embd, self.n_embd_q, self.n_embd_kv, self.n_ff, self.n_vocab
        out: list[tuple[str, tuple[int, ...], bool]] = [("token_embd.weight", (v, e), True)]
        if self.rope_scaling is not None:
            out.append(("rope_freqs.weight", (self.head_dim // 2,), False))
        for i in range(self.n_layer):
            b = f"blk.{i}."
            out.append((b + "attn_norm.weight", (e,), False))
            out.append((b + "attn_q.weight", (q, e), True))
            out.append((b + "attn_k.weight", (kv, e), True))
            out.append((b + "attn_v.weight", (kv, e), True))
            if self.qkv_bias:
                out.append((b + "attn_q.bias", (q,), False))
                out.append((b + "attn_k.bias", (kv,), False))
                out.append((b + "attn_v.bias", (kv,), False))
            out.append((b + "attn_output.weight", (e, q), True))
            out.append((b + "ffn_norm.weight", (e,), False))
            out.append((b + "ffn_gate.weight", (ff, e), True))
            out.append((b + "ffn_up.weight", (ff, e), True))
            out.append((b + "ffn_down.weight", (e, ff), True))
        out.append(("output_norm.weight", (e,), False))
        if not self.tied_embeddings:
            out.append(("output.weight", (v, e), True))
        return out

    def n_params(self) -> int:
        """Parameter count (elements of all tensors)."""
        return sum(math.prod(s) for _, s, _ in self.tensor_shapes())

    def f16_bytes(self) -> int:
        """Tensor data size of the F16 intermediate file (matrices F16, vectors F32)."""
        return sum(math.prod(s) * (2 if m else 4) for _, s, m in self.tensor_shapes())

    def rope_freq_factors(self) -> list[float] | None:
        """Llama 3 RoPE frequency factors, computed as llama.cpp's ``convert_hf_to_gguf.py`` does."""
        rs = self.rope_scaling
        if rs is None:
            return None
        factor = rs["factor"]
        low, high = rs["low_freq_factor"], rs["high_freq_factor"]
        old_ctx = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
        factors: list[float] = []
        for i in range(0, self.head_dim, 2):
            freq = 1.0 / (self.rope_theta ** (i / self.head_dim))
            wavelen = 2 * math.pi / freq
            if wavelen < high_wavelen:
                factors.append(1.0)
            elif wavelen > low_wavelen:
                factors.append(factor)
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                factors.append(1.0 / ((1 - smooth) / factor + smooth))
        return factors

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "arch": self.arch, "n_layer": self.n_layer, "n_embd": self.n_embd, "n_ff": self.n_ff,
            "n_head": self.n_head, "n_head_kv": self.n_head_kv, "head_dim": self.head_dim, "n_vocab": self.n_vocab,
            "n_ctx": self.n_ctx, "rms_eps": self.rms_eps, "rope_theta": self.rope_theta,
            "tied_embeddings": self.tied_embeddings, "qkv_bias": self.qkv_bias, "rope_scaling": self.rope_scaling,
        }


_SHAPE_LIST = (
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json on Hugging Face (hidden 2048,
    # intermediate 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000, 2048 positions,
    # rms_norm_eps 1e-5, rope_theta 10000, untied embeddings). Real GGUF: 201 tensors.
    Shape(name="tinyllama-1.1b", arch="llama", n_layer=22, n_embd=2048, n_ff=5632, n_head=32, n_head_kv=4,
          head_dim=64, n_vocab=32000, n_ctx=2048, rms_eps=1e-5, rope_theta=10000.0,
          source="https://huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0/blob/main/config.json",
          description="TinyLlama-1.1B-Chat-v1.0 (the reference model)"),
    # A few-MB test shape: every row length a multiple of 256 so K-quants apply to every matrix.
    Shape(name="tiny", arch="llama", n_layer=2, n_embd=256, n_ff=768, n_head=4, n_head_kv=2, head_dim=64,
          n_vocab=4096, n_ctx=2048, rms_eps=1e-5, rope_theta=10000.0,
          description="a few-MB llama-architecture shape for tests"),
    # meta-llama/Llama-3.2-1B config.json (as quoted in kevinstephano/thunder_model_blocks
    # hf_llama/llama_config.py, commit 4e20de36 of the HF repo): hidden 2048, intermediate 8192,
    # 16 layers, 32 heads, 8 KV heads, head_dim 64, vocab 128256, 131072 positions, rms 1e-5,
    # rope_theta 500000, llama3 rope scaling (factor 32, low 1, high 4, original 8192), tied.
    Shape(name="llama-3.2-1b", arch="llama", n_layer=16, n_embd=2048, n_ff=8192, n_head=32, n_head_kv=8,
          head_dim=64, n_vocab=128256, n_ctx=131072, rms_eps=1e-5, rope_theta=500000.0, tied_embeddings=True,
          rope_scaling={"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192.0},
          source="https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json",
          description="Llama 3.2 1B (vocabulary size kept; tokenizer is a SentencePiece stand-in)"),
    # Qwen/Qwen2.5-0.5B config.json: hidden 896, intermediate 4864, 24 layers, 14 heads, 2 KV heads
    # (head_dim 64), vocab 151936, 32768 positions, rms 1e-6, rope_theta 1e6, tied, QKV bias.
    Shape(name="qwen2.5-0.5b", arch="qwen2", n_layer=24, n_embd=896, n_ff=4864, n_head=14, n_head_kv=2,
          head_dim=64, n_vocab=151936, n_ctx=32768, rms_eps=1e-6, rope_theta=1000000.0, tied_embeddings=True,
          qkv_bias=True,
          source="https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json",
          description="Qwen2.5 0.5B (vocabulary size kept; tokenizer is a SentencePiece stand-in)"),
)

#: Known shapes by name.
SHAPES: dict[str, Shape] = {s.name: s for s in _SHAPE_LIST}


def get_shape(name: str) -> Shape:
    """The shape called ``name``; :class:`ModelError` listing the known shapes otherwise."""
    try:
        return SHAPES[name]
    except KeyError:
        raise ModelError(f"unknown shape {name!r}; known shapes: {', '.join(SHAPES)}") from None
