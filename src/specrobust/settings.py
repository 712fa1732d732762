"""What evaluation and analysis share, each default written once and checked once.

:class:`Settings` holds the options of `specrobust eval` and `specrobust analyze` that are the
same thing in both (the test images, the threat model, the seed, the machine, the heat map's
options), with their defaults. The command line shows these defaults in ``--help``, the Python
API and study plans take them, and the jobs (``EvalJob``, ``AnalysisJob``) are Settings plus
what is their own; :meth:`Settings.check` validates them at the job's start, once.

Imports nothing heavy, so that building the parser does not import torch: ``specrobust --help``
answers at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from specrobust.errors import SpecRobustError, quoted

# The paper's evaluation (clean, FGSM, PGD-20, C&W-inf, AutoAttack): what `specrobust eval`,
# `specrobust.evaluate` and a study plan run when no attacks are named.
DEFAULT_ATTACKS = "clean,fgsm,pgd20,cw30,aa"
# What `specrobust.analyze` and a study plan analyse when no parts are named: all but the two
# that attack many times over (bands, heatmap). `specrobust analyze` runs every part.
DEFAULT_PARTS = "filter,spectra,kernels,logits"
# The arithmetic of the gradient attacks (specrobust.machine); fp32 is the default.
PRECISIONS = ("fp32", "bf16")
# Beyond these a typo, not a stronger attack (evaluation, analysis and training alike).
MOST_STEPS, MOST_RESTARTS = 100_000, 1_000
# torch's generators take seeds below 2**64; derived seeds add to them, so stay below 2**63.
MAX_SEED = 2**63 - 1
MAX_BATCH = 1 << 16
# The threat models: perturbations bounded in L-inf or in L2, around images in [0, 1].
NORMS = {"linf": "L-inf", "l2": "L2"}  # name -> how papers write it


def check_norm(norm: str) -> str:
    """``norm`` if it is a known threat model, else one line listing them."""
    if norm not in NORMS:
        raise SpecRobustError(f"norm must be one of {', '.join(NORMS)}, got {quoted(norm)}")
    return norm


def check_precision(precision: str) -> str:
    """``precision`` if it is a known one, else one line listing them."""
    if precision not in PRECISIONS:
        raise SpecRobustError(f"precision must be one of {', '.join(PRECISIONS)}, got "
                              f"{precision!r}")
    return precision


def largest_budget(norm: str, image_shape: tuple[int, ...]) -> float:
    """The largest meaningful eps: the distance between two images of [0, 1] pixels at most
    (1 in L-inf, the square root of the number of pixel values in L2)."""
    return 1.0 if check_norm(norm) == "linf" else math.sqrt(math.prod(image_shape))


@dataclass(frozen=True)
class Settings:
    """What evaluation and analysis share, validated once, when it is made (one line naming
    the setting as its command-line option), and passed whole from the job to the attacks."""

    n: int = 1000  # the first n test images (as RobustBench: comparable across tools)
    eps: str | None = None  # default: the budget the model was trained at, else the dataset's
    norm: str = "linf"  # the threat model: linf or l2
    precision: str = "fp32"  # of the gradient attacks: fp32 or bf16 (specrobust.machine)
    seed: int = 0
    batch_size: int = 256
    check_n: int = 200  # examples for the evaluation's self-checks
    heatmap_norm: float | None = None  # default: heatmap.default_norm of the image shape
    # The heat map: images and every k-th frequency on each axis; None: by the image size
    # (analysis.heatmap.default_n, default_stride), every frequency of 200 images up to 32
    # pixels, a bounded grid and fewer images above.
    heatmap_n: int | None = None
    heatmap_stride: int | None = None
    data_root: str | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every setting in its range, or one line naming it (as its option on the command
        line). The budget's upper bound needs the data's image shape: the jobs check it when
        the data is loaded."""
        from specrobust.numbers import check_range, parse_fraction

        for value, name, low, high in ((self.n, "--n", 1, None),
                                       (self.seed, "--seed", 0, MAX_SEED),
                                       (self.batch_size, "--batch-size", 1, MAX_BATCH),
                                       (self.check_n, "--check-n", 1, None),
                                       (self.heatmap_n, "--heatmap-n", 1, None),
                                       (self.heatmap_stride, "--heatmap-stride", 1, None)):
            if value is None and name.startswith("--heatmap"):
                continue  # by the image size
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecRobustError(f"{name} must be a whole number, got {value!r}")
            check_range(value, name, low, high)
        if self.heatmap_norm is not None:
            check_range(self.heatmap_norm, "--heatmap-norm", 0, 1000, low_open=True)
        if self.eps is not None:
            check_range(parse_fraction(self.eps, "--eps"), "--eps", 0)
        check_norm(self.norm)
        check_precision(self.precision)

    def budget(self, eps: str | float, image_shape: tuple[int, ...], what: str = "--eps") -> float:
        """``eps`` (a number or a fraction such as ``8/255``) as a number, checked against
        this threat model's largest meaningful budget for images of ``image_shape``."""
        from specrobust.numbers import check_range, parse_fraction

        return check_range(parse_fraction(eps, what), what, 0,
                           largest_budget(self.norm, image_shape))
