"""The command line itself: arguments reach the command library, ``--json`` prints the result's
dict alone on stdout, and bad input is one line on stderr with exit status 1."""

import ast
import json
from pathlib import Path

from fireforge.sw.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fireforge.sw.cli import main
from fireforge.sw.model import SqueezeNet, SqueezeNetConfig, create_model

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


def test_full_squeezenet_on_icebreaker_does_not_fit(tmp_path, capsys):

    model = SqueezeNet(SqueezeNetConfig(64, 3, 2, 0, create_model("squeezenet1_1").config.fires,
                                        (0, 2, 4)))
    save_checkpoint(Checkpoint(model, "squeezenet1_1", "digits", tuple("0123456789") + tuple(
        str(i) for i in range(10, 1000)), [0.4] * 3, [0.3] * 3), tmp_path / "ck")
    (tmp_path / "img").mkdir()
    assert main(["compile", "--checkpoint", str(tmp_path / "ck"), "--board", "icebreaker",
                 "--out", str(tmp_path / "p"), "--calibration", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "icebreaker (iCE40UP5K) has 146,432 B (short by" in err[0]
    assert "would fit: preset squeezenet_tiny" in err[0]

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
