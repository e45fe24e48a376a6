"""Cheap structural validation of GGUF files: header, metadata, tensor table, and file length.

:func:`read_gguf_info` parses only the header, the key/value metadata and the tensor table (a few
MB even for a multi-GB model) and compares the end of the last tensor's data with the file size,
so a truncated download is caught without reading the tensor data. Nothing native is loaded.

GGUF layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md)::

    magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv x (key, u32 type, value)
    | n_tensors x (name, u32 n_dims, n_dims x u64 ne, u32 ggml_type, u64 offset)
    | padding to general.alignment (default 32) | tensor data (offsets relative to here)
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from energybench.errors import ModelError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
SUPPORTED_VERSIONS = (2, 3)

# value types of GGUF metadata (gguf.md, "gguf_metadata_value_type")
_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

#: Sanity limits: a corrupt or hostile header must not make us allocate gigabytes.
_MAX_STRING = 1 << 24  # 16 MiB for one key or string value
_MAX_COUNT = 1 << 32
_MAX_DIMS = 8
#: Arrays longer than this are summarised (length only) in :attr:`GGUFInfo.metadata`.
_KEEP_ARRAY = 64


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table."""

    name: str
    shape: tuple[int, ...]  # ne0 first (GGUF order)
    ggml_type: int
    offset: int  # relative to the start of the data section
    nbytes: int | None  # None when the type is unknown to this gguf package version

    @property
    def type_name(self) -> str:
        from gguf.constants import GGMLQuantizationType

        try:
            return GGMLQuantizationType(self.ggml_type).name
        except ValueError:
            return f"type{self.ggml_type}"


@dataclass(frozen=True)
class GGUFInfo:
    """What the header of a GGUF file says, and where its data ends."""

    path: Path
    version: int
    byte_order: str  # "<" little or ">" big endian
    n_tensors: int
    n_kv: int
    metadata: dict[str, Any]  # arrays longer than 64 items are kept as {"array_of": type, "len": n}
    tensors: tuple[TensorEntry, ...] = field(repr=False)
    alignment: int
    data_offset: int  # absolute offset of the tensor data section
    data_end: int  # absolute offset just past the last tensor's data
    file_size: int

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def file_type(self) -> int | None:
        value = self.metadata.get("general.file_type")
        return int(value) if isinstance(value, int) else None

    @property
    def quant(self) -> str | None:
        """The llama.cpp file type as a quant name (``Q4_K_M``, ``F16`` ...), if the file says."""
        return ftype_name(self.file_type)

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("energybench.synthetic", False))

    def tensor_types(self) -> dict[str, int]:
        """Count of tensors per ggml type name, e.g. ``{"Q4_K": 135, "Q6_K": 21, "F32": 45}``."""
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[t.type_name] = counts.get(t.type_name, 0) + 1
        return counts


