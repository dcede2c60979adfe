"""cocotb testbench: the generated Verilog of the accelerator against the golden model.

The job (program directory, images, options) comes from the JSON file named by
``FIREFORGE_JOB``; the result goes to the JSON file it names. For every image the testbench
writes the input into activation memory by back door, starts the program and lets the design
run freely until it pauses or finishes (Python touches no cycle in between). With
``check_layers`` the sequencer pauses after every layer, and the layer's output is read back by
back door and compared with the golden model, integer for integer, before the next layer can
overwrite anything.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge
from fireforge.hw.isa import Op
from fireforge.hw.program import load_program
from fireforge.sim.processes import die_with_parent
from fireforge.sw.golden import first_mismatch, read_tensor, run_golden

CLOCK_NS = 10


def _mem(handle) -> np.ndarray:
    """A Verilog memory as integers indexed by address (unknown bits read as 0). Iterating a
    cocotb Array goes left to right, which is address order reversed for ``[N-1:0]``."""
    value = handle.value
    out = np.zeros(len(value), dtype=object)
    out[list(value.range)] = [int(v) if v.is_resolvable else 0 for v in value]
    return out


def _act_banks(dut) -> list:
    """The activation memory's handles: the memory, or its banks in address order (banked
    with ``memory_registers``, ``act_mem_bank0``.. of equal depth but the last)."""
    try:
        return [dut.act_mem]
    except AttributeError:
        pass
    banks = []
    while True:
        try:
            banks.append(getattr(dut, f"act_mem_bank{len(banks)}"))
        except AttributeError:
            if not banks:
                raise
            return banks


def _bytes(words: np.ndarray, lanes: int) -> np.ndarray:
    """The activation memory's bytes from its words of ``lanes`` bytes (little-endian)."""
    if lanes == 1:
        return words.astype(np.int64)
    return np.frombuffer(b"".join(int(w).to_bytes(lanes, "little") for w in words),
                         np.uint8).astype(np.int64)


def _tensor(mem: np.ndarray, addr, stride, offset, c, h, w) -> np.ndarray:
    """(C, H, W) view of activation memory, addressed exactly as the golden model does."""
    return read_tensor(mem[None], addr, stride, offset, c, h, w)[0].transpose(2, 0, 1)


@cocotb.test()
async def run_program(dut):
    die_with_parent()  # (the simulator stops with the command that started it)
    job = json.loads(open(os.environ["FIREFORGE_JOB"]).read())
    program = load_program(job["program"])
    images = np.load(job["images"])
    check_layers = job["check_layers"]
    golden = run_golden(program, images, keep_layers=check_layers)
    descriptors = program.descriptors
    layers = program.layers

    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.start.value = 0
    dut.step.value = 1 if check_layers else 0
    dut.host_we.value = 0
    dut.mem_we.value = 0
    dut.commit.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    banks = _act_banks(dut)
    bank_words = len(banks[0].value)
    results = []
    sim_seconds = 0.0
    for n, image in enumerate(images):
        lanes = program.lanes
        input_addr, raw = program.input_bytes(image)
        for i in range(0, len(raw), lanes):
            word = (input_addr + i) // lanes
            banks[word // bank_words][word % bank_words].value = int.from_bytes(
                raw[i:i + lanes], "little")
        await RisingEdge(dut.clk)
        record = {"image": n, "bit_exact": True, "first_mismatch": None}
        t0 = time.perf_counter()
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        for index, (layer, d) in enumerate(zip(layers, descriptors, strict=True)):
            if not check_layers and index < len(layers) - 1:
                continue
            await First(RisingEdge(dut.paused), RisingEdge(dut.done))
            if check_layers and d.op != Op.AVGPOOL:
                t1 = time.perf_counter()
                sim_seconds += t1 - t0
                mem = _bytes(np.concatenate([_mem(b) for b in banks]), program.lanes)
                got = _tensor(mem, d.out_addr, d.out_stride, d.out_offset, d.out_c, d.out_h,
                              d.out_w)
                want = golden.layers[layer["name"]][n]
                if not np.array_equal(got, want) and record["bit_exact"]:
                    record["bit_exact"] = False
                    record["first_mismatch"] = {"layer": layer["name"], "index": index,
                                                **first_mismatch(got, want)}
                t0 = time.perf_counter()
            if index < len(layers) - 1:
                await RisingEdge(dut.clk)
                dut.start.value = 1
                await RisingEdge(dut.clk)
                dut.start.value = 0
        await RisingEdge(dut.clk)
        sim_seconds += time.perf_counter() - t0
        sums = _mem(dut.res_mem)[:program.num_classes].astype(np.int64)
        sums = np.where(sums >= 1 << 31, sums - (1 << 32), sums)
        want = golden.sums[n]
        if not np.array_equal(sums, want) and record["bit_exact"]:
            record["bit_exact"] = False
            record["first_mismatch"] = {"layer": layers[-1]["name"], "index": len(layers) - 1,
                                        **first_mismatch(sums, want)}
        cycles = _mem(dut.cnt_mem)[:len(layers)].astype(np.int64)
        record.update(sums=sums.tolist(), prediction=int(np.argmax(sums)),
                      golden_prediction=int(np.argmax(want)),
                      layer_cycles=cycles.tolist(), total_cycles=int(dut.total_cycles.value))
        results.append(record)
        dut._log.info("image %d: %s, %d cycles", n,
                      "bit-exact" if record["bit_exact"] else "MISMATCH",
                      record["total_cycles"])
    with open(job["result"], "w") as f:
        json.dump({"images": results, "sim_seconds": sim_seconds}, f)
    assert all(r["bit_exact"] for r in results), [r["first_mismatch"] for r in results
                                                  if not r["bit_exact"]][0]
