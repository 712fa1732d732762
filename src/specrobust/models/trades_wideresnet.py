"""WideResNet in the layout of TRADES' code, which most RobustBench CIFAR checkpoints of the
ReLU kind were saved from (keys ``block1.layer.0.bn1.weight``, ``convShortcut``, ``bn1``,
``fc``). Written here from the architecture's description (Zagoruyko & Komodakis 2016; the
pre-activation block of the adversarial-training literature), so those checkpoints load without
RobustBench: ``specrobust eval CKPT --model rb_wrn28_10 --dataset cifar10``.

TRADES' class also builds an unused ``sub_block1`` group (never called in its forward), and
many published checkpoints carry its weights; ``specrobust.loading`` drops those keys
when loading into this layout, which has no such group.
"""

from __future__ import annotations

from functools import partial

from torch import nn
from torch.nn import functional as F

from specrobust.errors import SpecRobustError
from specrobust.models.zoo import MODELS


class TradesBlock(nn.Module):
    """Pre-activation basic block; a 1x1 ``convShortcut`` where the width changes."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.equal_in_out = in_planes == planes
        self.convShortcut = None if self.equal_in_out else \
            nn.Conv2d(in_planes, planes, 1, stride, 0, bias=False)

    def forward(self, x):
        activated = F.relu(self.bn1(x))
        residual = x if self.equal_in_out else self.convShortcut(activated)
        return residual + self.conv2(F.relu(self.bn2(self.conv1(activated))))


class TradesGroup(nn.Module):
    def __init__(self, blocks: int, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[TradesBlock(in_planes if i == 0 else planes, planes,
                                                 stride if i == 0 else 1)
                                     for i in range(blocks)])

    def forward(self, x):
        return self.layer(x)


class TradesWideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise SpecRobustError(f"WideResNet depth must be 6n+4, got {depth}")
        blocks = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.block1 = TradesGroup(blocks, widths[0], widths[1], 1)
        self.block2 = TradesGroup(blocks, widths[1], widths[2], 2)
        self.block3 = TradesGroup(blocks, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


# Zoo entries: (num_classes, in_channels) -> model.
rb_wrn28_10 = MODELS.add("rb_wrn28_10", partial(TradesWideResNet, 28, 10))
rb_wrn34_10 = MODELS.add("rb_wrn34_10", partial(TradesWideResNet, 34, 10))
rb_wrn34_20 = MODELS.add("rb_wrn34_20", partial(TradesWideResNet, 34, 20))
rb_wrn70_16 = MODELS.add("rb_wrn70_16", partial(TradesWideResNet, 70, 16))
