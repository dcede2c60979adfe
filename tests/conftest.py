import pytest
import torch
from fireforge.sw.commands.compile import compile_program
from fireforge.sw.commands.compress import compress
from fireforge.sw.commands.train import train


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Two pytest workers on two cores: one torch thread each (measured faster and steadier).
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def quick_tiny_program(tmp_path_factory):
    """The tiny preset, briefly trained and compressed to 4 bits: real shapes, fast to make."""
    root = tmp_path_factory.mktemp("tiny")
    train("squeezenet_tiny", "digits", root / "f", epochs=3)
    compress(root / "f", 0.4, 4, root / "c", steps=1, epochs_per_step=1, finetune_epochs=1)
    compile_program(root / "c", root / "p", config="small")
    return root / "p"


@pytest.fixture(scope="session")
def quick_tiny_up5k_program(quick_tiny_program):
    """The same network uncompressed (int8), laid out for the iCE40 UltraPlus configuration:
    4 columns, activations in two single-port banks."""
    root = quick_tiny_program.parent
    if not (root / "u" / "manifest.json").exists():
        compile_program(root / "f", root / "u", config="up5k")
    return root / "u"
