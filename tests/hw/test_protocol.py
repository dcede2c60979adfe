"""The link protocol on its own: frames, layouts and the model identity, as a third-party host
would implement them from hw/protocol.py."""

import struct
import zlib

import pytest
from fireforge.hw.protocol import (
    ARGUMENTS,
    CRC,
    MAX_DATA,
    MAX_FRAME,
    SLIP_END,
    SLIP_ESC,
    CountersHeader,
    InfoReply,
    ModelInfo,
    ReplyHeader,
    RequestHeader,
    ResultHeader,
    StatusReply,
    crc32,
    layout_bytes,
    layout_from_bytes,
    model_info_bytes,
    parse_model_info,
    slip_encode,
)
from fireforge.sw.driver import _Deframer


@pytest.mark.parametrize("payload", [b"", b"\x01\x02", bytes([SLIP_END, SLIP_ESC, 0, 255]),
                                     bytes(range(256))])
def test_slip_frames_round_trip(payload):
    frame = slip_encode(payload)
    assert frame[0] == frame[-1] == SLIP_END and SLIP_END not in frame[1:-1]
    (body,) = list(_Deframer().feed(frame))
    assert body[:-4] == payload and struct.unpack("<I", body[-4:])[0] == zlib.crc32(payload)


def test_crc_is_zlibs_and_the_gateware_residue():
    data = b"fireforge"
    assert crc32(data) == zlib.crc32(data) == CRC.compute(data)
    # the receiver's CRC register over payload + CRC ends on the residue (what the gateware's
    # match_detected checks); compute() gives it with the output XOR applied
    assert CRC.compute(data + struct.pack("<I", crc32(data))) == (
        CRC.residue() ^ CRC.algorithm.xor_output)


def test_layouts_pack_little_endian_in_field_order():
    raw = layout_bytes(RequestHeader, cmd=0x05, tag=0x7F)
    assert raw == bytes([0x05, 0x7F])
    assert layout_from_bytes(ReplyHeader, bytes([0, 3, 5])).tag == 3
    with pytest.raises(ValueError, match="the layout needs"):
        layout_from_bytes(StatusReply, b"\x00")
    for layout in (InfoReply, StatusReply, ResultHeader, CountersHeader, *ARGUMENTS.values()):
        assert layout.size % 8 == 0


def test_model_info_round_trip():
    digest = bytes(range(32)).hex()
    raw = model_info_bytes(digest, -0.3125)
    assert len(raw) == ModelInfo.size // 8
    assert raw[:32] == bytes(range(32)) and raw[32:] == struct.pack("<f", -0.3125)
    assert parse_model_info(layout_from_bytes(ModelInfo, raw)) == (digest, -0.3125)


def test_the_longest_request_fits_a_frame():
    longest = RequestHeader.size // 8 + max(a.size for a in ARGUMENTS.values()) // 8 + MAX_DATA
    assert MAX_FRAME == longest + 4
