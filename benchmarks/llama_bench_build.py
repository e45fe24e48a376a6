"""Build llama.cpp's own ``llama-bench`` from the very source the installed llama-cpp-python vendors.

The source is the llama-cpp-python sdist of the installed version: taken from uv's cache when it is
there, else downloaded from the package registry (``pip download --no-binary``). It is configured
like this project's build of the library: ``-march=native`` without AMX (pyproject.toml), Release,
shared libraries (llama-cpp-python builds ``libllama``/``libggml*`` as shared libraries, whose
position-independent code a static build would not pay); only the ``llama-bench`` target is built,
once per version and CPU flags, under ``$ENERGYBENCH_HOME/llama-bench/<key>/``.

    python benchmarks/llama_bench_build.py        # prints the path of the llama-bench binary
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from energybench import paths, sysinfo

#: The project's CPU flags for llama.cpp (pyproject.toml [tool.uv.extra-build-variables]): native, no AMX.
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def version() -> str:
    return importlib.metadata.version("llama-cpp-python")


def _uv_sdist(ver: str) -> Path | None:
    """The unpacked sdist of llama-cpp-python ``ver`` in uv's cache, if any."""
    uv = shutil.which("uv")
    if uv is None:
        return None
    cache = Path(subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip())
    for src in sorted((cache / "sdists-v11" / "pypi" / "llama-cpp-python" / ver).glob("*/src")):
        if (src / "vendor" / "llama.cpp" / "tools" / "llama-bench").is_dir():
            return src
    return None


def _downloaded_sdist(ver: str, into: Path) -> Path:
    """Download and unpack the sdist from the package registry."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={ver}", "-d", str(into)], check=True, capture_output=True)
    (archive,) = into.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return next(p for p in into.iterdir() if p.is_dir())


def build(jobs: int | None = None) -> Path:
    """The llama-bench binary for the installed version (built now if not cached)."""
    ver = version()
    key = hashlib.sha256(f"{ver} {sorted(sysinfo.cpu_flags())} {NO_AMX} shared".encode()).hexdigest()[:12]
    out = paths.home() / "llama-bench" / f"{ver}-{key}"
    binary = out / "bin" / "llama-bench"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory() as tmp:
        src = _uv_sdist(ver) or _downloaded_sdist(ver, Path(tmp))
        build_dir = Path(tmp) / "build"
        flags = f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"
        subprocess.run(["cmake", "-S", str(src / "vendor" / "llama.cpp"), "-B", str(build_dir),
                        "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=ON",
                        *flags], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama-bench", "-j",
                        str(jobs or os.cpu_count() or 2)], check=True, capture_output=True)
        shutil.copytree(build_dir / "bin", binary.parent, dirs_exist_ok=True)  # the binary and its libraries
    return binary


def run_env(binary: Path) -> dict[str, str]:
    """The environment that runs ``binary`` with its own shared libraries (they sit beside it)."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(binary.parent), env.get("LD_LIBRARY_PATH")) if p)
    return env


if __name__ == "__main__":
    print(build())
