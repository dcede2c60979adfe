"""Fit before place-and-route: the accelerator configuration a board gets for a program, and
whether its memories and multipliers fit the device, counted in the device's own blocks.

The count follows how yosys maps a memory: the cheapest arrangement of the block's aspect ratios
(ECP5 DP16KD: 16Kx1 .. 512x36; iCE40 EBR: 2Kx2 .. 256x16). On a device with SPRAM (the iCE40
UltraPlus: four 16K x 16 single-port blocks) the activations go to two SPRAM banks (the program
must be compiled for them: ``--config up5k``) and the weights to SPRAMs side by side, loaded over
the link at run time; everything else is block RAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..hw.accelerator import check_program, codebook_bits_needed
from ..hw.bram import bram_blocks
from ..hw.config import RX_FIFO_BYTES, AcceleratorConfig
from ..hw.conv import mask_parts, weight_parts
from ..hw.errors import FireforgeError
from ..hw.isa import ACC_BITS, ACT_BITS, CHANNEL_PARAMS_BYTES, MULT_BITS, Op, mask_word_bytes
from ..hw.protocol import MAX_FRAME, Space
from ..hw.spram import SPRAM_BYTES, SPRAM_DEPTH, SPRAM_WIDTH
from .boards import BoardSpec

__all__ = ["board_config", "fit_board", "MemoryUse", "format_board_fit"]

_ALIGN = 512  # memory depths are rounded up to this many entries: room for another model


@dataclass(frozen=True)
class MemoryUse:
    name: str
    width: int
    depth: int
    kind: str = "bram"  #: or "spram"

    @property
    def bytes(self) -> int:
        return self.width * self.depth // 8

    def blocks(self, family: str) -> int:
        if self.kind == "spram":
            return math.ceil(self.width / SPRAM_WIDTH) * math.ceil(self.depth / SPRAM_DEPTH)
        return bram_blocks(self.width, self.depth, family)


def _round(n: int) -> int:
    return max(_ALIGN, -(-n // _ALIGN) * _ALIGN)


def board_config(spec: BoardSpec, program, slots: int | None = None) -> AcceleratorConfig:
    """The configuration for ``program`` on ``spec``: the program's array width, memories sized
    to the program (rounded up, so a somewhat larger model can be loaded later), DSP
    multipliers, and two model slots when they fit (``slots`` forces one or two; a device with
    SPRAM always gets the SPRAM layout with one slot)."""
    m = program.manifest
    columns, rows = m.group, program.lanes
    if (rows, m.act_banks) != ((1, 2) if spec.dev.spram_blocks else (rows, 1)):
        named = f"--config {m.accelerator} " if m.accelerator else ""
        raise FireforgeError(
            f"{program.path} was compiled for {named}({rows} input lane(s), {m.act_banks} "
            f"activation bank(s)); {spec.name} runs programs compiled with --config "
            f"{' or '.join(spec.configs)}: compile it again")
    word = rows * columns
    images = program.images
    base = AcceleratorConfig(
        columns=columns,
        rows=rows,
        act_bytes=_round(m.act_bytes),
        weight_bytes=_round(-(-len(images["weights.bin"]) // word)) * word,
        param_entries=_round(len(images["params.bin"]) // CHANNEL_PARAMS_BYTES),
        codebook_entries=_round(len(images["codebooks.bin"])),
        program_entries=max(32, len(program.layers)),
        result_entries=max(16, program.num_classes),
        # one raw image in the link, so the next crosses the link during a run
        stage_bytes=_round(math.prod(program.input_shape)),
        # requests in flight: the next image's requests arrive while the link answers
        rx_fifo_bytes=RX_FIFO_BYTES,
        # the sparse decoder and its mask memory where the program has sparse layers
        sparse_weights=bool(images["masks.bin"]),
        mask_entries=(_round(len(images["masks.bin"]) // mask_word_bytes(rows, columns))
                      if images["masks.bin"] else 1),
        multiplier="dsp", weight_memory="bram", model_slots=2,
        bypass_add=any(d.op == Op.ADD for d in program.descriptors),
        memory_registers=spec.tech.memory_registers)
    if rows > 1:
        # Input lanes: as many requantization lanes as the multipliers allow (up to one per
        # column), and a group FIFO deep enough for groups of one step (in block RAM).
        base = base.replace(fifo_depth=16, fifo_memory="bram")
        for lanes in (16, 8, 4, 2, 1):
            if columns % lanes == 0 and rows % lanes == 0:
                base = base.replace(requant_lanes=lanes)
                if fit_board(spec, base)["dsp"] <= spec.dev.dsp:
                    break
    if spec.dev.spram_blocks:
        # SPRAM for the activations (two banks) and the weights (as deep as one SPRAM), one
        # slot (the load overwrites the model: SPRAM is written while the engine is idle), the
        # shallow group FIFO in block RAM (logic is what these devices run out of), and a
        # codebook decoder only as wide as the program needs (none for int8 weights)
        return base.replace(act_bytes=2 * SPRAM_BYTES, act_memory="spram",
                            weight_memory="spram", weight_bytes=SPRAM_DEPTH * columns,
                            model_slots=1, fifo_depth=2, fifo_memory="bram", rx_fifo_bytes=0,
                            codebook_bits=codebook_bits_needed(program))
    if slots is not None:
        return base.replace(model_slots=slots)
    if fit_board(spec, base)["fits"]:
        return base
    return base.replace(model_slots=1)


def memories(config: AcceleratorConfig) -> list[MemoryUse]:
    model = []
    for space, (words, word_bytes) in config.model_spaces().items():
        kind = "spram" if space == Space.WEIGHTS and not config.weights_preloaded else "bram"
        # (the weight and mask memories in parts, each mapped to its own blocks)
        parts = {Space.WEIGHTS: weight_parts(config),
                 Space.MASKS: mask_parts(config)}.get(space, 1)
        model += [MemoryUse(space.name.lower() + (f" {k}" if parts > 1 else ""),
                            word_bytes * 8 // parts, words * config.model_slots, kind)
                  for k in range(parts)]
    acts = ([MemoryUse("activations", SPRAM_WIDTH, config.bank_bytes // 2 * config.act_banks,
                       "spram")] if config.act_memory == "spram"
            else [MemoryUse("activations", ACT_BITS * config.rows,
                            config.act_bytes // config.rows)])
    fifo = ([MemoryUse("group FIFO", ACC_BITS * config.columns, config.fifo_depth)]
            if config.fifo_memory == "bram" else [])
    return [
        *acts,
        *model,
        *fifo,
        MemoryUse("results", ACC_BITS, config.result_entries),
        MemoryUse("counters", 32, config.program_entries),
        MemoryUse("link buffer", 8, 1 << (MAX_FRAME - 1).bit_length()),
        *([MemoryUse("image stage", 8, config.stage_bytes)] if config.stage_bytes else []),
        *([MemoryUse("receive FIFO", 8, config.rx_fifo_bytes)] if config.rx_fifo_bytes
          else []),
    ]


def fit_board(spec: BoardSpec, config: AcceleratorConfig) -> dict:
    """Block RAM, SPRAM and multipliers the configuration needs on ``spec``'s device."""
    dev = spec.dev
    rows = [{"memory": mem.name, "kind": mem.kind, "width": mem.width, "depth": mem.depth,
             "bytes": mem.bytes, "blocks": mem.blocks(spec.family)} for mem in memories(config)]
    bram = sum(r["blocks"] for r in rows if r["kind"] == "bram")
    spram = sum(r["blocks"] for r in rows if r["kind"] == "spram")
    per = math.ceil(ACC_BITS / spec.tech.dsp_width) * math.ceil(MULT_BITS / spec.tech.dsp_width)
    # the array's int8 multipliers, the requantizer (int32 x uint16), the bypass add (2x)
    add = 2 if config.bypass_add else 0
    rq = per * config.requant_lanes
    dsp = config.macs + rq + add
    problems = []
    if bram > dev.bram_blocks:
        problems.append(f"block RAM: needs {bram} of {dev.bram_blocks} blocks ("
                        + ", ".join(f"{r['memory']} {r['blocks']}" for r in rows
                                    if r["blocks"] and r["kind"] == "bram") + ")")
    if spram > dev.spram_blocks:
        problems.append(f"SPRAM: needs {spram} of {dev.spram_blocks} blocks ("
                        + ", ".join(f"{r['memory']} {r['blocks']}" for r in rows
                                    if r["kind"] == "spram") + ")")
    if dsp > dev.dsp:
        problems.append(f"multipliers: needs {dsp} ({config.macs} MACs + {rq} "
                        f"requantization" + (f" + {add} bypass add" if add else "")
                        + f"), the device has {dev.dsp}")
    return {"board": spec.name, "device": dev.name, "fits": not problems, "problems": problems,
            "bram_blocks": bram, "bram_available": dev.bram_blocks, "spram_blocks": spram,
            "spram_available": dev.spram_blocks, "dsp": dsp, "dsp_available": dev.dsp,
            "model_slots": config.model_slots, "memories": rows}


