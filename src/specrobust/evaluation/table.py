"""An evaluation as a Markdown table (printed, and written beside eval.json)."""

from __future__ import annotations


def markdown(evaluation: dict) -> str:
    """``evaluation`` is the plain dict of an eval.json."""
    lines = [
        "| attack | accuracy | 95% interval | correct / n | seconds | images/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for attack in evaluation["attacks"]:
        lines.append(_row(attack["label"], attack, attack["seconds"],
                          attack["images_per_second"]))
    worst = evaluation["worst_case"]
    lines.append(_row("**worst case**", worst, None, None))
    for attack in evaluation["attacks"]:
        if attack.get("stages"):
            steps = ", ".join(f"{s['attack']} broke {s['broken']} ({100 * s['accuracy_after']:.2f}%"
                              f" left, {s['seconds']:.0f} s)" for s in attack["stages"])
            lines += ["", f"{attack['label']} by attack, in order: {steps}."]
    failed = [c for c in evaluation.get("checks", []) if not c["ok"]]
    if evaluation.get("checks"):
        lines.append("")
        lines.append(f"Self-checks: {len(evaluation['checks']) - len(failed)} of "
                     f"{len(evaluation['checks'])} passed.")
        lines += [f"- **WARNING** {c['name']}: {c['message']}" for c in failed]
    return "\n".join(lines) + "\n"


def _row(label: str, values: dict, seconds, speed) -> str:
    low, high = values["ci95"]
    return (f"| {label} | {100 * values['accuracy']:.2f}% | {100 * low:.1f}-{100 * high:.1f} | "
            f"{values['correct']} / {values['n']} | {'' if seconds is None else f'{seconds:.1f}'} "
            f"| {_speed(speed)} |")


def _speed(images_per_second) -> str:
    """Whole numbers where that is precise enough; AutoAttack on a CPU runs below 1 image/s."""
    if images_per_second is None:
        return ""
    return f"{images_per_second:.0f}" if images_per_second >= 10 else f"{images_per_second:.2g}"
