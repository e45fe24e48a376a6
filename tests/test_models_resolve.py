"""resolve_model: one reference syntax (path, name, alias, hf:, https://, synthetic:), manifest
hits without re-hashing, allow_fetch=False, local files changing on disk, name collisions."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))

from models_support import sha256_hex, small_gguf_bytes, write  # noqa: E402

from energybench.errors import ModelError  # noqa: E402
from energybench.models import (  # noqa: E402
    Manifest,
    ResolvedModel,
    fetch_model,
    list_models,
    parse_ref,
    resolve_model,
)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENERGYBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_parse_ref_kinds() -> None:
    assert parse_ref("synthetic:tiny").kind == "synthetic"
    s = parse_ref("synthetic:tinyllama-1.1b:q8_0@7")
    assert (s.shape, s.quant, s.seed, s.source, s.default_name) == (
        "tinyllama-1.1b", "Q8_0", 7, "synthetic:tinyllama-1.1b:Q8_0@7", "synthetic:tinyllama-1.1b:Q8_0@7")
    assert parse_ref("synthetic:tiny").default_name == "synthetic:tiny:Q4_K_M"
    h = parse_ref("hf:TheBloke/Repo-GGUF/sub/file.Q4_0.gguf@abc123")
    assert (h.kind, h.repo, h.filename, h.revision) == ("hf", "TheBloke/Repo-GGUF", "sub/file.Q4_0.gguf", "abc123")
    assert h.default_name == "file.Q4_0"
    assert parse_ref("https://example.org/x/m.gguf").kind == "url"
    a = parse_ref("tinyllama-1.1b-chat")
    assert a.kind == "alias" and a.alias is not None and a.alias.quant == "Q4_K_M"
    assert parse_ref("./models/m.gguf").kind == "name"
    for bad, pattern in [("synthetic:tiny@x", "not an integer"), ("synthetic:nope", "unknown shape"),
                         ("synthetic:tiny:Q9", "unknown quant"), ("hf:owner/file.gguf", "OWNER/REPO/FILE"),
                         ("tinyllama-1.1b-chat:IQ1_S", "no quant"), ("", "empty"),
                         ("ftp://h/x.gguf", "unsupported URL scheme")]:
        with pytest.raises(ModelError, match=pattern):
            parse_ref(bad)


def test_synthetic_ref_is_made_once_then_a_manifest_hit(home: Path) -> None:
    m = resolve_model("synthetic:tiny")
    assert isinstance(m, ResolvedModel)
    assert m.synthetic and m.shape == "tiny" and m.quant == "Q4_K_M" and m.seed == 0
    assert m.name == "synthetic:tiny:Q4_K_M" and m.source == "synthetic:tiny:Q4_K_M@0"
    assert m.path.parent == home / "models" / "synthetic"
    assert m.sha256 == sha256_hex(m.path.read_bytes()) and m.size_bytes == m.path.stat().st_size
    # Flip one byte without changing the size: the cached entry is trusted (size check only), which
    # proves the second call neither re-synthesizes nor re-hashes the file.
    data = bytearray(m.path.read_bytes())
    data[-1] ^= 0xFF
    m.path.write_bytes(bytes(data))
    again = resolve_model("synthetic:tiny:Q4_K_M@0")
    assert again.sha256 == m.sha256 and again.path == m.path
    assert m.path.read_bytes() == bytes(data)
    assert resolve_model("synthetic:tiny:Q4_K_M").name == m.name
    assert resolve_model(m.name, allow_fetch=False).path == m.path  # by manifest name
    # a different size means the cache entry is stale: synthesized again
    m.path.write_bytes(bytes(data[:-100]))
    fresh = resolve_model("synthetic:tiny")
    assert fresh.sha256 == m.sha256 and fresh.size_bytes == m.size_bytes


def test_allow_fetch_false_names_the_command(home: Path) -> None:
    with pytest.raises(ModelError) as exc:
        resolve_model("synthetic:tiny:Q8_0@3", allow_fetch=False)
    assert "energybench fetch --synthetic tiny --quant Q8_0 --seed 3" in exc.value.one_line()
    with pytest.raises(ModelError) as exc2:
        resolve_model("tinyllama-1.1b-chat:Q4_0", allow_fetch=False)
    assert "run: energybench fetch tinyllama-1.1b-chat:Q4_0" in exc2.value.one_line()
    with pytest.raises(ModelError) as exc3:
        resolve_model("https://127.0.0.1:1/m.gguf", allow_fetch=False)
    assert "run: energybench fetch https://127.0.0.1:1/m.gguf" in exc3.value.one_line()
    assert not (home / "models" / "synthetic").exists()


def test_local_path_is_registered_not_copied(home: Path, tmp_path: Path) -> None:
    data = small_gguf_bytes(5000)
    p = write(tmp_path / "elsewhere" / "My-Model.Q4_0.gguf", data)
    m = resolve_model(str(p))
    assert m.path == p.resolve() and m.sha256 == sha256_hex(data) and m.source == "local"
    assert m.name == "My-Model.Q4_0" and m.quant == "F32" and not m.synthetic
    assert not list((home / "models").rglob("*.gguf"))
    assert resolve_model("My-Model.Q4_0").path == p.resolve()
    # the file changes on disk (size and mtime): the next resolve validates and hashes it again
    data2 = small_gguf_bytes(6000, seed=3)
    p.write_bytes(data2)
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    m2 = resolve_model("My-Model.Q4_0")
    assert m2.sha256 == sha256_hex(data2) and m2.size_bytes == len(data2)
    assert [x.name for x in list_models()] == ["My-Model.Q4_0"]
    # a relative path works too
    old = Path.cwd()
    os.chdir(p.parent)
    try:
        assert resolve_model("My-Model.Q4_0.gguf").path == p.resolve()
        assert resolve_model("./My-Model.Q4_0.gguf").name == "My-Model.Q4_0"
    finally:
        os.chdir(old)


def test_missing_and_unknown_refs(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found") as exc:
        resolve_model(str(tmp_path / "nope.gguf"))
    assert exc.value.exit_code == 2
    with pytest.raises(ModelError, match="unknown model 'nope'.*tinyllama-1.1b-chat"):
        resolve_model("nope")
    with pytest.raises(ModelError, match="unknown model alias 'llama9:Q4_0'.*known shapes"):
        resolve_model("llama9:Q4_0")
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_model(str(write(tmp_path / "x.gguf", b"PK\x03\x04 zip")))
    registered = resolve_model(str(write(tmp_path / "gone.gguf", small_gguf_bytes(100))))
    Path(registered.path).unlink()
    with pytest.raises(ModelError, match="is gone"):
        resolve_model("gone")


def test_name_collisions(home: Path, tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "model.gguf", small_gguf_bytes(100, seed=1))
    b = write(tmp_path / "b" / "model.gguf", small_gguf_bytes(100, seed=2))
    ma = fetch_model(str(a))
    assert ma.name == "model"
    mb = resolve_model(str(b))  # implicit name taken by another file: made unique
    assert mb.name == f"model-{mb.sha256[:8]}"
    with pytest.raises(ModelError, match="already used by") as exc:
        fetch_model(str(b), name="model")
    assert exc.value.exit_code == 2
    forced = fetch_model(str(b), name="model", force=True)
    assert forced.path == b.resolve() and Manifest().get("model").path == str(b.resolve())
    assert {m.name for m in list_models()} == {"model"}  # one entry per file
    with pytest.raises(ModelError, match="--name"):
        fetch_model(str(a), name="bad name")


def test_sha256_check_of_a_local_file(home: Path, tmp_path: Path) -> None:
    from energybench.errors import ChecksumError

    data = small_gguf_bytes(100)
    p = write(tmp_path / "m.gguf", data)
    with pytest.raises(ChecksumError, match="left untouched"):
        fetch_model(str(p), sha256="f" * 64)
    assert p.read_bytes() == data
    assert fetch_model(str(p), sha256=sha256_hex(data)).sha256 == sha256_hex(data)


def test_named_synthetic_and_second_seed(home: Path) -> None:
    m = fetch_model("synthetic:tiny:Q8_0@2", name="twin-q8")
    assert m.name == "twin-q8" and m.quant == "Q8_0" and m.seed == 2
    assert resolve_model("synthetic:tiny:Q8_0@2").name == "twin-q8"  # found by source
    assert resolve_model("twin-q8").sha256 == m.sha256


def test_files_are_registered_again_after_the_manifest_is_deleted(home: Path) -> None:
    """The damaged-manifest hint says 'delete it; cached files are registered again on next use'."""
    m = resolve_model("synthetic:tiny")
    mtime = m.path.stat().st_mtime_ns
    (home / "models" / "manifest.json").unlink()
    again = resolve_model("synthetic:tiny")
    assert again.sha256 == m.sha256 and again.path == m.path
    assert m.path.stat().st_mtime_ns == mtime  # registered, not made again
