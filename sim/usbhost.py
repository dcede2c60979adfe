"""A USB host in Amaranth's simulator, at the UTMI interface of LUNA's device core, and the
transport that carries the driver's frames through it into the whole chip.

What is simulated: the USB bridge (:class:`~fireforge.hw.usb.USBSerialBridge`: LUNA's CDC-ACM
device, its control and bulk endpoints, the clock-domain crossings), the host link and the
accelerator, every packet as a host sends it (tokens, data with CRC16 and DATA0/DATA1 toggles,
handshakes, NAK and retry), at full speed's byte rate (a byte every 8 ``usb`` cycles, as the
gateware PHY delivers them). What is not: LUNA's gateware PHY below UTMI (NRZI, bit stuffing,
the 48 MHz line sampling: LUNA's own tests cover it), the host's scheduling into 1 ms frames,
and the operating system's CDC-ACM driver. The packets come from LUNA's test helpers
(``luna.gateware.test.contrib.usb_packet``)."""

from __future__ import annotations

import threading

from amaranth.sim import Simulator

from ..hw.accelerator import Accelerator
from ..hw.config import AcceleratorConfig
from ..hw.errors import FireforgeError
from ..hw.link import HostLink
from ..hw.usb import USB_CLOCKS, USB_MAX_PACKET, USBSerialBridge
from .pysim import SimTransport

__all__ = ["USBHost", "USBLinkTransport", "DATA_ENDPOINT"]

#: the CDC-ACM data endpoint of LUNA's serial device (bulk OUT and IN)
DATA_ENDPOINT = 4
#: ``usb`` cycles a byte takes on a full-speed bus (12 Mbit/s at 12 MHz)
BYTE_CYCLES = 8
#: cycles a host waits for a device's packet before it calls the device silent
REPLY_TIMEOUT = 400
#: standard requests (USB 2.0, table 9-4) and CDC's SET_LINE_CODING
GET_DESCRIPTOR, SET_ADDRESS, SET_CONFIGURATION, SET_LINE_CODING = 6, 5, 9, 0x20


class USBError(FireforgeError):
    pass


