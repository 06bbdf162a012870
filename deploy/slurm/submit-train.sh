#!/usr/bin/env bash
# Submits "proposals as an array job, then training": `rcnn proposals` over IMAGES as N array
# tasks (RUN/proposals/K.csv), and `rcnn train --proposals RUN/proposals` once every task has
# succeeded (--dependency=afterok). Prints the job ids.
#
#   deploy/slurm/submit-train.sh IMAGES RUN_DIR N TRAIN_FLAGS...
#
# TRAIN_FLAGS are rcnn train's data and schedule flags (--images must name IMAGES' folder).
# IMAGES and RUN_DIR must be on a filesystem every node sees. RCNN names the binary (default:
# rcnn on PATH); RCNN_PROPOSALS_FLAGS adds flags to rcnn proposals; SBATCH_FLAGS adds sbatch
# options to both jobs.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
images=$1 run=$2 n=$3
shift 3
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "submit-train.sh: N must be a positive number, got $n" >&2; exit 2; }
[ -e "$images" ] || { echo "submit-train.sh: no images at $images" >&2; exit 2; }
RCNN=${RCNN:-$(command -v rcnn || true)}
[ -x "$RCNN" ] || { echo "submit-train.sh: no rcnn binary: put it on PATH or set RCNN" >&2; exit 2; }
mkdir -p "$run/logs"
IMAGES=$(realpath "$images")
RUN=$(realpath "$run")
RCNN=$(realpath "$RCNN")
# The flags travel in one variable, word-split by train.sbatch: each is quoted here so that a
# path with a space stays one word only if it has none (checked).
for f in "$@"; do
  case $f in *[[:space:]]*) echo "submit-train.sh: a flag holds white space: '$f'" >&2; exit 2 ;; esac
done
TRAIN_FLAGS="$*"
RCNN_SHARD_COUNT=$n
export IMAGES RUN RCNN RCNN_SHARD_COUNT TRAIN_FLAGS
# shellcheck disable=SC2086 # SBATCH_FLAGS is a list of options
array=$(sbatch --parsable --array=1-"$n" --export=ALL --output="$RUN/logs/proposals-%A_%a.out" \
  ${SBATCH_FLAGS:-} "$here/proposals.sbatch")
array=${array%%;*}
# shellcheck disable=SC2086
train=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes --export=ALL \
  --output="$RUN/logs/train-%j.out" ${SBATCH_FLAGS:-} "$here/train.sbatch")
train=${train%%;*}
echo "proposals: job $array, $n array tasks; task K writes $RUN/proposals/K.csv (logs in $RUN/logs)"
echo "train:     job $train, once every task has succeeded; the model will be $RUN/train/model.safetensors"
echo "$array $train" >"$RUN/jobs"
