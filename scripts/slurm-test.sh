#!/usr/bin/env bash
# The cluster recipes on a real Slurm (deploy/slurm/), on this machine:
#
# 1. Slurm itself: Debian's slurmctld, slurmd and munge (installed if missing, as root), a
#    private slurm.conf and munge key in a temporary folder, the three daemons started on
#    localhost on free ports and stopped by their process ids at the end (nothing else touched).
#    With RCNN_SLURM=existing, an already configured cluster is used instead (its nodes must see
#    this folder).
# 2. Detect: deploy/slurm/submit-detect.sh over 16 raccoon test photos as 4 array tasks plus the
#    merge job. Shard 2 is cancelled (scancel) once it has finished an image; the merge, which
#    waited for every task (afterok), is cancelled with it. Shard 2 is resubmitted alone
#    (--array=2), resumes from its journal, and a new merge runs. The merged outputs must equal
#    one `rcnn detect` over the same photos, byte for byte.
#    Then srun --ntasks=2: each task of the step is a shard (--shard auto), and the batch script
#    around it, which is no task of a step, is refused.
# 3. Train: deploy/slurm/train-ensemble.sbatch with 2 members and a few steps, both tasks
#    started together over one region index: it is built once (under its lock), and both
#    members' model files load as 2-class networks.
# 4. Proposals, then training: deploy/slurm/submit-train.sh runs `rcnn proposals --shard auto`
#    as 2 array tasks and `rcnn train --proposals RUN/proposals` after them (afterok); every
#    photo has its proposals and the model is written.
#
# Prints "slurm-test: skipped: WHY" and exits 0 when this machine cannot run it (not root and
# no configured cluster, no package registry to install Slurm from, or daemons that cannot
# start here); once the cluster is up, every problem is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rcnn=${RCNN:-$root/target/release/rcnn}
say() { printf 'slurm-test: %s\n' "$*"; }
skip() { say "skipped: $*"; exit 0; }
fail() { say "FAILED: $*" >&2; exit 1; }
start=$SECONDS
[ -x "$rcnn" ] || fail "no rcnn binary at $rcnn (run ./setup.sh)"

work=$(mktemp -d /tmp/rcnn-slurm.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- 1. a Slurm to submit to -------------------------------------------------------------------
if [ "${RCNN_SLURM:-private}" = existing ]; then
  sinfo >/dev/null 2>&1 || skip "RCNN_SLURM=existing, but sinfo cannot reach a cluster"
  say "using the configured cluster ($(sinfo -h -o %P | tr '\n' ' '))"
else
  [ "$(id -u)" -eq 0 ] || skip "a private slurmd must run as root here (or set RCNN_SLURM=existing on a configured cluster)"
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing Debian's slurmctld, slurmd, slurm-client and munge"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null; } 2>"$work/apt.log" ||
      skip "apt-get could not install Slurm: $(tail -n 1 "$work/apt.log")"
  fi
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512))
  port=$((20000 + RANDOM % 20000))
  mkdir -p "$work/state" "$work/spool" "$work/munge"
  chmod 700 "$work/munge"
  head -c 1024 /dev/urandom >"$work/munge/munge.key"
  chmod 400 "$work/munge/munge.key"
  cat >"$work/slurm.conf" <<EOF
ClusterName=rcnn-test
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=rcnn Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$work/slurm.conf
  munged -F --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
    --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log" \
    --seed-file="$work/munge/munged.seed" >"$work/munge/munged.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do [ -S "$work/munge/munge.socket" ] && break; sleep 0.1; done
  # A machine where the daemons cannot run (a restricted container) skips, saying why; once
  # the cluster is up, every problem is a failure.
  [ -S "$work/munge/munge.socket" ] || skip "munged did not start here: $(tail -n 3 "$work/munge/munged.log" "$work/munge/munged.out" 2>/dev/null | tr '\n' ' ')"
  slurmctld -D -i -f "$SLURM_CONF" >"$work/slurmctld.out" 2>&1 &
  pids+=($!)
  slurmd -D -f "$SLURM_CONF" -N "$host" >"$work/slurmd.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
    [ "$state" = idle ] && break
    sleep 0.5
  done
  [ "$state" = idle ] || skip "a private Slurm did not come up here (node state '$state'); slurmctld: $(tail -n 3 "$work/slurmctld.log" 2>/dev/null | tr '\n' ' '); slurmd: $(tail -n 3 "$work/slurmd.log" 2>/dev/null | tr '\n' ' ')"
  say "private cluster up: slurmctld $host:$port, $cpus CPUs, ${mem} MB (pids ${pids[*]})"
fi

