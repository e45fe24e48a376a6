"""Where energybench keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home() -> Path:
    """The energybench home: ``$ENERGYBENCH_HOME`` or the user's cache dir (``~/.cache/energybench``)."""
    env = os.environ.get("ENERGYBENCH_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("energybench"))
    return root


def models_dir() -> Path:
    """Directory holding cached GGUF files and the model manifest."""
    return home() / "models"
