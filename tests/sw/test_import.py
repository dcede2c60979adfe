"""Bring your own network: ONNX graphs and PyTorch modules in, the general graph through the
compiler and golden model, channel padding, and one-line refusals of what the engine cannot
run."""

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from fireforge.hw.config import CONFIGS
from fireforge.hw.errors import FireforgeError
from fireforge.hw.program import load_program
from fireforge.sw.checkpoint import Checkpoint
from fireforge.sw.compiler import compile_checkpoint
from fireforge.sw.golden import run_golden
from fireforge.sw.graph import GraphConfig, GraphNet, Layer
from fireforge.sw.model import FireSpec, SqueezeNetConfig, create_model, list_models, preset_config
from fireforge.sw.onnx_import import from_torch, import_onnx
from fireforge.sw.quant import lower
from fireforge.sw.summary import summarize
from fireforge.sw.zoo import ResNet8
from onnx import TensorProto, helper, numpy_helper

from ..helpers import GRAPH, random_checkpoint, randomize_weights

LIGHT_SQUEEZENET = (Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
                    / "light_squeezenet.onnx")

def _golden(model, x, out, lanes=1, group=8, shared=None):
    classes = tuple(str(i) for i in range(model.config.num_classes))
    c = model.config.in_channels
    ckpt = Checkpoint(model.eval(), None, "random", classes, [0.4] * c, [0.25] * c, {}, shared)
    manifest = compile_checkpoint(ckpt, x, out, group=group, shared=shared, lanes=lanes)
    return manifest, run_golden(load_program(out), x, keep_layers=True)


def _structure(model):
    nodes, _ = lower(model)
    return [(n.op, n.out_shape, n.out_offset, n.kernel, n.stride, n.pad, n.relu) for n in nodes]


def test_light_squeezenet_is_squeezenet1_1_and_compiles(tmp_path):
    imported = import_onnx(LIGHT_SQUEEZENET)
    config = imported.config
    assert (config.in_channels, config.input_size, config.num_classes) == (3, 224, 1000)
    mine, preset = summarize(config), summarize(preset_config("squeezenet1_1"))
    assert (mine.params, mine.macs) == (preset.params, preset.macs) == (1_235_496, 349_151_936)
    with torch.device("meta"):
        assert _structure(GraphNet(config)) == _structure(create_model("squeezenet1_1"))
    assert any("Softmax dropped" in note for note in imported.notes)
    # it does not fit the 85F's block RAM: the fit report says by how much, before calibrating
    model = GraphNet(config)
    model.load_state_dict(imported.state)
    ckpt = Checkpoint(model.eval(), None, "photos", tuple(map(str, range(1000))), [0.45] * 3,
                      [0.25] * 3, {})
    from fireforge.boards.boards import board_spec
    from fireforge.sw.commands.compile import budget_for

    with pytest.raises(FireforgeError, match=r"ulx3s-85f \(LFE5U-85F\) has 425,984 B \(short "):
        compile_checkpoint(ckpt, lambda: pytest.fail("calibrated"), tmp_path / "p85",
                           budget_for("ulx3s-85f", None),
                           lanes=CONFIGS[board_spec("ulx3s-85f").default_config].rows)
    assert not (tmp_path / "p85").exists()
    # the golden model runs it on photos, every class score as the float network ranks it
    from PIL import Image
    from skimage import data as photos

    x = np.stack([np.asarray(Image.fromarray(photo()).resize((224, 224))).transpose(2, 0, 1)
                  for photo in (photos.astronaut, photos.coffee)])
    _, golden = _golden(model, x, tmp_path / "p")
    with torch.no_grad():
        ref = model((torch.from_numpy(x).float() / 255 - 0.45) / 0.25).numpy()
    assert golden.sums.shape == (2, 1000)
    assert (golden.predictions == ref.argmax(1)).all()


def _export_import(model, shape):
    imported = from_torch(model, shape)
    net = GraphNet(imported.config)
    net.load_state_dict(imported.state)
    return net


#: the array each preset is compiled for (its lanes and column group)
ARRAY = {"squeezenet_tiny": "up5k", "squeezenet1_1_cifar_w50": "ecp5"}


@pytest.mark.parametrize("preset,config", [(name, ARRAY.get(name, "small"))
                                           for name in list_models()])
