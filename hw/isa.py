"""The accelerator's instruction set and numeric contract, defined once.

The compiler packs these layouts, the golden model decodes and executes them, and the gateware's
sequencer decodes them: every one of them imports this module, none re-types a field or a width.

Memory model
------------
Activations live in one byte-addressed activation memory. A tensor of ``C`` channels and
``H x W`` pixels is stored pixel-major (HWC): the value of channel ``c`` at pixel ``(y, x)`` of a
tensor placed at ``addr`` with pixel stride ``stride`` and channel offset ``offset`` is at
``addr + (y * W + x) * stride + offset + c``. Both Fire expands write into one tensor with
``stride = e1x1 + e3x3`` and offsets ``0`` and ``e1x1``, so the concat costs nothing. A
program compiled for ``lanes`` input lanes (the manifest's ``lanes``: the array's rows, the
activation word in bytes) rounds every stride up to a multiple of ``lanes`` and needs channel
offsets that are multiples of it, so each step reads ``lanes`` channels as one aligned word.
With lanes, a 3x3 stem of fewer channels than lanes reads an *unfolded* input (the manifest's
``input.unfold``): each output pixel holds its window's ``k * k * c`` values, and the stem is a
1x1 convolution over them.

Weights are codebook indices of ``w_bits`` bits (index 0 is the pruned weight 0), decoded through
the layer's int8 codebook. A layer's indices are stored in the order the array consumes them:
output channels in groups of ``group`` (the array's columns, recorded in the manifest), then
``ky, kx, ci`` (the HWC reduction order; ``ci`` padded to a multiple of ``lanes``), then the
output channel within the group; missing output and input channels are padded with index 0.
Each layer's per-channel parameters start on a multiple of ``lanes`` entries. Indices are
packed little-endian, ``w_bits`` each, into bytes; each layer starts on a byte boundary.

Sparse weights (:attr:`WeightEncoding.SPARSE`) store the same index stream without its zeros.
A step's ``rows x columns`` indices form chunks of :data:`SPARSE_CHUNK` cells (diagonals of the
array, :func:`sparse_chunks`). The *mask image* holds one bit per cell (set: a nonzero index),
a step per mask word, from the descriptor's ``m_addr``. A chunk's nonzero indices, step after
step and in cell order within a step, fill :data:`SPARSE_VALUE_BITS`-bit slots of value words of
:data:`SPARSE_WORD_VALUES` slots without gaps: chunk ``p``'s values are bytes ``[8p, 8p + 8)``
of the layer's weight words, from ``w_addr``. So the decoder finds each step's values from the
masks alone (:func:`sparse_positions`): they start where the step before it ended, in that
word or the next, and end in the same word or the one after.

Per output channel, :data:`ChannelParams` holds the int32 bias (already in accumulator units)
and the unsigned requantization multiplier.

Arithmetic
----------
:func:`requantize` and :func:`add_requantize` are *the* definitions of rounding, shifting and
saturation; the golden model calls them and the gateware is tested against them.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

__all__ = [
    "Op",
    "WeightEncoding",
    "Descriptor",
    "ChannelParams",
    "DESCRIPTOR_BYTES",
    "PROGRAM_WORD_BYTES",
    "DESCRIPTOR_WORDS",
    "LayerConstants",
    "CHANNEL_PARAMS_BYTES",
    "ACT_BITS",
    "ACT_MAX",
    "WEIGHT_BITS",
    "ACC_BITS",
    "MULT_BITS",
    "MAX_SHIFT",
    "CODEBOOK_ENTRIES",
    "SUPPORTED_KERNELS",
    "SUPPORTED_STRIDES",
    "requantize",
    "add_requantize",
    "pack_descriptor",
    "unpack_descriptor",
    "pack_channel_params",
    "unpack_channel_params",
    "pack_indices",
    "unpack_indices",
    "identity_codebook",
    "SPARSE_CHUNK",
    "SPARSE_VALUE_BITS",
    "SPARSE_WORD_VALUES",
    "sparse_positions",
    "sparse_chunks",
    "mask_word_bytes",
    "pack_sparse",
    "unpack_sparse",
]

#: unsigned activation width: every activation is 0..ACT_MAX
ACT_BITS = 8
ACT_MAX = (1 << ACT_BITS) - 1
#: signed weight width: decoded codebook entries are -2**(WEIGHT_BITS-1) .. 2**(WEIGHT_BITS-1)-1
WEIGHT_BITS = 8
#: accumulator width; the compiler proves every layer's worst case fits
ACC_BITS = 32
#: unsigned requantization multiplier width (per output channel, and the two ADD multipliers)
MULT_BITS = 16
#: the largest requantization shift a descriptor can hold
MAX_SHIFT = 63
#: a codebook has at most this many int8 entries (8-bit indices)
CODEBOOK_ENTRIES = 256
SUPPORTED_KERNELS = (1, 3)
#: cells per sparse chunk: a mask byte, and a value stream of its own (a weight-memory part)
SPARSE_CHUNK = 8
#: bits of a sparse value slot (an index of at most this many bits)
SPARSE_VALUE_BITS = 4
#: value slots per value word: a chunk's 8 bytes of a weight word
SPARSE_WORD_VALUES = SPARSE_CHUNK * 8 // SPARSE_VALUE_BITS
SUPPORTED_STRIDES = (1, 2)


class Op(enum.Enum, shape=4):
    """What one descriptor does."""

    #: convolution (kernel 1 or 3) + bias + requantization + ReLU (the clamp at 0)
    CONV = 0
    #: 3x3 stride-2 max pool, ceil mode (output size given by the descriptor)
    MAXPOOL = 1
    #: global sum over the map per channel; int32 sums to the result memory at ``out_addr``
    AVGPOOL = 2
    #: bypass: ``clamp((x1 * mult1 + x2 * mult2 + round) >> shift, 0, 255)``
    ADD = 3


class WeightEncoding(enum.Enum, shape=2):
    """How a layer's codebook indices are stored in the weight image."""

    #: every weight has an index (pruned weights are index 0)
    DENSE = 0
    #: a mask of nonzero indices per step, and the nonzero indices alone (see the module)
    SPARSE = 1


