#!/usr/bin/env bash
# One energybench study as a Slurm job array: every array task runs one shard of the sweep.
#
#   sbatch --array=1-4 examples/slurm/sweep-array.sh CONFIG OUT [SWEEP FLAGS...]
#
# CONFIG  a sweep config file or a built-in name (quick, p1_baseline ...), the same for every task;
# OUT     where the shards go: a directory every node sees, or an s3://bucket/prefix URL
#         (credentials and endpoint from the AWS_* environment variables); task K of N writes
#         OUT/shard-K-of-N.
# Then `energybench report "OUT/*"` merges the shards into one report (quote the glob: energybench
# expands it, for s3:// URLs too).
#
# The array may start at 0 or 1 and have a step (--array=0-7, --array=1-8, --array=0-14:2): the
# shard is counted from the array's own start, K = (ID - SLURM_ARRAY_TASK_MIN) / step + 1, so K
# runs 1..N (sbatch(1), OUTPUT ENVIRONMENT VARIABLES: SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT and
# SLURM_ARRAY_JOB_ID, the array's job id, which every shard records as its sweep id). A task that
# Slurm requeues (node failure: SLURM_RESTART_COUNT > 0), or that finds its shard already started,
# resumes it: only the missing runs are measured.
#
# ENERGYBENCH_CMD overrides the command (default: energybench), e.g. "uv run energybench".
#SBATCH --job-name=energybench
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --exclusive
#SBATCH --requeue
#SBATCH --output=energybench-%A_%a.log
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: sbatch --array=1-N $0 CONFIG OUT [SWEEP FLAGS...]" >&2
    exit 2
fi
config=$1
out=${2%/}
shift 2

: "${SLURM_ARRAY_TASK_ID:?not an array task: submit with sbatch --array=...}"
: "${SLURM_ARRAY_TASK_COUNT:?not an array task: submit with sbatch --array=...}"
first=${SLURM_ARRAY_TASK_MIN:-0}
step=${SLURM_ARRAY_TASK_STEP:-1}
n=$SLURM_ARRAY_TASK_COUNT
k=$(( (SLURM_ARRAY_TASK_ID - first) / step + 1 ))
dir="$out/shard-$k-of-$n"
read -r -a eb <<< "${ENERGYBENCH_CMD:-energybench}"

if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] || [ -e "$dir/metadata.json" ]; then
    echo "shard $k/$n: resuming $dir" >&2
    exec "${eb[@]}" sweep --resume "$dir" --quiet "$@"
fi
echo "shard $k/$n of sweep $SLURM_ARRAY_JOB_ID on $(hostname): $dir" >&2
exec "${eb[@]}" sweep --config "$config" --shard "$k/$n" --sweep-id "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}" \
    --out "$dir" --quiet "$@"