def test_an_exported_preset_gives_the_presets_golden_integers(tmp_path, preset, config):
    """torch.onnx.export, import, compile: every layer's integers and the sums equal the
    preset compiled directly (the array's lanes and group of ``config``). A preset the engine
    cannot run (squeezenet1_0's 7x7 stem) is refused by the import as by the compiler."""
    from fireforge.sw.quant import unsupported

    accel = CONFIGS[config]
    model = randomize_weights(create_model(preset, bypass="simple"), 3)
    c, s = model.config.in_channels, model.config.input_size
    if unsupported(model.config):
        with pytest.raises(FireforgeError, match="Conv .* is not supported: kernel 7x7"):
            _export_import(model, (c, s, s))
        return
    x = np.random.default_rng(0).integers(0, 256, (2, c, s, s), dtype=np.uint8)
    net = _export_import(model, (c, s, s))
    _, want = _golden(model, x, tmp_path / "a", accel.rows, accel.columns)
    _, got = _golden(net, x, tmp_path / "b", accel.rows, accel.columns)
    assert np.array_equal(got.sums, want.sums)
    assert len(got.layers) == len(want.layers)
    for (name, a), b in zip(got.layers.items(), want.layers.values(), strict=True):
        assert np.array_equal(a, b), name
    assert (got.scale, got.offset) == (want.scale, want.offset)


def test_resnet8_imports_with_its_shortcuts_and_dense_layer():
    model = randomize_weights(ResNet8(in_channels=1, num_classes=10), 1)
    with torch.no_grad():  # batch norm with real statistics, folded by the import
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    imported = from_torch(model, (1, 32, 32))
    ops = [x.op for x in imported.config.layers]
    assert ops.count("add") == 3 and ops[-1] == "avgpool"
    convs = [x for x in imported.config.layers if x.op == "conv"]
    assert [(x.kernel, x.stride) for x in convs if x.kernel == 1 and x.relu] == [(1, 2)] * 2
    assert not convs[-1].relu and convs[-1].out_channels == 10
    assert any("runs as the 1x1 convolution" in note for note in imported.notes)
    net = GraphNet(imported.config)
    net.load_state_dict(imported.state)
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), model.eval()(x), atol=1e-4)
    # every conv gains the bias its batch norm folds into; the norms' own parameters go
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert summarize(imported.config).params == sum(p.numel() for p in model.parameters()) - sum(
        m.weight.numel() for m in norms)


def test_the_general_graph_runs_the_float_network(tmp_path):
    """Golden integers of a graph with every op track the float network they were quantized
    from; the padded compile (4 lanes) gives the same integers in every real channel."""
    model = randomize_weights(GraphNet(GRAPH), 5)
    x = np.random.default_rng(1).integers(0, 256, (8, 3, 15, 15), dtype=np.uint8)
    m1, one = _golden(model, x, tmp_path / "one", lanes=1, group=4)
    m4, four = _golden(model, x, tmp_path / "four", lanes=4, group=4)
    assert m1.padding is None
    assert m4.padding["zero_channels"] == 2  # 'down' writes 6 channels, 8 stored
    assert np.array_equal(one.sums, four.sums)
    assert np.array_equal(four.layers["layers.cls"], one.layers["layers.cls"])
    with torch.no_grad():
        ref = model((torch.from_numpy(x).float() / 255 - 0.4) / 0.25).numpy()
    err = np.abs(one.logits - ref).mean() / np.abs(ref).mean()
    assert err < 0.1, err


def test_a_fire_module_off_the_lanes_is_padded_not_refused(tmp_path):
    """expand1x1 4 and expand3x3 12 on the 8-lane ECP5 array: each expand1x1 output gets four
    zero channels (so do the max pool's output and the next squeeze's input), the next squeeze
    zero weights for them; the integers are those of the 1-lane array, and the report counts
    the cost (20 stored channels are three lane words where 16 are two)."""
    from dataclasses import replace

    from fireforge.sw.checkpoint import save_checkpoint
    from fireforge.sw.commands.compile import compile_program

    config = SqueezeNetConfig(stem_channels=8, stem_kernel=3, stem_stride=2, stem_padding=1,
                              fires=(FireSpec(4, 4, 12), FireSpec(6, 4, 12)), pool_after=(1,),
                              num_classes=10, in_channels=1, input_size=16)
    save_checkpoint(replace(random_checkpoint(config, 2, None), data="digits"), tmp_path / "f")
    a = compile_program(tmp_path / "f", tmp_path / "a", config="small", calibration=64)
    b = compile_program(tmp_path / "f", tmp_path / "b", config="ecp5", calibration=64)
    assert CONFIGS["small"].columns == CONFIGS["ecp5"].columns and CONFIGS["ecp5"].rows == 8
    assert a.padding is None and b.padding["zero_channels"] == 3 * 4
    assert b.padding["bytes"]["total"] > 0 and b.padding["cycles"] > 0
    x = np.random.default_rng(2).integers(0, 256, (3, 1, 16, 16), dtype=np.uint8)
    want = run_golden(load_program(tmp_path / "a"), x)
    got = run_golden(load_program(tmp_path / "b"), x)
    assert np.array_equal(got.sums, want.sums)


