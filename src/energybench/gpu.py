"""GPU and build facts: what llama.cpp can offload to, what NVML sees, and the ``doctor`` report.

Every call into llama.cpp's native code happens in a child Python process (``python -c``), so a
broken or crashing build (e.g. the AMX segfault we measured: a default -march=native build crashes
in ggml_backend_amx_mul_mat on quantized models on Sapphire Rapids KVM guests) cannot take the
caller down: the child's death is reported as data.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from energybench import __version__, sysinfo
from energybench.errors import BackendError, EnergybenchError, UsageError

#: How to get a CUDA build of llama-cpp-python inside this project (verified with uv 0.13.9; the
#: project's own CMAKE_ARGS, the AMX workaround, still apply). Details and the persistent variant
#: in docs/cuda.md.
CUDA_INSTALL_ONE_LINER = ("uv sync --reinstall-package llama-cpp-python "
                          "--config-settings-package llama-cpp-python:cmake.define.GGML_CUDA=ON")

#: The same for Apple Silicon: llama.cpp's Metal backend (llama-cpp-python's README: GGML_METAL).
METAL_INSTALL_ONE_LINER = ("uv sync --reinstall-package llama-cpp-python "
                           "--config-settings-package llama-cpp-python:cmake.define.GGML_METAL=ON")

#: /proc/cpuinfo flags of Intel AMX.
AMX_CPU_FLAGS = ("amx_bf16", "amx_tile", "amx_int8", "amx_fp16", "amx_complex")

#: ggml device names -> the llama.cpp backend that owns them (llama.cpp ggml/src/ggml-*: GGML_CUDA_NAME
#: is "CUDA", "ROCm" in HIP builds and "MUSA" in MUSA builds; Metal's devices are "MTL0"..., "Metal" in
#: builds before its multi-device support; "Vulkan0", "SYCL0", "GPUOpenCL", "CANN0").
GGML_GPU_BACKENDS = (("cuda", r"CUDA\d*"), ("hip", r"(?:ROCm|HIP)\d*"), ("musa", r"MUSA\d*"),
                     ("metal", r"MTL\d*|Metal"), ("vulkan", r"Vulkan\d*"), ("sycl", r"SYCL\d*"),
                     ("opencl", r"GPUOpenCL|OpenCL\d*"), ("cann", r"CANN\d*"))

# ------------------------------------------------------------------------------ llama.cpp
def llama_cpp_probe(timeout_s: float = 120.0, python: str | None = None) -> dict[str, Any]:
    """What the installed llama-cpp-python can do, asked in a child process. Never raises.

    Returns ``ok`` (bool), ``version``, ``system_info``, ``supports_gpu_offload`` (bool),
    ``devices`` (ggml devices: ``name``, ``description``, ``type`` cpu|gpu|igpu|accel,
    ``memory_free_bytes``, ``memory_total_bytes``), ``devices_note``; when the child failed:
    ``error``, ``returncode`` and ``stderr_tail``.
    """
    # The child is energybench's own llama.cpp worker (the process every measurement uses): its
    # `hello` answer carries the build facts, and its death is reported as data.
    cmd = [python or sys.executable, "-m", "energybench.backends._worker"]
    try:
        proc = subprocess.run(cmd, input='{"op": "hello"}\n{"op": "quit"}\n', capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"the llama.cpp probe did not answer within {timeout_s:.0f} s",
                "returncode": None, "stderr_tail": ""}
    except OSError as exc:
        return {"ok": False, "error": f"cannot start {cmd[0]}: {exc}", "returncode": None,
                "stderr_tail": ""}
    stderr_tail = proc.stderr[-2000:]
    first = proc.stdout.splitlines()[0] if proc.stdout.strip() else ""
    try:
        resp = json.loads(first) if first else None
    except json.JSONDecodeError:
        resp = None
    if isinstance(resp, dict) and resp.get("ok"):
        h = resp["result"]
        return {"ok": True, "returncode": proc.returncode, "version": h.get("version"),
                "system_info": h.get("system_info", ""), "supports_gpu_offload": bool(h.get("supports_gpu_offload")),
                "devices": h.get("device_list", []), "devices_note": h.get("devices_note")}
    if isinstance(resp, dict):
        return {"ok": False, "returncode": proc.returncode, "stderr_tail": stderr_tail,
                "error": resp.get("error", "the llama.cpp worker failed")}
    return {"ok": False, "returncode": proc.returncode, "stderr_tail": stderr_tail,
            "error": f"the llama.cpp probe died (exit code {proc.returncode}) before answering: "
                     "the native library is broken or crashed"}


@functools.lru_cache(maxsize=4)
def _llama_cpp_probe_cached(python: str) -> dict[str, Any]:
    return llama_cpp_probe(python=python)


def clear_cache() -> None:
    """Forget the cached llama.cpp answer (e.g. after reinstalling llama-cpp-python)."""
    _llama_cpp_probe_cached.cache_clear()


def supports_gpu_offload() -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU (cached per interpreter).

    Raises :class:`BackendError` when the installed build cannot even be asked.
    """
    info = _llama_cpp_probe_cached(sys.executable)
    if not info.get("ok"):
        tail = (info.get("stderr_tail") or "").strip().splitlines()
        hint = f"last stderr line: {tail[-1]}; run `energybench doctor`" if tail else "run `energybench doctor`"
        raise BackendError(f"could not check whether llama.cpp supports GPU offload: {info.get('error')}",
                           hint=hint)
    return bool(info.get("supports_gpu_offload"))


