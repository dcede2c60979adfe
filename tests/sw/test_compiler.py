import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from fireforge.hw.config import CONFIGS
from fireforge.hw.errors import FireforgeError
from fireforge.hw.isa import ACC_BITS, Op
from fireforge.hw.program import load_program
from fireforge.sw.compiler import Budget, compile_checkpoint, plan_memory
from fireforge.sw.model import FireSpec, SqueezeNetConfig, create_model
from fireforge.sw.quant import LOGITS, lower
from torch import nn

from ..helpers import random_checkpoint

SMALL = SqueezeNetConfig(8, 3, 1, 1, (FireSpec(4, 8, 8), FireSpec(4, 8, 8)), (0, 1),
                         num_classes=4, in_channels=1, input_size=16, bypass="complex")


@pytest.fixture
def program_dir(tmp_path):
    ckpt = random_checkpoint(SMALL, 1, 4)
    rng = np.random.default_rng(0)
    compile_checkpoint(ckpt, rng.integers(0, 256, (8, 1, 16, 16), dtype=np.uint8),
                       tmp_path / "p", shared=ckpt.shared)
    return tmp_path / "p"


def test_manifest_records_what_the_hardware_needs(program_dir):
    program = load_program(program_dir)
    m = program.manifest
    assert len(m.model_hash) == 64 and m.group == 8 and m.bits == 4
    assert [layer["op"] for layer in m.layers].count("ADD") == 2
    assert all(layer["acc_bits"] <= ACC_BITS for layer in m.layers)
    assert m.input.pad_value == round(0.3 * 255)
    assert (program_dir / "float" / "model.pt").is_file()


def test_edited_truncated_or_foreign_files_are_refused(program_dir, tmp_path):
    def copy():
        dst = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(program_dir, dst)
        return dst

    d = copy()
    (d / "weights.bin").write_bytes((d / "weights.bin").read_bytes()[:-3])
    with pytest.raises(FireforgeError, match="weights.bin has .* bytes.*truncated"):
        load_program(d)
    d = copy()
    blob = bytearray((d / "params.bin").read_bytes())
    blob[5] ^= 1
    (d / "params.bin").write_bytes(bytes(blob))
    with pytest.raises(FireforgeError, match="params.bin does not match its SHA-256"):
        load_program(d)
    d = copy()
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["group"] = 4
    (d / "manifest.json").write_text(json.dumps(manifest))
    load_program(d)  # the group is not part of the images; the hash guards the images
    manifest["model_hash"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FireforgeError, match="model_hash does not match"):
        load_program(d)
    # an image from another program (same size, other weights)
    other = random_checkpoint(SMALL, 2, 4)
    compile_checkpoint(other, np.zeros((2, 1, 16, 16), np.uint8), tmp_path / "other",
                       shared=other.shared)
    d = copy()
    shutil.copy(tmp_path / "other" / "weights.bin", d / "weights.bin")
    with pytest.raises(FireforgeError, match="weights.bin does not match"):
        load_program(d)
    d = copy()
    (d / "manifest.json").write_text("{ truncated")
    with pytest.raises(FireforgeError, match="not valid JSON"):
        load_program(d)
    with pytest.raises(FireforgeError, match="no manifest.json"):
        load_program(tmp_path / "nothing")


def test_unsupported_layers_are_named():
    with pytest.raises(FireforgeError, match="layer features.0 .*kernel \\(7, 7\\).*not supp"):
        lower(create_model("squeezenet1_0"))
    model = create_model("squeezenet_tiny")
    model.features[1] = nn.BatchNorm2d(16)
    with pytest.raises(FireforgeError, match="features.0 \\(Conv2d\\) is not followed by ReLU"):
        lower(model)
    model = create_model("squeezenet_tiny")
    model.features[2] = nn.AvgPool2d(2)
    with pytest.raises(FireforgeError, match="layer features.2 \\(AvgPool2d\\) is not supported"):
        lower(model)
    with pytest.raises(FireforgeError, match="takes a fireforge SqueezeNet"):
        lower(nn.Sequential(nn.Conv2d(1, 1, 1)))


