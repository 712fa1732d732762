"""Training step cost: PGD-10 AT, AT+SAR, TRADES, TRADES+SAR and one clean forward+backward,
measured side by side in one run with the loop's own step function.

    python benchmarks/training_cost.py [--model cnn_small] [--shape 1,28,28] [--steps 10]
    python benchmarks/training_cost.py --model resnet18 --shape 3,32,32 --device cuda   # GPU
    python benchmarks/training_cost.py --model resnet18 --shape 3,32,32 --variants      # what pays

--variants times PGD-AT and AT+SAR in every variant of the step that might pay, beside the plain
eager fp32 step: bf16 autocast, `torch.compile` of the model (the attack's passes and the
update's), and on CUDA `torch.compile(mode="reduce-overhead")`, which replays the compiled
passes as CUDA graphs (a launch-bound step's remedy). Each variant's update is also checked
against the eager fp32 one from the same batch, weights and attack seed: the cosine between
their gradients of the weights must be at least the cosine between two eager fp32 gradients
whose attacks start from different random points (the step's own noise), or the variant is
marked as changing the result.

SAR needs one extra clean forward pass with PGD-AT (the authors' way) and none with TRADES,
whose loss already has the clean logits; so SAR's overhead over AT should be close to a clean
forward (plus its backward), and about zero over TRADES. Images are random: the cost of a step
does not depend on what the pixels show. Times are medians over --repeats rounds of --iters
steps, methods interleaved so that machine noise hits all of them alike.
"""

from __future__ import annotations