def format_board_fit(report: dict) -> str:
    lines = [f"{'memory':<12} {'kind':<5} {'width':>6} {'depth':>8} {'bytes':>9} {'blocks':>6}"]
    for r in report["memories"]:
        lines.append(f"{r['memory']:<12} {r['kind']:<5} {r['width']:>6} {r['depth']:>8,} "
                     f"{r['bytes']:>9,} {r['blocks']:>6}")
    spram = (f", SPRAM {report['spram_blocks']} of {report['spram_available']}"
             if report["spram_available"] else "")
    lines.append(f"block RAM {report['bram_blocks']} of {report['bram_available']}{spram}, "
                 f"multipliers "
                 f"{report['dsp']} of {report['dsp_available']}, model slots "
                 f"{report['model_slots']}: {'fits' if report['fits'] else 'DOES NOT FIT'} "
                 f"{report['device']}")
    return "\n".join(lines)


def require_fit(spec: BoardSpec, program, config: AcceleratorConfig) -> dict:
    """Raise, before synthesis, with what overflows and what would fit, or with why the
    program cannot run on the board's configuration."""
    report = fit_board(spec, config)
    if not report["fits"]:
        hints = []
        smaller = [b for b in ("squeezenet_tiny",) if b != program.manifest.preset]
        if smaller:
            hints.append(f"try a smaller preset ({', '.join(smaller)}), fewer bits (compress "
                         f"--bits 2) or a lower density, or a board with a larger device")
        raise FireforgeError(f"{program.path} does not fit {spec.name} ({spec.device}): "
                             + "; ".join(report["problems"])
                             + (". " + "; ".join(hints) if hints else ""))
    try:
        check_program(config, program)
    except FireforgeError as e:
        hint = (" (the iCE40 UltraPlus boards take programs compiled with --config up5k)"
                if spec.dev.spram_blocks else "")
        raise FireforgeError(f"{program.path} cannot be built for {spec.name}: "
                             f"{str(e).split(': ', 1)[-1]}{hint}") from None
    return report
