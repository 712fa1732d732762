"""Does SAR's extra clean forward pass cost robustness through the batch-norm statistics?

    python benchmarks/sar_batchnorm.py RUN [RUN ...] [--n 500] [--eps 0.1] [--which best]

SAR, as the authors run it, does its clean forward pass in training mode, so the running
batch-norm statistics used at test time become a blend of clean and adversarial batches (the
AT model's are adversarial only). On Fashion-MNIST clean statistics wipe out an AT model's
robustness (benchmarks/swa_batchnorm.py), so the blend may explain a robustness loss there.
For each run this measures clean and PGD-20 accuracy (step eps/4, first n test images) of the
model as trained and with its statistics recomputed on PGD-5 images of training data, and on
clean training data. If AT+SAR gains from PGD-5 statistics while AT does not, the blend is
(part of) the cost.
"""

import argparse
import time

import torch

from specrobust.data import load_dataset
from specrobust.loading import load_model
from swa_batchnorm import accuracy, measurement_arguments, pgd5_images, recompute_statistics


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--which", default="best")
    args = measurement_arguments(parser).parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    for run in args.runs:
        loaded = load_model(run, which=args.which)
        model = loaded.model.eval()
        data = load_dataset(loaded.dataset or "fashion-mnist")
        x, y = data.test.as_float()[:args.n], data.test.labels[:args.n]
        train_x = data.train.as_float()[:args.train_n]
        train_y = data.train.labels[:args.train_n]
        adversarial = pgd5_images(model, train_x, train_y, args.eps)
        print(f"{run} ({args.which}), first {args.n} test images, eps {args.eps}")
        for label, variant in (("as trained", model),
                               ("statistics on PGD-5 images", recompute_statistics(model,
                                                                                   adversarial)),
                               ("statistics on clean images", recompute_statistics(model,
                                                                                   train_x))):
            print(f"  {label:<30} {accuracy(variant, x, y, args.eps)}", flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
