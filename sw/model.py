"""The SqueezeNet family (Iandola et al. 2016) as data: a ``Fire`` block and a table-driven
``SqueezeNet``.

A network is described by a frozen :class:`SqueezeNetConfig`: a stem convolution, a list of
:class:`FireSpec` modules, the positions of the max pools, the number of classes and the bypass
mode of the paper's section 6. The module tree mirrors torchvision's ``squeezenet.py`` exactly
(``features.N`` / ``classifier.1``), so a torchvision ``state_dict`` of v1.0 or v1.1 loads with
``strict=True``.

Everything downstream (compression, quantization, the compiler) walks :meth:`SqueezeNet.layers`
rather than the module tree, so the network stays data.

Deviation from the paper, by contract: a *complex* bypass 1x1 convolution is followed by ReLU,
because fireforge's activations are unsigned 8-bit (docs/numeric-contract.md: every convolution is
followed by ReLU).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..hw.errors import FireforgeError

__all__ = [
    "Bypass",
    "FireSpec",
    "SqueezeNetConfig",
    "Fire",
    "SqueezeNet",
    "metaparameters",
    "metaparameters_of",
    "create_model",
    "list_models",
    "preset_config",
    "load_state_dict_checked",
    "conv_output_size",
    "pool_output_size",
]


class Bypass(enum.StrEnum):
    """Residual connections around Fire modules (paper section 6)."""

    NONE = "none"
    #: identity shortcut around every Fire module whose input and output channels match
    SIMPLE = "simple"
    #: SIMPLE, plus a 1x1 convolution shortcut around the Fire modules whose channels differ
    COMPLEX = "complex"


@dataclass(frozen=True)
class FireSpec:
    """One Fire module: a 1x1 squeeze to ``squeeze`` channels, then 1x1 and 3x3 expands whose
    outputs are concatenated (``expand1x1`` channels first)."""

    squeeze: int
    expand1x1: int
    expand3x3: int

    def __post_init__(self):
        for name in ("squeeze", "expand1x1", "expand3x3"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FireforgeError(f"Fire {name} must be a positive int, not {value!r} (a Fire "
                                     f"module needs a squeeze and both expands)")

    @property
    def out_channels(self) -> int:
        return self.expand1x1 + self.expand3x3


@dataclass(frozen=True)
class SqueezeNetConfig:
    """Every parameter of a SqueezeNet-family network.

    Parameters
    ----------
    stem_channels, stem_kernel, stem_stride, stem_padding
        The first convolution (followed by ReLU).
    fires
        The Fire modules, in order.
    pool_after
        Indices into the sequence of blocks (0 is the stem, ``i + 1`` is ``fires[i]``) after which
        a 3x3/2 max pool in ceil mode follows, as in torchvision.
    num_classes
        Output channels of the final 1x1 convolution (followed by ReLU and a global average pool).
    in_channels, input_size
        The input image: channels (1 gray, 3 RGB) and square side in pixels.
    bypass
        Residual connections, see :class:`Bypass`.
    dropout
        Dropout probability before the classifier convolution (training only).
    """

    stem_channels: int
    stem_kernel: int
    stem_stride: int
    stem_padding: int
    fires: tuple[FireSpec, ...]
    pool_after: tuple[int, ...]
    num_classes: int = 1000
    in_channels: int = 3
    input_size: int = 224
    bypass: Bypass = Bypass.NONE
    dropout: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "fires", tuple(
            f if isinstance(f, FireSpec) else FireSpec(**f) if isinstance(f, dict) else FireSpec(*f)
            for f in self.fires))
        object.__setattr__(self, "pool_after", tuple(self.pool_after))
        try:
            object.__setattr__(self, "bypass", Bypass(self.bypass))
        except ValueError:
            raise FireforgeError(f"unknown bypass mode {self.bypass!r}; choose one of "
                                 f"{', '.join(b.value for b in Bypass)}") from None
        for name in ("stem_channels", "stem_kernel", "stem_stride", "num_classes",
                     "in_channels", "input_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FireforgeError(f"{name} must be a positive int, not {value!r}")
        if not self.fires:
            raise FireforgeError("a SqueezeNet needs at least one Fire module")
        bad = [i for i in self.pool_after if not 0 <= i <= len(self.fires)]
        if bad:
            raise FireforgeError(f"pool_after {bad} out of range: blocks are 0 (stem) .. "
                                 f"{len(self.fires)} (last Fire)")
        if not 0.0 <= self.dropout < 1.0:
            raise FireforgeError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.feature_size() < 1:
            raise FireforgeError(f"input_size {self.input_size} is too small for this network")

    def replace(self, **changes) -> SqueezeNetConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise FireforgeError(f"unknown model option(s) {sorted(unknown)}; known: "
                                 f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fires"] = [dataclasses.asdict(f) for f in self.fires]
        d["pool_after"] = list(self.pool_after)
        d["bypass"] = self.bypass.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SqueezeNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise FireforgeError(f"model config has unknown keys {sorted(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise FireforgeError(f"model config is incomplete: {e}") from None

    def bypass_kind(self, fire_index: int) -> str | None:
        """``None``, ``"identity"`` or ``"conv"`` for the Fire module ``fires[fire_index]``."""
        if self.bypass is Bypass.NONE:
            return None
        fire = self.fires[fire_index]
        in_ch = self.stem_channels if fire_index == 0 else self.fires[fire_index - 1].out_channels
        if in_ch == fire.out_channels:
            return "identity"
        return "conv" if self.bypass is Bypass.COMPLEX else None

    def feature_size(self) -> int:
        """Side of the last feature map, before the classifier."""
        size = conv_output_size(self.input_size, self.stem_kernel, self.stem_stride,
                                self.stem_padding)
        for block in range(len(self.fires) + 1):
            if block in self.pool_after:
                size = pool_output_size(size)
        return size


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output side of a convolution (zero padding on both sides), as PyTorch computes it."""
    return (size + 2 * padding - kernel) // stride + 1


