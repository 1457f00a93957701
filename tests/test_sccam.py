"""SC-CAM: k-means sub-categories follow the parent tags, loss = parent + lambda * sub, parent-only maps."""

import contextlib
import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.methods.sccam import SCCAM

K = 3  # parent classes
N = 12
# Tags of 12 synthetic images: class 2 has only 2 images (fewer than 3 sub-categories),
# image 11 has no tag at all.
TAGS = torch.zeros(N, K)
for i, classes in enumerate([[0]] * 3 + [[0, 1]] * 3 + [[1]] * 3 + [[1, 2], [2], []]):
    TAGS[i, classes] = 1.0
GROUP = np.arange(N) % 2  # each class's images come from two visually distinct groups
SIZES = [(32, 32), (32, 40), (40, 32)]


class Synthetic(torch.utils.data.Dataset):
    """(image (3, H, W), tags (K,), index): group 0 smooth and dark, group 1 a bright checkerboard;
    images of different sizes, as the stage's un-augmented loader gives them."""

    def __len__(self):
        return len(TAGS)

    def __getitem__(self, index):
        h, w = SIZES[index % 3]
        noise = 0.1 * torch.randn(3, h, w, generator=torch.Generator().manual_seed(index))
        if GROUP[index] == 0:
            image = noise - 1.0
        else:
            checker = (torch.arange(h)[:, None] // 4 + torch.arange(w)[None] // 4) % 2
            image = noise + 2.0 * checker.float()
        return image, TAGS[index], index


def loader():
    return torch.utils.data.DataLoader(Synthetic(), batch_size=1)  # dataset order


def clustered(subcategories, rounds=1):
    """A model after `rounds` start_rounds, called in train mode as the stage does; keeps the
    BN running mean from before and the printed summary for the tests."""
    torch.manual_seed(0)
    model = SCCAM(num_classes=K, subcategories=subcategories, sub_weight=5.0).train()
    model.bn_before = model.backbone.stages[0][1].running_mean.clone()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for round in range(1, rounds + 1):
            model.start_round(round, loader(), torch.device("cpu"))
    model.printed = printed.getvalue().strip().splitlines()
    return model


@pytest.fixture(scope="module")
def model2():
    return clustered(2)


@pytest.fixture(scope="module")
def model3():
    return clustered(3, rounds=2)


def same_partition(a, b):
    """Two cluster assignments group the items alike (labels up to a permutation)."""
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


@pytest.mark.parametrize("k", [2, 3])
def test_sub_labels_follow_parent_tags(k, model2, model3):
    model = {2: model2, 3: model3}[k]
    labels = model.sub_labels
    assert isinstance(labels, torch.Tensor) and labels.shape == (N, K * k)
    assert set(labels.unique().tolist()) == {0.0, 1.0}
    per_class = labels.view(N, K, k).sum(dim=2)  # (N, K): sub-labels of each parent class
    # exactly one sub-label per present class, none for an absent one
    torch.testing.assert_close(per_class, TAGS)
    assert labels[11].sum() == 0  # the untagged image
    for c in range(K):
        members = TAGS[:, c] > 0
        used = labels[members].view(-1, K, k)[:, c].sum(dim=0) > 0  # (k,) clusters in use
        expected = min(k, int(members.sum()))  # class 2 has only 2 images
        assert int(used.sum()) == expected
        assert used[:expected].all()  # k-means labels 0..n_clusters-1


def test_sub_labels_are_not_in_the_state_dict(model2):
    # a checkpoint rebuilds from the config alone: a strict load into a fresh model works
    assert not any("sub_labels" in name or "assignments" in name for name in model2.state_dict())
    fresh = SCCAM(**model2.config)
    fresh.load_state_dict(model2.state_dict())
    assert fresh.sub_labels is None and fresh.assignments == []
    assert model2.config == {
        "num_classes": K, "backbone": "resnet18", "output_stride": 16, "subcategories": 2, "sub_weight": 5.0,
    }


def test_clusters_recover_the_visual_groups(model2):
    """With two sub-categories, k-means splits each class's images by their visual group."""
    assignment = model2.assignments[0]
    for c in range(K):
        members = np.flatnonzero(TAGS[:, c].numpy() > 0)
        assert same_partition(assignment[members, c], GROUP[members])


@pytest.mark.parametrize("k", [2, 3])
def test_assignments_record_matches_labels(k, model2, model3):
    model = {2: model2, 3: model3}[k]
    assert len(model.assignments) == {2: 1, 3: 2}[k]  # one record per round
    assignment = model.assignments[-1]  # sub_labels are the last round's
    assert isinstance(assignment, np.ndarray) and assignment.shape == (N, K)
    assert np.issubdtype(assignment.dtype, np.integer)
    np.testing.assert_array_equal(assignment >= 0, TAGS.numpy() > 0)  # -1 exactly where absent
    assert assignment.max() < k
    rebuilt = torch.zeros(N, K * k)
    for i, c in zip(*np.nonzero(assignment >= 0)):
        rebuilt[i, c * k + assignment[i, c]] = 1.0  # sub index = class * k + cluster
    torch.testing.assert_close(model.sub_labels, rebuilt, rtol=0, atol=0)


def test_kmeans_is_deterministic(model3):
    # two rounds without training in between: the same features must give the very same labels
    np.testing.assert_array_equal(model3.assignments[0], model3.assignments[1])


@pytest.mark.parametrize("k", [2, 3])
def test_start_round_uses_eval_mode_and_restores_train_mode(k, model2, model3):
    model = {2: model2, 3: model3}[k]
    assert model.training and all(m.training for m in model.modules())
    # in train mode the 12 forward passes would have moved the BN running statistics
    torch.testing.assert_close(model.backbone.stages[0][1].running_mean, model.bn_before, rtol=0, atol=0)
    rounds = len(model.assignments)
    assert len(model.printed) == K * rounds  # one summary line per class and round
    assert "round 1" in model.printed[0] and "class 0" in model.printed[0]
    last = model.printed[K - 1]
    assert "class 2" in last and "2 images" in last and "[1, 1]" in last  # two clusters of one


def hand_soft_margin(scores, targets):
    """-1/C sum_c [y log sigmoid(s) + (1 - y) log sigmoid(-s)], averaged over the batch."""
    terms = targets * torch.log(torch.sigmoid(scores)) + (1 - targets) * torch.log(torch.sigmoid(-scores))
    return -terms.mean(1).mean(0)


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))


