#!/usr/bin/env bash
# gpu_offload_sweep.sh -- on a GPU machine WITHOUT a package registry: build llama-cpp-python with
# CUDA, synthesize the TinyLlama-1.1B shape twin, run an offload sweep (n_gpu_layers 0, 11, 22, 23:
# CPU only, half, every block, everything incl. the output layer) with NVML energy beside the CPU
# meters and the GPU measurement protocol, and put the results in $OUT.
#
# Prepare the bundle HERE first (a machine with PyPI): bash scripts/prepare_gpu_bundle.sh
# Then, with the device tool:  run(command="bash scripts/gpu_offload_sweep.sh", carry=[".whl"],
#                                  timeout_s=600)
# The whole script is sized for ONE call of at most 10 minutes on 16 cores (H100/H200 image 'cuda':
# nvcc 13, CMake, ninja, Python 3.12 with numpy, scipy, PyYAML, psutil, jinja2, nvidia-cublas ...):
#   1. unpack .whl/site-py312.tar.xz (energybench's missing Python deps) and the pruned
#      llama-cpp-python sdist .whl/llama-cpp-python-src.tar.xz into $WORK;
#   2. find cuBLAS: the CUDA toolkit's own, else the image's nvidia-cublas Python package (headers
#      and libcublas*.so.13, staged with unversioned links for CMake), else $CUBLAS_ROOT;
#   3. CMake + ninja: GGML_CUDA=ON for CMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH only (90 = H100/H200),
#      CPU code without AMX (measured: a default -march=native build segfaults in
#      ggml_backend_amx_mul_mat on quantized models on Sapphire Rapids KVM guests), target llama only
#      (no mtmd, no common), libraries copied into the bindings' llama_cpp/lib; PYTHONPATH then
#      holds the bindings, the unpacked deps and this checkout's src/ (energybench is not installed);
#   4. `energybench doctor --json` (GPU offload must be yes, a CUDA device listed);
#   5. `energybench fetch --synthetic tinyllama-1.1b --quant Q4_K_M` (ENERGYBENCH_HOME in $WORK);
#   6. `energybench sweep`: 1 warm-up + 4 measured runs per point (the protocol's minimum), GPU
#      protocol defaults (runs >= 5 s, random 0.5-2 s gaps, rise time), meters auto (NVML + the CPU's);
#      if the build left too little time, fewer points (22 then 11 dropped), never a shorter window;
#   7. a per-point summary (decode tok/s, J/token total / GPU / CPU, GPU memory) and the results.
# $OUT receives at most 8 files (the tool's limit): env.txt, build.log, doctor.json, fetch.log,
# sweep.log, sweep.json, summary.json (also printed), results.tar.gz (the results directory:
# metadata.json, runs.parquet, samples.parquet; `energybench report` reads it unpacked).
#
# Knobs (environment): OUT (default ./gpu_sweep_out), BUNDLE (.whl), WORK (/tmp/ebgpu), JOBS
# (nproc), CUDA_ARCH (90), PYTHON (python3), THREADS (min(8, nproc)), NGL ("0,11,22,23"), N_PROMPT
# (128), N_GEN (64), DEADLINE_S (560: seconds after start by which $OUT must be complete),
# CUBLAS_ROOT (a folder with include/cublas_v2.h and lib/libcublas.so*), SITE (a site-packages
# tarball, or "none" to use $PYTHON's own packages), STOP_AFTER (configure | build | fetch).
# Exit codes: 0 ok; 1 setup (bundle, nvcc, cmake, Python deps, cuBLAS missing); 2 configure or build
# failed; 3 built, but llama.cpp reports no GPU offload or no CUDA device; 4 fetch failed; 5 the sweep
# failed, or finished partially (energybench exit 3); 6 no time left for the sweep.
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
OUT="${OUT:-$PWD/gpu_sweep_out}"
BUNDLE="${BUNDLE:-$REPO/.whl}"
WORK="${WORK:-/tmp/ebgpu}"
JOBS="${JOBS:-$(nproc)}"
CUDA_ARCH="${CUDA_ARCH:-90}"
PYTHON="${PYTHON:-python3}"
THREADS="${THREADS:-$(( $(nproc) < 8 ? $(nproc) : 8 ))}"
NGL="${NGL:-0,11,22,23}"
N_PROMPT="${N_PROMPT:-128}"
N_GEN="${N_GEN:-64}"
DEADLINE_S="${DEADLINE_S:-560}"
SITE="${SITE:-$BUNDLE/site-py312.tar.xz}"
STOP_AFTER="${STOP_AFTER:-}"
AMX_OFF="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CUDA_DEVICE_ORDER=PCI_BUS_ID  # CUDA device N == NVML gpu-N (docs/cuda.md)
export PYTHONUNBUFFERED=1
START=$SECONDS
declare -A PHASE_S=()

