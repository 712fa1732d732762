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

import math
from pathlib import Path

import torch
from torch import nn

from specrobust import fourier
from specrobust.analysis import PARTS
from specrobust.analysis.parts import Entries, Part
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


def headline(result: dict) -> dict[str, float]:
    return {"kernel non-DC share": result["high_frequency_share"]}


def _kernel_mosaic(weights):
    """A numpy array of kernels as tiles (RGB for 3 input channels, else the mean over input
    channels in grey), each scaled to [0, 1]."""
    from specrobust.figures import np

    out_channels, in_channels, k, _ = weights.shape
    tiles = weights if in_channels == 3 else weights.mean(axis=1, keepdims=True)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    high = tiles.max(axis=(1, 2, 3), keepdims=True)
    tiles = (tiles - low) / np.maximum(high - low, 1e-12)
    tiles = np.broadcast_to(tiles, (out_channels, 3, k, k))  # grey kernels as RGB
    per_row = math.ceil(math.sqrt(out_channels))
    rows = math.ceil(out_channels / per_row)
    # A coloured gap between tiles, so white kernel pixels do not merge with it.
    mosaic = np.empty(((k + 1) * rows + 1, (k + 1) * per_row + 1, 3))
    mosaic[:] = (0.55, 0.7, 0.95)
    for index in range(out_channels):
        r, c = divmod(index, per_row)
        mosaic[1 + r * (k + 1):1 + r * (k + 1) + k, 1 + c * (k + 1):1 + c * (k + 1) + k] = \
            tiles[index].transpose(1, 2, 0)
    return mosaic


def _plot_kernels(entries: Entries, path: str | Path) -> None:
    from specrobust.figures import np, plt, save

    figure, axes = plt.subplots(1, len(entries), figsize=(4 * len(entries), 4.4), dpi=110,
                                squeeze=False)
    for axis, (label, data) in zip(axes[0], entries, strict=True):
        mosaic = _kernel_mosaic(np.array(data["weights"]))
        axis.imshow(mosaic, interpolation="nearest")
        axis.set_title(f"{label}\n{data['layer']} {tuple(data['shape'])}; non-DC energy "
                       f"{100 * data['high_frequency_share']:.1f}%", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_xlabel("each tile: one kernel, scaled to its own range", fontsize=7)
    save(figure, path)


PART = Part(
    name="kernels",
    title="First-layer kernels",
    explanation=("The paper's Fig. 1. Non-DC energy: share of the kernels' spectral energy away "
                 "from the zero frequency (lower is smoother)."),
    compute=lambda ctx: kernel_smoothness(ctx.model),
    headline=headline,
    plot=_plot_kernels,
)
PARTS.add(PART.name, PART)
