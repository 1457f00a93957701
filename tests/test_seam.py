"""SEAM: max_norm, the equivariance and ECR losses, the PCM, the min-pooling term, the model."""

import pytest
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.methods import METHODS, load_checkpoint, save_checkpoint
from wsss.methods.seam import (
    SEAM,
    ecr_loss,
    equivariance_loss,
    keep_max_foreground,
    max_norm,
    min_pool_loss,
    pcm_affinity,
    pcm_input,
    pcm_refine,
    topk_mean,
    view_maps,
)

K = 3
EPS = 1e-5


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SEAM(num_classes=K, backbone="resnet18", output_stride=16).eval()


def ramp(height, width, a, b, c):
    """a * u + b * v + c on a grid of u, v in [0, 1]: bilinear interpolation (align_corners)
    reproduces it exactly, and its min / max sit at the corners at any size. (h, w)"""
    u = torch.linspace(0, 1, height)[:, None]
    v = torch.linspace(0, 1, width)[None, :]
    return a * u + b * v + c


# ---- pure functions -------------------------------------------------------------------------


def test_max_norm_by_hand():
    maps = torch.tensor([[0.0, 1.0], [3.0, -2.0]])[None, None]  # (1, 1, 2, 2)
    # ReLU -> [0, 1, 3, 0]; min 0, max 3; relu(p - min - eps) / (max - min + eps)
    expected = torch.tensor([[0.0, (1 - EPS) / (3 + EPS)], [(3 - EPS) / (3 + EPS), 0.0]])
    torch.testing.assert_close(max_norm(maps)[0, 0], expected)
    # per image and channel: [5, 7, 11, 1] has its own min 1 and max 11
    stacked = torch.stack([maps[0], 2 * maps[0] + 5], dim=0)  # (2, 1, 2, 2)
    out = max_norm(stacked)
    assert out.max() < 1 and out.min() >= 0
    torch.testing.assert_close(out[0, 0], expected)
    torch.testing.assert_close(out[1, 0], torch.tensor([[0.4, 0.6], [1.0, 0.0]]), atol=1e-4, rtol=0)


def test_equivariance_loss_zero_for_maps_that_commute_with_rescaling():
    tags = torch.tensor([[1.0, 1.0, 0.0]])  # class 3 absent
    big, small = (9, 13), (4, 5)
    # channel 0 (background) is arbitrary: ER ignores it; channel 3 is absent: masked out
    view1, view2 = (
        torch.stack([torch.rand(*size), ramp(*size, 2, 1, 0.5), ramp(*size, -1, 3, 1.5), torch.rand(*size)])[None]
        for size in (big, small)
    )
    # the ramp's small copy is indeed the bilinear rescale of the big one
    rescaled = F.interpolate(view1, small, mode="bilinear", align_corners=True)
    torch.testing.assert_close(rescaled[:, 1:3], view2[:, 1:3])
    er = equivariance_loss(view_maps(view1, tags, small), view_maps(view2, tags, small))
    assert er.item() < 1e-5
    # a map constant per channel commutes with any rescaling
    constant1 = torch.arange(4.0)[None, :, None, None].expand(1, 4, *big)
    constant2 = torch.arange(4.0)[None, :, None, None].expand(1, 4, *small)
    assert equivariance_loss(view_maps(constant1, tags, small), view_maps(constant2, tags, small)).item() < 1e-6


def test_equivariance_loss_positive_when_not_equivariant():
    tags = torch.tensor([[1.0, 1.0, 0.0]])
    big, small = (9, 13), (4, 5)
    view1 = torch.stack([ramp(*big, 1, 1, 0)] * 4)[None]
    flipped = torch.stack([ramp(*small, 1, 1, 0)] * 4)[None].flip(-1)  # mirrored: not A(F(I))
    er = equivariance_loss(view_maps(view1, tags, small), view_maps(flipped, tags, small))
    assert er.item() > 0.1
    # by hand on equal sizes: maps differ at one of four pixels by 1 / 4 after normalisation
    a = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 4.0]])
    one = torch.tensor([[1.0]])
    view_a = torch.stack([torch.zeros(2, 2), a])[None]  # K = 1
    view_b = torch.stack([torch.zeros(2, 2), b])[None]
    er = equivariance_loss(view_maps(view_a, one, (2, 2)), view_maps(view_b, one, (2, 2)))
    torch.testing.assert_close(er, torch.tensor(1 / (4 + EPS) / 4))
    # an absent class does not count
    er = equivariance_loss(view_maps(view_a, 0 * one, (2, 2)), view_maps(view_b, 0 * one, (2, 2)))
    assert er.item() == 0


