"""Figures reused while nothing they are drawn from has changed.

Drawing the figures (plotnine, in worker processes) is most of a report's time. A report writes,
beside its figures, the key of what they were drawn from: the energybench version, the options that
shape them, and every results file of every set (name, size, modification time). The next report
with the same key reuses the figures without starting a worker; a sweep that added a run, another
``--window`` or a new energybench version draws them again. ``--serve`` thereby redraws only when
runs arrive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from energybench import __version__
from energybench.report.figures import FIGURES, FigureFile

KEY_FILE = ".drawn-from.json"
#: The files of a results directory that figures are drawn from.
RESULT_FILES = ("metadata.json", "runs.parquet", "samples.parquet", "journal.jsonl")


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    parts = sorted((root / "parts").glob("*.parquet")) if (root / "parts").is_dir() else []
    return [p for p in (root / n for n in RESULT_FILES) if p.exists()] + parts


def inputs_key(dirs: Sequence[Path | str], options: Mapping[str, Any]) -> str | None:
    """A hash of the version, ``options`` and every results file's name, size and mtime; None
    (no reuse) for a set on object storage, whose objects have no cheap modification stamp here."""
    from energybench.storage import is_url

    if any(is_url(d) for d in dirs):
        return None
    h = hashlib.sha256(json.dumps([__version__, dict(options)], sort_keys=True, default=str).encode())
    for d in dirs:
        for p in _files(Path(d)):
            st = p.stat()
            h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cached(fig_dir: Path, key: str | None) -> list[FigureFile] | None:
    """The figures drawn for ``key`` when they are all still there, else None."""
    if key is None:
        return None
    try:
        drawn = json.loads((fig_dir / KEY_FILE).read_text())
    except (OSError, ValueError):
        return None
    if drawn.get("key") != key:
        return None
    if not set(drawn["figures"]) <= set(FIGURES):
        return None
    files = []
    for name in (n for n in FIGURES if n in drawn["figures"]):  # the report's order, not the file's
        paths = {fmt: fig_dir / f"{name}.{fmt}" for fmt in drawn["figures"][name]}
        if not all(p.exists() for p in paths.values()):
            return None
        _, title, caption = FIGURES[name]
        png = paths["png"].read_bytes() if "png" in paths else None
        files.append(FigureFile(name=name, title=title, caption=caption, paths=paths, png_bytes=png))
    return files


def remember(fig_dir: Path, key: str | None, files: Sequence[FigureFile]) -> None:
    """Write ``key`` beside the figures just drawn (for None: forget any earlier key)."""
    from energybench.results import atomic_write_json

    if key is None:
        (fig_dir / KEY_FILE).unlink(missing_ok=True)
        return

    fig_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(fig_dir / KEY_FILE, {"key": key, "figures": {f.name: sorted(f.paths) for f in files}})
