"""The "DM" networks (Gowal et al. 2020, Rebuffi et al. 2021) in the layout their published
checkpoints use on the RobustBench leaderboards: SiLU (Swish) activations, inputs normalised
inside the network with the dataset's mean and std (kept out of the state dict, as there),
"SAME"-style padding of strided convolutions (one pixel right and below), keys such as
``layer.0.block.0.batchnorm_0.weight`` (WideResNet) and ``layer_0.0.conv_2d_1.weight``
(PreActResNet). Written here from that description, so the checkpoints load without
RobustBench.

The built-in normalisation uses CIFAR-100's statistics for 100 classes and CIFAR-10's
otherwise, as those checkpoints were trained with.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from specrobust.errors import SpecRobustError
from specrobust.models.zoo import MODELS

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _same_padding(x: torch.Tensor, stride: int) -> torch.Tensor:
    """What TensorFlow's "SAME" does before a 3x3 convolution: 1 on every side at stride 1,
    one pixel right and below at stride 2."""
    return F.pad(x, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))


class _Normalised(nn.Module):
    """Holds the dataset statistics as buffers outside the state dict."""

    def _set_statistics(self, num_classes: int, channels: int) -> None:
        mean, std = (CIFAR100_MEAN, CIFAR100_STD) if num_classes == 100 else \
            (CIFAR10_MEAN, CIFAR10_STD)
        if channels != 3:
            mean, std = (0.5,) * channels, (0.25,) * channels
        self.register_buffer("mean", torch.tensor(mean).view(channels, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(channels, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class DMWideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: type[nn.Module]):
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(in_planes)
        self.conv_0 = nn.Conv2d(in_planes, planes, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(planes)
        self.conv_1 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None if in_planes == planes else \
            nn.Conv2d(in_planes, planes, 1, stride, 0, bias=False)
        self.activation = activation()
        self.stride = stride

    def forward(self, x):
        activated = self.activation(self.batchnorm_0(x))
        residual = x if self.shortcut is None else self.shortcut(activated)
        out = self.conv_0(_same_padding(activated, self.stride))
        out = self.conv_1(self.activation(self.batchnorm_1(out)))
        return residual + out


class DMWideGroup(nn.Module):
    def __init__(self, blocks: int, in_planes: int, planes: int, stride: int, activation):
        super().__init__()
        self.block = nn.Sequential(*[DMWideBlock(in_planes if i == 0 else planes, planes,
                                                 stride if i == 0 else 1, activation)
                                     for i in range(blocks)])

    def forward(self, x):
        return self.block(x)


class DMWideResNet(_Normalised):
    def __init__(self, depth: int, width: int, num_classes: int = 10, in_channels: int = 3,
                 activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        if (depth - 4) % 6:
            raise SpecRobustError(f"WideResNet depth must be 6n+4, got {depth}")
        self._set_statistics(num_classes, in_channels)
        blocks = (depth - 4) // 6
        widths = (16, 16 * width, 32 * width, 64 * width)
        self.init_conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.layer = nn.Sequential(
            DMWideGroup(blocks, widths[0], widths[1], 1, activation),
            DMWideGroup(blocks, widths[1], widths[2], 2, activation),
            DMWideGroup(blocks, widths[2], widths[3], 2, activation))
        self.batchnorm = nn.BatchNorm2d(widths[3])
        self.logits = nn.Linear(widths[3], num_classes)
        self.activation = activation()

    def forward(self, x):
        out = self.layer(self.init_conv(self.normalise(x)))
        out = self.activation(self.batchnorm(out))
        return self.logits(F.adaptive_avg_pool2d(out, 1).flatten(1))


class DMPreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: type[nn.Module]):
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(in_planes)
        self.conv_2d_1 = nn.Conv2d(in_planes, planes, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(planes)
        self.conv_2d_2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        # A 3x3 shortcut (not 1x1): the checkpoints' layout.
        self.shortcut = None if stride == 1 and in_planes == planes else \
            nn.Conv2d(in_planes, planes, 3, stride, 0, bias=False)
        self.activation = activation()
        self.stride = stride

    def forward(self, x):
        out = self.activation(self.batchnorm_0(x))
        residual = x if self.shortcut is None else self.shortcut(_same_padding(x, self.stride))
        out = self.conv_2d_1(_same_padding(out, self.stride))
        return self.conv_2d_2(self.activation(self.batchnorm_1(out))) + residual


class DMPreActResNet(_Normalised):
    def __init__(self, num_classes: int = 10, in_channels: int = 3,
                 blocks: tuple[int, ...] = (2, 2, 2, 2), activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        self._set_statistics(num_classes, in_channels)
        self.conv_2d = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        in_planes = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            stride = 1 if index == 0 else 2
            layers = [DMPreActBlock(in_planes if i == 0 else planes, planes,
                                    stride if i == 0 else 1, activation) for i in range(count)]
            setattr(self, f"layer_{index}", nn.Sequential(*layers))
            in_planes = planes
        self.batchnorm = nn.BatchNorm2d(512)
        self.logits = nn.Linear(512, num_classes)
        self.activation = activation()

    def forward(self, x):
        out = self.conv_2d(self.normalise(x))
        for index in range(4):
            out = getattr(self, f"layer_{index}")(out)
        out = self.activation(self.batchnorm(out))
        return self.logits(F.adaptive_avg_pool2d(out, 1).flatten(1))


# Zoo entries: (num_classes, in_channels) -> model.
dm_wrn28_10 = MODELS.add("dm_wrn28_10", partial(DMWideResNet, 28, 10))
dm_wrn34_10 = MODELS.add("dm_wrn34_10", partial(DMWideResNet, 34, 10))
dm_wrn34_20 = MODELS.add("dm_wrn34_20", partial(DMWideResNet, 34, 20))
dm_wrn70_16 = MODELS.add("dm_wrn70_16", partial(DMWideResNet, 70, 16))
dm_preact_resnet18 = MODELS.add("dm_preact_resnet18", partial(DMPreActResNet))
