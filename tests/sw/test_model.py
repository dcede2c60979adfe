import pytest
import torch
from fireforge.hw.errors import FireforgeError
from fireforge.sw.model import (
    Bypass,
    FireSpec,
    create_model,
    list_models,
    metaparameters,
    preset_config,
)
from fireforge.sw.summary import summarize

from .torchvision_squeezenet import SqueezeNet as TorchvisionSqueezeNet

PARAMS = {
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "squeezenet1_1_cifar": 727_626,
    "squeezenet1_1_cifar_w50": 184_362,
    "squeezenet_tiny": 22_650,
}
MACS = {  # BUDGETS.md, millions
    "squeezenet1_0": 818.9,
    "squeezenet1_1": 349.2,
    "squeezenet1_1_cifar": 23.5,
    "squeezenet1_1_cifar_w50": 6.3,
    "squeezenet_tiny": 1.4,
}


def test_presets_listed():
    assert list_models() == sorted(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_preset_params_and_macs(name):
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    summary = summarize(model)
    assert summary.params == PARAMS[name]
    assert summary.macs / 1e6 == pytest.approx(MACS[name], rel=0.005 if MACS[name] > 10 else 0.03)


@pytest.mark.parametrize("version", ["1_0", "1_1"])
def test_torchvision_state_dict_loads_strict_and_agrees(version):
    torch.manual_seed(1)
    reference = TorchvisionSqueezeNet(version).eval()
    # Non-zero biases, so a mis-mapped bias would show.
    with torch.no_grad():
        for p in reference.parameters():
            if p.dim() == 1:
                p.uniform_(-0.1, 0.1)
    ours = create_model(f"squeezenet{version}").eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_torchvision_checkpoint_file_loads(tmp_path):
    reference = TorchvisionSqueezeNet("1_1")
    path = tmp_path / "squeezenet1_1.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("squeezenet1_1", weights=str(path))
    assert torch.equal(model.features[0].weight, reference.features[0].weight)


def test_wrong_architecture_weights_named(tmp_path):
    path = tmp_path / "v10.pth"
    torch.save(TorchvisionSqueezeNet("1_0").state_dict(), path)
    with pytest.raises(FireforgeError, match="another architecture.*shape mismatch"):
        create_model("squeezenet1_1", weights=str(path))
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(FireforgeError, match="is truncated or not a torch.save file"):
        create_model("squeezenet1_1", weights=str(bad))


def test_metaparameters_give_v1_0_table():
    v10 = preset_config("squeezenet1_0").fires
    assert metaparameters() == v10
    assert [f.squeeze for f in v10] == [16, 16, 32, 32, 48, 48, 64, 64]
    assert [f.out_channels for f in v10] == [128, 128, 256, 256, 384, 384, 512, 512]
    # pct_3x3 and SR move channels as the paper describes.
    f = metaparameters(pct_3x3=0.25, sr=0.75)[0]
    assert (f.squeeze, f.expand1x1, f.expand3x3) == (96, 96, 32)


def test_bypass_placement_follows_paper():
    simple = preset_config("squeezenet1_0", bypass="simple")
    # Simple bypass around fire3, fire5, fire7, fire9 (indices 1, 3, 5, 7).
    assert [simple.bypass_kind(i) for i in range(8)] == [None, "identity"] * 4
    complex_ = preset_config("squeezenet1_0", bypass=Bypass.COMPLEX)
    assert [complex_.bypass_kind(i) for i in range(8)] == ["conv", "identity"] * 4


@pytest.mark.parametrize("bypass", ["none", "simple", "complex"])
def test_bypass_variants_run(bypass):
    model = create_model("squeezenet_tiny", bypass=bypass, in_channels=1).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 10)
    keys = model.state_dict().keys()
    assert any("bypass_conv" in k for k in keys) == (bypass == "complex")


def test_simple_bypass_adds_the_input():
    model = create_model("squeezenet_tiny", bypass="simple").eval()
    fire = model.features[4]  # second Fire: 32 -> 32 channels
    assert fire.bypass == "identity"
    x = torch.rand(1, 32, 16, 16)
    with torch.no_grad():
        with_bypass = fire(x)
        fire.bypass = None
        without = fire(x)
    torch.testing.assert_close(with_bypass - without, x)


def test_overrides_and_errors():
    model = create_model("squeezenet_tiny", num_classes=7, in_channels=1)
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 7)
    with pytest.raises(FireforgeError, match="unknown preset 'squeezenet2'.*squeezenet_tiny"):
        create_model("squeezenet2")
    with pytest.raises(FireforgeError, match="unknown model option"):
        create_model("squeezenet_tiny", width=3)
    with pytest.raises(FireforgeError, match="unknown bypass mode"):
        create_model("squeezenet_tiny", bypass="sideways")
    with pytest.raises(FireforgeError, match="too small"):
        create_model("squeezenet1_0", input_size=16)
    with pytest.raises(FireforgeError, match="takes \\(N, 1, 32, 32\\).*gray"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(FireforgeError, match="squeeze must be a positive int"):
        FireSpec(0, 4, 4)
    with pytest.raises(FireforgeError, match="both expands need at least one"):
        metaparameters(pct_3x3=1.0)


def test_config_round_trips_through_dict():
    config = preset_config("squeezenet1_1_cifar_w50", bypass="complex", in_channels=1)
    assert type(config).from_dict(config.to_dict()) == config
