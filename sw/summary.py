"""Per-layer accounting of a SqueezeNet-family network: shapes, parameters, MACs, activations.

The table is measured on the real ``nn.Module`` (forward hooks on a copy built on PyTorch's
``meta`` device, so nothing is computed), never re-derived from the config by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .graph import AddLayer, build_model
from .model import Fire, SqueezeNet, SqueezeNetConfig, as_config

__all__ = ["LayerInfo", "ModelSummary", "summarize"]

#: bit widths whose weight storage the summary reports
WEIGHT_BITS = (8, 6, 4)


@dataclass(frozen=True)
class LayerInfo:
    name: str  #: state_dict prefix (convolutions) or module path (pools)
    kind: str  #: conv | maxpool | avgpool | add (bypass)
    in_shape: tuple[int, int, int]  #: (C, H, W)
    out_shape: tuple[int, int, int]
    kernel: int
    stride: int
    padding: int
    weights: int  #: kernel parameters
    biases: int
    macs: int  #: multiply-accumulates per image

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def activation_bytes(self) -> int:
        """Output size at 8 bits per value."""
        c, h, w = self.out_shape
        return c * h * w

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(params=self.params, activation_bytes=self.activation_bytes,
                 in_shape=list(self.in_shape), out_shape=list(self.out_shape))
        return d


@dataclass(frozen=True)
class ModelSummary:
    config: SqueezeNetConfig
    layers: tuple[LayerInfo, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def biases(self) -> int:
        return sum(layer.biases for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def largest_activation(self) -> LayerInfo:
        return max(self.layers, key=lambda layer: layer.activation_bytes)

    def weight_bytes(self, bits: int) -> int:
        """Kernel storage at ``bits`` per weight (biases are int32 and counted apart)."""
        return (self.weights * bits + 7) // 8

    def to_dict(self) -> dict:
        big = self.largest_activation
        return {
            "params": self.params,
            "weights": self.weights,
            "biases": self.biases,
            "macs": self.macs,
            "input": [self.config.in_channels, self.config.input_size, self.config.input_size],
            "num_classes": self.config.num_classes,
            "largest_activation": {"layer": big.name, "shape": list(big.out_shape),
                                   "bytes": big.activation_bytes},
            "weight_bytes": {str(b): self.weight_bytes(b) for b in WEIGHT_BITS},
            "bias_bytes": 4 * self.biases,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def format_table(self) -> str:
        head = (f"{'layer':<28} {'kind':<8} {'input':>13} {'output':>13} {'params':>10} "
                f"{'MACs':>13} {'act bytes':>10}")
        rows = [head, "-" * len(head)]
        for layer in self.layers:
            rows.append(
                f"{layer.name:<28} {layer.kind:<8} {_shape(layer.in_shape):>13} "
                f"{_shape(layer.out_shape):>13} {layer.params:>10,} {layer.macs:>13,} "
                f"{layer.activation_bytes:>10,}")
        rows.append("-" * len(head))
        rows.append(f"{'total':<28} {'':<8} {'':>13} {'':>13} {self.params:>10,} "
                    f"{self.macs:>13,}")
        big = self.largest_activation
        rows.append(f"MACs: {self.macs / 1e6:.1f} M   params: {self.params:,}   largest "
                    f"activation: {big.name} {_shape(big.out_shape)} ({big.activation_bytes:,} B)")
        rows.append("weight storage: " + ", ".join(
            f"{b}-bit {self.weight_bytes(b) / 1024:,.1f} KiB" for b in WEIGHT_BITS)
            + f"; biases (int32) {4 * self.biases / 1024:,.1f} KiB")
        return "\n".join(rows)


def _shape(s: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in s)


def summarize(model_or_config: SqueezeNet | SqueezeNetConfig) -> ModelSummary:
    """Measure every convolution and pool of the network (a preset's or an imported graph's,
    :mod:`.graph`) on one image."""
    config = as_config(model_or_config)
    with torch.device("meta"):
        model = build_model(config).eval()
    records: list[LayerInfo] = []

    def hook(name):
        def fn(module, inputs, output, name=name):
            in_shape = tuple(inputs[0].shape[1:])
            out_shape = tuple(output.shape[1:])
            if isinstance(module, nn.Conv2d):
                k, s, p = module.kernel_size[0], module.stride[0], module.padding[0]
                weights = module.weight.numel()
                biases = module.bias.numel() if module.bias is not None else 0
                per_output = module.in_channels // module.groups * k * k
                macs = per_output * out_shape[0] * out_shape[1] * out_shape[2]
                kind = "conv"
            elif isinstance(module, nn.MaxPool2d):
                k, s, p = module.kernel_size, module.stride, module.padding
                weights = biases = macs = 0
                kind = "maxpool"
            elif isinstance(module, (Fire, AddLayer)):
                k, s, p = 1, 1, 0
                weights = biases = macs = 0
                kind = "add"
                name = f"{name}.add" if isinstance(module, Fire) else name
            else:
                k, s, p = in_shape[1], 1, 0
                weights = biases = macs = 0
                kind = "avgpool"
            records.append(LayerInfo(name, kind, in_shape, out_shape, k, s, p, weights, biases,
                                     macs))
        return fn

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)) or (
                isinstance(module, Fire) and module.bypass is not None) or (
                isinstance(module, AddLayer)):
            module.register_forward_hook(hook(name))
    with torch.no_grad():
        model(torch.zeros(1, config.in_channels, config.input_size, config.input_size,
                          device="meta"))
    return ModelSummary(config, tuple(records))
