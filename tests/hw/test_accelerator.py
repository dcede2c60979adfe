"""The whole accelerator (Amaranth simulator, in-process) against the golden model."""


import numpy as np
import pytest
from fireforge.hw.accelerator import Accelerator
from fireforge.hw.config import config_by_name
from fireforge.hw.conv import array_broadcast
from fireforge.hw.errors import FireforgeError
from fireforge.hw.isa import DESCRIPTOR_BYTES, Descriptor, Op
from fireforge.hw.perf import estimate
from fireforge.hw.program import load_program
from fireforge.sim.pysim import simulate
from fireforge.sw.compiler import compile_checkpoint
from fireforge.sw.golden import run_golden
from fireforge.sw.model import FireSpec, SqueezeNetConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..helpers import (
    HW_BITS,
    LANES_CONFIG,
    TEST_CONFIG,
    compile_random,
    lane_networks,
    networks,
    random_checkpoint,
)


def _assert_exact(config, program, x):
    """One image: the sums equal golden, the cycle model equals the RTL's counter of every
    layer and the whole run, and the engine never reads the activation word it is writing
    (the block RAM leaves that read undefined, the simulator does not)."""
    got = simulate(config, program, x, check_collisions=True)
    assert np.array_equal(got.sums, run_golden(program, x).sums)
    assert got.collisions == 0
    model = estimate(config, program)
    assert [r["cycles"] for r in model["layers"]] == got.layer_cycles[0].tolist()
    assert model["cycles_per_inference"] == got.total_cycles[0]


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.data_too_large])
@given(networks(bits=HW_BITS))
def test_random_networks_bit_exact(tmp_path_factory, net):
    config, seed, bits = net
    program, x = compile_random(config, seed, bits, tmp_path_factory.mktemp("p"), images=2)
    got = simulate(TEST_CONFIG, program, x)
    assert np.array_equal(got.sums, run_golden(program, x).sums)
    assert (got.layer_cycles > 0).all()
    # The cycle model is held exact on the presets (tests/sim/test_rtl.py); on odd little
    # networks, where groups of different sizes share FIFO credits, it is an estimate (3.3% off
    # seen), so here it is only required to count every layer.
    model = estimate(TEST_CONFIG, program)
    assert len(model["layers"]) == got.layer_cycles.shape[1]


def test_stride2_stem_complex_bypass_pools(tmp_path):
    config = SqueezeNetConfig(6, 3, 2, 1, (FireSpec(3, 5, 6), FireSpec(4, 6, 5)), (0, 1, 2),
                              num_classes=5, in_channels=3, input_size=29, bypass="complex")
    program, x = compile_random(config, 7, 4, tmp_path)
    got = simulate(TEST_CONFIG, program, x)
    assert np.array_equal(got.sums, run_golden(program, x).sums)


def test_program_that_does_not_fit_is_refused(tmp_path):
    config = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4),), (0,), num_classes=3,
                              in_channels=1, input_size=12)
    program, _ = compile_random(config, 0, None, tmp_path / "a", group=8)
    with pytest.raises(FireforgeError, match="compiled for 8 output channels per weight word, "
                                             "the array has 4 columns"):
        Accelerator(TEST_CONFIG, program)
    program, _ = compile_random(config, 0, 3, tmp_path / "b")
    with pytest.raises(FireforgeError, match="3-bit codebook indices"):
        Accelerator(TEST_CONFIG, program)
    program, _ = compile_random(config, 0, None, tmp_path / "c")
    with pytest.raises(FireforgeError, match="activation memory: needs"):
        Accelerator(TEST_CONFIG.replace(act_bytes=64), program)


def _up5k_like(**changes):
    """The iCE40 UltraPlus configuration (two single-port activation banks, SPRAM weights that
    start empty) with the given changes."""
    return config_by_name("up5k").replace(**changes)


@pytest.mark.parametrize("bypass, bits", [("none", None), ("simple", 4)])
def test_single_port_banks_and_spram_weights_bit_exact(tmp_path, bypass, bits):
    """Activations in two single-port banks (inputs and outputs kept apart by the compiler)
    and weights loaded at run time into single-port memory: every sum equals golden. Without a
    codebook decoder (int8, the up5k configuration) and with one (4-bit codebooks)."""
    config = _up5k_like(bypass_add=bypass != "none", codebook_bits=bits or 0)
    net = SqueezeNetConfig(5, 3, 1, 1, (FireSpec(3, 4, 4), FireSpec(3, 4, 4)), (1,),
                           num_classes=4, in_channels=1, input_size=10, bypass=bypass)
    ckpt = random_checkpoint(net, 3, bits)
    x = np.random.default_rng(3).integers(0, 256, (2, 1, 10, 10), dtype=np.uint8)
    compile_checkpoint(ckpt, x, tmp_path, group=config.columns, shared=ckpt.shared,
                       banks=config.act_banks, bank_bytes=config.bank_bytes)
    program = load_program(tmp_path)
    banks = {t["bank"] for t in program.manifest.tensors.values()}
    assert banks == {0, 1}
    got = simulate(config, program, x)
    assert np.array_equal(got.sums, run_golden(program, x).sums)


