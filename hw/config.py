"""The one frozen configuration of the accelerator, and its named variants.

Board variants are made with :func:`dataclasses.replace`; ``__post_init__`` rejects anything the
generator cannot build, saying what was given and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import FireforgeError
from .isa import (
    CHANNEL_PARAMS_BYTES,
    CODEBOOK_ENTRIES,
    DESCRIPTOR_WORDS,
    PROGRAM_WORD_BYTES,
    SPARSE_VALUE_BITS,
    WEIGHT_BITS,
    mask_word_bytes,
    sparse_chunks,
)
from .protocol import Space
from .spram import SPRAM_BYTES, SPRAM_DEPTH, SPRAM_WIDTH

__all__ = ["AcceleratorConfig", "CONFIGS", "DEFAULT_CONFIG", "RX_FIFO_BYTES", "config_by_name"]

#: the receive FIFO of the link on block RAM devices: one ECP5 DP16KD (2048 x 9), more than
#: an image's WRITE_PIXELS requests and the requests that read its result and start the next
RX_FIFO_BYTES = 2048


@dataclass(frozen=True)
class AcceleratorConfig:
    """Generator parameters.

    Parameters
    ----------
    columns
        Output channels computed in parallel (the array's columns); also the number of output
        channels per weight word, so programs must be compiled with ``group == columns``.
    rows
        Input-channel lanes (the array's rows): each step multiplies ``rows`` consecutive input
        channels by ``rows x columns`` weights; MACs = ``rows * columns``. With more than one
        lane the activation memory is ``rows`` bytes wide (block RAM only), and programs must
        be compiled with ``lanes == rows`` (channel strides, channel offsets and parameter
        addresses then are multiples of ``rows``).
    requant_lanes
        Output channels requantized (and written, as one activation word) per cycle: a
        divisor of ``rows`` and of ``columns``. More lanes keep pace with groups of few steps
        (1x1 layers of few input channels), at one int32 x uint16 multiplier each.
    codebook_bits
        Widest codebook the decoder holds in registers (``2**codebook_bits`` int8 entries). Layers
        with 8-bit indices must use the identity codebook (uncompressed int8 weights). 0: no
        decoder at all, uncompressed int8 weights only (saves its registers and multiplexers
        where logic is scarcer than weight memory, as on the iCE40 UltraPlus).
    act_bytes, weight_bytes, param_entries, codebook_entries, program_entries
        Depths of the on-chip memories.
    multiplier
        ``"dsp"`` (hardware multipliers) or ``"lut"`` (logic).
    act_memory
        ``"bram"``: one dual-port block RAM of ``act_bytes``. ``"spram"``: two single-port banks
        (one iCE40 UltraPlus SPRAM each, ``act_bytes`` = 2 x 32 KiB); the compiler places every
        layer's inputs and its output in different banks, so each bank serves one access a cycle.
    weight_memory
        ``"bram"`` (initialised by the bitstream) or ``"spram"``: single-port SPRAMs side by side
        (``columns * 8 / 16`` of them), empty at power-up, so the host loads the model over the
        link (``fireforge load``); written only while the engine is idle.
    bypass_add
        Build the bypass-add unit; programs with ADD operations (bypass variants) need it.
    fifo_depth
        Finished output groups buffered between the array and requantization.
    fifo_memory
        Where that buffer lives: ``"logic"`` (registers or LUT RAM, the head read
        combinationally) or ``"bram"`` (block RAM, :class:`~.fifo.BlockFIFO`: a group takes one
        more cycle to reach requantization, and the logic it saves is a few hundred cells where
        logic is scarce, as on the iCE40 UltraPlus). A power-of-two ``fifo_depth``.
    memory_registers
        Register the memory read addresses and read data, and the weight indices before the
        codebook lookup (three more convolution stages, one more for the other units): short
        paths to block RAMs spread over a large device, for the ECP5's 100 MHz.
    model_slots
        Copies of the model memories: 2 lets the host load a new model beside the running one
        and switch only when its CRC checks out; 1 halves the memory, and a load replaces the
        running model in place.
    stage_bytes
        The link's image stage: block RAM for one raw image (``WRITE_PIXELS``), written while
        the engine runs, so the next image crosses the link during the current inference.
        ``RUN`` places the staged image into activation memory before it starts: a copy with
        one input lane, the pixel placer (:mod:`.placer`: windows, padding) with more. 0: no
        stage; the host writes the placed image with ``WRITE_IMAGE`` between runs.
    sparse_weights
        Decode sparse layers (:attr:`~.isa.WeightEncoding.SPARSE`: a mask per step, the nonzero
        indices alone) at one step a cycle, from a mask memory of ``mask_entries`` steps beside
        the weight memory: the weight read moves behind the mask read, a few stages more per
        layer. Needs block RAM weights, a codebook decoder and whole chunks of
        :data:`~.isa.SPARSE_CHUNK` MACs.
    mask_entries
        Steps the mask memory holds (one mask word of ``rows * columns`` bits each).
    rx_fifo_bytes
        The link's receive FIFO (block RAM, a power of two; 0: none): bytes that arrive while
        the link executes or answers a request wait there instead of being dropped, so a host
        keeps that many request bytes in flight (INFO reports it) and the link is busy both
        ways at once.
    """

    columns: int = 8
    rows: int = 1
    requant_lanes: int = 1
    codebook_bits: int = 4
    act_bytes: int = 32 * 1024
    weight_bytes: int = 64 * 1024
    param_entries: int = 1024
    codebook_entries: int = 1024
    program_entries: int = 64
    result_entries: int = 16
    multiplier: str = "dsp"
    act_memory: str = "bram"
    weight_memory: str = "bram"
    bypass_add: bool = True
    fifo_depth: int = 4
    fifo_memory: str = "logic"
    memory_registers: bool = False
    model_slots: int = 2
    stage_bytes: int = 0
    sparse_weights: bool = False
    mask_entries: int = 1
    rx_fifo_bytes: int = 0

    def __post_init__(self):
        def positive(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FireforgeError(f"AcceleratorConfig.{name} must be a positive int, not "
                                     f"{value!r}")

        for f in dataclasses.fields(self):
            if f.type == "int" and f.name not in ("codebook_bits", "stage_bytes",
                                                   "rx_fifo_bytes"):
                positive(f.name)
        for name in ("bypass_add", "memory_registers", "sparse_weights"):
            if not isinstance(getattr(self, name), bool):
                raise FireforgeError(f"{name} must be True or False, not "
                                     f"{getattr(self, name)!r}")
        if self.columns > 256 or self.columns & (self.columns - 1):
            raise FireforgeError(f"columns={self.columns}: a power of two up to 256")
        if self.rows > 16 or self.rows & (self.rows - 1):
            raise FireforgeError(f"rows={self.rows}: a power of two up to 16")
        if self.rows > 1 and self.act_memory != "bram":
            raise FireforgeError(f"rows={self.rows}: input lanes read a {self.rows}-byte "
                                 f"activation word, which needs block RAM activations "
                                 f"(act_memory='bram'), or rows=1")
        if self.rows % self.requant_lanes or self.columns % self.requant_lanes:
            raise FireforgeError(f"requant_lanes={self.requant_lanes}: a divisor of rows "
                                 f"({self.rows}) and of columns ({self.columns})")
        if self.act_bytes % self.rows or self.param_entries % self.requant_lanes:
            raise FireforgeError(f"act_bytes ({self.act_bytes}) must be a multiple of rows and "
                                 f"param_entries ({self.param_entries}) of requant_lanes")
        if not (isinstance(self.codebook_bits, int) and 0 <= self.codebook_bits <= WEIGHT_BITS):
            raise FireforgeError(f"codebook_bits={self.codebook_bits!r}: allowed 0 (no decoder) "
                                 f"..{WEIGHT_BITS}")
        if self.multiplier not in ("dsp", "lut"):
            raise FireforgeError(f"multiplier={self.multiplier!r}: 'dsp' or 'lut'")
        if self.weight_memory not in ("bram", "spram"):
            raise FireforgeError(f"weight_memory={self.weight_memory!r}: 'bram' or 'spram'")
        if self.act_memory not in ("bram", "spram"):
            raise FireforgeError(f"act_memory={self.act_memory!r}: 'bram' or 'spram'")
        if self.act_memory == "spram" and self.act_bytes != 2 * SPRAM_BYTES:
            raise FireforgeError(f"act_bytes={self.act_bytes}: SPRAM activations are two banks "
                                 f"of one SPRAM each ({2 * SPRAM_BYTES} bytes)")
        if self.weight_memory == "spram":
            words = self.weight_bytes // self.word_bytes * self.model_slots
            if self.word_bytes * 8 % SPRAM_WIDTH or words > SPRAM_DEPTH:
                raise FireforgeError(
                    f"weight_bytes={self.weight_bytes} x {self.model_slots} slot(s) in SPRAM: "
                    f"the weight word ({self.word_bytes * 8} bits) must be a multiple of "
                    f"{SPRAM_WIDTH} bits and at most {SPRAM_DEPTH} words deep")
        if self.weight_bytes % self.word_bytes:
            raise FireforgeError(f"weight_bytes={self.weight_bytes} must be a multiple of the "
                                 f"weight word ({self.word_bytes} bytes)")
        if self.fifo_depth < 2:
            raise FireforgeError("fifo_depth must be at least 2 (one group in the array, one "
                                 "being requantized)")
        if self.fifo_memory not in ("logic", "bram"):
            raise FireforgeError(f"fifo_memory={self.fifo_memory!r}: 'logic' or 'bram'")
        if self.fifo_memory == "bram" and self.fifo_depth & (self.fifo_depth - 1):
            raise FireforgeError(f"fifo_depth={self.fifo_depth}: a block RAM FIFO's depth is a "
                                 f"power of two")
        if not isinstance(self.stage_bytes, int) or self.stage_bytes < 0:
            raise FireforgeError(f"stage_bytes={self.stage_bytes!r}: 0 (no image stage) or "
                                 f"the bytes of the largest raw image it holds")
        if (not isinstance(self.rx_fifo_bytes, int) or self.rx_fifo_bytes < 0
                or self.rx_fifo_bytes & (self.rx_fifo_bytes - 1)):
            raise FireforgeError(f"rx_fifo_bytes={self.rx_fifo_bytes!r}: 0 (no receive FIFO) "
                                 f"or a power of two")
        if self.sparse_weights:
            try:
                sparse_chunks(self.rows, self.columns)
            except ValueError as e:
                raise FireforgeError(f"sparse_weights: {e}") from None
            if self.weight_memory != "bram" or not self.codebook_bits:
                raise FireforgeError(
                    f"sparse_weights: needs block RAM weights (weight_memory='bram') and a "
                    f"codebook decoder (codebook_bits >= 1; sparse indices have at most "
                    f"{SPARSE_VALUE_BITS} bits), not {self.weight_memory!r} and "
                    f"{self.codebook_bits}")
        if self.model_slots not in (1, 2):
            raise FireforgeError(f"model_slots={self.model_slots}: 1 or 2")
        assert CODEBOOK_ENTRIES == 1 << WEIGHT_BITS

    @property
    def macs(self) -> int:
        return self.rows * self.columns

    @property
    def act_banks(self) -> int:
        """Activation banks: 1 (dual-port) or 2 (single-port; inputs and outputs apart)."""
        return 2 if self.act_memory == "spram" else 1

    @property
    def bank_bytes(self) -> int:
        return self.act_bytes // self.act_banks

    @property
    def weights_preloaded(self) -> bool:
        """Whether the bitstream holds the model (SPRAM weights are loaded at run time)."""
        return self.weight_memory == "bram"

    @property
    def pixel_placer(self) -> bool:
        """Whether ``RUN`` places a staged image through the pixel placer: with input lanes a
        model's input is unfolded or padded to lane words, many times the image's own bytes;
        with one lane it is the image as it is, and a copy places it."""
        return self.stage_bytes > 0 and self.rows > 1

    @property
    def word_bytes(self) -> int:
        """Bytes per weight-memory word: one 8-bit index per MAC (narrower indices pack)."""
        return self.rows * self.columns

    def model_spaces(self) -> dict[Space, tuple[int, int]]:
        """Words and bytes per word of each model memory (one slot): what the gateware builds,
        WRITE_WEIGHTS addresses and the fit check counts."""
        spaces = {Space.PROGRAM: (self.program_entries * DESCRIPTOR_WORDS, PROGRAM_WORD_BYTES),
                  Space.WEIGHTS: (self.weight_bytes // self.word_bytes, self.word_bytes),
                  Space.CODEBOOKS: (self.codebook_entries, WEIGHT_BITS // 8),
                  Space.PARAMS: (self.param_entries // self.requant_lanes,
                                 CHANNEL_PARAMS_BYTES * self.requant_lanes)}
        if self.sparse_weights:
            spaces[Space.MASKS] = (self.mask_entries, mask_word_bytes(self.rows, self.columns))
        return spaces

    def replace(self, **changes) -> AcceleratorConfig:
        return dataclasses.replace(self, **changes)


CONFIGS: dict[str, AcceleratorConfig] = {
    # Block RAM everywhere, 8 columns: the tiny preset in simulation and on small ECP5 parts.
    "small": AcceleratorConfig(columns=8, act_bytes=32 * 1024, weight_bytes=64 * 1024,
                               stage_bytes=4096, rx_fifo_bytes=RX_FIFO_BYTES),
    # iCE40 UltraPlus (5,280 LUTs, 30 EBR, 4 SPRAM, 8 SB_MAC16): 4 columns, activations in two
    # SPRAM banks, uncompressed int8 weights in two SPRAMs (loaded over the link; no codebook
    # decoder: logic, not memory, is what the UP5K runs out of), one slot, no bypass add, the
    # group FIFO in block RAM, and no receive FIFO (requests in turn).
    "up5k": AcceleratorConfig(columns=4, act_bytes=2 * SPRAM_BYTES, weight_bytes=64 * 1024,
                              codebook_bits=0,
                              act_memory="spram", weight_memory="spram", bypass_add=False,
                              fifo_depth=2, fifo_memory="bram", model_slots=1,
                              param_entries=512,
                              codebook_entries=512, program_entries=32, stage_bytes=1024),
    # ECP5: 64 MULT18X18D MACs for the CIFAR presets, 8 input lanes x 8 columns (activation
    # words of 8 bytes), 8 requantization lanes, the group FIFO 16 deep in block RAM (groups
    # of one step keep the array busy).
    "ecp5": AcceleratorConfig(columns=8, rows=8, requant_lanes=8, act_bytes=128 * 1024,
                              weight_bytes=256 * 1024, param_entries=4096,
                              codebook_entries=2048, program_entries=128, fifo_depth=16,
                              fifo_memory="bram", memory_registers=True, stage_bytes=4096,
                              sparse_weights=True, mask_entries=16384,
                              rx_fifo_bytes=RX_FIFO_BYTES),
}
# ECP5-85F: 128 MACs, 8 input lanes x 16 columns (128 of the 85F's 156 MULT18X18Ds, 16 for
# the 8 requantizers, 2 for the bypass add); the weight word is 128 bytes. No board's default:
# it fits the 85F but nextpnr does not route it yet (docs/architecture.md).
CONFIGS["ecp5-128"] = CONFIGS["ecp5"].replace(columns=16)


#: what the commands and the demo use unless told otherwise
DEFAULT_CONFIG = "small"


def config_by_name(name: str) -> AcceleratorConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise FireforgeError(f"unknown accelerator configuration {name!r}; known: "
                             f"{', '.join(CONFIGS)}") from None
