"""The flow train -> compress -> compile -> golden through the command library, as the
commands run it (:mod:`fireforge.sw.commands`)."""

import json

import pytest
from fireforge.hw.errors import FireforgeError
from fireforge.sw.commands.compile import compile_program
from fireforge.sw.commands.compress import compress, sensitivity
from fireforge.sw.commands.golden import golden
from fireforge.sw.commands.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck")
    train("squeezenet_tiny", "digits", out, epochs=8)
    return out


def test_compress_compile_golden(trained, tmp_path):
    comp = compress(trained, 0.5, 4, tmp_path / "c", steps=1, epochs_per_step=2,
                    finetune_epochs=1).to_dict()
    assert comp["density"] == pytest.approx(0.5, abs=0.01) and comp["bits"] == 4
    assert {"accuracy_before", "accuracy_after", "layers", "total_bytes",
            "compression_ratio"} <= set(comp)
    assert comp["compression_ratio"] > 5
    assert len(comp["layers"]) == 20  # every convolution of the tiny net
    comp_json = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert comp_json["accuracy_after"] == comp["accuracy_after"]

    out = compile_program(tmp_path / "c", tmp_path / "p", board="ulx3s-25f")
    assert out.fit["fits"] is True and out.config == "small"  # (the board's configuration)
    gold = golden(tmp_path / "p").to_dict()
    assert {"accuracy", "float_accuracy", "top1_agreement", "weight_bytes",
            "predictions"} <= set(gold)
    assert gold["images"] == len(gold["predictions"]) == 359
    assert gold["accuracy"] > 0.5
    assert gold["float_accuracy"] == pytest.approx(comp["accuracy_after"])
    assert gold["top1_agreement"] >= 0.95
    assert gold["weight_bytes"] < 20_000  # 4-bit indices of ~22 k weights, codebooks, params

    # Compressing a compressed checkpoint is refused; so is a bad density.
    with pytest.raises(FireforgeError, match="already compressed"):
        compress(tmp_path / "c", 0.3, 4, tmp_path / "x")
    with pytest.raises(FireforgeError, match=r"--density must be in \(0, 1\]"):
        compress(trained, 1.5, 4, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_uncompressed_checkpoint_compiles_with_8_bit_weights(trained, tmp_path):
    out = compile_program(trained, tmp_path / "p")
    assert out.fit["budget"] is None
    gold = golden(tmp_path / "p", count=100)
    assert gold.images == 100 and gold.top1_agreement >= 0.95


def test_sensitivity_command(trained, tmp_path):
    out = sensitivity(trained, tmp_path)
    assert (tmp_path / "sensitivity.png").stat().st_size > 10_000
    assert len(out.layers) == 20 and out.baseline_accuracy > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("preset,data,floor", [("squeezenet_tiny", "digits", 0.97),
                                               ("squeezenet1_1_cifar_w50", "mnist5k", 0.975)])
def test_issue_targets(tmp_path, preset, data, floor):
    """Trained to the accuracy floor; density <= 40% with 4-bit codebooks; the golden integer
    model within 1 point of the uncompressed float model."""
    trained = train(preset, data, tmp_path / "f")
    assert trained.test_accuracy >= floor
    if preset == "squeezenet_tiny":
        assert trained.seconds < 120
    comp = compress(tmp_path / "f", 0.4, 4, tmp_path / "c")
    assert comp.density <= 0.4 + 1e-3
    compile_program(tmp_path / "c", tmp_path / "p")
    gold = golden(tmp_path / "p")
    assert gold.accuracy >= trained.test_accuracy - 0.01


def test_dsd_prunes_then_regrows_every_weight(quick_tiny_program, tmp_path):
    """Dense-Sparse-Dense: the sparse phase holds the masks, the final dense phase trains the
    pruned weights again from zero, and the result is an ordinary float checkpoint."""
    import torch
    from fireforge.sw.checkpoint import load_checkpoint
    from fireforge.sw.commands.compress import dsd

    result = dsd(quick_tiny_program.parent / "f", tmp_path / "d", density=0.4,
                 sparse_epochs=1, redense_epochs=1)
    assert result.density == pytest.approx(0.4, abs=0.01)
    assert {"accuracy_dense", "accuracy_sparse", "accuracy_redense"} <= set(result.to_dict())
    ckpt = load_checkpoint(tmp_path / "d")
    assert ckpt.shared is None and ckpt.extra["dsd"]["density"] == result.density
    weights = torch.cat([m.weight.detach().flatten() for _, m in ckpt.model.convs()])
    assert (weights != 0).float().mean() > 0.9  # the pruned weights trained again
    with pytest.raises(FireforgeError, match="is compressed; DSD trains the float"):
        dsd(quick_tiny_program.parent / "c", tmp_path / "x")