def pool_output_size(size: int, kernel: int = 3, stride: int = 2) -> int:
    """Output side of a max pool with ceil mode and no padding, as PyTorch computes it."""
    if size < kernel:
        return 0
    out = math.ceil((size - kernel) / stride) + 1
    # PyTorch drops a last window that would start outside the input.
    if (out - 1) * stride >= size:
        out -= 1
    return out


def metaparameters(base_e: int = 128, incr_e: int = 128, pct_3x3: float = 0.5, freq: int = 2,
                   sr: float = 0.125, num_fires: int = 8) -> tuple[FireSpec, ...]:
    """The Fire modules of the paper's microarchitecture metaparameters (section 5).

    ``e_i = base_e + incr_e * floor(i / freq)`` expand filters in Fire module ``i``, split into
    ``pct_3x3`` 3x3 filters and the rest 1x1, with a squeeze ratio ``SR`` of squeeze to expand
    filters. The defaults are the paper's and give SqueezeNet v1.0's channel table.
    """
    if not 0.0 <= pct_3x3 <= 1.0 or not 0.0 < sr <= 1.0 or freq < 1:
        raise FireforgeError(f"bad metaparameters: pct_3x3={pct_3x3} (0..1), SR={sr} (0..1], "
                             f"freq={freq} (>= 1)")
    fires = []
    for i in range(num_fires):
        e = base_e + incr_e * (i // freq)
        e3 = int(round(e * pct_3x3))
        s = int(round(sr * e))
        if not 0 < e3 < e:
            raise FireforgeError(f"pct_3x3={pct_3x3} leaves Fire module {i} with {e3} of {e} "
                                 f"expand filters in 3x3: both expands need at least one")
        fires.append(FireSpec(max(s, 1), e - e3, e3))
    return tuple(fires)


def metaparameters_of(fires: Sequence[FireSpec]) -> dict | None:
    """The :func:`metaparameters` that give exactly ``fires`` (``base_e``, ``incr_e``,
    ``pct_3x3``, ``freq``, ``sr``, ``num_fires``), or ``None`` when no choice of them does."""
    first = fires[0]
    base_e = first.out_channels
    freq = next((i for i, f in enumerate(fires) if f.out_channels != base_e), len(fires))
    incr_e = fires[freq].out_channels - base_e if freq < len(fires) else 0
    found = dict(base_e=base_e, incr_e=incr_e, pct_3x3=first.expand3x3 / base_e, freq=freq,
                 sr=first.squeeze / base_e, num_fires=len(fires))
    try:
        return found if metaparameters(**found) == tuple(fires) else None
    except FireforgeError:
        return None


def _scaled(fires: Sequence[FireSpec], width: float) -> tuple[FireSpec, ...]:
    return tuple(FireSpec(max(1, int(f.squeeze * width)), int(f.expand1x1 * width),
                          int(f.expand3x3 * width)) for f in fires)


_V1_0_FIRES = metaparameters()
_V1_1_FIRES = (FireSpec(16, 64, 64), FireSpec(16, 64, 64), FireSpec(32, 128, 128),
               FireSpec(32, 128, 128), FireSpec(48, 192, 192), FireSpec(48, 192, 192),
               FireSpec(64, 256, 256), FireSpec(64, 256, 256))

_PRESETS: dict[str, SqueezeNetConfig] = {
    # The paper's network: 7x7/2 stem with 96 filters, pools after conv1, fire4 and fire8.
    "squeezenet1_0": SqueezeNetConfig(96, 7, 2, 0, _V1_0_FIRES, (0, 3, 7)),
    # torchvision's v1.1: 3x3/2 stem with 64 filters, earlier pools, 2.4x fewer MACs.
    "squeezenet1_1": SqueezeNetConfig(64, 3, 2, 0, _V1_1_FIRES, (0, 2, 4)),
    # v1.1 for 32x32 inputs: a 3x3/1 stem with padding keeps the first map at 32x32.
    "squeezenet1_1_cifar": SqueezeNetConfig(64, 3, 1, 1, _V1_1_FIRES, (0, 2, 4),
                                            num_classes=10, input_size=32),
    "squeezenet1_1_cifar_w50": SqueezeNetConfig(32, 3, 1, 1, _scaled(_V1_1_FIRES, 0.5), (0, 2, 4),
                                                num_classes=10, input_size=32),
    # Six quarter-width Fire modules: ~22.6 k parameters, ~1.4 M MACs; fits an iCE40 UP5K.
    "squeezenet_tiny": SqueezeNetConfig(16, 3, 1, 1, _scaled(_V1_1_FIRES[:6], 0.25), (0, 2, 4),
                                        num_classes=10, input_size=32, dropout=0.1),
}


def list_models() -> list[str]:
    """Names of the built-in presets."""
    return sorted(_PRESETS)


def preset_config(name: str, **overrides) -> SqueezeNetConfig:
    """The config of preset ``name`` with ``overrides`` (any :class:`SqueezeNetConfig` field)."""
    try:
        config = _PRESETS[name]
    except KeyError:
        raise FireforgeError(f"unknown preset {name!r}; known presets: "
                             f"{', '.join(list_models())}") from None
    return config.replace(**overrides) if overrides else config


class Fire(nn.Module):
    """The Fire module, with torchvision's attribute names and an optional bypass.

    ``bypass`` is ``None``, ``"identity"`` (adds the input to the output) or ``"conv"`` (adds a
    1x1 convolution of the input, followed by ReLU, to the output).
    """

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int,
                 expand3x3_planes: int, bypass: str | None = None):
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        self.bypass = bypass
        out = expand1x1_planes + expand3x3_planes
        if bypass == "identity" and inplanes != out:
            raise FireforgeError(f"identity bypass needs equal channels, got {inplanes} -> {out}")
        self.bypass_conv = nn.Conv2d(inplanes, out, kernel_size=1) if bypass == "conv" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_activation(self.squeeze(x))
        y = torch.cat([self.expand1x1_activation(self.expand1x1(s)),
                       self.expand3x3_activation(self.expand3x3(s))], 1)
        if self.bypass == "identity":
            y = y + x
        elif self.bypass == "conv":
            y = y + torch.relu(self.bypass_conv(x))
        return y


