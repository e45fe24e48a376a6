"""Inference backends, found by name through a small registry (one module per backend)."""

from __future__ import annotations

import importlib
from typing import Any

from energybench.backends.base import (
    Backend,
    BackendInfo,
    ContextParams,
    GenerationRequest,
    LoadParams,
    ModelInfo,
    PerfCounters,
    RunResult,
)
from energybench.errors import UsageError

#: name -> "module:Class". Adding a backend is one module plus one line here.
REGISTRY: dict[str, str] = {
    "llama.cpp": "energybench.backends.llamacpp:LlamaCppBackend",
}


def backend_names() -> list[str]:
    return sorted(REGISTRY)


def create_backend(name: str = "llama.cpp", **options: Any) -> Backend:
    """Instantiate the backend registered as ``name``."""
    target = REGISTRY.get(name)
    if target is None:
        raise UsageError(f"unknown backend {name!r}", hint=f"choose one of: {', '.join(backend_names())}")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(**options)


__all__ = [
    "Backend", "BackendInfo", "ContextParams", "GenerationRequest", "LoadParams", "ModelInfo",
    "PerfCounters", "RunResult", "REGISTRY", "backend_names", "create_backend",
]
