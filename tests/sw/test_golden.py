"""The golden model against hand-computed integers and against PyTorch, layer by layer."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fireforge.hw.errors import FireforgeError
from fireforge.hw.isa import Op, pack_channel_params, pack_descriptor, pack_indices, requantize
from fireforge.hw.program import FORMAT, VERSION, Manifest, Program, load_program
from fireforge.sw.compiler import compile_checkpoint
from fireforge.sw.golden import decode_weights, run_golden
from fireforge.sw.model import FireSpec, SqueezeNetConfig
from hypothesis import HealthCheck, given, settings

from ..helpers import networks, random_checkpoint


def _hand_program(descriptors, weights=b"", codebooks=b"", params=b"", act_bytes=64,
                  input_shape=(2, 2, 2), classes=2) -> Program:
    manifest = Manifest.from_dict({
        "format": FORMAT, "version": VERSION, "model_hash": "", "files": {}, "group": 1,
        "act_bytes": act_bytes, "num_classes": classes, "logit_scale": 1.0,
        "input": {"channels": input_shape[0], "size": input_shape[1], "pad_value": 0,
                  "mean": [0.0], "std": [1.0]},
        "tensors": {"input": {"addr": 0}},
        "layers": [{"name": f"l{i}"} for i in range(len(descriptors))]})
    return Program(None, manifest, {"program.bin": b"".join(descriptors), "weights.bin": weights,
                                    "codebooks.bin": codebooks, "params.bin": params})


def test_hand_computed_conv_and_sum():
    # 1x1 conv, 2 -> 2 channels, on a 2x2 image; 2-bit indices into the codebook [0, 1, -1, 3].
    # out0 = x0 - x1, out1 = 3*x0 + x1, bias (10, -7), mult (1, 2), shift 1:
    #   y = clamp((acc * mult + 1) >> 1, 0, 255)
    w_idx = np.array([1, 2, 3, 1])  # group 1: out0 (ci0, ci1) = [1, -1], out1 = [3, 1]
    conv = pack_descriptor(op=Op.CONV, kernel=1, stride=1, in_c=2, in_h=2, in_w=2, out_c=2,
                           out_h=2, out_w=2, in_addr=0, in_stride=2, out_addr=16, out_stride=2,
                           w_addr=0, w_bits=2, cb_addr=0, param_addr=0, shift=1)
    pool = pack_descriptor(op=Op.AVGPOOL, in_c=2, in_h=2, in_w=2, out_c=2, out_h=1, out_w=1,
                           in_addr=16, in_stride=2)
    prog = _hand_program([conv, pool], pack_indices(w_idx, 2),
                         np.array([0, 1, -1, 3], np.int8).tobytes(),
                         pack_channel_params(np.array([10, -7]), np.array([1, 2])))
    x = np.array([[[[0, 5], [200, 255]], [[0, 20], [1, 255]]]], np.uint8)  # (1, C=2, 2, 2)
    res = run_golden(prog, x, keep_layers=True)
    x0, x1 = x[0, 0].astype(int), x[0, 1].astype(int)
    out0 = np.clip((x0 - x1 + 10 + 1) >> 1, 0, 255)
    out1 = np.clip(((3 * x0 + x1 - 7) * 2 + 1) >> 1, 0, 255)
    assert res.layers["l0"][0, 0].tolist() == out0.tolist() == [[5, 0], [105, 5]]
    assert res.layers["l0"][0, 1].tolist() == out1.tolist() == [[0, 28], [255, 255]]
    assert res.sums.tolist() == [[out0.sum(), out1.sum()]]


def test_hand_computed_maxpool_ceil_mode():
    # 4x4 -> 2x2 in ceil mode: the second window row/column covers rows/cols 2..3 only.
    x = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    x[0, 0, 3, 3] = 0
    pool = pack_descriptor(op=Op.MAXPOOL, kernel=3, stride=2, in_c=1, in_h=4, in_w=4, out_c=1,
                           out_h=2, out_w=2, in_addr=0, in_stride=1, out_addr=32, out_stride=1)
    avg = pack_descriptor(op=Op.AVGPOOL, in_c=1, in_h=2, in_w=2, out_c=1, out_h=1, out_w=1,
                          in_addr=32, in_stride=1)
    res = run_golden(_hand_program([pool, avg], input_shape=(1, 4, 4), classes=1), x,
                     keep_layers=True)
    assert res.layers["l0"][0, 0].tolist() == [[10, 11], [14, 14]]
    torch_out = F.max_pool2d(torch.from_numpy(x).float(), 3, 2, ceil_mode=True)
    assert torch_out[0, 0].int().tolist() == [[10, 11], [14, 14]]


def test_hand_computed_bypass_add():
    add = pack_descriptor(op=Op.ADD, in_c=1, in_h=1, in_w=3, out_c=1, out_h=1, out_w=3,
                          in_addr=0, in_stride=1, in2_addr=8, in2_stride=1, out_addr=16,
                          out_stride=1, mult1=3, mult2=5, shift=3)
    avg = pack_descriptor(op=Op.AVGPOOL, in_c=1, in_h=1, in_w=3, out_c=1, out_h=1, out_w=1,
                          in_addr=16, in_stride=1)
    prog = _hand_program([add, avg], input_shape=(1, 1, 3), classes=1)
    # non-square hand case: write memory directly
    prog.manifest = replace(prog.manifest, input=replace(prog.manifest.input, size=None))
    mem_x1, mem_x2 = [10, 255, 0], [20, 255, 1]
    from fireforge.sw import golden

    mem = np.zeros((1, 64), np.uint8)
    mem[0, 0:3], mem[0, 8:11] = mem_x1, mem_x2
    d = prog.descriptors[0]
    x1 = golden.read_tensor(mem, d.in_addr, d.in_stride, 0, 1, 1, 3)
    x2 = golden.read_tensor(mem, d.in2_addr, d.in2_stride, 0, 1, 1, 3)
    from fireforge.hw.isa import add_requantize

    assert add_requantize(x1, x2, 3, 5, 3).ravel().tolist() == [16, 255, 1]


# ------------------------------------------------------------------------------ random networks
def _tensor_from_layers(program, layers, images, name):
    if name == "input":
        return images.astype(np.int64)
    parts = sorted((layer["out_offset"], layers[layer["name"]]) for layer in program.layers
                   if layer["output"] == name)
    return np.concatenate([p for _, p in parts], axis=1).astype(np.int64)


def check_program_against_torch(program: Program, images: np.ndarray, float_model) -> dict:
    """Every layer's golden integers against PyTorch on the golden's own inputs."""
    res = run_golden(program, images, keep_layers=True)
    tensors = program.manifest.tensors
    checked = {}
    for layer, d in zip(program.layers, program.descriptors, strict=True):
        name = layer["name"]
        got = res.layers[name].astype(np.int64)
        x = _tensor_from_layers(program, res.layers, images, layer["inputs"][0])
        if d.op == Op.CONV:
            w = decode_weights(program, d)
            # The decoded weights are the float model's (folded) weights, in the right layout.
            scale = np.array(layer["weight_scale"]).reshape(-1, 1, 1, 1)
            conv = float_model.get_submodule(name)
            wf = conv.weight.detach().double().numpy()
            if layer["inputs"][0] == "input":
                wf = wf / (255 * program.manifest.input.std[0])
            assert np.abs(w * scale - wf).max() <= scale.max() * 0.5 + 1e-9, name
            xt = torch.from_numpy(x).double()
            if d.pad:
                xt = F.pad(xt, (d.pad,) * 4, value=float(d.pad_value))
            acc = F.conv2d(xt, torch.from_numpy(w).double(), stride=d.stride).numpy()
            from fireforge.sw.golden import _channel_params

            bias, mult = _channel_params(program, d)
            acc = acc.astype(np.int64) + bias.reshape(1, -1, 1, 1)
            expect = requantize(acc.transpose(0, 2, 3, 1), mult, d.shift).transpose(0, 3, 1, 2)
            assert np.array_equal(got, expect), name
            # Dequantized: within rounding (+ the multiplier's own rounding) of the real value.
            a_in = 1.0 if layer["inputs"][0] == "input" else tensors[layer["inputs"][0]]["scale"]
            a_out = tensors[layer["output"]]["scale"]
            ratio = (a_in * scale.reshape(1, -1, 1, 1)) / a_out
            real = acc * ratio
            bound = 0.5 + np.abs(acc) * np.abs(mult.reshape(1, -1, 1, 1) / 2.0 ** d.shift - ratio)
            assert np.all(np.abs(got - np.clip(real, 0, 255)) <= bound + 1e-6), name
        elif d.op == Op.MAXPOOL:
            expect = F.max_pool2d(torch.from_numpy(x).double(), 3, 2, ceil_mode=True).numpy()
            assert np.array_equal(got, expect.astype(np.int64)), name
        elif d.op == Op.ADD:
            x2 = _tensor_from_layers(program, res.layers, images, layer["inputs"][1])
            a1, a2 = (tensors[t]["scale"] for t in layer["inputs"])
            a_out = tensors[layer["output"]]["scale"]
            real = (x * a1 + x2 * a2) / a_out
            err = (np.abs(x) * abs(d.mult1 / 2.0 ** d.shift - a1 / a_out)
                   + np.abs(x2) * abs(d.mult2 / 2.0 ** d.shift - a2 / a_out))
            assert np.all(np.abs(got - np.clip(real, 0, 255)) <= 0.5 + err + 1e-6), name
        elif d.op == Op.AVGPOOL:
            assert np.array_equal(got[:, :, 0, 0], x.sum(axis=(2, 3))), name
        checked[name] = d.op
    return checked


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_random_networks_golden_vs_torch(tmp_path_factory, net):
    config, seed, bits = net
    ckpt = random_checkpoint(config, seed, bits)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (6, config.in_channels, config.input_size,
                                   config.input_size), dtype=np.uint8)
    out = tmp_path_factory.mktemp("prog")
    compile_checkpoint(ckpt, images[:4], out, shared=ckpt.shared)
    program = load_program(out)
    checked = check_program_against_torch(program, images, ckpt.model)
    assert Op.CONV in checked.values() and Op.AVGPOOL in checked.values()


def test_golden_rejects_wrong_images(tmp_path):
    config = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4),), (0,), num_classes=3,
                              in_channels=1, input_size=12)
    ckpt = random_checkpoint(config, 0, None)
    compile_checkpoint(ckpt, np.zeros((2, 1, 12, 12), np.uint8), tmp_path)
    program = load_program(tmp_path)
    with pytest.raises(FireforgeError, match="image of shape \\(3, 12, 12\\).*1x12x12"):
        run_golden(program, np.zeros((1, 3, 12, 12), np.uint8))
    with pytest.raises(FireforgeError, match="uint8"):
        run_golden(program, np.zeros((1, 1, 12, 12), np.float32))
