"""Confidence intervals for accuracies measured on a finite test sample."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion. Unlike the normal approximation it stays
    inside [0, 1] and is sensible at 0% and 100%, which robust accuracies do reach."""
    if trials <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must lie in [0, {trials}], got {successes}")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value for two models scored on the same examples: only the
    discordant examples count (``only_first``: right for the first model alone, ``only_second``:
    for the second alone); under "equally accurate" each is a fair coin flip. It answers whether
    the gap is larger than the choice of test images explains, for these two trained models; the
    spread over training seeds is a separate question."""
    if only_first < 0 or only_second < 0:
        raise ValueError("discordant counts must be >= 0")
    trials = only_first + only_second
    if trials == 0:
        return 1.0
    tail = sum(math.comb(trials, k) for k in range(min(only_first, only_second) + 1))
    return min(1.0, 2 * tail / 2 ** trials)


def paired_difference(first: str, second: str) -> tuple[float, float]:
    """Accuracy of ``first`` minus that of ``second`` and the McNemar p-value, from two per-image
    outcome strings of one evaluation each ('1' = still correct, as eval.json's per_example
    stores them) over the same images in the same order."""
    if len(first) != len(second) or not first:
        raise ValueError("paired outcomes must cover the same, non-empty set of images")
    only_first = sum(a == "1" and b == "0" for a, b in zip(first, second, strict=True))
    only_second = sum(a == "0" and b == "1" for a, b in zip(first, second, strict=True))
    return (only_first - only_second) / len(first), mcnemar_exact(only_first, only_second)


# Two-sided 95% quantiles of Student's t by degrees of freedom (standard tables); past 10 the
# normal quantile stands in, which understates the width by under 10%.
_T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228}


def mean_interval(values: list[float]) -> tuple[float, float, float] | None:
    """Mean and 95% t-interval of a few values (a quantity over training seeds): the spread
    over seeds, where McNemar's test speaks only of the test images. None below 2 values."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = _T_95.get(len(values) - 1, Z_95) * spread / math.sqrt(len(values))
    return mean, mean - half, mean + half
