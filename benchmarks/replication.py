"""Shared machinery of the replication scripts (replicate_cifar10.py, replicate_fmnist.py).

A plan is a few training runs per seed and the methods (table rows) read from them; the stages
are those of ``specrobust.experiment`` (which explains why one AT+SAR run with SWA on gives both
AT+SAR and AT+SAR+WA). A run may branch from another of its seed (``Run.branch_from``): AT+SAR
takes AT's state at the epoch SAR starts instead of training the shared epochs again.

Every stage is resumable and skipped once done: training resumes from its last epoch, evaluation
from its last finished batch (eval.json), the analysis from its last finished part. Re-running a
script finishes what an earlier, interrupted run started. The summary (summary.json, RESULTS.md)
is rewritten from whatever is finished, and says what is not.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch

from specrobust.evaluation.results import finished_outcomes
from specrobust.experiment import (
    Method,
    analysis_path,
    analyze_method,
    eval_path,
    evaluate_method,
    log,
    train_run,
)
from specrobust.locks import InUseError


@dataclass(frozen=True)
class Run:
    """One training run per seed: a recipe file plus overrides."""

    name: str
    config: str
    overrides: tuple[str, ...] = ()
    # A run of the same seed whose snapshot (run.snapshot_epochs) this one branches from, so
    # that the epochs before SAR starts are not trained twice.
    branch_from: str | None = None


@dataclass
class Plan:
    name: str
    title: str
    runs: list[Run]
    methods: list[Method]
    seeds: list[int]
    eps: str
    attacks: str = "clean,fgsm,pgd20,cw30"
    late_attacks: str = "aa"  # expensive: its own stage, after every other result is in
    n: int = 1000
    analysis_suites: str = "filter,spectra,kernels,logits"
    notes: list[str] = field(default_factory=list)
    branch_root: str | None = None  # where Run.branch_from runs are (default: this plan's out)
    # Paired differences (first minus second) on the same test images, by method label; labels
    # of reference_methods name rows of the plan in branch_root.
    comparisons: list[tuple[str, str]] = field(default_factory=list)
    reference_methods: list[Method] = field(default_factory=list)


def arguments(plan: Plan, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=f"benchmarks/replication/{plan.name}",
                        help="where runs and results go (default: %(default)s)")
    parser.add_argument("--seeds", default=",".join(map(str, plan.seeds)))
    parser.add_argument("--stages", default="train,eval,analyze,aa,report",
                        help="comma list of train, eval, analyze, aa (AutoAttack), report (the "
                        "HTML report of the first seed's runs); the summary is always written")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--data-root", help="where the datasets are")
    parser.add_argument("--n", type=int, default=plan.n, help="test images for eval/analysis")
    return parser.parse_args()


def execute(plan: Plan, args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    # --seeds picks the work, not the table: scripts run side by side on different seeds all
    # write the whole table.
    table_seeds = sorted({*plan.seeds, *seeds})
    # Seed by seed (train, then the cheap attacks, then the analysis), so a finished seed has
    # its whole table row; AutoAttack, the expensive part, runs last for every seed.
    for seed in seeds:
        if "train" in stages:
            for run in plan.runs:
                _train(plan, run, seed, out, args)
        if "eval" in stages:
            for method in plan.methods:
                _evaluate(plan, method, seed, out, args)
        if "analyze" in stages:
            for method in plan.methods:
                _analyze(plan, method, seed, out, args)
        write_summary(plan, out, table_seeds)
    if "aa" in stages and plan.late_attacks:
        for seed in seeds:
            for method in plan.methods:
                _evaluate(plan, method, seed, out, args, late=True)
                write_summary(plan, out, table_seeds)
    write_summary(plan, out, table_seeds)
    if "report" in stages:
        write_report(plan, out, seeds[0])


def write_report(plan: Plan, out: Path, seed: int) -> None:
    """One seed's runs side by side (figures, eval tables, curves); RESULTS.md has all seeds."""
    from specrobust.report.html import write_report as write_html

    runs = [run_dir(out, run.name, seed) for run in plan.runs]
    runs = [str(r) for r in runs if (r / "metrics.jsonl").is_file()]
    if not runs:
        return
    names = {f"{method.run}-seed{seed} ({method.which})": method.label
             for method in plan.methods}
    evaluated = {method.label for method in plan.methods
                 if _per_example(run_dir(out, method.run, seed), method.which)}
    path = write_html(runs, out / "report.html", f"{plan.title} (seed {seed})", names,
                      reference="AT" if "AT" in evaluated else None)
    log(f"report -> {path}")


