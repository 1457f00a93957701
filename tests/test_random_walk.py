"""AffinityNet and its random walk: pairs, pair labels, loss and affinity labels by hand; the walk
against v T^t from numpy's matrix_power, its limit, a zero-affinity cut, dense vs sparse; and a
tiny train_affinity + random_walk run on a generated dataset."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from wsss.data import demo
from wsss.data.voc import VOCDataset
from wsss.errors import WsssError
from wsss.io import StoreReader, StoreWriter
from wsss.refine import random_walk as rw
from wsss.refine.affinity import (
    AffinityNet,
    affinity_labels,
    affinity_loss,
    grid_labels,
    pair_affinities,
    pair_indices,
    pair_labels,
    pair_offsets,
)
from wsss.stages import random_walk as random_walk_stage
from wsss.stages import train_affinity


def as_pairs(src, dst, mask=None):
    """Unordered pairs {(min, max)} of the flat indices where mask is set."""
    keep = torch.ones_like(src, dtype=torch.bool) if mask is None else mask.bool()
    return {tuple(sorted((int(a), int(b)))) for a, b in zip(src[keep], dst[keep])}


# ------------------------------------------------------------------------------------ pairs

def test_psa_radius_5_has_34_offsets():
    # psa: 4 offsets along the row + 9 + 9 + 7 + 5 in the rows below (dy^2 + dx^2 < 25)
    assert len(pair_offsets(5)) == 34
    assert (0, 0) not in pair_offsets(5) and (0, -1) not in pair_offsets(5)


def test_pairs_on_3x3_grid_by_hand():
    src, dst = pair_indices(3, 3, 1)
    assert len(src) == 0  # radius 1: no distance is below 1 (and AffinityNet refuses it)
    with pytest.raises(WsssError, match="radius"):
        AffinityNet(radius=1)
    src, dst = pair_indices(3, 3, 2)  # distances 1 and sqrt(2): the 8-neighbourhood
    assert len(src) == 20 and len(as_pairs(src, dst)) == 20
    assert as_pairs(src, dst) == {(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8),  # rows
                                  (0, 3), (3, 6), (1, 4), (4, 7), (2, 5), (5, 8),  # columns
                                  (0, 4), (1, 5), (3, 7), (4, 8), (1, 3), (2, 4), (4, 6), (5, 7)}  # diagonals
    src, dst = pair_indices(3, 3, 5)  # the farthest cells are sqrt(8) < 5 apart: all 36 pairs once
    assert len(src) == 36 and len(as_pairs(src, dst)) == 36


def test_pair_labels_on_3x3_grid_by_hand():
    # 0 0 1 / 0 255 1 / 2 2 1, flat indices 0..8 row by row
    label = torch.tensor([[[0, 0, 1], [0, 255, 1], [2, 2, 1]]])
    src, dst = pair_indices(3, 3, 2)
    bg, fg, neg = pair_labels(label, 2)
    assert as_pairs(src, dst, bg[0]) == {(0, 1), (0, 3), (1, 3)}
    assert as_pairs(src, dst, fg[0]) == {(6, 7), (2, 5), (5, 8)}
    assert as_pairs(src, dst, neg[0]) == {(1, 2), (7, 8), (3, 6), (1, 5), (3, 7), (5, 7)}
    assert float(bg.sum() + fg.sum() + neg.sum()) == 12  # the other 8 pairs touch the 255 cell


def test_affinities_follow_pair_indices():
    features = torch.rand(2, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    aff = pair_affinities(features, 3)
    src, dst = pair_indices(4, 6, 3)
    flat = features.flatten(2)  # (B, C, n)
    expected = torch.exp(-(flat[:, :, src] - flat[:, :, dst]).abs().mean(1))
    torch.testing.assert_close(aff, expected)


def test_grid_labels_take_cell_centres():
    label = torch.arange(64).view(1, 8, 8)
    assert grid_labels(label, (2, 2)).tolist() == [[[2 * 8 + 2, 2 * 8 + 6], [6 * 8 + 2, 6 * 8 + 6]]]


# ------------------------------------------------------------------------------- loss, labels

def test_loss_by_hand():
    aff = torch.tensor([[0.9, 0.5, 0.2, 0.8]])
    bg, fg, neg = torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0, 1.0, 0, 0]]), torch.tensor([[0, 0, 1.0, 1.0]])
    terms = affinity_loss(aff, bg, fg, neg)
    # -ln 0.9 = 0.105361, -ln 0.5 = 0.693147, (-ln 0.8 - ln 0.2) / 2 = (0.223144 + 1.609438) / 2
    assert float(terms["bg"]) == pytest.approx(0.105361, abs=1e-4)
    assert float(terms["fg"]) == pytest.approx(0.693147, abs=1e-4)
    assert float(terms["neg"]) == pytest.approx(0.916291, abs=1e-4)
    assert float(terms["loss"]) == pytest.approx(0.105361 / 4 + 0.693147 / 4 + 0.916291 / 2, abs=1e-4)


def test_loss_without_pairs_of_a_kind_is_zero_for_it():
    terms = affinity_loss(torch.tensor([[0.3]]), torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1))
    assert float(terms["bg"]) == 0 and float(terms["fg"]) == 0


def test_affinity_labels_from_low_and_high_by_hand():
    low = np.array([[0, 1, 1, 2], [0, 0, 2, 1]], np.uint8)
    high = np.array([[0, 1, 1, 2], [1, 0, 2, 0]], np.uint8)
    # low bg & high bg -> 0; low bg & high fg -> 255; low fg -> fg, unless high says bg -> 0
    assert affinity_labels(low, high).tolist() == [[0, 1, 1, 2], [255, 0, 2, 0]]


def test_affinity_label_from_maps_without_crf():
    # map 0.5: (1-0.5)^4 = 0.06 < 0.5 -> fg in both; 0.15: 0.85^4 = 0.52 > 0.15 (low: bg) but
    # 0.85^32 = 0.0055 < 0.15 (high: fg) -> ignored; 0.05: 0.81 and 0.19 > 0.05 -> background
    maps = np.array([[[0.5, 0.15, 0.05]]], np.float32)
    image = np.zeros((1, 3, 3), np.uint8)
    label = train_affinity.affinity_label(image, maps, np.array([3]), [4, 32], None)
    assert label.tolist() == [[3, 255, 0]]


# ------------------------------------------------------------------------------------ walk

def path_graph():
    """4 cells in a row: affinities 0.9, 0.5, 0.8 between neighbours."""
    return torch.tensor([0.9, 0.5, 0.8], dtype=torch.float64), (torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]))


def transition_by_hand(beta):
    a = np.array([0.9, 0.5, 0.8]) ** beta
    matrix = np.eye(4)
    for (i, j), w in zip([(0, 1), (1, 2), (2, 3)], a):
        matrix[i, j] = matrix[j, i] = w
    return matrix / matrix.sum(0, keepdims=True)  # column-normalised


@pytest.mark.parametrize("walk", [rw.walk_dense, rw.walk_sparse])
@pytest.mark.parametrize("steps", [1, 5, 8])
def test_walk_equals_matrix_power(walk, steps):
    aff, pairs = path_graph()
    v = np.array([[1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.7, 0.3]])
    expected = v @ np.linalg.matrix_power(transition_by_hand(2), steps)
    got = walk(torch.from_numpy(v), aff, pairs, beta=2, steps=steps)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_transition_matrix_by_hand():
    aff, pairs = path_graph()
    np.testing.assert_allclose(rw.transition_matrix(aff, pairs, 4, 2).numpy(), transition_by_hand(2), rtol=1e-12)


@pytest.mark.parametrize("walk", [rw.walk_dense, rw.walk_sparse])
def test_long_walk_reaches_degree_weighted_average(walk):
    # T = A D^-1 has the stationary distribution pi = d / sum d (d = column sums of A), and
    # T^t -> pi 1^T, so every cell ends with the pi-weighted average of the scores.
    aff, pairs = path_graph()
    v = np.array([[1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.7, 0.3]])
    a = np.array([0.9, 0.5, 0.8])  # beta 1
    degree = np.array([1 + a[0], 1 + a[0] + a[1], 1 + a[1] + a[2], 1 + a[2]])
    average = v @ degree / degree.sum()
    got = walk(torch.from_numpy(v), aff, pairs, beta=1, steps=2000).numpy()
    np.testing.assert_allclose(got, np.repeat(average[:, None], 4, 1), rtol=1e-9)


@pytest.mark.parametrize("walk", [rw.walk_dense, rw.walk_sparse])
def test_walk_never_crosses_a_zero_affinity_cut(walk):
    # two blocks {0, 1, 2} and {3, 4, 5}; the only pair between them (2, 3) has affinity 0
    src, dst = torch.tensor([0, 1, 0, 2, 3, 4, 3]), torch.tensor([1, 2, 2, 3, 4, 5, 5])
    aff = torch.tensor([0.9, 0.7, 0.4, 0.0, 0.6, 0.8, 0.5], dtype=torch.float64)
    v = torch.tensor([[3.0, 1.0, 2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0, 0.0, 1.0]], dtype=torch.float64)
    got = walk(v, aff, (src, dst), beta=8, steps=64)
    assert got[0, 3:].abs().max() == 0 and got[1, :3].abs().max() == 0
    # and each block walks as if alone
    alone = walk(v[:1, :3], aff[:3], (src[:3], dst[:3]), beta=8, steps=64)
    torch.testing.assert_close(got[:1, :3], alone)


def test_dense_and_sparse_agree_on_a_grid():
    generator = torch.Generator().manual_seed(3)
    pairs = pair_indices(7, 9, 5)
    aff = torch.rand(len(pairs[0]), generator=generator)
    scores = torch.rand(3, 63, generator=generator)
    dense = rw.walk_dense(scores, aff, pairs, beta=8, steps=64)
    sparse = rw.walk_sparse(scores, aff, pairs, beta=8, steps=64)
    torch.testing.assert_close(dense, sparse, rtol=1e-4, atol=1e-6)


def test_random_walk_switches_by_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(rw, "walk_dense", lambda *a: calls.append("dense"))
    monkeypatch.setattr(rw, "walk_sparse", lambda *a: calls.append("sparse"))
    scores, aff, pairs = torch.zeros(2, 100), torch.zeros(0), (torch.zeros(0), torch.zeros(0))
    assert rw.dense_bytes(100) == 2 * 100 * 100 * 4
    rw.random_walk(scores, aff, pairs, 8, 4, dense_limit=80_000)
    rw.random_walk(scores, aff, pairs, 8, 4, dense_limit=79_999)
    assert calls == ["dense", "sparse"]


# ---------------------------------------------------------------------------------- stages

CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A generated dataset and a fused-maps store made from its masks (blurred, scaled < 1)."""
    root = tmp_path_factory.mktemp("rw") / "VOC2012"
    demo.generate(root, CLASSES, seed=0, counts={"train_aug": 6, "train": 2, "val": 1}, min_side=32, max_side=44)
    voc = VOCDataset(root, CLASSES, "train_aug")
    fused = root.parent / "fused.h5"
    with StoreWriter(fused, "fuse_maps", "cam", ["background", *CLASSES], {}) as store:
        for image_id in voc.ids:
            mask = voc.mask(image_id)
            present = np.flatnonzero(voc.tags(image_id)) + 1
            maps = np.stack([ndimage.gaussian_filter((mask == c).astype(np.float32), 2) for c in present])
            maps = maps / maps.max(axis=(1, 2), keepdims=True)
            store.write(image_id, {"map": maps}, classes=present)
    return root, voc, fused