def test_cycle_model_exact_on_the_up5k_configuration(tmp_path):
    """The UP5K's configuration (group FIFO in block RAM, two entries deep) on a network whose
    output groups are all alike: the cycle model matches the RTL's counter of every layer,
    including the expand 1x1 layers (four steps a group), whose pace the FIFO's credits set."""
    config = config_by_name("up5k")
    assert config.fifo_memory == "bram"
    net = SqueezeNetConfig(8, 3, 1, 1, (FireSpec(4, 8, 8), FireSpec(4, 8, 8)), (0,),
                           num_classes=4, in_channels=1, input_size=10)
    ckpt = random_checkpoint(net, 5, None)
    x = np.random.default_rng(5).integers(0, 256, (1, 1, 10, 10), dtype=np.uint8)
    compile_checkpoint(ckpt, x, tmp_path, group=config.columns, banks=config.act_banks,
                       bank_bytes=config.bank_bytes)
    _assert_exact(config, load_program(tmp_path), x)


def test_bank_and_unit_mismatches_are_refused(tmp_path):
    net = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4), FireSpec(2, 4, 4)), (0,),
                           num_classes=3, in_channels=1, input_size=8, bypass="simple")
    program, _ = compile_random(net, 0, None, tmp_path / "a", group=4)
    with pytest.raises(FireforgeError, match=r"planned for 1 bank\(s\)"):
        Accelerator(_up5k_like(bypass_add=True), program)
    with pytest.raises(FireforgeError, match="no add unit"):
        Accelerator(TEST_CONFIG.replace(bypass_add=False), program)


def test_memory_registers_bit_exact(tmp_path):
    """Registered memory addresses, data and indices (the ECP5 configuration's extra stages):
    the same sums, each convolution a few cycles longer to drain."""
    net = SqueezeNetConfig(6, 3, 2, 1, (FireSpec(3, 5, 6), FireSpec(4, 6, 5)), (0, 1, 2),
                           num_classes=5, in_channels=3, input_size=29, bypass="simple")
    program, x = compile_random(net, 7, 4, tmp_path, images=2)
    plain = simulate(TEST_CONFIG, program, x, check_collisions=True)
    got = simulate(TEST_CONFIG.replace(memory_registers=True), program, x,
                   check_collisions=True)
    assert np.array_equal(got.sums, run_golden(program, x).sums)
    assert plain.collisions == got.collisions == 0
    conv = [i for i, d in enumerate(program.descriptors) if d.op == Op.CONV]
    assert (got.layer_cycles[:, conv] >= plain.layer_cycles[:, conv] + 2).all()


def test_collision_watch_sees_a_layer_written_over_its_input(tmp_path):
    """The watch of ``check_collisions`` can fail: a squeeze layer whose output is moved onto
    its own input (a few bytes after it: the writes then catch up with the reads, which the
    compiler's memory plan never lets happen) reads words in the cycle they are written."""
    net = SqueezeNetConfig(6, 3, 2, 1, (FireSpec(3, 5, 6),), (0,), num_classes=5,
                           in_channels=3, input_size=13)
    program, x = compile_random(net, 7, 4, tmp_path, images=1)
    layer = next(i for i, d in enumerate(program.descriptors) if d.op == Op.CONV and i > 0)
    field, original = dict(Descriptor)["out_addr"], program.images["program.bin"]
    found = 0
    for delta in (16, 22, 28, 34):
        raw = bytearray(original)
        at = slice(layer * DESCRIPTOR_BYTES, (layer + 1) * DESCRIPTOR_BYTES)
        bits = int.from_bytes(raw[at], "little") & ~(((1 << field.width) - 1) << field.offset)
        raw[at] = (bits | (program.descriptors[layer].in_addr + delta) << field.offset).to_bytes(
            DESCRIPTOR_BYTES, "little")
        program.images["program.bin"] = bytes(raw)
        found = simulate(TEST_CONFIG, program, x, check_collisions=True).collisions
        if found:
            break
    assert found > 0


