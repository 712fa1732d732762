"""The figures of docs/analyses.md, from two committed CIFAR-10 replication checkpoints (the
natural model of seed 1 and the AT model's best checkpoint of seed 1), analysed on the first
200 CIFAR-10 test images, every part side by side as `specrobust report` draws them.

    python docs/make_figures.py            # needs CIFAR-10 under the data root; about 2 min

The analysis directories go to a temporary folder; only the PNGs land in docs/img/.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from specrobust.analysis import PARTS, draw
from specrobust.analysis.job import AnalysisJob, read_parts, run_analysis_job
from specrobust.loading import ModelSource

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "replication" / "cifar10" / "runs"
MODELS = {"natural": (RUNS / "natural-seed1", "last"), "AT": (RUNS / "at-seed1", "best")}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        for label, (run, which) in MODELS.items():
            job = AnalysisJob(source=ModelSource(str(run), which=which), parts=",".join(PARTS),
                              n=200, out=str(Path(scratch) / label), progress=False)
            results[label] = read_parts(run_analysis_job(job))
        for part in PARTS:
            draw(part, [(label, parts[part]) for label, parts in results.items()],
                 ROOT / "docs" / "img" / f"{part}.png")
            print(f"docs/img/{part}.png")


if __name__ == "__main__":
    main()
