"""The example sweep configs that ship with energybench (``examples/*.yaml`` in the repository).

A wheel carries them as package data (``energybench/_examples/``, see pyproject.toml); a source
checkout (editable install) finds them in the repository's ``examples/`` folder. So
``energybench sweep`` with no config runs the built-in ``quick`` sweep, and ``--config p1_baseline``
works wherever energybench is installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT = "quick"


def _dirs() -> list[Path]:
    out = []
    try:
        packaged = resources.files("energybench") / "_examples"
        if packaged.is_dir():
            out.append(Path(str(packaged)))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    checkout = Path(__file__).resolve().parents[2] / "examples"
    if checkout.is_dir():
        out.append(checkout)
    return out


def list_builtin() -> list[str]:
    """Names of the built-in example configs (``quick``, ``p1_baseline``, ``p2_ablation``)."""
    names: set[str] = set()
    for d in _dirs():
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def builtin_config(name: str) -> Path | None:
    """Path of the built-in config ``name`` (with or without ``.yaml``), or None."""
    stem = name[:-5] if name.endswith(".yaml") else name
    if "/" in stem or "\\" in stem:
        return None
    for d in _dirs():
        p = d / f"{stem}.yaml"
        if p.is_file():
            return p
    return None