# Waits until every job named is out of the queue, at most $1 seconds.
wait_jobs() {
  local limit=$1 t=0 ids queued
  shift
  ids=$(
    IFS=,
    echo "$*"
  )
  # Captured, not piped into grep -q: under pipefail, grep leaving early could SIGPIPE the
  # writer and end the wait while jobs still run.
  while queued=$(squeue -h -j "$ids" 2>/dev/null) && [ -n "$queued" ]; do
    sleep 1
    t=$((t + 1))
    [ "$t" -lt "$limit" ] || fail "jobs $* still queued after $limit s: $queued"
  done
}
# The final state of a job (or array task), from slurmctld's memory (no accounting here).
job_state() {
  local info
  info=$(scontrol show job "$1" 2>/dev/null || true)
  if [[ $info =~ JobState=([A-Z_]+) ]]; then echo "${BASH_REMATCH[1]}"; fi
}

# --- 2. detect: 4 shards, one killed and resubmitted, merged, against one run ------------------
model=$root/data/models/raccoon-googlenet-paper-w025-s96.safetensors
head -n 16 data/raccoon/test-images.txt | sed "s|^|$root/data/raccoon/|" >"$work/images.txt"
flags="--max-proposals 300"
say "one rcnn detect over the 16 photos (the reference)"
# shellcheck disable=SC2086
"$rcnn" -q detect "$work/images.txt" --model "$model" --out "$work/single" $flags >/dev/null
export RCNN=$rcnn RCNN_DETECT_FLAGS=$flags
say "submitting the detect array (4 shards) and its merge"
deploy/slurm/submit-detect.sh "$work/images.txt" "$work/run" 4 "$model" | sed 's/^/  /'
read -r array merge <"$work/run/jobs"
# Cancel shard 2 once its journal holds a finished image (and before it has finished them all).
journal=$work/run/shard-2/.rcnn-detect.journal
for _ in $(seq 600); do
  lines=0
  [ -f "$journal" ] && lines=$(wc -l <"$journal")
  [ "$lines" -ge 2 ] && break
  sleep 0.1
done
[ "$lines" -ge 2 ] || fail "shard 2 finished no image in 60 s: $(cat "$work"/run/logs/detect-*_2.out 2>/dev/null)"
scancel "${array}_2"
done_before=$(($(wc -l <"$journal") - 1))
[ "$done_before" -lt 4 ] || fail "shard 2 had finished all 4 images before it could be killed; nothing was tested"
say "cancelled shard 2 after $done_before of its 4 images"
wait_jobs 300 "$array" "$merge"
state=$(job_state "${array}_2")
[ "$state" = CANCELLED ] || fail "shard 2 ended $state, not CANCELLED"
[ ! -e "$work/run/merged" ] || fail "the merge ran although shard 2 had failed"
say "merge job $merge did not run (shard 2 failed: $(job_state "$merge"))"
again=$(RCNN_SHARD_COUNT=4 IMAGES=$work/images.txt RUN=$work/run MODELS_FILE=$work/run/models.txt \
  sbatch --parsable --array=2 --export=ALL --output="$work/run/logs/detect-%A_%a.out" deploy/slurm/detect.sbatch)
again=${again%%;*}
merge2=$(RUN=$work/run sbatch --parsable --dependency=afterok:"$again" --kill-on-invalid-dep=yes \
  --export=ALL --output="$work/run/logs/merge-%j.out" deploy/slurm/merge.sbatch)
merge2=${merge2%%;*}
say "resubmitted shard 2 as job $again, merge as job $merge2"
wait_jobs 300 "$again" "$merge2"
grep -q "resumed $done_before images from the journal" "$work"/run/logs/detect-"$again"_2.out ||
  fail "shard 2 did not resume: $(cat "$work"/run/logs/detect-"$again"_2.out)"
[ "$(job_state "$merge2")" = COMPLETED ] || fail "the merge ended $(job_state "$merge2"): $(cat "$work"/run/logs/merge-"$merge2".out)"
for f in detections.txt detections.csv image_list.txt classes.txt; do
  cmp -s "$work/single/$f" "$work/run/merged/$f" || fail "merged $f differs from one run's: $(diff "$work/single/$f" "$work/run/merged/$f" | head -n 5)"
done
say "merged = one run: $(($(wc -l <"$work/single/detections.csv") - 1)) detections on 16 photos, byte for byte ($((SECONDS - start)) s so far)"

# --- srun: the tasks of one step are the shards; the batch script itself is none ---------------
head -n 4 "$work/images.txt" >"$work/four.txt"
# shellcheck disable=SC2086
"$rcnn" -q detect "$work/four.txt" --model "$model" --out "$work/four-single" $flags >/dev/null
mkdir -p "$work/srun"
cat >"$work/srun.sbatch" <<SCRIPT
#!/bin/bash
set -u
# Not inside a step: --shard auto must refuse rather than take a share.
if "$rcnn" -q detect "$work/four.txt" --model "$model" --out "$work/srun/none" --shard auto $flags 2>"$work/srun/refused.txt"; then
  echo "the batch script took a shard"; exit 1
