"""Where a PGD-AT epoch's time goes, and what the device-side design buys over a common loop.

    python benchmarks/training_loop.py [--images 5120] [--steps 10] [--repeats 3]

On the first --images Fashion-MNIST training images (batch 128, PGD-10, augmentation on), one
epoch each of, interleaved --repeats times (best time kept):

* specrobust: ``DeviceLoader`` (whole split as a tensor, crop/flip on the batch) and the training
  loop's own step (``_train_step`` with ``PGDAT``);
* outside the model: the same loader and step with a linear model whose forward and backward
  cost next to nothing (one 784x10 matrix product): what remains is everything outside the
  model's forward/backward (loader, augmentation, random starts, projections, loss, optimizer
  bookkeeping). Its time over specrobust's is that share (subtracting two full-model timings
  instead would drown it in machine noise);
* reference: the loop as commonly written: ``torch.utils.data.DataLoader`` over a Dataset whose
  ``__getitem__`` pads, crops and flips one image at a time and converts it to float, the
  normalisation applied to each batch in the loop, and PGD written with clamps on the
  perturbation (torchattacks' formulation). Once with ``num_workers=0`` and once with 2 workers.
"""

from __future__ import annotations

import argparse
import platform
import time
from contextlib import nullcontext

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from specrobust.data import DeviceLoader, default_augment, load_dataset
from specrobust.models import create_model
from specrobust.training.loop import _train_step
from specrobust.training.objectives import PGDAT, StepContext

EPS, ALPHA, BATCH = 0.1, 0.025, 128


class PerImageDataset(Dataset):
    """The common way: one image at a time, transforms in Python."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, padding: int, hflip: bool):
        self.images, self.labels, self.padding, self.hflip = images, labels, padding, hflip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index].float() / 255
        padded = F.pad(image, (self.padding,) * 4)
        top, left = torch.randint(0, 2 * self.padding + 1, (2,)).tolist()
        image = padded[:, top:top + image.shape[1], left:left + image.shape[2]]
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, self.labels[index]


def reference_pgd(model, x, y, mean, std, steps):
    model.eval()
    delta = torch.empty_like(x).uniform_(-EPS, EPS)
    x_adv = (x + delta).clamp(0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model((x_adv - mean) / std), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + ALPHA * grad.sign()
        x_adv = (x + (x_adv - x).clamp(-EPS, EPS)).clamp(0, 1).detach()
    model.train()
    return x_adv


def reference_epoch(model, optimizer, loader, steps):
    mean, std = torch.tensor(0.286).view(1, 1, 1, 1), torch.tensor(0.353).view(1, 1, 1, 1)
    for x, y in loader:
        x_adv = reference_pgd(model, x, y, mean, std, steps)
        loss = F.cross_entropy(model((x_adv - mean) / std), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def specrobust_epoch(model, optimizer, loader, steps, epoch):
    objective = PGDAT()
    for step, (x, y) in enumerate(loader):
        ctx = StepContext(epoch, EPS, ALPHA, steps,
                          generator=torch.Generator().manual_seed(epoch * 100_000 + step))
        _train_step(model, model, objective, None, None, optimizer, x, y, ctx, nullcontext)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5120)
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of the training attack")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    dataset = load_dataset("fashion-mnist")
    split = dataset.train.take(torch.arange(args.images))
    augment = default_augment(dataset.info)
    n_batches = args.images // BATCH
    torch.manual_seed(0)
    model = create_model("cnn_small", 10, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    negligible = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
    negligible_optimizer = torch.optim.SGD(negligible.parameters(), lr=0.01, momentum=0.9)

    ours = DeviceLoader(split, BATCH, shuffle=True, augment=augment, drop_last=True, seed=0)
    per_image = PerImageDataset(split.images, split.labels, augment.crop_padding, augment.hflip)
    methods = {
        "specrobust (DeviceLoader + loop step)":
            lambda epoch: specrobust_epoch(model, optimizer, ours, args.steps, epoch),
        "outside the model (negligible model)":
            lambda epoch: specrobust_epoch(negligible, negligible_optimizer, ours, args.steps,
                                           epoch),
        "reference: DataLoader, 0 workers":
            lambda epoch: reference_epoch(model, optimizer, DataLoader(
                per_image, BATCH, shuffle=True, drop_last=True, num_workers=0), args.steps),
        "reference: DataLoader, 2 workers":
            lambda epoch: reference_epoch(model, optimizer, DataLoader(
                per_image, BATCH, shuffle=True, drop_last=True, num_workers=2,
                persistent_workers=False), args.steps),
    }
    best = {name: float("inf") for name in methods}
    for epoch in range(args.repeats):
        for name, run in methods.items():
            ours.set_epoch(epoch)
            start = time.perf_counter()
            run(epoch)
            best[name] = min(best[name], time.perf_counter() - start)

    print(f"cnn_small on {args.images} Fashion-MNIST images ({n_batches} steps of {BATCH}), "
          f"PGD-{args.steps} AT, crop+flip augmentation; {platform.machine()}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeats} "
          "epochs, methods interleaved")
    reference = best["specrobust (DeviceLoader + loop step)"]
    print(f"{'loop':<40} {'s/epoch':>8} {'ms/step':>8} {'vs specrobust':>14}")
    for name, seconds in best.items():
        print(f"{name:<40} {seconds:>8.2f} {1000 * seconds / n_batches:>8.1f} "
              f"{seconds / reference:>13.2f}x")
    outside = best["outside the model (negligible model)"] / reference
    print(f"share of specrobust's step spent outside the model's forward/backward: "
          f"{100 * outside:.1f}%")


if __name__ == "__main__":
    main()
