"""The model zoo: ``create_model(name, num_classes, in_channels=3, mean=None, std=None)``.

Every model takes images in [0, 1]; normalisation (identity by default, the authors' default)
is the model's first layer. The architecture itself is reachable as ``model.net``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from specrobust.errors import SpecRobustError
from specrobust.models.cnn import cnn_small
from specrobust.models.normalize import Normalize
from specrobust.models.preact_resnet import preact_resnet18
from specrobust.models.resnet import resnet18
from specrobust.models.wideresnet import wrn28_10, wrn34_10

MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "resnet18": resnet18,
    "preact_resnet18": preact_resnet18,
    "wrn34_10": wrn34_10,
    "wrn28_10": wrn28_10,
    "cnn_small": cnn_small,
}


class Classifier(nn.Module):
    """Normalisation followed by an architecture; what every part of specrobust trains and
    attacks. Its state dict keys are ``normalize.*`` and ``net.*``."""

    def __init__(self, name: str, net: nn.Module, normalize: Normalize):
        super().__init__()
        self.name = name
        self.normalize = normalize
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def create_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    if name not in MODELS:
        raise SpecRobustError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    if num_classes < 2 or in_channels < 1:
        raise SpecRobustError(
            f"a model needs num_classes >= 2 and in_channels >= 1, got {num_classes} and "
            f"{in_channels}"
        )
    return Classifier(name, MODELS[name](num_classes, in_channels),
                      Normalize(in_channels, mean, std))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "Classifier", "Normalize", "count_parameters", "create_model"]
