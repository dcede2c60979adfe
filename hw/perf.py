"""The engine's cycle model: cycles per layer and per inference, from the descriptors alone.

Cycles do not depend on the data. The tests hold the model to the RTL's own per-layer counters:
exact on the presets; on odd little networks, where output groups of different sizes share the
FIFO's credits, the credit term is an approximation (3.3% off seen).

Convolution: one reduction step (``rows`` input channels) per cycle, except that a group of
``c`` output channels with fewer than ``ceil(c / requant_lanes)`` steps waits for
requantization (``requant_lanes`` channels per cycle); a fixed tail drains the pipeline, and the
codebook load comes first.
"""

from __future__ import annotations

import math

from .accelerator import CONSTANT_CYCLES, act_read_latency, done_cycles, fetch_cycles
from .array import array_latency
from .config import AcceleratorConfig
from .conv import MEMORY_REGISTER_STAGES, array_broadcast, sparse_stages
from .fifo import BLOCK_FIFO_EXTRA_LATENCY
from .isa import Op
from .requant import REQUANT_LATENCY, requant_latency

__all__ = ["layer_cycles", "avgpool_cycles", "estimate", "utilization",
           "sequencer_cycles_per_layer", "CYCLES"]


def sequencer_cycles_per_layer(config: AcceleratorConfig) -> int:
    """Descriptor fetch, layer constants and the unit's registered done (not in the per-layer
    counters)."""
    return fetch_cycles(config) + CONSTANT_CYCLES + done_cycles(config)

#: pipeline drain after the last step: fetch, decode, product, accumulate, FIFO, requantizer
#: (and the memory registers' stages, where configured)
_CONV_TAIL = 9 + REQUANT_LATENCY
#: cycles from a group's first step to its credit's return, beyond its steps and channels
_CREDIT_LATENCY = 4
_POOL_TAIL = 4
_ADD_TAIL = 6


def _conv_cycles(config: AcceleratorConfig, d) -> int:
    C, R, Q = config.columns, config.rows, config.requant_lanes
    steps = d.kernel * d.kernel * math.ceil(d.in_c / R)
    # requantization cycles of each group: chunks of Q channels
    counts = [math.ceil(min(C, d.out_c - g * C) / Q) for g in range(math.ceil(d.out_c / C))]

    broadcast = array_broadcast(config)
    extra = (MEMORY_REGISTER_STAGES * config.memory_registers + sparse_stages(config)
             + BLOCK_FIFO_EXTRA_LATENCY * (config.fifo_memory == "bram")
             + array_latency(R, broadcast, config.memory_registers) - array_latency(1, 1))

    depth = config.fifo_depth

    def round_trip(c):  # a group's first step to its credit's return
        return steps + c + _CREDIT_LATENCY + extra

    def per_group(c):  # steps, requantization, or credits (fifo_depth in flight)
        return max(steps, c, round_trip(c) / depth)

    last = counts[-1]
    codebook = (1 << d.w_bits) + 1 if d.w_bits <= config.codebook_bits else 0
    # (the requantizer's pipeline and the registered end of the drain, where configured,
    # lengthen only the drain)
    tail = (_CONV_TAIL + extra + last + codebook + config.memory_registers
            + requant_latency(config.memory_registers) - REQUANT_LATENCY)
    n = d.out_h * d.out_w * len(counts)
    if len(set(counts)) == 1 and round_trip(last) > depth * max(steps, last):
        # Bound by credits, every group alike: groups start in bursts of fifo_depth,
        # ``steps`` apart, each burst a round trip after the one before.
        return ((n - 1) // depth * round_trip(last) + (n - 1) % depth * steps + steps
                + tail)
    work = d.out_h * d.out_w * sum(per_group(c) for c in counts)
    return round(work - (per_group(last) - steps) + tail)


def _read_registers(config: AcceleratorConfig) -> int:
    """The accelerator's activation address and data registers, where configured."""
    return act_read_latency(config) - 1


def _maxpool_cycles(config: AcceleratorConfig, d) -> int:
    # (a window covers a word of ``rows`` channels; a row's first window reads 9 positions,
    # the others 6: their first column is their neighbour's last)
    return (d.out_h * math.ceil(d.out_c / config.rows) * (9 + 6 * (d.out_w - 1)) + _POOL_TAIL
            + _read_registers(config))


def avgpool_cycles(config: AcceleratorConfig, d) -> int:
    """A global sum: a channel a position a cycle with one-byte words; with words of ``rows``
    channels, a word a position a cycle, and after each word its sums leave one a cycle while
    the walker waits (and the next read's latency)."""
    if config.rows == 1:
        return d.in_h * d.in_w * d.in_c + _POOL_TAIL + _read_registers(config)
    # (each word: its positions, the read latency of its last, its channels' writes; and the
    # unit's start and done)
    words = math.ceil(d.in_c / config.rows)
    return words * (d.in_h * d.in_w + act_read_latency(config)) + d.in_c + 2


def _add_cycles(config: AcceleratorConfig, d) -> int:
    return d.out_h * d.out_w * d.out_c * 2 + _ADD_TAIL + _read_registers(config)


#: each operation's cycles (what the per-layer counter records) from its descriptor
CYCLES = {Op.CONV: _conv_cycles, Op.MAXPOOL: _maxpool_cycles, Op.AVGPOOL: avgpool_cycles,
          Op.ADD: _add_cycles}


def layer_cycles(config: AcceleratorConfig, d) -> int:
    """Cycles the per-layer counter records for descriptor ``d``."""
    if d.op not in CYCLES:
        raise ValueError(f"unknown opcode {d.op}")
    return CYCLES[d.op](config, d)


def utilization(config: AcceleratorConfig, program, cycles, total) -> dict:
    """Per-layer rows and the MAC array's utilization of ``program``, given each layer's
    ``cycles`` and the inference's ``total`` (from this model or from the RTL's counters):
    over the convolutions' cycles, over all cycles but the pools', and over all cycles."""
    layers = []
    conv_macs = conv_cycles = pool_cycles = 0
    for layer, d, c in zip(program.layers, program.descriptors, cycles, strict=True):
        row = {"name": layer["name"], "op": layer["op"], "cycles": c}
        if d.op == Op.CONV:
            row["macs"] = layer["macs"]
            row["utilization"] = layer["macs"] / (config.macs * c)
            conv_macs += layer["macs"]
            conv_cycles += c
        elif d.op in (Op.MAXPOOL, Op.AVGPOOL):
            pool_cycles += c
        layers.append(row)
    return {"layers": layers, "cycles_per_inference": total, "macs": conv_macs,
            "mac_utilization": conv_macs / (config.macs * conv_cycles) if conv_cycles else None,
            "mac_utilization_excluding_pooling":
                conv_macs / (config.macs * (total - pool_cycles)),
            "mac_utilization_whole": conv_macs / (config.macs * total)}


def estimate(config: AcceleratorConfig, program) -> dict:
    """Per-layer cycles, cycles per inference and MAC-array utilization of ``program``."""
    cycles = [layer_cycles(config, d) for d in program.descriptors]
    total = sum(cycles) + sequencer_cycles_per_layer(config) * len(cycles)
    return utilization(config, program, cycles, total)