#: One layer of the Program. Unused fields are 0.
Descriptor = data.StructLayout({
    "op": Op,
    "kernel": unsigned(2),
    "stride": unsigned(2),
    "pad": unsigned(2),
    #: value of padded input pixels (the input's zero point for the first layer, else 0)
    "pad_value": unsigned(ACT_BITS),
    "in_c": unsigned(12),
    "in_h": unsigned(10),
    "in_w": unsigned(10),
    "out_c": unsigned(12),
    "out_h": unsigned(10),
    "out_w": unsigned(10),
    "in_addr": unsigned(20),
    "in_stride": unsigned(12),
    "in_offset": unsigned(12),
    #: ADD: second operand, same shape, stride ``in2_stride``
    "in2_addr": unsigned(20),
    "in2_stride": unsigned(12),
    "out_addr": unsigned(20),
    "out_stride": unsigned(12),
    "out_offset": unsigned(12),
    #: byte offset of the layer's index stream in the weight image
    "w_addr": unsigned(24),
    "w_bits": unsigned(4),
    "w_encoding": WeightEncoding,
    #: SPARSE: the mask image's entry (a step) of the layer's first step
    "m_addr": unsigned(16),
    #: first entry of the layer's codebook in the codebook image
    "cb_addr": unsigned(16),
    #: first entry of the layer's per-channel params in the params image
    "param_addr": unsigned(16),
    "shift": unsigned(6),
    "mult1": unsigned(MULT_BITS),
    "mult2": unsigned(MULT_BITS),
})

