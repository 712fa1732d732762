"""Loader overhead: one augmented epoch of Fashion-MNIST train through `DeviceLoader`, next to
one forward+backward epoch of `cnn_small` on the same batches, measured side by side in one run.

    python benchmarks/loader_overhead.py [--batch-size 128] [--repeats 3] [--limit N]

Prints both times (best of the repeats) and the loader's share. The loader does everything a
training epoch asks of it: seeded shuffling, uint8 -> float, random crop with padding, flips.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from specrobust.data import DeviceLoader, default_augment, load_dataset
from specrobust.data.splits import ImageSplit
from specrobust.models import create_model


def loader_epoch(loader: DeviceLoader) -> float:
    start = time.perf_counter()
    for _batch in loader:
        pass  # the loader's work happens in producing the batch
    return time.perf_counter() - start


def model_epoch(model, batches, optimizer) -> float:
    start = time.perf_counter()
    for images, labels in batches:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    args = parser.parse_args()

    dataset = load_dataset("fashion-mnist")
    train = dataset.train
    if args.limit:
        train = ImageSplit(train.images[: args.limit], train.labels[: args.limit])
    loader = DeviceLoader(train, args.batch_size, shuffle=True, drop_last=True,
                          augment=default_augment(dataset.info), seed=0)
    model = create_model("cnn_small", 10, in_channels=1).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = list(loader)  # the model timing sees pre-made batches: no loader cost inside

    loader_times, model_times = [], []
    for _ in range(args.repeats):
        loader_times.append(loader_epoch(loader))
        model_times.append(model_epoch(model, batches, optimizer))
    loader_s, model_s = min(loader_times), min(model_times)

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"Fashion-MNIST train: {len(train)} images, batch {args.batch_size}, augment "
          f"{default_augment(dataset.info)}")
    print(f"loader epoch (shuffle + crop + flip):     {loader_s:8.3f} s")
    print(f"cnn_small forward+backward epoch:          {model_s:8.3f} s")
    print(f"loader / model ratio:                     {loader_s / model_s:8.3f} "
          f"({100 * loader_s / (loader_s + model_s):.1f}% of a natural-training epoch; an "
          f"adversarial-training epoch does ~11x the model work)")


if __name__ == "__main__":
    main()
