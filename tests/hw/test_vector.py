"""The pool on its own (max pool and global sum) against the golden model's execution of the
same descriptor, on random tensors; one and eight bytes per activation word."""

import numpy as np
import pytest
from fireforge.hw.isa import Op, pack_descriptor, unpack_descriptor
from fireforge.hw.vector import Pool
from fireforge.sw.golden import EXECUTE, read_tensor
from hypothesis import given, settings
from hypothesis import strategies as st

from ..helpers import run_unit

ACT_BYTES = 2048


@st.composite
def maps(draw):
    c, h, w = draw(st.integers(1, 12)), draw(st.integers(3, 9)), draw(st.integers(3, 9))
    lanes = draw(st.sampled_from([1, 8]))
    stride = -(-c // lanes) * lanes  # (channel strides padded to words, as compiled)
    return c, h, w, lanes, stride, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(maps())
def test_max_pool_equals_golden(shape):
    c, h, w, lanes, stride, seed = shape
    oh, ow = -(-(h - 3) // 2) + 1, -(-(w - 3) // 2) + 1  # 3x3/2, ceil mode
    out_addr = 1024
    desc = pack_descriptor(op=Op.MAXPOOL, kernel=3, stride=2, in_c=c, in_h=h, in_w=w,
                           out_c=c, out_h=oh, out_w=ow, in_addr=0, in_stride=stride,
                           out_addr=out_addr, out_stride=stride)
    act = np.random.default_rng(seed).integers(0, 256, ACT_BYTES, dtype=np.uint8)
    act[out_addr:] = 0
    got, _ = run_unit(Pool(11, 4, lanes=lanes), lanes, act.tobytes(), desc)
    d = unpack_descriptor(desc)
    want = EXECUTE[Op.MAXPOOL](None, act[None], d)[0]
    got = read_tensor(np.frombuffer(got, np.uint8)[None], out_addr, stride, 0, c, oh, ow)[0]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("lanes", [1, 8])
def test_global_sum_equals_golden(lanes):
    c, h, w = 10, 5, 6
    stride = -(-c // lanes) * lanes
    desc = pack_descriptor(op=Op.AVGPOOL, in_c=c, in_h=h, in_w=w, out_c=c, out_h=1, out_w=1,
                           in_addr=16, in_stride=stride)
    act = np.random.default_rng(lanes).integers(0, 256, ACT_BYTES, dtype=np.uint8)
    _, writes = run_unit(Pool(11, 4, lanes=lanes), lanes, act.tobytes(), desc)
    want = EXECUTE[Op.AVGPOOL](None, act[None], unpack_descriptor(desc))[0]
    assert sorted(writes) == [(k, int(v)) for k, v in enumerate(want)]
