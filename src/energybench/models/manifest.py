"""The model cache manifest: ``models_dir()/manifest.json``.

One JSON document, ``{"version": 1, "models": {name: entry}}``, rewritten atomically (temp file,
fsync, rename) under an exclusive lock file so two energybench processes never lose each other's
updates. Locks are ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows, and an
``O_EXCL`` lock file elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from energybench import paths
from energybench.errors import ConfigError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
try:  # Windows
    import msvcrt
except ImportError:
    msvcrt = None  # type: ignore[assignment]

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".manifest.lock"


@contextlib.contextmanager
def file_lock(path: Path, *, poll_s: float = 0.05) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is not None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    elif msvcrt is not None:  # pragma: no cover - Windows
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    time.sleep(poll_s)
            try:
                yield
            finally:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)
    else:  # pragma: no cover - neither: an exclusive-create lock file (stale after 10 min)
        excl = path.with_name(path.name + ".excl")
        while True:
            try:
                fd = os.open(excl, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                os.close(fd)
                break
            except FileExistsError:
                with contextlib.suppress(OSError):
                    if time.time() - excl.stat().st_mtime > 600:
                        excl.unlink()
                time.sleep(poll_s)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                excl.unlink()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelEntry:
    """One cached or registered model. ``path`` is absolute; ``size_bytes`` and ``mtime_ns``
    detect a file changed behind our back (then the sha256 is recomputed)."""

    name: str
    path: str
    sha256: str
    size_bytes: int
    source: str  # "hf:REPO/FILE@REV", "https://...", "local", "synthetic:SHAPE:QUANT@SEED"
    synthetic: bool = False
    shape: str | None = None
    quant: str | None = None
    seed: int | None = None
    arch: str | None = None
    added_at: str = field(default_factory=now_iso)
    mtime_ns: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ModelEntry:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


class Manifest:
    """Read and update the manifest of one models directory (default :func:`paths.models_dir`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.models_dir()

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.lock_path)

    def _read_unlocked(self) -> dict[str, ModelEntry]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read the model manifest {self.path}: {exc.strerror or exc}") from None
        try:
            doc = json.loads(raw)
            models = doc["models"]
            if not isinstance(models, dict):
                raise TypeError("'models' is not an object")
            return {name: ModelEntry.from_json(obj) for name, obj in models.items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"the model manifest {self.path} is damaged ({exc})",
                              hint="delete it; cached files are registered again on next use") from None

    def _write_unlocked(self, entries: dict[str, ModelEntry]) -> None:
        from energybench.results import atomic_write_json  # (imports polars: only when writing)

        doc = {"version": MANIFEST_VERSION,
               "models": {name: entries[name].to_json() for name in sorted(entries)}}
        atomic_write_json(self.path, doc)

    def entries(self) -> dict[str, ModelEntry]:
        """All entries by name (a consistent snapshot)."""
        if not self.path.exists():
            return {}
        with self.lock():
            return self._read_unlocked()

    def get(self, name: str) -> ModelEntry | None:
        return self.entries().get(name)

    def find(self, *, source: str | None = None, path: Path | str | None = None) -> ModelEntry | None:
        """First entry with this source string or this (resolved) file path."""
        want_path = str(Path(path).resolve()) if path is not None else None
        for entry in self.entries().values():
            if source is not None and entry.source == source:
                return entry
            if want_path is not None and entry.path == want_path:
                return entry
        return None

    @contextlib.contextmanager
    def editing(self) -> Iterator[dict[str, ModelEntry]]:
        """Read-modify-write under the lock: mutate the yielded dict; it is written back on exit."""
        with self.lock():
            entries = self._read_unlocked()
            yield entries
            self._write_unlocked(entries)

    def put(self, entry: ModelEntry) -> None:
        with self.editing() as entries:
            entries[entry.name] = entry
