"""Device budgets: what each FPGA holds (docs/budgets.md; nextpnr's resource names).

This table is the one place the compiler's fit report and the board builds read capacities from.
Capacities of memories are in bytes of 8-bit data (an ECP5 DP16KD holds 2 KiB at 8 bits, an
iCE40 EBR 512 B, an iCE40 UltraPlus SPRAM 32 KiB).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Device", "DEVICES"]


@dataclass(frozen=True)
class Device:
    name: str
    family: str  #: ice40 | ecp5
    lut: int
    ff: int
    bram_blocks: int
    bram_block_bytes: int
    spram_blocks: int
    spram_block_bytes: int
    dsp: int  #: hardware multipliers (SB_MAC16 / MULT18X18D)

    @property
    def bram_bytes(self) -> int:
        return self.bram_blocks * self.bram_block_bytes

    @property
    def spram_bytes(self) -> int:
        return self.spram_blocks * self.spram_block_bytes

    @property
    def memory_bytes(self) -> int:
        """Every on-chip byte that can hold weights or activations."""
        return self.bram_bytes + self.spram_bytes


DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("iCE40UP5K", "ice40", 5280, 5280, 30, 512, 4, 32768, 8),
    Device("iCE40HX8K", "ice40", 7680, 7680, 32, 512, 0, 0, 0),
    Device("LFE5U-12F", "ecp5", 12288, 12288, 32, 2048, 0, 0, 28),
    Device("LFE5U-25F", "ecp5", 24288, 24288, 56, 2048, 0, 0, 28),
    Device("LFE5U-45F", "ecp5", 43848, 43848, 108, 2048, 0, 0, 72),
    Device("LFE5U-85F", "ecp5", 83640, 83640, 208, 2048, 0, 0, 156),
    Device("LFE5UM5G-85F", "ecp5", 83640, 83640, 208, 2048, 0, 0, 156),
)}
