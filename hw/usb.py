"""The host link over USB, for boards whose USB connector goes straight to the FPGA (the
OrangeCrab): a CDC-ACM serial device in place of a UART, so the host sees a serial port and the
driver, the protocol and the link do not change.

The device is LUNA's (``luna.gateware.usb.devices.acm.USBSerialDevice``: descriptors, control
endpoint, bulk endpoints, and, on raw D+/D- pins, its full-speed gateware PHY). It runs in the
``usb`` domain (12 MHz); the PHY samples the lines in ``usb_io`` (48 MHz, phase-related: the
same PLL makes both, :data:`USB_CLOCKS`). The link runs in ``sync``. Two asynchronous FIFOs
cross between them:

- host to board: the link takes a byte whenever one arrives (``always_ready``), so the bridge
  hands it at most one every :data:`~.link.RX_BYTE_CYCLES` cycles; USB's own flow control (the
  endpoint answers NAK while its buffer is full) holds the host back;
- board to host: a bulk IN packet goes out when it is full (64 bytes) or its stream marks the
  last byte. The bridge marks each reply frame's closing ``END`` (an ``END`` after other bytes;
  a frame's opening ``END`` follows the previous frame's closing one), so a reply reaches the
  host as soon as it is complete, not when 64 more bytes have piled up behind it.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .link import RX_BYTE_CYCLES
from .protocol import SLIP_END

__all__ = ["USBSerialBridge", "USB_CLOCKS", "USB_PINS", "USB_VID", "USB_PID", "USB_MAX_PACKET",
           "FIFO_DEPTH"]

#: the clock domains LUNA's full-speed device needs, in MHz: ``usb_io`` samples the lines,
#: ``usb`` runs the protocol; a board's PLL makes both beside ``sync``
USB_CLOCKS = {"usb_io": 48.0, "usb": 12.0}
#: the pins of a USB connector wired to the FPGA (amaranth-boards' ``DirectUSBResource``) and
#: the buffer each takes: the PHY drives D+ and D- both ways and the 1.5 kOhm pull-up on D+
USB_PINS = {"d_p": "io", "d_n": "io", "pullup": "o"}
#: pid.codes' vendor ID and its test product ID (1209:0001, "for private testing only"): a
#: fireforge board is a development board on its owner's desk; a product needs its own ID
USB_VID, USB_PID = 0x1209, 0x0001
#: a full-speed bulk endpoint's largest packet
USB_MAX_PACKET = 64
#: each crossing FIFO's bytes: LUNA's endpoints buffer whole packets themselves
FIFO_DEPTH = 16


class USBSerialBridge(wiring.Component):
    """USB CDC-ACM on one side, the link's byte streams on the other.

    Parameters
    ----------
    bus :
        What LUNA's ``USBDevice`` takes: the board's raw USB pins (``d_p``, ``d_n``, ``pullup``;
        the gateware PHY is built) or a UTMI interface (a simulation's host model drives it).
    serial : str
        The USB serial number string (the board's name).

    Members
    -------
    rx : ``Out(stream.Signature(8, always_ready=True))``
        Bytes from the host, for the link's ``rx``; one every ``RX_BYTE_CYCLES`` cycles at most.
    tx : ``In(stream.Signature(8))``
        The link's reply bytes, for the host.
    """

    rx: Out(stream.Signature(8, always_ready=True))
    tx: In(stream.Signature(8))

    def __init__(self, bus, serial: str = ""):
        self._bus = bus
        self._serial = serial
        super().__init__()

    def elaborate(self, platform):
        from luna.gateware.usb.devices.acm import USBSerialDevice

        m = Module()
        m.submodules.acm = acm = USBSerialDevice(
            bus=self._bus, idVendor=USB_VID, idProduct=USB_PID, manufacturer_string="fireforge",
            product_string="fireforge accelerator", serial_number=self._serial,
            max_packet_size=USB_MAX_PACKET)
        m.d.comb += acm.connect.eq(1)

        # host -> board, paced for the link
        m.submodules.h2d = h2d = fifo.AsyncFIFO(width=8, depth=FIFO_DEPTH, w_domain="usb",
                                                r_domain="sync")
        m.d.comb += [h2d.w_data.eq(acm.rx.payload), h2d.w_en.eq(acm.rx.valid),
                     acm.rx.ready.eq(h2d.w_rdy)]
        wait = Signal(range(RX_BYTE_CYCLES))
        go = h2d.r_rdy & (wait == 0)
        m.d.comb += [self.rx.payload.eq(h2d.r_data), self.rx.valid.eq(go), h2d.r_en.eq(go)]
        with m.If(go):
            m.d.sync += wait.eq(RX_BYTE_CYCLES - 1)
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)

        # board -> host: each byte with its packet-end flag
        m.submodules.d2h = d2h = fifo.AsyncFIFO(width=9, depth=FIFO_DEPTH, w_domain="sync",
                                                r_domain="usb")
        after_end = Signal(init=1)  # the last byte sent was an END (or none was sent yet)
        is_end = self.tx.payload == SLIP_END
        m.d.comb += [d2h.w_data.eq(Cat(self.tx.payload, is_end & ~after_end)),
                     d2h.w_en.eq(self.tx.valid), self.tx.ready.eq(d2h.w_rdy)]
        with m.If(self.tx.valid & d2h.w_rdy):
            m.d.sync += after_end.eq(is_end)
        m.d.comb += [acm.tx.payload.eq(d2h.r_data[:8]), acm.tx.last.eq(d2h.r_data[8]),
                     acm.tx.valid.eq(d2h.r_rdy), d2h.r_en.eq(acm.tx.ready)]
        return m
