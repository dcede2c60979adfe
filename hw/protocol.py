"""The host link's protocol, defined once: the gateware (:mod:`.link`) and the driver
(:mod:`fireforge.sw.driver`) both import this module.

Frames
------
Every request and every reply is one SLIP frame (RFC 1055): ``END`` + escaped bytes + ``END``.
Inside, the bytes are ``header, arguments, data, crc32`` where ``crc32`` is CRC-32/ISO-HDLC of
everything before it, little-endian (so the receiver's CRC register ends on the residue).

* request: :data:`RequestHeader` (command, tag), the command's argument layout
  (:data:`ARGUMENTS`), then data (the bytes to write, for the write commands);
* reply: :data:`ReplyHeader` (status, tag and command echoed), then the body: for ``OK``, the
  command's reply (:data:`InfoReply`, :data:`StatusReply`, ...), for an error nothing.

The link answers every non-empty frame: a bad CRC, a bad escape, a frame too long or too short, an
unknown command or an out-of-range argument each get an error status. Requests are answered in
the order they arrive. Where the board has a receive FIFO (INFO's ``rx_fifo_bytes``), bytes that
arrive while the link executes or answers a request wait there: a host may keep up to that many
request bytes unanswered. Without one they are discarded up to the next ``END``, and a host waits
for each reply before it sends the next request. Either way a host that sends ``END`` before every
frame always resynchronizes.

Loading a model
---------------
``LOAD_BEGIN`` opens a load; ``WRITE_WEIGHTS`` writes bytes of the model memories (:class:`Space`)
into the load slot while the gateware computes CRC-32 over the bytes in the order they arrive
(the driver writes the images in the order of :data:`LOAD_ORDER`, each from its first byte);
``LOAD_COMMIT`` names the expected CRC, the number of layers and classes, and carries the
:data:`ModelInfo` (model hash, logit scale). Only when the
CRC matches does the gateware switch to the new slot; otherwise the old model keeps running.
With one model slot (``AcceleratorConfig.model_slots == 1``) a load overwrites the running model,
which stays unusable (``NO_MODEL``) until a commit succeeds.
"""

from __future__ import annotations

import struct

import numpy as np
from amaranth.hdl import unsigned
from amaranth.lib import crc, data, enum

from .errors import FireforgeError

__all__ = [
    "PROTOCOL_VERSION",
    "Cmd",
    "Status",
    "Space",
    "StateFlags",
    "RequestHeader",
    "ReplyHeader",
    "ARGUMENTS",
    "MemoryArgs",
    "WeightArgs",
    "PixelArgs",
    "RunArgs",
    "ResultArgs",
    "CommitArgs",
    "ModelInfo",
    "InputPlacement",
    "InfoReply",
    "Features",
    "StatusReply",
    "ResultHeader",
    "CountersHeader",
    "LOAD_ORDER",
    "MAX_DATA",
    "FRAME_ERROR_TAG",
    "MAX_FRAME",
    "BOARD_ID_BYTES",
    "SLIP_END",
    "SLIP_ESC",
    "SLIP_ESC_END",
    "SLIP_ESC_ESC",
    "CRC",
    "CRC_BYTES",
    "Transport",
    "crc32",
    "model_info_bytes",
    "parse_model_info",
    "conv_windows",
    "place_image",
    "slip_encode",
    "layout_bytes",
    "layout_from_bytes",
]

PROTOCOL_VERSION = 7

SLIP_END = 0xC0
SLIP_ESC = 0xDB
SLIP_ESC_END = 0xDC
SLIP_ESC_ESC = 0xDD

#: the frame check: CRC-32/ISO-HDLC (the Ethernet/zlib CRC)
CRC = crc.catalog.CRC32_ISO_HDLC(data_width=8)
CRC_BYTES = 4

#: the most data bytes one WRITE_IMAGE / WRITE_WEIGHTS / READ_TENSOR carries
MAX_DATA = 256
BOARD_ID_BYTES = 16