mkdir -p "$OUT" "$WORK"
say() { printf '[gpu_offload_sweep +%ss] %s\n' "$((SECONDS - START))" "$*"; }
summary_json() {  # summary_json STATUS EXIT_CODE [MESSAGE]: a summary.json even when a phase failed
  local phases=""
  for k in "${!PHASE_S[@]}"; do phases+="\"$k\": ${PHASE_S[$k]}, "; done
  printf '{"status": "%s", "exit_code": %s, "message": "%s", "phase_seconds": {%s"total": %s}}\n' \
    "$1" "$2" "${3//\"/\'}" "$phases" "$((SECONDS - START))" > "$OUT/summary.json"
}
die() { say "FAILED: $2"; summary_json failed "$1" "$2"; exit "$1"; }
phase_end() { PHASE_S[$1]=$((SECONDS - $2)); }

# ---------------------------------------------------------------- 0. environment
{
  echo "# date: $(date -Is)"; uname -a; echo "# nproc: $(nproc)"; free -g 2>/dev/null | head -2
  echo "# nvidia-smi"; timeout 30 nvidia-smi 2>&1 || echo "nvidia-smi failed"
  echo "# nvcc"; (command -v nvcc && nvcc --version) 2>&1 || echo "no nvcc on PATH"
  echo "# cmake"; cmake --version 2>&1 | head -1; echo "# ninja: $(ninja --version 2>&1)"
  echo "# python: $($PYTHON --version 2>&1) at $(command -v "$PYTHON")"; echo "# gcc: $(gcc --version | head -1)"
  echo "# bundle"; ls -la "$BUNDLE" 2>&1
} > "$OUT/env.txt" 2>&1
say "environment in $OUT/env.txt; work dir $WORK; $JOBS jobs; CUDA arch $CUDA_ARCH"
command -v cmake >/dev/null || die 1 "cmake not found"
if ! command -v nvcc >/dev/null; then
  for d in "${CUDA_HOME:-}" /usr/local/cuda; do
    if [ -n "$d" ] && [ -x "$d/bin/nvcc" ]; then export PATH="$d/bin:$PATH"; break; fi
  done
fi
NVCC="$(command -v nvcc || true)"
[ -n "$NVCC" ] || die 1 "nvcc not found (set CUDA_HOME or PATH)"
CUDA_HOME="${CUDA_HOME:-$(cd "$(dirname "$(readlink -f "$NVCC")")/.." && pwd)}"

# ---------------------------------------------------------------- 1. Python deps and sources
t=$SECONDS
if [ "$SITE" != none ]; then
  [ -f "$SITE" ] || die 1 "no $SITE: run scripts/prepare_gpu_bundle.sh here and carry .whl"
  rm -rf "$WORK/site" && mkdir -p "$WORK/site"
  tar -xJf "$SITE" -C "$WORK/site" || die 1 "cannot unpack $SITE"
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
SDIST="$BUNDLE/llama-cpp-python-src.tar.xz"
[ -f "$SDIST" ] || die 1 "no $SDIST: run scripts/prepare_gpu_bundle.sh here and carry .whl"
rm -rf "$WORK/src" && mkdir -p "$WORK/src"
tar -xJf "$SDIST" -C "$WORK/src" || die 1 "cannot unpack $SDIST"
LLAMA_SRC="$(ls -d "$WORK"/src/llama_cpp_python-* | head -n1)"
"$PYTHON" -c 'import polars, pydantic, typer, rich, gguf, diskcache, platformdirs, pynvml, numpy, yaml, psutil, jinja2' \
  2>>"$OUT/env.txt" || die 1 "energybench's Python dependencies do not import (see env.txt)"
