"""Any network of the engine's operations, as data: a :class:`GraphConfig` (a list of
:class:`Layer` in execution order) and the ``nn.Module`` it builds, :class:`GraphNet`.

This is what ``fireforge import`` makes of an ONNX graph, and what every command accepts beside
the SqueezeNet presets (:mod:`.model`). The layers are the engine's own operations, so the
compiler lowers them one to one:

========== ===========================================================================
op         meaning
========== ===========================================================================
``conv``   square 1x1 or 3x3 convolution, stride 1 or 2, symmetric zero padding, bias,
           then ReLU; ``relu=False`` only for the classifier (the last convolution, read
           by the global pool alone), whose signed output the quantizer shifts by a zero
           point (docs/numeric-contract.md)
``maxpool`` 3x3 stride-2 max pool in ceil mode
``add``    sum of two tensors of equal shape (the residual add)
``concat`` channel concatenation of its inputs, in order
``avgpool`` the global average pool that ends the network: the class scores
========== ===========================================================================

A layer's output tensor is named by the layer; the image is ``input``. Channel counts and
shapes follow from the layers, and :class:`GraphConfig` checks them when it is made.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch
from torch import nn

from ..hw.errors import FireforgeError
from ..hw.isa import Op
from .model import (
    ClassifierReLU,
    SqueezeNet,
    SqueezeNetConfig,
    conv_output_size,
    pool_output_size,
)

__all__ = ["Layer", "GraphConfig", "GraphNet", "AddLayer", "OPS", "INPUT", "layer_name",
           "config_from_dict", "build_model"]

INPUT = "input"
#: graph op -> the engine operation it lowers to (:mod:`fireforge.hw.ops`); a concatenation
#: lowers to none: its inputs write their channel slices of one tensor
OPS: dict[str, Op | None] = {"conv": Op.CONV, "maxpool": Op.MAXPOOL, "add": Op.ADD,
                             "concat": None, "avgpool": Op.AVGPOOL}


def layer_name(raw: str, taken: set[str]) -> str:
    """``raw`` made a module name (letters, digits, ``_``), unique among ``taken``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", raw).strip("_") or "layer"
    if name == INPUT:
        name = "input_"
    base, i = name, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


@dataclass(frozen=True)
class Layer:
    """One operation. ``out_channels``, ``kernel``, ``stride``, ``padding`` and ``relu`` are a
    convolution's; the other ops take theirs from their inputs."""

    name: str
    op: str
    inputs: tuple[str, ...]
    out_channels: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    relu: bool = True

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["inputs"] = list(self.inputs)
        if self.op != "conv":
            for key in ("out_channels", "kernel", "stride", "padding", "relu"):
                d.pop(key)
        return d


