import pytest
import torch
from fireforge.sw.cli import main


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Two pytest workers on two cores: one torch thread each (measured faster and steadier).
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def quick_tiny_program(tmp_path_factory):
    """The tiny preset, briefly trained and compressed to 4 bits: real shapes, fast to make."""
    root = tmp_path_factory.mktemp("tiny")
    assert main(["train", "--preset", "squeezenet_tiny", "--data", "digits", "--epochs", "3",
                 "--out", str(root / "f")]) == 0
    assert main(["compress", "--checkpoint", str(root / "f"), "--density", "0.4", "--bits", "4",
                 "--steps", "1", "--epochs-per-step", "1", "--finetune-epochs", "1",
                 "--out", str(root / "c")]) == 0
    assert main(["compile", "--checkpoint", str(root / "c"), "--config", "small",
                 "--out", str(root / "p")]) == 0
    return root / "p"


@pytest.fixture(scope="session")
def quick_tiny_up5k_program(quick_tiny_program):
    """The same network uncompressed (int8), laid out for the iCE40 UltraPlus configuration:
    4 columns, activations in two single-port banks."""
    root = quick_tiny_program.parent
    if not (root / "u" / "manifest.json").exists():
        assert main(["compile", "--checkpoint", str(root / "f"), "--config", "up5k",
                     "--out", str(root / "u")]) == 0
    return root / "u"
