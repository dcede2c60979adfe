"""The host link over USB (the OrangeCrab's): LUNA's CDC-ACM device, the bridge's clock-domain
crossings, the link and the accelerator in Amaranth's simulator, a USB host at the device's
UTMI interface (``fireforge.sim.usbhost``: full-speed byte timing, CRC16, data toggles, NAK and
retry), and the real driver on top. The link's driver tests run here again, unchanged, with
the USB board as their ``board``."""

import pytest
from fireforge.hw.protocol import SLIP_END
from fireforge.hw.usb import USB_MAX_PACKET, USB_PID, USB_VID
from fireforge.sim.usbhost import DATA_ENDPOINT, USBLinkTransport
from fireforge.sw.driver import Board

from ..helpers import TEST_CONFIG
from . import test_link
from .test_link import (  # noqa: F401 - collected again here, on the USB board
    test_classify_and_verify_equal_golden,
    test_errors_are_answered_and_the_link_resynchronizes,
    test_fuzz_garbage_then_a_valid_request,
    test_info_reports_the_program_and_config,
    test_load_swaps_the_model_and_a_bad_crc_keeps_the_old,
    test_out_of_range_arguments_are_refused,
    test_reply_frames_escape_special_bytes,
)

pytestmark = pytest.mark.xdist_group("usb")

programs = test_link.programs  # (the fixture: the same two random programs)


#: the link's clock in the driver tests: 24 MHz, two cycles a USB cycle, simulates three times
#: faster than the OrangeCrab's 96 (the crossings are the same FIFOs; that ratio has its own
#: test below)
TEST_SYNC_MHZ = 24.0


@pytest.fixture(scope="module")
def usb(programs):
    """One simulated USB board for the module: enumeration costs seconds."""
    (a, _), _ = programs
    transport = USBLinkTransport(TEST_CONFIG, a, board="pysim", sync_mhz=TEST_SYNC_MHZ)
    transport.wait_enumerated()
    yield transport
    transport.close()


@pytest.fixture
def board(usb, programs):
    """The link tests' ``board``, on USB; each test starts as on a fresh board: the engine
    idle (a run a test left paused is finished), the bitstream's model loaded."""
    (a, _), _ = programs
    b = Board(usb, timeout=60.0, retries=1)
    if b.status()["paused"]:
        b.run()
        b.wait(until=("done",))
    if b.info().model_hash != a.model_hash:
        b.load(a)
    yield b


def _descriptors(config: bytes):
    at = 0
    while at < len(config):
        length, kind = config[at], config[at + 1]
        yield kind, config[at:at + length]
        at += length


def test_the_board_enumerates_as_a_cdc_acm_serial_port(usb):
    d = usb.descriptors
    device = d["device"]
    assert len(device) == 18 and device[1] == 1
    assert int.from_bytes(device[8:10], "little") == USB_VID
    assert int.from_bytes(device[10:12], "little") == USB_PID
    config = d["configuration"]
    assert int.from_bytes(config[2:4], "little") == len(config)
    interfaces = [(b[5], b[6], b[7]) for kind, b in _descriptors(config) if kind == 4]
    assert interfaces == [(0x02, 0x02, 0x01), (0x0A, 0x00, 0x00)]  # CDC ACM, CDC data
    bulk = {b[2]: int.from_bytes(b[4:6], "little") for kind, b in _descriptors(config)
            if kind == 5 and b[3] == 2}
    assert bulk == {0x80 | DATA_ENDPOINT: USB_MAX_PACKET, DATA_ENDPOINT: USB_MAX_PACKET}


def test_a_reply_leaves_in_packets_that_end_with_its_frame(board, usb):
    """The bridge ends an IN packet at a reply's closing END (a short reply is not held back
    for 64 more bytes) and nowhere else: INFO's reply is full packets, then the rest."""
    start = len(usb.in_packets)
    board.info()
    packets = usb.in_packets[start:]
    frame = b"".join(packets)
    assert frame[0] == SLIP_END and frame[-1] == SLIP_END and SLIP_END not in frame[1:-1]
    assert all(len(p) == USB_MAX_PACKET for p in packets[:-1]), [len(p) for p in packets]
    assert len(packets) == -(-len(frame) // USB_MAX_PACKET)


def test_the_orangecrab_85f_clock_ratio(programs):
    """sync at 96 MHz and usb at 12, as the OrangeCrab 85F's PLL makes them: enumeration, INFO
    and a classification equal to the golden model."""
    from fireforge.boards.boards import board_spec
    from fireforge.sw.golden import run_golden

    (a, xa), _ = programs
    transport = USBLinkTransport(TEST_CONFIG, a, sync_mhz=board_spec("orangecrab-85f").target_mhz)
    b = Board(transport, timeout=60.0, retries=0)
    try:
        transport.wait_enumerated()
        assert b.info().model_hash == a.model_hash
        assert (b.classify(a, xa[0]).sums == run_golden(a, xa[:1]).sums[0]).all()
    finally:
        b.close()