def test_pcm_affinity_by_hand():
    torch.manual_seed(3)
    features = torch.randn(2, 5, 3, 4)
    features[0, :, 0, 1] = -features[0, :, 0, 0]  # opposite vectors: no weight between them
    affinity = pcm_affinity(features)  # (B, hw, hw)
    assert affinity.shape == (2, 12, 12)
    assert (affinity >= 0).all()
    # the weights flowing into each target pixel j (a column) sum to one
    torch.testing.assert_close(affinity.sum(dim=1), torch.ones(2, 12), atol=1e-4, rtol=0)
    assert affinity[0, 0, 1] == 0 and affinity[0, 1, 0] == 0
    # ReLU(cosine) normalised over the sources, computed pixel pair by pixel pair
    flat = features.flatten(2)
    for b in range(2):
        cos = torch.tensor(
            [[F.cosine_similarity(flat[b, :, i], flat[b, :, j], dim=0) for j in range(12)] for i in range(12)]
        )
        raw = cos.clamp(min=0)
        torch.testing.assert_close(affinity[b], raw / raw.sum(dim=0, keepdim=True), atol=1e-4, rtol=1e-4)


def test_pcm_identical_features_give_uniform_weights_and_average():
    features = torch.randn(5)[None, :, None, None].expand(1, 5, 2, 3)  # one vector everywhere
    affinity = pcm_affinity(features)
    torch.testing.assert_close(affinity, torch.full((1, 6, 6), 1 / 6), atol=1e-5, rtol=0)
    cam = torch.arange(12.0).view(1, 2, 2, 3)
    refined = pcm_refine(cam, features)
    expected = cam.mean(dim=(2, 3), keepdim=True).expand_as(cam)  # every pixel: the channel mean
    torch.testing.assert_close(refined, expected, atol=1e-4, rtol=0)


def test_pcm_refine_keeps_a_constant_map_constant():
    """Weights into each target sum to one (not out of each source): a weighted average."""
    torch.manual_seed(4)
    features = torch.rand(1, 4, 3, 3) + 0.1  # positive: every column has weight
    cam = torch.full((1, 2, 3, 3), 0.7)
    torch.testing.assert_close(pcm_refine(cam, features), cam, atol=1e-4, rtol=0)
    # and a non-constant map is actually mixed
    cam = torch.rand(1, 2, 3, 3)
    assert (pcm_refine(cam, features) - cam).abs().max() > 1e-3


def test_pcm_input_by_hand():
    cam = torch.tensor(
        [
            [[9.0, -3.0], [0.5, 7.0]],  # background: replaced
            [[2.0, 0.0], [1.0, -1.0]],  # ReLU -> max 2 -> [[1, 0], [.5, 0]]
            [[1.0, 4.0], [1.0, 0.0]],  # max 4 -> [[.25, 1], [.25, 0]]
        ]
    )[None].requires_grad_()
    out = pcm_input(cam)
    assert not out.requires_grad  # detached: the PCM does not train the head
    expected = torch.tensor(
        [
            [[0.0, 0.0], [0.5, 1.0]],  # 1 - max(foreground)
            [[1.0, 0.0], [0.5, 0.0]],  # kept where it is the maximum (ties at 0 kept)
            [[0.0, 1.0], [0.0, 0.0]],  # zeroed where class 1 is larger
        ]
    )[None]
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_keep_max_foreground_by_hand():
    maps = torch.tensor([[[0.3, 0.3]], [[0.8, 0.3]], [[0.5, 0.6]]])[None]  # (1, 3, 1, 2)
    out = keep_max_foreground(maps)
    torch.testing.assert_close(out, torch.tensor([[[0.2, 0.4]], [[0.8, 0.0]], [[0.0, 0.6]]])[None])
    assert maps[0, 1, 0, 1] == 0.3  # the input is left alone


