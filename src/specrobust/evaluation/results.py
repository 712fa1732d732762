"""Reading eval.json files, finished or still under way.

A finished file has ``"complete": true`` with every attack's summary. While an evaluation runs,
its file is a partial one (``runner._save_partial``): per attack, the outcome bits so far and how
many of the clean-correct images are done. An attack whose images are all done has a final
result even then, as have the earlier attacks when a later pass (AutoAttack added to a finished
evaluation) rewrites the file; readers show those rather than nothing.
"""

from __future__ import annotations

from specrobust.evaluation.stats import wilson_interval


def finished_outcomes(data: dict) -> dict[str, str]:
    """Attack label -> per-image outcomes ('1' = still correct) of every finished attack."""
    if data.get("complete"):
        return data.get("per_example", {})
    partial = data.get("partial", {})
    if "clean" not in partial:  # the first pass was interrupted: nothing is final yet
        return {}
    targets = partial["clean"]["bits"].count("1")
    return {label: entry["bits"] for label, entry in partial.items()
            if entry["done"] >= (len(entry["bits"]) if label == "clean" else targets)}


def readable(data: dict) -> dict | None:
    """``data`` as a finished file reads, restricted to its finished attacks.

    A complete file is returned as it is. For one under way: each finished attack's summary, the
    worst case over those attacks, ``per_example``, and ``under_way`` = {label: [done, of]} for
    the attacks still running. None when no attack has finished.
    """
    if data.get("complete"):
        return data if "worst_case" in data else None
    outcomes = finished_outcomes(data)
    if not outcomes:
        return None
    partial, targets = data["partial"], outcomes["clean"].count("1")
    attacks = [_summary(label, bits, partial[label].get("seconds", 0.0))
               for label, bits in outcomes.items()]
    worst = [all(bits[i] == "1" for bits in outcomes.values())
             for i in range(len(outcomes["clean"]))]
    hits, n = sum(worst), len(worst)
    return {**{k: v for k, v in data.items() if k != "partial"},
            "eps": data.get("fingerprint", {}).get("eps"), "n": n, "attacks": attacks,
            "worst_case": {"correct": hits, "n": n, "accuracy": hits / n,
                           "ci95": list(wilson_interval(hits, n)), "over": list(outcomes)},
            "checks": [], "per_example": outcomes,
            "under_way": {label: [entry["done"], targets] for label, entry in partial.items()
                          if label not in outcomes}}


def _summary(label: str, bits: str, seconds: float) -> dict:
    hits, n = bits.count("1"), len(bits)
    return {"label": label, "correct": hits, "n": n, "accuracy": hits / n,
            "ci95": list(wilson_interval(hits, n)), "seconds": round(seconds, 3)}


def is_well_formed(data: object) -> bool:
    """Whether ``data`` (a finished record as :func:`readable` returns it) has the fields, of
    the types, that readers use: a file anyone can edit must not crash a report."""
    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    def counted(entry) -> bool:
        return isinstance(entry, dict) and number(entry.get("accuracy")) and \
            isinstance(entry.get("ci95"), list) and len(entry["ci95"]) == 2 and \
            all(map(number, entry["ci95"])) and isinstance(entry.get("correct"), int) and \
            isinstance(entry.get("n"), int)

    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        return False
    attacks, checks = data.get("attacks"), data.get("checks", [])
    outcomes = data.get("per_example", {})
    return (isinstance(attacks, list) and all(
                counted(a) and isinstance(a.get("label"), str) and number(a.get("seconds"))
                for a in attacks)
            and counted(data.get("worst_case"))
            and isinstance(checks, list) and all(
                isinstance(c, dict) and {"name", "message", "ok"} <= set(c) for c in checks)
            and isinstance(outcomes, dict) and all(
                isinstance(k, str) and isinstance(v, str) and set(v) <= {"0", "1"}
                for k, v in outcomes.items())
            and isinstance(data.get("under_way", {}), dict))
