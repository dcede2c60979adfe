"""The golden model: executes a compiled Program on integers only. It is the specification of
every integer the accelerator produces.

It reads nothing but the Program (descriptors and memory images, through :mod:`fireforge.hw.isa`)
and a byte-addressed activation memory, exactly as the hardware sees them, and uses
:func:`fireforge.hw.isa.requantize` / :func:`~fireforge.hw.isa.add_requantize` for every rounding
and saturation. A batch of images runs at once (one activation memory per image).

Convolutions multiply in float64 BLAS, which is exact here: every product is below 2**15 and the
accelerator's 32-bit accumulator bounds every sum far below float64's 2**53.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hw.errors import FireforgeError
from ..hw.isa import (
    CHANNEL_PARAMS_BYTES,
    Op,
    WeightEncoding,
    add_requantize,
    mask_word_bytes,
    requantize,
    unpack_channel_params,
    unpack_indices,
    unpack_sparse,
)
from ..hw.ops import OPS
from ..hw.program import Program
from ..hw.protocol import conv_windows

__all__ = ["GoldenResult", "run_golden", "decode_weights", "write_input", "read_tensor"]


@dataclass
class GoldenResult:
    sums: np.ndarray  #: int64 (N, classes): the global sums the host receives
    scale: float  #: real logit = (sum - offset) * scale
    layers: dict[str, np.ndarray] | None  #: layer name -> uint8 (N, C, H, W) of what it wrote

    @property
    def predictions(self) -> np.ndarray:
        return self.sums.argmax(axis=1)

    #: the sums' value of a real score 0 (:attr:`~fireforge.hw.program.Manifest.logit_offset`)
    offset: int = 0

    @property
    def logits(self) -> np.ndarray:
        return (self.sums - self.offset) * self.scale


def _addresses(addr: int, stride: int, offset: int, c: int, h: int, w: int) -> np.ndarray:
    """Byte addresses of a (H, W, C) tensor view."""
    pix = (np.arange(h)[:, None] * w + np.arange(w)[None, :]) * stride
    return addr + offset + pix[:, :, None] + np.arange(c)[None, None, :]


def read_tensor(mem: np.ndarray, addr, stride, offset, c, h, w) -> np.ndarray:
    """(N, H, W, C) uint8 view of activation memory."""
    return mem[:, _addresses(addr, stride, offset, c, h, w)]


def write_tensor(mem: np.ndarray, value: np.ndarray, addr, stride, offset) -> None:
    n, h, w, c = value.shape
    mem[:, _addresses(addr, stride, offset, c, h, w)] = value


def write_input(program: Program, mem: np.ndarray, images: np.ndarray) -> None:
    """Place uint8 images ``(N, C, H, W)`` in activation memory the way the host writes them."""
    if images.ndim != 4:
        raise FireforgeError(f"images of shape {tuple(images.shape)}: a batch (N, C, H, W)")
    for i, image in enumerate(images):
        addr, raw = program.input_bytes(image)
        mem[i, addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)


def decode_weights(program: Program, d) -> np.ndarray:
    """int64 weights ``(out, in, k, k)`` of a CONV descriptor, decoded from the images (dense
    indices, or a sparse layer's masks and values)."""
    group, lanes = program.manifest.group, program.lanes
    k, ci, co, bits = d.kernel, d.in_c, d.out_c, d.w_bits
    ci_pad = -(-ci // lanes) * lanes  # input channels padded to whole lanes (index 0)
    groups = -(-co // group)
    count = groups * group * k * k * ci_pad
    raw = program.images["weights.bin"][d.w_addr:]
    try:
        if d.w_encoding == WeightEncoding.SPARSE:
            masks = program.images["masks.bin"][d.m_addr * mask_word_bytes(lanes, group):]
            idx = unpack_sparse(masks, raw, count // (group * lanes), lanes, group)
        else:
            idx = unpack_indices(raw, bits, count)
    except ValueError as e:
        raise FireforgeError(f"the weight images are too short for the program: {e}") from None
    entries = 1 << bits
    cb = np.frombuffer(program.images["codebooks.bin"], np.int8)[d.cb_addr:d.cb_addr + entries]
    if len(cb) != entries:
        raise FireforgeError("codebook image too short for the program")
    w = cb.astype(np.int64)[idx].reshape(groups, k, k, ci_pad, group)
    # (g, ky, kx, ci, j) -> (g, j, ci, ky, kx)
    return w.transpose(0, 4, 3, 1, 2).reshape(groups * group, ci_pad, k, k)[:co, :ci]


def _channel_params(program: Program, d) -> tuple[np.ndarray, np.ndarray]:
    lo = d.param_addr * CHANNEL_PARAMS_BYTES
    raw = program.images["params.bin"][lo:lo + d.out_c * CHANNEL_PARAMS_BYTES]
    return unpack_channel_params(raw)


def _conv(program: Program, mem: np.ndarray, d) -> np.ndarray:
    x = read_tensor(mem, d.in_addr, d.in_stride, d.in_offset, d.in_c, d.in_h, d.in_w)
    n, oh, ow = x.shape[0], d.out_h, d.out_w
    cols = conv_windows(x, d.kernel, d.stride, d.pad, d.pad_value, oh, ow)
    w = decode_weights(program, d)  # (out, in, k, k) -> (k, k, in, out)
    wmat = w.transpose(2, 3, 1, 0).reshape(-1, d.out_c).astype(np.float64)
    acc = (cols.reshape(-1, wmat.shape[0]).astype(np.float64) @ wmat).astype(np.int64)
    bias, mult = _channel_params(program, d)
    y = requantize(acc + bias, mult, d.shift)
    return y.reshape(n, oh, ow, d.out_c)


def _maxpool(program: Program, mem: np.ndarray, d) -> np.ndarray:
    x = read_tensor(mem, d.in_addr, d.in_stride, d.in_offset, d.in_c, d.in_h, d.in_w)
    oh, ow = d.out_h, d.out_w
    # Ceil mode: windows past the edge see only real pixels; padding with 0 is the same for
    # unsigned values.
    need_h, need_w = 2 * (oh - 1) + 3, 2 * (ow - 1) + 3
    x = np.pad(x, ((0, 0), (0, max(0, need_h - d.in_h)), (0, max(0, need_w - d.in_w)), (0, 0)))
    out = np.zeros((x.shape[0], oh, ow, d.in_c), dtype=np.uint8)
    for ky in range(3):
        for kx in range(3):
            np.maximum(out, x[:, ky:ky + 2 * (oh - 1) + 1:2, kx:kx + 2 * (ow - 1) + 1:2], out=out)
    return out


def _add(program: Program, mem: np.ndarray, d) -> np.ndarray:
    x1 = read_tensor(mem, d.in_addr, d.in_stride, d.in_offset, d.in_c, d.in_h, d.in_w)
    x2 = read_tensor(mem, d.in2_addr, d.in2_stride, 0, d.in_c, d.in_h, d.in_w)
    return add_requantize(x1, x2, d.mult1, d.mult2, d.shift)


def _global_sums(program: Program, mem: np.ndarray, d) -> np.ndarray:
    """(N, C) int64: the sums over the map, which go to the result memory."""
    x = read_tensor(mem, d.in_addr, d.in_stride, d.in_offset, d.in_c, d.in_h, d.in_w)
    return x.astype(np.int64).sum(axis=(1, 2))


#: each operation's execution on the activation memory: (program, memory, descriptor) -> its
#: output ``(N, H, W, C)`` uint8, or the class sums ``(N, C)`` of an op that writes the result
#: memory (:data:`fireforge.hw.ops.OPS`)
EXECUTE = {Op.CONV: _conv, Op.MAXPOOL: _maxpool, Op.ADD: _add, Op.AVGPOOL: _global_sums}


def first_mismatch(got: np.ndarray, want: np.ndarray) -> dict:
    """Where two tensors (``(C, H, W)`` or ``(C,)`` sums) first differ, and how often."""
    pos = tuple(int(v) for v in np.argwhere(got != want)[0])
    return {"channel": pos[0], "y": pos[1] if len(pos) > 1 else 0,
            "x": pos[2] if len(pos) > 2 else 0, "got": int(got[pos]), "expected": int(want[pos]),
            "mismatches": int((got != want).sum())}


def run_golden(program: Program, images: np.ndarray, keep_layers: bool = False,
               batch_size: int = 256) -> GoldenResult:
    """Run ``images`` (uint8 ``(N, C, H, W)``) through the program."""
    descriptors = program.descriptors
    names = [layer["name"] for layer in program.layers]
    sums_all, layers_all = [], {name: [] for name in names} if keep_layers else None
    for start in range(0, max(len(images), 1), batch_size):
        batch = images[start:start + batch_size]
        mem = np.zeros((len(batch), program.manifest.act_bytes), dtype=np.uint8)
        write_input(program, mem, batch)
        sums = None
        for name, d in zip(names, descriptors, strict=True):
            if d.op not in EXECUTE:
                raise FireforgeError(f"layer {name}: unknown opcode {d.op}")
            y = EXECUTE[d.op](program, mem, d)
            if OPS[d.op].to_result:
                sums = y
                if keep_layers:
                    layers_all[name].append(sums[:, :, None, None])
                continue
            write_tensor(mem, y, d.out_addr, d.out_stride, d.out_offset)
            if keep_layers:
                layers_all[name].append(y.transpose(0, 3, 1, 2))
        if sums is None:
            raise FireforgeError("the program has no AVGPOOL: it produces no result")
        sums_all.append(sums)
    layers = ({k: np.concatenate(v) for k, v in layers_all.items()} if keep_layers else None)
    return GoldenResult(np.concatenate(sums_all), program.manifest.logit_scale, layers,
                        program.manifest.logit_offset)