phase_end unpack "$t"
say "unpacked dependencies and $(basename "$LLAMA_SRC")"

# ---------------------------------------------------------------- 2. cuBLAS
find_cublas_include() {  # prints a folder holding cublas_v2.h
  local d
  for d in "${CUBLAS_ROOT:+$CUBLAS_ROOT/include}" "$CUDA_HOME/include" "$CUDA_HOME"/targets/*/include /usr/include; do
    [ -n "$d" ] && [ -f "$d/cublas_v2.h" ] && { echo "$d"; return 0; }
  done
  "$PYTHON" - <<'PY' 2>/dev/null
import glob, os, site, sys
roots = list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path
for r in roots:
    for h in sorted(glob.glob(os.path.join(r, "nvidia", "*", "include", "cublas_v2.h"))):
        print(os.path.dirname(h)); sys.exit(0)
sys.exit(1)
PY
}
find_cublas_lib() {  # find_cublas_lib INCLUDE_DIR: prints a folder holding libcublas.so*
  local inc="$1" d
  for d in "${CUBLAS_ROOT:+$CUBLAS_ROOT/lib}" "$(dirname "$inc")/lib" "$(dirname "$inc")/lib64" "$CUDA_HOME/lib64" \
           "$CUDA_HOME/lib" /usr/lib/x86_64-linux-gnu; do
    [ -n "$d" ] && ls "$d"/libcublas.so* >/dev/null 2>&1 && ls "$d"/libcublasLt.so* >/dev/null 2>&1 && { echo "$d"; return 0; }
  done
  return 1
}
CMAKE_EXTRA=()
CUBLAS_INC="$(find_cublas_include || true)"
[ -n "$CUBLAS_INC" ] || die 1 "cuBLAS headers (cublas_v2.h) not found in the toolkit, the Python packages or CUBLAS_ROOT"
CUBLAS_LIB="$(find_cublas_lib "$CUBLAS_INC" || true)"
[ -n "$CUBLAS_LIB" ] || die 1 "cuBLAS libraries (libcublas.so*, libcublasLt.so*) not found next to $CUBLAS_INC"
INC_FLAGS=""
if [ "$CUBLAS_INC" != "$CUDA_HOME/include" ] || [ ! -e "$CUBLAS_LIB/libcublas.so" ]; then
  # not where FindCUDAToolkit looks: stage unversioned links and name them to CMake
  STAGE="$WORK/cublas"; rm -rf "$STAGE"; mkdir -p "$STAGE/include" "$STAGE/lib"
  ln -s "$CUBLAS_INC"/cublas*.h "$STAGE/include/"  # cuBLAS only: that folder may hold other CUDA headers
  for lib in cublas cublasLt; do
    real="$(ls "$CUBLAS_LIB"/lib$lib.so* | sort | tail -n1)"
    ln -s "$real" "$STAGE/lib/lib$lib.so"
  done
  INC_FLAGS="-I$STAGE/include"
  CMAKE_EXTRA+=("-DCUDA_cublas_LIBRARY=$STAGE/lib/libcublas.so" "-DCUDA_cublasLt_LIBRARY=$STAGE/lib/libcublasLt.so")
fi
export LD_LIBRARY_PATH="$CUBLAS_LIB:$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ! ls "$CUDA_HOME"/lib64/stubs/libcuda.so "$CUDA_HOME"/lib64/libcuda.so >/dev/null 2>&1 \
   && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so '; then
  CMAKE_EXTRA+=("-DGGML_CUDA_NO_VMM=ON")  # no libcuda.so to link against (only needed for VMM pools)
fi
say "cuBLAS: headers $CUBLAS_INC, libraries $CUBLAS_LIB${CMAKE_EXTRA:+ (extra CMake: ${CMAKE_EXTRA[*]})}"

# ---------------------------------------------------------------- 3. build llama.cpp with CUDA
t=$SECONDS
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
BUILD="$WORK/build"
rm -rf "$BUILD"
say "configuring (log: build.log)"
cmake -S "$LLAMA_SRC" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DLLAVA_BUILD=OFF \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DCMAKE_C_FLAGS="$AMX_OFF" -DCMAKE_CXX_FLAGS="$AMX_OFF $INC_FLAGS" -DCMAKE_CUDA_FLAGS="$INC_FLAGS" \
  -DSKBUILD_PLATLIB_DIR="$WORK/plat" "${CMAKE_EXTRA[@]}" > "$OUT/build.log" 2>&1 \
  || { tail -n 40 "$OUT/build.log"; die 2 "CMake configure failed (build.log)"; }
grep -E "Including CUDA backend|CUDA Toolkit found|CMAKE_CUDA_ARCHITECTURES" "$OUT/build.log" | head -5
phase_end configure "$t"
[ "$STOP_AFTER" = configure ] && { summary_json configured 0 "stopped after configure"; say "stopped after configure"; exit 0; }
t=$SECONDS
say "building target llama with $JOBS jobs"
cmake --build "$BUILD" --target llama -j "$JOBS" >> "$OUT/build.log" 2>&1 \
  || { tail -n 60 "$OUT/build.log"; die 2 "the build failed (build.log)"; }
mkdir -p "$LLAMA_SRC/llama_cpp/lib"
find "$BUILD" -name 'lib*.so*' \( -name 'libllama*' -o -name 'libggml*' \) -exec cp -P {} "$LLAMA_SRC/llama_cpp/lib/" \;
phase_end build "$t"
# keep build.log small enough to come back: its head (configure) and tail (errors/last steps)
if [ "$(wc -l < "$OUT/build.log")" -gt 4000 ]; then
  { head -n 1500 "$OUT/build.log"; echo "... (cut) ..."; tail -n 1500 "$OUT/build.log"; } > "$WORK/build.log.cut"
  mv "$WORK/build.log.cut" "$OUT/build.log"
fi
export PYTHONPATH="$LLAMA_SRC:$PYTHONPATH:$REPO/src"
"$PYTHON" -c 'import llama_cpp as ll; ll.llama_backend_init(); print("llama-cpp-python", ll.__version__, "GPU offload:", bool(ll.llama_supports_gpu_offload()))' \
  | tee -a "$OUT/env.txt"
"$PYTHON" -c 'import sys, llama_cpp as ll; ll.llama_backend_init(); sys.exit(0 if ll.llama_supports_gpu_offload() else 1)' \
  || die 3 "llama.cpp was built but reports no GPU offload"
say "built in ${PHASE_S[build]} s"
[ "$STOP_AFTER" = build ] && { summary_json built 0 "stopped after build"; exit 0; }

# ---------------------------------------------------------------- 4. doctor
eb() { "$PYTHON" -m energybench "$@"; }
export ENERGYBENCH_HOME="$WORK/home" COLUMNS=160
eb doctor --json > "$OUT/doctor.json" 2>>"$OUT/env.txt" || say "doctor exited $? (see doctor.json)"
"$PYTHON" - "$OUT/doctor.json" <<'PY' || die 3 "energybench doctor: no GPU offload or no CUDA device (doctor.json)"
import json, sys
d = json.load(open(sys.argv[1]))
ll = d.get("llama_cpp", {})
gpus = [x for x in ll.get("devices", []) if x.get("type") in ("gpu", "igpu")]
print("doctor: GPU offload", ll.get("supports_gpu_offload"), "| ggml GPU devices:",
      [f"{x['name']} {x['description']}" for x in gpus], "| NVML GPUs:", [g.get("name") for g in d.get("gpus", [])],
      "| nvml:", d.get("nvml", {}).get("reason"))
sys.exit(0 if ll.get("supports_gpu_offload") and gpus else 1)
PY

# ---------------------------------------------------------------- 5. the model
t=$SECONDS
eb fetch --synthetic tinyllama-1.1b --quant Q4_K_M --no-progress --json > "$OUT/fetch.log" 2>&1 \
  || { tail -n 20 "$OUT/fetch.log"; die 4 "synthesizing the TinyLlama twin failed (fetch.log)"; }
phase_end fetch "$t"
say "TinyLlama-1.1B twin (Q4_K_M) ready in ${PHASE_S[fetch]} s"
[ "$STOP_AFTER" = fetch ] && { summary_json fetched 0 "stopped after fetch"; exit 0; }

# ---------------------------------------------------------------- 6. the sweep
# per point ~ load 3 s + 5 runs x (window + gap + cooldown); offloading windows >= 5 s (protocol)
left=$((DEADLINE_S - (SECONDS - START)))
est() { "$PYTHON" -c "import sys; n=[int(x) for x in sys.argv[1].split(',')]; print(int(15 + sum(3 + 5 * ((5 + 1.25) if x else 2) + 5 * 0.5 for x in n)))" "$1"; }
for candidate in "$NGL" "0,11,23" "0,23"; do
  need=$(est "$candidate")
  if [ "$need" -le "$((left - 25))" ]; then NGL="$candidate"; break; fi
  NGL=""
done
[ -n "$NGL" ] || die 6 "only $left s left after the build: no time for the sweep"
say "sweep: n_gpu_layers $NGL, threads $THREADS, $N_PROMPT prompt + $N_GEN generated tokens (about $(est "$NGL") s of $left s left)"
cat > "$WORK/sweep.yaml" <<YAML
name: gpu-offload-tinyllama
models: [synthetic:tinyllama-1.1b:Q4_K_M]
grid:
  threads: $THREADS
  n_gpu_layers: [$NGL]
  batch: 512
  prompt: {n_prompt: $N_PROMPT}
  n_gen: $N_GEN
warmup: 1
repetitions: {fixed: 4}
cooldown: {fixed_s: 0.5}
idle_baseline_s: 5
order: grouped
meters: auto
sample_period_ms: 20
gpu_protocol: {enabled: true, min_window_s: 5, min_trials: 4, random_gap_s: [0.5, 2.0], discard_rise_s: auto, seed: 0}
YAML
t=$SECONDS
rm -rf "$WORK/results"
timeout --signal=INT "$((left - 20))" "$PYTHON" -m energybench sweep --config "$WORK/sweep.yaml" --out "$WORK/results" \
  --json > "$OUT/sweep.json" 2> "$OUT/sweep.log"
rc=$?
phase_end sweep "$t"
say "sweep exited $rc after ${PHASE_S[sweep]} s"

# ---------------------------------------------------------------- 7. summary and results
[ -d "$WORK/results" ] && tar -czf "$OUT/results.tar.gz" -C "$WORK" results
"$PYTHON" "$SCRIPT_DIR/gpu_sweep_summary.py" "$WORK/results" "$OUT/summary.json" "$rc" "$((SECONDS - START))"
[ $? -eq 0 ] || summary_json "sweep exit $rc" "$rc" "no results to summarize: see sweep.log"
ls -la "$OUT"
case "$rc" in
  0) say "done: results in $OUT/results.tar.gz"; exit 0 ;;
  3) say "the sweep finished partially (some points failed): see sweep.log"; exit 5 ;;
  124|130) say "the sweep was cut at the deadline: partial results in $OUT/results.tar.gz"; exit 5 ;;
  *) say "the sweep failed (exit $rc): see sweep.log"; exit 5 ;;
esac