class ClassifierReLU(nn.ReLU):
    """ReLU whose forward is exact, but whose gradient leaks ``leak`` for negative inputs while
    training.

    A class whose classifier output is negative at every position and for every image gets no
    gradient through a plain ReLU and never recovers (a "dead class", measured here: 87-89% on
    digits instead of 98%). The forward value, and so the inference contract, is unchanged.
    """

    def __init__(self, leak: float = 0.01):
        super().__init__(inplace=False)
        self.leak = leak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)
        if self.training and self.leak:
            y = y + self.leak * torch.where(x < 0, x - x.detach(), torch.zeros_like(x))
        return y


class SqueezeNet(nn.Module):
    """A SqueezeNet-family network built from a :class:`SqueezeNetConfig`.

    ``forward`` takes normalized float images ``(N, in_channels, H, W)`` and returns class scores
    ``(N, num_classes)``: the global average of the ReLU'd classifier convolution.
    """

    def __init__(self, config: SqueezeNetConfig):
        super().__init__()
        self.config = config
        c = config
        layers: list[nn.Module] = [
            nn.Conv2d(c.in_channels, c.stem_channels, kernel_size=c.stem_kernel,
                      stride=c.stem_stride, padding=c.stem_padding),
            nn.ReLU(inplace=True),
        ]
        if 0 in c.pool_after:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        channels = c.stem_channels
        for i, f in enumerate(c.fires):
            layers.append(Fire(channels, f.squeeze, f.expand1x1, f.expand3x3,
                               bypass=c.bypass_kind(i)))
            channels = f.out_channels
            if i + 1 in c.pool_after:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(channels, c.num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=c.dropout), final_conv, ClassifierReLU(), nn.AdaptiveAvgPool2d((1, 1))
        )
        # torchvision's initialisation: small final layer, Kaiming elsewhere.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise FireforgeError(
                f"input of shape {tuple(x.shape)}: this model takes (N, {self.config.in_channels}, "
                f"{self.config.input_size}, {self.config.input_size}) images "
                f"({'gray' if self.config.in_channels == 1 else 'RGB'})")
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)

    def convs(self) -> list[tuple[str, nn.Conv2d]]:
        """Every convolution, in execution order, with its state_dict prefix."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, nn.Conv2d)]


def create_model(name: str, weights: str | None = None, **overrides) -> SqueezeNet:
    """Build preset ``name`` (see :func:`list_models`), timm-style.

    ``overrides`` replace config fields (``num_classes``, ``in_channels``, ``input_size``,
    ``bypass``, ...). ``weights`` is an optional path to a state_dict (a torchvision checkpoint for
    ``squeezenet1_0``/``squeezenet1_1``), loaded strictly.
    """
    model = SqueezeNet(preset_config(name, **overrides))
    if weights is not None:
        state = read_state_dict(weights, "weights file",
                                "give a state_dict saved with torch.save (a .pth/.pt file)")
        load_state_dict_checked(model, state, source=str(weights))
    return model


def read_state_dict(path, what: str, fix: str) -> dict:
    """The tensors ``torch.save`` wrote to ``path`` (a ``what``), loaded tensors-only: a file
    holding other objects is refused rather than unpickled, and torch's own messages (several
    lines, with advice to unpickle untrusted files) become one line ending in ``fix``."""
    import pickle
    import zipfile
    from pathlib import Path

    if not Path(path).exists():
        raise FireforgeError(f"{what} {path} does not exist; {fix}")
    if Path(path).is_dir():
        raise FireforgeError(f"{what} {path} is a directory, not a file; {fix}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive (an ONNX file is not one)
        raise FireforgeError(f"{what} {path} is truncated or not a torch.save file; {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FireforgeError(f"{what} {path} holds objects other than tensors (fireforge loads "
                             f"tensors only and never unpickles objects); {fix}") from None
    except Exception:  # zip, EOF, key and OS errors: the bytes are not a whole torch.save file
        raise FireforgeError(f"{what} {path} is truncated or not a torch.save file; "
                             f"{fix}") from None


def load_state_dict_checked(model: nn.Module, state: dict, source: str = "state_dict") -> None:
    """``model.load_state_dict(state, strict=True)`` with an error that names what differs."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FireforgeError(f"{source} is not a state_dict (a dict of tensors)")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) ({'; '.join(shapes[:3])})")
        if missing:
            parts.append(f"{len(missing)} missing key(s) ({', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) ({', '.join(unexpected[:3])})")
        raise FireforgeError(f"{source} belongs to another architecture: {', '.join(parts)}")
    model.load_state_dict(state, strict=True)


def as_config(model_or_config):
    """The config of a model (:class:`SqueezeNet` or :class:`~.graph.GraphNet`), or the config
    itself."""
    return model_or_config.config if isinstance(model_or_config, nn.Module) else model_or_config