def run_dir(out: Path, run: str, seed: int) -> Path:
    return out / "runs" / f"{run}-seed{seed}"


def _train(plan: Plan, run: Run, seed: int, out: Path, args) -> None:
    from specrobust.config import load_config

    overrides = [*run.overrides, f"seed={seed}", f"run.device={args.device}",
                 "run.progress=false"]  # a log file, not a terminal: metrics.jsonl has each epoch
    if args.data_root:
        overrides.append(f"data.data_root={args.data_root}")
    config = load_config(Path("configs") / run.config, overrides)
    root = Path(plan.branch_root) if plan.branch_root else out
    branch = run_dir(root, run.branch_from, seed) if run.branch_from else None
    directory = run_dir(out, run.name, seed)
    if branch is not None and root != out and not (directory / "metrics.jsonl").is_file() \
            and not (branch / "checkpoints" / f"epoch{config.sar_start}").is_dir():
        # Another plan's run, maybe still training: wait for its snapshot rather than train the
        # shared epochs again (run this script again later).
        log(f"{run.name} seed {seed}: waiting for {branch}'s snapshot after epoch "
            f"{config.sar_start}")
        return
    # Snapshots are kept after the branch has finished: another plan may branch from them too
    # (replicate_fmnist_sar_frozen_bn.py), and at about 1 MB each they are cheap to commit.
    try:
        train_run(config, directory, f"{run.name} seed {seed}", branch)
    except InUseError as error:  # another script (another --seeds) is on it: go on
        log(f"{run.name} seed {seed}: {error}; skipped")


def _evaluate(plan: Plan, method: Method, seed: int, out: Path, args, late=False) -> None:
    """The late pass adds AutoAttack to the same eval file, re-using the finished attacks."""
    directory = run_dir(out, method.run, seed)
    if not _checkpoint(directory, method.which).is_file():
        return
    try:
        evaluate_method(Method(f"{method.label} seed {seed}", method.run, method.which),
                        directory,
                        attacks=_join(plan.attacks, plan.late_attacks) if late else plan.attacks,
                        n=args.n, eps=plan.eps, data_root=args.data_root, device=args.device,
                        progress=False)
    except InUseError as error:  # another script is evaluating it: take the next one
        log(f"{method.label} seed {seed}: {error}; skipped")


def _analyze(plan: Plan, method: Method, seed: int, out: Path, args) -> None:
    directory = run_dir(out, method.run, seed)
    if not _checkpoint(directory, method.which).is_file():
        return
    analyze_method(Method(f"{method.label} seed {seed}", method.run, method.which), directory,
                   parts=plan.analysis_suites, n=args.n, eps=plan.eps, data_root=args.data_root,
                   device=args.device, progress=False)


def _checkpoint(directory: Path, which: str) -> Path:
    return directory / "checkpoints" / f"{which}.pt"


def _join(*attack_lists: str) -> str:
    return ",".join(a for a in attack_lists if a)


def _labels(attacks: str) -> list[str]:
    from specrobust.evaluation.suite import parse_attacks

    return [spec.label for spec in parse_attacks(attacks)]


# ---- summary -----------------------------------------------------------------------------------

RAW_NUMBERS = {"logit-spectrum gap"}  # not fractions: shown as they are, not in %


