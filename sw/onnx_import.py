"""ONNX in: a graph of the engine's operations (:class:`~.graph.GraphConfig`) and its float
weights, from an ONNX model or straight from a PyTorch module.

What maps to what (everything else is refused, naming the node):

===================================== ===================================================
ONNX                                  fireforge
===================================== ===================================================
Conv (1x1/3x3, stride 1/2, symmetric  ``conv``; a following BatchNormalization is folded
padding, groups 1) + Relu             into its weights and bias
MaxPool 3x3/2 (ceil mode, or floor    ``maxpool``
where both give the same size)
Add of two equal-shape tensors        ``add`` (a Relu after it changes nothing: both
                                      operands are already ReLU outputs)
Concat on channels                    ``concat``
GlobalAveragePool, AveragePool over   ``avgpool``
the whole map, ReduceMean over H, W
Gemm / MatMul (+ bias Add) after the  a 1x1 ``conv`` without ReLU before the ``avgpool``:
global pool                           ``W mean(x) + b = mean(W x + b)``
Dropout, Identity                     removed
Flatten, Reshape, Softmax             only after the global pool (the scores are the
                                      output; Softmax does not change their order)
===================================== ===================================================

Subgraphs of constants (``Constant``, ``ConstantOfShape``, a transposed weight, ...) are folded
with the onnx package's reference evaluator before anything else.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hw.errors import FireforgeError
from ..hw.isa import SUPPORTED_KERNELS, SUPPORTED_STRIDES
from .graph import INPUT, GraphConfig, Layer, layer_name
from .model import conv_output_size, pool_output_size

__all__ = ["ImportedGraph", "ONNX_OPS", "import_onnx", "export_torch", "from_torch"]

#: ONNX op type -> the graph op it becomes (None: folded into another, or removed); each has
#: its ``_Importer.op_TYPE``, and every other op type is refused
ONNX_OPS: dict[str, str | None] = {
    "Conv": "conv", "BatchNormalization": None, "Relu": None, "MaxPool": "maxpool",
    "Add": "add", "Concat": "concat", "GlobalAveragePool": "avgpool", "AveragePool": "avgpool",
    "ReduceMean": "avgpool", "Gemm": "conv", "MatMul": "conv", "Dropout": None, "Identity": None,
    "Flatten": None, "Reshape": None, "Squeeze": None, "Softmax": None,
}


@dataclass
class ImportedGraph:
    config: GraphConfig
    #: ``layers.NAME.weight`` / ``.bias`` per convolution (float32)
    state: dict[str, torch.Tensor]
    #: what the import changed that a user should know (removed nodes, a dropped Softmax)
    notes: list[str]


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - a dependency of fireforge
        raise FireforgeError("the onnx package is missing: pip install onnx") from None
    return onnx


def _attrs(node) -> dict:
    onnx = _onnx()
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _describe(node) -> str:
    attrs = _attrs(node)
    shown = ", ".join(f"{k}={list(v) if isinstance(v, (list, tuple)) else v}"
                      for k, v in attrs.items() if not hasattr(v, "SerializeToString"))
    return f"node {node.name or node.output[0]!r} {node.op_type}" + (f" ({shown})" if shown
                                                                     else "")


class _Refused(FireforgeError):
    pass


def _refuse(node, why: str, instead: str) -> None:
    raise _Refused(f"{_describe(node)} is not supported: {why}; {instead}")


def _load(path: Path):
    onnx = _onnx()
    if not path.is_file():
        raise FireforgeError(f"ONNX model {path} does not exist (give the .onnx file)")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError, a truncated file, not ONNX at all
        raise FireforgeError(f"{path} is not a readable ONNX model (truncated or another "
                             f"format): {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                             ) from None
    if not model.graph.node:
        raise FireforgeError(f"{path} holds no graph nodes: not an ONNX model, or an empty one")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise FireforgeError(f"{path} fails the onnx checker: "
                             f"{str(e).strip().splitlines()[0]}") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:
        raise FireforgeError(f"{path}: onnx shape inference fails: "
                             f"{str(e).strip().splitlines()[0]}") from None
    return model


def _fold_constants(model) -> dict[str, np.ndarray]:
    """Every tensor computable without the input: initializers, then each node whose inputs
    are all constant, evaluated by the onnx package's reference evaluator."""
    onnx = _onnx()
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    opset = [o for o in model.opset_import]
    for node in model.graph.node:
        if node.op_type == "Constant" or (node.input and all(
                (not i) or i in consts for i in node.input)):
            g = helper.make_graph(
                [node], "fold", [], [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED,
                                                                   None) for o in node.output if o],
                [numpy_helper.from_array(consts[i], i) for i in node.input if i])
            try:
                values = ReferenceEvaluator(helper.make_model(g, opset_imports=opset)).run(None, {})
            except Exception as e:
                raise FireforgeError(f"{_describe(node)}: cannot fold this constant "
                                     f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                                     ) from None
            for name, value in zip([o for o in node.output if o], values, strict=True):
                consts[name] = np.asarray(value)
    return consts


