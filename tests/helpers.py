"""What the tests share: the accelerator configurations they run, random Fire networks
(hypothesis strategies), random checkpoints, and compiled random programs."""


import numpy as np
import torch
from fireforge.hw.bram import bank_depth
from fireforge.hw.config import AcceleratorConfig
from fireforge.hw.errors import FireforgeError
from fireforge.hw.program import load_program
from fireforge.sw.checkpoint import Checkpoint
from fireforge.sw.compiler import compile_checkpoint
from fireforge.sw.graph import GraphConfig, Layer, build_model
from fireforge.sw.model import FireSpec, SqueezeNetConfig
from hypothesis import assume
from hypothesis import strategies as st

#: small memories, 4 columns: partial output groups happen often; an image stage for up to
#: 1 KiB images (larger ones go placed, with WRITE_IMAGE)
TEST_CONFIG = AcceleratorConfig(columns=4, act_bytes=16384, weight_bytes=8192, param_entries=256,
                                codebook_entries=4096, program_entries=32, stage_bytes=1024)
#: codebook index bits the gateware decodes (None: uncompressed int8)
HW_BITS = (None, 1, 2, 4)
#: 4 input lanes, 2 requantization lanes, memory registers, and memories small enough that the
#: activation memory and the weight parts are each several banks of block RAMs
LANES_CONFIG = TEST_CONFIG.replace(rows=4, requant_lanes=2, act_bytes=6144, weight_bytes=12288,
                                   memory_registers=True)
assert bank_depth(32, 1536) == bank_depth(64, 1536) == 512
#: the sparse decoder: 8 columns (one chunk a step), and with 4 lanes x 4 columns and memory
#: registers (two chunks, each with its own value word)
SPARSE_CONFIG = TEST_CONFIG.replace(columns=8, sparse_weights=True, mask_entries=2048)
SPARSE_LANES_CONFIG = LANES_CONFIG.replace(act_bytes=12288, sparse_weights=True,
                                           mask_entries=2048)

#: every op of the general graph: a 3x3/2 stem, a residual add across two convolutions, a
#: 1x1/2 convolution, a concatenation of a convolution and a max pool whose first slice (6
#: channels) is off a 4- or 8-lane word, a second add, and a classifier without ReLU
GRAPH = GraphConfig((
    Layer("stem", "conv", ("input",), 8, 3, 2, 1),
    Layer("a", "conv", ("stem",), 5, 1),
    Layer("b", "conv", ("a",), 8, 3, 1, 1),
    Layer("res", "add", ("b", "stem")),
    Layer("down", "conv", ("res",), 6, 1, 2),
    Layer("pool", "maxpool", ("res",)),
    Layer("cat", "concat", ("down", "pool")),
    Layer("c", "conv", ("cat",), 8, 3, 1, 1),
    Layer("d", "conv", ("c",), 8, 1),
    Layer("res2", "add", ("d", "c")),
    Layer("cls", "conv", ("res2",), 5, 1, relu=False),
    Layer("gap", "avgpool", ("cls",)),
), in_channels=3, input_size=15)


@st.composite
def lane_networks(draw, lanes: int = 4):
    """Random Fire networks for ``lanes`` input lanes. Channel counts are free: a concatenation
    off the lanes is padded with zero channels (sw/padding.py), and steps and chunks are
    partial. A network whose padding cannot be laid out (a residual add of two tensors padded
    differently, which the compiler refuses) is not drawn."""
    from fireforge.sw.padding import plan_padding
    from fireforge.sw.quant import lower

    config, seed, bits = draw(networks(bits=HW_BITS))
    with torch.device("meta"):
        nodes, tensors = lower(build_model(config))
    try:
        plan_padding(nodes, tensors, lanes)
    except FireforgeError:
        assume(False)
    return config, seed, bits


@st.composite
def networks(draw, bits=(None, 3, 8)):
    """(config, seed, codebook bits or None for uncompressed int8) of a random Fire network."""
    stem_k = draw(st.sampled_from([1, 3]))
    stem_s = draw(st.sampled_from([1, 2]))
    stem_p = draw(st.sampled_from([0, 1])) if stem_k == 3 else 0
    fires = []
    for _ in range(draw(st.integers(1, 3))):
        fires.append(FireSpec(draw(st.integers(1, 6)), draw(st.integers(1, 8)),
                              draw(st.integers(1, 8))))
    pools = draw(st.lists(st.integers(0, len(fires)), max_size=2, unique=True))
    try:
        config = SqueezeNetConfig(
            stem_channels=draw(st.integers(1, 8)), stem_kernel=stem_k, stem_stride=stem_s,
            stem_padding=stem_p, fires=tuple(fires), pool_after=tuple(sorted(pools)),
            num_classes=draw(st.integers(2, 6)), in_channels=draw(st.sampled_from([1, 3])),
            input_size=draw(st.integers(9, 20)),
            bypass=draw(st.sampled_from(["none", "simple", "complex"])))
    except FireforgeError:  # pools shrank the map to nothing
        assume(False)
    return config, draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from(list(bits)))