def _accuracies(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if "partial" not in data:
        found = {a["label"]: a["accuracy"] for a in data.get("attacks", [])}
    else:
        found = {label: bits.count("1") / len(bits)
                 for label, bits in finished_outcomes(data).items()}
    for attack in data.get("attacks", []):  # AutoAttack, attack by attack (where recorded)
        for stage in attack.get("stages", []):
            found[f"{attack['label']} after {stage['attack']}"] = stage["accuracy_after"]
    if "worst_case" in data:
        found["worst case"] = data["worst_case"]["accuracy"]
    return found


def _analysis_numbers(directory: Path) -> dict[str, float]:
    summary = directory / "summary.json"
    return json.loads(summary.read_text()).get("numbers", {}) if summary.is_file() else {}


def _checkpoint_epoch(directory: Path, which: str) -> int | None:
    """The epoch (1-based, as in metrics.jsonl) whose weights ``which`` holds: the best
    checkpoints are chosen by validation robust accuracy, so a row may read an early epoch (an
    AT+SAR row, even one from before SAR started)."""
    path = directory / "metrics.jsonl"
    if not path.is_file():
        return None
    epochs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not epochs:
        return None
    if which in ("last", "averaged"):
        return epochs[-1]["epoch"]
    key = {"best": "val_robust", "best_averaged": "val_robust_avg"}[which]
    best_epoch, best_value = None, -1.0
    for metrics in epochs:  # the first strict maximum, as RunDir.save_epoch keeps it
        if metrics.get(key, -1.0) > best_value:
            best_epoch, best_value = metrics["epoch"], metrics[key]
    return best_epoch


def _sar_first_epoch(directory: Path) -> int | None:
    """The first epoch (1-based) trained with SAR, or None for a run without it."""
    from specrobust.config import load_config

    path = directory / "config.yaml"
    if not path.is_file():
        return None
    config = load_config(path)  # sar_start knows that no start epoch means the first decay
    return config.sar_start + 1 if config.sar.enabled else None


def _mean_std(values: list[float], scale: float = 100, digits: int = 1,
              signed: bool = False) -> str:
    """Mean ± standard deviation, in % by default (scale 100); ``signed`` for differences."""
    if not values:
        return "-"
    mean = f"{scale * statistics.fmean(values):{'+' if signed else ''}.{digits}f}"
    if len(values) == 1:
        return mean
    return f"{mean} ± {scale * statistics.stdev(values):.{digits}f}"


def write_summary(plan: Plan, out: Path, seeds: list[int]) -> None:
    rows: dict[str, dict[str, dict[int, float]]] = {}
    epochs: dict[str, dict[int, int | None]] = {}  # method -> seed -> checkpoint epoch
    for method in plan.methods:
        per_metric: dict[str, dict[int, float]] = {}
        for seed in seeds:
            directory = run_dir(out, method.run, seed)
            numbers = {**_accuracies(eval_path(directory, method.which)),
                       **_analysis_numbers(analysis_path(directory, method.which))}
            for metric, value in numbers.items():
                per_metric.setdefault(metric, {})[seed] = value
        rows[method.label] = per_metric
        epochs[method.label] = {
            seed: _checkpoint_epoch(run_dir(out, method.run, seed), method.which)
            # Only where the row has numbers: a run still training has no final checkpoint yet.
            if eval_path(run_dir(out, method.run, seed), method.which).is_file() else None
            for seed in seeds}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"plan": plan.name, "seeds": seeds,
                                                  "eps": plan.eps, "methods": rows,
                                                  "checkpoint_epochs": epochs},
                                                 indent=1) + "\n")
    attack_columns = [*_labels(_join(plan.attacks, plan.late_attacks)), "worst case"]
    # In the order the analysis reports them (bandwidths high to low), not alphabetically.
    analysis_columns = [m for m in dict.fromkeys(m for row in rows.values() for m in row)
                        if m not in attack_columns]
    lowpass = [m for m in analysis_columns if m.startswith("LPF ")]
    stages = [m for m in analysis_columns if " after " in m]
    others = [m for m in analysis_columns if m not in lowpass + stages]
    lines = [f"# {plan.title}", "", *plan.notes, "",
             f"Accuracy in % on the first {plan.n} test images, eps {plan.eps}: mean ± standard "
             f"deviation over the finished seeds of {', '.join(map(str, seeds))} (the seeds "
             "column; a cell with fewer says so).", ""]
    lines += _table(rows, attack_columns, seeds)
    lines += ["", "The epoch each row's weights come from (1-based; best = the highest "
              "validation robust accuracy during training, on held-out training images, as the "
              "recipe's `validation` section sets):", ""]
    lines += _epoch_table(plan, out, epochs, seeds)
    if plan.comparisons:
        lines += ["", "Paired differences on the same test images, in points (first minus "
                  "second method), per seed with the exact McNemar p-value (does the gap exceed "
                  "what the choice of test images explains, for these trained models?), then "
                  "mean ± std over seeds and the mean's 95% t-interval (the spread over "
                  "training runs: an interval that excludes 0 says the gap holds across "
                  "seeds):", ""]
        lines += _paired_table(plan, out, attack_columns[:-1], seeds)
    if stages:
        lines += ["", "AutoAttack attack by attack: accuracy in % left after each of its attacks "
                  "(seeds evaluated since this breakdown was recorded):", ""]
        lines += _table(rows, stages, seeds)
    if lowpass:
        lines += ["", "Accuracy in % on low-pass filtered inputs, by bandwidth b (the paper's "
                  "Table 1: the centred b x b block of the spectrum kept; PGD-20 images made "
                  "unfiltered, then filtered):", ""]
        lines += _table(_lowpass_rows(rows, lowpass), _bandwidths(lowpass), seeds)
    if others:
        lines += ["", "Spectral numbers (shares and accuracies in %, the logit-spectrum gap as "
                  "is; definitions in `specrobust/analysis/`):", ""]
        lines += _table(rows, others, seeds)
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")
    log(f"summary -> {out / 'RESULTS.md'}")


