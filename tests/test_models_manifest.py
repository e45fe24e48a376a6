"""The model manifest: round trip, damaged file, and concurrent writers in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from energybench.errors import ConfigError
from energybench.models.manifest import Manifest, ModelEntry, file_lock


def _entry(name: str, **kw: object) -> ModelEntry:
    base: dict[str, object] = {"name": name, "path": f"/models/{name}.gguf", "sha256": "a" * 64, "size_bytes": 123,
                               "source": "local"}
    base.update(kw)
    return ModelEntry(**base)  # type: ignore[arg-type]


def test_put_get_round_trip(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "models")
    assert m.entries() == {}
    m.put(_entry("a", synthetic=True, shape="tiny", quant="Q4_K_M", seed=3))
    m.put(_entry("b", source="https://h/b.gguf"))
    doc = json.loads(m.path.read_text())
    assert doc["version"] == 1 and sorted(doc["models"]) == ["a", "b"]
    got = Manifest(tmp_path / "models").get("a")
    assert got is not None and got.synthetic and got.shape == "tiny" and got.seed == 3 and got.added_at
    assert m.find(source="https://h/b.gguf").name == "b"  # type: ignore[union-attr]
    # no temporary files left beside the manifest
    assert sorted(p.name for p in m.root.iterdir()) == [".manifest.lock", "manifest.json"]


def test_unknown_keys_are_ignored_for_forward_compatibility(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    m.path.write_text(json.dumps({"version": 2, "models": {"x": {**_entry("x").to_json(), "future": 1}}}))
    assert m.get("x") == _entry("x", added_at=m.get("x").added_at)  # type: ignore[union-attr]


def test_damaged_manifest_is_a_config_error(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    m.path.write_text("{not json")
    with pytest.raises(ConfigError, match="damaged") as exc:
        m.entries()
    assert exc.value.exit_code == 2 and str(m.path) in exc.value.one_line()
    m.path.write_text(json.dumps({"models": []}))
    with pytest.raises(ConfigError, match="damaged"):
        m.entries()


def test_failed_edit_writes_nothing(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    m.put(_entry("keep"))
    before = m.path.read_bytes()
    with pytest.raises(RuntimeError):
        with m.editing() as entries:
            entries["new"] = _entry("new")
            raise RuntimeError("boom")
    assert m.path.read_bytes() == before


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from energybench.models.manifest import Manifest, ModelEntry
    root, prefix, n, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    m = Manifest(root)
    print("ready", flush=True)
    while not go.exists():  # start together, so that the writes really overlap
        time.sleep(0.002)
    for i in range(n):
        m.put(ModelEntry(name=f"{prefix}{i}", path=f"/x/{prefix}{i}", sha256="b" * 64, size_bytes=i,
                         source="local"))
""")


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    """Three processes each add 30 entries at the same moment; the lock keeps all 90.

    (Without the lock, read-modify-write races lose entries: checked by hand, 70 of 90 survived.)
    """
    root = tmp_path / "models"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(root), p, "30", str(go)], stdout=subprocess.PIPE,
                              text=True) for p in ("a", "b", "c")]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        assert p.wait(timeout=120) == 0
    names = set(Manifest(root).entries())
    assert {f"{p}{i}" for p in "abc" for i in range(30)} == names


_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from energybench.models.manifest import file_lock
    with file_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.readline()   # hold the lock until the parent says so
    print("released", flush=True)
""")


def test_file_lock_excludes_another_process(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "locked"
    import fcntl
    import os

    fd = os.open(lock, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by the child
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        with file_lock(lock):  # now free
            pass
    finally:
        os.close(fd)
        holder.wait(timeout=30)
