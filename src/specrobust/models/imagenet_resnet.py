"""ImageNet ResNet-50 and Wide-ResNet-50-2 in torchvision's key layout, so that the published
ImageNet checkpoints (RobustBench's ImageNet L-inf models among them) load key for key without
torchvision, which does not import beside this project's torch build.

The layout (He et al. 2016; Zagoruyko and Komodakis 2016 for the wide variant): a 7x7 stride-2
stem (``conv1``, ``bn1``) and a 3x3 stride-2 max pool; four stages ``layer1``-``layer4`` of 3, 4,
6 and 3 bottleneck blocks (``conv1`` 1x1, ``conv2`` 3x3 carrying the stride, ``conv3`` 1x1 with
4x expansion, each followed by its batch norm; ``downsample.0``/``.1`` where the shape
changes); global average pooling and ``fc``. Wide-ResNet-50-2 doubles the bottleneck's inner
width. Parameter counts and the key list are checked against torchvision's published ones in
``tests/test_models.py``. ImageNet normalisation is the model's first layer
(``specrobust.models.DEFAULT_NORMALISATION``), so the model takes images in [0, 1].
"""

from __future__ import annotations

from torch import nn

from specrobust.models.zoo import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int, width: int):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride=stride,
                                                      bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


class ImageNetResNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], width_factor: int, num_classes: int,
                 in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_planes = 64
        for index, count in enumerate(blocks):
            planes = 64 * 2 ** index
            layer = []
            for block in range(count):
                layer.append(_Bottleneck(in_planes, planes, 2 if block == 0 and index else 1,
                                         planes * width_factor))
                in_planes = planes * _Bottleneck.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model()
def imagenet_resnet50(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    return ImageNetResNet((3, 4, 6, 3), 1, num_classes, in_channels)


@register_model()
def imagenet_wrn50_2(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    return ImageNetResNet((3, 4, 6, 3), 2, num_classes, in_channels)
