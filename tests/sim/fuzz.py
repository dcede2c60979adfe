"""Fuzzed frames against a (simulated) board's link, through the real host driver."""

import random
import time
from dataclasses import dataclass

from fireforge.hw.protocol import Cmd, RequestHeader, Status, crc32, layout_bytes, slip_encode
from fireforge.sw.driver import Board

#: seconds without a byte from the board after which it has answered the burst
QUIET_SECONDS = 0.05


@dataclass
class FuzzReport:
    frames: int
    bursts: int
    replies: int  #: well-formed replies to the junk (a chunk with ENDs inside is several frames)
    valid_answered: int  #: valid requests sent after a burst and answered
    retries: int  #: of those, answered only when sent again (the first copy was lost)
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds


def junk_frame(rng: random.Random) -> bytes:
    """Random bytes, a truncated or bit-flipped valid frame, or a valid CRC around a random
    command and arguments."""
    base = slip_encode(layout_bytes(RequestHeader, cmd=Cmd.STATUS, tag=1))
    kind = rng.randrange(4)
    if kind == 0:  # random bytes, END and ESC included now and then
        return bytes(rng.choice((rng.randrange(256), 0xC0, 0xDB))
                     for _ in range(rng.randrange(1, 60)))
    if kind == 1:
        return base[:rng.randrange(1, len(base))]
    if kind == 2:
        f = bytearray(base)
        f[rng.randrange(1, len(f) - 1)] ^= 1 << rng.randrange(8)
        return bytes(f)
    return slip_encode(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 14))))


def fuzz(url: str, frames: int, seed: int = 0, burst: int = 20) -> FuzzReport:
    """``frames`` junk frames in bursts of ``burst``: every reply that comes back is a
    well-formed frame with a known status, and once the board is quiet a valid STATUS request
    is answered (the driver sends it again if its first copy is lost: counted as a retry; a
    board that never answers raises BoardTimeout)."""
    rng = random.Random(seed)
    sent = replies = answered = retries = bursts = 0
    t0 = time.monotonic()
    with Board.open(url, timeout=5.0, retries=2) as board:
        while sent < frames:
            chunk = [junk_frame(rng) for _ in range(min(burst, frames - sent))]
            sent += len(chunk)
            bursts += 1
            board.transport.write(b"".join(chunk))
            while (frame := board._read_frame(time.monotonic() + QUIET_SECONDS)) is not None:
                assert crc32(frame[:-4]) == int.from_bytes(frame[-4:], "little")
                Status(frame[0])
                replies += 1
            tag = board._tag
            board.status()
            answered += 1
            retries += (board._tag - tag) % 255 - 1
    return FuzzReport(sent, bursts, replies, answered, retries, time.monotonic() - t0)
