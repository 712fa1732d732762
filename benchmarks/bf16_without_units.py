"""What bf16 autocast costs on a CPU without bf16 units, measured on this one.

A CPU with AVX-512 BF16 or AMX runs bf16 convolutions in hardware; one with only AVX2 (some of
the AMD EPYC machines specrobust runs on) emulates them. oneDNN, which runs PyTorch's CPU
convolutions, can be held to an instruction set (``ONEDNN_MAX_CPU_ISA``), so both cases are
timed side by side here: a ResNet-18 PGD step (forward and backward, CIFAR-shaped images) in
fp32 and under bf16 autocast, first with the CPU's own instruction set, then with oneDNN held
to AVX2. Each setting runs in its own process; the steps take turns and each time is the best
of --repeats.

    python benchmarks/bf16_without_units.py [--batch 64] [--repeats 5]

specrobust uses the measured factor in the warning it prints when bf16 is asked for on such a
CPU (``specrobust.machine``); `benchmarks/RESULTS.md` records it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def _child(batch: int, repeats: int) -> dict:
    import torch

    from specrobust.machine import autocast
    from specrobust.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", 10, 3).eval()
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for _ in range(repeats):
        for precision in best:
            delta = torch.zeros_like(x, requires_grad=True)
            started = time.perf_counter()
            with autocast(precision, "cpu"):
                loss = torch.nn.functional.cross_entropy(model(x + delta), y)
            loss.backward()
            best[precision] = min(best[precision], time.perf_counter() - started)
    return {k: batch / v for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.batch, args.repeats)))
        return
    from specrobust.machine import cpu_has_bf16_units

    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"bf16 units: {cpu_has_bf16_units()}")
    print(f"ResNet-18 PGD step (forward + backward), batch {args.batch}, images/s, best of "
          f"{args.repeats}")
    print("| oneDNN instruction set | fp32 | bf16 autocast | bf16 / fp32 |")
    print("|---|---|---|---|")
    for label, isa in (("the CPU's own", None), ("held to AVX2", "AVX2")):
        env = dict(os.environ)
        if isa:
            env["ONEDNN_MAX_CPU_ISA"] = isa
        done = subprocess.run([sys.executable, __file__, "--child", "--batch", str(args.batch),
                               "--repeats", str(args.repeats)], env=env, check=True,
                              capture_output=True, text=True)
        rates = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {label} | {rates['fp32']:.1f} | {rates['bf16']:.1f} | "
              f"{rates['bf16'] / rates['fp32']:.3f}x |", flush=True)


if __name__ == "__main__":
    main()