def ftype_name(file_type: int | None) -> str | None:
    """``general.file_type`` (llama.cpp ``llama_ftype``) → ``Q4_K_M``; None if unknown."""
    if file_type is None:
        return None
    from gguf.constants import LlamaFileType

    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def tensor_nbytes(ggml_type: int, shape: tuple[int, ...]) -> int | None:
    """Bytes of one tensor's data, or None for a type this gguf package does not know."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    n = 1
    for d in shape:
        n *= d
    if shape and shape[0] % block_size:
        raise _Bad(f"tensor row of {shape[0]} elements is not a multiple of the {block_size}-element block of its type")
    return n // block_size * type_size


class _Bad(Exception):
    """Internal: the header is malformed (turned into a ModelError naming the file)."""


class _Reader:
    """Sequential little/big-endian reader over a buffered binary file, with EOF checks."""

    def __init__(self, f: BinaryIO, order: str) -> None:
        self.f = f
        self.order = order
        self.pos = 0

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise EOFError
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        return struct.unpack(self.order + fmt, self.read(size))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        if n > _MAX_STRING:
            raise _Bad(f"string of {n} bytes in the header (corrupt?)")
        return self.read(n).decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        # read (not seek) so that a short file raises EOFError at the right place
        while n > 0:
            chunk = self.read(min(n, 1 << 20))
            n -= len(chunk)

    def value(self, vtype: int, *, keep: bool = True) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype = self.unpack("I")
            count = self.unpack("Q")
            if count > _MAX_COUNT:
                raise _Bad(f"array of {count} items in the header (corrupt?)")
            if count <= _KEEP_ARRAY and keep:
                return [self.value(etype) for _ in range(count)]
            if etype in _SCALARS:
                self.skip(count * struct.calcsize("<" + _SCALARS[etype]))
            else:
                for _ in range(count):
                    self.value(etype, keep=False)
            return {"array_of": etype, "len": count}
        raise _Bad(f"unknown metadata value type {vtype}")


def read_gguf_info(path: Path | str) -> GGUFInfo:
    """Parse a GGUF file's header and tensor table and check that its data is all there.

    Raises :class:`~energybench.errors.ModelError` (exit code 2) naming the file when it is missing,
    not a GGUF file (bad magic), of an unsupported version, malformed, or truncated (shorter than
    the end of its last tensor's data). Reads the header only, never the tensor data.
    """
    p = Path(path)
    try:
        file_size = p.stat().st_size
        f = open(p, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ModelError(f"model file not found: {p}") from None
    except IsADirectoryError:
        raise ModelError(f"model path is a directory, not a GGUF file: {p}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {p}: {exc.strerror or exc}") from None
    with f:
        try:
            return _parse(p, io.BufferedReader(f, buffer_size=1 << 20), file_size)  # type: ignore[arg-type]
        except EOFError:
            raise ModelError(
                f"{p} is truncated: the file ends ({file_size} bytes) inside its GGUF header",
                hint="download it again; a partial download cannot be used",
            ) from None
        except _Bad as exc:
            raise ModelError(f"{p} is not a valid GGUF file: {exc}") from None


def _parse(p: Path, f: BinaryIO, file_size: int) -> GGUFInfo:
    magic = f.read(4)
    if magic != GGUF_MAGIC:
        shown = magic.hex() if magic else "an empty file"
        raise ModelError(
            f"{p} is not a GGUF file (first bytes {shown!s}, expected 'GGUF')",
            hint="energybench runs llama.cpp GGUF models; convert other formats with llama.cpp's convert_hf_to_gguf.py",
        )
    raw_version = f.read(4)
    if len(raw_version) != 4:
        raise EOFError
    version = struct.unpack("<I", raw_version)[0]
    order = "<"
    if version not in SUPPORTED_VERSIONS and struct.unpack(">I", raw_version)[0] in SUPPORTED_VERSIONS:
        order, version = ">", struct.unpack(">I", raw_version)[0]
    if version not in SUPPORTED_VERSIONS:
        raise ModelError(f"{p} is GGUF version {version}; llama.cpp reads versions 2 and 3",
                         hint="re-convert the model with a current llama.cpp")
    r = _Reader(f, order)
    r.pos = 8
    n_tensors = r.unpack("Q")
    n_kv = r.unpack("Q")
    if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
        raise _Bad(f"implausible counts ({n_tensors} tensors, {n_kv} metadata keys)")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.unpack("I")
        metadata[key] = r.value(vtype)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Bad(f"general.alignment = {alignment!r} is not a power of two")
    tensors: list[TensorEntry] = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("I")
        if n_dims > _MAX_DIMS:
            raise _Bad(f"tensor {name!r} has {n_dims} dimensions")
        shape = tuple(r.unpack("Q") for _ in range(n_dims))
        ggml_type = r.unpack("I")
        offset = r.unpack("Q")
        if offset % alignment:
            raise _Bad(f"tensor {name!r} data offset {offset} is not aligned to {alignment}")
        try:
            nbytes = tensor_nbytes(ggml_type, shape)
        except _Bad as exc:
            raise _Bad(f"tensor {name!r}: {exc}") from None
        tensors.append(TensorEntry(name=name, shape=shape, ggml_type=ggml_type, offset=offset, nbytes=nbytes))
    data_offset = (r.pos + alignment - 1) // alignment * alignment
    data_end = data_offset
    for t in tensors:
        end = data_offset + t.offset + (t.nbytes if t.nbytes is not None else 0)
        data_end = max(data_end, end)
    if file_size < data_end:
        raise ModelError(
            f"{p} is truncated: {file_size} bytes, but its tensor data ends at byte {data_end} "
            f"({data_end - file_size} bytes missing)",
            hint="download it again; a partial download cannot be used",
        )
    return GGUFInfo(path=p, version=version, byte_order=order, n_tensors=n_tensors, n_kv=n_kv, metadata=metadata,
                    tensors=tuple(tensors), alignment=alignment, data_offset=data_offset, data_end=data_end,
                    file_size=file_size)


def file_identity(path: Path | str) -> tuple[int, int]:
    """(size_bytes, mtime_ns) of a file: cheap change detection for cached checksums."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
