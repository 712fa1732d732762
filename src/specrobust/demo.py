"""`specrobust demo`: the paper's story end to end on Fashion-MNIST, sized for 2 CPU cores.

Trains cnn_small naturally, with PGD-AT and with PGD-AT+SAR (SWA on, so AT+SAR+WA comes from the
AT+SAR run: see ``specrobust.experiment``; and until SAR starts AT+SAR is the AT run, so it
branches from AT's state there instead of training those epochs again), evaluates the four
models, analyses them and writes one HTML report. Every stage is resumable: run it again after
an interruption and it continues where it stopped; finished parts are re-used.

The recipe is the CPU-sized one of ``configs/fmnist_cnn_*.yaml`` made shorter: a class-balanced
training subset, PGD-5 training (step 2.5 eps / 5) and few epochs, with SAR and SWA from the
first learning-rate decay as in the paper. The averaged model's batch-norm statistics are
recomputed on PGD images: on clean ones they undo an AT model's robustness on Fashion-MNIST
(benchmarks/swa_batchnorm.py).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

from specrobust.config import config_from_dict
from specrobust.experiment import Method, analyze_method, evaluate_method, log, train_run

EPS = "0.1"  # Fashion-MNIST's usual L-inf budget

_BASE = {
    "data": {"dataset": "fashion-mnist", "val_fraction": 0.1},
    "model": {"name": "cnn_small"},
    "optim": {"batch_size": 128, "lr": 0.05},
    "attack": {"eps": EPS, "alpha": "0.05", "steps": 5},
    "validation": {"pgd_steps": 10},
    "run": {"bf16": False},
}


@dataclass(frozen=True)
class Size:
    """How big each stage is: the full demo and --quick differ only here."""

    train_subset: int
    epochs: int
    milestones: list[int]
    natural_epochs: int
    val_n: int
    eval_n: int
    attacks: str
    check_n: int
    analysis_n: int
    parts: str


# AutoAttack's first and usually decisive component (APGD-CE, 100 iterations) stands in for the
# full standard AutoAttack, which takes minutes per robust model even on 100 images on 2 cores;
# the replication scripts run the full version on 1000 images.
FULL = Size(train_subset=12000, epochs=8, milestones=[5, 7], natural_epochs=4, val_n=200,
            eval_n=300, attacks="clean,fgsm,pgd20,cw30,aa-apgd-ce", check_n=100,
            analysis_n=300, parts="filter,spectra,bands,heatmap,kernels,logits")
QUICK = Size(train_subset=2000, epochs=2, milestones=[1], natural_epochs=1, val_n=100,
             eval_n=100, attacks="clean,fgsm,pgd20,cw30", check_n=50, analysis_n=100,
             parts="filter,spectra,kernels,logits")

RUNS = {  # run name -> changes to the base recipe
    "natural": {"objective": {"name": "natural"}},
    "AT": {"objective": {"name": "pgd_at"}},
    "AT+SAR": {"objective": {"name": "pgd_at"},
               "averaging": {"kind": "swa", "bn_inputs": "adversarial"},
               "sar": {"enabled": True, "lambda": 0.1}},
}

METHODS = [
    Method("natural", "natural", "last"),  # best-by-robust-accuracy means nothing here
    Method("AT", "AT", "best"),
    Method("AT+SAR", "AT+SAR", "best"),
    Method("AT+SAR+WA", "AT+SAR", "best_averaged"),
]


def recipe(run: str, size: Size, data_root: str | None, device: str):
    data = copy.deepcopy(_BASE)
    for section, values in RUNS[run].items():
        data.setdefault(section, {}).update(values)
    data["data"].update(train_subset=size.train_subset, data_root=data_root)
    natural = run == "natural"
    data["optim"].update(epochs=size.natural_epochs if natural else size.epochs,
                         milestones=[] if natural else size.milestones)
    data["validation"]["n"] = size.val_n
    # AT keeps its state at the first decay, where SAR starts: AT+SAR branches from it
    data["run"].update(device=device, snapshot_epochs=size.milestones[:1] if run == "AT" else [])
    return config_from_dict(data)


def run_demo(out: str | Path = "runs/demo", *, quick: bool = False,
             data_root: str | None = None, device: str = "auto") -> Path:
    """Run (or finish) the demo; returns the report's path."""
    from specrobust.data import load_dataset
    from specrobust.report.html import write_report

    size = QUICK if quick else FULL
    out = Path(out)
    started = time.perf_counter()
    load_dataset("fashion-mnist", data_root)  # a missing dataset fails here, in one line
    for run in RUNS:
        train_run(recipe(run, size, data_root, device), out / run, run,
                  branch_from=out / "AT" if run == "AT+SAR" else None)
    for method in METHODS:
        evaluate_method(method, out / method.run, attacks=size.attacks, n=size.eval_n, eps=EPS,
                        check_n=size.check_n, data_root=data_root, device=device)
    for method in METHODS:
        analyze_method(method, out / method.run, parts=size.parts, n=size.analysis_n, eps=EPS,
                       data_root=data_root, device=device)
    names = {f"{m.run} ({m.which})": m.label for m in METHODS}
    report = write_report([str(out / run) for run in RUNS], out / "report.html",
                          title="specrobust demo: Fashion-MNIST, natural vs AT vs AT+SAR(+WA)",
                          names=names, reference="AT")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return report
