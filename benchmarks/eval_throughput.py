"""PGD evaluation throughput and agreement: specrobust's PGD next to torchattacks' PGD and
pyautoattack's APGD-CE, on the same model, images, batch size and device, in one run.

    pip install --no-deps torchattacks==3.5.1      # it imports without torchvision
    python benchmarks/eval_throughput.py [--checkpoint SOURCE] [--steps 20] [--n 1000]
    python benchmarks/eval_throughput.py --checkpoint autoattack-natural-resnet18 --n 128 \
        --batch-size 64 --eps 1/255 --cpu-variants        # ResNet-18 on CIFAR-10
    python benchmarks/eval_throughput.py --model preact_resnet18 --dataset cifar10 --untrained \
        --n 128 --batch-size 64 --cpu-variants            # PreAct ResNet-18, speed only

    python benchmarks/eval_throughput.py --checkpoint autoattack-natural-resnet18 --n 128 \
        --eps 1/255 --steps 10 --batch-sizes 16,32,64,128   # what the batch size changes

SOURCE is anything `specrobust eval` takes (a run, a checkpoint, a pretrained name). Without
one it trains a model (--model, cnn_small by default) naturally on Fashion-MNIST for one epoch
and attacks it at a small eps (0.02 by default) where accuracies are neither 0 nor 100%, so
agreement means something; `--untrained` keeps its random weights (speed only: the accuracies
of a random model say nothing). `--cpu-variants` adds what might pay on a CPU, each on the
copy `specrobust eval` attacks: bf16 autocast, `torch.compile` of the model, and both.

`--batch-sizes` times only what `specrobust eval` attacks (the folded copy, in fp32 and under
bf16 autocast) at each batch size, the sizes taking turns on every slice of images.

Every method takes the same number of gradient steps (APGD-CE's n_iter = steps, one
restart). Methods take turns on every batch and each batch's time is its best of --repeats, so
machine noise hits all alike.

"specrobust pgd" attacks the model as given; "BN folded (eval)" attacks the copy that
`specrobust eval` attacks (batch norm folded into the convolutions: the same function in eval
mode; on a CPU its weights are channels-last, see specrobust/attacks/folded.py), "BN folded,
NCHW" the same copy in the default layout. Accuracies are always judged by the model as given.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.nn import functional as F

from specrobust.attacks import folded_for_attack, pgd
from specrobust.data import DeviceLoader, load_dataset
from specrobust.machine import autocast
from specrobust.models import create_model
from specrobust.numbers import parse_fraction


def quick_natural_model(dataset, device, name):
    torch.manual_seed(0)
    channels = dataset.train.images.shape[1]
    model = create_model(name, len(dataset.class_names), channels).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for images, labels in DeviceLoader(dataset.train, 128, shuffle=True, drop_last=True,
                                       device=device):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return model.eval()


def methods(model, eps, alpha, steps, keep_best_too, cpu_variants=False):
    import torchattacks
    from pyautoattack.autopgd_base import APGDAttack

    apgd = APGDAttack(model, n_iter=steps, norm="Linf", n_restarts=1, eps=eps, loss="ce",
                      seed=0, device=None)
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    folded = folded_for_attack(model)  # channels-last weights on a CPU
    folded_nchw = folded_for_attack(model, channels_last=False)
    found = {
        "specrobust pgd": lambda x, y: pgd(model, x, y, eps, alpha, steps),
        "specrobust pgd, BN folded, NCHW": lambda x, y: pgd(folded_nchw, x, y, eps, alpha, steps),
        "specrobust pgd, BN folded (eval)": lambda x, y: pgd(folded, x, y, eps, alpha, steps),
        "torchattacks PGD": lambda x, y: ta(x, y),
        "pyautoattack APGD-CE": lambda x, y: apgd.perturb(x, y),
    }
    if keep_best_too:
        found["specrobust pgd (keep_best=False)"] = lambda x, y: pgd(model, x, y, eps, alpha, steps,
                                                                     keep_best=False)
    if cpu_variants:
        compiled = torch.compile(folded)
        found["specrobust pgd, BN folded, bf16 autocast"] = \
            _pgd_in("bf16", folded, eps, alpha, steps)
        found["specrobust pgd, BN folded, torch.compile"] = \
            _pgd_in("fp32", compiled, eps, alpha, steps)
        found["specrobust pgd, BN folded, torch.compile, bf16"] = \
            _pgd_in("bf16", compiled, eps, alpha, steps)
    return found


def _pgd_in(precision, model, eps, alpha, steps):
    """``pgd`` on ``model`` with its passes in ``precision`` (specrobust.machine)."""
    def attack(x, y):
        with autocast(precision, x.device):
            return pgd(model, x, y, eps, alpha, steps)
    return attack


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"


def timed(attack, x, y, synchronize):
    synchronize()
    start = time.perf_counter()
    x_adv = attack(x, y)
    synchronize()
    return time.perf_counter() - start, x_adv


def measure(attacks, x, y, batch_size, repeats, synchronize):
    """Per method: the sum over batches of each batch's best time over ``repeats``, and the
    adversarial images. Methods take turns on every batch (in a rotating order), so a burst of
    load from another process on a shared machine hits them alike instead of one method."""
    names = list(attacks)
    best = {name: [float("inf")] * len(range(0, len(x), batch_size)) for name in names}
    adversarial = {name: [None] * len(best[name]) for name in names}
    for repeat in range(repeats):
        for index, start in enumerate(range(0, len(x), batch_size)):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            shift = (repeat + index) % len(names)
            for name in names[shift:] + names[:shift]:
                seconds, adversarial[name][index] = timed(attacks[name], xb, yb, synchronize)
                best[name][index] = min(best[name][index], seconds)
    return ({name: sum(times) for name, times in best.items()},
            {name: torch.cat(batches) for name, batches in adversarial.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="run directory or checkpoint to attack")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", default="cnn_small", help="architecture of the quick model")
    parser.add_argument("--eps", default="0.02")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--keep-best-too", action="store_true",
                        help="also time specrobust's PGD without keeping the best iterate")
    parser.add_argument("--cpu-variants", action="store_true",
                        help="also time bf16 autocast and torch.compile of the folded copy")
    parser.add_argument("--untrained", action="store_true",
                        help="attack the quick model with its random weights (speed only)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--batch-sizes", help="comma list: time the evaluation path at each")
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    eps = parse_fraction(args.eps, "eps")
    alpha = eps / 4
    if args.checkpoint:
        from specrobust.loading import resolve

        loaded = resolve(args.checkpoint)
        model, dataset = loaded.model.to(device).eval(), load_dataset(loaded.dataset)
    elif args.untrained:
        dataset = load_dataset(args.dataset)
        torch.manual_seed(0)
        model = create_model(args.model, len(dataset.class_names),
                             dataset.train.images.shape[1]).to(device).eval()
    else:
        dataset = load_dataset(args.dataset)
        model = quick_natural_model(dataset, device, args.model)
    test = dataset.test.take(torch.arange(args.n))
    x, y = test.as_float().to(device), test.labels.to(device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    if args.batch_sizes:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
        batch_size_sweep(model, x, y, eps, alpha, args.steps, batch_sizes, args.repeats,
                         synchronize, f"{args.n} images of {dataset.info.name}")
        return
    attacks = methods(model, eps, alpha, args.steps, args.keep_best_too, args.cpu_variants)
    if args.cpu_variants:  # torch.compile compiles on first use: not in the timings
        for attack in attacks.values():
            attack(x[:args.batch_size], y[:args.batch_size])
    best, adversarial = measure(attacks, x, y, args.batch_size, args.repeats, synchronize)
    with torch.no_grad():
        accuracy = {name: (model(x_adv).argmax(1) == y).float().mean().item()
                    for name, x_adv in adversarial.items()}
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()

    print(f"device {device} ({_device_name(device)}), torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; {args.n} images of {dataset.info.name}, batch "
          f"{args.batch_size}, eps {args.eps}, {args.steps} gradient steps; per batch the "
          f"best of {args.repeats}, methods taking turns; clean accuracy {clean:.3f}")
    reference = best["torchattacks PGD"]
    print(f"{'method':<48} {'images/s':>10} {'vs torchattacks':>16} {'accuracy':>9}")
    for method in attacks:
        print(f"{method:<48} {args.n / best[method]:>10.1f} {reference / best[method]:>15.2f}x "
              f"{accuracy[method]:>9.3f}")


def batch_size_sweep(model, x, y, eps, alpha, steps, batch_sizes, repeats, synchronize, what):
    """Images/s of the evaluation path at each batch size, fp32 and bf16. The sizes take turns
    on every slice of max(batch_sizes) images, so that load from elsewhere hits them alike."""
    folded = folded_for_attack(model)
    slice_size = max(batch_sizes)
    best: dict = {}
    for precision in ("fp32", "bf16"):
        for size in batch_sizes:
            best[(precision, size)] = [float("inf")] * len(range(0, len(x), slice_size))
    keys = list(best)
    for precision, size in keys:  # warm-up: the allocator, oneDNN's kernels for each shape
        _pgd_in(precision, folded, eps, alpha, steps)(x[:size], y[:size])
    for repeat in range(repeats):
        for index, start in enumerate(range(0, len(x), slice_size)):
            shift = (repeat + index) % len(keys)
            for precision, size in keys[shift:] + keys[:shift]:
                run = _pgd_in(precision, folded, eps, alpha, steps)
                synchronize()
                began = time.perf_counter()
                for first in range(start, min(start + slice_size, len(x)), size):
                    run(x[first:first + size], y[first:first + size])
                synchronize()
                seconds = time.perf_counter() - began
                best[(precision, size)][index] = min(best[(precision, size)][index], seconds)
    device = x.device
    print(f"device {device} ({_device_name(device)}), torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; {what}, PGD-{steps} on the folded copy `specrobust eval` "
          f"attacks; per slice of {slice_size} images the best of {repeats}, sizes taking turns")
    reference = sum(best[("fp32", batch_sizes[0])])
    print(f"{'precision':<10} {'batch':>6} {'images/s':>10} "
          f"{'vs fp32 batch ' + str(batch_sizes[0]):>20}")
    for precision, size in keys:
        seconds = sum(best[(precision, size)])
        print(f"{precision:<10} {size:>6} {len(x) / seconds:>10.1f} {reference / seconds:>19.2f}x")


if __name__ == "__main__":
    main()