def offload_backend(devices: Iterable[str]) -> str | None:
    """The backend of the GPU device that takes offloaded layers: the first GPU among ``devices``.

    ``devices``: BackendInfo.devices, ``"NAME (description, type)"`` as the llama.cpp worker lists the
    ggml devices (type cpu, gpu, igpu or accel). Returns cuda, hip, musa, metal, vulkan, sycl, opencl
    or cann; ``"gpu"`` for a GPU device of another backend; None when no device is a GPU.
    """
    for device in devices:
        name, _, rest = device.partition(" (")
        kind = rest.rstrip(")").rsplit(", ", 1)[-1] if rest else ""
        if kind in ("cpu", "accel"):
            continue
        backend = next((b for b, pattern in GGML_GPU_BACKENDS if re.fullmatch(pattern, name.strip())), None)
        if backend is not None:
            return backend
        if kind in ("gpu", "igpu"):
            return "gpu"
    return None


def gpu_build_hint() -> str:
    """How to install a llama-cpp-python that offloads, for this OS."""
    if sys.platform == "darwin":
        return f"install a Metal build: {METAL_INSTALL_ONE_LINER}, or use n_gpu_layers 0"
    return f"install a CUDA build: {CUDA_INSTALL_ONE_LINER} (see docs/cuda.md), or use n_gpu_layers 0"