def test_topk_mean_by_hand():
    values = torch.tensor([[0.1, 0.9, 0.4, 0.7, 0.2], [0.5, 0.0, 0.3, 0.2, 0.6]])
    # k = int(5 * 0.4) = 2: image 1 -> (0.9 + 0.7) / 2, image 2 -> (0.6 + 0.5) / 2
    torch.testing.assert_close(topk_mean(values, 0.4), torch.tensor((0.8 + 0.55) / 2))
    torch.testing.assert_close(topk_mean(values, 1.0), values.mean())
    torch.testing.assert_close(topk_mean(values, 0.01), torch.tensor((0.9 + 0.6) / 2))  # at least one


def test_ecr_loss_by_hand():
    target = torch.tensor([[[0.2, 0.1]], [[0.8, 0.3]], [[0.5, 0.6]]])[None].requires_grad_()  # (1, 3, 1, 2)
    refined = torch.zeros(1, 3, 1, 2, requires_grad=True)
    # target prepared: background [0.2, 0.4], class 1 [0.8, 0], class 2 [0, 0.6]
    # |diff| = [0.2, 0.4, 0.8, 0, 0, 0.6]; top int(6 * 0.5) = 3: 0.8, 0.6, 0.4
    loss = ecr_loss(target, refined, 0.5)
    torch.testing.assert_close(loss, torch.tensor(0.6))
    loss.backward()
    assert target.grad is None  # the other view's CAM is a fixed target
    assert refined.grad.abs().sum() > 0


def test_min_pool_loss_by_hand():
    refined = torch.tensor(
        [
            [[5.0, 5.0], [5.0, 5.0]],  # background: not used
            [[0.5, -0.2], [0.3, 0.9]],
            [[5.0, 5.0], [5.0, 5.0]],  # absent class: masked to 0
        ]
    )[None]
    tags = torch.tensor([[1.0, 0.0]])
    # per-pixel max foreground: [0.5, 0 (masked class 2), 0.3, 0.9]; lowest int(4 * 0.5) = 2: 0, 0.3
    torch.testing.assert_close(min_pool_loss(refined, tags, 0.5), torch.tensor(0.15))
    # negative minima are ReLU'd: no reward for pushing below zero
    negative = refined.clone()
    negative[0, 1:] = torch.tensor([-1.0, -2.0])[:, None, None]  # both present, max -1 everywhere
    assert min_pool_loss(negative, torch.tensor([[1.0, 1.0]]), 0.5).item() == 0


# ---- the model -----------------------------------------------------------------------------


def test_forward_is_gap_of_foreground_channels(model, images):
    with torch.no_grad():
        features = model.backbone(images)
        raw = model.classifier(features)  # (B, K+1, h, w)
        scores = model(images)
    assert raw.shape == (2, K + 1, 4, 4)
    assert scores.shape == (2, K)
    torch.testing.assert_close(scores, raw[:, 1:].mean(dim=(2, 3)))


def test_maps_are_relu_cam_and_pcm_of_requested_classes(model, images):
    with torch.no_grad():
        raw = model.classifier(model.backbone(images))
        maps = model.maps(images, torch.tensor([2, 0]))
    assert set(maps) == {"cam", "pcm"}
    assert (raw[:, 1:] < 0).any()  # so the ReLU matters
    torch.testing.assert_close(maps["cam"], F.relu(raw[:, [3, 1]]))
    assert maps["pcm"].shape == (2, 2, 4, 4) and (maps["pcm"] >= 0).all()
    # the PCM output is a weighted average of the prepared CAM: within its range [0, 1]
    assert maps["pcm"].max() <= 1 + 1e-4
    with torch.no_grad():
        torch.testing.assert_close(model.maps(images, [2, 0])["pcm"], maps["pcm"])


