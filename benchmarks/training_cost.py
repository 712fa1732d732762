"""Training step cost: PGD-10 AT, AT+SAR, TRADES, TRADES+SAR and one clean forward+backward,
measured side by side in one run with the loop's own step function.

    python benchmarks/training_cost.py [--model cnn_small] [--shape 1,28,28] [--steps 10]
    python benchmarks/training_cost.py --model resnet18 --shape 3,32,32 --device cuda   # GPU

SAR needs one extra clean forward pass with PGD-AT (the authors' way) and none with TRADES,
whose loss already has the clean logits; so SAR's overhead over AT should be close to a clean
forward (plus its backward), and about zero over TRADES. Images are random: the cost of a step
does not depend on what the pixels show. Times are medians over --repeats rounds of --iters
steps, methods interleaved so that machine noise hits all of them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time

import torch
from torch.nn import functional as F

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
    args = parser.parse_args()

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
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 \
        else contextlib.nullcontext
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

    where = torch.cuda.get_device_name() if cuda else (platform.processor() or "cpu")
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


if __name__ == "__main__":
    main()