def _natural(name: str) -> list[Any]:
    """Sort key that orders ``gpu-b512`` before ``gpu-b1024``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def needs_gpu(n_gpu_layers: int) -> bool:
    """Whether a point with this ``n_gpu_layers`` offloads to a GPU (0 keeps every layer on the CPU)."""
    return n_gpu_layers != 0


def refuse_cpu_only_offload(n_gpu_layers: Iterable[int], supports_offload: bool,
                            names: Sequence[str] | None = None) -> None:
    """Raise :class:`UsageError` (exit 2) when some point offloads layers but the build is CPU-only
    (``supports_offload``: the build's ``llama_supports_gpu_offload()``). The one place this rule lives.

    ``names``: the points' configuration ids (parallel to ``n_gpu_layers``): the message then says
    which configurations cannot run, and that ``--cpu-only`` runs the others."""
    ngl = list(n_gpu_layers)
    layers = sorted({n for n in ngl if needs_gpu(n)})
    if not layers or supports_offload:
        return
    which = ""
    hint = gpu_build_hint()
    if names is not None:
        gpu_names = sorted({nm for nm, n in zip(names, ngl, strict=True) if needs_gpu(n)}, key=_natural)
        n_gpu = sum(needs_gpu(n) for n in ngl)
        which = (f" in {len(gpu_names)} of {len(set(names))} configurations ({', '.join(gpu_names[:12])}"
                 f"{', ...' if len(gpu_names) > 12 else ''}; {n_gpu} of {len(ngl)} points)")
        if n_gpu < len(ngl):
            hint = f"run the other {len(ngl) - n_gpu} points with --cpu-only (cpu_only: true), or {hint}"
    raise UsageError(
        f"n_gpu_layers {', '.join(map(str, layers))} asks for GPU offload{which}, but the installed "
        "llama-cpp-python is a CPU-only build (llama_supports_gpu_offload() is false)", hint=hint)


# ------------------------------------------------------------------------------ CPU / AMX
def amx_flags(cpu_flags: Iterable[str]) -> list[str]:
    """The Intel AMX flags among a CPU's feature flags (``[]`` when none), in AMX_CPU_FLAGS order."""
    have = set(cpu_flags)
    return [f for f in AMX_CPU_FLAGS if f in have]


def build_has_amx(system_info: str | None) -> bool | None:
    """Whether llama.cpp was compiled with AMX kernels (``AMX_INT8 = 1`` in its system info).

    ggml-cpu prints ``AMX_INT8 = 1`` when built with ``__AMX_INT8__``. None when unknown.
    """
    if not system_info:
        return None
    return re.search(r"\bAMX_INT8\s*=\s*1\b", system_info) is not None


def amx_warning(cpu_flags: list[str], build_amx: bool | None) -> str | None:
    """The AMX crash warning (measured; llama.cpp ggml/src/ggml-cpu/amx) when CPU and build both have AMX."""
    if not cpu_flags or not build_amx:
        return None
    return ("this CPU has AMX (" + ", ".join(cpu_flags) + ") and this llama.cpp build uses AMX "
            "kernels (AMX_INT8 = 1): on Sapphire Rapids VMs quantized models (Q4_0, Q4_K_M, Q8_0) "
            "were seen to segfault in ggml_backend_amx_mul_mat during the first decode. energybench "
            "tries a tiny quantized run once per machine and build and, if it dies, measures with weight "
            "repacking off (as --no-repack does; slower). Faster: rebuild without AMX (this project's "
            "pyproject does: `uv sync --reinstall-package llama-cpp-python`)")


# ------------------------------------------------------------------------------ meters
def meters_summary() -> tuple[list[dict[str, Any]], str | None]:
    """Probe every registered meter: ``[{name, available, reason, fix, estimate}]`` and a note.

    Uses ``energybench.meters.registry.all_meters()`` when present; without a registry only the
    NVML meter is probed and the note says so.
    """
    note = None
    try:
        registry = importlib.import_module("energybench.meters.registry")
        meters = list(registry.all_meters())
    except (ImportError, AttributeError):
        from energybench.meters.nvml import NvmlMeter

        meters = [NvmlMeter()]
        note = "meter registry not available: only the NVML meter was probed"
    out: list[dict[str, Any]] = []
    for meter in meters:
        try:
            probe = meter.probe()
            out.append({"name": meter.name, "available": probe.available, "reason": probe.reason,
                        "fix": probe.fix, "estimate": bool(getattr(meter, "estimate", False))})
        except Exception as exc:  # noqa: BLE001 - a buggy meter must not break doctor
            out.append({"name": getattr(meter, "name", type(meter).__name__), "available": False,
                        "reason": f"probe raised {type(exc).__name__}: {exc}", "fix": None,
                        "estimate": bool(getattr(meter, "estimate", False))})
    return out, note


# ------------------------------------------------------------------------------ doctor
def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def doctor_report(*, llama_timeout_s: float = 120.0) -> dict[str, Any]:
    """Everything ``energybench doctor`` shows, as plain data (JSON-serialisable). Never raises
    for a missing driver, a broken llama.cpp build or a meter that does not work here: those are
    findings, listed under ``warnings``.
    """
    from energybench.meters.nvml import NvmlMeter, gpu_inventory

    warnings: list[str] = []
    llama = llama_cpp_probe(timeout_s=llama_timeout_s)
    if not llama.get("ok"):
        warnings.append(f"llama.cpp could not be loaded: {llama.get('error')}")

    try:
        gpus = gpu_inventory()
    except EnergybenchError as exc:
        gpus = []
        warnings.append(f"NVML inventory failed: {exc.one_line()}")
    nvml_probe = NvmlMeter().probe()
    nvml = {"available": nvml_probe.available, "reason": nvml_probe.reason, "fix": nvml_probe.fix,
            "pynvml_version": _package_version("nvidia-ml-py")}

    offload = llama.get("supports_gpu_offload")
    if gpus and offload is False:
        warnings.append(f"{len(gpus)} NVIDIA GPU(s) present but this llama-cpp-python build is "
                        f"CPU-only: {CUDA_INSTALL_ONE_LINER} (docs/cuda.md)")
    if offload and llama.get("devices") is not None and not any(
            d.get("type") in ("gpu", "igpu") for d in llama.get("devices", [])):
        warnings.append("this llama.cpp build supports GPU offload but ggml sees no GPU device "
                        "(driver missing, or CUDA_VISIBLE_DEVICES hides them)")

    flags = amx_flags(sysinfo.cpu_flags())
    build_amx = build_has_amx(llama.get("system_info"))
    amx = amx_warning(flags, build_amx)
    if amx:
        warnings.append(amx)

    meters, meters_note = meters_summary()

    return {
        "energybench": {"version": __version__},
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": platform.platform()},
        "llama_cpp": {"package_version": _package_version("llama-cpp-python"), **llama},
        "gpus": gpus,
        "nvml": nvml,
        "cpu": {"model": sysinfo.cpu_model(), "logical_cpus": os.cpu_count(), "amx_flags": flags,
                "build_has_amx": build_amx, "amx_warning": amx},
        "meters": meters,
        "meters_note": meters_note,
        "warnings": warnings,
    }