@pytest.mark.parametrize("preset", ["squeezenet_tiny", "squeezenet1_1_cifar_w50",
                                    "squeezenet1_1", "squeezenet1_1_cifar"])
def test_memory_plan_never_overlaps_live_tensors(preset):
    for bypass in ("none", "complex"):
        with torch.device("meta"):
            model = create_model(preset, bypass=bypass)
        nodes, tensors = lower(model)
        plan = plan_memory(nodes, tensors)
        first, last = {"input": -1}, {}
        for i, n in enumerate(nodes):
            first.setdefault(n.output, i)
            for t in n.inputs:
                last[t] = i
        live = [(t, first[t], last.get(t, first[t])) for t in plan.addr]
        for a, fa, la in live:
            assert plan.addr[a] % 16 == 0 and plan.addr[a] + plan.size[a] <= plan.peak
            for b, fb, lb in live:
                if a < b and not (la < fb or lb < fa):
                    ra = range(plan.addr[a], plan.addr[a] + plan.size[a])
                    rb = range(plan.addr[b], plan.addr[b] + plan.size[b])
                    assert not set(ra) & set(rb), (a, b)
        biggest = max(plan.size.values())
        assert biggest <= plan.peak <= sum(plan.size.values())


def test_accumulator_width_is_proven(program_dir):
    program = load_program(program_dir)
    from fireforge.sw.golden import _channel_params, decode_weights

    for layer, d in zip(program.layers, program.descriptors, strict=True):
        if d.op != Op.CONV:
            continue
        w = decode_weights(program, d)
        bias, _ = _channel_params(program, d)
        bound = (np.abs(w).reshape(len(w), -1).sum(1) * 255 + np.abs(bias)).max()
        assert layer["acc_bound"] == bound
        assert layer["acc_bits"] == int(bound).bit_length() + 1


def test_fit_report_on_boards(tmp_path):
    ckpt = random_checkpoint(SMALL, 1, None)
    m = compile_checkpoint(ckpt, np.zeros((2, 1, 16, 16), np.uint8), tmp_path / "a",
                           budget=Budget(1 << 20, "a big board"))
    assert m.fit["fits"] and m.fit["margin"] > 0