#: Per output channel: int32 bias in accumulator units and the requantization multiplier.
ChannelParams = data.StructLayout({
    "bias": signed(ACC_BITS),
    "mult": unsigned(MULT_BITS),
    "reserved": unsigned(64 - ACC_BITS - MULT_BITS),
})

DESCRIPTOR_BYTES = 40
#: the program memory's word: the sequencer fetches a descriptor over ``DESCRIPTOR_WORDS``
#: cycles, so the memory is narrow (a 320-bit-wide one would take 20 iCE40 block RAMs)
PROGRAM_WORD_BYTES = 4
DESCRIPTOR_WORDS = DESCRIPTOR_BYTES // PROGRAM_WORD_BYTES
CHANNEL_PARAMS_BYTES = ChannelParams.size // 8
assert Descriptor.size <= DESCRIPTOR_BYTES * 8, Descriptor.size
assert DESCRIPTOR_BYTES % PROGRAM_WORD_BYTES == 0

#: Products of descriptor fields, computed once per layer by the sequencer (with one shift-add
#: multiplier) so that no unit spends a hardware multiplier on its address arithmetic.
LayerConstants = data.StructLayout({
    #: ``in_w * in_stride``: address step from one input row to the next
    "rowstride": unsigned(24),
    #: ``in_h * in_w`` and ``out_h * out_w``
    "in_pixels": unsigned(20),
    "out_pixels": unsigned(20),
})
assert ChannelParams.size % 8 == 0


# ---------------------------------------------------------------------------- arithmetic
def requantize(acc: np.ndarray, mult: np.ndarray | int, shift: int) -> np.ndarray:
    """``clamp((acc * mult + 2**(shift-1)) >> shift, 0, ACT_MAX)`` with an arithmetic shift.

    ``acc`` is the signed accumulator (bias included), ``mult`` the unsigned multiplier (broadcast
    per channel), ``shift`` >= 0. Round half up; the clamp at 0 is the ReLU.
    """
    acc = np.asarray(acc, dtype=np.int64)
    prod = acc * np.asarray(mult, dtype=np.int64)
    if shift > 0:
        prod = (prod + (1 << (shift - 1))) >> shift
    return np.clip(prod, 0, ACT_MAX).astype(np.uint8)


def add_requantize(x1: np.ndarray, x2: np.ndarray, mult1: int, mult2: int,
                   shift: int) -> np.ndarray:
    """The bypass add: ``clamp((x1 * mult1 + x2 * mult2 + 2**(shift-1)) >> shift, 0, ACT_MAX)``."""
    acc = np.asarray(x1, np.int64) * mult1 + np.asarray(x2, np.int64) * mult2
    return requantize(acc, 1, shift)


# ---------------------------------------------------------------------------- packing
def _layout_fields(layout: data.StructLayout) -> set[str]:
    return {name for name, _ in layout}


def pack_descriptor(**fields) -> bytes:
    """Pack one descriptor (unnamed fields are 0) into :data:`DESCRIPTOR_BYTES` bytes."""
    unknown = set(fields) - _layout_fields(Descriptor)
    if unknown:
        raise ValueError(f"unknown descriptor fields {sorted(unknown)}")
    for name, field in Descriptor:
        if name in fields and not isinstance(fields[name], enum.Enum):
            value = int(fields[name])
            if not 0 <= value < (1 << field.width):
                raise ValueError(f"descriptor field {name}={value} does not fit in "
                                 f"{field.width} bits")
    bits = Descriptor.const(fields).as_value().value
    return bits.to_bytes(DESCRIPTOR_BYTES, "little")


def unpack_descriptor(raw: bytes) -> data.Const:
    """Decode one descriptor; fields are attributes (``d.op``, ``d.in_c``, ...)."""
    if len(raw) != DESCRIPTOR_BYTES:
        raise ValueError(f"a descriptor is {DESCRIPTOR_BYTES} bytes, not {len(raw)}")
    return Descriptor.from_bits(int.from_bytes(raw, "little"))


