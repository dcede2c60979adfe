"""What INFO says about the accelerator's configuration, defined once: the link fills
:data:`~.protocol.InfoReply` from an :class:`~.config.AcceleratorConfig` with
:func:`info_fields`, and the host driver rebuilds the configuration from the reply with
:func:`config_from_info`, so a host can check a program against the board before it loads or
runs it. Configuration fields INFO does not carry (multiplier kind, FIFO, memory registers) do
not change what a program needs, and come back as their defaults.
"""

from __future__ import annotations

from .config import AcceleratorConfig

__all__ = ["CONFIG_FIELDS", "info_fields", "config_from_info"]

#: configuration fields INFO carries as they are
CONFIG_FIELDS = ("columns", "rows", "requant_lanes", "model_slots", "codebook_bits", "act_bytes",
                 "weight_bytes", "codebook_entries", "param_entries", "program_entries",
                 "result_entries", "stage_bytes", "mask_entries", "rx_fifo_bytes")


def info_fields(config: AcceleratorConfig) -> dict:
    """The :data:`~.protocol.InfoReply` fields that describe ``config`` (``features`` as a dict
    of its flags)."""
    return {**{name: getattr(config, name) for name in CONFIG_FIELDS},
            "features": {"bypass_add": config.bypass_add,
                         "spram_acts": config.act_banks > 1,
                         "spram_weights": not config.weights_preloaded,
                         "sparse_weights": config.sparse_weights}}


def config_from_info(reply) -> AcceleratorConfig:
    """The configuration an INFO reply describes (``reply``: a view or constant of
    :data:`~.protocol.InfoReply`)."""
    f = reply.features
    return AcceleratorConfig(
        **{name: int(getattr(reply, name)) for name in CONFIG_FIELDS},
        bypass_add=bool(f.bypass_add),
        act_memory="spram" if f.spram_acts else "bram",
        weight_memory="spram" if f.spram_weights else "bram",
        sparse_weights=bool(f.sparse_weights))
