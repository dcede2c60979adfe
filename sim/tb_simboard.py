"""cocotb side of ``fireforge simboard``: a TCP socket on one end, the simulated board's host-side
byte FIFOs (:class:`~fireforge.sim.simboard.SimBoard`) on the other.

Bytes are moved at falling clock edges (sampled and driven mid-cycle, so no race with the rising
edge); when nothing moves, the design runs freely for a while between looks. One client at a
time; a client that disconnects leaves the board running for the next one, as a real board does.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, Timer
from cocotb.utils import get_sim_time
from fireforge.sim.processes import die_with_parent
from fireforge.sim.simboard import CLOCK_NS

#: cycles the design runs between looks at the socket when no byte is moving
POLL_CYCLES = 512
#: idle looks in a row before the loop also yields real time (no client traffic, board idle)
IDLE_LOOKS = 400


class _Activity:
    """Cycles the board works for its host: from a request's first byte to its reply's last,
    and while the engine runs; not the cycles it waits for the host's next request (the
    simulated host's speed is not the board's). Written to ``path`` (JSON) at each
    disconnect, so a client reads its own session's figure after closing."""

    def __init__(self, path: str | None):
        self.path = path
        self.intervals: list[tuple[int, int]] = []
        self.span: int | None = None  # the open request's first byte
        self.last_out = -1  # the last reply byte
        self.busy_since: int | None = None
        self.clients = 0

    def request_bytes(self, now: int) -> None:
        """Bytes of a new request arrive (none were waiting)."""
        if self.span is not None and self.last_out >= self.span:
            self.intervals.append((self.span, self.last_out))
            self.span = None
        if self.span is None:
            self.span = now

    def reply_byte(self, now: int) -> None:
        self.last_out = now

    def busy(self, now: int, busy: bool) -> None:
        if busy and self.busy_since is None:
            self.busy_since = now
        elif not busy and self.busy_since is not None:
            self.intervals.append((self.busy_since, now))
            self.busy_since = None

    def disconnected(self, now: int) -> None:
        if self.span is not None:
            self.intervals.append((self.span, max(self.last_out, self.span)))
            self.span = None
        self.clients += 1
        if self.path:
            with open(self.path + ".tmp", "w") as f:
                json.dump({"active_cycles": self.total(), "clients": self.clients,
                           "cycle": now}, f)
            os.replace(self.path + ".tmp", self.path)

    def total(self) -> int:
        """The union of the intervals' lengths."""
        total, end = 0, -1
        for a, b in sorted(self.intervals):
            if b > end:
                total += b - max(a, end)
                end = b
        return total


class _Server:
    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.inbound: queue.Queue[bytes] = queue.Queue()
        self.conn: socket.socket | None = None
        self.disconnects = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            conn, _ = self.sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn = conn
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                self.inbound.put(data)
            self.conn = None
            conn.close()
            self.disconnects += 1

    def send(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            try:
                conn.sendall(data)
            except OSError:
                pass


@cocotb.test()
async def serve(dut):
    die_with_parent()  # (the simulator stops with the command that started it)
    with open(os.environ["FIREFORGE_SIMBOARD"]) as f:
        job = json.load(f)
    dut.h2d_valid.value = 0
    dut.d2h_ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    server = _Server(job["port"])
    url = f"socket://127.0.0.1:{server.port}"
    if job.get("ready_file"):
        with open(job["ready_file"] + ".tmp", "w") as f:
            f.write(url)
        os.replace(job["ready_file"] + ".tmp", job["ready_file"])
    print(f"simulated board listening on {url} (Ctrl-C stops it)", flush=True)
    deadline = time.monotonic() + job["max_seconds"] if job.get("max_seconds") else None

    pending, outgoing = bytearray(), bytearray()
    idle = 0
    activity, seen_disconnects = _Activity(job.get("stats_file")), 0
    while deadline is None or time.monotonic() < deadline:
        now = int(get_sim_time("ns")) // CLOCK_NS
        if not server.inbound.empty() and not pending:
            activity.request_bytes(now)
        while not server.inbound.empty():
            pending += server.inbound.get()
        activity.busy(now, bool(int(dut.leds.value) & 1))
        if server.disconnects != seen_disconnects and not outgoing:
            seen_disconnects = server.disconnects
            activity.disconnected(now)
        await FallingEdge(dut.clk)
        moved = False
        # host -> board: one byte a cycle while the FIFO has room
        if pending and dut.h2d_ready.value:
            dut.h2d_data.value = pending[0]
            dut.h2d_valid.value = 1
            del pending[0]
            moved = True
        else:
            dut.h2d_valid.value = 0
        # board -> host: everything the FIFO holds, one byte a cycle
        if dut.d2h_valid.value:
            outgoing.append(int(dut.d2h_data.value))
            activity.reply_byte(now)
            dut.d2h_ready.value = 1
            moved = True
        else:
            dut.d2h_ready.value = 0
            if outgoing:
                server.send(bytes(outgoing))
                outgoing.clear()
        if moved:
            idle = 0
            continue
        idle += 1
        busy = int(dut.leds.value) & 1
        if idle > IDLE_LOOKS and not busy and not pending:
            time.sleep(0.001)
        await Timer(POLL_CYCLES * CLOCK_NS, unit="ns")
