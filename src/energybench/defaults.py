"""Default values of a sweep config and of the GPU measurement protocol, in one place.

The sweep config schema (:mod:`energybench.config.schema`), the GPU protocol
(:mod:`energybench.gpu_protocol`) and everything else that needs one of these defaults read it from
here, so changing a value here changes it everywhere. Units are in the names: ``_S`` seconds,
``_MS`` milliseconds, ``_PCT`` percent.

Sources: warm-ups, repetitions, idle baseline and cooldown follow pyperf practice ("Tune the system
for benchmarks", pyperf documentation); the GPU protocol follows Yang et al., "Part-time Power
Measurements: nvidia-smi's Lack of Attention", SC'24 (arXiv:2312.02741). The llama.cpp settings are
llama-bench's own defaults unless said otherwise.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- the sweep

#: Name of a sweep that does not give one (results directories and reports show it).
SWEEP_NAME = "sweep"
#: Inference backend (registry name); llama.cpp is the one energybench ships.
BACKEND = "llama.cpp"
#: Warm-up runs per point: the first run pays cold caches and page faults; kept in the results, flagged.
WARMUP = 1
#: Measured runs per point: at least 10 for a usable 95 % confidence interval.
REPETITIONS = 10
#: Adaptive repetitions stop when the 95 % CI half-width is below this % of the mean.
ADAPTIVE_TARGET_CI_PCT = 5.0
#: Adaptive repetitions before the first CI check (a CI needs a few runs to mean anything).
ADAPTIVE_MIN = 5
#: Adaptive repetitions never exceed this (bounds the time of a noisy point).
ADAPTIVE_MAX = 30
#: The per-run value whose CI adaptive repetitions watch: energy per generated token (a metric of
#: :mod:`energybench.metrics`).
ADAPTIVE_METRIC = "j_per_output_token"
#: Cooldown until idle: total power within this % of the idle baseline counts as idle.
UNTIL_IDLE_WITHIN_PCT = 10.0
#: Cooldown until idle: seconds power must stay near idle (one dip is not a cool machine).
UNTIL_IDLE_HOLD_S = 3.0
#: Cooldown until idle: give up waiting after this many seconds (a machine that never settles).
UNTIL_IDLE_MAX_S = 60.0
#: Seconds of idle power measured before the sweep (the baseline for net energy and cooldown).
IDLE_BASELINE_S = 5.0
#: Run order: each load group's points shuffled (seeded), so drift does not line up with an axis.
ORDER = "shuffled"
#: Seed of the shuffled/interleaved order (reproducible orders).
ORDER_SEED = 0
#: Failed runs of one point before it is skipped (and reported), so one bad point cannot stall a sweep.
MAX_FAILURES = 3
#: Meters: every available real meter, the estimate meter only as a fallback.
METERS = "auto"
#: Power sampling period, ms (50 Hz: many samples even in a short run, little sampler overhead).
SAMPLE_PERIOD_MS = 20.0
#: Minimum run length, s (decoding repeats until reached): 0 = no minimum for CPU points.
MIN_WINDOW_S = 0.0

# ----------------------------------------------------------------------------- the grid

#: The model ``measure`` uses when none is given: the few-MB shape twin ``synthetic:tiny``.
MODEL = "synthetic:tiny"

def threads() -> int:
    """CPU threads for generation (llama-bench -t): the physical cores, as llama-bench defaults to."""
    import psutil

    return psutil.cpu_count(logical=False) or 1


#: Layers offloaded to the GPU: 0 = CPU only, which runs on any build.
N_GPU_LAYERS = 0
#: Logical batch size n_batch (llama-bench -b).
BATCH = 512
#: n_ubatch when ``ubatch: auto``: llama.cpp's default, clamped to n_batch (llama.cpp itself
#: silently clamps n_ubatch to n_batch; we make it explicit so the recorded value is true).
LLAMA_DEFAULT_UBATCH = 512
#: Flash attention: let llama.cpp decide.
FLASH_ATTN_MODE = "auto"
#: Synthetic prompt length in tokens when no prompt is given (llama-bench -p).
N_PROMPT = 128
#: Tokens generated per run (llama-bench -n).
N_GEN = 64
#: llama.cpp weight repacking (extra buffer types): on, the faster layout; false is the AMX-crash workaround.
REPACK = True
#: Sampler seed (reproducible generations).
SEED = 0
#: Main GPU index.
MAIN_GPU = 0
#: Keep the KV cache on the GPU when offloading (llama.cpp's default).
OFFLOAD_KQV = True
#: Memory-map the model file (llama.cpp's default).
USE_MMAP = True

# ----------------------------------------------------------------------------- the GPU protocol

#: Apply the GPU protocol to points that offload (without it NVML energy was off by 39 % on average).
GPU_PROTOCOL_ENABLED = True
#: Each run of an offloading point lasts at least this long; the paper: windows >= 5 s.
GPU_MIN_WINDOW_S = 5.0
#: Measured repetitions per offloading point at least; the paper: >= 4 trials.
GPU_MIN_TRIALS = 4
#: Random pause before each run, (lo, hi) s: ours, long enough to move a run over several 100 ms
#: sensor periods (random phase), short next to a 5 s window.
GPU_RANDOM_GAP_S = (0.5, 2.0)
#: Rise time discarded: ``"auto"`` = each GPU power domain's update period (counters untouched).
GPU_DISCARD_RISE_S = "auto"
#: Seed of the random gaps (a gap is a function of this seed and the run id).
GPU_GAP_SEED = 0

# ----------------------------------------------------------------------------- statistics

#: A coefficient of variation above this % marks a result unstable (pyperf warns at 10 %).
CV_WARN_PCT = 10.0
#: Fewer measured repetitions than this give only a rough confidence interval (warned).
MIN_REPS_FOR_CI = 10

# ----------------------------------------------------------------------------- compare and cost

#: Metrics ``compare`` judges when no --metric is given: energy per output token, decode speed,
#: time to first token (names of :mod:`energybench.metrics`).
COMPARE_METRICS = ("j_per_output_token", "decode_tok_s", "ttft_ms")
#: What ``compare`` prints: text, markdown or json.
COMPARE_FORMAT = "text"
#: The energy that cost and CO2e are computed from: the gross energy per output token the meters saw.
COST_ENERGY_METRIC = "j_per_output_token"
