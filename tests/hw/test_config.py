"""The accelerator configuration on its own: the named variants, what is refused, and what INFO
carries of it (the link and the driver share one mapping)."""

import dataclasses

import pytest
from fireforge.hw.config import CONFIGS, AcceleratorConfig, config_by_name
from fireforge.hw.errors import FireforgeError
from fireforge.hw.info import CONFIG_FIELDS, config_from_info, info_fields
from fireforge.hw.protocol import InfoReply, Space, layout_bytes, layout_from_bytes

from ..helpers import LANES_CONFIG, TEST_CONFIG


def test_configs_validate():
    assert config_by_name("small").macs == 8 and config_by_name("ecp5").macs >= 64
    assert config_by_name("up5k").macs == 4 and not config_by_name("up5k").weights_preloaded
    with pytest.raises(FireforgeError, match="columns=6: a power of two"):
        AcceleratorConfig(columns=6)
    with pytest.raises(FireforgeError, match="multiplier='fpga'"):
        AcceleratorConfig(multiplier="fpga")
    with pytest.raises(FireforgeError, match="rows=3: a power of two"):
        AcceleratorConfig(rows=3)
    with pytest.raises(FireforgeError, match="rows=2: input lanes read a 2-byte"):
        config_by_name("up5k").replace(rows=2)
    with pytest.raises(FireforgeError, match="requant_lanes=4: a divisor of rows"):
        AcceleratorConfig(rows=2, requant_lanes=4)
    with pytest.raises(FireforgeError, match="unknown accelerator configuration 'x'"):
        config_by_name("x")
    assert set(CONFIGS) == {"small", "up5k", "ecp5", "ecp5-128"}


@pytest.mark.parametrize("config", [*CONFIGS.values(), TEST_CONFIG, LANES_CONFIG],
                         ids=[*CONFIGS, "test", "lanes"])
def test_info_carries_what_a_program_needs(config):
    """INFO's fields rebuild the configuration: every field a program's fit depends on comes
    back; the rest (multiplier kind, FIFO, memory registers) as their defaults."""
    fields = info_fields(config)
    raw = layout_bytes(InfoReply, **fields)
    back = config_from_info(layout_from_bytes(InfoReply, raw))
    assert all(getattr(back, f) == getattr(config, f) for f in CONFIG_FIELDS)
    assert (back.bypass_add, back.act_banks, back.weights_preloaded, back.sparse_weights) == (
        config.bypass_add, config.act_banks, config.weights_preloaded, config.sparse_weights)
    assert back.model_spaces() == config.model_spaces()
    defaults = AcceleratorConfig()
    rest = {f.name for f in dataclasses.fields(AcceleratorConfig)} - set(CONFIG_FIELDS) - {
        "bypass_add", "act_memory", "weight_memory", "sparse_weights"}
    assert all(getattr(back, f) == getattr(defaults, f) for f in rest)


def test_model_spaces_hold_whole_words():
    cfg = config_by_name("ecp5")
    spaces = cfg.model_spaces()
    assert spaces[Space.WEIGHTS] == (cfg.weight_bytes // 64, 64)  # one 8-bit index per MAC
    assert spaces[Space.PARAMS][1] == 8 * cfg.requant_lanes  # a word feeds every lane
    assert set(spaces) == set(Space)