def test_round_zero_loss_is_the_parent_loss(images):
    torch.manual_seed(2)
    model = SCCAM(num_classes=K, subcategories=2).train()
    tags = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    terms = model.loss(images, tags, torch.tensor([3, 7]))
    assert set(terms) == {"loss", "parent", "sub"}
    assert terms["sub"].ndim == 0 and terms["sub"].item() == 0.0
    scores = model(images).detach()  # train-mode BN: batch statistics, deterministic
    by_hand = hand_soft_margin(scores, tags)
    torch.testing.assert_close(terms["parent"].detach(), by_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["loss"].detach(), by_hand, rtol=1e-5, atol=1e-6)
    terms["loss"].backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model.sub_classifier.weight.grad is None  # the sub head is not trained yet


def test_loss_after_clustering_is_parent_plus_lambda_sub(model2, images):
    model = copy.deepcopy(model2).train()
    index = torch.tensor([5, 9])  # dataset positions: the sub targets are looked up by them
    tags = TAGS[index]
    terms = model.loss(images, tags, index)
    with torch.no_grad():
        features = model.backbone(images)  # (B, C, h, w)
        parent_scores = model.classifier(features).mean(dim=(2, 3))  # (B, K)
        sub_scores = model.sub_classifier(features).mean(dim=(2, 3))  # (B, K * 2)
    assert sub_scores.shape == (2, K * 2)
    assignment = model.assignments[0]
    targets = torch.zeros(2, K * 2)
    for row, i in enumerate(index.tolist()):
        for c in np.flatnonzero(assignment[i] >= 0):
            targets[row, c * 2 + assignment[i, c]] = 1.0
    assert targets.sum() == 4  # image 5 has classes 0 and 1, image 9 has 1 and 2
    parent, sub = hand_soft_margin(parent_scores, tags), hand_soft_margin(sub_scores, targets)
    torch.testing.assert_close(terms["parent"].detach(), parent, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["sub"].detach(), sub, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(terms["loss"].detach(), parent + 5.0 * sub, rtol=1e-5, atol=1e-6)
    assert terms["sub"] > 0
    terms["loss"].backward()
    assert model.sub_classifier.weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad.abs().sum() > 0


def test_sub_weight_scales_the_sub_term(model2, images):
    model = copy.deepcopy(model2).eval()  # eval: identical features for both calls
    index = torch.tensor([0, 9])
    with torch.no_grad():
        terms = model.loss(images, TAGS[index], index)
        model.sub_weight = 0.5
        halved = model.loss(images, TAGS[index], index)
    torch.testing.assert_close(halved["sub"], terms["sub"])
    torch.testing.assert_close(halved["loss"], terms["parent"] + 0.5 * terms["sub"])


def test_maps_use_the_parent_head_only(model2, images):
    model2.eval()
    with torch.no_grad():
        features = model2.backbone(images)  # (B, C, h, w)
        maps = model2.maps(images, torch.tensor([2, 0]))
        scores = model2(images)
    weight = model2.classifier.weight[:, :, 0, 0].detach()  # (K, C)
    raw = torch.einsum("kc,bchw->bkhw", weight, features)  # parent head at each location
    assert (raw < 0).any() and (raw > 0).any()  # so the ReLU matters
    assert set(maps) == {"cam"} and maps["cam"].shape == (2, 2, 2, 3)
    torch.testing.assert_close(maps["cam"], F.relu(raw[:, [2, 0]]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores, raw.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)  # forward = parent
    single = {"cam": maps["cam"][0]}
    assert SCCAM.fuse(single) is single["cam"]


def test_param_groups_cover_all_parameters_once(model2):
    groups = model2.param_groups()
    ids = [id(p) for params, _ in groups for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model2.parameters()}
    multipliers = {id(p): mult for params, mult in groups for p in params}
    assert multipliers[id(model2.classifier.weight)] == 10.0
    assert multipliers[id(model2.sub_classifier.weight)] == 10.0
    assert all(multipliers[id(p)] == 1.0 for p in model2.backbone.parameters())
    assert model2.sub_classifier.out_channels == K * 2 and model2.sub_classifier.bias is None


@pytest.mark.parametrize("key, value", [("subcategories", 0), ("subcategories", 2.5), ("sub_weight", -1.0)])
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(WsssError, match=f"sccam.model.{key}"):
        SCCAM(num_classes=K, **{key: value})
