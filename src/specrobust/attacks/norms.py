"""The threat models: perturbations bounded in L-inf or in L2, around images in [0, 1]."""

from __future__ import annotations

import math

from specrobust.errors import SpecRobustError, quoted

NORMS = {"linf": "L-inf", "l2": "L2"}  # name -> how papers write it


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise SpecRobustError(f"norm must be one of {', '.join(NORMS)}, got {quoted(norm)}")
    return norm


def largest_budget(norm: str, image_shape: tuple[int, ...]) -> float:
    """The largest meaningful eps: the distance between two images of [0, 1] pixels at most
    (1 in L-inf, the square root of the number of pixel values in L2)."""
    return 1.0 if check_norm(norm) == "linf" else math.sqrt(math.prod(image_shape))
