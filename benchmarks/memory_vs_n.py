"""Peak memory of `specrobust eval` and `specrobust analyze` against the number of test images,
at ImageNet's 224 pixels (issue 33: `eval` streams its images, the analyses do not yet).

    python benchmarks/memory_vs_n.py [--n 200,2000,20000] [--analyze-n 200,2000]

It writes a folder of random 224-px JPEG images (two classes, in a temporary directory) and a
small convolutional model as user code that returns its own weights, then runs each command in
a child process and reports the child's peak resident memory (``ru_maxrss``): `eval --attacks
clean,fgsm --no-checks` and `analyze --parts filter`, batch 100.
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


def write_images(root: Path, n: int) -> None:
    """``n`` 256-px JPEGs in two class folders under ``root``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (256, 256, 3), np.uint8)
    for k in range(n):
        folder = root / f"class{k % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(tile, k, axis=1)).save(folder / f"{k:06d}.jpg", quality=80)


def peak(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(peak resident MB of the child, seconds)."""
    started = time.perf_counter()
    code = f"import resource, runpy, sys; sys.argv = {['specrobust', *argv]!r}; " \
           "exit_code = 0\n" \
           "try:\n    runpy.run_module('specrobust.cli', run_name='__main__')\n" \
           "except SystemExit as e:\n    exit_code = e.code or 0\n" \
           "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n" \
           "sys.exit(exit_code)"
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    peak = next(int(line.split()[1]) for line in done.stdout.splitlines()
                if line.startswith("PEAK"))
    return peak / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="200,2000,20000")
    parser.add_argument("--analyze-n", default="200,2000")
    args = parser.parse_args()
    sizes = [int(k) for k in args.n.split(",")]
    analyze_sizes = [int(k) for k in args.analyze_n.split(",") if k]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        write_images(root / "val", max(sizes + analyze_sizes))
        (root / "arch.py").write_text(MODEL)
        common = ["--model", f"{root / 'arch.py'}:build", "--dataset",
                  f"folder:{root / 'val'},size=224,resize=256", "--eps", "4/255",
                  "--batch-size", "100"]
        print("command                      n   peak MB   seconds")
        for n in sizes:
            mb, seconds = peak(["eval", *common, "--attacks", "clean,fgsm", "--no-checks",
                                 "--n", str(n), "--out", str(root / f"e{n}.json")], root)
            print(f"eval clean,fgsm      {n:9d}  {mb:8.0f}  {seconds:8.1f}", flush=True)
        for n in analyze_sizes:
            mb, seconds = peak(["analyze", *common, "--parts", "filter", "--n", str(n),
                                 "--out", str(root / f"a{n}")], root)
            print(f"analyze filter       {n:9d}  {mb:8.0f}  {seconds:8.1f}", flush=True)
    print(f"(the parent itself: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MB)")


if __name__ == "__main__":
    main()
