"""The link protocol on its own: frames, layouts and the model identity, as a third-party host
would implement them from hw/protocol.py."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fireforge.hw.errors import FireforgeError
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
    place_image,
    reference_tables,
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
    placement = {"addr": 0x1234, "channels": 3, "height": 32, "width": 30, "pixel_bytes": 32,
                 "window": 3, "window_stride": 1, "window_pad": 1, "pad_value": 77}
    raw = model_info_bytes(digest, -0.3125, placement)
    assert len(raw) == ModelInfo.size // 8
    assert raw[:32] == bytes(range(32)) and raw[32:36] == struct.pack("<f", -0.3125)
    assert raw[36:] == struct.pack("<IHHHHBBBB", 0x1234, 3, 32, 30, 32, 3, 1, 1, 77)
    assert parse_model_info(layout_from_bytes(ModelInfo, raw)) == (digest, -0.3125, placement)


def test_place_image_windows_and_pads_each_pixel():
    image = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    flat = {"addr": 64, "channels": 2, "height": 3, "width": 4, "pixel_bytes": 4, "window": 0,
            "window_stride": 0, "window_pad": 0, "pad_value": 0}
    addr, raw = place_image(flat, image)
    pixels = np.frombuffer(raw, np.uint8).reshape(3, 4, 4)
    assert addr == 64 and (pixels[..., :2] == image.transpose(1, 2, 0)).all()
    assert not pixels[..., 2:].any()
    windowed = {**flat, "pixel_bytes": 24, "window": 3, "window_stride": 2, "window_pad": 1,
                "pad_value": 9}
    _, raw = place_image(windowed, image)
    out = np.frombuffer(raw, np.uint8).reshape(2, 2, 24)  # (3 + 2 - 3) // 2 + 1 = 2 rows
    # output pixel (1, 1) sees image rows 1..3 and columns 1..3; row 3 is padding
    window = out[1, 1, :18].reshape(3, 3, 2)
    assert (window[:2, :, :] == image.transpose(1, 2, 0)[1:3, 1:4]).all()
    assert (window[2] == 9).all() and not out[..., 18:].any()
    with pytest.raises(FireforgeError, match="this model takes 2x3x4"):
        place_image(flat, image[:, :2])


def test_the_longest_request_fits_a_frame():
    longest = RequestHeader.size // 8 + max(a.size for a in ARGUMENTS.values()) // 8 + MAX_DATA
    assert MAX_FRAME == longest + 4


def test_the_protocol_document_carries_the_module_reference():
    """docs/protocol.md's reference section is exactly what the module says (so the two cannot
    drift); refresh it with ``python -m fireforge.hw.protocol``."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    start = doc.index("\n", doc.index("<!-- reference:")) + 1
    assert doc[start:doc.index("<!-- end of reference -->")] == reference_tables()
    from fireforge.hw.isa import CHANNEL_PARAMS_BYTES, PROGRAM_WORD_BYTES

    assert f"PROGRAM_WORD_BYTES ({PROGRAM_WORD_BYTES})" in doc
    assert f"CHANNEL_PARAMS_BYTES ({CHANNEL_PARAMS_BYTES})" in doc
