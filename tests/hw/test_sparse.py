"""Sparse weights (:attr:`~fireforge.hw.isa.WeightEncoding.SPARSE`): the format on its own, the
compiler's choice per layer, and the gateware's decoder in the whole accelerator (Amaranth
simulator) against the golden model, at densities from 0 (all-zero layers) to 1."""

import numpy as np
import pytest
from fireforge.hw.accelerator import Accelerator
from fireforge.hw.conv import mask_parts
from fireforge.hw.errors import FireforgeError
from fireforge.hw.isa import (
    SPARSE_CHUNK,
    SPARSE_WORD_VALUES,
    Op,
    WeightEncoding,
    pack_sparse,
    sparse_chunks,
    sparse_positions,
    unpack_sparse,
)
from fireforge.hw.perf import estimate
from fireforge.sim.pysim import simulate
from fireforge.sw import compiler
from fireforge.sw.compiler import conv_weight_bytes, footprint
from fireforge.sw.golden import run_golden
from fireforge.sw.model import FireSpec, SqueezeNetConfig
from hypothesis import given, settings
from hypothesis import strategies as st

from ..helpers import SPARSE_CONFIG, SPARSE_LANES_CONFIG, TEST_CONFIG, compile_random

#: a stride-2 3x3 stem, two Fires with a simple bypass, pools: every kind of layer
NET = SqueezeNetConfig(8, 3, 2, 1, (FireSpec(4, 8, 8), FireSpec(4, 8, 8)), (0, 1),
                       num_classes=5, in_channels=3, input_size=21, bypass="simple")


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 40), st.sampled_from([(1, 8), (4, 4), (8, 8), (8, 16), (16, 4)]),
       st.floats(0, 1), st.integers(0, 2**31))
def test_pack_and_unpack_round_trip(steps, shape, density, seed):
    rows, columns = shape
    cells = rows * columns
    rng = np.random.default_rng(seed)
    stream = rng.integers(1, 16, (steps, cells)) * (rng.random((steps, cells)) < density)
    masks, values = pack_sparse(stream, rows, columns)
    assert len(masks) == steps * cells // 8
    assert len(values) % cells == 0 and len(values) >= cells  # whole words, at least one
    assert np.array_equal(unpack_sparse(masks, values, steps, rows, columns), stream.ravel())


def test_chunks_are_diagonals_of_the_array():
    """Each chunk holds 8 cells, one of each row and each column where there are 8 (so one
    input channel's or one output channel's pruning spreads over every chunk)."""
    chunks = sparse_chunks(8, 8)
    assert sorted(chunks.ravel()) == list(range(64))
    for c in chunks:
        assert len(set(c // 8)) == len(set(c % 8)) == 8
    assert sparse_chunks(1, 8).tolist() == [list(range(8))]
    with pytest.raises(ValueError, match="multiple of 8"):
        sparse_chunks(1, 4)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, SPARSE_CHUNK), min_size=1, max_size=60))
def test_a_step_starts_where_the_last_ended_and_spans_two_words_at_most(counts):
    """What the decoder relies on: the first step starts at word 0, slot 0; each step where
    the step before it ended, in that word or the next; its values end in its own word or the
    one after."""
    counts = np.array(counts)
    word, slot = (a[:, 0] for a in sparse_positions(counts[:, None]))
    assert word[0] == slot[0] == 0
    start = word * SPARSE_WORD_VALUES + slot
    assert np.array_equal(start[1:], start[:-1] + counts[:-1])
    assert set(np.diff(word)) <= {0, 1}
    assert (slot + counts <= 2 * SPARSE_WORD_VALUES).all()


def test_the_images_decode_only_when_long_enough():
    masks, values = pack_sparse(np.full((4, 8), 5), 1, 8)
    with pytest.raises(ValueError, match="mask bytes"):
        unpack_sparse(masks[:-1], values, 4, 1, 8)
    with pytest.raises(ValueError, match="indices"):
        unpack_sparse(masks, values[:-1], 4, 1, 8)
    with pytest.raises(ValueError, match="4 bits"):
        pack_sparse(np.full((1, 8), 16), 1, 8)


def test_each_layer_is_stored_the_smaller_way(tmp_path):
    """At density 0.3 the 4-bit layers go sparse where that is smaller, masks included; the
    footprint counts what was packed; without the decoder every layer is dense; and the two
    programs compute the same integers."""
    program, x = compile_random(NET, 3, 4, tmp_path / "s", images=2, target=SPARSE_CONFIG,
                                density=0.3)
    dense, _ = compile_random(NET, 3, 4, tmp_path / "d", images=2, target=TEST_CONFIG.replace(
        columns=8), density=0.3)
    convs = [(layer, d) for layer, d in zip(program.layers, program.descriptors, strict=True)
             if d.op == Op.CONV]
    sparse = [layer["name"] for layer, d in convs if d.w_encoding == WeightEncoding.SPARSE]
    assert sparse
    for layer, d in convs:
        size = conv_weight_bytes(d.out_c, d.in_c, d.kernel, d.w_bits, 8, 1)
        assert (layer["weight_bytes"] < size) == (layer["encoding"] == "sparse")
    assert sum(layer["weight_bytes"] for layer, _ in convs) == len(
        program.images["weights.bin"]) + len(program.images["masks.bin"])
    m = program.manifest
    assert m.fit["use"] == footprint(program.images, m.fit["use"]["activations"], 5)
    assert dense.images["masks.bin"] == b""
    assert np.array_equal(run_golden(program, x).sums, run_golden(dense, x).sums)


