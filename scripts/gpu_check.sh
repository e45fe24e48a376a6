#!/usr/bin/env bash
# gpu_check.sh -- check energybench's NVML meter against a real NVIDIA GPU and driver.
#
# What it does (about 1 minute in all):
#   1. records the environment (nvidia-smi, nvcc, python) into $OUT/env.txt;
#   2. compiles a small CUDA SGEMM loop (source embedded below; no cuBLAS, no torch) with nvcc;
#   3. scripts/gpu_trace.py samples GPU $GPU every $SAMPLE_MS ms through energybench's NvmlMeter
#      (energy counter + aux channels) and pynvml (instantaneous and 1 s average power) while the
#      loop runs: $IDLE_S s idle, $LOAD_S s load, $TAIL_S s idle;
#   4. scripts/gpu_analyze.py compares counter energy with integrated instantaneous power (and the
#      1 s average) over the whole trace, the idle phase and the load window, prints both and the
#      ratio, the measured counter refresh period and the meter's read latency.
#
# Expectations of the caller:
#   - run from anywhere inside the energybench checkout, on Linux with an NVIDIA driver
#     (libnvidia-ml.so.1), nvcc on PATH (or CUDA_HOME/bin), python3 >= 3.10;
#   - no package registry is needed: python needs only the standard library, energybench's src/
#     (found next to this script) and pynvml. Put pynvml on PYTHONPATH, e.g. the wheel itself
#     (a pure-Python wheel is importable as a zip):
#         PYTHONPATH=$(ls .whl/nvidia_ml_py-*.whl) bash scripts/gpu_check.sh
#     If pynvml is not importable, the script tries .whl/nvidia_ml_py-*.whl by itself.
#   - $OUT: where results go (default ./gpu_check_out); it receives env.txt, burn.log, trace.csv,
#     meta.json, summary.json, summary.txt (well under 1 MB at the default settings).
#   - knobs (env): GPU (NVML index, default 0), IDLE_S (3), LOAD_S (20), TAIL_S (4), SAMPLE_MS (10),
#     MATRIX_N (4096), CUDA_ARCH (default: native, falling back to sm_90).
#   - CUDA_DEVICE_ORDER=PCI_BUS_ID is set so CUDA device $GPU is NVML device $GPU.
# Exit code: 0 ok, 1 setup failed (no nvcc/pynvml, compile error), 2 trace or analysis failed,
#            3 partial: the CUDA load did not run, so only an idle GPU was traced.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
OUT="${OUT:-$PWD/gpu_check_out}"
GPU="${GPU:-0}"
IDLE_S="${IDLE_S:-3}"
LOAD_S="${LOAD_S:-20}"
TAIL_S="${TAIL_S:-4}"
SAMPLE_MS="${SAMPLE_MS:-10}"
MATRIX_N="${MATRIX_N:-4096}"
CUDA_ARCH="${CUDA_ARCH:-native}"
PYTHON="${PYTHON:-python3}"
export CUDA_DEVICE_ORDER=PCI_BUS_ID
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-$GPU}"

mkdir -p "$OUT"
BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT

say() { printf '[gpu_check %s] %s\n' "$(date +%T)" "$*"; }
die() { say "FAILED: $*" >&2; exit "${2:-1}"; }

# ---------------------------------------------------------------- 1. environment
say "output: $OUT"
{
  echo "# date: $(date -Is)"; echo "# host: $(hostname)"; uname -a
  echo "# nvidia-smi"; timeout 30 nvidia-smi || echo "nvidia-smi failed ($?)"
  echo "# nvidia-smi -q (power)"; timeout 30 nvidia-smi -q -d POWER,CLOCK,PERFORMANCE -i "$GPU" || true
  echo "# nvcc"; (command -v nvcc && nvcc --version) || echo "no nvcc on PATH"
  echo "# python"; "$PYTHON" --version
  echo "# PYTHONPATH=${PYTHONPATH:-}"
} > "$OUT/env.txt" 2>&1 || true
say "environment recorded in $OUT/env.txt"

if ! command -v nvcc >/dev/null 2>&1; then
  for d in "${CUDA_HOME:-}" /usr/local/cuda; do
    if [ -n "$d" ] && [ -x "$d/bin/nvcc" ]; then export PATH="$d/bin:$PATH"; break; fi
  done
fi
command -v nvcc >/dev/null 2>&1 || die "nvcc not found (set CUDA_HOME or PATH)"

export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c 'import pynvml' 2>/dev/null; then
  WHEEL="$(ls "$REPO"/.whl/nvidia_ml_py-*.whl 2>/dev/null | head -n1 || true)"
  [ -n "$WHEEL" ] || die "pynvml not importable and no .whl/nvidia_ml_py-*.whl: put nvidia-ml-py on PYTHONPATH"
  export PYTHONPATH="$PYTHONPATH:$WHEEL"
  "$PYTHON" -c 'import pynvml' || die "pynvml still not importable from $WHEEL"
fi
say "pynvml: $("$PYTHON" -c 'import pynvml; print(pynvml.__file__)')"

# ---------------------------------------------------------------- 2. the CUDA load
cat > "$BUILD/burn.cu" <<'CUDA'
// SGEMM loop for gpu_check.sh: C = A x B (n x n, fp32, 32x32 shared-memory tiles), repeated until
// `seconds` have passed. Prints one JSON line with CLOCK_MONOTONIC times around the busy loop.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <cuda_runtime.h>

#define CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "CUDA error %s at %s:%d: %s\n", #x, __FILE__, __LINE__, cudaGetErrorString(e_)); \
    return 1; } } while (0)
