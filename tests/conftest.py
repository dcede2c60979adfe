import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Two pytest workers on two cores: one torch thread each (measured faster and steadier).
    torch.set_num_threads(1)
    torch.manual_seed(0)
