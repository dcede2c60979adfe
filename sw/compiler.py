"""The compiler: a (compressed) checkpoint to a Program directory (see :mod:`.program`).

Steps: lower the network (:func:`.quant.lower`), calibrate activation scales, quantize, plan the
activation memory (liveness-based first fit, so Fire squeeze outputs and dead tensors share
space), pack descriptors and memory images (:mod:`fireforge.hw.isa`), and write the manifest
with a fit report against a memory budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..hw.accelerator import capability_problems
from ..hw.config import CONFIGS, DEFAULT_CONFIG, AcceleratorConfig
from ..hw.conv import SUPPORTED_INDEX_BITS
from ..hw.errors import FireforgeError
from ..hw.isa import (
    CHANNEL_PARAMS_BYTES,
    DESCRIPTOR_BYTES,
    SPARSE_CHUNK,
    SPARSE_VALUE_BITS,
    WEIGHT_BITS,
    Descriptor,
    Op,
    WeightEncoding,
    identity_codebook,
    mask_word_bytes,
    pack_channel_params,
    pack_descriptor,
    pack_indices,
    pack_sparse,
)
from ..hw.ops import OPS
from ..hw.program import FORMAT, IMAGE_FILES, VERSION, InputSpec, Manifest, model_hash, sha256
from .checkpoint import Checkpoint, check_out, replace_folder, save_checkpoint, write_json
from .compress import SharedLayer
from .padding import Padding, pad_network, pad_weights, plan_padding
from .quant import INPUT, LOGITS, IntNetwork, Node, QNode, Tensor, calibrate, lower, quantize

__all__ = ["compile_checkpoint", "plan_memory", "channel_stride", "MemoryPlan", "Budget",
           "fit_report", "footprint", "DEFAULT_GROUP"]

#: output channels per weight word: the default configuration's columns (the manifest records
#: the value used)
DEFAULT_GROUP = CONFIGS[DEFAULT_CONFIG].columns
#: tensor base addresses are multiples of this many bytes
ALIGN = 16
CALIBRATION_IMAGES = 500


@dataclass
class MemoryPlan:
    addr: dict[str, int]  #: tensor -> byte address in activation memory
    size: dict[str, int]
    peak: int  #: activation memory bytes needed (to the end of the highest tensor)
    bank: dict[str, int]  #: tensor -> activation bank (all 0 with one bank)
    used: int  #: bytes the tensors occupy at their peak (``peak`` less the unused bank space)


def assign_banks(nodes: list[Node], banks: int) -> dict[str, int]:
    """The bank of every activation tensor such that no operation reads and writes the same
    bank (single-port banks serve one access a cycle): a two-colouring of the graph whose edges
    join each operation's inputs to its output. The input image goes to bank 0."""
    tensors = [INPUT] + [n.output for n in nodes if n.output != LOGITS]
    if banks == 1:
        return dict.fromkeys(tensors, 0)
    if banks != 2:
        raise FireforgeError(f"{banks} activation banks: 1 or 2")
    edges: dict[str, list[tuple[str, str]]] = {t: [] for t in tensors}
    for n in nodes:
        if n.output == LOGITS:
            continue
        for t in n.inputs:
            edges[t].append((n.output, n.name))
            edges[n.output].append((t, n.name))
    bank: dict[str, int] = {}
    for root in tensors:
        if root in bank:
            continue
        bank[root] = 0
        todo = [root]
        while todo:
            t = todo.pop()
            for u, via in edges[t]:
                if u not in bank:
                    bank[u] = 1 - bank[t]
                    todo.append(u)
                elif bank[u] == bank[t]:
                    raise FireforgeError(
                        f"{via}: its input and its output would share a single-port activation "
                        f"bank ({t} and {u}: the network's data flow has an odd cycle, as a "
                        f"bypass convolution makes). Compile for a configuration with dual-port "
                        f"activation memory (--config small or ecp5), or use simple or no "
                        f"bypasses")
    return bank


