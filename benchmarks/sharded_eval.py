"""Evaluation shared by several processes vs one, side by side in one run (CPU, gloo).

    python benchmarks/sharded_eval.py [--n 500] [--attacks clean,pgd20] [--processes 2]

Evaluates a Fashion-MNIST AT checkpoint of the replication (cnn_small) on the first n test
images with one thread per process: once in one process, once under torchrun with
``--processes`` processes; prints wall time, attacked images per second and the ratio, and
checks that the per-example results are identical. Pause other jobs first: on a 2-core machine
a third busy process takes a core from one side. Needs Debian's Fashion-MNIST (or the official
files in the data root).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks/replication/fmnist/runs/at-seed0"


def run(argv: list[str], processes: int) -> float:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "specrobust.cli"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={processes}", "-m", "specrobust.cli"]
    started = time.perf_counter()
    subprocess.run([*launcher, *argv], check=True, env=environment, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--attacks", default="clean,pgd20")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128,
                        help="attack batch size (part of the result's fingerprint: the same "
                        "on both sides)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        for processes in (1, args.processes):
            out = Path(scratch) / f"eval-{processes}.json"
            seconds = run(["eval", str(RUN), "--checkpoint", "best", "--attacks", args.attacks,
                           "--num-images", str(args.n), "--batch-size", str(args.batch_size),
                           "--no-checks", "--out", str(out)], processes)
            record = json.loads(out.read_text())
            attacks = [a for a in record["attacks"] if a["label"] != "clean"]
            attacked = sum(a["attacked"] for a in attacks)
            attack_seconds = sum(a["seconds"] for a in attacks)
            results[processes] = (seconds, attack_seconds, attacked, record["per_example"])
    one, many = results[1], results[args.processes]
    attacked = one[2]
    print(f"{RUN.name} (best), first {args.n} test images ({attacked} attacked), attacks "
          f"{args.attacks}, batch {args.batch_size}, one thread per process")
    print("| processes | attack time (s) | attacked images/s | whole command (s) |")
    print("|---:|---:|---:|---:|")
    for processes, (wall, seconds, _, _) in results.items():
        print(f"| {processes} | {seconds:.1f} | {attacked / seconds:.1f} | {wall:.1f} |")
    print(f"speed-up of the attacks {one[1] / many[1]:.2f}x, of the whole command "
          f"{one[0] / many[0]:.2f}x (start-up: torchrun, process group, data and model loading "
          f"in every process); per-example results identical: {one[3] == many[3]}")


if __name__ == "__main__":
    main()