class Cmd(enum.Enum, shape=8):
    """Request commands."""

    #: the board: protocol version, configuration, memory sizes, loaded model (:data:`InfoReply`)
    INFO = 0x01
    #: write bytes of activation memory (the input image) while idle (:data:`MemoryArgs` + data)
    WRITE_IMAGE = 0x02
    #: start the program, or resume after a pause (:data:`RunArgs`)
    RUN = 0x03
    #: busy/paused/done, current layer, cycles (:data:`StatusReply`)
    STATUS = 0x04
    #: per-class int32 sums and the logit scale (:data:`ResultHeader` + int32 each)
    READ_RESULT = 0x05
    #: cycles of each layer of the last run (:data:`CountersHeader` + uint32 each)
    READ_COUNTERS = 0x06
    #: read bytes of activation memory while idle or paused (:data:`MemoryArgs`)
    READ_TENSOR = 0x07
    #: open a model load (no arguments)
    LOAD_BEGIN = 0x08
    #: write bytes of a model memory into the load slot (:data:`WeightArgs` + data)
    WRITE_WEIGHTS = 0x09
    #: check the load's CRC and switch to the new model (:data:`CommitArgs` + ModelInfo)
    LOAD_COMMIT = 0x0A
    #: write bytes of the raw image into the image stage, also while running; the next RUN
    #: places them as the loaded model's :data:`InputPlacement` says (:data:`PixelArgs` +
    #: data; boards with ``stage_bytes``)
    WRITE_PIXELS = 0x0B


class Status(enum.Enum, shape=8):
    """Reply status: ``OK`` or why the request was refused."""

    OK = 0x00
    BAD_CRC = 0x01
    #: a SLIP escape not followed by ESC_END/ESC_ESC, or a frame shorter than header + CRC
    BAD_FRAME = 0x02
    TOO_LONG = 0x03
    UNKNOWN_COMMAND = 0x04
    #: an address, length or space out of range, a data length that disagrees with ``length``,
    #: or (RUN) a staged image shorter or longer than the model's input
    BAD_ARGUMENT = 0x05
    #: the accelerator is running (or, for WRITE_IMAGE, paused): try again when it is idle
    BUSY = 0x06
    #: no usable model: a load is open on a one-slot board, or a commit failed there
    NO_MODEL = 0x07
    #: LOAD_COMMIT: the CRC over the written bytes differs; nothing changed (two slots)
    LOAD_FAILED = 0x08
    #: WRITE_WEIGHTS / LOAD_COMMIT without LOAD_BEGIN
    NOT_LOADING = 0x09


#: what each status means (the reference tables and the driver's errors say it)
STATUS_MEANING = {
    Status.OK: "done; the command's reply body follows",
    Status.BAD_CRC: "the frame's CRC-32 does not match its bytes",
    Status.BAD_FRAME: "a SLIP escape not followed by ESC_END/ESC_ESC, or a frame shorter than "
                      "its header, arguments and CRC",
    Status.TOO_LONG: "more bytes than the longest request (MAX_FRAME) before END",
    Status.UNKNOWN_COMMAND: "no such command (the board's gateware is older than the host)",
    Status.BAD_ARGUMENT: "an address, length, space, layer or class count out of range, a "
                         "data length that disagrees with the arguments, or (RUN) a staged "
                         "image shorter or longer than the model's input",
    Status.BUSY: "the accelerator is running (WRITE_IMAGE: running or paused); ask again when "
                 "STATUS says it is idle (READ_RESULT with wait: the reply waits instead)",
    Status.NO_MODEL: "no usable model: none loaded yet, a load is open on a one-slot board, or "
                     "a commit failed there",
    Status.LOAD_FAILED: "LOAD_COMMIT: the CRC over the written bytes differs; the load is "
                        "closed, and on a two-slot board the old model still runs",
    Status.NOT_LOADING: "WRITE_WEIGHTS or LOAD_COMMIT without an open load (LOAD_BEGIN)",
}


