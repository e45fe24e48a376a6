#!/bin/sh
# The whole study in one go: fetch the model, run the baseline sweep (P1) and the ablation sweep
# (P2), write a report for each with the original study's CSV files, and open the dashboard.
#
# usage:  sh examples/run_pipeline.sh [OUT_DIR]          (default OUT_DIR: results/pipeline)
#
# Environment (all optional):
#   ENERGYBENCH    the energybench command        (default: energybench; e.g. "python -m energybench")
#   FETCH_ARGS     what to fetch first            (default: --synthetic tinyllama-1.1b --quant Q4_0;
#                                                  for the real model: tinyllama-1.1b-chat:Q4_0)
#   P1_CONFIG      baseline sweep config          (default: p1_baseline.yaml next to this script;
#                                                  the study's own design: seed_p1)
#   P2_CONFIG      ablation sweep config          (default: p2_ablation.yaml next to this script;
#                                                  the study's own design: seed_p2)
#   SKIP_ABLATION  set to 1 to run the baseline only
#   CPU_ONLY       set to 1 to run only the points that need no GPU (sweep --cpu-only): the CPU part
#                  of a design on a machine or build without GPU offload
#   SERVE          set to 1 to serve the last report at the end (report --serve; Ctrl-C stops)
#   PORT           port for SERVE                 (default: 8765)
#
# Results: OUT_DIR/p1_baseline, OUT_DIR/p2_ablation (sweep results), OUT_DIR/report_p1,
# OUT_DIR/report_p2 (reports: report.html is the dashboard, self-contained; tables/ holds
# latency_results.csv, power_logs.csv and raw_*_power_*.csv in the study's layout).
# Any failing step stops the script with its exit code.
# Rerunning with the same OUT_DIR resumes an interrupted sweep (finished runs are kept).
set -eu

OUT_DIR=${1:-results/pipeline}
HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
ENERGYBENCH=${ENERGYBENCH:-energybench}
FETCH_ARGS=${FETCH_ARGS:---synthetic tinyllama-1.1b --quant Q4_0}
P1_CONFIG=${P1_CONFIG:-$HERE/p1_baseline.yaml}
P2_CONFIG=${P2_CONFIG:-$HERE/p2_ablation.yaml}
SKIP_ABLATION=${SKIP_ABLATION:-0}
CPU_ONLY=${CPU_ONLY:-0}
SERVE=${SERVE:-0}
PORT=${PORT:-8765}

# $ENERGYBENCH and $FETCH_ARGS are split into words on purpose (a command with arguments).
eb() {
    echo "+ $ENERGYBENCH $*" >&2
    # shellcheck disable=SC2086
    $ENERGYBENCH "$@"
}

# sweep CONFIG DIR: start the sweep, or resume it if DIR already holds one (its stored config
# remembers --cpu-only).
sweep() {
    eb config validate "$1"
    if [ -f "$2/metadata.json" ]; then
        eb sweep --resume "$2"
    elif [ "$CPU_ONLY" = "1" ]; then
        eb sweep --config "$1" --out "$2" --cpu-only
    else
        eb sweep --config "$1" --out "$2"
    fi
}

mkdir -p -- "$OUT_DIR"

echo "== 1/5 fetch the model" >&2
# shellcheck disable=SC2086
eb fetch $FETCH_ARGS

echo "== 2/5 baseline sweep (P1)" >&2
sweep "$P1_CONFIG" "$OUT_DIR/p1_baseline"

if [ "$SKIP_ABLATION" != "1" ]; then
    echo "== 3/5 ablation sweep (P2)" >&2
    sweep "$P2_CONFIG" "$OUT_DIR/p2_ablation"
else
    echo "== 3/5 ablation sweep skipped (SKIP_ABLATION=1)" >&2
fi

echo "== 4/5 reports and the study's CSV files" >&2
eb report "$OUT_DIR/p1_baseline" -o "$OUT_DIR/report_p1" --export csv
LAST="$OUT_DIR/p1_baseline"
if [ "$SKIP_ABLATION" != "1" ]; then
    eb report "$OUT_DIR/p2_ablation" -o "$OUT_DIR/report_p2" --export csv
    LAST="$OUT_DIR/p2_ablation"
fi

echo "== 5/5 dashboard" >&2
if [ "$SERVE" = "1" ]; then
    eb report "$LAST" --serve --port "$PORT"
else
    echo "open $OUT_DIR/report_p1/report.html (and report_p2), or serve it live: $ENERGYBENCH report $LAST --serve" >&2
fi

echo "done: results and reports in $OUT_DIR" >&2
