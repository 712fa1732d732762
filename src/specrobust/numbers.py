"""Numbers written the way papers write them: ``8/255``, ``0.1``, ``2e-3``."""

from __future__ import annotations

import math
from fractions import Fraction

from specrobust.errors import SpecRobustError


def parse_fraction(text: str | float | int, what: str = "value") -> float:
    """``"8/255"`` -> 0.0313..., ``"0.1"`` -> 0.1; numbers pass through. Rejects NaN and inf."""
    if isinstance(text, bool):
        raise SpecRobustError(f"{what} must be a number such as 0.1 or 8/255, got {text!r}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        try:
            if "/" in text:
                numerator, denominator = text.split("/", 1)
                value = float(Fraction(numerator.strip()) / Fraction(denominator.strip()))
            else:
                value = float(text)
        except (ValueError, ZeroDivisionError):
            raise SpecRobustError(
                f"{what} must be a number such as 0.1 or 8/255, got {text!r}"
            ) from None
    if not math.isfinite(value):
        raise SpecRobustError(f"{what} must be finite, got {text!r}")
    return value
