"""The compiled Program on disk: descriptors, memory images and the manifest that binds them.

It is the contract between the compiler (which writes it), the golden model, the gateware (whose
memories it initialises) and the host driver (which loads it onto a board), so it lives beside
the ISA that defines what its images hold.

A program directory holds::

    program.bin     one packed hw.isa.Descriptor per operation
    weights.bin     codebook indices, per layer, in the array's consumption order
    codebooks.bin   int8 codebook entries, per layer
    params.bin      hw.isa.ChannelParams per output channel (bias, multiplier)
    masks.bin       the nonzero masks of sparse layers, a step per mask word (empty when none)
    manifest.json   format, model hash, sizes and SHA-256 of every file, tensor placement,
                    scales, per-layer facts, input preprocessing, fit report
    float/          the float checkpoint the program was compiled from

:func:`load_program` checks all of it before anything runs: an edited, truncated or foreign
file is refused with the name of the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FireforgeError
from .isa import DESCRIPTOR_BYTES, unpack_descriptor
from .protocol import model_info_bytes, place_image

__all__ = ["Program", "Manifest", "InputSpec", "load_program", "IMAGE_FILES", "PARAMETER_FILES",
           "FORMAT",
           "VERSION", "model_hash", "sha256"]

FORMAT = "fireforge-program"
VERSION = 2
#: the memory images, in the order the model hash covers them
IMAGE_FILES = ("program.bin", "weights.bin", "codebooks.bin", "params.bin", "masks.bin")
#: the images that hold the trained parameters (a model's size, beside its program)
PARAMETER_FILES = ("weights.bin", "masks.bin", "codebooks.bin", "params.bin")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_hash(images: dict[str, bytes]) -> str:
    """The identity of a compiled model: SHA-256 over the images, each prefixed by its name and
    length (so moving bytes between files changes it)."""
    h = hashlib.sha256()
    for name in IMAGE_FILES:
        blob = images[name]
        h.update(f"{name}:{len(blob)}:".encode())
        h.update(blob)
    return h.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    """What the program takes as input, and how the host lays it out."""

    channels: int
    size: int
    #: the pixel that stands for zero after normalization (the stem's padding)
    pad_value: int
    #: normalization folded into the stem: one mean on the pixel grid, one std per channel
    mean: list
    std: list
    layout: str = "HWC uint8 pixels"
    #: the stem's unfolded input (each output pixel's window as its channels): kernel, stride,
    #: pad, pad_value and the unfolded tensor's shape; None when the host writes pixels
    unfold: dict | None = None


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: what a program's images mean, typed. Every reader goes through
    :meth:`from_dict`, the one place where fields are checked and optional ones get their
    defaults."""

    format: str
    version: int
    model_hash: str
    num_classes: int
    input: InputSpec
    #: output channels per weight word (the array's columns)
    group: int
    act_bytes: int
    logit_scale: float
    #: per file: its bytes and SHA-256
    files: dict
    #: per tensor: address, bank, shape, pixel stride, scale
    tensors: dict
    #: per operation: name, op, shapes, MACs, bits, density, accumulator bits, shift, ...
    layers: list
    #: the input lanes (bytes per activation word) the program was compiled for
    lanes: int = 1
    act_banks: int = 1
    #: bytes per activation bank (``act_bytes`` with one bank)
    bank_bytes: int | None = None
    preset: str | None = None
    source: str | None = None
    #: the float network's configuration (SqueezeNetConfig.to_dict)
    config: dict | None = None
    data: str | None = None
    classes: list | None = None
    #: the named accelerator configuration it was laid out for
    accelerator: str | None = None
    descriptor_bytes: int = DESCRIPTOR_BYTES
    descriptor_bits: int | None = None
    bits: int = 8
    compressed: bool = False
    #: the fit report against a board or budget, when one was given
    fit: dict | None = None
    #: what every class sum holds for a real score of 0 (a classifier without ReLU stores its
    #: scores from a zero point; summed over the map): score = (sum - offset) * logit_scale
    logit_offset: int = 0
    #: zero channels added so every concatenation slice starts a word of ``lanes``: per
    #: padded layer its real (input, output) channels, and the bytes they cost
    #: (:mod:`fireforge.sw.padding`); None when nothing needed padding
    padding: dict | None = None

    def __post_init__(self):
        if self.bank_bytes is None:
            object.__setattr__(self, "bank_bytes", self.act_bytes)

    @classmethod
    def from_dict(cls, raw, where: str = "manifest") -> Manifest:
        """Check ``raw`` (the parsed JSON) and type it; a missing or mistyped field is named."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise FireforgeError(f"{where} is not a fireforge program manifest")
        if raw.get("version") != VERSION:
            raise FireforgeError(f"{where} has program format {raw.get('version')}; this "
                                 f"fireforge reads {VERSION}: recompile")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [n for n, f in fields.items()
                    if f.default is dataclasses.MISSING and n not in raw]
        if required:
            raise FireforgeError(f"{where} lacks {required}: recompile")
        known = {k: v for k, v in raw.items() if k in fields}
        for name, kind in (("files", dict), ("tensors", dict), ("layers", list),
                           ("input", dict), ("num_classes", int), ("group", int),
                           ("act_bytes", int), ("lanes", int)):
            if name in known and not isinstance(known[name], kind):
                raise FireforgeError(f"{where}: {name} is not a {kind.__name__}: recompile")
        try:
            known["input"] = InputSpec(**known["input"])
        except TypeError as e:
            raise FireforgeError(f"{where}: input is malformed ({e}): recompile") from None
        return cls(**known)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Program:
    path: Path
    manifest: Manifest
    images: dict[str, bytes]

    @property
    def descriptors(self) -> list:
        raw = self.images["program.bin"]
        return [unpack_descriptor(raw[i:i + DESCRIPTOR_BYTES])
                for i in range(0, len(raw), DESCRIPTOR_BYTES)]

    @property
    def model_hash(self) -> str:
        return self.manifest.model_hash

    @property
    def layers(self) -> list[dict]:
        return self.manifest.layers

    @property
    def num_classes(self) -> int:
        return self.manifest.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        i = self.manifest.input
        return i.channels, i.size, i.size

    @property
    def lanes(self) -> int:
        """The array's input lanes the program was compiled for (bytes per activation word)."""
        return self.manifest.lanes

    @property
    def placement(self) -> dict:
        """Where and how the host writes an image (:data:`~.protocol.InputPlacement`): what
        the board's INFO reports for this model."""
        c, h, w = self.input_shape
        t = self.manifest.tensors["input"]
        unfold = self.manifest.input.unfold or {}
        values = unfold.get("kernel", 1) ** 2 * c  # (a pixel's window, or the pixel)
        return {"addr": t["addr"], "channels": c, "height": h, "width": w,
                "pixel_bytes": t.get("stride", values), "window": unfold.get("kernel", 0),
                "window_stride": unfold.get("stride", 0), "window_pad": unfold.get("pad", 0),
                "pad_value": unfold.get("pad_value", 0)}

    def model_info(self) -> bytes:
        """This model's :data:`~.protocol.ModelInfo` bytes (LOAD_COMMIT's data; INFO's end)."""
        return model_info_bytes(self.model_hash, self.manifest.logit_scale, self.placement)

    def input_bytes(self, image: np.ndarray) -> tuple[int, bytes]:
        """Where and how one uint8 image ``(C, H, W)`` lies in activation memory: its address
        and bytes (:func:`~.protocol.place_image` with this model's placement). The golden
        model, the driver and the testbenches all place it with this."""
        return place_image(self.placement, image)