TRAIN = {"epochs": 1, "batch_size": 2, "crop": 32, "scale_range": [1.0, 1.0], "lr": 0.01, "momentum": 0.9,
         "weight_decay": 1e-4, "seed": 0, "workers": 0}
CRF = {"preset": "psa", "gauss_sxy": 1, "bi_sxy": 10}


@pytest.fixture(scope="module")
def affinity_checkpoint(tree):
    root, voc, fused = tree
    output = root.parent / "affinity.pt"
    torch.manual_seed(0)
    train_affinity.run(fused, root, CLASSES, "train_aug", output, model={"backbone": "resnet18", "radius": 5},
                       train=TRAIN, bg_alphas=[4, 32], crf=CRF, device="cpu")
    return output


def test_train_affinity_checkpoint(affinity_checkpoint):
    state = torch.load(affinity_checkpoint, weights_only=True)
    assert state["method"] == "affinity" and state["config"]["radius"] == 5
    assert state["bg_alphas"] == [4, 32] and len(state["history"]) == 1
    fractions = state["label_fractions"]
    assert sum(fractions.values()) == pytest.approx(1.0) and fractions["foreground"] > 0
    assert fractions["background"] > 0 and fractions["ignored"] > 0


def test_random_walk_stage_writes_every_id(tree, affinity_checkpoint):
    root, voc, fused = tree
    output = root.parent / "rw.h5"
    random_walk_stage.run(affinity_checkpoint, fused, root, CLASSES, "train_aug", output, alpha=16, beta=8, steps=16,
                          device="cpu")
    sparse = root.parent / "rw_sparse.h5"
    random_walk_stage.run(affinity_checkpoint, fused, root, CLASSES, "train_aug", sparse, alpha=16, beta=8, steps=16,
                          device="cpu", dense_limit=0)
    with StoreReader(output) as reader, StoreReader(sparse) as other:
        assert sorted(reader.ids()) == sorted(voc.ids)
        assert reader.attrs["stage"] == "random_walk" and reader.attrs["params"]["steps"] == 16
        for image_id in voc.ids:
            label = reader.read(image_id)[0]["label"]
            assert label.dtype == np.uint8 and label.shape == voc.image_size(image_id)
            present = set((np.flatnonzero(voc.tags(image_id)) + 1).tolist())
            assert set(np.unique(label).tolist()) <= present | {0, 255}
            # the dense and the sparse walk give the same labels
            assert (label == other.read(image_id)[0]["label"]).mean() > 0.999


