"""Shape twins: GGUF files with a real model's exact hyperparameters and seeded random weights.

The twin is written as F16 (matrices) / F32 (vectors) with the ``gguf`` package, one tensor at a
time from a per-tensor seeded RNG (deterministic, and never the whole model in memory), then
quantized by llama.cpp's own ``llama_model_quantize`` in a subprocess (``_quantize.py``), so the
K-quant mixes are exactly those of real files and a native crash cannot take the caller down.
Same shape + quant + seed → byte-identical file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from energybench import __version__
from energybench.errors import FetchError, ModelError
from energybench.models.download import ProgressFn, check_free_space, disk_full_error, sha256_file
from energybench.models.gguf_check import GGUFInfo, read_gguf_info
from energybench.models.shapes import Shape
from energybench.models.tokenizer import build_vocab

#: Standard deviation of the random weights: small, so F16 stays finite through the layers.
WEIGHT_STD = 0.02
DEFAULT_QUANT = "Q4_K_M"
#: Elements per generated chunk (bounds memory: 4 M float32 = 16 MB).
CHUNK_ELEMENTS = 1 << 22

#: Quant name → (llama_ftype, approximate bits per weight for the disk-space estimate).
#: Quants that need an importance matrix (IQ*, Q2_K_S) are not offered.
QUANTS: dict[str, tuple[int, float]] = {
    "F32": (0, 32.0), "F16": (1, 16.0), "BF16": (32, 16.0),
    "Q4_0": (2, 4.6), "Q4_1": (3, 5.1), "Q5_0": (8, 5.6), "Q5_1": (9, 6.1), "Q8_0": (7, 8.6),
    "Q2_K": (10, 3.5), "Q3_K_S": (11, 3.6), "Q3_K_M": (12, 4.0), "Q3_K_L": (13, 4.4),
    "Q4_K_S": (14, 4.7), "Q4_K_M": (15, 5.0), "Q5_K_S": (16, 5.6), "Q5_K_M": (17, 5.8), "Q6_K": (18, 6.7),
}
#: Written directly by the gguf writer (no quantize step).
DIRECT = ("F32", "F16", "BF16")


def normalize_quant(quant: str) -> str:
    """Canonical quant name (case-insensitive); :class:`ModelError` listing the choices otherwise."""
    for q in QUANTS:
        if q.lower() == quant.strip().lower():
            return q
    raise ModelError(f"unknown quant {quant!r} for a shape twin; choose one of: {', '.join(QUANTS)}")


@dataclass(frozen=True)
class SynthResult:
    path: Path
    sha256: str
    size_bytes: int
    info: GGUFInfo


def twin_filename(shape: Shape, quant: str, seed: int) -> str:
    return f"{shape.name}-{quant}-seed{seed}.gguf"


def _tensor_rng(seed: int, name: str) -> Any:
    """A numpy Generator seeded from (seed, tensor name): each tensor is reproducible on its own."""
    import numpy as np

    digest = hashlib.sha256(f"energybench-twin:{seed}:{name}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _to_bf16_bits(x: Any) -> Any:
    """float32 → bfloat16 bit patterns (round to nearest even), as uint16."""
    import numpy as np

    bits = x.astype(np.float32).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def _add_metadata(w: Any, shape: Shape, seed: int, file_type: int) -> None:
    w.add_type("model")
    w.add_name(f"{shape.name} shape twin (synthetic, random weights)")
    w.add_description(f"energybench shape twin of {shape.name}: exact hyperparameters, seeded random weights "
                      f"(seed {seed}); for speed and energy measurements only, its output is meaningless")
    w.add_file_type(file_type)
    w.add_quantization_version(2)
    w.add_context_length(shape.n_ctx)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_layer_norm_rms_eps(shape.rms_eps)
    w.add_rope_freq_base(shape.rope_theta)
    w.add_rope_dimension_count(shape.head_dim)
    if shape.head_dim * shape.n_head != shape.n_embd:
        w.add_key_length(shape.head_dim)
        w.add_value_length(shape.head_dim)
    w.add_vocab_size(shape.n_vocab)
    vocab = build_vocab(shape.n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(vocab.tokens)
    w.add_token_scores(vocab.scores)
    w.add_token_types(vocab.token_types)
    w.add_bos_token_id(vocab.bos_id)
    w.add_eos_token_id(vocab.eos_id)
    w.add_unk_token_id(vocab.unk_id)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_bool("energybench.synthetic", True)
    w.add_string("energybench.shape", shape.name)
    w.add_uint64("energybench.seed", seed)
    w.add_float32("energybench.weight_std", WEIGHT_STD)
    w.add_string("energybench.version", __version__)


def write_twin_unquantized(shape: Shape, path: Path, *, seed: int = 0, dtype: str = "F16",
                           progress: ProgressFn | None = None) -> None:
    """Write the F16/F32/BF16 twin of ``shape`` to ``path``, streaming one tensor (chunk) at a time."""
    import gguf
    import numpy as np

    if dtype not in DIRECT:
        raise ValueError(dtype)
    file_type = QUANTS[dtype][0]
    np_dtype = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[dtype]
    raw = gguf.GGMLQuantizationType.BF16 if dtype == "BF16" else None
    elem = 4 if dtype == "F32" else 2

    w = gguf.GGUFWriter(path=None, arch=shape.arch)
    _add_metadata(w, shape, seed, file_type)
    specs = shape.tensor_shapes()
    total = 0
    for name, tshape, is_matrix in specs:
        n = int(np.prod(tshape))
        if is_matrix:
            w.add_tensor_info(name, tshape, np.dtype(np_dtype), n * elem, raw_dtype=raw)
            total += n * elem
        else:
            w.add_tensor_info(name, tshape, np.dtype(np.float32), n * 4)
            total += n * 4
    rope = shape.rope_freq_factors()
    w.write_header_to_file(path=path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0]
    done = 0
    try:
        w.write_padding(fout, fout.tell())
        for name, tshape, is_matrix in specs:
            n = int(np.prod(tshape))
            if not is_matrix:
                if name == "rope_freqs.weight":
                    vec = np.asarray(rope, dtype=np.float32)
                elif name.endswith(".bias"):
                    vec = np.zeros(n, dtype=np.float32)
                else:  # norms
                    vec = np.ones(n, dtype=np.float32)
                vec.tofile(fout)
                nbytes = n * 4
                done += nbytes
            else:
                rng = _tensor_rng(seed, name)
                left = n
                while left:
                    k = min(left, CHUNK_ELEMENTS)
                    x = rng.standard_normal(k, dtype=np.float32)
                    x *= WEIGHT_STD
                    if dtype == "F16":
                        x.astype(np.float16).tofile(fout)
                    elif dtype == "BF16":
                        _to_bf16_bits(x).tofile(fout)
                    else:
                        x.tofile(fout)
                    left -= k
                    done += k * elem
                    if progress is not None:
                        progress(done, total)
                nbytes = n * elem
            w.write_padding(fout, nbytes)
            if progress is not None:
                progress(done, total)
        fout.flush()
        os.fsync(fout.fileno())
    finally:
        w.close()


def quantize_in_subprocess(src: Path, dst: Path, quant: str, *, threads: int | None = None) -> None:
    """Run llama.cpp's ``llama_model_quantize(src → dst, quant)`` in a child Python process.

    Raises :class:`FetchError` with the child's exit status and the tail of its log on failure
    (including a native crash).
    """
    ftype = QUANTS[quant][0]
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            threads = os.cpu_count() or 1
    with tempfile.TemporaryFile(prefix="energybench-quantize-") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "energybench.models._quantize", str(src), str(dst), str(ftype), str(threads)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False,
        )
        if proc.returncode == 0:
            return
        log.seek(0, os.SEEK_END)
        log.seek(max(0, log.tell() - 2000))
        tail = log.read().decode("utf-8", errors="replace").strip().splitlines()
    last = " | ".join(tail[-3:]) if tail else "no output"
    raise FetchError(f"llama.cpp quantizer {_describe_rc(proc.returncode)} while making {quant} from {src.name}: "
                     f"{last}")


def _describe_rc(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with status {rc}"


def synthesize_file(shape: Shape, dest: Path, *, quant: str = DEFAULT_QUANT, seed: int = 0,
                    progress: ProgressFn | None = None) -> SynthResult:
    """Make the twin of ``shape`` at ``dest`` (atomically: temp names, validated, then renamed).

    ``progress(done, total)`` reports bytes of the F16 intermediate written; the quantize step
    that follows reports nothing.
    """
    quant = normalize_quant(quant)
    if seed < 0 or seed >= 2**63:
        raise ModelError(f"seed {seed} out of range (0 .. 2**63-1)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    f16_bytes = shape.f16_bytes()
    out_estimate = int(f16_bytes * QUANTS[quant][1] / 16) + (1 << 22)
    need = out_estimate + (0 if quant in DIRECT else f16_bytes)
    check_free_space(dest, need)
    tag = f"{os.getpid()}"
    stage = dest.with_name(f".{dest.name}.tmp-{tag}.{'f16' if quant not in DIRECT else quant.lower()}.gguf")
    out = dest.with_name(f".{dest.name}.tmp-{tag}.out.gguf")
    try:
        try:
            write_twin_unquantized(shape, stage, seed=seed, dtype=quant if quant in DIRECT else "F16",
                                   progress=progress)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)):
                raise disk_full_error(stage, exc) from None
            raise FetchError(f"cannot write {stage}: {exc.strerror or exc}") from None
        if quant in DIRECT:
            os.replace(stage, out)
        else:
            quantize_in_subprocess(stage, out, quant)
            stage.unlink()
        info = read_gguf_info(out)
        if info.metadata.get("energybench.synthetic") is not True or info.metadata.get("energybench.shape") != shape.name:
            raise FetchError(f"the quantized twin {out.name} lost its energybench.* metadata keys")
        digest = sha256_file(out)
        os.replace(out, dest)
        with contextlib.suppress(OSError):
            fd = os.open(dest.parent, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    finally:
        for tmp in (stage, out):
            with contextlib.suppress(OSError):
                tmp.unlink()
    return SynthResult(path=dest, sha256=digest, size_bytes=dest.stat().st_size,
                       info=read_gguf_info(dest))