class Space(enum.Enum, shape=8):
    """The model memories WRITE_WEIGHTS writes (the images of a compiled Program)."""

    PROGRAM = 0
    WEIGHTS = 1
    CODEBOOKS = 2
    PARAMS = 3
    #: the masks of sparse layers (boards with ``sparse_weights``)
    MASKS = 4


#: the order a load writes the spaces in, and the program image each comes from (a board
#: without a mask memory takes only programs whose mask image is empty)
LOAD_ORDER = ((Space.PROGRAM, "program.bin"), (Space.WEIGHTS, "weights.bin"),
              (Space.CODEBOOKS, "codebooks.bin"), (Space.PARAMS, "params.bin"),
              (Space.MASKS, "masks.bin"))

StateFlags = data.StructLayout({
    "busy": 1,
    "paused": 1,
    "done": 1,
    "model_valid": 1,
    "loading": 1,
    "reserved": 3,
})

RequestHeader = data.StructLayout({"cmd": Cmd, "tag": 8})
ReplyHeader = data.StructLayout({"status": Status, "tag": 8, "cmd": Cmd})

MemoryArgs = data.StructLayout({"addr": 32, "length": 16})
#: a model memory is written by words of its own width (a descriptor, a weight word, ...):
#: ``lane`` is the first byte within word ``word``; the bytes go on across words
WeightArgs = data.StructLayout({"space": Space, "word": 32, "lane": 16, "length": 16})
RunArgs = data.StructLayout({"step": 1, "reserved": 7})
#: ``wait``: while the accelerator runs, the reply waits for the run to end instead of being
#: BUSY: a host with requests in flight sends READ_RESULT and the next RUN back to back, and
#: the RUN then always finds the result read
ResultArgs = data.StructLayout({"wait": 1, "reserved": 7})
#: bytes of the raw image (``height x width x channels``, row after row, channel innermost)
#: from byte ``offset`` of the image stage; the staged image ends where the last one ends
PixelArgs = data.StructLayout({"offset": 32, "length": 16})

#: where and how a host writes an image into activation memory (:func:`place_image`): part of
#: the loaded model's :data:`ModelInfo`, so INFO alone tells a host how to send an image
InputPlacement = data.StructLayout({
    #: activation-memory byte address of the first pixel (WRITE_IMAGE's ``addr``)
    "addr": 32,
    #: the image's channels, height and width (the host resizes to these); uint8 pixels
    "channels": 16,
    "height": 16,
    "width": 16,
    #: bytes per written pixel: its values, then zeros up to this many
    "pixel_bytes": 16,
    #: 0: each pixel's channels as they are; k: each output pixel of the stem gets its k x k
    #: window of the image (``(ky, kx, c)`` order) as its values
    "window": 8,
    "window_stride": 8,
    #: pixels of padding around the image for the windows, and the byte they hold
    "window_pad": 8,
    "pad_value": 8,
})

#: identity of the loaded model: what INFO and READ_RESULT report
ModelInfo = data.StructLayout({
    #: SHA-256 of the model's memory images, the digest's first byte in the lowest 8 bits
    "model_hash": unsigned(256),
    #: float32 bits: logits = sums * scale
    "logit_scale": 32,
    "input": InputPlacement,
})

#: LOAD_COMMIT's arguments; its data is the new model's :data:`ModelInfo`
CommitArgs = data.StructLayout({
    "crc": 32,
    "n_layers": 16,
    "num_classes": 16,
})

#: the argument layout of each command (commands not listed take none)
ARGUMENTS = {
    Cmd.WRITE_IMAGE: MemoryArgs,
    Cmd.READ_TENSOR: MemoryArgs,
    Cmd.RUN: RunArgs,
    Cmd.READ_RESULT: ResultArgs,
    Cmd.WRITE_WEIGHTS: WeightArgs,
    Cmd.LOAD_COMMIT: CommitArgs,
    Cmd.WRITE_PIXELS: PixelArgs,
}

