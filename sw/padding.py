"""Channel padding: any channel counts on an array of several input lanes.

With ``lanes`` input lanes every activation word is ``lanes`` channels of one pixel, so each
input of a concatenation must start on a multiple of ``lanes`` channels. Where one does not,
the compiler pads: the convolution writing the slice before it gets zero output channels (zero
weights, zero bias: ReLU of 0 is 0) up to the next multiple, and every convolution reading the
concatenation gets zero weights for those channels. The integers of every real channel are
unchanged; the cost is the zero channels' weights, activations and cycles, which ``fireforge
compile`` reports.

A tensor's channel *map* gives the stored channel of each real one; pools and adds keep the
map of their input.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..hw.errors import FireforgeError
from ..hw.isa import Op
from .quant import LOGITS, IntNetwork, Node, Tensor

__all__ = ["Padding", "plan_padding", "pad_network", "pad_weights"]


@dataclass
class Padding:
    #: tensor -> the stored channel of each real channel (only tensors that have gaps)
    maps: dict[str, np.ndarray]
    #: node -> (real input channels, real output channels) of the nodes that changed
    real: dict[str, tuple[int, int]]

    @property
    def zero_channels(self) -> int:
        """Zero channels added to the tensors."""
        return sum(int(m[-1]) + 1 - len(m) for m in self.maps.values())


def plan_padding(nodes: list[Node], tensors: dict[str, Tensor],
                 lanes: int) -> tuple[list[Node], dict[str, Tensor], Padding]:
    """The nodes and tensors with every concatenation slice on a multiple of ``lanes``
    channels (unchanged, and an empty :class:`Padding`, where all already are)."""
    writers: dict[str, list[Node]] = {}
    for n in nodes:
        writers.setdefault(n.output, []).append(n)
    maps: dict[str, np.ndarray] = {}
    out_pad: dict[str, tuple[int, int]] = {}  # node -> (stored offset, stored channels)
    for t, ws in writers.items():
        if len(ws) < 2 or all(n.out_offset % lanes == 0 for n in ws):
            continue
        ws = sorted(ws, key=lambda n: n.out_offset)
        at, stored = 0, []
        for i, n in enumerate(ws):
            c = n.out_shape[0]
            width = c if i == len(ws) - 1 else -(-c // lanes) * lanes
            if width != c and n.op is not Op.CONV:
                raise FireforgeError(
                    f"layer {n.name} ({n.op.name}) writes {c} channels of {t}, and the next "
                    f"input of the concatenation must start on a multiple of {lanes} channels; "
                    f"fireforge pads convolutions only: give it a multiple of {lanes} channels, "
                    f"or compile for a configuration with fewer rows")
            stored.extend(range(at, at + c))
            out_pad[n.name] = (at, width)
            at += width
        maps[t] = np.array(stored)
    if not maps:
        return nodes, tensors, Padding({}, {})
    # pools and adds pass their input's map on
    for n in nodes:
        if n.op in (Op.MAXPOOL, Op.ADD) and n.inputs[0] in maps:
            if n.op is Op.ADD and not np.array_equal(maps[n.inputs[0]],
                                                     maps.get(n.inputs[1], np.array([]))):
                raise FireforgeError(f"layer {n.name} adds tensors whose channels are padded "
                                     f"differently; give the concatenations before it "
                                     f"multiples of {lanes} channels")
            if n.out_offset or n.output in maps:
                raise FireforgeError(f"layer {n.name} writes a padded tensor into a "
                                     f"concatenation; give its channels a multiple of {lanes}")
            maps[n.output] = maps[n.inputs[0]]
        if n.op is Op.AVGPOOL and n.inputs[0] in maps:
            raise FireforgeError(f"the global pool {n.name} reads a padded concatenation: the "
                                 f"classes would have gaps; end in a convolution")
    new_tensors = {name: replace(t, shape=(int(maps[name][-1]) + 1, *t.shape[1:]))
                   if name in maps else t for name, t in tensors.items()}
    new_nodes, real = [], {}
    for n in nodes:
        in_c = tensors[n.inputs[0]].shape[0]
        c = n.out_shape[0]
        if n.name in out_pad:
            offset, width = out_pad[n.name]
            n2 = replace(n, out_offset=offset, out_shape=(width, *n.out_shape[1:]))
        elif n.op in (Op.MAXPOOL, Op.ADD) and n.output in maps:
            n2 = replace(n, out_shape=new_tensors[n.output].shape)
        else:
            n2 = n
        if n2 is not n or (n.op is Op.CONV and n.inputs[0] in maps):
            real[n.name] = (in_c, c)
        new_nodes.append(n2)
    return new_nodes, new_tensors, Padding(maps, real)


def _grow(a: np.ndarray, out_c: int, in_c: int, cols: np.ndarray) -> np.ndarray:
    """Weights ``a`` (real out x real in x k x k) in an ``out_c x in_c`` array of zeros: the
    real output channels first, the real input channels at ``cols``."""
    b = np.zeros((out_c, in_c, *a.shape[2:]), a.dtype)
    b[:a.shape[0], cols] = a
    return b


def pad_weights(a: np.ndarray, n: Node, tensors: dict[str, Tensor],
                padding: Padding) -> np.ndarray:
    """A convolution's weights or indices ``a`` (real channels) as the padded node ``n`` of
    :func:`plan_padding` stores them (unchanged where ``n`` has no padding)."""
    if n.name not in padding.real:
        return a
    cols = padding.maps.get(n.inputs[0], np.arange(a.shape[1]))
    return _grow(a, n.out_shape[0], tensors[n.inputs[0]].shape[0], cols)


def pad_network(net: IntNetwork, nodes: list[Node], tensors: dict[str, Tensor],
                padding: Padding) -> IntNetwork:
    """``net`` (quantized on the real channels) on the padded ``nodes`` and ``tensors`` of
    :func:`plan_padding`: zero weights (index 0), bias and multiplier for the added output
    channels, zero weights for the added input channels."""
    if not padding.maps:
        return net
    out = []
    for q, n in zip(net.nodes, nodes, strict=True):
        q = replace(q, node=n)
        if q.node.op is Op.CONV and q.node.name in padding.real:
            oc = n.out_shape[0]
            q.weights, q.indices = (pad_weights(q.weights, n, tensors, padding),
                                    pad_weights(q.indices, n, tensors, padding))
            pad = oc - len(q.bias)
            q.bias = np.concatenate([q.bias, np.zeros(pad, q.bias.dtype)])
            q.mult = np.concatenate([q.mult, np.zeros(pad, q.mult.dtype)])
        out.append(q)
    scaled = {name: replace(t, scale=net.tensors[name].scale, zero=net.tensors[name].zero)
              if name in net.tensors else t for name, t in tensors.items()}
    if LOGITS in net.tensors:
        scaled[LOGITS] = net.tensors[LOGITS]
    return IntNetwork(out, scaled, net.pad_value)