@dataclass(frozen=True)
class GraphConfig:
    """A network of :class:`Layer` in execution order, ending in ``avgpool``."""

    layers: tuple[Layer, ...]
    in_channels: int
    input_size: int
    #: where the network came from (an ONNX file's name, a module's class): reports only
    source: str = ""

    def __post_init__(self):
        layers = tuple(x if isinstance(x, Layer) else _layer_from_dict(x) for x in self.layers)
        object.__setattr__(self, "layers", layers)
        for name in ("in_channels", "input_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FireforgeError(f"graph {name} must be a positive int, not {value!r}")
        self.shapes()  # every check on the layers

    @property
    def num_classes(self) -> int:
        return self.shapes()[self.layers[-1].name][0]

    def shapes(self) -> dict[str, tuple[int, int, int]]:
        """``(C, H, W)`` of every tensor; raises :class:`FireforgeError` naming the first
        layer whose inputs do not suit it."""
        shapes = {INPUT: (self.in_channels, self.input_size, self.input_size)}
        if not self.layers:
            raise FireforgeError("a graph needs at least one layer")
        readers: dict[str, int] = {}
        for i, x in enumerate(self.layers):
            where = f"graph layer {x.name!r} ({x.op})"
            if x.op not in OPS:
                raise FireforgeError(f"{where}: unknown op; the ops are {', '.join(OPS)}")
            if not re.fullmatch(r"[A-Za-z0-9_]+", x.name) or x.name in shapes:
                raise FireforgeError(f"{where}: a layer name is letters, digits and _, unique, "
                                     f"and not {INPUT!r}")
            missing = [t for t in x.inputs if t not in shapes]
            if missing or not x.inputs:
                raise FireforgeError(f"{where}: reads {missing or 'nothing'}, which no earlier "
                                     f"layer writes")
            for t in x.inputs:
                readers[t] = readers.get(t, 0) + 1
            ins = [shapes[t] for t in x.inputs]
            arity = {"add": 2, "concat": None}.get(x.op, 1)
            if arity is not None and len(ins) != arity:
                raise FireforgeError(f"{where}: takes {arity} input(s), not {len(ins)}")
            if x.op == "conv":
                c, h, w = ins[0]
                if x.out_channels < 1 or x.kernel < 1 or x.stride < 1 or x.padding < 0:
                    raise FireforgeError(f"{where}: channels, kernel and stride must be positive")
                oh = conv_output_size(h, x.kernel, x.stride, x.padding)
                ow = conv_output_size(w, x.kernel, x.stride, x.padding)
                if oh < 1 or ow < 1:
                    raise FireforgeError(f"{where}: a {x.kernel}x{x.kernel} kernel does not fit "
                                         f"its {h}x{w} input")
                shapes[x.name] = (x.out_channels, oh, ow)
            elif x.op == "maxpool":
                c, h, w = ins[0]
                if pool_output_size(h) < 1 or pool_output_size(w) < 1:
                    raise FireforgeError(f"{where}: a 3x3 pool does not fit its {h}x{w} input")
                shapes[x.name] = (c, pool_output_size(h), pool_output_size(w))
            elif x.op == "add":
                if ins[0] != ins[1]:
                    raise FireforgeError(f"{where}: adds tensors of shapes {ins[0]} and {ins[1]}"
                                         f"; an add needs equal shapes")
                shapes[x.name] = ins[0]
            elif x.op == "concat":
                if len({s[1:] for s in ins}) != 1:
                    raise FireforgeError(f"{where}: concatenates maps of sizes "
                                         f"{[s[1:] for s in ins]}; they must be equal")
                shapes[x.name] = (sum(s[0] for s in ins), *ins[0][1:])
            else:  # avgpool
                if i != len(self.layers) - 1:
                    raise FireforgeError(f"{where}: the global pool must be the last layer")
                shapes[x.name] = (ins[0][0], 1, 1)
        if self.layers[-1].op != "avgpool":
            raise FireforgeError("a graph ends in its global average pool (avgpool), which "
                                 "gives the class scores")
        for x in self.layers:
            if x.op == "conv" and not x.relu and (
                    readers.get(x.name) != 1 or self.layers[-1].inputs != (x.name,)):
                raise FireforgeError(
                    f"graph layer {x.name!r} (conv) has no ReLU: fireforge's activations are "
                    f"unsigned 8-bit, so only the classifier (the convolution the global pool "
                    f"alone reads) may omit it; put a ReLU after it")
        return shapes

    def to_dict(self) -> dict:
        return {"graph": [x.to_dict() for x in self.layers], "in_channels": self.in_channels,
                "input_size": self.input_size, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> GraphConfig:
        unknown = set(d) - {"graph", "in_channels", "input_size", "source"}
        if unknown or "graph" not in d:
            raise FireforgeError(f"graph config has unknown keys {sorted(unknown)} or no "
                                 f"'graph'")
        try:
            return cls(tuple(d["graph"]), d["in_channels"], d["input_size"], d.get("source", ""))
        except (KeyError, TypeError) as e:
            raise FireforgeError(f"graph config is incomplete: {e}") from None

    def replace(self, **changes) -> GraphConfig:
        known = {"in_channels", "input_size", "source"}
        if set(changes) - known:
            raise FireforgeError(f"a graph's options are {', '.join(sorted(known))}, not "
                                 f"{sorted(set(changes) - known)}")
        return dataclasses.replace(self, **changes)


def _layer_from_dict(d: dict) -> Layer:
    try:
        return Layer(**{**d, "inputs": tuple(d["inputs"])})
    except (KeyError, TypeError) as e:
        raise FireforgeError(f"graph layer {d!r} is malformed: {e}") from None


class AddLayer(nn.Module):
    """The residual add (a module, so the summary sees it)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class _Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, 1)


class GraphNet(nn.Module):
    """The float network of a :class:`GraphConfig`: ``forward`` takes normalized images
    ``(N, in_channels, H, W)`` and returns the class scores ``(N, classes)``.

    Its state_dict holds ``layers.NAME.weight`` and ``layers.NAME.bias`` per convolution."""

    def __init__(self, config: GraphConfig):
        super().__init__()
        self.config = config
        shapes = config.shapes()
        modules: dict[str, nn.Module] = {}
        for x in config.layers:
            if x.op == "conv":
                modules[x.name] = nn.Conv2d(shapes[x.inputs[0]][0], x.out_channels, x.kernel,
                                            x.stride, x.padding)
            elif x.op == "maxpool":
                modules[x.name] = nn.MaxPool2d(3, 2, ceil_mode=True)
            elif x.op == "add":
                modules[x.name] = AddLayer()
            elif x.op == "concat":
                modules[x.name] = _Concat()
            else:
                modules[x.name] = nn.AdaptiveAvgPool2d(1)
        self.layers = nn.ModuleDict(modules)
        classifier = config.layers[-1].inputs[0]
        # the classifier's ReLU lets a little gradient through while training (model.py)
        self._relus = {x.name: ClassifierReLU() if x.name == classifier else nn.ReLU()
                       for x in config.layers if x.op == "conv" and x.relu}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.dim() != 4 or x.shape[1] != c.in_channels:
            raise FireforgeError(f"input of shape {tuple(x.shape)}: this model takes (N, "
                                 f"{c.in_channels}, {c.input_size}, {c.input_size}) images")
        env = {INPUT: x}
        for layer in c.layers:
            y = self.layers[layer.name](*(env[t] for t in layer.inputs))
            if layer.name in self._relus:
                relu = self._relus[layer.name]
                relu.train(self.training)
                y = relu(y)
            env[layer.name] = y
        return torch.flatten(env[c.layers[-1].name], 1)

    def convs(self) -> list[tuple[str, nn.Conv2d]]:
        """Every convolution, in execution order, with its state_dict prefix."""
        return [(f"layers.{x.name}", self.layers[x.name]) for x in self.config.layers
                if x.op == "conv"]

    def role(self, prefix: str) -> str:
        """What a convolution does, for compression's per-role densities: ``stem`` (reads the
        image), ``classifier`` (read by the global pool), else by kernel size."""
        name = prefix.removeprefix("layers.")
        layer = next(x for x in self.config.layers if x.name == name)
        if INPUT in layer.inputs:
            return "stem"
        if self.config.layers[-1].inputs == (name,):
            return "classifier"
        return "expand3x3" if layer.kernel == 3 else "squeeze"


def config_from_dict(d: dict):
    """A checkpoint's stored config: a :class:`GraphConfig` (it has a ``graph``) or a
    :class:`SqueezeNetConfig`."""
    if not isinstance(d, dict):
        raise FireforgeError(f"model config is not a JSON object: {d!r}")
    return GraphConfig.from_dict(d) if "graph" in d else SqueezeNetConfig.from_dict(d)


def build_model(config) -> nn.Module:
    """The float network of ``config``: a :class:`SqueezeNet` or a :class:`GraphNet`."""
    return GraphNet(config) if isinstance(config, GraphConfig) else SqueezeNet(config)

