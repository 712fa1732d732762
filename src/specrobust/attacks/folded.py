"""A faster stand-in for a model under attack: batch norm folded into the convolution before it.

Attacks run the model in eval mode, where batch norm is a fixed per-channel affine map. Folding it
into the preceding convolution's weights gives the same function (up to float rounding) without
the batch-norm forward and backward of every attack step, which is about a sixth of a PGD step of
``cnn_small`` on a CPU. The copy is frozen: build it once per evaluation, after training, and
score the attacked images with the original model.
"""

from __future__ import annotations

import copy
import warnings

from torch import nn


def folded_for_attack(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every convolution -> batch-norm pair folded into one
    convolution. Models that torch.fx cannot trace are returned unchanged (still correct, only
    not faster)."""
    with warnings.catch_warnings():  # the module imports deprecated torch.jit helpers
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.fx.experimental.optimization import fuse

    frozen = copy.deepcopy(model).eval()
    try:
        return fuse(frozen, inplace=True)
    except Exception:  # noqa: BLE001 - any tracing failure just means "no speed-up"
        return model