def _epoch_table(plan: Plan, out: Path, epochs: dict, seeds: list[int]) -> list[str]:
    lines = ["| method | checkpoint | " + " | ".join(f"seed {s}" for s in seeds)
             + " | SAR from epoch |", "|---|---|" + "---:|" * (len(seeds) + 1)]
    for method in plan.methods:
        cells = [str(epochs[method.label][seed] or "-") for seed in seeds]
        sar_from = {_sar_first_epoch(run_dir(out, method.run, seed)) for seed in seeds} - {None}
        lines.append(f"| {method.label} | {method.which} | " + " | ".join(cells)
                     + f" | {', '.join(map(str, sorted(sar_from))) or '-'} |")
    return lines


def _paired_table(plan: Plan, out: Path, attacks: list[str], seeds: list[int]) -> list[str]:
    from specrobust.evaluation.stats import mean_interval, paired_difference

    where = {m.label: (m, out) for m in plan.methods}
    if plan.branch_root:
        where |= {m.label: (m, Path(plan.branch_root)) for m in plan.reference_methods}
    lines = ["| first - second, attack | " + " | ".join(f"seed {s}" for s in seeds)
             + " | mean ± std | 95% interval over seeds |", "|---|" + "---:|" * (len(seeds) + 2)]
    for first, second in plan.comparisons:
        outcomes = {label: {seed: _per_example(run_dir(where[label][1], where[label][0].run,
                                                       seed), where[label][0].which)
                            for seed in seeds} for label in (first, second)}
        for attack in attacks:
            cells, gaps = [], []
            for seed in seeds:
                a, b = outcomes[first][seed].get(attack), outcomes[second][seed].get(attack)
                if a is None or b is None or len(a) != len(b):
                    cells.append("-")
                    continue
                gap, p_value = paired_difference(a, b)
                gaps.append(gap)
                cells.append(f"{100 * gap:+.1f} (p {p_value:.2g})")
            if gaps:
                interval = mean_interval(gaps)
                shown = "-" if interval is None else \
                    f"{100 * interval[1]:+.1f} to {100 * interval[2]:+.1f}"
                lines.append(f"| {first} - {second}, {attack} | " + " | ".join(cells)
                             + f" | {_mean_std(gaps, signed=True)} | {shown} |")
    return lines


def _per_example(directory: Path, which: str) -> dict[str, str]:
    """Attack label -> one character per test image, '1' where the model stayed correct."""
    path = eval_path(directory, which)
    return finished_outcomes(json.loads(path.read_text())) if path.is_file() else {}


def _lowpass_rows(rows: dict, metrics: list[str]) -> dict:
    """'LPF b input' metrics regrouped as the paper's Table 1: a row per (method, input), a column
    per bandwidth b."""
    regrouped: dict[str, dict[str, dict[int, float]]] = {}
    for label, per_metric in rows.items():
        for metric in metrics:
            _, bandwidth, image_kind = metric.split(" ", 2)
            if metric in per_metric:
                regrouped.setdefault(f"{label}, {image_kind}", {})[bandwidth] = per_metric[metric]
    return regrouped


def _bandwidths(metrics: list[str]) -> list[str]:
    return list(dict.fromkeys(metric.split(" ")[1] for metric in metrics))


def _table(rows: dict, columns: list[str], seeds: list[int]) -> list[str]:
    lines = ["| method | seeds | " + " | ".join(columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for label, per_metric in rows.items():
        finished = max((len(per_metric.get(c, {})) for c in columns), default=0)
        cells = []
        for column in columns:
            values = [per_metric.get(column, {}).get(seed) for seed in seeds]
            values = [v for v in values if v is not None]
            scale, digits = (1, 3) if column in RAW_NUMBERS else (100, 1)
            text = _mean_std(values, scale, digits)
            cells.append(text if len(values) in (0, finished)
                         else f"{text} ({len(values)} of {finished} seeds)")
        lines.append(f"| {label} | {finished} | " + " | ".join(cells) + " |")
    return lines