def test_broadcast_copies_bit_exact(tmp_path):
    """16 columns with memory registers: the MAC array's shared inputs go through two register
    copies (one per 8 columns, one more stage); the sums equal golden and the cycle model,
    which counts the stage, matches every layer of this network (its groups are alike)."""
    config = TEST_CONFIG.replace(columns=16, memory_registers=True)
    assert array_broadcast(config) == 2
    net = SqueezeNetConfig(16, 3, 1, 1, (FireSpec(16, 16, 16),), (0,), num_classes=16,
                           in_channels=1, input_size=9)
    program, x = compile_random(net, 9, 4, tmp_path, group=16, images=1)
    _assert_exact(config, program, x)


#: 4 input lanes x 4 columns, two requantization lanes, memory registers (the ECP5's shape);
#: the activation memory (32 bits x 1,536) and the weight parts (64 bits x 1,536 with two slots)
#: are three banks of block RAMs each (as on the 85F), small enough that the networks here
#: use several
@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lane_networks(), st.sampled_from([1, 2, 4]))
def test_input_lanes_bit_exact(tmp_path_factory, net, requant_lanes):
    """Input lanes (4 channels a step from one activation word) and 1, 2 or 4 requantization
    lanes: every sum equals golden, and the golden sums equal those of the same network
    compiled for one lane (the lane layout and the zero channels padding a concatenation off
    the lanes change no integer; two of the three drawn networks are padded)."""
    config, seed, bits = net
    hw = LANES_CONFIG.replace(requant_lanes=requant_lanes)
    program, x = compile_random(config, seed, bits, tmp_path_factory.mktemp("p"), images=2,
                                lanes=4)
    one, _ = compile_random(config, seed, bits, tmp_path_factory.mktemp("q"), images=2)
    want = run_golden(program, x).sums
    assert np.array_equal(want, run_golden(one, x).sums)
    got = simulate(hw, program, x)
    assert np.array_equal(got.sums, want)


def test_input_lanes_cycle_model_exact(tmp_path):
    """With input lanes and requantization lanes, the cycle model matches the RTL's counter of
    every layer (groups alike), and an expand 1x1 of 8 input channels takes 2 steps a group.
    The 3x3 stem of one channel runs on the unfolded input: a 1x1 convolution of 9 channels,
    3 steps a group instead of 9."""
    config = LANES_CONFIG.replace(requant_lanes=4)
    net = SqueezeNetConfig(8, 3, 1, 1, (FireSpec(8, 8, 8), FireSpec(8, 8, 8)), (0,),
                           num_classes=4, in_channels=1, input_size=10)
    program, x = compile_random(net, 5, 4, tmp_path, images=1, lanes=4)
    assert program.manifest.input.unfold["shape"] == [9, 10, 10]
    stem = program.descriptors[0]
    assert (stem.kernel, stem.in_c, stem.in_stride, stem.pad) == (1, 9, 12, 0)
    assert len(program.input_bytes(x[0])[1]) == 10 * 10 * 12
    _assert_exact(config, program, x)


@pytest.mark.parametrize("classes, rows, registers", [(10, 4, True), (13, 8, False)])
def test_global_sum_of_channel_words(tmp_path, classes, rows, registers):
    """The global sum takes a word of ``rows`` channels a cycle, its last word partly full:
    bit-exact, and the cycle model equals the RTL's counters."""
    config = LANES_CONFIG.replace(rows=rows, requant_lanes=4, memory_registers=registers)
    net = SqueezeNetConfig(8, 3, 1, 1, (FireSpec(8, 8, 8),), (0,), num_classes=classes,
                           in_channels=1, input_size=8)
    program, x = compile_random(net, 5, 4, tmp_path, images=1, lanes=rows)
    assert program.descriptors[-1].op == Op.AVGPOOL and classes % rows
    _assert_exact(config, program, x)


def test_input_lanes_pad_an_unaligned_concatenation_and_refuse_other_programs(tmp_path):
    """expand1x1 of 3 on 4 lanes is padded to 4 (sw/padding.py); a program compiled for one
    lane is refused by the 4-lane accelerator."""
    net = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 3, 4),), (0,), num_classes=3,
                           in_channels=1, input_size=8)
    padded, _ = compile_random(net, 0, None, tmp_path / "a", lanes=4)
    assert padded.manifest.padding["zero_channels"] == 1
    Accelerator(LANES_CONFIG, padded)
    program, _ = compile_random(net, 0, None, tmp_path / "b")
    with pytest.raises(FireforgeError, match="compiled for 1 input lane"):
        Accelerator(LANES_CONFIG, program)
