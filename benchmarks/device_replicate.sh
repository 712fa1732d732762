#!/usr/bin/env bash
# Continue the Fashion-MNIST replication on the lent GPU machine, for at most SECONDS, then hand
# the runs of its seeds back as $OUT/fmnist.tar and its log as $OUT/replicate.log (the tool
# returns files under $OUT only, at most 8 of them). It is stopped by SIGTERM (every checkpoint
# and result file is written atomically); every stage resumes where it stopped, so a stop at the
# time limit loses at most the epoch or batch under way; unpack the tar over the checkout and
# commit.
#
#   here:   bash benchmarks/device_prepare.sh
#   device: run(command="bash benchmarks/device_replicate.sh 500", carry=[".device"], timeout_s=580)
#   here:   tar -xf <files_at>/fmnist.tar && cat <files_at>/replicate.log >> benchmarks/replication/fmnist.log
#           specrobust study fmnist --stages none   # the tables
#
# A second argument picks the stages (e.g. `aa` alone) and SEEDS=1,2 the seeds: leave the local
# background jobs the seeds they are training, or stop them first, so that the unpacked tar
# does not overwrite a run that went on here meanwhile.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-500}
stages=${2:-train,eval,analyze,aa,report}
seeds=${SEEDS:-0,1,2}
device=${DEVICE:-cuda}
export PYTHONPATH=.device/site:src PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true
timeout --signal=TERM --kill-after=20 "$seconds" "${PYTHON:-python3}" -m specrobust.cli study fmnist \
  --device "$device" --data-root .device/data --stages "$stages" --seeds "$seeds" \
  2>&1 | tee "$OUT/replicate.log" | tail -n 40
runs=$(for seed in ${seeds//,/ }; do ls -d benchmarks/replication/fmnist/runs/*-seed"$seed" 2>/dev/null; done)
# Only the seeds run here: the others may have moved on in the checkout meanwhile.
tar -cf "$OUT/fmnist.tar" --exclude=weights $runs
ls -la "$OUT"
