"""The convolution engine on its own: a network's first convolution (kernels 1 and 3, strides
1 and 2, padding with the input's pad value, 1-8 bit codebooks and int8) run by the engine
against a block RAM of activations and its model memories, every output byte against the
golden model."""

import numpy as np
from fireforge.hw.conv import ConvEngine
from fireforge.hw.isa import DESCRIPTOR_BYTES, Op
from fireforge.hw.memories import address_bits, memory_images
from fireforge.hw.protocol import Space
from fireforge.sw.golden import read_tensor, run_golden
from hypothesis import HealthCheck, given, settings

from ..helpers import HW_BITS, TEST_CONFIG, compile_random, networks, run_unit


def _engine_and_memories(cfg, program):
    images = memory_images(cfg, program.images)
    spaces = cfg.model_spaces()
    bits = {s: address_bits(spaces[s][0] * cfg.model_slots) + 1
            for s in (Space.WEIGHTS, Space.PARAMS, Space.CODEBOOKS)}
    conv = ConvEngine(cfg, address_bits(cfg.act_bytes), bits[Space.WEIGHTS], bits[Space.PARAMS],
                      bits[Space.CODEBOOKS])
    memories = [(conv.w_raddr[0], conv.w_rdata, images[Space.WEIGHTS]),
                (conv.p_raddr, conv.p_rdata, images[Space.PARAMS]),
                (conv.cb_raddr, conv.cb_rdata, [v & 0xFF for v in images[Space.CODEBOOKS]])]
    return conv, memories


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(networks(bits=HW_BITS))
def test_first_convolution_equals_golden(tmp_path_factory, net):
    config, seed, bits = net
    program, x = compile_random(config, seed, bits, tmp_path_factory.mktemp("p"), images=1)
    layer, d = program.layers[0], program.descriptors[0]
    assert d.op == Op.CONV
    act = np.zeros(TEST_CONFIG.act_bytes, np.uint8)
    addr, raw = program.input_bytes(x[0])
    act[addr:addr + len(raw)] = np.frombuffer(raw, np.uint8)
    conv, memories = _engine_and_memories(TEST_CONFIG, program)
    got, _ = run_unit(conv, 1, act.tobytes(), program.images["program.bin"][:DESCRIPTOR_BYTES],
                      memories)
    want = run_golden(program, x, keep_layers=True).layers[layer["name"]][0]
    c, h, w = want.shape
    out = read_tensor(np.frombuffer(got, np.uint8)[None], d.out_addr, d.out_stride,
                      d.out_offset, c, h, w)[0].transpose(2, 0, 1)
    assert np.array_equal(out, want), layer["name"]
