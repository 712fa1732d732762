"""Evaluation shared by several processes vs one, side by side in one run (CPU, gloo).

    python benchmarks/sharded_eval.py [--n 500] [--attacks clean,pgd20] [--processes 2]
    python benchmarks/sharded_eval.py --source autoattack-natural-resnet18 --eps 1/255 \
        --n 256 --batch-size 64 --single-threads 2          # thread layout, ResNet-18

Evaluates a model (default: a Fashion-MNIST AT checkpoint of the replication, cnn_small) on the
first n test images: once in one process with --single-threads threads (default 1), once under
torchrun with ``--processes`` processes of one thread each; prints wall time, attacked images
per second and the ratio, and checks that the per-example results are identical. With
--single-threads equal to --processes both sides use the same cores, laid out differently.
Pause other jobs first: on a 2-core machine a third busy process takes a core from one side.
Needs the model's dataset (Debian's Fashion-MNIST for the default, CIFAR-10 for ResNet-18) in
the data root.
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


def run(argv: list[str], processes: int, threads: int) -> float:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads),
                   "MKL_NUM_THREADS": str(threads)}
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
    parser.add_argument("--source", default=str(RUN), help="what `specrobust eval` takes")
    parser.add_argument("--eps", help="budget (default: the source's)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--single-threads", type=int, default=1,
                        help="threads of the one-process side (default 1)")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="attack batch size (part of the result's fingerprint: the same "
                        "on both sides)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        source = [args.source, *(["--checkpoint", "best"] if Path(args.source).is_dir()
                                 else []), *(["--eps", args.eps] if args.eps else [])]
        for processes in (1, args.processes):
            out = Path(scratch) / f"eval-{processes}.json"
            seconds = run(["eval", *source, "--attacks", args.attacks,
                           "--num-images", str(args.n), "--batch-size", str(args.batch_size),
                           "--no-checks", "--out", str(out)], processes,
                          args.single_threads if processes == 1 else 1)
            record = json.loads(out.read_text())
            attacks = [a for a in record["attacks"] if a["label"] != "clean"]
            attacked = sum(a["attacked"] for a in attacks)
            attack_seconds = sum(a["seconds"] for a in attacks)
            results[processes] = (seconds, attack_seconds, attacked, record["per_example"])
    one, many = results[1], results[args.processes]
    attacked = one[2]
    print(f"{Path(args.source).name}, first {args.n} test images ({attacked} attacked), attacks "
          f"{args.attacks}, batch {args.batch_size}")
    print("| processes x threads | attack time (s) | attacked images/s | whole command (s) |")
    print("|---|---:|---:|---:|")
    for processes, (wall, seconds, _, _) in results.items():
        threads = args.single_threads if processes == 1 else 1
        print(f"| {processes} x {threads} | {seconds:.1f} | {attacked / seconds:.1f} | "
              f"{wall:.1f} |")
    print(f"speed-up of the attacks {one[1] / many[1]:.2f}x, of the whole command "
          f"{one[0] / many[0]:.2f}x (start-up: torchrun, process group, data and model loading "
          f"in every process); per-example results identical: {one[3] == many[3]}")


if __name__ == "__main__":
    main()
