"""A faster stand-in for a model under attack: batch norm folded into the convolution before it.

Attacks run the model in eval mode, where batch norm is a fixed per-channel affine map. Folding it
into the preceding convolution's weights gives the same function (up to float rounding) without
the batch-norm forward and backward of every attack step, which is about a sixth of a PGD step of
``cnn_small`` on a CPU; there the copy's weights are also laid out channels-last, which
oneDNN's convolutions run faster. The copy is frozen: build it once per evaluation, after
training, and score the attacked images with the original model.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn


def folded_for_attack(model: nn.Module, channels_last: bool | None = None) -> nn.Module:
    """An eval-mode copy of ``model`` with every convolution -> batch-norm pair folded into one
    convolution, its weights in channels-last layout where ``channels_last`` (default: on a CPU).
    Models that torch.fx cannot trace are returned unchanged (still correct, only not faster)."""
    with warnings.catch_warnings():  # the module imports deprecated torch.jit helpers
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.fx.experimental.optimization import fuse

    frozen = copy.deepcopy(model).eval()
    try:
        folded = fuse(frozen, inplace=True)
    except Exception:  # noqa: BLE001 - any tracing failure just means "no speed-up"
        return model
    if channels_last is None:
        channels_last = all(p.device.type == "cpu" for p in folded.parameters())
    if channels_last:
        # oneDNN's channels-last convolutions make cnn_small's attack steps faster on a CPU core
        # and cost ResNet-18 nothing (figures: benchmarks/RESULTS.md). Inputs may stay
        # contiguous.
        folded = _ChannelsLast(folded.to(memory_format=torch.channels_last))
    return folded


class _ChannelsLast(nn.Module):
    """``net`` (channels-last weights) run on a channels-last copy of its input. The input's
    gradient comes back in the input's own layout: attack code flattens it with ``view``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_AsChannelsLast.apply(x) if x.dim() == 4 else x)


class _AsChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()