def channel_stride(channels: int, lanes: int) -> int:
    """Bytes per pixel of a tensor of ``channels`` channels: rounded up to whole activation
    words of ``lanes`` bytes (the array's input lanes), so every pixel starts a word."""
    return -(-channels // lanes) * lanes


def plan_memory(nodes: list[Node], tensors: dict[str, Tensor], align: int = ALIGN,
                banks: int = 1, bank_bytes: int | None = None, lanes: int = 1) -> MemoryPlan:
    """Placement of every activation tensor over its lifetime (in node steps): largest first,
    each at the lowest address free of the tensors whose lifetimes overlap its own.

    A tensor lives from the step that first writes it (the input: before step 0) to the last
    step that reads it, inclusive, so an operation never writes over its own input.

    With two banks (``bank_bytes`` each, single-port), :func:`assign_banks` decides each
    tensor's bank and the tensors of each bank are placed from the bank's first byte.
    """
    first: dict[str, int] = {INPUT: -1}
    last: dict[str, int] = {}
    for i, n in enumerate(nodes):
        first.setdefault(n.output, i)
        for t in n.inputs:
            last[t] = i
    if align % lanes:
        raise FireforgeError(f"lanes={lanes}: tensor alignment {align} is not a multiple")
    size = {t: math.prod(tensors[t].shape[1:]) * channel_stride(tensors[t].shape[0], lanes)
            for t in first if t != LOGITS}
    bank = assign_banks(nodes, banks)
    addr = {}
    peak = used = 0
    for b in range(banks):
        base = b * bank_bytes if banks > 1 else 0
        names = sorted((t for t in size if bank[t] == b), key=lambda t: (-size[t], first[t], t))
        placed: list[tuple[int, int, int, int]] = []  # (addr, end, first, last)
        for t in names:
            lo, hi = first[t], last.get(t, first[t])
            busy = sorted((a, e) for a, e, f, l in placed if not (l < lo or f > hi))
            cand = 0
            for a, e in busy:
                if cand + size[t] <= a:
                    break
                cand = max(cand, -(-e // align) * align)
            addr[t] = base + cand
            placed.append((cand, cand + size[t], lo, hi))
        top = max((e for _, e, _, _ in placed), default=0)
        if banks > 1 and top > bank_bytes:
            raise FireforgeError(f"the activations need {top:,} bytes in bank {b}, a bank "
                                 f"holds {bank_bytes:,}: this configuration runs smaller "
                                 f"inputs or narrower layers (a smaller preset, or "
                                 f"train with a smaller --input-size)")
        if placed:
            peak = base + top
        used += top
    return MemoryPlan(addr, size, peak, bank, used)


def _weight_stream(indices: np.ndarray, group: int, lanes: int = 1) -> np.ndarray:
    """Indices ``(out, in, k, k)`` in the array's order: groups of ``group`` output channels,
    then ky, kx, ci (input channels padded to a multiple of ``lanes``), then the channel within
    the group (missing channels and input channels: index 0, the weight 0)."""
    out_c, in_c = indices.shape[:2]
    groups = -(-out_c // group)
    padded = np.zeros((groups * group, channel_stride(in_c, lanes)) + indices.shape[2:],
                      dtype=np.int64)
    padded[:out_c, :in_c] = indices
    # (g, j, ci, ky, kx) -> (g, ky, kx, ci, j)
    return padded.reshape(groups, group, *padded.shape[1:]).transpose(0, 3, 4, 2, 1).ravel()


@dataclass(frozen=True)
class Budget:
    """On-chip bytes available for the program and maps, and where the number came from."""

    bytes: int
    source: str


def footprint(images: dict[str, bytes], act_bytes: int, num_classes: int) -> dict[str, int]:
    out = {"activations": act_bytes, "weights": len(images["weights.bin"]),
           "masks": len(images["masks.bin"]),
           "codebooks": len(images["codebooks.bin"]), "params": len(images["params.bin"]),
           "program": len(images["program.bin"]), "results": 4 * num_classes}
    out["total"] = sum(out.values())
    return out


def conv_weight_bytes(out_c: int, in_c: int, kernel: int, bits: int, group: int,
                      lanes: int) -> int:
    """Bytes of one convolution's weight image: its :func:`_weight_stream` packed at ``bits``,
    padded to a whole weight word (``group * lanes`` bytes), so the next layer starts a word."""
    indices = -(-out_c // group) * group * channel_stride(in_c, lanes) * kernel * kernel
    packed = (indices * bits + 7) // 8
    return packed + -packed % (group * lanes)


def stored_indices(n: Node, indices: np.ndarray, unfold: dict | None) -> np.ndarray:
    """A convolution's indices ``(out, in, k, k)`` as the array runs them: the stem on an
    unfolded input is a 1x1 convolution over its windows, in ``(ky, kx, ci)`` order."""
    if unfold and n.inputs == [INPUT]:
        return indices.transpose(0, 2, 3, 1).reshape(len(indices), -1, 1, 1)
    return indices


def store_sparse(dense_bytes: int, sparse_bytes: int) -> bool:
    """Whether a layer that could be either is stored sparse: where that is smaller (masks
    included). Sparse layers cost no cycles, so size alone decides."""
    return sparse_bytes < dense_bytes


def conv_weight_images(indices: np.ndarray, bits: int, group: int, lanes: int,
                       sparse: bool) -> tuple[WeightEncoding, bytes, bytes]:
    """One convolution's encoding, weight image and mask image, from its
    :func:`stored_indices`: dense (:func:`conv_weight_bytes`), or with ``sparse`` (the target
    decodes sparse layers) and indices of at most :data:`~.isa.SPARSE_VALUE_BITS` bits, sparse
    where that is smaller, masks included. Both weight images end on a weight word."""
    stream = _weight_stream(indices, group, lanes)
    word = group * lanes
    dense = pack_indices(stream, bits)
    dense += bytes(conv_weight_bytes(len(indices), indices.shape[1], indices.shape[2], bits,
                                     group, lanes) - len(dense))
    if sparse and bits <= SPARSE_VALUE_BITS and word % SPARSE_CHUNK == 0:
        masks, values = pack_sparse(stream, lanes, group)
        values += bytes(-len(values) % word)
        if store_sparse(len(dense), len(masks) + len(values)):
            return WeightEncoding.SPARSE, values, masks
    return WeightEncoding.DENSE, dense, b""


def param_entries(out_c: int, lanes: int) -> int:
    """Parameter entries of one convolution: one per output channel, rounded up to whole
    parameter words of ``lanes`` entries (the requantizer's lanes read a word)."""
    return -(-out_c // lanes) * lanes


def estimate_footprint(nodes: list[Node], tensors: dict[str, Tensor], plan: MemoryPlan,
                       group: int, lanes: int, unfold: dict | None, num_classes: int,
                       codebooks: dict[str, bytes], bits: dict[str, int],
                       indices: dict[str, np.ndarray] | None = None,
                       sparse: bool = False) -> dict[str, int]:
    """:func:`footprint` of the program these shapes compile to, before calibration: the memory
    images' sizes follow from the shapes, each convolution's index ``bits`` and its int8
    ``codebooks`` (stored once per distinct codebook, as :func:`_pack` stores them), and where
    the target decodes ``sparse`` layers, the shared layers' ``indices`` (as the nodes store
    them, before any unfolding)."""
    weights = masks = params = 0
    for n in nodes:
        if n.op is not Op.CONV:
            continue
        in_c, kernel = tensors[n.inputs[0]].shape[0], n.kernel
        if unfold and n.inputs == [INPUT]:
            in_c, kernel = tensors[INPUT].shape[0], 1
        if sparse and indices and n.name in indices:
            _, w, m = conv_weight_images(stored_indices(n, indices[n.name], unfold),
                                         bits[n.name], group, lanes, sparse)
            weights, masks = weights + len(w), masks + len(m)
        else:
            weights += conv_weight_bytes(n.out_shape[0], in_c, kernel, bits[n.name], group,
                                         lanes)
        params += param_entries(n.out_shape[0], lanes) * CHANNEL_PARAMS_BYTES
    distinct = {codebooks[n.name] for n in nodes if n.op is Op.CONV}
    use = {"activations": plan.used, "weights": weights, "masks": masks,
           "codebooks": sum(map(len, distinct)), "params": params,
           "program": len(nodes) * DESCRIPTOR_BYTES, "results": 4 * num_classes}
    use["total"] = sum(use.values())
    return use


def _estimate(config, bits: int, group: int, lanes: int = 1) -> int:
    """Total on-chip bytes of ``config`` (a network configuration) with every convolution at
    ``bits``, each layer its own codebook (shapes only: nothing is trained or calibrated)."""
    from .graph import build_model

    with torch.device("meta"):
        model = build_model(config)
    nodes, tensors, _ = plan_padding(*lower(model), lanes)
    unfold = _stem_unfold(nodes, tensors, lanes)
    tensors = _as_written(tensors, unfold)
    plan = plan_memory(nodes, tensors, lanes=lanes)
    convs = [n.name for n in nodes if n.op is Op.CONV]
    return estimate_footprint(nodes, tensors, plan, group, lanes, unfold, config.num_classes,
                              {name: name.encode() * (1 << bits) for name in convs},
                              dict.fromkeys(convs, bits))["total"]


def fit_report(use: dict[str, int], budget: Budget | None, config=None, bits: int = 8,
               group: int = DEFAULT_GROUP, sparse_total: int | None = None,
               lanes: int = 1, index_bits: tuple[int, ...] = SUPPORTED_INDEX_BITS) -> dict:
    """Does the program fit ``budget``; if not, by how much, and what would (suggesting only
    the codebook ``index_bits`` the target configuration decodes)."""
    if budget is None:
        return {"budget": None, "fits": None, "use": use}
    report = {"budget": budget.bytes, "budget_source": budget.source, "use": use,
              "fits": use["total"] <= budget.bytes, "margin": budget.bytes - use["total"]}
    if report["fits"] or config is None:
        return report
    from .model import list_models, preset_config
    from .summary import summarize

    ideas = []
    for b in sorted(index_bits, reverse=True):
        if b < bits:
            total = _estimate(config, b, group, lanes)
            ideas.append({"change": f"--bits {b}", "total": total, "fits": total <= budget.bytes})
    if sparse_total is not None:
        ideas.append({"change": "sparse weights (a configuration with the sparse decoder: "
                      "--config ecp5)", "total": sparse_total,
                      "fits": sparse_total <= budget.bytes})
    macs = summarize(config).macs
    for name in list_models():
        pc = preset_config(name, in_channels=config.in_channels,
                           num_classes=config.num_classes)
        if summarize(pc).macs >= macs:
            continue
        for b in sorted({bits, 4} & set(index_bits), reverse=True):
            total = _estimate(pc, b, group, lanes)
            ideas.append({"change": f"preset {name} ({pc.input_size}x{pc.input_size} input) at "
                          f"{b} bits", "total": total, "fits": total <= budget.bytes})
    report["suggestions"] = ideas
    return report


def format_fit(report: dict) -> str:
    use = report["use"]
    parts = ", ".join(f"{k} {v:,}" for k, v in use.items() if k != "total")
    lines = [f"on-chip memory: {use['total']:,} B ({parts})"]
    if report.get("budget") is None:
        lines.append("no budget given (--board NAME or --budget-kib N): fit not checked")
        return "\n".join(lines)
    if report["fits"]:
        lines.append(f"fits {report['budget_source']}: {use['total']:,} of {report['budget']:,} B "
                     f"({report['margin']:,} B spare)")
    else:
        lines.append(f"DOES NOT FIT {report['budget_source']}: needs {use['total']:,} B, has "
                     f"{report['budget']:,} B, short by {-report['margin']:,} B")
        fitting = [s for s in report.get("suggestions", []) if s["fits"]]
        for s in fitting[:6]:
            lines.append(f"  would fit: {s['change']} ({s['total']:,} B)")
        if not fitting:
            lines.append("  nothing tried fits: a larger device, or external memory")
    return "\n".join(lines)


def fit_message(report: dict) -> str:
    """One line for an error: what overflows, by how much, what would fit."""
    fitting = [s["change"] for s in report.get("suggestions", []) if s["fits"]]
    hint = f"; would fit: {', '.join(fitting[:4])}" if fitting else "; nothing tried fits"
    return (f"the program needs {report['use']['total']:,} B of on-chip memory but "
            f"{report['budget_source']} has {report['budget']:,} B (short by "
            f"{-report['margin']:,} B){hint}")


def _stem_unfold(nodes: list[Node], tensors: dict[str, Tensor], lanes: int) -> dict | None:
    """Whether the stem runs on an unfolded input, and how (from the shapes alone).

    With input lanes, a stem of few input channels (1 or 3 image channels) would use one or
    three of the lanes of each step. Instead the host writes the image unfolded: each output
    pixel's ``k x k x c`` window as its channels (``(ky, kx, ci)`` order, padding with the pad
    value), and the stem becomes a 1x1 convolution over it: the same products and sums, in
    ``ceil(k*k*c / lanes)`` steps instead of ``k*k*ceil(c / lanes)``.
    :meth:`.program.Program.input_bytes` unfolds the image; the manifest's ``input.unfold``
    says how (the compiler adds the quantized pad value)."""
    if lanes == 1 or not nodes:
        return None
    stem = nodes[0]
    c = tensors[INPUT].shape[0]
    readers = [n for n in nodes if INPUT in n.inputs]
    if (stem.op is not Op.CONV or stem.inputs != [INPUT] or len(readers) != 1
            or stem.kernel == 1 or c >= lanes):
        return None
    k = stem.kernel
    return {"kernel": k, "stride": stem.stride, "pad": stem.pad,
            "shape": [k * k * c, *stem.out_shape[1:]]}


def _as_written(tensors: dict[str, Tensor], unfold: dict | None) -> dict[str, Tensor]:
    """``tensors`` with the input as the host writes it: unfolded where ``unfold`` says so."""
    if not unfold:
        return tensors
    return {**tensors, INPUT: replace(tensors[INPUT], shape=tuple(unfold["shape"]))}


@dataclass
class _Packing:
    """The memory images being packed, and what every layer's packing needs."""

    plan: MemoryPlan
    tensors: dict[str, Tensor]
    group: int
    lanes: int
    unfold: dict | None
    #: the target decodes sparse layers (:func:`conv_weight_images` picks per layer)
    sparse: bool = False
    program: bytearray = field(default_factory=bytearray)
    weights: bytearray = field(default_factory=bytearray)
    masks: bytearray = field(default_factory=bytearray)
    codebooks: bytearray = field(default_factory=bytearray)
    params: bytearray = field(default_factory=bytearray)
    #: identical codebooks are stored once: each one's first entry
    codebook_at: dict[bytes, int] = field(default_factory=dict)
    #: parameter entries so far
    n_params: int = 0


def _pack_conv(p: _Packing, q: QNode, fields: dict, layer: dict) -> None:
    n = q.node
    oc, oh, ow = n.out_shape
    kernel, stride, pad = n.kernel, n.stride, n.pad
    indices = stored_indices(n, q.indices, p.unfold)
    if indices is not q.indices:
        # the stem on the unfolded input: a 1x1 convolution
        kernel, stride, pad = 1, 1, 0
        layer.update(unfolded={"kernel": n.kernel, "stride": n.stride, "pad": n.pad})
    codebook = q.codebook.astype(np.int8).tobytes()
    if codebook not in p.codebook_at:
        p.codebook_at[codebook] = len(p.codebooks)
        p.codebooks += codebook
    # Every layer starts on a weight word (``group * lanes`` bytes: one 8-bit index per MAC),
    # and its parameters on a parameter word (:func:`conv_weight_images`,
    # :func:`param_entries`: the sizes the fit check counts before calibration).
    encoding, image, masks = conv_weight_images(indices, q.bits, p.group, p.lanes, p.sparse)
    fields.update(kernel=kernel, stride=stride, pad=pad, pad_value=q.pad_value,
                  w_addr=len(p.weights), w_bits=q.bits, w_encoding=encoding,
                  m_addr=(len(p.masks) // mask_word_bytes(p.lanes, p.group)
                          if encoding == WeightEncoding.SPARSE else 0),
                  cb_addr=p.codebook_at[codebook], param_addr=p.n_params, shift=q.shift)
    p.weights += image
    p.masks += masks
    entries = param_entries(oc, p.lanes)
    p.params += pack_channel_params(q.bias, q.mult) + bytes((entries - oc) * CHANNEL_PARAMS_BYTES)
    p.n_params += entries
    layer.update(kernel=kernel, stride=stride, pad=pad, bits=q.bits,
                 density=round(q.density, 5), weights=int(q.weights.size),
                 encoding=encoding.name.lower(), weight_bytes=len(image) + len(masks),
                 macs=int(q.weights[0].size * oc * oh * ow), **q.info)


def _pack_add(p: _Packing, q: QNode, fields: dict, layer: dict) -> None:
    src2 = p.tensors[q.node.inputs[1]]
    fields.update(in2_addr=p.plan.addr[src2.name],
                  in2_stride=channel_stride(src2.shape[0], p.lanes),
                  mult1=int(q.mult[0]), mult2=int(q.mult[1]), shift=q.shift)
    layer.update(mult1=int(q.mult[0]), mult2=int(q.mult[1]))


#: each operation's own descriptor fields, images and report entries: (the packing, its
#: QNode, its descriptor fields so far, its layer report so far) -> fills them
PACK = {
    Op.CONV: _pack_conv,
    Op.MAXPOOL: lambda p, q, fields, layer: fields.update(kernel=3, stride=2),
    Op.ADD: _pack_add,
    # (the sums go to the result memory from its start)
    Op.AVGPOOL: lambda p, q, fields, layer: fields.update(out_addr=0),
}


def _pack(net: IntNetwork, plan: MemoryPlan, group: int, lanes: int = 1,
          tensors: dict[str, Tensor] | None = None, unfold: dict | None = None,
          sparse: bool = False) -> tuple[dict[str, bytes], list[dict]]:
    p = _Packing(plan, tensors or net.tensors, group, lanes, unfold, sparse)
    layers = []
    for q in net.nodes:
        n = q.node
        src = p.tensors[n.inputs[0]]
        c, h, w = src.shape
        oc, oh, ow = n.out_shape
        fields = dict(op=n.op, in_c=c, in_h=h, in_w=w, out_c=oc, out_h=oh, out_w=ow,
                      in_addr=plan.addr[src.name], in_stride=channel_stride(c, lanes))
        if not OPS[n.op].to_result:
            fields.update(out_addr=plan.addr[n.output],
                          out_stride=channel_stride(p.tensors[n.output].shape[0], lanes),
                          out_offset=n.out_offset)
        layer = {"name": n.name, "op": n.op.name, "inputs": n.inputs, "output": n.output,
                 "in_shape": [c, h, w], "out_shape": [oc, oh, ow], "out_offset": n.out_offset,
                 "acc_bits": q.acc_bits, "shift": q.shift}
        PACK[n.op](p, q, fields, layer)
        try:
            p.program += pack_descriptor(**fields)
        except ValueError as e:
            raise FireforgeError(f"layer {n.name} does not fit the descriptor format: {e} "
                                 f"(the accelerator's limits; a smaller network would fit)"
                                 ) from None
        layers.append(layer)
    images = {"program.bin": bytes(p.program), "weights.bin": bytes(p.weights),
              "codebooks.bin": bytes(p.codebooks), "params.bin": bytes(p.params),
              "masks.bin": bytes(p.masks)}
    return images, layers


def _padding_report(padding: Padding, real_nodes: list[Node], real_tensors: dict[str, Tensor],
                    estimate: dict[str, int], group: int, lanes: int, num_classes: int,
                    codebooks: dict[str, bytes], bits: dict[str, int],
                    indices: dict[str, np.ndarray], sparse: bool) -> dict:
    """What the zero channels cost in on-chip bytes: the footprint of the padded program
    against the same network laid out as if its slices needed no padding (``indices``: the
    shared layers' own, unpadded)."""
    unfold = _stem_unfold(real_nodes, real_tensors, lanes)
    shaped = _as_written(real_tensors, unfold)
    real = estimate_footprint(real_nodes, shaped, plan_memory(real_nodes, shaped, lanes=lanes),
                              group, lanes, unfold, num_classes, codebooks, bits, indices,
                              sparse)
    return {"lanes": lanes, "zero_channels": padding.zero_channels,
            "layers": {name: list(c) for name, c in padding.real.items()},
            "bytes": {k: estimate[k] - real[k] for k in estimate if estimate[k] != real[k]}}


def compile_checkpoint(ckpt: Checkpoint, calibration: np.ndarray | Callable[[], np.ndarray],
                       out: str | Path, budget: Budget | None = None,
                       group: int = DEFAULT_GROUP,
                       shared: dict[str, SharedLayer] | None = None,
                       source: str | None = None, accelerator: str | None = None,
                       banks: int = 1, bank_bytes: int | None = None,
                       lanes: int = 1, target: AcceleratorConfig | None = None) -> Manifest:
    """Compile ``ckpt`` into the directory ``out``; returns the manifest.

    ``calibration``: the calibration images, or a function that loads them (called only once
    the shape checks pass). ``banks`` and ``bank_bytes``: the activation memory's single-port
    banks (1: one dual-port memory); ``lanes``: the array's input lanes (rows), the activation
    word in bytes. Before calibrating (the heavy step) it refuses, writing nothing, a network
    that does not fit ``budget`` or that ``target``'s units cannot run."""
    if group < 1 or group > 256:
        raise FireforgeError("group (output channels per weight word) must be 1..256")
    if lanes < 1 or lanes > ALIGN or lanes & (lanes - 1):
        raise FireforgeError(f"lanes={lanes}: a power of two up to {ALIGN}")
    check_out(out, "manifest.json", "program", "a compile replaces its --out whole: give a new "
              "or empty folder")
    model = ckpt.model.eval()
    real_nodes, real_tensors = lower(model)
    # (zero channels where a concatenation's slices do not start on whole words of lanes)
    nodes, tensors, padding = plan_padding(real_nodes, real_tensors, lanes)
    num_classes = ckpt.config.num_classes
    # Everything that decides the fit follows from the shapes and the shared codebooks: check
    # it before calibration (the heavy step), and write nothing when it does not fit.
    unfold = _stem_unfold(nodes, tensors, lanes)
    shaped = _as_written(tensors, unfold)
    convs = [n.name for n in nodes if n.op is Op.CONV]
    index_bits = tuple(b for b in SUPPORTED_INDEX_BITS if target is None or b == WEIGHT_BITS
                       or b <= target.codebook_bits)
    shared = shared or {}
    codebooks = {name: (shared[name].int8_codebook()[0] if name in shared
                        else identity_codebook()).astype(np.int8).tobytes() for name in convs}
    layer_bits = {name: shared[name].bits if name in shared else WEIGHT_BITS for name in convs}
    bits = max(layer_bits.values())
    # (the target decodes sparse layers: the compiler stores each the smaller way)
    sparse = bool(target and target.sparse_weights)
    real_indices = {name: shared[name].indices.astype(np.int64) for name in convs
                    if name in shared}
    indices = {n.name: pad_weights(real_indices[n.name], n, tensors, padding) for n in nodes
               if n.name in real_indices}

    def check_fit(plan: MemoryPlan) -> tuple[dict[str, int], dict]:
        estimate = estimate_footprint(nodes, shaped, plan, group, lanes, unfold, num_classes,
                                      codebooks, layer_bits, indices, sparse)
        # (what sparse layers would save where the target has no sparse decoder)
        sparse_total = None if sparse or not indices else estimate_footprint(
            nodes, shaped, plan, group, lanes, unfold, num_classes, codebooks, layer_bits,
            indices, True)["total"]
        fit = fit_report(estimate, budget, ckpt.config, bits, group, sparse_total, lanes,
                         index_bits)
        if fit.get("fits") is False:
            raise FireforgeError(fit_message(fit) + "; nothing written")
        return estimate, fit

    try:
        plan = plan_memory(nodes, shaped, banks=banks, bank_bytes=bank_bytes, lanes=lanes)
    except FireforgeError:
        if budget is not None:  # the budget's verdict says more: what would fit
            check_fit(plan_memory(nodes, shaped, lanes=lanes))
        raise
    estimate, fit = check_fit(plan)
    assert all(OPS[n.op].to_result or n.out_offset % lanes == 0 for n in nodes)
    padded = _padding_report(padding, real_nodes, real_tensors, estimate, group, lanes,
                             num_classes, codebooks, layer_bits, real_indices,
                             sparse) if padding.maps else None
    if target is not None:
        problems = capability_problems(target, [
            (n.name, n.op, layer_bits.get(n.name, 0),
             n.op is Op.CONV and n.name not in shared) for n in nodes])
        if problems:
            raise FireforgeError(f"the {accelerator or 'target'} configuration cannot run this "
                                 f"network: {'; '.join(problems[:3])}; nothing written")

    if callable(calibration):
        calibration = calibration()
    calibrate(real_nodes, real_tensors, calibration, ckpt.mean, ckpt.std)
    net = quantize(real_nodes, real_tensors, ckpt.mean, ckpt.std, shared or None)
    net = pad_network(net, nodes, tensors, padding)
    tensors = _as_written(net.tensors, unfold)  # (with the input's calibrated scale)
    if unfold:  # and the padding the host's windows use
        unfold = {"kernel": unfold["kernel"], "stride": unfold["stride"], "pad": unfold["pad"],
                  "pad_value": int(net.nodes[0].pad_value), "shape": unfold["shape"]}
    images, layers = _pack(net, plan, group, lanes, tensors, unfold, sparse)
    for layer in layers:  # a padded layer's report counts its real work
        if layer["name"] in padding.real:
            real_in, real_out = padding.real[layer["name"]]
            stored_in = net.tensors[next(n for n in nodes if n.name == layer["name"]).inputs[0]]
            layer["real_channels"] = [real_in, real_out]
            if "macs" in layer:
                layer["macs"] = layer["macs"] * real_in * real_out // (
                    stored_in.shape[0] * layer["out_shape"][0])
    # the estimate is exact (a test holds it to that), so the fit report made from it before
    # calibration states what was packed
    use = footprint(images, plan.used, num_classes)
    assert use == estimate, (use, estimate)
    logits = tensors[LOGITS]
    manifest = Manifest(
        format=FORMAT,
        version=VERSION,
        model_hash=model_hash(images),
        preset=ckpt.preset,
        source=source,
        config=ckpt.config.to_dict(),
        data=ckpt.data,
        classes=list(ckpt.classes),
        num_classes=ckpt.config.num_classes,
        input=InputSpec(channels=ckpt.config.in_channels, size=ckpt.config.input_size,
                        pad_value=net.pad_value, mean=ckpt.mean, std=ckpt.std, unfold=unfold),
        group=group,
        lanes=lanes,
        accelerator=accelerator,
        descriptor_bytes=DESCRIPTOR_BYTES,
        descriptor_bits=Descriptor.size,
        act_bytes=plan.peak,
        act_banks=banks,
        bank_bytes=bank_bytes if banks > 1 else plan.peak,
        logit_scale=logits.scale,
        logit_offset=logits.zero,
        bits=bits,
        compressed=bool(shared),
        files={name: {"bytes": len(blob), "sha256": sha256(blob)}
               for name, blob in images.items()},
        tensors={t: {"addr": plan.addr[t], "bank": plan.bank[t],
                     "shape": list(tensors[t].shape),
                     "stride": channel_stride(tensors[t].shape[0], lanes),
                     "scale": tensors[t].scale} for t in plan.addr},
        layers=layers,
        fit=fit,
        padding=padded,
    )
    assert list(manifest.files) == list(IMAGE_FILES)
    # (an interrupted compile leaves the previous program, or nothing, never a mix)
    with replace_folder(out) as stage:
        for name, blob in images.items():
            (stage / name).write_bytes(blob)
        save_checkpoint(Checkpoint(model, ckpt.preset, ckpt.data, ckpt.classes, ckpt.mean,
                                   ckpt.std, {k: v for k, v in ckpt.extra.items()
                                              if k != "compression"}), stage / "float")
        write_json(stage / "manifest.json", manifest.to_dict())
    return manifest
