#!/bin/sh
# The whole study in one go: fetch the model, run the baseline sweep (P1) and the ablation sweep
# (P2), and write a report for each.
#
# usage:  sh examples/run_pipeline.sh [OUT_DIR]          (default OUT_DIR: results/pipeline)
#
# Environment (all optional):
#   ENERGYBENCH    the energybench command        (default: energybench; e.g. "python -m energybench")
#   FETCH_ARGS     what to fetch first            (default: --synthetic tinyllama-1.1b --quant Q4_0;
#                                                  for the real model: tinyllama-1.1b-chat:Q4_0)
#   P1_CONFIG      baseline sweep config          (default: p1_baseline.yaml next to this script)
#   P2_CONFIG      ablation sweep config          (default: p2_ablation.yaml next to this script)
#   SKIP_ABLATION  set to 1 to run the baseline only (e.g. no GPU for the offload points)
#
# Results: OUT_DIR/p1_baseline, OUT_DIR/p2_ablation (sweep results), OUT_DIR/report_p1,
# OUT_DIR/report_p2 (reports). Any failing step stops the script with its exit code.
# Rerunning with the same OUT_DIR resumes an interrupted sweep (finished runs are kept).
set -eu

OUT_DIR=${1:-results/pipeline}
HERE=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
ENERGYBENCH=${ENERGYBENCH:-energybench}
FETCH_ARGS=${FETCH_ARGS:---synthetic tinyllama-1.1b --quant Q4_0}
P1_CONFIG=${P1_CONFIG:-$HERE/p1_baseline.yaml}
P2_CONFIG=${P2_CONFIG:-$HERE/p2_ablation.yaml}
SKIP_ABLATION=${SKIP_ABLATION:-0}

# $ENERGYBENCH and $FETCH_ARGS are split into words on purpose (a command with arguments).
eb() {
    echo "+ $ENERGYBENCH $*" >&2
    # shellcheck disable=SC2086
    $ENERGYBENCH "$@"
}

# sweep CONFIG DIR: start the sweep, or resume it if DIR already holds one.
sweep() {
    eb config validate "$1"
    if [ -f "$2/metadata.json" ]; then
        eb sweep --resume "$2"
    else
        eb sweep --config "$1" --out "$2"
    fi
}

mkdir -p -- "$OUT_DIR"

echo "== 1/4 fetch the model" >&2
# shellcheck disable=SC2086
eb fetch $FETCH_ARGS

echo "== 2/4 baseline sweep (P1)" >&2
sweep "$P1_CONFIG" "$OUT_DIR/p1_baseline"

if [ "$SKIP_ABLATION" != "1" ]; then
    echo "== 3/4 ablation sweep (P2)" >&2
    sweep "$P2_CONFIG" "$OUT_DIR/p2_ablation"
else
    echo "== 3/4 ablation sweep skipped (SKIP_ABLATION=1)" >&2
fi

echo "== 4/4 reports" >&2
eb report "$OUT_DIR/p1_baseline" -o "$OUT_DIR/report_p1"
if [ "$SKIP_ABLATION" != "1" ]; then
    eb report "$OUT_DIR/p2_ablation" -o "$OUT_DIR/report_p2"
fi

echo "done: results and reports in $OUT_DIR" >&2
