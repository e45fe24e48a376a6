"""Can llama.cpp's AMX kernels run here? Found out once per machine and build, by trying.

A llama.cpp build with AMX kernels (``AMX_INT8 = 1`` in its system info; what ``pip install`` gives
on Sapphire/Emerald Rapids) was measured to die with SIGSEGV or SIGILL on quantized models in KVM
guests of those CPUs (in ``ggml_backend_amx_mul_mat``, llama.cpp ggml/src/ggml-cpu/amx), while the
same build runs when its extra buffer types (weight repacking, AMX among them) are off. So when the
CPU *and* the build have AMX, energybench runs one tiny quantized generation with repacking in a
throw-away worker: if that worker dies, repacking is switched off for the measurement (said once,
recorded in metadata); the verdict is cached per machine and build. A build without AMX keeps
repacking (it is worth 11-28 % of decode speed on the TinyLlama twin).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from energybench import paths, sysinfo
from energybench.backends import BackendInfo, ContextParams, GenerationRequest, LoadParams, create_backend
from energybench.errors import BackendError
from energybench.gpu import amx_flags, build_has_amx

#: The generation tried: tiny, but through every quantized matmul kind of a decode.
PROBE_PROMPT = tuple(range(1, 9))
PROBE_GEN = 4


@dataclass(frozen=True)
class AmxVerdict:
    """Whether weight repacking (and with it AMX) may stay on, and why."""

    checked: bool  # a probe ran (now or earlier: ``cached``)
    repack_ok: bool
    reason: str
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(info: BackendInfo) -> str:
    blob = json.dumps([info.name, info.version, info.system_info, sysinfo.cpu_model(),
                       sorted(sysinfo.cpu_flags())], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cache_file(info: BackendInfo) -> Path:
    return paths.home() / "amx" / f"{_key(info)}.json"


def probe(backend_name: str, model_path: str) -> tuple[bool, str]:
    """Run the tiny generation with repacking in a fresh worker: (it worked, what happened)."""
    backend = create_backend(backend_name, start=True)
    try:
        backend.load(LoadParams(model_path=model_path, repack=True))
        res = backend.run(ContextParams(n_ctx=64, n_batch=8, n_ubatch=8, n_threads=1),
                          GenerationRequest(prompt_tokens=PROBE_PROMPT, n_gen=PROBE_GEN))
    except BackendError as exc:  # the worker died while loading
        return False, f"a quantized model with repacking failed to load: {exc.message}"
    finally:
        backend.close()
    if res.ok:
        return True, "a quantized generation with repacking ran"
    return False, f"a quantized generation with repacking failed: {res.error or 'the worker died'}"


def check(info: BackendInfo, backend_name: str, model_path: Callable[[], str]) -> AmxVerdict:
    """The verdict for this machine and build: no check without AMX on both sides, else the cached
    answer, else a probe (its answer cached). ``model_path`` gives a small quantized model (called
    only when a probe runs)."""
    cpu = amx_flags(sysinfo.cpu_flags())
    if not cpu or not build_has_amx(info.system_info):
        return AmxVerdict(checked=False, repack_ok=True, reason="no AMX on this CPU or in this llama.cpp build")
    cache = _cache_file(info)
    if cache.exists():
        return AmxVerdict(**{**json.loads(cache.read_text()), "cached": True})
    ok, what = probe(backend_name, model_path())
    reason = ("this CPU has AMX and so does the llama.cpp build: " + what +
              ("; weight repacking stays on" if ok else "; weight repacking (and AMX) switched off for quantized "
               "models (as --no-repack does; a build without AMX keeps it, see the README's llama.cpp builds)"))
    verdict = AmxVerdict(checked=True, repack_ok=ok, reason=reason)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({k: v for k, v in verdict.to_dict().items() if k != "cached"}))
    return verdict
