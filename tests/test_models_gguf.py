"""GGUF header validation: magic, version, tensor table, truncation (without reading tensor data)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))

from models_support import small_gguf_bytes, write  # noqa: E402

from energybench.errors import ModelError  # noqa: E402
from energybench.models.gguf_check import ftype_name, read_gguf_info  # noqa: E402


def test_reads_header_metadata_and_tensor_table(tmp_path: Path) -> None:
    data = small_gguf_bytes(3000)
    p = write(tmp_path / "m.gguf", data)
    info = read_gguf_info(p)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.metadata["general.name"] == "small test model"
    assert info.metadata["test.n"] == 3000
    assert [t.name for t in info.tensors] == ["a.weight", "b.weight"]
    assert info.tensors[0].shape == (3000,)
    assert info.tensors[1].shape == (64, 4)  # GGUF order: ne0 first
    assert info.tensor_types() == {"F32": 2}
    # the data section ends exactly where the writer stopped (after padding of the last tensor)
    assert info.data_end <= info.file_size == len(data)
    assert info.data_end == info.data_offset + info.tensors[1].offset + 4 * 64 * 4
    assert info.quant == "F32"


def test_truncated_tensor_data_is_detected_from_the_header(tmp_path: Path) -> None:
    data = small_gguf_bytes(3000)
    info = read_gguf_info(write(tmp_path / "ok.gguf", data))
    short = data[: info.data_end - 10]
    p = write(tmp_path / "short.gguf", short)
    with pytest.raises(ModelError) as exc:
        read_gguf_info(p)
    msg = exc.value.one_line()
    assert "truncated" in msg and str(len(short)) in msg and str(info.data_end) in msg
    assert exc.value.exit_code == 2


def test_truncated_header(tmp_path: Path) -> None:
    data = small_gguf_bytes(3000)
    p = write(tmp_path / "hdr.gguf", data[:40])
    with pytest.raises(ModelError, match="truncated.*inside its GGUF header"):
        read_gguf_info(p)


def test_not_gguf_magic(tmp_path: Path) -> None:
    p = write(tmp_path / "x.gguf", b"<html>404 not found</html>")
    with pytest.raises(ModelError, match="not a GGUF file"):
        read_gguf_info(p)
    with pytest.raises(ModelError, match="empty file"):
        read_gguf_info(write(tmp_path / "empty.gguf", b""))


def test_unsupported_version(tmp_path: Path) -> None:
    data = bytearray(small_gguf_bytes(100))
    data[4:8] = struct.pack("<I", 1)
    with pytest.raises(ModelError, match="version 1"):
        read_gguf_info(write(tmp_path / "v1.gguf", bytes(data)))


def test_corrupt_counts_do_not_allocate(tmp_path: Path) -> None:
    data = bytearray(small_gguf_bytes(100))
    data[8:16] = struct.pack("<Q", 1 << 60)  # n_tensors
    with pytest.raises(ModelError, match="not a valid GGUF"):
        read_gguf_info(write(tmp_path / "bad.gguf", bytes(data)))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        read_gguf_info(tmp_path / "nope.gguf")
    with pytest.raises(ModelError, match="directory"):
        read_gguf_info(tmp_path)


def test_ftype_names() -> None:
    assert ftype_name(2) == "Q4_0"
    assert ftype_name(15) == "Q4_K_M"
    assert ftype_name(1) == "F16"
    assert ftype_name(0) == "F32"
    assert ftype_name(None) is None
    assert ftype_name(9999) is None
