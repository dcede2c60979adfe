import json

import numpy as np
import pytest
import torch
from fireforge.hw.errors import FireforgeError
from fireforge.sw.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fireforge.sw.data import Dataset, load_dataset
from fireforge.sw.model import create_model
from fireforge.sw.train import TrainConfig, predict, train


def _small_digits(n_train=256, n_test=128) -> Dataset:
    d = load_dataset("digits", 32, 1)
    return Dataset(d.name, d.classes, d.x_train[:n_train], d.y_train[:n_train],
                   d.x_test[:n_test], d.y_test[:n_test])


def test_training_learns_and_is_reproducible():
    data = _small_digits(n_train=1438)
    mean, std = data.mean_std()
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # model init is seeded by the caller; train() seeds the rest
        model = create_model("squeezenet_tiny", in_channels=1)
        metrics = train(model, data, mean, std, TrainConfig(epochs=5, lr=5e-3, seed=3),
                        progress=False)
        runs.append((model.state_dict(), metrics))
    (a, ma), (b, mb) = runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ma["test_accuracy"] == mb["test_accuracy"]
    assert ma["train_loss"][-1] < ma["train_loss"][0]
    assert ma["test_accuracy"] > 0.3  # chance is 0.1; the full recipe is a slow test


def test_checkpoint_round_trip(tmp_path):
    data = _small_digits(16, 16)
    model = create_model("squeezenet_tiny", in_channels=1, bypass="complex").eval()
    mean, std = data.mean_std()
    save_checkpoint(Checkpoint(model, "squeezenet_tiny", "digits", data.classes, mean, std),
                    tmp_path / "ck")
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config == model.config and ck.classes == data.classes
    assert np.array_equal(predict(ck.model, data.x_test, mean, std),
                          predict(model, data.x_test, mean, std))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    model = create_model("squeezenet_tiny", in_channels=1)
    save_checkpoint(Checkpoint(model, "squeezenet_tiny", "digits", tuple("0123456789"), [0.5],
                               [0.5]), tmp_path)
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    meta["config"]["fires"][0]["squeeze"] = 8  # config says one thing, weights another
    (tmp_path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(FireforgeError, match="another architecture.*features.3.squeeze"):
        load_checkpoint(tmp_path)
    with pytest.raises(FireforgeError, match="lacks checkpoint.json"):
        load_checkpoint(tmp_path / "..")
    (tmp_path / "checkpoint.json").write_text("{broken")
    with pytest.raises(FireforgeError, match="not valid JSON"):
        load_checkpoint(tmp_path)


