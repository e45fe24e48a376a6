#!/usr/bin/env bash
# prepare_gpu_bundle.sh -- run HERE (a machine that reaches PyPI) before a GPU session: gather what
# scripts/gpu_offload_sweep.sh needs on a GPU machine that has NO package registry, small enough
# to be carried to it (the device tool carries at most 64 MiB per call, working tree included).
#
# It writes $BUNDLE (default: .whl/ in the repository root, which .gitignore ignores), holding
# exactly the two files a device call carries (carry=[".whl"]):
#   $BUNDLE/llama-cpp-python-src.tar.xz  the llama-cpp-python sdist (version from uv.lock), PRUNED:
#        its .git/ (a 38 MB pack), docs/, docker/, examples/, tests/; the vendored llama.cpp's
#        models/ (vocab files), docs/, media/, tests/, examples/, benches/, pocs/, app/, gguf-py/,
#        scripts/, conversion/, tools/ (tools/mtmd kept), CI folders, and every ggml backend but
#        CPU and CUDA. A CPU-only CMake configure of the pruned tree checks that nothing needed is gone.
#   $BUNDLE/site-py312.tar.xz  a ready site-packages folder for CPython 3.12 / manylinux x86_64
#        (pip install --target of the wheels, versions from uv.lock): the runtime dependencies of
#        energybench that the GPU image lacks or has in another version -- polars (+ its runtime),
#        pydantic (+ pydantic-core, annotated-types, typing-inspection, typing-extensions),
#        platformdirs, gguf, diskcache (for llama-cpp-python), typer, rich, annotated-doc,
#        nvidia-ml-py. Packed with xz -9: polars' 170 MB runtime is a 51 MB wheel but 31 MB of xz.
#   numpy, pyyaml, psutil, jinja2, tqdm, requests, scipy, huggingface-hub, cmake, ninja and cuBLAS
#   (in the image's nvidia-cublas; the wheel is 421 MB, far over what a call may carry) come from
#   the GPU image (the device tool's KINDS.md lists its packages).
# Downloads are cached in $CACHE (outside the repository, so they never travel).
# At the end it prints the carried size plus the working tree's and fails if they reach 64 MiB.
#
# Usage:  bash scripts/prepare_gpu_bundle.sh
#   Time: ~2 min of downloads (~130 MB) the first time, then ~4 min of one core for xz -9.
# Knobs (environment):
#   BUNDLE       output folder (default: <repo>/.whl)
#   CACHE        download cache (default: ${XDG_CACHE_HOME:-~/.cache}/energybench-gpu-bundle)
#   PYTHON       a python3 >= 3.11 with pip (default: python3)
#   PY_VERSION   the GPU machine's Python (default: 3.12)
#   XZ_LEVEL     xz preset (default: 9)
#   WITH_CUBLAS  1 = also download the nvidia-cublas (CUDA 13.0) wheel into $CACHE/cublas and unpack
#                it (421 MB; never carried): lets `CUBLAS_ROOT=$CACHE/cublas/unpacked/nvidia/cu13
#                STOP_AFTER=configure bash scripts/gpu_offload_sweep.sh` check the CUDA configure here
# Exit codes: 0 ok; 1 a download, install or the prune check failed; 2 too large to carry.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
BUNDLE="${BUNDLE:-$REPO/.whl}"
CACHE="${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/energybench-gpu-bundle}"
PYTHON="${PYTHON:-python3}"
PY_VERSION="${PY_VERSION:-3.12}"
XZ_LEVEL="${XZ_LEVEL:-9}"
LIMIT_BYTES=$((64 * 1024 * 1024))
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

say() { printf '[prepare_gpu_bundle %s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*" >&2; exit "${2:-1}"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

command -v "$PYTHON" >/dev/null || die "no $PYTHON"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip"
command -v xz >/dev/null || die "xz is needed (apt-get install xz-utils)"
[ -f "$REPO/uv.lock" ] || die "no uv.lock in $REPO (versions are taken from it)"
case "$(cd "$REPO" && git check-ignore "$BUNDLE/x" 2>/dev/null || true)" in
  "") die "$BUNDLE must be a folder inside the repository that git ignores (like .whl/): carried files travel from there" ;;
