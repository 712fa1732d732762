"""The model zoo: ``create_model(name, num_classes, in_channels=3, mean=None, std=None)``.

Every model takes images in [0, 1]; normalisation (identity by default, the authors' default)
is the model's first layer. The architecture itself is reachable as ``model.net``, and the
arguments that built it as ``model.spec`` (what checkpoints store to rebuild it).

``model_mode`` and ``attack_mode`` run a model in training or eval mode (and with frozen
parameters) and hand it back exactly as it was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from specrobust.errors import SpecRobustError

# The families register their architectures in MODELS as they are imported (by family, in
# this order: the one `specrobust models` lists them in).
from specrobust.models import (  # noqa: F401 - imported for their registrations
    cnn,
    dm_resnets,
    imagenet_resnet,
    preact_resnet,
    resnet,
    trades_wideresnet,
    wideresnet,
)
from specrobust.models.imagenet_resnet import IMAGENET_MEAN, IMAGENET_STD
from specrobust.models.zoo import MODELS


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; the identity when both are None (the authors' default)."""

    def __init__(self, channels: int, mean: Sequence[float] | None, std: Sequence[float] | None):
        super().__init__()
        mean = [0.0] * channels if mean is None else list(mean)
        std = [1.0] * channels if std is None else list(std)
        if len(mean) != channels or len(std) != channels:
            raise SpecRobustError(
                f"mean and std need {channels} values (one per channel), got {len(mean)} and "
                f"{len(std)}"
            )
        if any(s <= 0 for s in std):
            raise SpecRobustError(f"std values must be > 0, got {std}")
        self.register_buffer("mean", torch.tensor(mean).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, channels, 1, 1))
        self._update_identity()

    def _update_identity(self) -> None:
        # Skipping the arithmetic keeps the identity case free; decided once, not every call.
        self.identity = bool((self.mean == 0).all() and (self.std == 1).all())

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._update_identity()  # loaded mean/std may differ from the constructor's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per channel."""
        return x if self.identity else (x - self.mean) / self.std


# The normalisation an architecture's published weights expect, where it is not the identity:
# the model's first layer unless --mean/--std (or the weights file) say otherwise.
DEFAULT_NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet_resnet50": (IMAGENET_MEAN, IMAGENET_STD),
    "imagenet_wrn50_2": (IMAGENET_MEAN, IMAGENET_STD),
}

# Beyond these a model description is damaged or crafted (and would exhaust memory).
MAX_CLASSES = 100_000
MAX_CHANNELS = 64


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model before loading its weights."""

    name: str
    num_classes: int
    in_channels: int = 3
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def as_dict(self) -> dict:
        """Plain data, as checkpoints and records store it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> ModelSpec:
        """The spec ``as_dict`` wrote; one line naming the problem for anything else."""
        try:
            return cls(
                name=str(values["name"]),
                num_classes=int(values["num_classes"]),
                in_channels=int(values.get("in_channels", 3)),
                mean=None if values.get("mean") is None else tuple(map(float, values["mean"])),
                std=None if values.get("std") is None else tuple(map(float, values["std"])),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise SpecRobustError(f"invalid model description {values!r} ({error})") from None

    def build(self) -> Classifier:
        """A freshly initialised model of this description."""
        return create_model(self.name, self.num_classes, self.in_channels, self.mean, self.std)


class Classifier(nn.Module):
    """Normalisation followed by an architecture; what every part of specrobust trains and
    attacks. Its state dict keys are ``normalize.*`` and ``net.*``."""

    def __init__(self, spec: ModelSpec, net: nn.Module, normalize: Normalize):
        super().__init__()
        self.spec = spec
        self.normalize = normalize
        self.net = net

    @property
    def name(self) -> str:
        """The architecture's name in the zoo."""
        return self.spec.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of images in [0, 1]."""
        return self.net(self.normalize(x))


def create_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """A zoo model (``specrobust models`` lists them), taking images in [0, 1].

    Args:
        name: the architecture, e.g. ``"resnet18"``, ``"wrn34_10"`` or ``"cnn_small"``.
        num_classes: outputs.
        in_channels: input channels.
        mean: per-channel normalisation inside the model (none by default, as the authors').
        std: as ``mean``.

    Returns:
        A `Classifier`: the network behind its normalisation.
    """
    factory = MODELS[name]  # an unknown name: one line listing the known ones
    if mean is None and std is None and name in DEFAULT_NORMALISATION:
        mean, std = DEFAULT_NORMALISATION[name]
    if not (2 <= num_classes <= MAX_CLASSES and 1 <= in_channels <= MAX_CHANNELS):
        raise SpecRobustError(
            f"a model needs num_classes in [2, {MAX_CLASSES}] and in_channels in [1, "
            f"{MAX_CHANNELS}], got {num_classes} and {in_channels}"
        )
    spec = ModelSpec(name, num_classes, in_channels,
                     None if mean is None else tuple(mean), None if std is None else tuple(std))
    return Classifier(spec, factory(num_classes, in_channels),
                      Normalize(in_channels, mean, std))


def count_parameters(model: nn.Module) -> int:
    """The number of a model's parameters (buffers not counted)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["DEFAULT_NORMALISATION", "MODELS", "Classifier", "ModelSpec", "Normalize",
           "attack_mode", "count_parameters", "create_model", "model_mode"]


# ---- running a model in a given mode, and handing it back exactly as it was found ------------


@contextmanager
def model_mode(model: nn.Module, *, training: bool = False, frozen: bool = False):
    """Every module in training or eval mode (eval: batch norm uses its running statistics and
    does not update them) and, with ``frozen``, no gradient accumulated into any parameter's
    ``.grad``; each module's mode and each parameter's flag restored on exit."""
    was_training = {module: module.training for module in model.modules()}
    requires_grad = {param: param.requires_grad for param in model.parameters()} if frozen \
        else {}
    model.train(training)
    for param in requires_grad:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        # Parents first (``modules()`` order), and only where the mode changed: ``train()``
        # recurses, and some modules (an exported program's graph) refuse being set at all.
        for module, mode in was_training.items():
            if module.training != mode:
                module.train(mode)
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)


def attack_mode(model: nn.Module, *, training: bool = False):
    """How attacks run a model: eval mode (unless ``training``: the training attack may use
    batch statistics) and frozen parameters."""
    return model_mode(model, training=training, frozen=True)
