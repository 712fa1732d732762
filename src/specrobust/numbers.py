"""Numbers written the way papers and configs write them, read by one small grammar.

    budget  := number | number "/" number        8/255, 0.1, 2e-3, .5/255
    number  := decimal digits with an optional   1, 1.5, 1e-3, 1.5E+2 (a sign on the first;
               point and exponent                 exponents of up to 3 digits)

Anything else (``8/255/2``, ``8//255``, ``1/0``, ``nan``, ``inf``, ``0x10``) is refused with one
line that says what was expected. Ranges are checked by :func:`check_range`, whose message
states the range, so every numeric option reads the same way.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from specrobust.errors import SpecRobustError, quoted

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?"
_BUDGET = re.compile(rf"\s*([+-]?{_NUMBER})\s*(?:/\s*({_NUMBER})\s*)?")
_SIGNED = re.compile(rf"\s*[+-]?{_NUMBER}\s*")
_WHOLE = re.compile(r"[ \t\n]*[+-]?[0-9]{1,30}[ \t\n]*")  # longer is out of every range anyway


def parse_number(text: str | float | int, what: str = "value") -> float:
    """A finite float from a number or from text in Python's float syntax (``1e-3`` included,
    which YAML 1.1 reads as text)."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise SpecRobustError(f"{what} must be a number such as 0.1 or 1e-3, got {quoted(text)}")
    if isinstance(text, str) and _SIGNED.fullmatch(text) is None:
        raise SpecRobustError(f"{what} must be a number such as 0.1 or 1e-3, got {quoted(text)}")
    try:
        value = float(text)
    except OverflowError:  # an int beyond float's range
        value = math.inf
    if not math.isfinite(value):
        raise SpecRobustError(f"{what} must be finite, got {quoted(text)}")
    return value


def parse_fraction(text: str | float | int, what: str = "value") -> float:
    """``"8/255"`` -> 0.0313..., ``"0.1"`` -> 0.1; finite numbers pass through (see the module
    docstring for the grammar)."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise SpecRobustError(f"{what} must be a number such as 0.1 or 8/255, got {quoted(text)}")
    if not isinstance(text, str):
        return parse_number(text, what)
    match = _BUDGET.fullmatch(text)
    if match is None:
        raise SpecRobustError(f"{what} must be a number or one number over another, such as 0.1 "
                              f"or 8/255, got {quoted(text)}")
    numerator, denominator = match.groups()
    if denominator is None:
        return parse_number(numerator, what)
    if Fraction(denominator) == 0:
        raise SpecRobustError(f"{what} divides by zero: {quoted(text)}")
    try:
        value = float(Fraction(numerator) / Fraction(denominator))
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise SpecRobustError(f"{what} must be finite, got {quoted(text)}")
    return value


def parse_whole(text: str | int, what: str = "value") -> int:
    """A whole number written in ASCII digits (``int()`` also takes other scripts' digits)."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise SpecRobustError(f"{what} must be a whole number, got {quoted(text)}")
    if isinstance(text, str) and _WHOLE.fullmatch(text) is None:
        raise SpecRobustError(f"{what} must be a whole number, got {quoted(text)}")
    return int(text)


def check_range(value: float, what: str, low: float | None = None, high: float | None = None,
                *, low_open: bool = False) -> float:
    """``value`` if it lies in the range, else a one-line error that states the range."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high or value != value:
        if low is not None and high is not None:
            bounds = f"in {'(' if low_open else '['}{_show(low)}, {_show(high)}]"
        elif low is not None:
            bounds = f"{'>' if low_open else '>='} {_show(low)}"
        else:
            bounds = f"<= {_show(high if high is not None else value)}"
        raise SpecRobustError(f"{what} must be {bounds}, got {_show(value)}")
    return value


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"