def randomize_weights(model, seed=None):
    """``model`` (in eval mode) with random convolution weights and biases, large enough that
    every layer's integers vary; ``seed`` first when given."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, 0.3)
                if m.bias is not None:
                    m.bias.uniform_(-0.2, 0.3)
    return model.eval()


def random_checkpoint(config, seed, bits, density=0.6):
    """Random weights for ``config`` (a SqueezeNet preset's or a graph's), pruned to
    ``density`` and shared to ``bits`` when given."""
    torch.manual_seed(seed)
    model = randomize_weights(build_model(config))
    shared = None
    if bits:
        from fireforge.sw.compress import apply_masks, magnitude_masks, share_weights

        apply_masks(model, magnitude_masks(model, {n: density for n, _ in model.convs()}))
        shared = share_weights(model, bits)
    mean = [round(0.3 * 255) / 255] * config.in_channels
    return Checkpoint(model, None, "random", tuple(map(str, range(config.num_classes))), mean,
                      [0.25] * config.in_channels, {}, shared)


def compile_random(config, seed, bits, out, group=TEST_CONFIG.columns, images=4, lanes=1,
                   target=None, density=0.6):
    """A random network compiled (for ``target``'s array when given), and random images."""
    if target is not None:
        group, lanes = target.columns, target.rows
    ckpt = random_checkpoint(config, seed, bits, density)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (images, config.in_channels, config.input_size,
                              config.input_size), dtype=np.uint8)
    compile_checkpoint(ckpt, x, out, group=group, shared=ckpt.shared, lanes=lanes, target=target)
    return load_program(out), x


def run_unit(unit, lanes: int, act: bytes, desc, memories=(), max_cycles=200_000):
    """Run one engine (:class:`~fireforge.hw.conv.ConvEngine`, :class:`~fireforge.hw.vector.Pool`)
    on its own: its activation port on a block RAM of words of ``lanes`` bytes holding ``act``
    (data a cycle after the address, as the accelerator without memory registers gives it),
    ``memories`` (``(read address, read data, words)`` of the engine's other memories) the
    same way; ``desc`` (a packed descriptor) and its layer constants held while it runs.
    Returns the activation memory's bytes afterwards, and ``(address, value)`` of every result
    memory write."""
    from amaranth.hdl import Module, Value
    from amaranth.lib import memory
    from amaranth.sim import Simulator
    from fireforge.hw.isa import LayerConstants, unpack_descriptor

    d = unpack_descriptor(desc)
    m = Module()
    m.submodules.unit = unit
    words = [int.from_bytes(act[i:i + lanes], "little") for i in range(0, len(act), lanes)]
    m.submodules.act = mem = memory.Memory(shape=8 * lanes, depth=len(words), init=words)
    rd, wr = mem.read_port(), mem.write_port(granularity=8)
    m.d.comb += [rd.addr.eq(unit.act_raddr), unit.act_rdata.eq(rd.data),
                 wr.addr.eq(unit.act_waddr), wr.data.eq(unit.act_wdata), wr.en.eq(unit.act_we)]
    for k, (addr, data, init) in enumerate(memories):
        m.submodules[f"mem{k}"] = extra = memory.Memory(
            shape=len(Value.cast(data)), depth=max(1, len(init)), init=init)
        port = extra.read_port()
        m.d.comb += [port.addr.eq(addr), data.eq(port.data)]
    consts = {"rowstride": d.in_w * d.in_stride, "in_pixels": d.in_h * d.in_w,
              "out_pixels": d.out_h * d.out_w}
    writes, final = [], {}
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def bench(ctx):
        ctx.set(unit.desc, d)
        ctx.set(unit.consts, LayerConstants.const(consts))
        ctx.set(unit.start, 1)
        await ctx.tick()
        ctx.set(unit.start, 0)
        for _ in range(max_cycles):
            if hasattr(unit, "res_we") and ctx.get(unit.res_we):
                writes.append((ctx.get(unit.res_waddr), ctx.get(unit.res_wdata)))
            if ctx.get(unit.done):
                break
            await ctx.tick()
        else:
            raise TimeoutError(f"no done after {max_cycles} cycles")
        await ctx.tick()
        out = bytearray()
        for i in range(len(words)):
            out += int(ctx.get(mem.data[i])).to_bytes(lanes, "little")
        final["act"] = bytes(out)

    sim.add_testbench(bench)
    sim.run()
    return final["act"], writes