def _onnx_model(nodes, inits, path, in_shape=(1, 3, 8, 8)):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "c", 1, 1])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _conv(name, x, out, k, c_in=3, c_out=4, **attrs):
    w = np.ones((c_out, c_in // attrs.get("group", 1), k, k), np.float32)
    return helper.make_node("Conv", [x, f"{name}.w"], [out], name=name, **attrs), {f"{name}.w": w}


def _refusal(kind):
    """(nodes, initializers) of a small graph with one unsupported part."""
    tail = [helper.make_node("GlobalAveragePool", ["r"], ["y"], name="gap")]
    relu = helper.make_node("Relu", ["c"], ["r"], name="relu")
    if kind == "5x5":
        conv, w = _conv("conv7", "x", "c", 5, pads=[2, 2, 2, 2])
        return [conv, relu, *tail], w
    if kind == "grouped":
        conv, w = _conv("dw", "x", "c", 3, c_out=3, group=3, pads=[1, 1, 1, 1])
        return [conv, relu, *tail], w
    if kind == "asymmetric":
        conv, w = _conv("lopsided", "x", "c", 3, pads=[0, 0, 1, 1])
        return [conv, relu, *tail], w
    conv, w = _conv("conv", "x", "c", 3, pads=[1, 1, 1, 1])
    if kind == "sigmoid":
        return [conv, helper.make_node("Sigmoid", ["c"], ["r"], name="gate"), *tail], w
    # mul
    return [conv, relu, helper.make_node("Mul", ["r", "s"], ["m"], name="scale"),
            helper.make_node("GlobalAveragePool", ["m"], ["y"], name="gap")], {
        **w, "s": np.full((1, 4, 1, 1), 0.5)}


@pytest.mark.parametrize("kind,message", [
    ("5x5", "node 'conv7' Conv (pads=[2, 2, 2, 2]) is not supported: kernel 5x5; the engine "
            "runs 1x1 and 3x3; a 5x5 can be written as 2 stacked 3x3"),
    ("sigmoid", "node 'gate' Sigmoid is not supported: this operation is not one the engine "
                "runs; supported: Conv, BatchNormalization, Relu, MaxPool"),
    ("grouped", "node 'dw' Conv (.*group=3.*) is not supported: it is a grouped convolution "
                "(group 3); the engine runs groups=1"),
    ("asymmetric", "node 'lopsided' Conv (.*) is not supported: padding [0, 0, 1, 1] "
                   "(top, left, bottom, right); the engine pads symmetrically"),
    ("mul", "node 'scale' Mul is not supported: this operation is not one the engine runs"),
])
def test_unsupported_nodes_are_refused_by_name_and_nothing_is_written(tmp_path, kind, message):
    from fireforge.sw.commands.imports import import_model

    nodes, inits = _refusal(kind)
    path = _onnx_model(nodes, inits, tmp_path / f"{kind}.onnx")
    with pytest.raises(FireforgeError) as info:
        import_model(path, tmp_path / "out", data="digits")
    text = str(info.value)
    assert "\n" not in text
    assert re.search(re.escape(message).replace(r"\.\*", ".*"), text), text
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}.onnx"]


def test_a_truncated_or_foreign_file_is_refused_in_one_line(tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(LIGHT_SQUEEZENET.read_bytes()[:5000])
    with pytest.raises(FireforgeError, match=r"cut.onnx is not a readable ONNX model \("
                                             r"truncated or another format\)"):
        import_onnx(cut)
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(FireforgeError, match="notes.onnx (is not a readable|holds no graph)"):
        import_onnx(text)
    with pytest.raises(FireforgeError, match="does not exist"):
        import_onnx(tmp_path / "missing.onnx")


def test_a_conv_without_relu_feeding_an_add_is_refused():
    class NoRelu(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(2, 4, 3, padding=1)
            self.b = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = torch.relu(self.a(x))
            return torch.nn.functional.adaptive_avg_pool2d(self.b(y) + y, 1).flatten(1)

    with pytest.raises(FireforgeError, match=r"Add is not supported: it reads the output of "
                                             r"Conv .* which no Relu follows"):
        from_torch(NoRelu(), (2, 8, 8))


@pytest.mark.parametrize("layers,message", [
    ((Layer("a", "conv", ("input",), 4), Layer("a", "avgpool", ("a",))), "unique"),
    ((Layer("a", "conv", ("nothing",), 4), Layer("g", "avgpool", ("a",))), "reads"),
    ((Layer("a", "conv", ("input",), 4), Layer("b", "conv", ("input",), 5),
      Layer("s", "add", ("a", "b")), Layer("g", "avgpool", ("s",))), "equal shapes"),
    ((Layer("a", "conv", ("input",), 4, relu=False), Layer("b", "conv", ("a",), 5),
      Layer("g", "avgpool", ("b",))), "has no ReLU"),
    ((Layer("a", "conv", ("input",), 4),), "ends in its global average pool"),
    ((Layer("a", "conv", ("input",), 4, kernel=9), Layer("g", "avgpool", ("a",))),
     "does not fit"),
])
def test_graph_configs_are_checked_when_made(layers, message):
    with pytest.raises(FireforgeError, match=message):
        GraphConfig(layers, 3, 8)


def test_a_graph_config_round_trips_and_builds():
    again = GraphConfig.from_dict(GRAPH.to_dict())
    assert again == GRAPH and again.num_classes == 5
    assert GraphNet(again)(torch.zeros(2, 3, 15, 15)).shape == (2, 5)
    with pytest.raises(FireforgeError, match="unknown keys"):
        GraphConfig.from_dict({**GRAPH.to_dict(), "fires": []})


def test_compress_and_compile_take_an_imported_checkpoint(tmp_path):
    """import_module writes a checkpoint the rest of the flow reads: compress shares its
    weights by role, compile reports the padding for the ECP5 array."""
    from fireforge.sw.commands.compile import compile_program
    from fireforge.sw.commands.compress import compress
    from fireforge.sw.commands.imports import import_module

    config = GraphConfig((*GRAPH.layers[:-2], Layer("cls", "conv", ("res2",), 10, relu=False),
                          Layer("gap", "avgpool", ("cls",))), in_channels=1, input_size=16)
    model = randomize_weights(GraphNet(config), 4)
    result = import_module(model, tmp_path / "f", data="digits", channels=1, size=16)
    assert result.layers == len(config.layers) and result.test_accuracy is not None
    assert result.unsupported is None
    c = compress(tmp_path / "f", 0.5, 4, tmp_path / "c")
    assert c.accuracy_after is not None
    p = compile_program(tmp_path / "c", tmp_path / "p", config="ecp5", calibration=64)
    # 6 or 8 output channels are one column group of the 8x8 array, 14 or 16 input channels
    # two lane words: here the padding is free
    assert p.padding["zero_channels"] == 2
    assert p.padding["cycles"] == 0 and p.padding["bytes"] == {}


def test_no_accuracy_is_claimed_where_the_data_has_other_classes(tmp_path):
    """A 5-class graph on the 10 digits: golden compares with the float network but reports
    no accuracy (the labels are not the model's classes)."""
    from fireforge.sw.commands.compile import compile_program
    from fireforge.sw.commands.golden import golden
    from fireforge.sw.commands.imports import import_module

    config = GRAPH.replace(in_channels=1)
    result = import_module(randomize_weights(GraphNet(config), 6), tmp_path / "f", data="digits",
                           channels=1, size=15)
    assert result.test_accuracy is None
    compile_program(tmp_path / "f", tmp_path / "p", config="small", calibration=32)
    lines = []
    report = golden(tmp_path / "p", count=20, log=lines.append)
    assert report.accuracy is None and report.float_accuracy is None
    assert report.top1_agreement > 0.5
    assert "no accuracy (digits has 10 classes, the model 5)" in lines[0]
