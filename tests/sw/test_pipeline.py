"""The command-line flow train -> compress -> compile -> golden, as a user runs it."""

import json

import pytest
from fireforge.sw.cli import main


def _run(capsys, *argv):
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck")
    assert main(["train", "--preset", "squeezenet_tiny", "--data", "digits", "--epochs", "8",
                 "--out", str(out)]) == 0
    return out


def test_compress_compile_golden(trained, tmp_path, capsys):
    comp = _run(capsys, "compress", "--checkpoint", str(trained), "--density", "0.5", "--bits",
                "4", "--steps", "1", "--epochs-per-step", "2", "--finetune-epochs", "1",
                "--out", str(tmp_path / "c"))
    assert comp["density"] == pytest.approx(0.5, abs=0.01) and comp["bits"] == 4
    assert {"accuracy_before", "accuracy_after", "layers", "total_bytes",
            "compression_ratio"} <= set(comp)
    assert comp["compression_ratio"] > 5
    assert len(comp["layers"]) == 20  # every convolution of the tiny net
    comp_json = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert comp_json["accuracy_after"] == comp["accuracy_after"]

    out = _run(capsys, "compile", "--checkpoint", str(tmp_path / "c"), "--board", "icebreaker",
               "--out", str(tmp_path / "p"))
    assert out["fit"]["fits"] is True
    gold = _run(capsys, "golden", "--program", str(tmp_path / "p"))
    assert {"accuracy", "float_accuracy", "top1_agreement", "weight_bytes",
            "predictions"} <= set(gold)
    assert gold["images"] == len(gold["predictions"]) == 359
    assert gold["accuracy"] > 0.5
    assert gold["float_accuracy"] == pytest.approx(comp["accuracy_after"])
    assert gold["top1_agreement"] >= 0.95
    assert gold["weight_bytes"] < 20_000  # 4-bit indices of ~22 k weights, codebooks, params

    # Compressing a compressed checkpoint is refused; so is a bad density.
    assert main(["compress", "--checkpoint", str(tmp_path / "c"), "--density", "0.3", "--bits",
                 "4", "--out", str(tmp_path / "x")]) == 1
    assert "already compressed" in capsys.readouterr().err
    assert main(["compress", "--checkpoint", str(trained), "--density", "1.5", "--bits", "4",
                 "--out", str(tmp_path / "x")]) == 1
    assert "--density must be in (0, 1]" in capsys.readouterr().err


def test_uncompressed_checkpoint_compiles_with_8_bit_weights(trained, tmp_path, capsys):
    out = _run(capsys, "compile", "--checkpoint", str(trained), "--out", str(tmp_path / "p"))
    assert out["fit"]["budget"] is None
    gold = _run(capsys, "golden", "--program", str(tmp_path / "p"), "--count", "100")
    assert gold["images"] == 100 and gold["top1_agreement"] >= 0.95


def test_sensitivity_command(trained, tmp_path, capsys):
    out = _run(capsys, "sensitivity", "--checkpoint", str(trained), "--out", str(tmp_path))
    assert (tmp_path / "sensitivity.png").stat().st_size > 10_000
    assert len(out["layers"]) == 20 and out["baseline_accuracy"] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("preset,data,floor", [("squeezenet_tiny", "digits", 0.97),
                                               ("squeezenet1_1_cifar_w50", "mnist5k", 0.975)])
def test_issue_targets(tmp_path, capsys, preset, data, floor):
    """Trained to the accuracy floor; density <= 40% with 4-bit codebooks; the golden integer
    model within 1 point of the uncompressed float model."""
    train = _run(capsys, "train", "--preset", preset, "--data", data, "--out",
                 str(tmp_path / "f"))
    assert train["test_accuracy"] >= floor
    if preset == "squeezenet_tiny":
        assert train["seconds"] < 120
    comp = _run(capsys, "compress", "--checkpoint", str(tmp_path / "f"), "--density", "0.4",
                "--bits", "4", "--out", str(tmp_path / "c"))
    assert comp["density"] <= 0.4 + 1e-3
    _run(capsys, "compile", "--checkpoint", str(tmp_path / "c"), "--out", str(tmp_path / "p"))
    gold = _run(capsys, "golden", "--program", str(tmp_path / "p"))
    assert gold["accuracy"] >= train["test_accuracy"] - 0.01
