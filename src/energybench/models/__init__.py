"""Models: the cache and its manifest, aliases, downloads, shape twins, and model references.

Every command names a model the same way (see :mod:`energybench.models.resolve`) and gets a
:class:`ResolvedModel` from :func:`resolve_model`.
"""

from __future__ import annotations

from energybench.models.aliases import ALIASES, Alias, parse_alias
from energybench.models.download import ProgressFn, RemoteNotFound
from energybench.models.gguf_check import GGUFInfo, read_gguf_info
from energybench.models.manifest import Manifest, ModelEntry
from energybench.models.resolve import (
    ParsedRef,
    ResolvedModel,
    fetch_model,
    list_models,
    parse_ref,
    register_local,
    resolve_model,
    synthesize_model,
)
from energybench.models.shapes import SHAPES, Shape, get_shape
from energybench.models.synth import DEFAULT_QUANT, QUANTS

__all__ = [
    "ALIASES", "Alias", "DEFAULT_QUANT", "GGUFInfo", "Manifest", "ModelEntry", "ParsedRef", "ProgressFn", "QUANTS",
    "RemoteNotFound", "ResolvedModel", "SHAPES", "Shape", "fetch_model", "get_shape", "list_models", "parse_alias",
    "parse_ref", "read_gguf_info", "register_local", "resolve_model", "synthesize_model",
]