import argparse
import copy
import functools
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from specrobust.machine import autocast as precision_autocast
from specrobust.models import create_model
from specrobust.training.loop import _train_step
from specrobust.training.objectives import PGDAT, TRADES, StepContext
from specrobust.training.regularizers import SAR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cnn_small")
    parser.add_argument("--shape", default="1,28,28", help="C,H,W of the images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of the training attack")
    parser.add_argument("--iters", type=int, default=5, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-bf16", action="store_true", help="CUDA: no bf16 autocast")
    parser.add_argument("--variants", action="store_true",
                        help="time AT and AT+SAR in each variant of the step beside eager fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variants:
        variants(args)
        return

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    shape = tuple(int(s) for s in args.shape.split(","))
    torch.manual_seed(0)
    model = create_model(args.model, 10, shape[0]).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch_size, *shape, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    bf16 = cuda and not args.no_bf16
    autocast = functools.partial(precision_autocast, "bf16" if bf16 else "fp32", device)
    ctx = StepContext(epoch=1, eps=8 / 255, alpha=2 / 255, steps=args.steps,
                      generator=torch.Generator(device=device).manual_seed(0))
    sar = SAR(lam=0.1, start_epoch=0)

    def clean_step():
        with autocast():
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    at = f"AT (PGD-{args.steps})"
    methods = {
        "clean forward+backward": clean_step,
        at: lambda: _train_step(model, model, PGDAT(), None, None, optimizer, x, y, ctx, autocast),
        "AT + SAR": lambda: _train_step(model, model, PGDAT(), sar, None, optimizer, x, y, ctx,
                                        autocast),
        "TRADES": lambda: _train_step(model, model, TRADES(), None, None, optimizer, x, y, ctx,
                                      autocast),
        "TRADES + SAR": lambda: _train_step(model, model, TRADES(), sar, None, optimizer, x, y,
                                            ctx, autocast),
    }
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    model.train()
    for method in methods.values():  # warm-up (cudnn autotuning, allocator)
        method()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, method in methods.items():
            synchronize()
            start = time.perf_counter()
            for _ in range(args.iters):
                method()
            synchronize()
            times[name].append((time.perf_counter() - start) / args.iters)
    step = {name: statistics.median(values) for name, values in times.items()}

    where = _where(device)
    print(f"{args.model}, images {shape}, batch {args.batch_size}, PGD-{args.steps} training "
          f"attack, device {device} ({where}), bf16 {bf16}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; median of {args.repeats} x {args.iters} steps")
    print(f"{'step':<24} {'ms/step':>9} {'images/s':>10}")
    for name, seconds in step.items():
        print(f"{name:<24} {1000 * seconds:>9.1f} {args.batch_size / seconds:>10.0f}")
    clean = step["clean forward+backward"]
    sar_over_at = step["AT + SAR"] - step[at]
    sar_over_trades = step["TRADES + SAR"] - step["TRADES"]
    print(f"SAR overhead over AT:     {1000 * sar_over_at:7.1f} ms = {sar_over_at / clean:.2f} x "
          f"one clean forward+backward ({1000 * clean:.1f} ms)")
    print(f"SAR overhead over TRADES: {1000 * sar_over_trades:7.1f} ms = "
          f"{sar_over_trades / clean:.2f} x one clean forward+backward; "
          f"{100 * sar_over_trades / step['TRADES']:.1f}% of a TRADES step")


def _where(device: torch.device) -> str:
    return torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor()
                                                                          or "cpu")


def variants(args) -> None:
    """Every variant's AT and AT+SAR steps, timed in turns, and its gradient against eager fp32."""
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    shape = tuple(int(s) for s in args.shape.split(","))
    torch.manual_seed(0)
    initial = create_model(args.model, 10, shape[0]).to(device)
    layout = torch.channels_last if cuda else torch.contiguous_format  # as the loop does
    initial = initial.to(memory_format=layout)
    if cuda:
        torch.backends.cudnn.benchmark = True
    x = torch.rand(args.batch_size, *shape, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    sar = SAR(lam=0.1, start_epoch=0)

    kinds = {"eager": None, "torch.compile": "default"}
    if cuda:
        kinds["compile, CUDA graphs"] = "reduce-overhead"
    steps = {}
    for kind, mode in kinds.items():
        for precision in ("fp32", "bf16"):
            model = copy.deepcopy(initial)
            forward = model if mode is None else torch.compile(model, mode=mode)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                        weight_decay=5e-4)
            for method, regularizer in (("AT", None), ("AT+SAR", sar)):
                steps[(method, kind, precision)] = (model, forward, optimizer, regularizer,
                                                    functools.partial(precision_autocast,
                                                                      precision, device))

    def context(seed):
        return StepContext(epoch=1, eps=8 / 255, alpha=2 / 255, steps=args.steps,
                           generator=torch.Generator(device=device).manual_seed(seed))

    def run(key, seed=0):
        model, forward, optimizer, regularizer, autocast = steps[key]
        # The compiled module attacks too, as in the loop: ten of a PGD-10 step's 11 passes.
        return _train_step(forward, forward, PGDAT(), regularizer, None, optimizer, x, y,
                           context(seed), autocast)

    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    gradients, first, failed = {}, {}, {}
    for key in list(steps):  # the first call compiles (and captures graphs): its time apart
        synchronize()
        start = time.perf_counter()
        try:
            gradients[key] = _gradient(initial, key, steps, x, y, context(1))
        except Exception as error:  # a variant this torch cannot build: say so, time the rest
            if key[1] == "eager" and key[2] == "fp32":
                raise
            failed[key] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            del steps[key]
            continue
        synchronize()
        first[key] = time.perf_counter() - start
    # The tolerance: how far the update moves when only the attack's random start changes.
    noise = {method: _cosine(gradients[(method, "eager", "fp32")],
                             _gradient(initial, (method, "eager", "fp32"), steps, x, y,
                                       context(2)))
             for method in ("AT", "AT+SAR")}
    for model, *_ in steps.values():
        model.train()
    for key in steps:  # warm-up: recompilation for the modes the loop uses, cudnn autotuning
        for _ in range(2):
            run(key)
    times: dict = {key: [] for key in steps}
    keys = list(steps)
    for repeat in range(args.repeats):
        shift = repeat % len(keys)
        for key in keys[shift:] + keys[:shift]:
            synchronize()
            start = time.perf_counter()
            for _ in range(args.iters):
                run(key)
            synchronize()
            times[key].append((time.perf_counter() - start) / args.iters)
    step = {key: statistics.median(values) for key, values in times.items()}

    print(f"{args.model}, images {shape}, batch {args.batch_size}, PGD-{args.steps} training "
          f"attack, device {device} ({_where(device)}), torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; median of {args.repeats} x {args.iters} steps, variants "
          f"in turns")
    print("gradient cosine against eager fp32 on one batch; the step's own noise (another "
          "random start): " + ", ".join(f"{method} {value:.4f}" for method, value in noise.items()))
    print(f"{'method':<8} {'variant':<22} {'precision':<9} {'ms/step':>9} {'images/s':>9} "
          f"{'vs eager fp32':>14} {'cosine':>8} {'first step s':>13}")
    for key in keys:
        method, kind, precision = key
        reference = step[(method, "eager", "fp32")]
        cosine = _cosine(gradients[key], gradients[(method, "eager", "fp32")])
        verdict = "" if cosine >= noise[method] else "  changes the result"
        print(f"{method:<8} {kind:<22} {precision:<9} {1000 * step[key]:>9.1f} "
              f"{args.batch_size / step[key]:>9.0f} {reference / step[key]:>13.2f}x "
              f"{cosine:>8.4f} {first[key]:>13.1f}{verdict}")
    for (method, kind, precision), error in failed.items():
        print(f"{method:<8} {kind:<22} {precision:<9} failed: {error}")


def _gradient(initial, key, steps, x, y, ctx) -> torch.Tensor:
    """The gradient of one update from the initial weights (the variant's own weights untouched)."""
    model, forward, _, regularizer, autocast = steps[key]
    saved = copy.deepcopy(model.state_dict())
    model.load_state_dict(initial.state_dict())
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # the gradient, and no step
    _train_step(forward, forward, PGDAT(), regularizer, None, frozen, x, y, ctx, autocast)
    gradient = torch.cat([p.grad.detach().flatten().double() for p in model.parameters()])
    model.load_state_dict(saved)
    model.zero_grad(set_to_none=True)
    return gradient


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    # In float64 (the gradients are): fp32 sums over millions of terms drift.
    return float(F.cosine_similarity(a, b, dim=0))


if __name__ == "__main__":
    main()
