"""What the paper's study costs in GPU hours, on paper: from the H100 throughput measured so far
(a ResNet-18 training step and the evaluation's PGD, `benchmarks/results/*_gpu.txt`) and the
shipped recipes, with WideResNet-34-10 scaled by its measured FLOPs per image against ResNet-18.

    python benchmarks/cluster_cost.py [--seeds 3]

Nothing here ran on a cluster: it is arithmetic on measured rates, with the assumptions printed
beside the figures, for planning Slurm allocations (docs/performance.md).
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from specrobust.config import load_config
from specrobust.models import create_model

# Measured on one H100 (benchmarks/results/train_cost_resnet18_fp32.txt, eval_resnet18_gpu.txt):
# ResNet-18 at 32x32, batch 128, images per second of a whole training step, and the
# evaluation's PGD-20 images per second (batch 500).
RESNET18_STEP = {"AT": 2717.0, "AT+SAR": 2344.0}
RESNET18_PGD20 = 1625.0
TEST_IMAGES = 10_000
# Gradient passes per image of the evaluation suite clean, FGSM, PGD-20, C&W-30 and standard
# AutoAttack's upper bound on a robust image (APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100 steps,
# Square 5000 forward passes at about a third of a gradient pass each); about half the images
# are robust for these models, and AutoAttack stops on an image once it is broken.
SUITE_PASSES = 1 + 1 + 20 + 30
AUTOATTACK_PASSES = 100 + 900 + 900 + 5000 / 3
ROBUST_SHARE = 0.5


def flops_per_image(name: str) -> float:
    """Forward plus backward FLOPs of one 3x32x32 image."""
    model = create_model(name, 10)
    x = torch.rand(1, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    scale = {"resnet18": 1.0}
    scale["wrn34_10"] = flops_per_image("wrn34_10") / flops_per_image("resnet18")
    print(f"FLOPs per image, forward+backward: wrn34_10 = {scale['wrn34_10']:.2f} x resnet18")
    print("recipe                        train GPU-h  checkpoints  eval GPU-h  per seed  "
          f"x {args.seeds} seeds")
    total = 0.0
    for recipe in ("cifar10_resnet18_at", "cifar10_resnet18_at_sar_wa", "cifar10_wrn34_at",
                   "cifar10_wrn34_at_sar_wa"):
        config = load_config(recipe)
        factor = scale[config.model.name]
        images = round(50_000 * (1 - config.data.val_fraction))
        step = RESNET18_STEP["AT+SAR" if config.sar.enabled else "AT"] / factor
        pgd_steps = RESNET18_PGD20 * 20 / factor  # image-steps per second
        validation = config.validation.n * (config.validation.pgd_steps + 1) / pgd_steps
        train = config.optim.epochs * (images / step + validation)
        checkpoints = 2 if config.averaging.kind != "none" else 1
        passes = SUITE_PASSES + ROBUST_SHARE * AUTOATTACK_PASSES
        evaluation = checkpoints * TEST_IMAGES * passes / pgd_steps
        per_seed = (train + evaluation) / 3600
        total += per_seed * args.seeds
        print(f"{recipe:29} {train / 3600:11.2f}  {checkpoints:11d}  "
              f"{evaluation / 3600:10.2f}  {per_seed:8.2f}  {per_seed * args.seeds:9.1f}")
    print(f"the study (the four recipes, {args.seeds} seeds): {total:.0f} GPU-hours on H100s")


if __name__ == "__main__":
    main()