def test_a_network_that_does_not_fit_is_refused_before_calibration(tmp_path):
    """The fit follows from the shapes: the refusal comes before the calibration images are
    even loaded, says what would fit, and writes nothing (not even over an older program)."""
    ckpt = random_checkpoint(SMALL, 1, None)
    compile_checkpoint(ckpt, np.zeros((2, 1, 16, 16), np.uint8), tmp_path / "p")
    before = {f.name: f.read_bytes() for f in (tmp_path / "p").iterdir() if f.is_file()}

    def calibration():
        raise AssertionError("calibration images loaded before the fit check")

    with pytest.raises(FireforgeError) as e:
        compile_checkpoint(ckpt, calibration, tmp_path / "p", budget=Budget(5000, "a tiny board"))
    msg = str(e.value)
    assert "a tiny board has 5,000 B" in msg and "short by" in msg and "would fit: --bits " \
        in msg and msg.endswith("nothing written")
    assert {f.name: f.read_bytes() for f in (tmp_path / "p").iterdir() if f.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


@pytest.mark.parametrize(("config", "bits"), [(c, b) for c in ("small", "up5k", "ecp5")
                                               for b in (None, 4, 2)
                                               if CONFIGS[c].codebook_bits or b is None])
def test_the_fit_estimate_is_the_packed_size(tmp_path, config, bits):
    """What the fit check counts before calibration is what the packer writes, byte for byte
    (compile_checkpoint asserts it; the fit report carries the packed figures)."""
    accel = CONFIGS[config]
    ckpt = random_checkpoint(SMALL if accel.bypass_add else replace(SMALL, bypass="none"), 1,
                             bits)
    m = compile_checkpoint(ckpt, np.zeros((2, 1, 16, 16), np.uint8), tmp_path / "p",
                           Budget(1 << 30, "a board"), accel.columns, ckpt.shared,
                           banks=accel.act_banks, bank_bytes=accel.bank_bytes, lanes=accel.rows,
                           target=accel)
    images = load_program(tmp_path / "p").images
    use = m.fit["use"]
    assert [use[k] for k in ("weights", "codebooks", "params", "program")] == [
        len(images[f]) for f in ("weights.bin", "codebooks.bin", "params.bin", "program.bin")]


def test_a_configuration_that_cannot_run_the_network_is_refused_before_calibration(tmp_path):
    ckpt = random_checkpoint(replace(SMALL, bypass="simple"), 1, 4)
    with pytest.raises(FireforgeError) as e:
        compile_checkpoint(ckpt, lambda: None, tmp_path / "p", group=4, shared=ckpt.shared,
                           banks=2, bank_bytes=CONFIGS["up5k"].bank_bytes,
                           accelerator="up5k", target=CONFIGS["up5k"])
    assert "no add unit" in str(e.value) and "no codebook decoder" in str(e.value)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("preset", ["squeezenet_tiny", "squeezenet1_1_cifar_w50"])
@pytest.mark.parametrize("bypass", ["none", "simple"])
def test_two_banks_keep_every_input_apart_from_its_output(preset, bypass):
    with torch.device("meta"):
        model = create_model(preset, bypass=bypass)
    nodes, tensors = lower(model)
    bank_bytes = 1 << 20
    plan = plan_memory(nodes, tensors, banks=2, bank_bytes=bank_bytes)
    for n in nodes:
        if n.output != LOGITS:
            assert all(plan.bank[t] != plan.bank[n.output] for t in n.inputs), n.name
    for t, a in plan.addr.items():
        assert a // bank_bytes == plan.bank[t] and (a % bank_bytes) + plan.size[t] <= bank_bytes
    assert set(plan.bank.values()) == {0, 1}
    assert plan.used <= plan.peak and plan.used < plan_memory(nodes, tensors).peak * 2


def test_two_banks_refuse_an_odd_cycle_and_an_overfull_bank():
    with torch.device("meta"):
        model = create_model("squeezenet_tiny", bypass="complex")
    nodes, tensors = lower(model)
    with pytest.raises(FireforgeError, match="odd cycle.*dual-port"):
        plan_memory(nodes, tensors, banks=2, bank_bytes=1 << 20)
    with torch.device("meta"):
        model = create_model("squeezenet_tiny")
    nodes, tensors = lower(model)
    with pytest.raises(FireforgeError, match="activations need .* bytes in bank 0"):
        plan_memory(nodes, tensors, banks=2, bank_bytes=4096)


def test_a_padding_the_lanes_cannot_add_is_refused_before_calibration(tmp_path):
    """A concatenation off the lanes is padded (tests/sw/test_import.py); a residual add of a
    padded and an unpadded tensor would need the two paddings to agree, and is refused."""
    config = replace(SMALL, fires=(FireSpec(4, 4, 4), FireSpec(4, 8, 8)))
    ckpt = random_checkpoint(config, 1, None)

    def calibration():
        raise AssertionError("calibration images loaded before the lane check")

    with pytest.raises(FireforgeError, match="padded differently.*multiples of 8"):
        compile_checkpoint(ckpt, calibration, tmp_path / "p", lanes=8)
    assert not (tmp_path / "p").exists()


def test_out_is_never_a_folder_of_other_files(tmp_path):
    """A compile replaces its --out whole, so it refuses a folder that holds anything but an
    earlier program, before any work, and leaves it as it was."""
    ckpt = random_checkpoint(SMALL, 1, None)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FireforgeError, match="holds other files and no program"):
        compile_checkpoint(ckpt, lambda: None, other)
    assert (other / "notes.txt").read_text() == "keep me"
    (tmp_path / "f").write_text("")
    with pytest.raises(FireforgeError, match="is a file"):
        compile_checkpoint(ckpt, lambda: None, tmp_path / "f")
    # an earlier program is replaced whole
    x = np.zeros((2, 1, 16, 16), np.uint8)
    compile_checkpoint(ckpt, x, tmp_path / "p")
    (tmp_path / "p" / "stale.bin").write_bytes(b"old")
    compile_checkpoint(ckpt, x, tmp_path / "p")
    assert not (tmp_path / "p" / "stale.bin").exists()
    assert (tmp_path / "p" / "manifest.json").is_file()
