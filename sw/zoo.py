"""Networks that are not SqueezeNets, written as plain PyTorch modules: what a user brings to
``fireforge import`` (through ONNX, or :func:`fireforge.sw.commands.imports.import_module`).

:class:`ResNet8` is MLPerf Tiny's image-classification reference shape (Banbury et al. 2021:
a 16-channel 3x3 stem, three residual stacks of 16, 32 and 64 channels, the last two starting
with a stride-2 convolution and a 1x1 stride-2 shortcut, batch norm, a global average pool and
a dense layer) in fireforge's form: fireforge's activations are unsigned, so a ReLU follows every
convolution, the shortcuts' included, *before* the residual add, where the reference adds the
second convolution's signed output to a shortcut without ReLU and applies ReLU after. The add
of two ReLU outputs needs no ReLU after it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResNet8"]


def _conv_bn(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class _Stack(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3, 1)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + (self.shortcut(x) if self.shortcut is not None else x)


class ResNet8(nn.Module):
    """ResNet-8 for ``in_channels`` x 32 x 32 images and ``num_classes`` classes."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10,
                 widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.num_classes = num_classes
        self.stem = _conv_bn(in_channels, widths[0], 3, 1)
        self.stacks = nn.Sequential(_Stack(widths[0], widths[0], 1),
                                    _Stack(widths[0], widths[1], 2),
                                    _Stack(widths[1], widths[2], 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stacks(self.stem(x))), 1))
