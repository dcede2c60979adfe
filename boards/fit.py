"""Fit before place-and-route: the accelerator configuration a board gets for a program, and
whether its memories and multipliers fit the device, counted in the device's own blocks.

The count follows how yosys maps a memory: the cheapest arrangement of the block's aspect ratios
(ECP5 DP16KD: 16Kx1 .. 512x36; iCE40 EBR: 2Kx2 .. 256x16). Memories read and written in the
same cycle (the activation memory; the model memories with two slots, where a load writes one
slot while the engine reads the other) need a true dual-port block: the iCE40 UltraPlus SPRAM is
single-port, so only block RAM counts for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..hw.config import AcceleratorConfig
from ..hw.isa import ACC_BITS, ACT_BITS, CHANNEL_PARAMS_BYTES, MULT_BITS
from ..hw.protocol import MAX_FRAME
from ..sw.errors import FireforgeError
from .boards import BoardSpec

__all__ = ["board_config", "fit_board", "MemoryUse", "format_board_fit"]

#: (width, depth) arrangements of one block RAM
_BRAM_SHAPES = {"ecp5": ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
                "ice40": ((2, 2048), (4, 1024), (8, 512), (16, 256))}
#: multiplier width of one DSP block (MULT18X18D, SB_MAC16)
_DSP_WIDTH = {"ecp5": 18, "ice40": 16}
_ALIGN = 512  # memory depths are rounded up to this many entries: room for another model


@dataclass(frozen=True)
class MemoryUse:
    name: str
    width: int
    depth: int

    @property
    def bytes(self) -> int:
        return self.width * self.depth // 8

    def blocks(self, family: str) -> int:
        return min(math.ceil(self.width / w) * math.ceil(self.depth / d)
                   for w, d in _BRAM_SHAPES[family])


def _round(n: int) -> int:
    return max(_ALIGN, -(-n // _ALIGN) * _ALIGN)


def board_config(spec: BoardSpec, program, slots: int | None = None) -> AcceleratorConfig:
    """The configuration for ``program`` on ``spec``: the program's array width, memories sized
    to the program (rounded up, so a somewhat larger model can be loaded later), DSP
    multipliers, and two model slots when they fit (``slots`` forces one or two)."""
    m = program.manifest
    columns = m["group"]
    images = program.images
    base = AcceleratorConfig(
        columns=columns,
        act_bytes=_round(m["act_bytes"]),
        weight_bytes=_round(-(-len(images["weights.bin"]) // columns)) * columns,
        param_entries=_round(len(images["params.bin"]) // CHANNEL_PARAMS_BYTES),
        codebook_entries=_round(len(images["codebooks.bin"])),
        program_entries=max(64, len(program.layers)),
        result_entries=max(16, program.num_classes),
        multiplier="dsp", weight_memory="bram", model_slots=2)
    if slots is not None:
        return base.replace(model_slots=slots)
    if fit_board(spec, base)["fits"]:
        return base
    return base.replace(model_slots=1)


def memories(config: AcceleratorConfig) -> list[MemoryUse]:
    model = [MemoryUse(space.name.lower(), word_bytes * 8, words * config.model_slots)
             for space, (words, word_bytes) in config.model_spaces().items()]
    return [
        MemoryUse("activations", ACT_BITS, config.act_bytes),
        *model,
        MemoryUse("results", ACC_BITS, config.result_entries),
        MemoryUse("counters", 32, config.program_entries),
        MemoryUse("link buffer", 8, 1 << (MAX_FRAME - 1).bit_length()),
    ]


def fit_board(spec: BoardSpec, config: AcceleratorConfig) -> dict:
    """Block RAM and multipliers the configuration needs on ``spec``'s device."""
    dev = spec.dev
    rows = [{"memory": mem.name, "width": mem.width, "depth": mem.depth, "bytes": mem.bytes,
             "blocks": mem.blocks(spec.family)} for mem in memories(config)]
    bram = sum(r["blocks"] for r in rows)
    per = math.ceil(ACC_BITS / _DSP_WIDTH[spec.family]) * math.ceil(
        MULT_BITS / _DSP_WIDTH[spec.family])
    # the array's int8 multipliers, the requantizer (int32 x uint16) and the bypass add (2x)
    dsp = config.columns + per + 2
    problems = []
    if bram > dev.bram_blocks:
        problems.append(f"block RAM: needs {bram} of {dev.bram_blocks} blocks ("
                        + ", ".join(f"{r['memory']} {r['blocks']}" for r in rows
                                    if r["blocks"]) + ")")
    if dsp > dev.dsp:
        problems.append(f"multipliers: needs {dsp} ({config.columns} columns + 2 requantizer "
                        f"+ 2 bypass add), the device has {dev.dsp}")
    return {"board": spec.name, "device": dev.name, "fits": not problems, "problems": problems,
            "bram_blocks": bram, "bram_available": dev.bram_blocks, "dsp": dsp,
            "dsp_available": dev.dsp, "model_slots": config.model_slots, "memories": rows,
            "spram_available": dev.spram_blocks}


def format_board_fit(report: dict) -> str:
    lines = [f"{'memory':<12} {'width':>6} {'depth':>8} {'bytes':>9} {'blocks':>6}"]
    for r in report["memories"]:
        lines.append(f"{r['memory']:<12} {r['width']:>6} {r['depth']:>8,} {r['bytes']:>9,} "
                     f"{r['blocks']:>6}")
    lines.append(f"block RAM {report['bram_blocks']} of {report['bram_available']}, multipliers "
                 f"{report['dsp']} of {report['dsp_available']}, model slots "
                 f"{report['model_slots']}: {'fits' if report['fits'] else 'DOES NOT FIT'} "
                 f"{report['device']}")
    return "\n".join(lines)


def require_fit(spec: BoardSpec, program, config: AcceleratorConfig) -> dict:
    """Raise, before synthesis, with what overflows and what would fit."""
    report = fit_board(spec, config)
    if report["fits"]:
        return report
    hints = []
    if spec.dev.spram_blocks and any("block RAM" in p for p in report["problems"]):
        hints.append(f"the {spec.dev.spram_blocks} SPRAMs of the {spec.device} are single-port, "
                     f"which the activation memory (read and written every cycle) cannot use yet")
    smaller = [b for b in ("squeezenet_tiny",) if b != program.manifest.get("preset")]
    if smaller:
        hints.append(f"try a smaller preset ({', '.join(smaller)}), fewer bits (compress "
                     f"--bits 2) or a lower density, or a board with a larger device")
    raise FireforgeError(f"{program.path} does not fit {spec.name} ({spec.device}): "
                         + "; ".join(report["problems"]) + (". " + "; ".join(hints)
                                                            if hints else ""))
