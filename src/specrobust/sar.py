"""Spectral Alignment Regularization (SAR): the paper's regularizer, small and visible.

    loss = CE(f(x_adv), y) + lambda * sar_loss(f(x), f(x_adv))

``sar_loss`` compares the Fourier transforms of the clean and adversarial logits.

``axes="batch_class"`` (default) is exactly the authors' computation: the logits of the whole
batch form a (batch, classes) matrix; its full two-sided, unnormalised 2-D DFT over *both* axes
is taken; real and imaginary parts are compared with L1 and averaged over all
batch * classes * 2 numbers (``torch.fft.fft2`` + ``view_as_real`` + mean absolute error).
Because the DFT along the batch axis mixes examples, the value depends on which examples share
a batch and on the batch size. Use it to reproduce the paper.

``axes="class"`` is the per-example variant: a 1-D DFT along the classes of each row. Each
example's term depends only on that example, so the loss is the same however the data is
batched or sharded. Prefer it for data-parallel training (each process sees only its shard, so
the batch-axis DFT of the default cannot be computed exactly there without gathering all
logits) and when batch sizes vary.

Distances: ``l1`` (the authors'), ``l2`` (mean squared error over real and imaginary parts) and
``amplitude`` (L1 between the magnitudes, ignoring phase). The non-default ones are options for
study, not part of the paper's method.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from specrobust.errors import SpecRobustError

AXES = ("batch_class", "class")
DISTANCES = ("l1", "l2", "amplitude")


def logit_spectrum(logits: torch.Tensor, axes: str = "batch_class") -> torch.Tensor:
    """Complex DFT of a (batch, classes) logit matrix along ``axes``."""
    if logits.dim() != 2:
        raise SpecRobustError(f"SAR takes (batch, classes) logits, got shape {tuple(logits.shape)}")
    # FFTs have no bf16/fp16 kernels on every device, and the regulariser is cheap: float32.
    logits = logits.float()
    if axes == "batch_class":
        return torch.fft.fft2(logits)
    if axes == "class":
        return torch.fft.fft(logits, dim=1)
    raise SpecRobustError(f"unknown SAR axes {axes!r}; known: {', '.join(AXES)}")


def sar_loss(clean_logits: torch.Tensor, adv_logits: torch.Tensor, *, axes: str = "batch_class",
             distance: str = "l1") -> torch.Tensor:
    """Distance between the spectra of clean and adversarial logits.

    Args:
        clean_logits: (batch, classes) logits of the clean images.
        adv_logits: (batch, classes) logits of their adversarial versions.
        axes: ``"batch_class"`` (the authors' 2-D DFT) or ``"class"`` (a DFT per example).
        distance: ``"l1"`` (the authors'), ``"l2"`` or ``"amplitude"``.

    Returns:
        A scalar tensor (differentiable through both arguments).
    """
    if clean_logits.shape != adv_logits.shape:
        raise SpecRobustError(f"clean and adversarial logits differ in shape: "
                              f"{tuple(clean_logits.shape)} vs {tuple(adv_logits.shape)}")
    if distance not in DISTANCES:
        raise SpecRobustError(f"unknown SAR distance {distance!r}; known: {', '.join(DISTANCES)}")
    clean = logit_spectrum(clean_logits, axes)
    adversarial = logit_spectrum(adv_logits, axes)
    if distance == "amplitude":
        return F.l1_loss(adversarial.abs(), clean.abs())
    compare = F.l1_loss if distance == "l1" else F.mse_loss
    return compare(torch.view_as_real(adversarial), torch.view_as_real(clean))