fi
srun bash -c '"$rcnn" -q detect "$work/four.txt" --model "$model" --out "$work/srun/shard-\$SLURM_PROCID" --shard auto $flags'
SCRIPT
step=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --output="$work/srun/job.out" "$work/srun.sbatch")
step=${step%%;*}
wait_jobs 300 "$step"
[ "$(job_state "$step")" = COMPLETED ] || fail "the srun job ended $(job_state "$step"): $(cat "$work/srun/job.out")"
grep -q "no scheduler says which shard" "$work/srun/refused.txt" || fail "the batch script's --shard auto: $(cat "$work/srun/refused.txt")"
"$rcnn" -q merge "$work/srun/shard-0" "$work/srun/shard-1" --out "$work/srun/merged" >/dev/null
cmp -s "$work/four-single/detections.csv" "$work/srun/merged/detections.csv" ||
  fail "srun's 2 shards merged differ from one run over the same 4 photos"
say "srun --ntasks=2: two shards merged = one run over 4 photos; the batch script itself refused --shard auto"

# --- 3. train: 2 members, array tasks sharing one region cache ---------------------------------
printf '%s\n' raccoon-1 raccoon-10 raccoon-100 raccoon-101 >"$work/train.txt"
export RUN=$work/ensemble RCNN_SHARD_COUNT=2
export TRAIN_FLAGS="--images $root/data/raccoon/images --annotations $root/data/raccoon/annotations --split $work/train.txt --device cpu --width 0.125 --input-size 80 --max-proposals 100 --max-background 16 --batch-positives 4 --batch-background 12 --steps 4 --checkpoint-every 2 --log-every 2"
mkdir -p "$RUN"
train=$(sbatch --parsable --array=1-2 --cpus-per-task=1 --mem=3G --export=ALL \
  --output="$RUN/train-%A_%a.out" deploy/slurm/train-ensemble.sbatch)
train=${train%%;*}
say "submitted the 2-member training as job $train"
wait_jobs 300 "$train"
for k in 1 2; do
  [ "$(job_state "${train}_$k")" = COMPLETED ] || fail "member $k ended $(job_state "${train}_$k"): $(tail -n 5 "$RUN/train-${train}_$k.out")"
  info=$("$rcnn" -q model-info --model "$RUN/member-$k/model.safetensors" 2>&1) || fail "member $k's model file: $info"
  [[ $info == *"2 classes"* ]] || fail "member $k's model file: ${info:0:300}"
done
built=$(grep -l "positives) indexed" "$RUN"/train-"$train"_*.out | wc -l)
reused=$(grep -l "region index .* reused" "$RUN"/train-"$train"_*.out | wc -l)
[ "$reused" -ge 1 ] || fail "no member reused the shared region index: $(grep -h "region" "$RUN"/train-"$train"_*.out)"
say "2 members trained into $RUN/member-1 and member-2; the index was built once and reused by $reused task(s) ($built logs)"

# --- 4. proposals as an array job, then training on them ----------------------------------------
sed "s|^|$root/data/raccoon/images/|; s|$|.jpg|" "$work/train.txt" >"$work/four.txt"
submitted=$(RCNN=$rcnn RCNN_PROPOSALS_FLAGS="--top 100" SBATCH_FLAGS="--cpus-per-task=1 --mem=3G" deploy/slurm/submit-train.sh "$work/four.txt" "$work/props" 2 \
  --images "$root/data/raccoon/images" --annotations "$root/data/raccoon/annotations" \
  --split "$work/train.txt" --device cpu --width 0.125 \
  --input-size 80 --max-background 16 --batch-positives 4 --batch-background 12 --steps 2 \
  --checkpoint-every 2) || fail "submit-train.sh: $submitted"
printf '%s\n' "$submitted" | sed 's/^/  /'
read -r props_job train_job <"$work/props/jobs"
wait_jobs 300 "$props_job" "$train_job"
[ "$(job_state "$train_job")" = COMPLETED ] || fail "training on the shards' proposals ended $(job_state "$train_job"): $(tail -n 5 "$work"/props/logs/train-*.out)"
for k in 1 2; do
  [ -f "$work/props/proposals/$k.csv" ] || fail "no shard file $k: $(ls "$work/props/proposals")"
done
rows=$(cat "$work"/props/proposals/[12].csv | grep -vc '^image,' || true)
grep -q "no proposals for" "$work"/props/logs/train-*.out && fail "training lacked proposals for some image: $(grep -h "no proposals" "$work"/props/logs/train-*.out)"
"$rcnn" -q model-info --model "$work/props/train/model.safetensors" >/dev/null || fail "no model from the training job"
say "2 proposal shards ($rows boxes for 4 photos), then training on the folder of shard files: model written"
say "passed in $((SECONDS - start)) s"
