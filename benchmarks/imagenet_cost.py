"""What each analysis part and the evaluation's attacks cost for an ImageNet-sized model, so a
user can plan: a ResNet-50 (torchvision's layout, random weights: cost does not depend on the
weights) at 3 x 224 x 224, on the CPU this runs on.

    python benchmarks/imagenet_cost.py [--n 8] [--threads 2]

Each part runs once on n random images at its defaults for 224-pixel images (the heat map's
32 x 32 grid of 10 images is timed on an 8 x 8 grid, every 4th point of it, and scaled by the
number of grid points, its cost being one forward pass per image and point); PGD-20 is timed in
fp32 and under bf16 autocast. Seconds per image are the part's seconds over n (the heat map's
over its own 10 images).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from specrobust.analysis import REGISTRY
    from specrobust.analysis.context import AnalysisContext
    from specrobust.analysis.heatmap import default_n, default_stride
    from specrobust.attacks import folded_for_attack, pgd
    from specrobust.attacks.pgd import default_step
    from specrobust.machine import autocast, cpu_has_bf16_units
    from specrobust.models import create_model

    torch.manual_seed(0)
    model = create_model("imagenet_resnet50", 1000).eval()
    images = torch.rand(args.n, 3, 224, 224)
    labels = torch.randint(0, 1000, (args.n,))
    eps = 4 / 255
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} threads; bf16 units: {cpu_has_bf16_units()}; torch {torch.__version__}")
    print(f"ResNet-50 (imagenet_resnet50), 3x224x224, {args.n} images, L-inf eps 4/255\n")
    print("| what | seconds | seconds per image |")
    print("|---|---:|---:|")
    attacked = folded_for_attack(model)  # what `specrobust eval` attacks
    for precision in ("fp32", "bf16"):
        started = time.perf_counter()
        with autocast(precision, "cpu"):
            pgd(attacked, images, labels, eps, default_step(eps), 20)
        seconds = time.perf_counter() - started
        print(f"| PGD-20 as `eval` runs it ({precision}) | {seconds:.1f} | "
              f"{seconds / args.n:.2f} |", flush=True)

    shape = (3, 224, 224)
    context = AnalysisContext(model, images, labels, eps, batch_size=args.n)
    for name, part in REGISTRY.items():
        options = {}
        if name == "heatmap":
            grid = default_stride(shape)
            options = {"n": default_n(shape), "stride": grid * 4, "norm": None}
        started = time.perf_counter()
        part.compute(context, **options)
        seconds = time.perf_counter() - started
        if name == "heatmap":
            full = seconds * 16  # 32 x 32 points against the 8 x 8 timed
            print(f"| heatmap, {224 // grid} x {224 // grid} grid of {default_n(shape)} images "
                  f"(scaled from 8 x 8) | {full:.0f} | {full / default_n(shape):.1f} |",
                  flush=True)
        else:
            note = " (re-uses filter's PGD-20 images)" if name == "spectra" else ""
            print(f"| {name}{note} | {seconds:.1f} | {seconds / args.n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
