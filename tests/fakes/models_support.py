"""Helpers for the model tests: small real GGUF files written with the ``gguf`` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def small_gguf_bytes(n_elements: int = 3000, seed: int = 0, *, name: str = "small test model") -> bytes:
    """A valid GGUF (v3) with two F32 tensors of random data; a few kB to a few hundred kB."""
    import tempfile

    import gguf

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.gguf"
        w = gguf.GGUFWriter(path, arch="llama")
        w.add_name(name)
        w.add_file_type(0)
        w.add_uint32("test.n", n_elements)
        rng = np.random.default_rng(seed)
        w.add_tensor("a.weight", rng.standard_normal(n_elements).astype(np.float32))
        w.add_tensor("b.weight", rng.standard_normal((4, 64)).astype(np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path.read_bytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()

