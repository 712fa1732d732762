"""Where a PGD-AT epoch's time goes, and what the device-side design buys over a common loop.

    python benchmarks/training_loop.py [--images 5120] [--steps 10] [--repeats 3]

On the first --images Fashion-MNIST training images (batch 128, PGD-10, augmentation on), one
epoch each of, interleaved --repeats times (best time kept):

* specrobust: ``DeviceLoader`` (whole split as a tensor, crop/flip on the batch) and the training
  loop's own step (``_train_step`` with ``PGDAT``);
* model only: the same forward/backward passes with nothing else: per step, ``steps``
  forward+input-gradient passes in eval mode and one forward+backward+SGD step in train mode, on a
  batch made once. specrobust's time minus this is the share spent outside the model (loader,
  attack bookkeeping, projection, random starts);
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


def model_only_epoch(model, optimizer, x, y, n_batches, steps):
    """The passes a PGD-AT step must make, and nothing else."""
    for _ in range(n_batches):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        probe = x.clone().requires_grad_(True)
        for _ in range(steps):
            (grad,) = torch.autograd.grad(F.cross_entropy(model(probe), y), probe)
        for p in model.parameters():
            p.requires_grad_(True)
        model.train()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


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
    x0 = split.take(torch.arange(BATCH)).as_float()
    y0 = split.labels[:BATCH]

    ours = DeviceLoader(split, BATCH, shuffle=True, augment=augment, drop_last=True, seed=0)
    per_image = PerImageDataset(split.images, split.labels, augment.crop_padding, augment.hflip)
    methods = {
        "specrobust (DeviceLoader + loop step)":
            lambda epoch: specrobust_epoch(model, optimizer, ours, args.steps, epoch),
        "model forward/backward only":
            lambda epoch: model_only_epoch(model, optimizer, x0, y0, n_batches, args.steps),
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
    outside = 1 - best["model forward/backward only"] / reference
    print(f"share of specrobust's step spent outside the model's forward/backward: "
          f"{100 * outside:.1f}%")


if __name__ == "__main__":
    main()
