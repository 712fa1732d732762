"""ResNet-18 and ResNet-50 with the CIFAR stem (3x3 conv, stride 1, no max-pool), as in the
authors' code; the key layout is also that of RobustBench's CIFAR ResNets and of the natural
ResNet-18 that ships with pyautoattack."""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from specrobust.models.zoo import register_model


class BasicBlock(nn.Module):
    expansion = 1  # output width over ``planes``

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4  # output width over ``planes``

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        width = self.expansion * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, width, 1, stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def stages(block, blocks_per_stage, expansion: int | None = None) -> list[nn.Sequential]:
    """The four stages of a CIFAR ResNet (widths 64 to 512, stride 2 from the second on), each
    a sequence of ``block(in_planes, planes, stride)``; a block's output width is
    ``expansion * planes`` (``block.expansion`` unless given)."""
    expansion = block.expansion if expansion is None else expansion
    built, in_planes = [], 64
    for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stage,
                                                 strict=True)):
        layers = []
        for position in range(blocks):
            layers.append(block(in_planes, planes, 2 if index > 0 and position == 0 else 1))
            in_planes = planes * expansion
        built.append(nn.Sequential(*layers))
    return built


class ResNet(nn.Module):
    def __init__(self, blocks_per_stage=(2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3,
                 block: type[nn.Module] = BasicBlock):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages(block, blocks_per_stage)
        self.linear = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@register_model()
def resnet18(num_classes: int = 10, in_channels: int = 3) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes, in_channels)


@register_model()
def resnet50(num_classes: int = 10, in_channels: int = 3) -> ResNet:
    return ResNet((3, 4, 6, 3), num_classes, in_channels, Bottleneck)
