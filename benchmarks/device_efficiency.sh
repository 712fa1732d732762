#!/usr/bin/env bash
# The GPU efficiency benchmarks (issue 17, part 3) in one call on the lent GPU machine: ResNet-18
# at the paper's batch size, the AT and AT+SAR training steps in every variant (eager fp32, bf16
# autocast, torch.compile, torch.compile with CUDA graphs) side by side with each one's gradient
# checked against eager fp32; then evaluation PGD-20 at several batch sizes, fp32 and bf16.
# Outputs come back as $OUT/*.txt; copy them to benchmarks/results/ and quote them in RESULTS.md.
#
#   here:   bash benchmarks/device_prepare.sh
#   device: run(command="bash benchmarks/device_efficiency.sh", carry=[".device"], timeout_s=540)
#
# Random images: a step's cost does not depend on what its pixels show (the gradient check does
# not need trained weights either: it compares two arithmetics on the same weights).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.device/site:src PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
timeout 360 "$python" benchmarks/training_cost.py --model resnet18 --shape 3,32,32 \
  --device cuda --batch-size 128 --variants --iters 10 --repeats 5 \
  2>&1 | tee "$OUT/train_variants_resnet18_gpu.txt"
timeout 120 "$python" benchmarks/eval_throughput.py --untrained --model resnet18 \
  --dataset "synthetic:n_train=100,n_test=2048" --n 2048 --eps 8/255 --steps 20 \
  --batch-sizes 128,256,512,1024 --device cuda 2>&1 | tee "$OUT/eval_batch_sizes_resnet18_gpu.txt"
ls -la "$OUT"