def test_random_walk_stage_shard_and_crf(tree, affinity_checkpoint):
    root, voc, fused = tree
    output = root.parent / "rw_shard.h5"
    random_walk_stage.run(affinity_checkpoint, fused, root, CLASSES, "train_aug", output, alpha=16, beta=8, steps=4,
                          crf=CRF, device="cpu", threads=1, shard="2-of-2")
    with StoreReader(output) as reader:
        assert reader.ids() == voc.ids[3:]
        for image_id in reader.ids():
            present = set((np.flatnonzero(voc.tags(image_id)) + 1).tolist())
            assert set(np.unique(reader.read(image_id)[0]["label"]).tolist()) <= present | {0}


def test_affinity_net_pairs_on_its_grid():
    net = AffinityNet("resnet18", output_stride=8, radius=3).eval()
    with torch.no_grad():
        aff, size = net.affinities(torch.randn(1, 3, 40, 48))
    assert size == (5, 6) and aff.shape == (1, len(pair_indices(5, 6, 3)[0]))
    assert bool(((aff > 0) & (aff <= 1)).all())


def test_image_without_classes_is_all_background():
    net = AffinityNet("resnet18", radius=3).eval()
    image = np.zeros((20, 28, 3), np.uint8)
    scores = random_walk_stage.walk_scores(net, image, np.zeros((0, 20, 28), np.float32), 16, 8, 4, 0, "cpu")
    assert scores.shape == (1, 20, 28)
    random_walk_stage.shared(crf=None)
    assert not random_walk_stage.label_of((image, scores, np.zeros(0, np.int64))).any()
