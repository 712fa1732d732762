"""Why AT+WA collapsed on Fashion-MNIST: weight averaging, or the batch-norm statistics?

    python benchmarks/swa_batchnorm.py [RUN_DIR] [--n 500] [--eps 0.1]

Takes a finished AT run with SWA (default: the Fashion-MNIST replication's first AT seed 0 run,
whose averaged model got clean statistics) and measures clean and PGD-20 accuracy (step eps/4)
on the first n test images for: the raw model; the averaged model as trained (batch-norm
statistics recomputed on clean training images, swa_utils' way); the averaged weights with the
raw model's statistics; the averaged weights with statistics recomputed on PGD-5 training
images; the raw model with statistics recomputed on clean images. If only the clean-statistics
variants collapse, the statistics are the cause (see averaging.bn_inputs in
specrobust/config.py).

The default run's checkpoints are not kept (its results are in
benchmarks/results/swa_batchnorm_fmnist.txt). To measure again, train one with clean
statistics: `specrobust train replication/fmnist_cnn_at --set
averaging.bn_inputs=clean --out RUN`, then pass RUN.
"""

import argparse
import copy
import time

import torch

from specrobust.attacks import pgd
from specrobust.data import load_dataset
from specrobust.loading import load_model


def accuracy(model, x, y, eps):
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    x_adv = pgd(model, x, y, eps, eps / 4, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    return f"clean {100 * clean:5.1f}%  PGD-20 {100 * robust:5.1f}%"


def statistics_of(model):
    return {k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def recompute_statistics(model, images, batch_size=128):
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain mean over all batches, as update_bn does
    model.train()
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            model(images[i:i + batch_size])
    return model.eval()


def pgd5_images(model, x, y, eps, batch_size=256):
    """PGD-5 (step eps/2, seeded) images of x: the inputs statistics are recomputed on."""
    generator = torch.Generator().manual_seed(1)
    return torch.cat([pgd(model, x[i:i + batch_size], y[i:i + batch_size], eps, eps / 2, 5,
                          generator=generator) for i in range(0, len(x), batch_size)])


def measurement_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options this script shares with sar_batchnorm.py."""
    parser.add_argument("--n", type=int, default=500, help="test images measured")
    parser.add_argument("--train-n", type=int, default=10000,
                        help="training images the statistics are recomputed on")
    parser.add_argument("--eps", type=float, default=0.1)
    return parser


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?",
                        default="benchmarks/replication/fmnist-clean-bn/runs/at-seed0")
    args = measurement_arguments(parser).parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    loaded = load_model(args.run, which="best")
    raw = loaded.model.eval()
    averaged = load_model(args.run, which="best_averaged").model.eval()
    data = load_dataset(loaded.dataset or "fashion-mnist")
    x, y = data.test.as_float()[:args.n], data.test.labels[:args.n]
    train_x = data.train.as_float()[:args.train_n]
    train_y = data.train.labels[:args.train_n]

    def row(label, model):
        print(f"{label:<52} {accuracy(model, x, y, args.eps)}", flush=True)

    print(f"{args.run}, first {args.n} test images, eps {args.eps}")
    row("raw model (best)", raw)
    row("averaged (best_averaged), statistics on clean", averaged)
    swapped = copy.deepcopy(averaged)
    swapped.load_state_dict({**swapped.state_dict(), **statistics_of(raw)})
    row("averaged weights, the raw model's statistics", swapped)
    adversarial = pgd5_images(averaged, train_x, train_y, args.eps)
    row("averaged weights, statistics on PGD-5 images", recompute_statistics(averaged, adversarial))
    row("raw weights, statistics on clean images", recompute_statistics(raw, train_x))
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