esac

# ---------------------------------------------------------------- versions from uv.lock
lock_version() {  # lock_version NAME -> the version uv.lock pins (the newest, if it pins several)
  "$PYTHON" - "$REPO/uv.lock" "$1" <<'PY'
import sys, tomllib
lock = tomllib.load(open(sys.argv[1], "rb"))
found = [p["version"] for p in lock["package"] if p["name"] == sys.argv[2]]
if not found:
    sys.exit(f"{sys.argv[2]} is not in uv.lock")
print(sorted(found, key=lambda v: [int(x) if x.isdigit() else 0 for x in v.split(".")])[-1])
PY
}

WHEELS=(polars polars-runtime-32 pydantic pydantic-core annotated-types typing-inspection typing-extensions
        platformdirs gguf diskcache typer rich annotated-doc nvidia-ml-py)
LLAMA_VERSION="$(lock_version llama-cpp-python)"
say "llama-cpp-python $LLAMA_VERSION (uv.lock); bundle: $BUNDLE; cache: $CACHE"
mkdir -p "$BUNDLE" "$CACHE/wheels"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------- site-packages for the GPU machine
SPECS=()
for name in "${WHEELS[@]}"; do
  SPECS+=("$name==$(lock_version "$name")")
done
say "wheels for CPython $PY_VERSION: ${SPECS[*]}"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  "${PLATFORMS[@]}" -d "$CACHE/wheels" "${SPECS[@]}" 2>"$WORK/pip.log" \
  || { cat "$WORK/pip.log" >&2; die "pip download of the wheels failed"; }
STAMP="${SPECS[*]} py$PY_VERSION xz-$XZ_LEVEL"
if [ -f "$BUNDLE/site-py312.tar.xz" ] && [ "$(cat "$CACHE/site-py312.stamp" 2>/dev/null)" = "$STAMP" ]; then
  say "site-py312.tar.xz is up to date (same wheels): kept"
else
FILES=()
for spec in "${SPECS[@]}"; do
  name="${spec%%==*}"; version="${spec##*==}"
  f=$(ls "$CACHE/wheels/${name//-/_}-$version-"*.whl 2>/dev/null | head -n1 || true)
  [ -n "$f" ] || die "no wheel for $spec in $CACHE/wheels"
  FILES+=("$f")
done
"$PYTHON" -m pip install -q --no-deps --no-compile --no-index --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp "${PLATFORMS[@]}" --target "$WORK/site" "${FILES[@]}" 2>"$WORK/pip.log" \
  || { cat "$WORK/pip.log" >&2; die "pip install --target of the wheels failed"; }
rm -rf "$WORK/site/bin"
say "site-packages: $(du -sm "$WORK/site" | cut -f1) MB unpacked; packing with xz -$XZ_LEVEL (a few minutes)"
tar -C "$WORK/site" -cf - . | xz "-$XZ_LEVEL" -T0 > "$BUNDLE/site-py312.tar.xz.tmp"
mv "$BUNDLE/site-py312.tar.xz.tmp" "$BUNDLE/site-py312.tar.xz"
printf '%s' "$STAMP" > "$CACHE/site-py312.stamp"
fi

# ---------------------------------------------------------------- the sdist, pruned
SDIST="$CACHE/llama_cpp_python-$LLAMA_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
  say "downloading the llama-cpp-python $LLAMA_VERSION sdist (~75 MB; pip prepares its metadata, ~2 min)"
  "$PYTHON" -m pip download -q --no-deps --no-binary=:all: -d "$CACHE" "llama-cpp-python==$LLAMA_VERSION" \
    2>"$WORK/pip.log" || { cat "$WORK/pip.log" >&2; die "pip download of the sdist failed"; }
