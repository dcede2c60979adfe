"""The cycle model on its own, on hand-made descriptors: how cycles scale with a layer's shape
and the array's, and how utilization is counted. (That it equals the RTL's counters is held
in tests/hw/test_accelerator.py and tests/sim/test_rtl.py.)"""

from types import SimpleNamespace

from fireforge.hw.accelerator import act_read_latency
from fireforge.hw.config import config_by_name
from fireforge.hw.isa import Op, pack_descriptor, unpack_descriptor
from fireforge.hw.perf import estimate, layer_cycles, sequencer_cycles_per_layer, utilization


def _d(**fields):
    return unpack_descriptor(pack_descriptor(**fields))


def _conv(oh, in_c=64, out_c=16, kernel=3):
    return _d(op=Op.CONV, kernel=kernel, stride=1, pad=1, in_c=in_c, in_h=oh, in_w=8,
              out_c=out_c, out_h=oh, out_w=8, w_bits=8)


def test_conv_cycles_grow_by_whole_steps_per_pixel():
    """With enough steps per group (the array, not the requantizer, is the bound), each more
    row of output pixels costs its pixels x groups x steps cycles, nothing else."""
    cfg = config_by_name("small")  # 8 columns, one input lane
    steps, groups, ow = 9 * 64, 2, 8
    grow = layer_cycles(cfg, _conv(oh=6)) - layer_cycles(cfg, _conv(oh=5))
    assert grow == ow * groups * steps
    assert layer_cycles(cfg, _conv(oh=5)) > 5 * ow * groups * steps  # plus the drain


def test_input_lanes_divide_the_steps():
    small, lanes = config_by_name("small"), config_by_name("ecp5")  # 1 and 8 input lanes
    grow1 = layer_cycles(small, _conv(oh=6)) - layer_cycles(small, _conv(oh=5))
    grow8 = layer_cycles(lanes, _conv(oh=6)) - layer_cycles(lanes, _conv(oh=5))
    assert grow1 == 8 * grow8


def test_pools_and_add():
    cfg, lanes = config_by_name("small"), config_by_name("ecp5")
    pool = _d(op=Op.MAXPOOL, kernel=3, stride=2, in_c=16, in_h=9, in_w=9, out_c=16, out_h=4,
              out_w=4)
    # a word a cycle, 9 of a row's first window and 6 of each other (its first column is its
    # neighbour's last): 16 channels are 16 words with one lane, 2 with eight
    row = 9 + 6 * 3
    assert layer_cycles(cfg, pool) - layer_cycles(cfg, _d(**{**_fields(pool), "out_c": 15})) \
        == 4 * row
    assert (layer_cycles(lanes, pool) - 4 * 2 * row) < 4 * row
    gap = _d(op=Op.AVGPOOL, in_c=10, in_h=4, in_w=4, out_c=10, out_h=1, out_w=1)
    assert layer_cycles(cfg, gap) - 10 * 4 * 4 == layer_cycles(
        cfg, _d(op=Op.AVGPOOL, in_c=1, in_h=1, in_w=1, out_c=1, out_h=1, out_w=1)) - 1
    # with eight channels a word, a word a position a cycle; then each of its channels' sums a
    # cycle, and the next word's first read waits out the activations' read latency
    wide = _d(op=Op.AVGPOOL, in_c=16, in_h=4, in_w=4, out_c=16, out_h=1, out_w=1)
    narrow = _d(**{**_fields(wide), "in_c": 8, "out_c": 8})
    assert layer_cycles(lanes, wide) - layer_cycles(lanes, narrow) == \
        16 + act_read_latency(lanes) + 8
    imagenet = _d(op=Op.AVGPOOL, in_c=1000, in_h=13, in_w=13, out_c=1000, out_h=1, out_w=1)
    assert layer_cycles(lanes, imagenet) < layer_cycles(cfg, imagenet) / 7
    add = _d(op=Op.ADD, in_c=4, in_h=2, in_w=2, out_c=4, out_h=2, out_w=2)
    assert layer_cycles(cfg, add) - layer_cycles(
        cfg, _d(op=Op.ADD, in_c=4, in_h=1, in_w=2, out_c=4, out_h=1, out_w=2)) == 4 * 2 * 2


def _fields(d):
    return {name: getattr(d, name) for name in ("op", "kernel", "stride", "in_c", "in_h",
                                                "in_w", "out_c", "out_h", "out_w")}


def test_estimate_counts_every_layer_and_the_sequencer():
    cfg = config_by_name("small")
    descriptors = [_conv(oh=4), _d(op=Op.AVGPOOL, in_c=16, in_h=4, in_w=8, out_c=16, out_h=1,
                                   out_w=1)]
    program = SimpleNamespace(descriptors=descriptors, layers=[
        {"name": "conv", "op": "CONV", "macs": 4 * 8 * 16 * 64 * 9},
        {"name": "sum", "op": "AVGPOOL"}])
    est = estimate(cfg, program)
    cycles = [layer_cycles(cfg, d) for d in descriptors]
    assert est["cycles_per_inference"] == sum(cycles) + 2 * sequencer_cycles_per_layer(cfg)
    assert est["mac_utilization"] == program.layers[0]["macs"] / (cfg.macs * cycles[0])
    assert est["mac_utilization_whole"] < est["mac_utilization_excluding_pooling"] \
        < est["mac_utilization"] <= 1
    measured = utilization(cfg, program, [cycles[0] * 2, cycles[1]], 10 ** 6)
    assert measured["mac_utilization"] == est["mac_utilization"] / 2
