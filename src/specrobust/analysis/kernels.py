"""First-layer kernels, the paper's Fig. 1: adversarially trained kernels look smoother.

Smoothness is measured in the kernels' own spectrum: for each ``k x k`` kernel (each input
channel separately), the share of its spectral energy away from the zero frequency,
``1 - (sum w)^2 / (k^2 sum w^2)`` by Parseval. 0 is a constant (perfectly smooth) kernel; a
random kernel sits near ``1 - 1/k^2`` (0.89 for 3x3).

JSON fields: ``layer`` (module name), ``shape`` (out, in, k, k), ``weights`` (the kernels, for
re-plotting), ``high_frequency_share`` (energy-weighted over all kernels: total non-DC energy over
total energy), ``mean_high_frequency_share`` (plain mean over kernels).
"""

from __future__ import annotations

import torch
from torch import nn

from specrobust import fourier
from specrobust.errors import SpecRobustError


def first_kernels(model: nn.Module) -> tuple[str, torch.Tensor]:
    """The first 2-D convolution's name and weights. A TorchScript or exported program keeps
    no ``nn.Conv2d`` objects, only parameters: there the first 4-D parameter stands for it
    (parameters are registered in the order the layers were built)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module.weight
    for name, parameter in model.named_parameters():
        if parameter.dim() == 4:
            return name.removesuffix(".weight"), parameter
    raise SpecRobustError("the model has no 2-D convolution, so it has no first-layer kernels")


def kernel_smoothness(model: nn.Module) -> dict:
    name, kernels = first_kernels(model)
    weights = kernels.detach().float().cpu()
    kernels = weights.reshape(-1, *weights.shape[-2:])
    power = fourier.power_spectrum(kernels)  # (kernels, k, k), centred
    total = power.sum(dim=(1, 2))
    dc = power[:, kernels.shape[-2] // 2, kernels.shape[-1] // 2]
    nonzero = total > 0
    per_kernel = 1 - dc[nonzero] / total[nonzero]
    return {
        "layer": name,
        "shape": list(weights.shape),
        "weights": weights.tolist(),
        "high_frequency_share": float((total - dc).sum() / total.sum().clamp_min(1e-30)),
        "mean_high_frequency_share": float(per_kernel.mean()) if len(per_kernel) else 0.0,
    }