class USBHost:
    """The host end of a UTMI interface, in the ``usb`` domain: enumeration, control and bulk
    transfers. Each method is a coroutine for an Amaranth testbench (``ctx``)."""

    def __init__(self, utmi, byte_cycles: int = BYTE_CYCLES):
        from luna.gateware.usb.usb2 import USBPacketID

        self.utmi, self.byte_cycles, self.PID = utmi, byte_cycles, USBPacketID
        self.address = 0
        self.toggle = {}  # (endpoint, direction) -> the next data PID

    async def _tick(self, ctx, n=1):
        if n:
            await ctx.tick("usb").repeat(n)

    async def _send(self, ctx, octets) -> None:
        u = self.utmi
        ctx.set(u.rx_active, 1)
        for b in octets:
            await self._tick(ctx, self.byte_cycles - 1)
            ctx.set(u.rx_data, b)
            ctx.set(u.rx_valid, 1)
            await self._tick(ctx)
            ctx.set(u.rx_valid, 0)
        ctx.set(u.rx_active, 0)
        await self._tick(ctx, 2 * self.byte_cycles)  # end of packet, turnaround

    async def _receive(self, ctx) -> bytes | None:
        """The device's packet, or None when it sends nothing within :data:`REPLY_TIMEOUT`."""
        u = self.utmi
        for _ in range(REPLY_TIMEOUT):
            if ctx.get(u.tx_valid):
                break
            await self._tick(ctx)
        else:
            return None
        out = bytearray()
        while ctx.get(u.tx_valid):
            out.append(ctx.get(u.tx_data))
            ctx.set(u.tx_ready, 1)
            await self._tick(ctx)
            ctx.set(u.tx_ready, 0)
            await self._tick(ctx, self.byte_cycles - 1)
        await self._tick(ctx, 2 * self.byte_cycles)
        return bytes(out)

    async def _token(self, ctx, pid, endpoint: int) -> None:
        from luna.gateware.test.contrib.usb_packet import token_packet
        from luna.gateware.test.usb2 import USBDeviceTest

        await self._send(ctx, USBDeviceTest.bits_to_octets(
            token_packet(pid, self.address, endpoint)))

    async def _handshake(self, ctx, pid) -> None:
        await self._send(ctx, [pid.byte()])

    def _pid(self, packet: bytes | None):
        if not packet:
            return None
        return self.PID.from_int(packet[0], skip_checks=False)

    async def out_packet(self, ctx, endpoint: int, data: bytes, pid=None):
        """One OUT (or, ``pid`` SETUP, SETUP) transaction; the device's handshake PID."""
        from luna.gateware.test.contrib.usb_packet import data_packet
        from luna.gateware.test.usb2 import USBDeviceTest

        P = self.PID
        setup = pid == P.SETUP
        data_pid = P.DATA0 if setup else self.toggle.get((endpoint, "out"), P.DATA0)
        await self._token(ctx, pid or P.OUT, endpoint)
        await self._send(ctx, USBDeviceTest.bits_to_octets(data_packet(data_pid, list(data))))
        answer = self._pid(await self._receive(ctx))
        if answer == P.ACK:
            self.toggle[(endpoint, "out")] = P.DATA1 if data_pid == P.DATA0 else P.DATA0
        return answer

    async def in_packet(self, ctx, endpoint: int):
        """One IN transaction: (the device's PID, its data or None). A data packet is checked
        (CRC16, the expected DATA0/DATA1) and acknowledged."""
        from luna.gateware.test.contrib.usb_packet import crc16

        P = self.PID
        await self._token(ctx, P.IN, endpoint)
        packet = await self._receive(ctx)
        pid = self._pid(packet)
        if pid not in (P.DATA0, P.DATA1):
            return pid, None
        body, crc = packet[1:-2], list(packet[-2:])
        if crc16(list(body)) != crc:
            raise USBError(f"endpoint {endpoint} IN: CRC16 {crc} of a {len(body)}-byte packet "
                           f"is wrong")
        expected = self.toggle.get((endpoint, "in"), P.DATA0)
        if pid != expected:
            raise USBError(f"endpoint {endpoint} IN: {pid.name}, expected {expected.name}")
        self.toggle[(endpoint, "in")] = P.DATA1 if pid == P.DATA0 else P.DATA0
        await self._handshake(ctx, P.ACK)
        return pid, body

    async def _retry(self, ctx, step, what: str):
        """``step()`` (a transaction: its PID and data) again while the device answers NAK."""
        for _ in range(100):
            pid, data = await step()
            if pid != self.PID.NAK:
                if pid is None or pid == self.PID.STALL or pid & self.PID.PID_INVALID:
                    raise USBError(f"{what}: the device answered {pid!r}")
                return pid, data
        raise USBError(f"{what}: NAK a hundred times")

    async def control(self, ctx, request_type: int, request: int, value: int = 0,
                      index: int = 0, length: int = 0, data: bytes = b"") -> bytes:
        """A control transfer on endpoint 0: SETUP, the data stage (IN when ``request_type``
        has bit 7, OUT with ``data`` otherwise), the status stage. Returns the IN data."""
        P = self.PID
        what = f"control request {request:#04x}"
        setup = bytes([request_type, request, *value.to_bytes(2, "little"),
                       *index.to_bytes(2, "little"),
                       *(length if request_type & 0x80 else len(data)).to_bytes(2, "little")])
        if await self.out_packet(ctx, 0, setup, pid=P.SETUP) != P.ACK:
            raise USBError(f"{what}: SETUP not acknowledged")
        self.toggle[(0, "in")] = self.toggle[(0, "out")] = P.DATA1
        got = bytearray()
        if request_type & 0x80:
            while len(got) < length:
                _, body = await self._retry(ctx, lambda: self.in_packet(ctx, 0), what)
                got += body
                if len(body) < USB_MAX_PACKET:
                    break
            self.toggle[(0, "out")] = P.DATA1
            await self._retry(ctx, lambda: self._no_data(self.out_packet(ctx, 0, b"")), what)
        else:
            for at in range(0, len(data), USB_MAX_PACKET):
                chunk = data[at:at + USB_MAX_PACKET]
                await self._retry(ctx, lambda c=chunk: self._no_data(self.out_packet(ctx, 0, c)),
                                  what)
            self.toggle[(0, "in")] = P.DATA1
            _, body = await self._retry(ctx, lambda: self.in_packet(ctx, 0), what)
            if body:
                raise USBError(f"{what}: status stage with {len(body)} bytes, not none")
        return bytes(got)

    @staticmethod
    async def _no_data(coro):
        """An OUT transaction's handshake, shaped as an IN's (PID, data) for :meth:`_retry`."""
        return await coro, None

    async def enumerate(self, ctx, address: int = 1) -> dict:
        """What an operating system does when the device appears: its descriptors, an address,
        configuration 1, and (CDC-ACM's driver, as a port opens) a line coding. The device and
        configuration descriptors, as bytes."""
        device = await self.control(ctx, 0x80, GET_DESCRIPTOR, 0x0100, length=18)
        head = await self.control(ctx, 0x80, GET_DESCRIPTOR, 0x0200, length=9)
        config = await self.control(ctx, 0x80, GET_DESCRIPTOR, 0x0200,
                                    length=int.from_bytes(head[2:4], "little"))
        await self.control(ctx, 0x00, SET_ADDRESS, address)
        self.address = address
        await self.control(ctx, 0x00, SET_CONFIGURATION, 1)
        await self.control(ctx, 0x21, SET_LINE_CODING, 0, 0,
                           data=(115_200).to_bytes(4, "little") + bytes([0, 0, 8]))
        return {"device": device, "configuration": config}