def load_program(path: str | Path) -> Program:
    """Load and validate a program directory written by ``fireforge compile``."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise FireforgeError(f"{path} is not a compiled program (no manifest.json); make one "
                             f"with `fireforge compile --checkpoint DIR --out {path}`")
    try:
        raw = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise FireforgeError(f"{mpath} is not valid JSON ({e}): the manifest was edited or "
                             f"truncated; recompile") from None
    manifest = Manifest.from_dict(raw, str(mpath))
    files = manifest.files
    images = {}
    for name in IMAGE_FILES:
        fpath = path / name
        entry = files.get(name)
        if entry is None:
            raise FireforgeError(f"{mpath} does not list {name}: recompile")
        if not fpath.is_file():
            raise FireforgeError(f"{fpath} is missing")
        blob = fpath.read_bytes()
        if len(blob) != entry.get("bytes"):
            raise FireforgeError(f"{fpath} has {len(blob)} bytes, the manifest says "
                                 f"{entry.get('bytes')}: the file is truncated or belongs to "
                                 f"another program")
        if sha256(blob) != entry.get("sha256"):
            raise FireforgeError(f"{fpath} does not match its SHA-256 in the manifest: it was "
                                 f"edited or belongs to another program")
        images[name] = blob
    if model_hash(images) != manifest.model_hash:
        raise FireforgeError(f"{mpath}: model_hash does not match the images (the manifest was "
                             f"edited); recompile")
    n_desc = len(images["program.bin"]) // DESCRIPTOR_BYTES
    if len(images["program.bin"]) % DESCRIPTOR_BYTES or n_desc != len(manifest.layers):
        raise FireforgeError(f"{path}: program.bin holds {n_desc} descriptors for "
                             f"{len(manifest.layers)} layers in the manifest")
    return Program(path, manifest, images)
