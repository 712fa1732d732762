"""The Python API: what the command line does, on any ``nn.Module`` and tensors you hold.

    import specrobust

    result = specrobust.evaluate(model, images, labels, attacks="clean,pgd20,aa", eps=8/255)
    result.accuracy("pgd20"); result.as_dict()          # the fields of eval.json
    parts = specrobust.analyze(model, images, labels, parts="filter,spectra,kernels")
    parts["filter"]["lowpass"]["clean"]                  # the fields of analysis/filter.json
    sar = specrobust.SARLoss(lam=0.1)                    # for your own training loop

``model`` takes images in [0, 1] (put your normalisation inside it, e.g. with
``specrobust.models.Normalize``) and returns logits; ``images`` are float (N, C, H, W) in
[0, 1], ``labels`` int64 (N,). Neither function writes a file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from specrobust.analysis import PARTS
from specrobust.analysis.job import parse_parts
from specrobust.attacks.registry import AttackSpec, parse_attacks
from specrobust.boundary import check_inputs
from specrobust.errors import SpecRobustError
from specrobust.evaluation.runner import EvalResult
from specrobust.evaluation.runner import evaluate as _evaluate
from specrobust.progress import progress_bars
from specrobust.sar import AXES, DISTANCES, sar_loss
from specrobust.settings import DEFAULT_ATTACKS, DEFAULT_PARTS, Settings


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             attacks: str | Sequence[AttackSpec] = DEFAULT_ATTACKS,
             eps: float | str = 8 / 255, *, norm: str = Settings.norm, seed: int = Settings.seed,
             batch_size: int = Settings.batch_size, checks: bool = True,
             check_n: int = Settings.check_n,
             precision: str = Settings.precision, progress: bool = True) -> EvalResult:
    """Robust accuracy of ``model`` under each attack, with the gradient-masking self-checks.

    What `specrobust eval` does, on a model and tensors you hold; nothing is written.

    Args:
        model: any module taking images in [0, 1] (normalisation inside) and returning logits.
        images: float (N, C, H, W) in [0, 1].
        labels: int64 (N,), in [0, number of classes).
        attacks: the names of `specrobust eval --attacks`, comma-separated (e.g.
            ``"clean,pgd20"`` or ``"pgd:steps=100,restarts=5"``), or parsed specs. The default
            is the paper's evaluation, ``"clean,fgsm,pgd20,cw30,aa"``, as on the command line;
            AutoAttack dominates its cost.
        eps: the budget, a number or a fraction as text (``"8/255"``).
        norm: the threat model, ``"linf"`` or ``"l2"``.
        seed: seeds every random start (the same seed gives the same result).
        batch_size: images per attack batch.
        checks: run the gradient-masking self-checks (their extra attacks are sized so that
            they cost about what the suite's attacks cost; see the concepts page).
        check_n: the most images the self-checks' extra attacks use.
        precision: ``"fp32"``, or ``"bf16"`` to run FGSM, PGD and C&W under bf16 autocast
            (whether an image still fools the model is always judged in fp32).
        progress: a progress bar per attack and per self-check, as on the command line;
            ``False`` keeps it quiet.

    Returns:
        An `EvalResult`: ``accuracy(label)``, ``worst_case`` (per example), ``checks`` and
        ``as_dict()`` (the fields of ``eval.json``).

    Raises:
        SpecRobustError: (a ``ValueError``) for a bad argument, in one line, before any attack
            runs.
    """
    specs = parse_attacks(attacks) if isinstance(attacks, str) else list(attacks)
    settings = Settings(norm=norm, seed=seed, batch_size=batch_size, check_n=check_n,
                        precision=precision)
    check_inputs(model, images, labels)
    model.eval()
    return _evaluate(model, images, labels, specs, eps, settings, checks=checks,
                     progress=progress_bars(progress, unit="img"))


def analyze(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
            parts: str = DEFAULT_PARTS, eps: float | str = 8 / 255, *,
            norm: str = Settings.norm, seed: int = Settings.seed,
            batch_size: int = Settings.batch_size, heatmap_norm: float | None = None,
            heatmap_n: int | None = Settings.heatmap_n,
            heatmap_stride: int | None = Settings.heatmap_stride,
            precision: str = Settings.precision, progress: bool = True) -> dict[str, dict]:
    """The spectral analyses of `specrobust analyze`, on a model and tensors you hold.

    Args:
        model: any module taking images in [0, 1] and returning logits.
        images: float (N, C, H, W) in [0, 1].
        labels: int64 (N,).
        parts: comma-separated parts: ``filter`` (accuracy under low-pass filtering, the
            paper's Table 1), ``spectra`` (where perturbations put their energy), ``bands``
            (attacks restricted to frequency bands), ``heatmap`` (Fourier heat map),
            ``kernels`` (first-layer kernels and their smoothness), ``logits`` (the
            logit-spectrum gap SAR closes).
        eps: the budget of the analyses' PGD, a number or a fraction as text.
        norm: ``"linf"`` or ``"l2"``.
        seed: seeds every random draw.
        batch_size: images per batch.
        heatmap_norm: L2 norm of the Fourier basis image the heat map adds (default 4 at
            3x32x32, scaled by the square root of the pixel count).
        heatmap_n: images per heat-map cell.
        heatmap_stride: measure every ``stride``-th frequency (1: every one).
        precision: ``"fp32"``, or ``"bf16"`` to run the analyses' PGD under bf16 autocast.
        progress: a progress bar per long loop, as on the command line; ``False``: quiet.

    Returns:
        ``{part: result}``, each result with the fields of that part's JSON file
        (``analysis/<part>.json``; the Analyses page describes them).
    """
    from specrobust.analysis.context import AnalysisContext
    from specrobust.analysis.heatmap import sized
    from specrobust.analysis.parts import computed

    chosen = parse_parts(parts)
    check_inputs(model, images, labels)
    shape = tuple(images.shape[1:])
    settings = sized(Settings(norm=norm, seed=seed, batch_size=batch_size, precision=precision,
                              heatmap_norm=heatmap_norm, heatmap_n=heatmap_n,
                              heatmap_stride=heatmap_stride), shape)
    budget = settings.budget(eps, shape, "eps")
    model.eval()
    context = AnalysisContext(model, images, labels, budget, seed=seed, batch_size=batch_size,
                              norm=norm, precision=precision,
                              progress=progress_bars(progress, unit="step"))
    return dict(computed(context, {part: PARTS[part].options(settings) for part in chosen}))


class SARLoss(nn.Module):
    """Spectral Alignment Regularization as a loss module, for any training loop.

    ``lam`` times the distance between the DFTs of the batch's clean and adversarial logits;
    by default exactly the authors' computation: a 2-D DFT over the (batch, classes) matrix and
    the L1 distance over real and imaginary parts.

        sar = SARLoss(lam=0.1)
        loss = F.cross_entropy(model(x_adv), y) + sar(model(x), model(x_adv))

    Args:
        lam: the weight of the term (the paper's lambda), finite and >= 0.
        axes: ``"batch_class"`` (the authors' 2-D DFT, which mixes the batch's examples) or
            ``"class"`` (a 1-D DFT per example: the same value however the data is batched or
            sharded).
        distance: ``"l1"`` (the authors'), ``"l2"`` (mean squared error) or ``"amplitude"``
            (L1 between magnitudes, ignoring phase).
    """

    def __init__(self, lam: float = 0.1, axes: str = "batch_class", distance: str = "l1"):
        super().__init__()
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
            raise SpecRobustError(f"SARLoss: lam must be a finite number >= 0, got {lam!r}")
        if axes not in AXES or distance not in DISTANCES:
            raise SpecRobustError(f"SARLoss: axes must be one of {', '.join(AXES)} and distance "
                                  f"one of {', '.join(DISTANCES)}, got {axes!r} and "
                                  f"{distance!r}")
        self.lam, self.axes, self.distance = lam, axes, distance

    def forward(self, clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
        """The regularization term (a scalar) for logits of shape (batch, classes)."""
        return self.lam * sar_loss(clean_logits, adv_logits, axes=self.axes,
                                   distance=self.distance)

    def extra_repr(self) -> str:
        """Its settings, as ``print(model)`` shows them."""
        return f"lam={self.lam}, axes={self.axes!r}, distance={self.distance!r}"
