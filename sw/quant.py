"""Lowering and fixed-point quantization: a float SqueezeNet to the integer network of
docs/numeric-contract.md.

:func:`lower` walks the module tree into a list of :class:`Node` (one per accelerator operation)
and refuses, by name, any layer the accelerator cannot run. :func:`calibrate` measures one scale
per activation tensor on a few hundred images. :func:`quantize` turns every node into integers:
int8 weights (through the layer's codebook), int32 biases in accumulator units, per-channel
requantization multipliers with one shift per layer, and proves every accumulator's width.

Scales: an activation tensor ``t`` holds ``real = scale_t * q`` with ``q`` in 0..255. The input
is raw pixels (scale 1): the normalization ``(p / 255 - mean) / std`` (scalar mean on the pixel
grid, scalar std) is folded into the first convolution, and its padding uses the pixel
``255 * mean``, which normalizes to exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..hw.errors import FireforgeError
from ..hw.isa import (
    ACC_BITS,
    ACT_MAX,
    MAX_SHIFT,
    MULT_BITS,
    SUPPORTED_KERNELS,
    SUPPORTED_STRIDES,
    WEIGHT_BITS,
    Op,
    identity_codebook,
)
from .compress import SharedLayer
from .data import normalize
from .graph import OPS as GRAPH_OPS
from .graph import GraphNet, build_model
from .model import Fire, SqueezeNet, conv_output_size, pool_output_size

__all__ = ["Node", "Tensor", "lower", "calibrate", "quantize", "IntNetwork", "QNode",
           "choose_multipliers"]

INPUT = "input"
LOGITS = "logits"


@dataclass
class Tensor:
    name: str
    shape: tuple[int, int, int]  #: (C, H, W)
    scale: float = 1.0
    #: the stored value of real 0 (``real = scale * (q - zero)``): 0 but for a classifier
    #: without ReLU, whose negative scores need room below it
    zero: int = 0


@dataclass
class Node:
    """One accelerator operation of the lowered network."""

    name: str  #: conv: its state_dict prefix; pools and adds: a module path
    op: Op
    inputs: list[str]
    output: str
    out_shape: tuple[int, int, int]  #: the shape this node writes (its channel slice)
    out_offset: int = 0  #: first channel it writes in ``output``
    conv: nn.Conv2d | None = None
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    #: a convolution followed by ReLU (all but a classifier imported without one)
    relu: bool = True


def _check_conv(name: str, conv: nn.Conv2d) -> tuple[int, int, int]:
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    if (k[0] != k[1] or k[0] not in SUPPORTED_KERNELS or s[0] != s[1]
            or s[0] not in SUPPORTED_STRIDES or p[0] != p[1] or p[0] > k[0] // 2
            or conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros"):
        raise FireforgeError(
            f"layer {name} (Conv2d kernel {k}, stride {s}, padding {p}, groups {conv.groups}, "
            f"dilation {conv.dilation}) is not supported by the accelerator: it runs square "
            f"{'/'.join(map(str, SUPPORTED_KERNELS))}-pixel kernels with stride "
            f"{'/'.join(map(str, SUPPORTED_STRIDES))}, padding up to kernel//2, no groups")
    return k[0], s[0], p[0]


def unsupported(config) -> str | None:
    """Why the accelerator cannot run a network of ``config`` (a
    :class:`~.model.SqueezeNetConfig` or :class:`~.graph.GraphConfig`), or None: :func:`lower`
    on its shapes alone."""
    with torch.device("meta"):
        model = build_model(config)
    try:
        lower(model)
    except FireforgeError as e:
        return str(e)
    return None


def lower(model: nn.Module) -> tuple[list[Node], dict[str, Tensor]]:
    """The network as accelerator operations plus the activation tensors they connect.

    Raises :class:`FireforgeError` naming the first layer the accelerator does not support.
    """
    if isinstance(model, GraphNet):
        return _lower_graph(model)
    if not isinstance(model, SqueezeNet):
        raise FireforgeError(f"the compiler takes a fireforge SqueezeNet or an imported graph "
                             f"(fireforge import), not {type(model).__name__}")
    cfg = model.config
    tensors = {INPUT: Tensor(INPUT, (cfg.in_channels, cfg.input_size, cfg.input_size))}
    nodes: list[Node] = []
    cur = INPUT

    def conv_node(name, conv, src, dst, offset=0, dst_channels=None):
        k, s, p = _check_conv(name, conv)
        c, h, w = tensors[src].shape
        if conv.in_channels != c:
            raise FireforgeError(f"layer {name} takes {conv.in_channels} channels, gets {c}")
        oh, ow = conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)
        shape = (conv.out_channels, oh, ow)
        total = (dst_channels or conv.out_channels, oh, ow)
        if dst in tensors and tensors[dst].shape != total:
            raise FireforgeError(f"layer {name} writes {shape} into {dst} of "
                                 f"{tensors[dst].shape}")
        tensors.setdefault(dst, Tensor(dst, total))
        nodes.append(Node(name, Op.CONV, [src], dst, shape, offset, conv, k, s, p))
        return dst

    def walk(prefix: str, modules: list[tuple[str, nn.Module]]):
        nonlocal cur
        i = 0
        while i < len(modules):
            name, m = modules[i]
            path = f"{prefix}.{name}"
            nxt = modules[i + 1][1] if i + 1 < len(modules) else None
            if isinstance(m, nn.Conv2d):
                if not isinstance(nxt, nn.ReLU):
                    raise FireforgeError(f"layer {path} (Conv2d) is not followed by ReLU: the "
                                         f"accelerator's activations are unsigned")
                cur = conv_node(path, m, cur, path)
                i += 2
                continue
            if isinstance(m, nn.MaxPool2d):
                if (m.kernel_size, m.stride, m.padding, m.dilation) not in (
                        (3, 2, 0, 1), ((3, 3), (2, 2), 0, 1)) or not m.ceil_mode:
                    raise FireforgeError(f"layer {path} (MaxPool2d kernel {m.kernel_size}, stride "
                                         f"{m.stride}, ceil_mode {m.ceil_mode}) is not supported:"
                                         f" the accelerator pools 3x3/2 in ceil mode")
                c, h, w = tensors[cur].shape
                shape = (c, pool_output_size(h), pool_output_size(w))
                tensors[path] = Tensor(path, shape)
                nodes.append(Node(path, Op.MAXPOOL, [cur], path, shape, kernel=3, stride=2))
                cur = path
            elif isinstance(m, Fire):
                src = cur
                squeeze = conv_node(f"{path}.squeeze", m.squeeze, src, f"{path}.squeeze")
                e1, e3 = m.expand1x1.out_channels, m.expand3x3.out_channels
                cat = f"{path}.cat"
                conv_node(f"{path}.expand1x1", m.expand1x1, squeeze, cat, 0, e1 + e3)
                conv_node(f"{path}.expand3x3", m.expand3x3, squeeze, cat, e1, e1 + e3)
                cur = cat
                if m.bypass is not None:
                    other = src
                    if m.bypass == "conv":
                        other = conv_node(f"{path}.bypass_conv", m.bypass_conv, src,
                                          f"{path}.bypass_conv")
                    out = f"{path}.add"
                    tensors[out] = Tensor(out, tensors[cat].shape)
                    nodes.append(Node(out, Op.ADD, [cat, other], out, tensors[cat].shape))
                    cur = out
            elif isinstance(m, nn.Dropout):
                pass  # identity at inference
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                size = m.output_size
                if size not in (1, (1, 1)) or nxt is not None:
                    raise FireforgeError(f"layer {path} (AdaptiveAvgPool2d to {size}) is not "
                                         f"supported: only a final global average pool")
                c = tensors[cur].shape[0]
                tensors[LOGITS] = Tensor(LOGITS, (c, 1, 1))
                nodes.append(Node(path, Op.AVGPOOL, [cur], LOGITS, (c, 1, 1)))
                cur = LOGITS
            else:
                raise FireforgeError(f"layer {path} ({type(m).__name__}) is not supported by "
                                     f"the accelerator (Conv2d+ReLU, Fire, MaxPool2d 3x3/2 ceil,"
                                     f" a final AdaptiveAvgPool2d)")
            i += 1

    walk("features", list(model.features.named_children()))
    walk("classifier", list(model.classifier.named_children()))
    if cur != LOGITS:
        raise FireforgeError("the network does not end in a global average pool")
    return nodes, tensors


def _lower_graph(model) -> tuple[list[Node], dict[str, Tensor]]:
    """:func:`lower` of a :class:`~.graph.GraphNet`: a node per layer, but for a ``concat``,
    whose inputs are written straight into its tensor at their channel offsets (so a
    concatenation costs nothing, as in a Fire module)."""
    cfg = model.config
    shapes = cfg.shapes()
    by_name = {x.name: x for x in cfg.layers}
    readers: dict[str, list[str]] = {}
    for x in cfg.layers:
        for t in x.inputs:
            readers.setdefault(t, []).append(x.name)
    into: dict[str, tuple[str, int]] = {}  # layer -> (the concat it is written into, offset)
    for x in cfg.layers:
        if x.op != "concat":
            continue
        offset = 0
        for t in x.inputs:
            source = by_name.get(t)
            if source is None or source.op in ("concat", "avgpool") or readers[t] != [x.name]:
                why = ("the image" if source is None else
                       "another concatenation" if source.op == "concat" else
                       f"also read by {', '.join(r for r in readers[t] if r != x.name)}")
                raise FireforgeError(
                    f"layer {x.name} (concat) concatenates {t}, which is {why}: the engine "
                    f"concatenates by writing each input into its channel slice, so each input "
                    f"must be a convolution, pool or add that only the concatenation reads")
            into[t] = (x.name, offset)
            offset += shapes[t][0]
    tensors = {INPUT: Tensor(INPUT, shapes[INPUT])}
    nodes: list[Node] = []
    for x in cfg.layers:
        if x.op == "concat":
            continue
        name = f"layers.{x.name}"
        srcs = list(x.inputs)
        dst, offset = into.get(x.name, (x.name, 0))
        if x.op == "avgpool":
            dst = LOGITS
        shape = shapes[x.name]
        tensors.setdefault(dst, Tensor(dst, shapes[dst] if dst != LOGITS else shape))
        op = GRAPH_OPS[x.op]
        if op is Op.CONV:
            conv = model.layers[x.name]
            k, s, p = _check_conv(name, conv)
            nodes.append(Node(name, op, srcs, dst, shape, offset, conv, k, s, p, x.relu))
        elif op is Op.MAXPOOL:
            nodes.append(Node(name, op, srcs, dst, shape, offset, kernel=3, stride=2))
        else:
            nodes.append(Node(name, op, srcs, dst, shape, offset))
    return nodes, tensors


# ------------------------------------------------------------------------------- float reference
def _float_conv(n: Node, env: dict) -> torch.Tensor:
    y = n.conv(env[n.inputs[0]])
    return F.relu(y) if n.relu else y


#: each operation in float (calibration runs it): (node, tensors so far) -> the channels it
#: writes
FLOAT = {
    Op.CONV: _float_conv,
    Op.MAXPOOL: lambda n, env: F.max_pool2d(env[n.inputs[0]], 3, 2, ceil_mode=True),
    Op.ADD: lambda n, env: env[n.inputs[0]] + env[n.inputs[1]],
    Op.AVGPOOL: lambda n, env: env[n.inputs[0]].mean(dim=(2, 3), keepdim=True),
}


def run_float(nodes: list[Node], x: torch.Tensor,
              tensors: dict[str, Tensor]) -> dict[str, torch.Tensor]:
    """Execute the lowered float network (normalized input); every tensor by name. A node
    that writes a channel slice of a larger tensor (a concatenation's input) fills its slice."""
    env = {INPUT: x}
    for n in nodes:
        y = FLOAT[n.op](n, env)
        whole = tensors[n.output].shape[0]
        if y.shape[1] == whole:
            env[n.output] = y
            continue
        if n.output not in env:
            env[n.output] = y.new_zeros((y.shape[0], whole, *y.shape[2:]))
        env[n.output][:, n.out_offset:n.out_offset + y.shape[1]] = y
    return env


def calibrate(nodes: list[Node], tensors: dict[str, Tensor], images: np.ndarray, mean, std,
              percentile: float = 99.99, batch_size: int = 128) -> None:
    """Set ``tensors[t].scale`` so the ``percentile`` of each activation maps to 255."""
    samples: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            env = run_float(nodes, normalize(images[i:i + batch_size], mean, std), tensors)
            for name, t in env.items():
                if name in (INPUT, LOGITS):
                    continue
                flat = t.flatten().numpy()
                if flat.size > 200_000:  # subsample big maps; the percentile barely moves
                    flat = flat[:: flat.size // 200_000 + 1]
                samples.setdefault(name, []).append(flat)
    signed = {n.output for n in nodes if n.op is Op.CONV and not n.relu}
    for name, parts in samples.items():
        values = np.concatenate(parts)
        peak = float(np.percentile(values, percentile)) if values.size else 0.0
        low = min(float(np.percentile(values, 100 - percentile)), 0.0) if name in signed else 0.0
        if peak <= 0 and low == 0:
            peak = float(values.max()) if values.size and values.max() > 0 else 1.0
        tensors[name].scale = (max(peak, 0.0) - low) / ACT_MAX
        # real 0 on the grid, so the padding and the class scores' offset stay exact
        tensors[name].zero = int(round(-low / tensors[name].scale))
    # A max pool neither creates nor changes values: its output keeps its input's scale.
    for n in nodes:
        if n.op is Op.MAXPOOL:
            tensors[n.output].scale = tensors[n.inputs[0]].scale
    if LOGITS in tensors:
        src = next(n for n in nodes if n.op is Op.AVGPOOL).inputs[0]
        c, h, w = tensors[src].shape
        tensors[LOGITS].scale = tensors[src].scale / (h * w)
        tensors[LOGITS].zero = tensors[src].zero * h * w  # in the sums


# ------------------------------------------------------------------------------- integer network
@dataclass
class QNode:
    """A node with its integers."""

    node: Node
    bits: int = 8
    weights: np.ndarray | None = None  #: int8 (out, in, k, k), the decoded weights
    indices: np.ndarray | None = None  #: codebook indices, same shape
    codebook: np.ndarray | None = None  #: int8 (2**bits,)
    bias: np.ndarray | None = None  #: int64 per output channel, accumulator units
    mult: np.ndarray | None = None  #: per output channel (CONV) or (mult1, mult2) (ADD)
    shift: int = 0
    acc_bits: int = 0  #: proven accumulator width (sign included)
    pad_value: int = 0
    density: float = 1.0
    info: dict = field(default_factory=dict)


@dataclass
class IntNetwork:
    nodes: list[QNode]
    tensors: dict[str, Tensor]
    pad_value: int  #: the input pixel that normalizes to 0


def choose_multipliers(ratios: np.ndarray, what: str) -> tuple[np.ndarray, int]:
    """``(M, S)`` with ``M / 2**S`` as close to ``ratios`` as ``MULT_BITS`` allow: the largest
    shift whose largest multiplier still fits."""
    ratios = np.asarray(ratios, dtype=np.float64)
    peak = float(ratios.max()) if ratios.size else 0.0
    if peak <= 0:
        return np.zeros(ratios.shape, np.int64), 0
    limit = (1 << MULT_BITS) - 1
    shift = int(np.floor(np.log2(limit / peak)))
    shift = min(shift, MAX_SHIFT)
    while shift >= 0 and np.round(peak * 2.0 ** shift) > limit:
        shift -= 1
    if shift < 0:
        raise FireforgeError(f"{what}: requantization ratio {peak:.3g} needs a multiplier above "
                             f"{limit}; the activation scales are inconsistent (recalibrate)")
    return np.round(ratios * 2.0 ** shift).astype(np.int64), shift


def _quantize_weights(conv: nn.Conv2d, shared: SharedLayer | None, fold: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """int8 weights, indices, int8 codebook, per-channel weight scale, bits."""
    if shared is not None:
        codebook, step = shared.int8_codebook()
        indices = shared.indices.astype(np.int64)
        weights = codebook[indices].astype(np.int64)
        scale = shared.scale.astype(np.float64) * step * fold
        return weights, indices, codebook, scale, shared.bits
    w = conv.weight.detach().double().numpy() * fold
    qmax = (1 << (WEIGHT_BITS - 1)) - 1
    scale = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / qmax
    scale[scale == 0] = 1.0
    weights = np.clip(np.round(w / scale.reshape(-1, 1, 1, 1)), -qmax, qmax).astype(np.int64)
    indices = weights & 0xFF  # the identity codebook: index i decodes to int8(i)
    return weights, indices, identity_codebook(), scale, WEIGHT_BITS


def _quantize_conv(q: QNode, tensors, shared: SharedLayer | None, mean0: float, std0: float,
                   pad_value: int) -> None:
    n = q.node
    conv = n.conv
    first = n.inputs[0] == INPUT
    fold = 1.0 / (ACT_MAX * std0) if first else 1.0
    weights, indices, codebook, wscale, bits = _quantize_weights(conv, shared, fold)
    b = (conv.bias.detach().double().numpy() if conv.bias is not None
         else np.zeros(conv.out_channels))
    if first:  # normalization folded: x = (p - 255 mean) * fold
        b = b - conv.weight.detach().double().numpy().sum(axis=(1, 2, 3)) * mean0 / std0
        q.pad_value = pad_value
    a_in = 1.0 if first else tensors[n.inputs[0]].scale
    a_out = tensors[n.output].scale
    # (a classifier without ReLU stores real 0 at its zero point: the bias carries it)
    b = b + tensors[n.output].zero * a_out
    q.bias = np.round(b / (a_in * wscale)).astype(np.int64)
    q.mult, q.shift = choose_multipliers(a_in * wscale / a_out, n.name)
    in_max = ACT_MAX
    bound = int((np.abs(weights).reshape(len(weights), -1).sum(axis=1) * in_max
                 + np.abs(q.bias)).max())
    q.acc_bits = bound.bit_length() + 1
    if q.acc_bits > ACC_BITS:
        raise FireforgeError(f"layer {n.name}: worst-case accumulator needs {q.acc_bits} "
                             f"bits, more than the accelerator's {ACC_BITS}")
    q.weights, q.indices, q.codebook, q.bits = weights, indices, codebook, bits
    q.density = float(np.count_nonzero(weights)) / weights.size
    q.info = {"weight_scale": [float(v) for v in wscale], "acc_bound": bound}


def _quantize_maxpool(q: QNode, tensors, *_) -> None:
    """Nothing to choose: a max pool keeps its input's values and scale."""


def _quantize_add(q: QNode, tensors, *_) -> None:
    n = q.node
    a1, a2 = tensors[n.inputs[0]].scale, tensors[n.inputs[1]].scale
    a_out = tensors[n.output].scale
    q.mult, q.shift = choose_multipliers(np.array([a1 / a_out, a2 / a_out]), n.name)
    bound = int(ACT_MAX * q.mult.sum() + (1 << max(q.shift - 1, 0)))
    q.acc_bits = bound.bit_length() + 1


def _quantize_avgpool(q: QNode, tensors, *_) -> None:
    c, h, w = tensors[q.node.inputs[0]].shape
    q.acc_bits = (ACT_MAX * h * w).bit_length() + 1


#: each operation's integer parameters: (its QNode, the tensors, its shared weights, the
#: input's mean and std, the input's pad value) -> fills the QNode
QUANTIZE = {Op.CONV: _quantize_conv, Op.MAXPOOL: _quantize_maxpool, Op.ADD: _quantize_add,
            Op.AVGPOOL: _quantize_avgpool}


def quantize(nodes: list[Node], tensors: dict[str, Tensor], mean, std,
             shared: dict[str, SharedLayer] | None = None) -> IntNetwork:
    """Integers for every node (scales must be calibrated)."""
    shared = shared or {}
    if len(set(mean)) != 1 or len(set(std)) != 1:
        raise FireforgeError("input normalization must use one mean and one std for all "
                             "channels (as fireforge's data sets compute them)")
    mean0, std0 = float(mean[0]), float(std[0])
    pad_value = int(round(mean0 * ACT_MAX))
    if abs(pad_value - mean0 * ACT_MAX) > 1e-6:
        raise FireforgeError(f"input mean {mean0} is not on the pixel grid (k/255): padding "
                             f"could not be exact; retrain with this fireforge")
    out = []
    for n in nodes:
        q = QNode(n)
        QUANTIZE[n.op](q, tensors, shared.get(n.name), mean0, std0, pad_value)
        out.append(q)
    return IntNetwork(out, tensors, pad_value)
