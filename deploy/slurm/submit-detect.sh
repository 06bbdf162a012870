#!/usr/bin/env bash
# Submits `rcnn detect` over IMAGES as N array tasks and a merge job that runs once every task
# has succeeded (--dependency=afterok), then prints the job ids and where the result will be.
#
#   deploy/slurm/submit-detect.sh IMAGES RUN_DIR N MODEL [MODEL ...]
#
# IMAGES, RUN_DIR and the models must be on a filesystem every node sees. RCNN names the binary
# (default: rcnn on PATH); RCNN_DETECT_FLAGS and RCNN_MERGE_FLAGS add flags; SBATCH_FLAGS adds
# sbatch options to both jobs (e.g. "--partition=gpu").
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
images=$1 run=$2 n=$3
shift 3
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "submit-detect.sh: N must be a positive number, got $n" >&2; exit 2; }
# Every input is checked here, at submit time, not by each task after it has queued.
[ -e "$images" ] || { echo "submit-detect.sh: no images at $images" >&2; exit 2; }
for m in "$@"; do
  [ -f "$m" ] || { echo "submit-detect.sh: no model file at $m" >&2; exit 2; }
  case $m in *$'\n'*) echo "submit-detect.sh: a model path holds a newline: $m" >&2; exit 2 ;; esac
done
RCNN=${RCNN:-$(command -v rcnn || true)}
[ -x "$RCNN" ] || { echo "submit-detect.sh: no rcnn binary: put it on PATH or set RCNN" >&2; exit 2; }
mkdir -p "$run/logs"
IMAGES=$(realpath "$images")
RUN=$(realpath "$run")
RCNN=$(realpath "$RCNN")
# The models travel as a file, one path a line: a list in one variable would be split at the
# spaces inside a path, and its globs expanded.
MODELS_FILE=$RUN/models.txt
realpath "$@" >"$MODELS_FILE"
RCNN_SHARD_COUNT=$n
export IMAGES RUN MODELS_FILE RCNN RCNN_SHARD_COUNT
# shellcheck disable=SC2086 # SBATCH_FLAGS is a list of options
array=$(sbatch --parsable --array=1-"$n" --export=ALL --output="$RUN/logs/detect-%A_%a.out" \
  ${SBATCH_FLAGS:-} "$here/detect.sbatch")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes --export=ALL \
  --output="$RUN/logs/merge-%j.out" ${SBATCH_FLAGS:-} "$here/merge.sbatch")
merge=${merge%%;*}
echo "detect: job $array, $n array tasks; shard K writes $RUN/shard-K (logs in $RUN/logs)"
echo "merge:  job $merge, once every task has succeeded; the result will be in $RUN/merged"
echo "if task K fails, the merge is cancelled; resubmit that index (K for the number), then the merge:"
# Quoted for the shell (printf %q), so that pasting them runs nothing a path's name holds.
printf '  IMAGES=%q RUN=%q MODELS_FILE=%q RCNN=%q RCNN_SHARD_COUNT=%q sbatch --array=K --export=ALL %q\n' \
  "$IMAGES" "$RUN" "$MODELS_FILE" "$RCNN" "$n" "$here/detect.sbatch"
printf '  RUN=%q RCNN=%q sbatch --dependency=afterok:<that job> --export=ALL %q\n' \
  "$RUN" "$RCNN" "$here/merge.sbatch"
echo "$array $merge" >"$RUN/jobs"
