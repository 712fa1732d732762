"""Robustness evaluation: attack suites by name, per-example results, Wilson intervals, worst
case over attacks, self-checks against gradient masking, resumable eval.json.

    >>> from specrobust.evaluation import evaluate, parse_attacks
    >>> result = evaluate(model, x, y, parse_attacks("clean,pgd20,aa"), eps=8/255)
    >>> result.accuracy("pgd20")
"""

from specrobust.attacks.registry import AttackSpec, parse_attack, parse_attacks
from specrobust.evaluation.checks import Check, self_checks
from specrobust.evaluation.record import markdown
from specrobust.evaluation.runner import AttackResult, EvalResult, evaluate
from specrobust.evaluation.stats import wilson_interval

__all__ = [
    "AttackResult", "AttackSpec", "Check", "EvalResult", "evaluate", "markdown",
    "parse_attack", "parse_attacks", "self_checks", "wilson_interval",
]
