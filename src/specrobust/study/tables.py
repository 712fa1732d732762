"""A study's tables: RESULTS.md and summary.json, rewritten from whatever is finished.

Per method, mean ± standard deviation over the finished seeds of every attack and every analysis
headline number; the epoch each row's weights come from; paired differences between methods on
the same test images (per seed with the exact McNemar p-value, then over seeds with the mean's
95% t-interval); AutoAttack attack by attack; the paper's Table 1 layout for the filter sweep.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from specrobust.errors import SpecRobustError
from specrobust.evaluation.record import EvalRecord
from specrobust.files import storage
from specrobust.files.storage import read_json
from specrobust.study.plan import Plan
from specrobust.study.stages import log
from specrobust.training.rundir import RunDir

RAW_NUMBERS = {"logit-spectrum gap"}  # not fractions: shown as they are, not in %


# How a table made with bf16 attacks says so (`specrobust eval --precision`).
_PRECISION_NOTE = (" (FGSM, PGD, C&W and the analyses' PGD under bf16 autocast, judged in fp32; "
                   "AutoAttack in fp32)")


def _accuracies(path: Path) -> dict[str, float]:
    record = EvalRecord.load(path)
    summary = record.summary() if record is not None else None
    if summary is None:
        return {}
    found = {a["label"]: a["accuracy"] for a in summary["attacks"]}
    for attack in summary["attacks"]:  # AutoAttack, attack by attack (where recorded)
        for stage in attack.get("stages", []):
            found[f"{attack['label']} after {stage['attack']}"] = stage["accuracy_after"]
    if record.complete:  # over a part of the suite it would not be the suite's worst case
        found["worst case"] = summary["worst_case"]["accuracy"]
    return found


def _analysis_numbers(directory: Path) -> dict[str, float]:
    """The headline numbers of an analysis directory; one line for a summary that is not one
    specrobust wrote."""
    summary = directory / "summary.json"
    if not summary.is_file():
        return {}
    try:
        numbers = read_json(summary, "analysis summary").get("numbers", {})
    except (ValueError, AttributeError):
        raise SpecRobustError(f"{summary} is not an analysis summary; analyse again") from None
    if not (isinstance(numbers, dict) and all(isinstance(v, int | float) and
                                              not isinstance(v, bool) for v in numbers.values())):
        raise SpecRobustError(f"{summary} is not an analysis summary; analyse again")
    return numbers


def _mean_std(values: list[float], scale: float = 100, digits: int = 1,
              signed: bool = False) -> str:
    """Mean ± standard deviation, in % by default (scale 100); ``signed`` for differences."""
    if not values:
        return "-"
    mean = f"{scale * statistics.fmean(values):{'+' if signed else ''}.{digits}f}"
    if len(values) == 1:
        return mean
    return f"{mean} ± {scale * statistics.stdev(values):.{digits}f}"


def write_summary(plan: Plan, seeds: list[int]) -> None:
    rows: dict[str, dict[str, dict[int, float]]] = {}
    epochs: dict[str, dict[int, int | None]] = {}  # method -> seed -> checkpoint epoch
    for method in plan.methods:
        per_metric: dict[str, dict[int, float]] = {}
        for seed in seeds:
            run = RunDir(plan.run_dir(method.run, seed))
            numbers = {**_accuracies(run.eval_path(method.which)),
                       **_analysis_numbers(run.analysis_dir(method.which))}
            for metric, value in numbers.items():
                per_metric.setdefault(metric, {})[seed] = value
        rows[method.label] = per_metric
        runs = {seed: RunDir(plan.run_dir(method.run, seed)) for seed in seeds}
        epochs[method.label] = {
            seed: run.checkpoint_epoch(method.which)
            # Only where the row has numbers: a run still training has no final checkpoint yet.
            if run.eval_path(method.which).is_file() else None
            for seed, run in runs.items()}
    out = plan.out
    storage.make_directories(out)
    summary = {"plan": plan.name, "seeds": seeds, "eps": plan.eps, "methods": rows,
               "checkpoint_epochs": epochs}
    storage.write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    attack_columns = [*_labels(plan), "worst case"]
    # In the order the analysis reports them (bandwidths high to low), not alphabetically.
    analysis_columns = [m for m in dict.fromkeys(m for row in rows.values() for m in row)
                        if m not in attack_columns]
    lowpass = [m for m in analysis_columns if m.startswith("LPF ")]
    stages = [m for m in analysis_columns if " after " in m]
    others = [m for m in analysis_columns if m not in lowpass + stages]
    lines = [f"# {plan.title}", "", *([f"**{plan.smoke}**", ""] if plan.smoke else []),
             *([*plan.notes, ""] if plan.notes else []),
             f"Accuracy in % on the first {plan.n} test images, eps {plan.eps}"
             f"{_PRECISION_NOTE if plan.precision == 'bf16' else ''}: mean ± standard "
             f"deviation over the finished seeds of {', '.join(map(str, seeds))} (the seeds "
             "column; a cell with fewer says so).", ""]
    lines += _table(rows, attack_columns, seeds)
    lines += ["", "The epoch each row's weights come from (1-based; best = the highest "
              "validation robust accuracy during training, on held-out training images, as the "
              "recipe's `validation` section sets):", ""]
    lines += _epoch_table(plan, epochs, seeds)
    if plan.comparisons:
        lines += ["", "Paired differences on the same test images, in points (first minus "
                  "second method), per seed with the exact McNemar p-value (does the gap exceed "
                  "what the choice of test images explains, for these trained models?), then "
                  "mean ± std over seeds and the mean's 95% t-interval (the spread over "
                  "training runs: an interval that excludes 0 says the gap holds across "
                  "seeds):", ""]
        lines += _paired_table(plan, attack_columns[:-1], seeds)
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
    text = "\n".join(lines) + "\n"
    try:
        unchanged = (out / "RESULTS.md").read_text() == text
    except (OSError, UnicodeDecodeError):
        unchanged = False
    storage.write_text(out / "RESULTS.md", text)
    if not unchanged:  # said once per change, not after every pass that left it as it was
        log(f"summary -> {out / 'RESULTS.md'}")


def _epoch_table(plan: Plan, epochs: dict, seeds: list[int]) -> list[str]:
    lines = ["| method | checkpoint | " + " | ".join(f"seed {s}" for s in seeds)
             + " | SAR from epoch |", "|---|---|" + "---:|" * (len(seeds) + 1)]
    for method in plan.methods:
        cells = [str(epochs[method.label][seed] or "-") for seed in seeds]
        sar_from = {RunDir(plan.run_dir(method.run, seed)).sar_first_epoch()
                    for seed in seeds} - {None}
        lines.append(f"| {method.label} | {method.which} | " + " | ".join(cells)
                     + f" | {', '.join(map(str, sorted(sar_from))) or '-'} |")
    return lines


def _paired_table(plan: Plan, attacks: list[str], seeds: list[int]) -> list[str]:
    from specrobust.evaluation.stats import mean_interval, paired_difference

    lines = ["| first - second, attack | " + " | ".join(f"seed {s}" for s in seeds)
             + " | mean ± std | 95% interval over seeds |", "|---|" + "---:|" * (len(seeds) + 2)]
    for first, second in plan.comparisons:
        outcomes = {label: {seed: per_example(plan, label, seed) for seed in seeds}
                    for label in (first, second)}
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


def per_example(plan: Plan, label: str, seed: int) -> dict[str, str]:
    """Attack label -> one character per test image, '1' where the method's model stayed
    correct, for every finished attack."""
    method, root = plan.locate(label)
    record = EvalRecord.load(RunDir(plan.run_dir(method.run, seed, root)).eval_path(method.which))
    return record.finished() if record is not None else {}


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


def _labels(plan: Plan) -> list[str]:
    from specrobust.attacks.registry import parse_attacks

    attacks = ",".join(a for a in (plan.attacks, plan.late_attacks) if a)
    return [spec.label for spec in parse_attacks(attacks)]