def pack_channel_params(bias: np.ndarray, mult: np.ndarray) -> bytes:
    bias = np.asarray(bias, np.int64)
    mult = np.asarray(mult, np.int64)
    lo, hi = -(1 << (ACC_BITS - 1)), (1 << (ACC_BITS - 1)) - 1
    if bias.size and (bias.min() < lo or bias.max() > hi):
        raise ValueError("bias does not fit in int32")
    if mult.size and (mult.min() < 0 or mult.max() >= 1 << MULT_BITS):
        raise ValueError(f"multiplier does not fit in {MULT_BITS} bits")
    out = np.zeros(len(bias), dtype=[("bias", "<i4"), ("mult", "<u2"), ("reserved", "<u2")])
    out["bias"], out["mult"] = bias, mult
    return out.tobytes()


def unpack_channel_params(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    arr = np.frombuffer(raw, dtype=[("bias", "<i4"), ("mult", "<u2"), ("reserved", "<u2")])
    return arr["bias"].astype(np.int64), arr["mult"].astype(np.int64)


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """Pack unsigned ``indices`` (< 2**bits) little-endian, ``bits`` each, into bytes."""
    idx = np.asarray(indices, dtype=np.uint64).ravel()
    if idx.size and int(idx.max()) >= 1 << bits:
        raise ValueError(f"an index does not fit in {bits} bits")
    bitmat = ((idx[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(bitmat.ravel(), bitorder="little").tobytes()


def unpack_indices(raw: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_indices`: the first ``count`` indices."""
    need = (count * bits + 7) // 8
    if len(raw) < need:
        raise ValueError(f"{count} indices of {bits} bits need {need} bytes, got {len(raw)}")
    bitvec = np.unpackbits(np.frombuffer(raw[:need], np.uint8), bitorder="little")
    bitmat = bitvec[:count * bits].reshape(count, bits).astype(np.int64)
    return (bitmat << np.arange(bits)).sum(axis=1)


def identity_codebook() -> np.ndarray:
    """The 8-bit codebook of an unshared layer: index ``i`` decodes to ``int8(i)``, so index 0
    still means 0 and every int8 weight has an index."""
    return np.arange(CODEBOOK_ENTRIES, dtype=np.uint8).view(np.int8).copy()


# ---------------------------------------------------------------------------- sparse weights
def sparse_positions(nonzeros: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each step's values start in its chunk's value stream, from the nonzero counts
    ``nonzeros`` (steps x chunks): the value word (from the layer's first) and the slot in it.

    A chunk's values follow one another without gaps, so a step's first value is at slot
    ``s`` of the stream, ``s`` the chunk's values before it: word ``s // SPARSE_WORD_VALUES``,
    slot ``s % SPARSE_WORD_VALUES``. A step's values run into the next word at most (a chunk
    has fewer cells than a word has slots), which the decoder reads beside the step's own."""
    nonzeros = np.asarray(nonzeros, np.int64)
    start = np.cumsum(nonzeros, axis=0) - nonzeros
    return start // SPARSE_WORD_VALUES, start % SPARSE_WORD_VALUES


def sparse_chunks(rows: int, columns: int) -> np.ndarray:
    """The cells of each sparse chunk (``chunks x SPARSE_CHUNK``, each row in cell order), for
    an array of ``rows x columns`` cells (cell ``r * columns + j``): cell ``(r, j)`` belongs to
    chunk ``(r + j) mod chunks``. Each chunk takes cells of every row and every column (the
    diagonals), so input channels (rows) or output channels (columns) pruned more than others
    spread over all chunks, and the chunks' value streams, whose words share addresses, come
    out nearly the same length (row chunks left a sixth of the value words empty)."""
    cells = rows * columns
    if cells % SPARSE_CHUNK:
        raise ValueError(f"sparse weights need a multiple of {SPARSE_CHUNK} cells, not {cells}")
    chunks = cells // SPARSE_CHUNK
    grid = np.arange(cells).reshape(rows, columns)
    diagonal = (np.arange(rows)[:, None] + np.arange(columns)) % chunks
    out = [grid[diagonal == p] for p in range(chunks)]
    if any(len(c) != SPARSE_CHUNK for c in out):
        raise ValueError(f"{rows} x {columns} cells do not split into diagonal chunks of "
                         f"{SPARSE_CHUNK}")
    return np.array(out)


def mask_word_bytes(rows: int, columns: int) -> int:
    """Bytes of a step's mask word on an array of ``rows x columns`` MACs: a bit per MAC (the
    mask memory's word, and a step's share of the mask image)."""
    return rows * columns // 8


def pack_sparse(stream: np.ndarray, rows: int, columns: int) -> tuple[bytes, bytes]:
    """The mask image and the value image (weight words of ``rows * columns`` bytes: one byte
    per MAC) of an index ``stream`` in the array's order, a step of ``rows * columns`` indices
    at a time. Every index must fit a :data:`SPARSE_VALUE_BITS`-bit slot. The value image has
    at least one word."""
    order = sparse_chunks(rows, columns)
    cells = rows * columns
    idx = np.asarray(stream, np.int64).reshape(-1, cells)
    if idx.size and (idx.min() < 0 or idx.max() >= 1 << SPARSE_VALUE_BITS):
        raise ValueError(f"a sparse index does not fit in {SPARSE_VALUE_BITS} bits")
    chunks = len(order)
    masks = np.packbits(idx != 0, axis=1, bitorder="little").tobytes()
    by_chunk = idx[:, order].transpose(1, 0, 2)  # (chunks, steps, SPARSE_CHUNK)
    streams = [c[c != 0] for c in by_chunk]  # each chunk's values, step by step
    words = max(1, -(-max(map(len, streams)) // SPARSE_WORD_VALUES))
    slots = np.zeros((chunks, words * SPARSE_WORD_VALUES), np.int64)
    for p, values in enumerate(streams):
        slots[p, :len(values)] = values
    slots = slots.reshape(chunks, words, SPARSE_WORD_VALUES).transpose(1, 0, 2)
    return masks, pack_indices(slots.ravel(), SPARSE_VALUE_BITS)


def unpack_sparse(masks: bytes, values: bytes, steps: int, rows: int, columns: int
                  ) -> np.ndarray:
    """Inverse of :func:`pack_sparse`: the ``steps x rows x columns`` indices, flattened.
    Raises ``ValueError`` where the images are too short for what the masks say."""
    order = sparse_chunks(rows, columns)
    cells = rows * columns
    need = steps * mask_word_bytes(rows, columns)
    if len(masks) < need:
        raise ValueError(f"{steps} steps of {cells} cells need {need} mask bytes, "
                         f"got {len(masks)}")
    bits = np.unpackbits(np.frombuffer(masks[:need], np.uint8),
                         bitorder="little").reshape(steps, cells).astype(bool)
    nz = bits[:, order].transpose(1, 0, 2)  # (chunks, steps, SPARSE_CHUNK)
    words = max(1, -(-int(nz.sum(axis=(1, 2)).max(initial=0)) // SPARSE_WORD_VALUES))
    slots = unpack_indices(values, SPARSE_VALUE_BITS, words * cells * 8 // SPARSE_VALUE_BITS
                           ).reshape(words, len(order), SPARSE_WORD_VALUES).transpose(1, 0, 2)
    by_chunk = np.zeros(nz.shape, np.int64)
    for p in range(len(order)):
        by_chunk[p][nz[p]] = slots[p].ravel()[:int(nz[p].sum())]
    out = np.zeros((steps, cells), np.int64)
    out[:, order] = by_chunk.transpose(1, 0, 2)
    return out.ravel()
