"""The paper's Table 1, natural row, on a model nobody here trained: the natural CIFAR-10
ResNet-18 that ships with pyautoattack (``autoattack-natural-resnet18``).

    ../shared/tools/get-cifar10 ~/.cache/specrobust          # the official binary files
    python benchmarks/table1_pretrained.py [--threads 1] [--pgd-n 1000]

Clean accuracy on low-pass filtered inputs over the whole CIFAR-10 test set (10,000 images;
low-pass b keeps the centred b x b block of each channel's centred spectrum, as in the paper),
and PGD-20 accuracy on the first ``--pgd-n`` test images through ``specrobust analyze --suite
filter`` (its analysis directory is resumable). Prints the table with the paper's figures
beside it; the output is kept in benchmarks/results/table1_autoattack_resnet18.txt.
"""

from __future__ import annotations

import argparse
import time

import torch

from specrobust import fourier
from specrobust.analysis.job import AnalysisJob, run_analysis_job
from specrobust.data import load_dataset
from specrobust.loading import resolve

NAME = "autoattack-natural-resnet18"
PAPER = {  # Table 1 of the paper, natural ResNet-18 (%), bandwidths 32, 28, 24, 20, 16
    "clean": [94.56, 92.92, 90.75, 80.70, 50.72],
    "pgd20": [0.00, 2.17, 23.15, 39.25, 32.15],
}
BANDWIDTHS = [32, 28, 24, 20, 16, 12, 8, 4]


def clean_sweep(model, images, labels, batch_size: int = 500) -> list[float]:
    accuracies = []
    for b in BANDWIDTHS:
        mask = fourier.square_lowpass_mask((32, 32), b, images.device)
        correct = 0
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = fourier.filter(images[start:start + batch_size].float().div(255), mask)
                correct += (model(batch).argmax(1) == labels[start:start + batch_size]).sum()
        accuracies.append(100 * int(correct) / len(images))
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--pgd-n", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/table1-autoattack-resnet18",
                        help="analysis directory of the PGD-20 sweep")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = resolve(NAME)
    test = load_dataset("cifar10").test
    started = time.perf_counter()
    clean = clean_sweep(loaded.model, test.images, test.labels)
    clean_seconds = time.perf_counter() - started
    started = time.perf_counter()
    directory = run_analysis_job(AnalysisJob(source=NAME, parts="filter", n=args.pgd_n,
                                             out=args.out, progress=False))
    pgd_seconds = time.perf_counter() - started
    import json

    low = json.loads((directory / "filter.json").read_text())["lowpass"]
    pgd = dict(zip(low["bandwidths"], low["pgd20"], strict=True))
    low_clean = dict(zip(low["bandwidths"], low["clean"], strict=True))
    print(f"{NAME} ({loaded.path}), CIFAR-10 test set, L-inf eps 8/255 for PGD-20")
    print(f"clean sweep: {len(test)} images, {clean_seconds:.0f} s; PGD-20 sweep: first "
          f"{args.pgd_n} images, {pgd_seconds:.0f} s (0 if reused)")
    print()
    print("| input | " + " | ".join(f"b = {b}" for b in BANDWIDTHS) + " |")
    print("|---|" + "---:|" * len(BANDWIDTHS))
    print(f"| clean, all {len(test)} (here) | " + " | ".join(f"{a:.2f}" for a in clean) + " |")
    print("| clean (paper) | " + " | ".join(f"{a:.2f}" for a in PAPER["clean"]) + " |")
    print(f"| clean, first {args.pgd_n} (here) | " +
          " | ".join(f"{100 * low_clean[b]:.2f}" if b in low_clean else "" for b in BANDWIDTHS)
          + " |")
    print(f"| PGD-20, first {args.pgd_n} (here) | " +
          " | ".join(f"{100 * pgd[b]:.2f}" if b in pgd else "" for b in BANDWIDTHS) + " |")
    print("| PGD-20 (paper) | " + " | ".join(f"{a:.2f}" for a in PAPER["pgd20"]) + " |")


if __name__ == "__main__":
    main()
