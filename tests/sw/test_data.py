import numpy as np
import pytest
from fireforge.hw.errors import FireforgeError
from fireforge.sw.data import fit_images, load_dataset, normalize
from PIL import Image


def test_digits_split_is_fixed_and_stratified():
    a = load_dataset("digits", 32, 1)
    b = load_dataset("digits", 32, 1)
    assert a.x_train.shape == (1438, 1, 32, 32) and a.x_test.shape == (359, 1, 32, 32)
    assert a.x_train.dtype == np.uint8
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert set(np.bincount(a.y_test)) <= {35, 36, 37}
    assert a.x_train.max() == 255 and a.x_train.min() == 0


def test_mnist5k_is_padded_to_32():
    d = load_dataset("mnist5k", 32)
    assert d.x_train.shape == (4000, 1, 32, 32) and d.x_test.shape == (1000, 1, 32, 32)
    # The 28x28 digit sits in the middle: the 2-pixel border is empty.
    assert d.x_train[:, :, :2].max() == 0 and d.x_train[:, :, :, -2:].max() == 0
    assert len(d.classes) == 10


def test_gray_data_feeds_rgb_model():
    d = load_dataset("digits", 16, 3)
    assert d.x_train.shape[1:] == (3, 16, 16)
    assert np.array_equal(d.x_train[:, 0], d.x_train[:, 2])


def _write_folder(root, classes=("cat", "dog"), per_class=5, mode="L", size=(20, 24)):
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                root / cls / f"{i}.png")


def test_image_folder(tmp_path):
    _write_folder(tmp_path)
    d = load_dataset(str(tmp_path), 32, 1)
    assert d.classes == ("cat", "dog")
    assert d.x_train.shape[1:] == (1, 32, 32)
    assert len(d.x_train) + len(d.x_test) == 10


def test_image_folder_errors(tmp_path):
    with pytest.raises(FireforgeError, match="neither a built-in name"):
        load_dataset(str(tmp_path / "missing"), 32)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(FireforgeError, match="has no images"):
        load_dataset(str(tmp_path / "empty"), 32)
    (tmp_path / "flat").mkdir()
    with pytest.raises(FireforgeError, match="no class subfolders"):
        load_dataset(str(tmp_path / "flat"), 32)
    _write_folder(tmp_path / "rgb", mode="RGB")
    with pytest.raises(FireforgeError, match="colour image.*takes 1 channel"):
        load_dataset(str(tmp_path / "rgb"), 32, 1)
    assert load_dataset(str(tmp_path / "rgb"), 32, 3).channels == 3
    broken = tmp_path / "broken" / "a"
    broken.mkdir(parents=True)
    (broken / "x.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(FireforgeError, match="cannot read image"):
        load_dataset(str(tmp_path / "broken"), 32)


def test_fit_and_normalize():
    x = np.full((2, 1, 8, 8), 200, np.uint8)
    assert fit_images(x, 32).shape == (2, 1, 32, 32)
    padded = fit_images(x, 12, "pad")
    assert padded[0, 0, 0, 0] == 0 and padded[0, 0, 2, 2] == 200
    t = normalize(x, [0.5], [0.25])
    assert float(t[0, 0, 0, 0]) == pytest.approx((200 / 255 - 0.5) / 0.25)