class USBLinkTransport(SimTransport):
    """A :class:`~fireforge.hw.protocol.Transport` into the chip through its USB bridge, in
    Amaranth's simulator on a thread: the USB host (:class:`USBHost`) enumerates the device,
    then moves the driver's bytes in bulk OUT packets and polls bulk IN for the replies, as a
    CDC-ACM port does. ``sync_mhz``: the link's clock (the OrangeCrab 85F's is 96 MHz; a
    slower one simulates faster: the accelerator's cycles dominate)."""

    def __init__(self, config: AcceleratorConfig, program, board: str = "pysim-usb",
                 sync_mhz: float = 96.0):
        from amaranth.hdl import Module
        from amaranth.lib import wiring
        from luna.gateware.interface.utmi import UTMIInterface

        acc = Accelerator(config, program)
        link = HostLink(acc, board)
        self.utmi = utmi = UTMIInterface()
        bridge = USBSerialBridge(utmi, serial=board)
        top = Module()
        top.submodules.acc, top.submodules.link, top.submodules.bridge = acc, link, bridge
        wiring.connect(top, link.acc, acc)
        wiring.connect(top, bridge.rx, link.rx)
        wiring.connect(top, link.tx, bridge.tx)
        super().__init__()
        self._enumerated = threading.Event()
        self.descriptors: dict = {}
        #: every non-empty bulk IN packet's bytes, in order (where the bridge ended packets)
        self.in_packets: list[bytes] = []
        self.host = host = USBHost(utmi)
        sim = Simulator(top)
        sim.add_clock(1e-6 / sync_mhz, domain="sync")
        sim.add_clock(1e-6 / USB_CLOCKS["usb"], domain="usb")

        async def bench(ctx):
            self.descriptors = await host.enumerate(ctx)
            self._enumerated.set()
            pending = b""
            while not self._stop.is_set():
                while len(pending) < USB_MAX_PACKET and not self._in.empty():
                    pending += bytes([self._in.get()])
                if pending:
                    answer = await host.out_packet(ctx, DATA_ENDPOINT, pending[:USB_MAX_PACKET])
                    if answer == host.PID.ACK:
                        pending = pending[USB_MAX_PACKET:]
                    elif answer != host.PID.NAK:
                        raise USBError(f"bulk OUT: the device answered {answer!r}")
                pid, body = await host.in_packet(ctx, DATA_ENDPOINT)
                if body:
                    self.in_packets.append(bytes(body))
                    for b in body:
                        self._out.put(b)
                elif pid not in (host.PID.NAK, host.PID.DATA0, host.PID.DATA1):
                    raise USBError(f"bulk IN: the device answered {pid!r}")

        sim.add_testbench(bench)
        self._start(sim)

    def _failed(self) -> None:
        self._enumerated.set()  # (wait_enumerated raises the error)

    def wait_enumerated(self, timeout: float = 120.0) -> dict:
        """The descriptors, once the host has configured the device."""
        if not self._enumerated.wait(timeout):
            raise USBError(f"the simulated device was not configured within {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self.descriptors
