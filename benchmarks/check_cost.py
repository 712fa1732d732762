"""What the gradient-masking self-checks cost beside the attacks they check.

    python benchmarks/check_cost.py [--n 50]

Evaluates the natural CIFAR-10 ResNet-18 that ships with pyautoattack (`specrobust models
--pretrained`) on the first n images of CIFAR-10's test set (or on random 32x32 images where
CIFAR-10 is not present: the cost does not depend on the pixels), with the self-checks on and
off, for a cheap attack list and the paper's PGD-20, side by side in one run, and prints the
seconds and their ratio. The rule (specrobust/evaluation/checks.py) keeps the checks' gradient
passes within the suite's own.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import specrobust
from specrobust.errors import SpecRobustError


def _images(n: int):
    from specrobust.data import load_dataset

    try:
        test = load_dataset("cifar10").test
        return test.as_float()[:n], test.labels[:n], "CIFAR-10 test images"
    except SpecRobustError:
        generator = torch.Generator().manual_seed(0)
        return (torch.rand(n, 3, 32, 32, generator=generator),
                torch.randint(0, 10, (n,), generator=generator), "random 32x32 images")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    model = specrobust.resolve("autoattack-natural-resnet18").model
    images, labels, what = _images(args.n)
    print(f"natural ResNet-18, {args.n} {what}; {_cpu()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print("| attacks | checks off (s) | checks on (s) | ratio |")
    print("|---|---:|---:|---:|")
    for attacks in ("clean,fgsm", "clean,pgd20"):
        seconds = {}
        for checks in (False, True):
            started = time.perf_counter()
            specrobust.evaluate(model, images, labels, attacks=attacks, checks=checks,
                                progress=False)
            seconds[checks] = time.perf_counter() - started
        print(f"| {attacks} | {seconds[False]:.1f} | {seconds[True]:.1f} | "
              f"{seconds[True] / seconds[False]:.2f}x |")


if __name__ == "__main__":
    main()