def _shape_of(model, name: str) -> tuple[int, ...] | None:
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return tuple(d.dim_value if d.HasField("dim_value") else -1
                         for d in vi.type.tensor_type.shape.dim)
    return None


class _Importer:
    def __init__(self, model, path: Path):
        self.model = model
        self.path = path
        self.consts = _fold_constants(model)
        self.layers: list[dict] = []
        self.state: dict[str, torch.Tensor] = {}
        self.notes: list[str] = []
        #: ONNX tensor -> the fireforge tensor it is (a layer name or INPUT)
        self.alias: dict[str, str] = {}
        #: fireforge tensor -> (C, H, W)
        self.shapes: dict[str, tuple[int, int, int]] = {}
        #: convolutions whose output no Relu has followed yet: layer -> the ONNX node
        self.pre_relu: dict[str, object] = {}
        #: the global pool's layer, once seen; and the classifier folded after it
        self.pool: str | None = None
        self.scores: str | None = None  # the tensor holding the scores (after the pool)
        self.names: set[str] = {INPUT}
        self.classifier: str | None = None  # the dense layer, as a convolution

    # ----------------------------------------------------------------- helpers
    def tensor(self, node, name: str) -> str:
        if name in self.consts:
            _refuse(node, f"its input {name!r} is a constant tensor",
                    "fireforge runs constants only as convolution weights and biases")
        if name not in self.alias:
            raise FireforgeError(f"{_describe(node)} reads {name!r}, which no earlier node "
                                 f"writes (the graph is not in topological order)")
        t = self.alias[name]
        if t in self.pre_relu and node.op_type not in ("Relu", "BatchNormalization",
                                                       "GlobalAveragePool", "ReduceMean",
                                                       "AveragePool", "Dropout", "Identity"):
            conv = self.pre_relu[t]
            _refuse(node, f"it reads the output of Conv {conv.name or conv.output[0]!r}, which "
                          f"no Relu follows (fireforge's activations are unsigned 8-bit: only "
                          f"the classifier before the global pool may lack a Relu)",
                    "put a Relu after that convolution (for a residual block: before the Add)")
        if t == self.pool and node.op_type not in ("Flatten", "Reshape", "Gemm", "MatMul",
                                                   "Softmax", "Dropout", "Identity", "Squeeze"):
            _refuse(node, "it reads the global pool's output, where only the classifier (Gemm "
                          "or MatMul), Flatten, Reshape and Softmax may follow",
                    "end the network in the global pool and a dense layer")
        return t

    def new_layer(self, node, op: str, inputs: list[str], shape, hint: str | None = None,
                  **kw) -> str:
        name = layer_name(hint or node.name or node.output[0], self.names)
        self.names.add(name)
        self.layers.append(dict(name=name, op=op, inputs=tuple(inputs), **kw))
        self.shapes[name] = tuple(shape)
        self.alias[node.output[0]] = name
        return name

    def weight(self, node, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            _refuse(node, f"its {what} {name!r} is computed from the input",
                    "weights must be constants (initializers)")
        return self.consts[name].astype(np.float32)

    # ----------------------------------------------------------------- ops
    def op_Conv(self, node):
        a = _attrs(node)
        x = self.tensor(node, node.input[0])
        w = self.weight(node, node.input[1], "weight")
        b = (self.weight(node, node.input[2], "bias") if len(node.input) > 2 and node.input[2]
             else np.zeros(w.shape[0], np.float32))
        if w.ndim != 4:
            _refuse(node, f"its weight has {w.ndim} dimensions", "fireforge runs 2-D "
                    "convolutions")
        k = tuple(a.get("kernel_shape", w.shape[2:]))
        strides = tuple(a.get("strides", (1, 1)))
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
        group = a.get("group", 1)
        if group != 1:
            _refuse(node, f"it is a grouped convolution (group {group})",
                    "the engine runs groups=1; write it as a full convolution")
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            _refuse(node, "it is dilated", "the engine runs dilation 1")
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            _refuse(node, f"auto_pad {a['auto_pad']}", "give explicit symmetric pads")
        if k[0] != k[1] or k[0] not in SUPPORTED_KERNELS:
            alt = (f"; a {k[0]}x{k[1]} can be written as {(k[0] - 1) // 2} stacked 3x3"
                   if k[0] == k[1] and k[0] % 2 else "")
            _refuse(node, f"kernel {k[0]}x{k[1]}",
                    f"the engine runs {' and '.join(f'{s}x{s}' for s in SUPPORTED_KERNELS)}"
                    f"{alt}")
        if strides[0] != strides[1] or strides[0] not in SUPPORTED_STRIDES:
            _refuse(node, f"stride {list(strides)}", f"the engine runs stride "
                    f"{' or '.join(map(str, SUPPORTED_STRIDES))} in both directions")
        if len(set(pads)) != 1 or pads[0] > k[0] // 2:
            _refuse(node, f"padding {list(pads)} (top, left, bottom, right)",
                    f"the engine pads symmetrically, up to {k[0] // 2} pixel(s) for a "
                    f"{k[0]}x{k[0]} kernel")
        c, h, wd = self.shapes[x]
        if w.shape[1] != c:
            _refuse(node, f"its weight takes {w.shape[1]} channels but its input has {c}",
                    "the model is inconsistent")
        p, s = pads[0], strides[0]
        oh, ow = conv_output_size(h, k[0], s, p), conv_output_size(wd, k[0], s, p)
        hint = node.input[1].removesuffix(".weight") if node.input[1] in (
            t.name for t in self.model.graph.initializer) else None
        name = self.new_layer(node, "conv", [x], (w.shape[0], oh, ow), hint,
                              out_channels=int(w.shape[0]), kernel=k[0], stride=s, padding=p,
                              relu=False)
        self.state[f"layers.{name}.weight"] = torch.from_numpy(w.copy())
        self.state[f"layers.{name}.bias"] = torch.from_numpy(b.copy())
        self.pre_relu[name] = node

    def op_BatchNormalization(self, node):
        x = self.tensor(node, node.input[0])
        if x not in self.pre_relu:
            _refuse(node, "it does not follow a Conv directly",
                    "fireforge folds batch normalization into the convolution before it "
                    "(Conv, BatchNormalization, Relu)")
        gamma, beta, mean, var = (self.weight(node, i, "statistics") for i in node.input[1:5])
        eps = _attrs(node).get("epsilon", 1e-5)
        k = gamma / np.sqrt(var + eps)
        wkey, bkey = f"layers.{x}.weight", f"layers.{x}.bias"
        self.state[wkey] = self.state[wkey] * torch.from_numpy(k.astype(np.float32)).view(
            -1, 1, 1, 1)
        self.state[bkey] = torch.from_numpy(
            ((self.state[bkey].numpy() - mean) * k + beta).astype(np.float32))
        self.alias[node.output[0]] = x
        if len([o for o in node.output if o]) > 1:
            _refuse(node, "it is in training mode (running statistics as outputs)",
                    "export the model in eval mode")

    def op_Relu(self, node):
        x = self.tensor(node, node.input[0])
        if x in self.pre_relu:
            del self.pre_relu[x]
            next(layer for layer in self.layers if layer["name"] == x)["relu"] = True
        elif self.scores is not None and x == self.scores:
            _refuse(node, "a Relu on the class scores", "end the network in the scores")
        # elsewhere every value is already >= 0 (outputs of ReLU, max pools, adds of them)
        self.alias[node.output[0]] = x

    def op_MaxPool(self, node):
        a = _attrs(node)
        x = self.tensor(node, node.input[0])
        c, h, w = self.shapes[x]
        k, s = tuple(a.get("kernel_shape", ())), tuple(a.get("strides", (1, 1)))
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
        ceil = bool(a.get("ceil_mode", 0))
        floor_h, floor_w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
        same = (pool_output_size(h), pool_output_size(w)) == (floor_h, floor_w)
        if (k != (3, 3) or s != (2, 2) or set(pads) != {0}
                or tuple(a.get("dilations", (1, 1))) != (1, 1) or not (ceil or same)):
            _refuse(node, f"{k[0] if k else '?'}x{k[1] if len(k) > 1 else '?'} max pool, "
                    f"stride {list(s)}, pads {list(pads)}, ceil_mode {int(ceil)}",
                    "the engine max-pools 3x3 with stride 2, no padding, in ceil mode (floor "
                    "mode where the map's size makes both equal)")
        self.new_layer(node, "maxpool", [x], (c, pool_output_size(h), pool_output_size(w)))

    def _global_pool(self, node, x: str):
        if self.pool is not None:
            _refuse(node, "a second global pool", "end the network in one global pool")
        c = self.shapes[x][0]
        self.pool = self.new_layer(node, "avgpool", [x], (c, 1, 1))
        self.scores = self.pool

    def op_GlobalAveragePool(self, node):
        self._global_pool(node, self.tensor(node, node.input[0]))

    def op_AveragePool(self, node):
        a = _attrs(node)
        x = self.tensor(node, node.input[0])
        c, h, w = self.shapes[x]
        if tuple(a.get("kernel_shape", ())) != (h, w) or set(a.get("pads", (0,))) != {0}:
            _refuse(node, f"an average pool over {list(a.get('kernel_shape', ()))} of a "
                          f"{h}x{w} map", "the engine averages over the whole map only "
                    "(GlobalAveragePool), at the end of the network")
        self._global_pool(node, x)

    def op_ReduceMean(self, node):
        a = _attrs(node)
        x = self.tensor(node, node.input[0])
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = [int(v) for v in self.consts.get(node.input[1], [])]
        if sorted(int(v) % 4 for v in (axes or [])) != [2, 3]:
            _refuse(node, f"a mean over axes {axes}", "the engine averages over the map "
                    "(axes 2 and 3) only, at the end of the network")
        self._global_pool(node, x)

    def op_Concat(self, node):
        axis = _attrs(node).get("axis")
        xs = [self.tensor(node, i) for i in node.input]
        if axis not in (1, -3):
            _refuse(node, f"a concatenation on axis {axis}", "the engine concatenates "
                    "channels (axis 1)")
        sizes = {self.shapes[x][1:] for x in xs}
        if len(sizes) != 1:
            _refuse(node, f"it joins maps of sizes {sorted(sizes)}", "concatenated maps must "
                    "have one size")
        self.new_layer(node, "concat", xs,
                       (sum(self.shapes[x][0] for x in xs), *self.shapes[xs[0]][1:]))

    def op_Add(self, node):
        if self.scores is not None and any(i in self.consts for i in node.input):
            return self._classifier_bias(node)
        a, b = (self.tensor(node, i) for i in node.input)
        if self.shapes[a] != self.shapes[b]:
            _refuse(node, f"it adds tensors of shapes {self.shapes[a]} and {self.shapes[b]}",
                    "the engine adds two tensors of one shape (no broadcasting)")
        self.new_layer(node, "add", [a, b], self.shapes[a])

    def _classifier(self, node, w: np.ndarray, b: np.ndarray):
        """The dense layer after the global pool, as a 1x1 convolution before it."""
        if self.scores != self.pool:
            _refuse(node, "a dense layer that does not directly follow the global pool",
                    "fireforge lowers one dense layer after the global pool")
        pool = next(layer for layer in self.layers if layer["name"] == self.pool)
        src = pool["inputs"][0]
        if src in self.pre_relu:
            _refuse(node, "the convolution before the global pool has no Relu, and a dense "
                    "layer follows the pool", "put a Relu after that convolution")
        c, h, wd = self.shapes[src]
        if w.shape[1] != c:
            _refuse(node, f"its weight takes {w.shape[1]} features but the pool gives {c}",
                    "the model is inconsistent")
        name = layer_name(node.name or node.output[0], self.names)
        self.names.add(name)
        conv = dict(name=name, op="conv", inputs=(src,), out_channels=int(w.shape[0]),
                    kernel=1, stride=1, padding=0, relu=False)
        self.layers.insert(self.layers.index(pool), conv)
        self.shapes[name] = (w.shape[0], h, wd)
        pool["inputs"] = (name,)
        self.shapes[self.pool] = (w.shape[0], 1, 1)
        self.state[f"layers.{name}.weight"] = torch.from_numpy(
            np.ascontiguousarray(w.reshape(*w.shape, 1, 1)).astype(np.float32))
        self.state[f"layers.{name}.bias"] = torch.from_numpy(b.astype(np.float32))
        self.classifier = name
        self.alias[node.output[0]] = self.pool
        self.notes.append(f"{_describe(node).removeprefix('node ')} after the global pool runs "
                          f"as the 1x1 convolution {name} before it")

    def op_Gemm(self, node):
        a = _attrs(node)
        self.tensor(node, node.input[0])
        w = self.weight(node, node.input[1], "weight")
        if a.get("transA", 0):
            _refuse(node, "transA=1", "export the dense layer as x @ W.T")
        if not a.get("transB", 0):
            w = w.T
        alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
        b = (self.weight(node, node.input[2], "bias") * beta if len(node.input) > 2
             and node.input[2] else np.zeros(w.shape[0], np.float32))
        self._classifier(node, w * alpha, np.broadcast_to(b, (w.shape[0],)).copy())

    def op_MatMul(self, node):
        self.tensor(node, node.input[0])
        w = self.weight(node, node.input[1], "weight")
        if w.ndim != 2:
            _refuse(node, f"a {w.ndim}-D weight", "a dense layer has a 2-D weight")
        self._classifier(node, w.T, np.zeros(w.shape[1], np.float32))

    def _classifier_bias(self, node):
        const = next(i for i in node.input if i in self.consts)
        other = next(i for i in node.input if i != const)
        if self.alias.get(other) != self.pool or self.classifier is None:
            _refuse(node, "it adds a constant", "fireforge adds constants only as the dense "
                    "layer's bias")
        key = f"layers.{self.classifier}.bias"
        bias = np.broadcast_to(self.consts[const].astype(np.float32).ravel(),
                               self.state[key].shape)
        self.state[key] = self.state[key] + torch.from_numpy(bias.copy())
        self.alias[node.output[0]] = self.pool

    def _passthrough(self, node):
        self.alias[node.output[0]] = self.tensor(node, node.input[0])

    op_Identity = op_Dropout = _passthrough

    def _output_only(self, node):
        x = self.tensor(node, node.input[0])
        if x != self.pool:
            _refuse(node, "it reshapes a feature map", f"{node.op_type} is supported only on "
                    "the class scores, after the global pool")
        if node.op_type == "Softmax":
            self.notes.append(f"{_describe(node).removeprefix('node ')} dropped: the engine "
                              f"returns the scores, whose order Softmax keeps")
        self.alias[node.output[0]] = x

    op_Flatten = op_Reshape = op_Softmax = op_Squeeze = _output_only

    # ----------------------------------------------------------------- the graph
    def run(self) -> ImportedGraph:
        g = self.model.graph
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise FireforgeError(f"{self.path} has {len(inputs)} inputs "
                                 f"({', '.join(i.name for i in inputs)}); fireforge takes one "
                                 f"image input")
        shape = _shape_of(self.model, inputs[0].name)
        if shape is None or len(shape) != 4 or min(shape[1:]) < 1 or shape[2] != shape[3]:
            raise FireforgeError(f"{self.path}: input {inputs[0].name!r} has shape {shape}; "
                                 f"fireforge takes square images (N, C, H, W) with C, H, W "
                                 f"fixed (export with a fixed input size)")
        self.alias[inputs[0].name] = INPUT
        self.shapes[INPUT] = tuple(shape[1:])
        for node in g.node:
            if all(o in self.consts for o in node.output if o):
                continue  # a folded constant
            if node.op_type not in ONNX_OPS or node.domain not in ("", "ai.onnx"):
                _refuse(node, "this operation is not one the engine runs",
                        f"supported: {', '.join(ONNX_OPS)} (see docs/onnx.md)")
            getattr(self, f"op_{node.op_type}")(node)
        if self.pool is None:
            raise FireforgeError(f"{self.path}: the network has no global average pool; "
                                 f"fireforge networks end in one (then optionally a dense "
                                 f"layer)")
        outs = [o.name for o in g.output]
        if len(outs) != 1 or self.alias.get(outs[0]) != self.pool:
            raise FireforgeError(f"{self.path}: the output(s) {outs} are not the class scores "
                                 f"after the global pool (one output, the scores)")
        for name, node in self.pre_relu.items():
            if self.layers[-1]["inputs"] != (name,):
                _refuse(node, "no Relu follows it", "put a Relu after every convolution but "
                        "the classifier")
        config = GraphConfig(tuple(Layer(**layer) for layer in self.layers), shape[1],
                             shape[2], source=self.path.name)
        return ImportedGraph(config, self.state, self.notes)


def import_onnx(path: str | Path) -> ImportedGraph:
    """The graph and float weights of the ONNX model at ``path``; raises
    :class:`FireforgeError` naming the first node fireforge cannot run, before anything is
    written."""
    path = Path(path)
    return _Importer(_load(path), path).run()


def export_torch(module: torch.nn.Module, shape: tuple[int, int, int], path: str | Path) -> None:
    """Export ``module`` (eval mode, one ``(C, H, W)`` input) to ONNX at ``path`` with
    PyTorch's exporter."""
    import contextlib
    import io
    import logging
    import warnings

    was = module.training
    module.eval()
    # the exporter reports its progress and missing optional packages (torchvision) on stdout
    # and in log lines; fireforge reports the import itself
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(1, *shape),), str(path), dynamo=True,
                              external_data=False, verbose=False)
    except Exception as e:
        raise FireforgeError(f"torch.onnx.export of {type(module).__name__} fails: "
                             f"{str(e).strip().splitlines()[0] if str(e) else type(e).__name__}"
                             ) from None
    finally:
        logger.setLevel(level)
        module.train(was)


def from_torch(module: torch.nn.Module, shape: tuple[int, int, int]) -> ImportedGraph:
    """A PyTorch module of supported structure, through ONNX, as :func:`import_onnx` gives it:
    the same checks, the same refusals."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{type(module).__name__}.onnx"
        export_torch(module, shape, path)
        imported = import_onnx(path)
    imported.config = imported.config.replace(source=type(module).__name__)
    return imported

