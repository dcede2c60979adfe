import numpy as np
import pytest
import torch
from fireforge.hw.errors import FireforgeError
from fireforge.sw.compress import (
    _kmeans_1d,
    apply_masks,
    density_of,
    finetune_codebooks,
    layer_densities,
    magnitude_masks,
    sensitivity,
    share_weights,
)
from fireforge.sw.data import Dataset, load_dataset
from fireforge.sw.huffman import (
    huffman_bits,
    huffman_code_lengths,
    relative_index_streams,
    size_report,
    totals,
)
from fireforge.sw.model import create_model
from fireforge.sw.train import TrainConfig


def test_layer_densities_meet_target_and_follow_policy():
    model = create_model("squeezenet1_1_cifar_w50")
    d = layer_densities(model, 0.3)
    sizes = {n: c.weight.numel() for n, c in model.convs()}
    mean = sum(d[n] * sizes[n] for n in d) / sum(sizes.values())
    assert mean == pytest.approx(0.3, abs=1e-6)
    assert d["features.0"] == 1.0  # the stem stays dense
    assert d["features.3.expand3x3"] < d["features.3.expand1x1"]  # 3x3 pruned harder
    assert d["classifier.1"] > d["features.3.expand3x3"]  # late layer spared
    with pytest.raises(FireforgeError, match="density must be in"):
        layer_densities(model, 0)


def test_magnitude_masks_keep_the_largest():
    model = create_model("squeezenet_tiny", in_channels=1)
    masks = magnitude_masks(model, {n: 0.25 for n, _ in model.convs()})
    conv = model.get_submodule("features.9.expand3x3")
    w, m = conv.weight.detach().abs(), masks["features.9.expand3x3"]
    assert m.float().mean().item() == pytest.approx(0.25, abs=1e-3)
    assert w[m].min() >= w[~m].max()
    apply_masks(model, masks)
    assert torch.count_nonzero(conv.weight) == m.sum()
    assert density_of(masks) == pytest.approx(0.25, abs=1e-3)


def test_kmeans_linear_init_finds_clusters():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-1, 0.01, 200), rng.normal(0.5, 0.01, 100)])
    centroids, labels = _kmeans_1d(values, 2)
    assert sorted(np.round(centroids, 1).tolist()) == [-1.0, 0.5]
    assert np.bincount(labels).tolist() in ([200, 100], [100, 200])


def test_weight_sharing_keeps_pruned_zero_and_reconstructs():
    torch.manual_seed(0)
    model = create_model("squeezenet_tiny", in_channels=1)
    masks = magnitude_masks(model, layer_densities(model, 0.4))
    apply_masks(model, masks)
    shared = share_weights(model, 4)
    for name, conv in model.convs():
        s = shared[name]
        assert s.codebook.shape == (16,) and s.codebook[0] == 0
        assert np.array_equal(s.indices == 0, ~masks[name].numpy())
        assert np.allclose(s.weight(), conv.weight.detach().numpy())
        q, step = s.int8_codebook()  # the codebook lies on the int8 grid
        assert np.allclose(q * step, s.codebook, atol=1e-6)
        assert np.abs(q).max() == 127
        normalized = conv.weight.detach().numpy() / s.scale.reshape(-1, 1, 1, 1)
        assert len(np.unique(np.round(normalized, 5))) <= 16


def test_codebook_finetuning_moves_centroids_only():
    data = load_dataset("digits", 32, 1)
    small = Dataset("digits", data.classes, data.x_train[:128], data.y_train[:128],
                    data.x_test[:64], data.y_test[:64])
    mean, std = small.mean_std()
    model = create_model("squeezenet_tiny", in_channels=1)
    apply_masks(model, magnitude_masks(model, layer_densities(model, 0.5)))
    shared = share_weights(model, 3)
    before = {n: (s.indices.copy(), s.codebook.copy()) for n, s in shared.items()}
    finetune_codebooks(model, shared, small, mean, std, TrainConfig(epochs=1, lr=1e-2),
                       progress=False)
    moved = 0
    for name, conv in model.convs():
        idx, cb = before[name]
        assert np.array_equal(shared[name].indices, idx)
        assert shared[name].codebook[0] == 0
        moved += not np.allclose(shared[name].codebook, cb)
        assert np.allclose(shared[name].weight(), conv.weight.detach().numpy())
        assert conv.weight.requires_grad
    assert moved > 0


def test_huffman_code_lengths():
    lengths = huffman_code_lengths({0: 5, 1: 2, 2: 1, 3: 1})
    assert lengths == {0: 1, 1: 2, 2: 3, 3: 3}
    assert sum(2.0 ** -v for v in lengths.values()) == 1.0  # a complete prefix code
    assert huffman_bits([7, 7, 7]) == 3
    assert huffman_code_lengths({}) == {}


def test_relative_index_streams_insert_fillers():
    flat = np.zeros(40, np.int64)
    flat[[0, 3, 35]] = [5, 6, 7]
    idx, gaps = relative_index_streams(flat, gap_bits=4)
    # 3 -> 35 is a gap of 31: one filler (gap 15) covers 16 positions, leaving 15.
    assert idx.tolist() == [5, 6, 0, 7]
    assert gaps.tolist() == [0, 2, 15, 15]


def test_paper_setting_v1_0_under_047_mb():
    torch.manual_seed(0)
    model = create_model("squeezenet1_0")
    apply_masks(model, magnitude_masks(model, layer_densities(model, 0.33)))
    shared = share_weights(model, 6)
    t = totals(size_report({n: (s.indices, s.bits, s.scale.size) for n, s in shared.items()}))
    assert t["density"] == pytest.approx(0.33, abs=0.002)
    assert t["compressed_bytes"] <= 0.47e6
    assert t["ratio"] > 10


def test_sensitivity_table():
    data = load_dataset("digits", 32, 1)
    small = Dataset("digits", data.classes, data.x_train[:16], data.y_train[:16],
                    data.x_test[:32], data.y_test[:32])
    model = create_model("squeezenet_tiny", in_channels=1).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = sensitivity(model, small, *small.mean_std(), densities=(0.5, 0.1), progress=False)
    assert set(result["layers"]) == {n for n, _ in model.convs()}
    assert all(set(r["accuracy"]) == {"0.5", "0.1"} for r in result["layers"].values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights restored


def test_sensitivity_guided_densities_keep_more_of_the_sensitive_layers():
    from fireforge.sw.compress import sensitivity_factors

    model = create_model("squeezenet_tiny", num_classes=10, in_channels=1)
    names = [n for n, _ in model.convs()]
    densities = [0.9, 0.5, 0.1]
    # the first Fire's squeeze loses accuracy at once; every other layer only at 0.1
    result = {"baseline_accuracy": 0.9, "densities": densities, "layers": {
        n: {"accuracy": {"0.9": 0.9 if n != names[1] else 0.5, "0.5": 0.9 if n != names[1]
                         else 0.1, "0.1": 0.5}} for n in names}}
    factors = sensitivity_factors(model, result)
    assert factors[names[0]] is None  # the stem stays dense
    assert factors[names[1]] == 1.0 and all(factors[n] == 0.5 for n in names[2:])
    d = layer_densities(model, 0.4, factors)
    sizes = {n: c.weight.numel() for n, c in model.convs()}
    assert abs(sum(d[n] * sizes[n] for n in names) / sum(sizes.values()) - 0.4) < 1e-3
    assert d[names[1]] == pytest.approx(2 * d[names[2]]) and d[names[0]] == 1.0
