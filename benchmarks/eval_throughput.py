"""PGD evaluation throughput and agreement: specrobust's PGD next to torchattacks' PGD and
pyautoattack's APGD-CE, on the same model, images, batch size and device, in one run.

    pip install --no-deps torchattacks==3.5.1      # it imports without torchvision
    python benchmarks/eval_throughput.py [--checkpoint RUN_OR_FILE] [--steps 20] [--n 1000]

Without a checkpoint it trains a model (--model, cnn_small by default) naturally on
Fashion-MNIST for one epoch and attacks it at a small eps (0.02 by default) where accuracies
are neither 0 nor 100%, so agreement means something. Every method takes the same number of
gradient steps (APGD-CE's n_iter = steps, one restart). Times are the best of --repeats,
methods interleaved so machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.nn import functional as F

from specrobust.attacks import pgd
from specrobust.data import DeviceLoader, load_dataset
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


def methods(model, eps, alpha, steps, keep_best_too):
    import torchattacks
    from pyautoattack.autopgd_base import APGDAttack

    apgd = APGDAttack(model, n_iter=steps, norm="Linf", n_restarts=1, eps=eps, loss="ce",
                      seed=0, device=None)
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    found = {
        "specrobust pgd": lambda x, y: pgd(model, x, y, eps, alpha, steps),
        "torchattacks PGD": lambda x, y: ta(x, y),
        "pyautoattack APGD-CE": lambda x, y: apgd.perturb(x, y),
    }
    if keep_best_too:
        found["specrobust pgd (keep_best=False)"] = lambda x, y: pgd(model, x, y, eps, alpha, steps,
                                                                     keep_best=False)
    return found


def run(attack, x, y, batch_size, synchronize):
    adversarial = []
    synchronize()
    start = time.perf_counter()
    for i in range(0, len(x), batch_size):
        adversarial.append(attack(x[i:i + batch_size], y[i:i + batch_size]))
    synchronize()
    return time.perf_counter() - start, torch.cat(adversarial)


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
    args = parser.parse_args()

    device = torch.device(args.device)
    eps = parse_fraction(args.eps, "eps")
    alpha = eps / 4
    if args.checkpoint:
        from specrobust.checkpoint import load_model

        loaded = load_model(args.checkpoint)
        model, dataset = loaded.model.to(device), load_dataset(loaded.dataset)
    else:
        dataset = load_dataset(args.dataset)
        model = quick_natural_model(dataset, device, args.model)
    test = dataset.test.take(torch.arange(args.n))
    x, y = test.as_float().to(device), test.labels.to(device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    attacks = methods(model, eps, alpha, args.steps, args.keep_best_too)
    best = {name: float("inf") for name in attacks}
    accuracy = {}
    for _ in range(args.repeats):
        for name, attack in attacks.items():
            seconds, x_adv = run(attack, x, y, args.batch_size, synchronize)
            best[name] = min(best[name], seconds)
            with torch.no_grad():
                accuracy[name] = (model(x_adv).argmax(1) == y).float().mean().item()
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()

    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; {args.n} images of {dataset.info.name}, batch "
          f"{args.batch_size}, eps {args.eps}, {args.steps} gradient steps, best of "
          f"{args.repeats}; clean accuracy {clean:.3f}")
    reference = best["torchattacks PGD"]
    print(f"{'method':<34} {'images/s':>10} {'vs torchattacks':>16} {'accuracy':>9}")
    for method in attacks:
        print(f"{method:<34} {args.n / best[method]:>10.0f} {reference / best[method]:>15.2f}x "
              f"{accuracy[method]:>9.3f}")


if __name__ == "__main__":
    main()
