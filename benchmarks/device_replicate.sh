#!/usr/bin/env bash
# Continue the Fashion-MNIST replication on the lent GPU machine, for at most SECONDS, then hand
# the replication folder back as $OUT/fmnist.tar (the tool returns files under $OUT only, at most
# 8 of them). It is stopped by SIGTERM (every checkpoint and result file is written atomically);
# every stage resumes where it stopped, so a stop at the time limit loses at most the
# epoch or batch under way; unpack the tar over the checkout and commit.
#
#   here:   bash benchmarks/device_prepare.sh
#   device: run(command="bash benchmarks/device_replicate.sh 500", carry=[".device"], timeout_s=580)
#   here:   tar -xf <files_at>/fmnist.tar
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-500}
stages=${2:-train,eval,analyze,aa,report}
device=${DEVICE:-cuda}
export PYTHONPATH=.device/site:src PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true
timeout --signal=TERM --kill-after=20 "$seconds" "${PYTHON:-python3}" benchmarks/replicate_fmnist.py \
  --device "$device" --data-root .device/data --stages "$stages" \
  2>&1 | tee -a benchmarks/replication/fmnist.log | tail -n 40
tar -cf "$OUT/fmnist.tar" --exclude=weights benchmarks/replication/fmnist \
  benchmarks/replication/fmnist.log
ls -la "$OUT"