#: what a request carries after its arguments, for the commands that carry data
REQUEST_DATA = {
    Cmd.WRITE_IMAGE: "`length` bytes, written from `addr`",
    Cmd.WRITE_WEIGHTS: "`length` bytes, written from byte `lane` of word `word`",
    Cmd.LOAD_COMMIT: "the new model's `ModelInfo`",
    Cmd.WRITE_PIXELS: "`length` bytes of the raw image, at byte `offset` of the stage",
}

#: what an OK reply carries, by command: its layout and what follows it (commands not
#: listed reply with the header alone)
REPLY_BODY = {
    Cmd.INFO: ("InfoReply", ""),
    Cmd.STATUS: ("StatusReply", ""),
    Cmd.READ_RESULT: ("ResultHeader", "`num_classes` int32 sums"),
    Cmd.READ_COUNTERS: ("CountersHeader", "`n_layers` uint32 cycle counts"),
    Cmd.READ_TENSOR: (None, "`length` bytes from `addr`"),
}

#: how the board's accelerator was built, beyond its memory sizes
Features = data.StructLayout({
    #: the bypass-add unit (programs with ADD operations need it)
    "bypass_add": 1,
    #: activations in two single-port banks (programs must be compiled for them)
    "spram_acts": 1,
    #: weights in SPRAM: empty at power-up, loaded over the link
    "spram_weights": 1,
    #: the sparse weight decoder and its mask memory (``mask_entries`` steps)
    "sparse_weights": 1,
    "reserved": 4,
})

InfoReply = data.StructLayout({
    "version": 8,
    "state": StateFlags,
    "board": unsigned(8 * BOARD_ID_BYTES),
    "columns": 16,
    "rows": 8,
    "requant_lanes": 8,
    "model_slots": 8,
    "codebook_bits": 8,
    "features": Features,
    "act_bytes": 32,
    "weight_bytes": 32,
    "codebook_entries": 32,
    "param_entries": 32,
    "program_entries": 32,
    "result_entries": 32,
    "stage_bytes": 32,
    "mask_entries": 32,
    "rx_fifo_bytes": 32,
    "n_layers": 16,
    "num_classes": 16,
    "info": ModelInfo,
})

StatusReply = data.StructLayout({
    "state": StateFlags,
    "layer": 16,
    "total_cycles": 32,
})

ResultHeader = data.StructLayout({"num_classes": 16, "info": ModelInfo})
CountersHeader = data.StructLayout({"n_layers": 16, "total_cycles": 32})

for _layout in (RequestHeader, ReplyHeader, *ARGUMENTS.values(), InfoReply, StatusReply,
                ResultHeader, CountersHeader, StateFlags, Features, InputPlacement, ModelInfo):
    assert _layout.size % 8 == 0, _layout

#: a reply's tag and command are 0 when the frame itself was bad (CRC, escape, length)
FRAME_ERROR_TAG = 0

#: the longest request: header, the largest arguments, MAX_DATA bytes, CRC
MAX_FRAME = (RequestHeader.size + max(a.size for a in ARGUMENTS.values())) // 8 + MAX_DATA \
    + CRC_BYTES


class Transport:
    """Bytes to and from a board: what a host speaks the protocol over (a serial port, the
    simulated board's socket, the gateware in a simulator). ``read`` returns what arrived
    within ``timeout`` seconds (maybe nothing); ``b''`` with ``closed`` set means the other
    side is gone."""

    closed = False

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, size: int, timeout: float) -> bytes:
        raise NotImplementedError

    def reset_input(self) -> None:
        pass

    def close(self) -> None:
        pass


def model_info_bytes(model_hash: str, logit_scale: float, placement: dict) -> bytes:
    """:data:`ModelInfo` of a program: its SHA-256 model hash (hex), its logit scale and its
    :data:`InputPlacement` (a dict of its fields)."""
    return layout_bytes(ModelInfo, model_hash=int.from_bytes(bytes.fromhex(model_hash), "little"),
                        logit_scale=struct.unpack("<I", struct.pack("<f", logit_scale))[0],
                        input=placement)


