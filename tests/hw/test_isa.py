import numpy as np
import pytest
from fireforge.hw.isa import (
    ACT_MAX,
    DESCRIPTOR_BYTES,
    Descriptor,
    Op,
    WeightEncoding,
    add_requantize,
    identity_codebook,
    pack_channel_params,
    pack_descriptor,
    pack_indices,
    requantize,
    unpack_channel_params,
    unpack_descriptor,
    unpack_indices,
)
from hypothesis import given, settings
from hypothesis import strategies as st


@st.composite
def descriptor_fields(draw):
    fields = {}
    for name, field in Descriptor:
        if name == "op":
            fields[name] = draw(st.sampled_from(list(Op)))
        elif name == "w_encoding":
            fields[name] = draw(st.sampled_from(list(WeightEncoding)))
        else:
            fields[name] = draw(st.integers(0, (1 << field.width) - 1))
    return fields


@settings(max_examples=200, deadline=None)
@given(descriptor_fields())
def test_descriptor_round_trip(fields):
    raw = pack_descriptor(**fields)
    assert len(raw) == DESCRIPTOR_BYTES
    d = unpack_descriptor(raw)
    for name, value in fields.items():
        assert getattr(d, name) == value, name


def test_descriptor_rejects_overflow_and_unknown_fields():
    with pytest.raises(ValueError, match="in_c=4096 does not fit in 12 bits"):
        pack_descriptor(op=Op.CONV, in_c=4096)
    with pytest.raises(ValueError, match="unknown descriptor fields"):
        pack_descriptor(op=Op.CONV, colour=1)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(0, 300), st.data())
def test_indices_round_trip(bits, count, data):
    idx = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=count,
                                      max_size=count)), dtype=np.int64)
    raw = pack_indices(idx, bits)
    assert len(raw) == (count * bits + 7) // 8
    assert np.array_equal(unpack_indices(raw, bits, count), idx)


def test_indices_little_endian_layout():
    # Two 4-bit indices 0x3, 0xA share one byte: low nibble first.
    assert pack_indices(np.array([3, 10]), 4) == bytes([0xA3])
    with pytest.raises(ValueError, match="does not fit in 3 bits"):
        pack_indices(np.array([8]), 3)


def test_requantize_hand_cases():
    # shift 4: multiply, add 8, shift right 4 (round half up), clamp to 0..255.
    acc = np.array([8, 7, 24, -8, -9, -100, 0, 4080, 4088, 1 << 20])
    assert requantize(acc, 1, 4).tolist() == [1, 0, 2, 0, 0, 0, 0, 255, 255, 255]
    # exactly .5 rounds up; the negative -0.5 rounds up to 0 (arithmetic shift).
    assert requantize(np.array([3, -3, 5]), 1, 1).tolist() == [2, 0, 3]
    # per-channel multipliers broadcast along the last axis
    assert requantize(np.array([[10, 10]]), np.array([3, 5]), 2).tolist() == [[8, 13]]
    # shift 0: no rounding term
    assert requantize(np.array([7, 300, -1]), 1, 0).tolist() == [7, 255, 0]


def test_add_requantize_hand_cases():
    x1, x2 = np.array([10, 255, 0]), np.array([20, 255, 1])
    # (10*3 + 20*5 + 4) >> 3 = 134 >> 3 = 16; saturation at 255; (0 + 5 + 4) >> 3 = 1
    assert add_requantize(x1, x2, 3, 5, 3).tolist() == [16, 255, 1]


def test_channel_params_round_trip_and_range():
    bias = np.array([-(1 << 31), (1 << 31) - 1, 0, -5])
    mult = np.array([0, 65535, 1, 300])
    b, m = unpack_channel_params(pack_channel_params(bias, mult))
    assert b.tolist() == bias.tolist() and m.tolist() == mult.tolist()
    with pytest.raises(ValueError, match="int32"):
        pack_channel_params(np.array([1 << 31]), np.array([1]))
    with pytest.raises(ValueError, match="16 bits"):
        pack_channel_params(np.array([0]), np.array([1 << 16]))


def test_identity_codebook_decodes_int8():
    cb = identity_codebook()
    w = np.array([0, 1, -1, 127, -127, -128])
    assert np.array_equal(cb[w & 0xFF], w)
    assert cb[0] == 0 and ACT_MAX == 255