def test_loss_terms_and_classification_by_hand(model, images):
    tags = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    with torch.no_grad():  # eval mode: no dropout, so the scores can be recomputed
        terms = model.loss(images, tags)
        small = F.interpolate(images, size=(19, 19), mode="bilinear", align_corners=True)
        cls = sum(F.multilabel_soft_margin_loss(model(x), tags) for x in (images, small)) / 2
    assert set(terms) == {"loss", "cls", "er", "ecr", "min_pool"}
    assert all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(terms["cls"], cls)
    torch.testing.assert_close(terms["loss"], terms["cls"] + terms["er"] + terms["ecr"] + terms["min_pool"])
    assert terms["er"] > 0 and terms["ecr"] > 0  # an untrained net is not equivariant
    assert 0 <= terms["er"] <= 1 and 0 <= terms["ecr"] <= 4  # normalised maps: bounded


def test_gradient_reaches_backbone_head_and_pcm(images):
    torch.manual_seed(2)
    model = SEAM(num_classes=K, backbone="resnet18").train()
    tags = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    model.loss(images, tags)["loss"].backward()
    first_conv = model.backbone.stages[0][0].weight
    assert first_conv.grad is not None and torch.isfinite(first_conv.grad).all()
    assert first_conv.grad.abs().sum() > 0
    head = model.classifier.weight.grad
    assert head is not None and head[1:].abs().sum() > 0
    for conv in (*model.low_convs, model.f9):  # trained by ECR through the affinity
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_pcm_is_detached_from_backbone_and_head(images):
    torch.manual_seed(2)
    model = SEAM(num_classes=K, backbone="resnet18").train()
    _, refined = model._branch(images)
    refined.sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.classifier.weight.grad is None
    assert model.f9.weight.grad is not None and model.f9.weight.grad.abs().sum() > 0


def test_fuse_picks_the_named_map():
    maps = {"cam": torch.rand(2, 4, 4), "pcm": torch.rand(2, 4, 4)}
    assert SEAM.fuse(maps) is maps["cam"]
    assert SEAM.fuse(maps, use="pcm") is maps["pcm"]
    with pytest.raises(WsssError, match=r"^seam\.fuse\.use: .*'both'"):
        SEAM.fuse(maps, use="both")


@pytest.mark.parametrize(
    "key, value",
    [
        ("rescale", 0),
        ("rescale", -0.3),
        ("pcm_channels", 0),
        ("low_channels", (64,)),
        ("low_channels", (64, 0)),
        ("topk_fraction", 0),
        ("topk_fraction", 1.5),
        ("min_pool_fraction", 0),
    ],
)
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(WsssError, match=rf"^seam\.model\.{key}: "):
        SEAM(num_classes=K, **{key: value})


def test_config_param_groups_and_checkpoint(model, images, tmp_path, monkeypatch):
    assert model.config == {
        "num_classes": K,
        "backbone": "resnet18",
        "output_stride": 16,
        "rescale": 0.3,
        "pcm_channels": 192,
        "low_channels": [64, 128],
        "topk_fraction": 0.2,
        "min_pool_fraction": 0.25,
    }
    assert model.classifier.out_channels == K + 1 and model.classifier.bias is None
    assert model.f9.in_channels == 3 + 64 + 128 and model.f9.out_channels == 192
    groups = model.param_groups()
    ids = [id(p) for params, _ in groups for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    multipliers = {id(p): mult for params, mult in groups for p in params}
    for new in (model.classifier.weight, model.f9.weight, model.low_convs[0].weight):
        assert multipliers[id(new)] == 10.0
    assert all(multipliers[id(p)] == 1.0 for p in model.backbone.parameters())
    # a checkpoint rebuilds the same model (registered here; the registry line is the lead's)
    monkeypatch.setitem(METHODS, "seam", SEAM)
    save_checkpoint(tmp_path / "seam.pt", "seam", model)
    _, loaded, _ = load_checkpoint(tmp_path / "seam.pt")
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.maps(images, [1])["pcm"], model.maps(images, [1])["pcm"], rtol=0, atol=0)
