"""A small CNN for CPU-sized runs on 28x28 and 32x32 inputs.

Two conv stages (two 3x3 conv + batch-norm + ReLU each, then 2x2 max-pool), a 4x4 adaptive
average pool so any input size from 16 px up gives the same head, and a two-layer classifier.
Batch-norm is kept on purpose: the paper's models have it, and SAR's two training-mode forward
passes interact with its statistics. The first layer is a 3x3 convolution, as in the paper's
kernel analysis.

Width 16 (83k parameters with one input channel) is the default because CPU time decides what a
demo can train: width 32 costs about three times as much per step on a CPU.
"""

from __future__ import annotations

from torch import nn

from specrobust.models.zoo import register_model


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            *_conv(in_channels, width), *_conv(width, width), nn.MaxPool2d(2),
            *_conv(width, 2 * width), *_conv(2 * width, 2 * width), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model()
def cnn_small(num_classes: int = 10, in_channels: int = 3) -> SmallCNN:
    return SmallCNN(num_classes, in_channels)