#define T 32

static long long mono_ns() {
    timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__global__ void fill(float *p, size_t n, float scale) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) p[i] = scale * (float)((i * 2654435761u) % 1000) / 1000.0f;
}

__global__ void sgemm(const float *A, const float *B, float *C, int n) {
    __shared__ float As[T][T], Bs[T][T];
    int row = blockIdx.y * T + threadIdx.y, col = blockIdx.x * T + threadIdx.x;
    float acc = 0.f;
    for (int k0 = 0; k0 < n; k0 += T) {
        As[threadIdx.y][threadIdx.x] = A[row * n + k0 + threadIdx.x];
        Bs[threadIdx.y][threadIdx.x] = B[(k0 + threadIdx.y) * n + col];
        __syncthreads();
#pragma unroll
        for (int k = 0; k < T; k++) acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
        __syncthreads();
    }
    C[row * n + col] = acc;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    int n = argc > 2 ? atoi(argv[2]) : 4096;
    n = (n / T) * T;
    size_t elems = (size_t)n * n, bytes = elems * sizeof(float);
    cudaDeviceProp prop; CHECK(cudaGetDeviceProperties(&prop, 0));
    float *A, *B, *C;
    CHECK(cudaMalloc(&A, bytes)); CHECK(cudaMalloc(&B, bytes)); CHECK(cudaMalloc(&C, bytes));
    fill<<<(unsigned)((elems + 255) / 256), 256>>>(A, elems, 1.0f);
    fill<<<(unsigned)((elems + 255) / 256), 256>>>(B, elems, 0.5f);
    CHECK(cudaGetLastError()); CHECK(cudaDeviceSynchronize());
    dim3 block(T, T), grid(n / T, n / T);
    long long iters = 0, t0 = mono_ns(), limit = (long long)(seconds * 1e9), t1 = t0;
    while (t1 - t0 < limit) {
        sgemm<<<grid, block>>>(A, B, C, n);
        CHECK(cudaGetLastError()); CHECK(cudaDeviceSynchronize());
        iters++; t1 = mono_ns();
    }
    float probe = 0.f; CHECK(cudaMemcpy(&probe, C, sizeof(float), cudaMemcpyDeviceToHost));
    double s = (t1 - t0) / 1e9, tflops = 2.0 * n * (double)n * n * iters / s / 1e12;
    printf("{\"t_start_ns\": %lld, \"t_end_ns\": %lld, \"iterations\": %lld, \"n\": %d, "
           "\"seconds\": %.3f, \"tflops\": %.2f, \"device\": \"%s\", \"c00\": %g}\n",
           t0, t1, iters, n, s, tflops, prop.name, probe);
    cudaFree(A); cudaFree(B); cudaFree(C);
    return 0;
}
CUDA

say "compiling the CUDA load (arch $CUDA_ARCH)"
if ! timeout 300 nvcc -O3 -arch="$CUDA_ARCH" -o "$BUILD/burn" "$BUILD/burn.cu" > "$OUT/nvcc.log" 2>&1; then
  if [ "$CUDA_ARCH" = native ]; then
    say "-arch=native failed (see $OUT/nvcc.log); retrying with sm_90"
    timeout 300 nvcc -O3 -arch=sm_90 -o "$BUILD/burn" "$BUILD/burn.cu" >> "$OUT/nvcc.log" 2>&1 \
      || die "nvcc failed: $(tail -n 5 "$OUT/nvcc.log")"
  else
    die "nvcc failed: $(tail -n 5 "$OUT/nvcc.log")"
  fi
fi

say "smoke test of the load (1 s)"
LOAD_CMD="$BUILD/burn $LOAD_S $MATRIX_N"
PARTIAL=0
if timeout 60 "$BUILD/burn" 1 "$MATRIX_N" > "$OUT/burn.log" 2>&1; then
  say "load ok: $(tail -n 1 "$OUT/burn.log")"
else
  # Keep going: an idle-only trace still compares the counter with integrated power.
  say "WARNING: the CUDA load does not run ($(tail -n 1 "$OUT/burn.log")); tracing an IDLE GPU instead" >&2
  LOAD_CMD="sleep $LOAD_S"
  PARTIAL=1
fi

# ---------------------------------------------------------------- 3. trace
say "tracing GPU $GPU: ${IDLE_S}s idle, ${LOAD_S}s load, ${TAIL_S}s tail, every ${SAMPLE_MS} ms"
TRACE_LIMIT=$(( ${IDLE_S%.*} + ${LOAD_S%.*} + ${TAIL_S%.*} + 120 ))
rc=0
timeout "$TRACE_LIMIT" "$PYTHON" "$SCRIPT_DIR/gpu_trace.py" --out "$OUT" --device "$GPU" \
  --idle-s "$IDLE_S" --tail-s "$TAIL_S" --sample-ms "$SAMPLE_MS" \
  --load-cmd "$LOAD_CMD" --load-timeout-s "$(( ${LOAD_S%.*} + 60 ))" || rc=$?
[ "$rc" -eq 0 ] || die "gpu_trace.py failed (exit $rc)" 2

# ---------------------------------------------------------------- 4. analysis
say "analysis"
"$PYTHON" "$SCRIPT_DIR/gpu_analyze.py" "$OUT" | tee "$OUT/summary.txt" || die "gpu_analyze.py failed" 2
say "done: $OUT/summary.txt, $OUT/summary.json"
if [ "$PARTIAL" -eq 1 ]; then say "PARTIAL: no GPU load ran (see $OUT/burn.log)"; exit 3; fi