@pytest.mark.parametrize("density", [0.0, 0.1, 0.35, 1.0])
def test_sparse_layers_bit_exact(tmp_path, monkeypatch, density):
    """Every 4-bit layer stored sparse (even where dense would be smaller), from all-zero
    layers (density 0) through steps and chunks with no nonzero to full chunks (density 1,
    a value word every other step): the sums equal golden, and the cycle model equals every
    layer's counter."""
    monkeypatch.setattr(compiler, "store_sparse", lambda dense, sparse: True)
    program, x = compile_random(NET, 5, 4, tmp_path, images=1, target=SPARSE_CONFIG,
                                density=density)
    assert all(d.w_encoding == WeightEncoding.SPARSE for d in program.descriptors
               if d.op == Op.CONV)
    got = simulate(SPARSE_CONFIG, program, x)
    assert np.array_equal(got.sums, run_golden(program, x).sums)
    model = estimate(SPARSE_CONFIG, program)
    assert [r["cycles"] for r in model["layers"]] == got.layer_cycles[0].tolist()


@pytest.mark.parametrize("columns", [4, 16])
def test_sparse_chunks_with_lanes_and_memory_registers_bit_exact(tmp_path, monkeypatch,
                                                                 columns):
    """Two or eight chunks a step (4 lanes x 4 or 16 columns), each with its own value word,
    behind the memory registers (with 16 columns the mask memory in two parts); sparse and
    dense layers mixed (by a rule of the dense size, which the fit estimate and the packing
    both see)."""
    config = SPARSE_LANES_CONFIG.replace(columns=columns)
    assert mask_parts(config) == (2 if columns == 16 else 1)
    word = config.word_bytes  # (every layer's dense size is whole words: odd ones go sparse)
    monkeypatch.setattr(compiler, "store_sparse", lambda dense, sparse: dense // word % 2 == 1)
    net = SqueezeNetConfig(8, 3, 1, 1, (FireSpec(8, 8, 8), FireSpec(8, 8, 8)), (0,),
                           num_classes=4, in_channels=1, input_size=10)
    program, x = compile_random(net, 5, 4, tmp_path, images=2, target=config, density=0.3)
    kinds = {d.w_encoding for d in program.descriptors if d.op == Op.CONV}
    assert kinds == {WeightEncoding.SPARSE, WeightEncoding.DENSE}
    got = simulate(config, program, x)
    assert np.array_equal(got.sums, run_golden(program, x).sums)
    model = np.array([r["cycles"] for r in estimate(config, program)["layers"]])
    if columns == 4:  # (groups alike: the cycle model is exact)
        assert model.tolist() == got.layer_cycles[0].tolist()
    else:  # (a stem of 8 channels on 16 columns: the credit term is an estimate)
        assert np.abs(model - got.layer_cycles[0]).max() <= 0.01 * model.max()


def test_a_configuration_without_the_decoder_refuses_sparse_layers(tmp_path):
    program, _ = compile_random(NET, 3, 4, tmp_path, images=1, target=SPARSE_CONFIG,
                                density=0.3)
    with pytest.raises(FireforgeError, match="no sparse decoder"):
        Accelerator(SPARSE_CONFIG.replace(sparse_weights=False), program)
    with pytest.raises(FireforgeError, match="mask memory: needs"):
        Accelerator(SPARSE_CONFIG.replace(mask_entries=4), program)


def test_a_corrupted_mask_image_is_refused_before_it_runs(tmp_path):
    """The manifest's SHA-256 covers masks.bin like every image (a flipped mask bit would
    move every later value of its chunk); and a mask image too short for its layers is named
    by the golden model rather than read past."""
    import dataclasses
    import shutil

    from fireforge.hw.program import load_program

    program, x = compile_random(NET, 3, 4, tmp_path / "p", images=1, target=SPARSE_CONFIG,
                                density=0.3)
    d = tmp_path / "copy"
    shutil.copytree(tmp_path / "p", d)
    blob = bytearray((d / "masks.bin").read_bytes())
    blob[len(blob) // 2] ^= 4
    (d / "masks.bin").write_bytes(bytes(blob))
    with pytest.raises(FireforgeError, match="masks.bin does not match its SHA-256"):
        load_program(d)
    short = dataclasses.replace(program, images={**program.images, "masks.bin": b"\x01"})
    with pytest.raises(FireforgeError, match="too short"):
        run_golden(short, x)
