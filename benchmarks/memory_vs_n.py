"""Peak memory of `specrobust eval` and `specrobust analyze` against the number of test images,
at ImageNet's 224 pixels: both decode the images a batch at a time, so it should not grow.

    python benchmarks/memory_vs_n.py [--n 200,2000,20000] [--analyze-n 200,2000,20000]
                                     [--parts filter,spectra,...]

It writes a folder of random 224-px JPEG images (two classes, in a temporary directory) and a
small convolutional model as user code that returns its own weights, then runs each command in
a child process and reports the child's peak resident memory (``ru_maxrss``): `eval --attacks
clean,fgsm --no-checks` and `analyze --parts PARTS` (default: every part), batch 100; with
``--model resnet50``, ImageNet's ResNet-50 instead of the small model.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = '''import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 7, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                         nn.Flatten(), nn.Linear(128, 2))
'''

# ImageNet's ResNet-50 with a two-class head (the folder has two classes): the memory of a
# full-size model (the 1000-class head would add 8 MB of weights).
RESNET50 = '''import torch

from specrobust.models import create_model


def build():
    torch.manual_seed(0)
    return create_model("imagenet_resnet50", 2)
'''


def write_images(root: Path, n: int) -> None:
    """``n`` 256-px JPEGs in two class folders under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (256, 256, 3), np.uint8)
    for k in range(n):
        folder = root / f"class{k % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(tile, k, axis=1)).save(folder / f"{k:06d}.jpg", quality=80)


def peak(argv: list[str], cwd: Path, *, address_space_mb: float | None = None
         ) -> tuple[float, float, float]:
    """(peak resident MB of the child, seconds, peak virtual MB). ``address_space_mb``: a hard
    limit on the child's address space (``RLIMIT_AS``); past it, its allocations fail."""
    started = time.perf_counter()
    code = f"import resource, runpy, sys; sys.argv = {['specrobust', *argv]!r}; " \
           "exit_code = 0\n" \
           "try:\n    runpy.run_module('specrobust.cli', run_name='__main__')\n" \
           "except SystemExit as e:\n    exit_code = e.code or 0\n" \
           "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n" \
           "print(next(l for l in open('/proc/self/status') if l.startswith('VmPeak')))\n" \
           "sys.exit(exit_code)"

    def limit() -> None:
        size = int(address_space_mb * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=limit if address_space_mb else None)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    lines = done.stdout.splitlines()
    resident = next(int(line.split()[1]) for line in lines if line.startswith("PEAK"))
    virtual = next(int(line.split()[1]) for line in lines if line.startswith("VmPeak"))
    return resident / 1024, time.perf_counter() - started, virtual / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="200,2000,20000")
    parser.add_argument("--analyze-n", default="200,2000,20000")
    parser.add_argument("--model", choices=("small", "resnet50"), default="small")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--parts", default="filter,spectra,bands,heatmap,kernels,logits",
                        help="the analysis parts of the analyze rows")
    args = parser.parse_args()
    sizes = [int(k) for k in args.n.split(",") if k]
    analyze_sizes = [int(k) for k in args.analyze_n.split(",") if k]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_images(root / "val", max(sizes + analyze_sizes))
        (root / "arch.py").write_text(RESNET50 if args.model == "resnet50" else MODEL)
        common = ["--model", f"{root / 'arch.py'}:build", "--dataset",
                  f"folder:{root / 'val'},size=224,resize=256", "--eps", "4/255",
                  "--batch-size", str(args.batch_size)]
        print(f"model {args.model}, batch {args.batch_size}"
              + (f"; analyze: --parts {args.parts}" if analyze_sizes else ""))
        print("command                      n   peak MB   seconds")
        for n in sizes:
            mb, seconds, _ = peak(["eval", *common, "--attacks", "clean,fgsm", "--no-checks",
                                 "--n", str(n), "--out", str(root / f"e{n}.json")], root)
            print(f"eval clean,fgsm      {n:9d}  {mb:8.0f}  {seconds:8.1f}", flush=True)
        for n in analyze_sizes:
            mb, seconds, _ = peak(["analyze", *common, "--parts", args.parts, "--n", str(n),
                                 "--out", str(root / f"a{n}")], root)
            print(f"analyze              {n:9d}  {mb:8.0f}  {seconds:8.1f}", flush=True)
    print(f"(the parent itself: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MB)")


if __name__ == "__main__":
    main()
