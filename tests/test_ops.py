"""Every operation of the Program is implemented everywhere it must be (hw/ops.py lists where):
a new op that lacks one of its parts fails here, naming what is missing."""

import pytest
from fireforge.hw import perf
from fireforge.hw.isa import Op
from fireforge.hw.ops import OPS, UNITS
from fireforge.sw import compiler, golden, quant

#: aspect -> the table that implements it
TABLES = {
    "float reference (sw/quant.py FLOAT)": quant.FLOAT,
    "quantization (sw/quant.py QUANTIZE)": quant.QUANTIZE,
    "packing (sw/compiler.py PACK)": compiler.PACK,
    "golden execution (sw/golden.py EXECUTE)": golden.EXECUTE,
    "cycle model (hw/perf.py CYCLES)": perf.CYCLES,
    "gateware unit (hw/ops.py OPS)": OPS,
}


def missing(tables=TABLES) -> list[str]:
    return [f"{op.name}: {aspect}" for op in Op for aspect, table in tables.items()
            if op not in table or (table is not OPS and not callable(table[op]))]


def test_every_op_has_every_part():
    assert missing() == []
    assert all(spec.unit in UNITS for spec in OPS.values())


def test_a_missing_part_is_named():
    """The check itself can fail: an op dropped from one table is reported."""
    tables = dict(TABLES)
    tables["golden execution (sw/golden.py EXECUTE)"] = {
        op: fn for op, fn in golden.EXECUTE.items() if op is not Op.ADD}
    assert missing(tables) == ["ADD: golden execution (sw/golden.py EXECUTE)"]


@pytest.mark.parametrize("op", list(Op))
def test_each_op_runs_on_a_unit_the_accelerator_builds(op):
    from fireforge.hw.config import CONFIGS

    spec = OPS[op]
    have = [name for name, cfg in CONFIGS.items()
            if spec.feature is None or getattr(cfg, spec.feature)]
    assert have, f"no named configuration runs {op.name}"


def test_every_graph_op_lowers_to_an_engine_op_and_is_imported():
    """A graph op (sw/graph.py OPS) lowers to an op every table above implements (or to none:
    a concatenation), and some ONNX op type becomes it; each ONNX op type the importer
    accepts has its handler."""
    from fireforge.sw.graph import OPS as GRAPH_OPS
    from fireforge.sw.onnx_import import ONNX_OPS, _Importer

    assert all(op is None or op in OPS for op in GRAPH_OPS.values())
    assert set(GRAPH_OPS) <= set(ONNX_OPS.values())
    assert set(ONNX_OPS.values()) - {None} <= set(GRAPH_OPS)
    assert [t for t in ONNX_OPS if not callable(getattr(_Importer, f"op_{t}", None))] == []