def parse_model_info(info) -> tuple[str, float, dict]:
    """The model hash (hex), logit scale and input placement (a dict) of a :data:`ModelInfo`
    view or constant."""
    model_hash = int(info.model_hash).to_bytes(ModelInfo["model_hash"].shape.width // 8, "little")
    scale = struct.unpack("<f", struct.pack("<I", int(info.logit_scale)))[0]
    placement = {name: int(getattr(info.input, name)) for name, _ in InputPlacement}
    return model_hash.hex(), scale, placement


def conv_windows(x: np.ndarray, kernel: int, stride: int, pad: int, pad_value: int,
                 out_h: int, out_w: int) -> np.ndarray:
    """The convolution windows of ``x`` (``(..., H, W, C)``, padded by ``pad`` pixels of
    ``pad_value``): ``(..., out_h, out_w, kernel * kernel * C)`` in ``(ky, kx, ci)`` order, the
    order of the weight stream. The golden model's convolution and a windowed input placement
    (:func:`place_image`) both gather with this."""
    lead = [(0, 0)] * (x.ndim - 3)
    if pad:
        x = np.pad(x, lead + [(pad, pad), (pad, pad), (0, 0)], constant_values=pad_value)
    rows, cols = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    return np.concatenate([x[..., ky:ky + rows:stride, kx:kx + cols:stride, :]
                           for ky in range(kernel) for kx in range(kernel)], axis=-1)


def place_image(placement: dict, image: np.ndarray) -> tuple[int, bytes]:
    """WRITE_IMAGE's address and bytes for one uint8 image ``(C, H, W)``, as ``placement`` (an
    :data:`InputPlacement` as a dict) says: pixel after pixel, row after row (each pixel's
    window first, where ``window`` is set), each pixel's values padded with zeros to
    ``pixel_bytes``."""
    c, h, w = placement["channels"], placement["height"], placement["width"]
    if image.shape != (c, h, w):
        raise FireforgeError(f"an image of shape {tuple(image.shape)}: this model takes "
                             f"{c}x{h}x{w} (channels x height x width)")
    if image.dtype != np.uint8:
        raise FireforgeError(f"images must be uint8 pixels, not {image.dtype}")
    hwc = image.transpose(1, 2, 0)
    k = placement["window"]
    if k:
        s, p = placement["window_stride"], placement["window_pad"]
        hwc = conv_windows(hwc, k, s, p, placement["pad_value"], (h + 2 * p - k) // s + 1,
                           (w + 2 * p - k) // s + 1)
    if hwc.shape[2] > placement["pixel_bytes"]:
        raise FireforgeError(f"{hwc.shape[2]} values per pixel do not fit the placement's "
                             f"{placement['pixel_bytes']} bytes")
    out = np.zeros(hwc.shape[:2] + (placement["pixel_bytes"],), np.uint8)
    out[:, :, :hwc.shape[2]] = hwc
    return placement["addr"], out.tobytes()


def crc32(payload: bytes) -> int:
    return CRC.compute(payload)


def slip_encode(payload: bytes) -> bytes:
    """One frame: ``END``, the payload with ``CRC`` appended, escaped, ``END``."""
    body = payload + struct.pack("<I", crc32(payload))
    out = bytearray([SLIP_END])
    for b in body:
        if b == SLIP_END:
            out += bytes([SLIP_ESC, SLIP_ESC_END])
        elif b == SLIP_ESC:
            out += bytes([SLIP_ESC, SLIP_ESC_ESC])
        else:
            out.append(b)
    out.append(SLIP_END)
    return bytes(out)


def layout_bytes(layout: data.StructLayout, **fields) -> bytes:
    """Pack a layout's fields (little-endian, as the gateware reads them)."""
    return layout.const(fields).as_value().value.to_bytes(layout.size // 8, "little")


def layout_from_bytes(layout: data.StructLayout, raw: bytes) -> data.Const:
    if len(raw) < layout.size // 8:
        raise ValueError(f"{len(raw)} bytes, the layout needs {layout.size // 8}")
    return data.Const(layout, int.from_bytes(raw[:layout.size // 8], "little"))


#: the layouts a host packs or parses, in the order the reference lists them
LAYOUTS = {
    "RequestHeader": RequestHeader, "ReplyHeader": ReplyHeader, "MemoryArgs": MemoryArgs,
    "WeightArgs": WeightArgs, "PixelArgs": PixelArgs, "RunArgs": RunArgs, "CommitArgs": CommitArgs,
    "ModelInfo": ModelInfo, "InputPlacement": InputPlacement, "InfoReply": InfoReply,
    "StatusReply": StatusReply, "ResultHeader": ResultHeader,
    "CountersHeader": CountersHeader, "StateFlags": StateFlags, "Features": Features,
}


def _layout_name(layout) -> str | None:
    """The name :data:`LAYOUTS` gives ``layout`` (None for a shape that is not one of them)."""
    return next((name for name, known in LAYOUTS.items() if known is layout), None)


def _fields(layout: data.StructLayout):
    """(name, bit offset, bit width, type name) of every field, nested layouts by name."""
    for name, field in layout:
        shape = field.shape
        kind = (_layout_name(shape) or getattr(shape, "__name__", None)
                or ("float32" if name == "logit_scale" else f"u{field.width}"))
        yield name, field.offset, field.width, kind


def reference_tables() -> str:
    """The protocol's numbers as Markdown: constants, commands, statuses, spaces and every
    layout's bytes. ``docs/protocol.md`` holds this text (a test compares them);
    ``python -m fireforge.hw.protocol`` prints it."""
    out = ["| constant | value |", "|---|---|"]
    for name, value in (("PROTOCOL_VERSION", PROTOCOL_VERSION), ("SLIP_END", SLIP_END),
                        ("SLIP_ESC", SLIP_ESC), ("SLIP_ESC_END", SLIP_ESC_END),
                        ("SLIP_ESC_ESC", SLIP_ESC_ESC), ("MAX_DATA", MAX_DATA),
                        ("MAX_FRAME", MAX_FRAME), ("FRAME_ERROR_TAG", FRAME_ERROR_TAG),
                        ("BOARD_ID_BYTES", BOARD_ID_BYTES), ("CRC_BYTES", CRC_BYTES)):
        out.append(f"| `{name}` | {value:#04x} |" if name.startswith("SLIP") else
                   f"| `{name}` | {value} |")
    out += ["", "| command | code | arguments | request data | OK reply body |",
            "|---|---|---|---|---|"]
    for cmd in Cmd:
        args = f"`{_layout_name(ARGUMENTS[cmd])}`" if cmd in ARGUMENTS else "none"
        layout, rest = REPLY_BODY.get(cmd, (None, ""))
        body = " + ".join(part for part in (f"`{layout}`" if layout else "", rest) if part)
        out.append(f"| `{cmd.name}` | {cmd.value:#04x} | {args} | "
                   f"{REQUEST_DATA.get(cmd, 'none')} | {body or 'none'} |")
    out += ["", "| status | code | meaning |", "|---|---|---|"]
    out += [f"| `{st.name}` | {st.value:#04x} | {STATUS_MEANING[st]} |" for st in Status]
    out += ["", "| space | code | program image |", "|---|---|---|"]
    out += [f"| `{sp.name}` | {sp.value} | `{image}` |" for sp, image in LOAD_ORDER]
    for name, layout in LAYOUTS.items():
        out += ["", f"`{name}`: {layout.size // 8} byte{'s' if layout.size > 8 else ''}", "",
                "| byte | bits | field | type |", "|---|---|---|---|"]
        for field, offset, width, kind in _fields(layout):
            first, last = offset // 8, (offset + width - 1) // 8
            if offset % 8 == 0 and width % 8 == 0:
                where, bits = (f"{first}" if first == last else f"{first}-{last}"), "all"
            else:
                where = f"{first}"
                lo = offset % 8
                bits = f"{lo}" if width == 1 else f"{lo}-{lo + width - 1}"
            out.append(f"| {where} | {bits} | `{field}` | {kind} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(reference_tables(), end="")
