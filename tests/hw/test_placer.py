"""The pixel placer against the protocol's reference placement, byte for byte."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from fireforge.hw.placer import PixelPlacer
from fireforge.hw.protocol import place_image


def _placement(c, h, w, k, s, p, pb, addr=40, pad_value=77):
    return {"addr": addr, "channels": c, "height": h, "width": w, "pixel_bytes": pb,
            "window": k, "window_stride": s, "window_pad": p, "pad_value": pad_value}


def _place(placement, images, gaps, restart_after=None):
    """Each image's bytes through the placer (offered with random gaps); the writes of the
    last image as {address: byte}, and the cycles it took. ``restart_after``: start the
    first image again after that many of its bytes."""
    dut = PixelPlacer(12)
    rng = np.random.default_rng(3)
    writes, cycles = {}, []

    async def bench(ctx):
        ctx.set(dut.placement, placement)
        for n, image in enumerate(images):
            raw = image.transpose(1, 2, 0).tobytes()
            if n == 0 and restart_after is not None:
                raw = raw[:restart_after]
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            writes.clear()
            i, cycle = 0, 0
            while True:
                offer = i < len(raw) and (not gaps or rng.random() < 0.6)
                ctx.set(dut.pixels.valid, offer)
                ctx.set(dut.pixels.payload, raw[i] if offer else 0)
                taken = offer and ctx.get(dut.pixels.ready)
                if ctx.get(dut.we):
                    writes[ctx.get(dut.addr)] = ctx.get(dut.data)
                if ctx.get(dut.done) or (i == len(raw) and ctx.get(dut.waiting)):
                    break
                await ctx.tick()
                cycle += 1
                i += taken
            assert ctx.get(dut.position) == len(raw)
            cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return writes, cycles


@pytest.mark.parametrize(("c", "h", "w", "k", "s", "p", "pb"), [
    (1, 5, 6, 3, 1, 1, 16),   # the ECP5 stem on gray digits, in small
    (3, 7, 5, 3, 2, 1, 32),   # stride 2, RGB (squeezenet1_1's stem)
    (1, 6, 7, 5, 2, 2, 32),   # a wider window and pad
    (2, 4, 3, 0, 0, 0, 8),    # no window: pixels padded to a lane word
])
def test_placer_writes_what_place_image_places(c, h, w, k, s, p, pb):
    """Every window byte at its address, nothing else written: the placed tensor equals the
    reference except the zero fill after each pixel's values, which is never written."""
    placement = _placement(c, h, w, k, s, p, pb)
    rng = np.random.default_rng(c * 100 + h)
    image = rng.integers(0, 256, (c, h, w), dtype=np.uint8)
    writes, (cycles,) = _place(placement, [image], gaps=True)
    addr, want = place_image(placement, image)
    values = (k or 1) ** 2 * c
    expect = {addr + i: b for i, b in enumerate(want) if i % pb < values}
    assert writes == expect
    kk, pad = (k or 1) ** 2, p if k else 0
    assert cycles >= ((h + 2 * pad) * (w + 2 * pad) * c) * (kk + 3)


def test_placer_restarts_an_interrupted_image():
    """A start while it waits for a byte begins a new image from its first pixel: a host that
    lost a reply sends the image again from offset 0."""
    placement = _placement(1, 5, 5, 3, 1, 1, 16)
    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, (1, 5, 5), dtype=np.uint8) for _ in range(2)]
    writes, _ = _place(placement, images, gaps=False, restart_after=7)
    addr, want = place_image(placement, images[1])
    assert writes == {addr + i: b for i, b in enumerate(want) if i % 16 < 9}