fi
tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/llama_cpp_python-$LLAMA_VERSION"
[ -d "$SRC/vendor/llama.cpp/ggml/src/ggml-cuda" ] || die "unexpected sdist layout: no vendor/llama.cpp/ggml/src/ggml-cuda"
before=$(du -sb "$SRC" | cut -f1)
LC="$SRC/vendor/llama.cpp"
rm -rf "$SRC"/{.git,docs,docker,examples,tests,.github}
rm -rf "$LC"/{models,docs,media,tests,examples,benches,pocs,app,gguf-py,scripts,conversion,grammars,requirements}
rm -rf "$LC"/{.devops,.github,.gemini,.pi,skills,ci,licenses,flake.nix,.git}
rm -f "$LC"/*.py "$LC"/requirements.txt
# tools/: only tools/mtmd is referenced without LLAMA_BUILD_TOOLS (the bindings' LLAVA_BUILD)
find "$LC/tools" -mindepth 1 -maxdepth 1 ! -name mtmd ! -name CMakeLists.txt -exec rm -rf {} +
# ggml backends: each is add_subdirectory'd only when its GGML_<NAME> option is on; keep CPU + CUDA
for d in "$LC"/ggml/src/ggml-*/; do
  case "$(basename "$d")" in
    ggml-cpu|ggml-cuda) ;;
    *) rm -rf "$d" ;;
  esac
done
after=$(du -sb "$SRC" | cut -f1)
say "pruned the sdist: $(mib "$before") MiB -> $(mib "$after") MiB unpacked"

# self-check: a CPU-only configure of the pruned tree (what the GPU script does, minus CUDA)
if command -v cmake >/dev/null; then
  if cmake -S "$SRC" -B "$WORK/check" -DLLAVA_BUILD=OFF -DGGML_CUDA=OFF -DGGML_NATIVE=OFF \
       -DSKBUILD_PLATLIB_DIR="$WORK/plat" >"$WORK/check.log" 2>&1; then
    say "configure check of the pruned tree: ok"
  else
    tail -n 30 "$WORK/check.log" >&2
    die "the pruned tree does not configure (see above): the prune removed something CMake needs"
  fi
  rm -rf "$WORK/check"
else
  say "no cmake here: configure check skipped"
fi
tar -C "$WORK" -cf - "llama_cpp_python-$LLAMA_VERSION" | xz "-$XZ_LEVEL" -T0 > "$BUNDLE/llama-cpp-python-src.tar.xz.tmp"
mv "$BUNDLE/llama-cpp-python-src.tar.xz.tmp" "$BUNDLE/llama-cpp-python-src.tar.xz"

# ---------------------------------------------------------------- optional: cuBLAS (never carried)
if [ "${WITH_CUBLAS:-0}" = 1 ]; then
  say "downloading nvidia-cublas 13.0.x (421 MB) into $CACHE/cublas (never carried; see the header)"
  mkdir -p "$CACHE/cublas"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
    "${PLATFORMS[@]}" -d "$CACHE/cublas" "nvidia-cublas>=13.0,<13.1" || die "pip download of nvidia-cublas failed"
  [ -d "$CACHE/cublas/unpacked" ] || "$PYTHON" -m zipfile -e "$(ls "$CACHE"/cublas/nvidia_cublas-*.whl | head -n1)" \
    "$CACHE/cublas/unpacked"
  say "cuBLAS headers and libraries: $CACHE/cublas/unpacked/nvidia/cu13/{include,lib}"
fi

# ---------------------------------------------------------------- what travels
extra=$(cd "$BUNDLE" && ls -A | grep -v -x -e site-py312.tar.xz -e llama-cpp-python-src.tar.xz || true)
[ -z "$extra" ] || die "$BUNDLE holds other files that would travel too: $extra (remove them)"
carried=$(du -cb "$BUNDLE"/*.tar.xz | tail -n1 | cut -f1)
tree=$(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -n1 | cut -f1)
total=$((carried + tree))
say "bundle (carried): $(mib "$carried") MiB"
(cd "$BUNDLE" && du -b ./*.tar.xz | sort -n | awk '{printf "    %8.2f MiB  %s\n", $1/1048576, $2}')
say "working tree that travels too: $(mib "$tree") MiB; total $(mib "$total") MiB of the 64 MiB a call may carry"
if [ "$total" -ge "$LIMIT_BYTES" ]; then
  die "too large to carry in one call ($total bytes >= $LIMIT_BYTES)" 2
fi
say "ok: on the GPU machine, carry=[\".whl\"] and run: bash scripts/gpu_offload_sweep.sh"
