"""SLIP framing for the host link (:mod:`.protocol`): frames in, unescaped into a buffer, and
frames out, escaped with their CRC appended.

Both share one CRC unit (the link answers one frame at a time, and the unit is a long XOR
tree): each drives a :data:`CrcFeed`, and the link gives the unit to whichever feeds it.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol import CRC_BYTES, MAX_FRAME, SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC

__all__ = ["FrameRx", "FrameTx", "FrameByte", "CrcFeed", "BUFFER_DEPTH"]

#: the frame buffer's bytes: the longest request, rounded up to a power of two
BUFFER_DEPTH = 1 << (MAX_FRAME - 1).bit_length()

#: a byte of a reply's payload; ``last`` marks the payload's final byte
FrameByte = data.StructLayout({"byte": 8, "last": 1})

#: the inputs of a CRC unit (:data:`fireforge.hw.protocol.CRC`), as a feeder drives them
CrcFeed = wiring.Signature({"start": Out(1), "valid": Out(1), "data": Out(8)})


class FrameRx(wiring.Component):
    """Received bytes -> SLIP decoding -> the frame buffer, the CRC fed as the bytes arrive.

    Members
    -------
    rx : ``In(stream.Signature(8, always_ready=True))``
        Bytes from the UART.
    receiving : ``In(1)``
        The link takes a frame. Bytes that arrive otherwise (while it answers) are dropped up
        to the next ``END``, so a host that starts each frame with ``END`` resynchronizes.
    clear : ``In(1)``
        Forget the frame (its reply is out).
    end : ``Out(1)``
        A frame ended this cycle: a non-empty one, or a bad one.
    length, bad_escape, overflow : ``Out``
        The frame's bytes in the buffer (at most ``MAX_FRAME``), an escape not followed by
        ``ESC_END``/``ESC_ESC``, more than ``MAX_FRAME`` bytes.
    rd_addr, rd_data : ``In``, ``Out(8)``
        The buffer's read port, the data a cycle after the address.
    crc : ``Out(CrcFeed)``
        Every stored byte, ``start`` with the frame's first.
    """

    rx: In(stream.Signature(8, always_ready=True))
    receiving: In(1)
    clear: In(1)
    end: Out(1)
    length: Out(range(BUFFER_DEPTH + 1))
    bad_escape: Out(1)
    overflow: Out(1)
    rd_addr: In(range(BUFFER_DEPTH))
    rd_data: Out(8)
    crc: Out(CrcFeed)

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = buf = memory.Memory(shape=8, depth=BUFFER_DEPTH, init=[])
        wr, rd = buf.write_port(), buf.read_port()
        m.d.comb += [rd.addr.eq(self.rd_addr), self.rd_data.eq(rd.data)]
        esc, discard = Signal(), Signal()
        byte, store = Signal(8), Signal()
        data, length = self.rx.payload, self.length
        with m.If(self.rx.valid):
            with m.If(~self.receiving):
                m.d.sync += discard.eq(1)
            with m.Elif(data == SLIP_END):
                with m.If(discard):
                    m.d.sync += [discard.eq(0), length.eq(0), esc.eq(0), self.bad_escape.eq(0),
                                 self.overflow.eq(0)]
                with m.Elif((length != 0) | self.bad_escape | self.overflow):
                    m.d.comb += self.end.eq(1)
            with m.Elif(discard):
                pass
            with m.Elif(esc):
                m.d.sync += esc.eq(0)
                with m.If(data == SLIP_ESC_END):
                    m.d.comb += [byte.eq(SLIP_END), store.eq(1)]
                with m.Elif(data == SLIP_ESC_ESC):
                    m.d.comb += [byte.eq(SLIP_ESC), store.eq(1)]
                with m.Else():
                    m.d.sync += self.bad_escape.eq(1)
            with m.Elif(data == SLIP_ESC):
                m.d.sync += esc.eq(1)
            with m.Else():
                m.d.comb += [byte.eq(data), store.eq(1)]
        with m.If(store):
            with m.If(length < MAX_FRAME):
                m.d.comb += [wr.addr.eq(length), wr.data.eq(byte), wr.en.eq(1),
                             self.crc.valid.eq(1), self.crc.data.eq(byte),
                             self.crc.start.eq(length == 0)]
                m.d.sync += length.eq(length + 1)
            with m.Else():
                m.d.sync += self.overflow.eq(1)
        with m.If(self.clear):
            m.d.sync += [length.eq(0), esc.eq(0), self.bad_escape.eq(0), self.overflow.eq(0)]
        return m


class FrameTx(wiring.Component):
    """Payload bytes -> ``END``, the escaped payload and its CRC, ``END``.

    The CRC unit is outside (``crc``, ``crc_value``). It is fed from registers (a cycle after
    the byte is taken), so the link's reply multiplexers and the CRC's XOR tree are not one
    path. The CRC is copied two cycles after the payload's last byte (its last update is then
    in): the link goes back to receiving, and to feeding the unit, while the CRC bytes are being
    sent. The first byte it can receive reaches the unit no earlier than the cycle of the copy.

    Members
    -------
    body : ``In(stream.Signature(FrameByte))``
        The reply's payload; a frame starts with its first byte and ends after the ``last``.
    tx : ``Out(stream.Signature(8))``
        The frame's bytes, to the UART.
    crc : ``Out(CrcFeed)``, crc_value : ``In(32)``
        The shared CRC unit: its inputs and its value.
    """

    body: In(stream.Signature(FrameByte))
    tx: Out(stream.Signature(8))
    crc: Out(CrcFeed)
    crc_value: In(32)

    def elaborate(self, platform):
        m = Module()
        byte = Signal(8)  # the byte being sent (payload or CRC), before escaping
        crc_bytes = Signal(32)  # a copy: the link receives again while the CRC goes out
        count = Signal(range(CRC_BYTES + 1))  # CRC bytes still to send
        in_crc = Signal()
        starting, feeding = Signal(), Signal()  # the CRC unit's start and byte, registered
        body, tx = self.body, self.tx
        m.d.comb += [self.crc.start.eq(starting), self.crc.valid.eq(feeding),
                     self.crc.data.eq(byte)]
        m.d.sync += [starting.eq(0), feeding.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(body.valid):
                    m.d.comb += [tx.payload.eq(SLIP_END), tx.valid.eq(1)]
                    with m.If(tx.ready):
                        m.d.sync += starting.eq(1)
                        m.next = "TAKE"
            with m.State("TAKE"):
                # accept one payload byte (or go on with the CRC)
                with m.If(in_crc):
                    m.d.sync += [byte.eq(crc_bytes[:8]), crc_bytes.eq(crc_bytes >> 8),
                                 count.eq(count - 1)]
                    m.next = "SEND"
                with m.Elif(body.valid):
                    m.d.comb += body.ready.eq(1)
                    m.d.sync += [byte.eq(body.payload.byte), feeding.eq(1)]
                    with m.If(body.payload.last):
                        m.next = "FEED"
                    with m.Else():
                        m.next = "SEND"
            with m.State("FEED"):
                # the last payload byte goes into the CRC
                m.next = "LATCH"
            with m.State("LATCH"):
                # the CRC of the whole payload
                m.d.sync += [crc_bytes.eq(self.crc_value), count.eq(CRC_BYTES), in_crc.eq(1)]
                m.next = "SEND"
            with m.State("SEND"):
                special = (byte == SLIP_END) | (byte == SLIP_ESC)
                m.d.comb += [tx.payload.eq(Mux(special, SLIP_ESC, byte)), tx.valid.eq(1)]
                with m.If(tx.ready):
                    with m.If(special):
                        m.next = "ESCAPED"
                    with m.Elif(in_crc & (count == 0)):
                        m.next = "END"
                    with m.Else():
                        m.next = "TAKE"
            with m.State("ESCAPED"):
                m.d.comb += [tx.payload.eq(Mux(byte == SLIP_END, SLIP_ESC_END, SLIP_ESC_ESC)),
                             tx.valid.eq(1)]
                with m.If(tx.ready):
                    with m.If(in_crc & (count == 0)):
                        m.next = "END"
                    with m.Else():
                        m.next = "TAKE"
            with m.State("END"):
                m.d.comb += [tx.payload.eq(SLIP_END), tx.valid.eq(1)]
                with m.If(tx.ready):
                    m.d.sync += in_crc.eq(0)
                    m.next = "IDLE"
        return m
