"""The command line itself: arguments reach the command library, ``--json`` prints the result's
dict alone on stdout, and bad input is one line on stderr with exit status 1."""

import ast
import json
import shutil
from pathlib import Path

from fireforge.sw.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fireforge.sw.cli import main
from fireforge.sw.model import create_model

ROOT = Path(__file__).resolve().parents[2]


def test_cli_model_json(capsys):
    assert main(["model", "--preset", "squeezenet1_1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 1_235_496
    assert round(out["macs"] / 1e6, 1) == 349.2
    assert out["layers"][0]["name"] == "features.0"
    assert set(out["weight_bytes"]) == {"8", "6", "4"}


def test_cli_errors_are_one_line(capsys):
    assert main(["model", "--preset", "alexnet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown preset 'alexnet'" in err[0]
    assert main(["train", "--preset", "squeezenet_tiny", "--data", "/nonexistent", "--epochs",
                 "1", "--out", "x"]) == 1
    assert "neither a built-in name" in capsys.readouterr().err


def test_cli_train_writes_checkpoint(tmp_path, capsys):
    out = tmp_path / "ck"
    assert main(["train", "--preset", "squeezenet_tiny", "--data", "digits", "--epochs", "1",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert result["test_accuracy"] == metrics["test_accuracy"]
    assert {"test_accuracy", "epochs", "seconds"} <= set(metrics)
    ck = load_checkpoint(out)
    assert ck.config.in_channels == 1 and ck.preset == "squeezenet_tiny" and ck.data == "digits"


def test_full_squeezenet_on_icebreaker_is_refused_before_calibration(tmp_path, capsys):
    """squeezenet1_1 at 224x224 for the icebreaker: refused from the shapes (no calibration,
    which at 224x224 takes minutes and gigabytes), one line, nothing written."""
    model = create_model("squeezenet1_1")
    save_checkpoint(Checkpoint(model, "squeezenet1_1", "digits", tuple(
        str(i) for i in range(1000)), [0.4] * 3, [0.3] * 3), tmp_path / "ck")
    assert main(["compile", "--checkpoint", str(tmp_path / "ck"), "--board", "icebreaker",
                 "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "icebreaker (iCE40UP5K) has 146,432 B (short by" in err[0]
    assert err[0].endswith("nothing written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert main(["compile", "--checkpoint", str(tmp_path / "ck"), "--board", "ulx3s-85f",
                 "--out", str(tmp_path / "p")]) == 1
    assert "would fit: preset squeezenet1_1_cifar_w50 (32x32 input) at 4 bits" in \
        capsys.readouterr().err


def test_compile_for_a_board_takes_its_configuration(tmp_path, quick_tiny_program, capsys):
    ckpt = quick_tiny_program.parent / "c"  # compressed to 4 bits
    assert main(["compile", "--checkpoint", str(ckpt), "--board", "icebreaker", "--config",
                 "ecp5", "--out", str(tmp_path / "p")]) == 1
    assert capsys.readouterr().err.strip() == (
        "fireforge compile: error: --config ecp5 does not suit icebreaker (iCE40UP5K): "
        "compile with --config up5k")
    # the board's own configuration (up5k) has no codebook decoder: refused before calibration
    assert main(["compile", "--checkpoint", str(ckpt), "--board", "icebreaker", "--out",
                 str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the up5k configuration cannot run this network" in err[0]
    assert "no codebook decoder" in err[0] and not (tmp_path / "p").exists()


def test_build_names_the_configuration_a_board_needs(quick_tiny_program, capsys):
    assert main(["build", "--board", "icebreaker", "--program", str(quick_tiny_program),
                 "--fit-only"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was compiled for --config small" in err[0]
    assert "icebreaker runs programs compiled with --config up5k" in err[0]


def test_presets_the_accelerator_cannot_run_are_refused_and_documented(tmp_path, capsys):
    assert main(["train", "--preset", "squeezenet1_0", "--data", "digits", "--out",
                 str(tmp_path / "t")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "7, 7" in err[0] and not (tmp_path / "t").exists()
    assert main(["model", "--preset", "squeezenet1_0", "--json"]) == 0
    assert "kernel (7, 7)" in json.loads(capsys.readouterr().out)["unsupported"]
    # the README's preset table says which presets run nowhere
    from fireforge.sw.model import list_models, preset_config
    from fireforge.sw.quant import unsupported

    rows = {line.split("|")[1].strip(" `"): line.split("|")[-2].strip()
            for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| `squeezenet")}
    assert set(rows) == set(list_models())
    for name in list_models():
        assert rows[name].startswith("no:") == (unsupported(preset_config(name)) is not None), name


def test_unreadable_weights_are_one_line_without_unpickling_advice(tmp_path,
                                                                   quick_tiny_program, capsys):
    import numpy as np
    import torch

    torch.save({"features.0.weight": np.zeros(3)}, tmp_path / "numpy.pt")
    (tmp_path / "net.onnx").write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(64))
    for path in (tmp_path / "numpy.pt", tmp_path / "net.onnx"):
        assert main(["model", "--preset", "squeezenet1_1", "--weights", str(path)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "weights_only" not in err[0] and "\x1b" not in err[0], err
        assert str(path) in err[0]
    # a checkpoint whose model.pt holds numpy arrays
    ck = tmp_path / "ck"
    shutil.copytree(quick_tiny_program.parent / "f", ck)
    shutil.copy(tmp_path / "numpy.pt", ck / "model.pt")
    assert main(["compile", "--checkpoint", str(ck), "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds objects other than tensors" in err[0]
    # a program whose float checkpoint was cut short
    prog = tmp_path / "prog"
    shutil.copytree(quick_tiny_program, prog)
    raw = (prog / "float" / "model.pt").read_bytes()
    (prog / "float" / "model.pt").write_bytes(raw[:len(raw) // 2])
    assert main(["golden", "--program", str(prog), "--count", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"the program {prog} is corrupt: compile it again" in err[0], err


def test_boards_json_lists_every_board(capsys):
    assert main(["boards", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["boards"]
    assert [r["board"] for r in rows][:2] == ["icebreaker", "upduino_v3"]
    assert rows[0]["default_config"] == "up5k"


def test_sim_errors_are_one_line(tmp_path, quick_tiny_program, capsys):
    assert main(["sim", "--program", str(tmp_path), "--images", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a compiled program" in err[0]
    assert main(["sim", "--program", str(quick_tiny_program), "--config", "ecp5"]) == 1
    err = capsys.readouterr().err
    assert "compiled for 1 input lane(s), the array has 8 rows" in err


def test_compress_refusal_is_one_line(tmp_path, capsys):
    assert main(["compress", "--checkpoint", str(tmp_path), "--density", "1.5", "--bits", "4",
                 "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fireforge compress: error: --density must be in (0, 1], not 1.5"]


def test_a_bad_explore_space_starts_nothing_and_writes_nothing(tmp_path, capsys):
    space = tmp_path / "s.toml"
    space.write_text('[sweep]\npreset = "squeezenet_tiny"\ndata = "digits"\n'
                     '[network]\nsr = []\n[hardware]\nboards = ["icebreaker"]\n')
    out = tmp_path / "sweep"
    assert main(["explore", str(space), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fireforge explore: error:") and "empty range" in err
    assert "\n" not in err and not out.exists()
    space.write_text("[sweep\n")
    assert main(["explore", str(space), "--out", str(out)]) == 1
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["explore", str(tmp_path / "none.toml"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err and not out.exists()


def test_import_writes_a_checkpoint_and_refuses_in_one_line(tmp_path, capsys):
    from fireforge.sw.graph import GraphNet
    from fireforge.sw.onnx_import import export_torch

    from ..helpers import GRAPH

    config = GRAPH.replace(in_channels=1)
    export_torch(GraphNet(config), (1, 15, 15), tmp_path / "g.onnx")
    assert main(["import", str(tmp_path / "g.onnx"), "--out", str(tmp_path / "ck"), "--data",
                 "digits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["layers"] == len(config.layers) and out["input"] == [1, 15, 15]
    assert out["num_classes"] == 5 and out["unsupported"] is None
    assert out["test_accuracy"] is None  # digits has 10 classes, the graph 5
    def ops(c):
        return [(x.op, x.out_channels, x.kernel, x.stride, x.padding, x.relu) for x in c.layers]

    assert ops(load_checkpoint(tmp_path / "ck").config) == ops(config)
    (tmp_path / "bad.onnx").write_bytes((tmp_path / "g.onnx").read_bytes()[:300])
    assert main(["import", str(tmp_path / "bad.onnx"), "--out", str(tmp_path / "ck2"),
                 "--data", "digits"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.onnx is not a readable ONNX model" in err[0]
    assert not (tmp_path / "ck2").exists()


def test_infer_takes_its_baud_from_the_board(tmp_path, capsys, quick_tiny_program):
    assert main(["infer", "--port", "socket://127.0.0.1:1", "--board", "ulx3s", "--program",
                 str(quick_tiny_program), "--count", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown board 'ulx3s'" in err[0]


def _calls_main(path: Path) -> list[int]:
    tree = ast.parse(path.read_text())
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        getattr(n.func, "id", None) == "main" or getattr(n.func, "attr", None) == "main")
        and n.args]


def test_only_the_cli_tests_call_main():
    """The command line is a shell over :mod:`fireforge.sw.commands`: no module calls
    ``main([...])`` but this file (``python -m`` subprocesses are users, not callers)."""
    here = Path(__file__).resolve()
    callers = {str(p.relative_to(ROOT)): lines for p in ROOT.glob("*/**/*.py")
               if p.parts[len(ROOT.parts)] not in (".venv", "build", "runs") and p != here
               and (lines := _calls_main(p))}
    assert callers == {}


def test_the_demo_compiles_for_a_board_that_takes_its_configuration():
    from fireforge.boards.boards import board_spec
    from fireforge.hw.config import CONFIGS
    from fireforge.sw import demo

    assert demo.CONFIG in board_spec(demo.BOARD).configs
    assert CONFIGS[demo.CONFIG].codebook_bits >= demo.BITS  # it decodes the demo's codebooks


def test_bench_refusals_are_one_line(quick_tiny_program, capsys):
    # (refused before the default program is made or a simulator starts)
    assert main(["bench", "--board", "orangecrab-85f"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "link is USB CDC-ACM" in err[0] and "UART links only" in err[0]
    assert main(["bench", "--board", "ulx3s-85f", "--program", str(quick_tiny_program)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs --config ecp5 (8 x 8)" in err[0]
