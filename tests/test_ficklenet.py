"""FickleNet: map expansion = ordinary convolution, centre-preserving dropout, Grad-CAM over
seeded draws, the paper's aggregation rule and the DSRG-style label rule."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.methods.ficklenet import FickleNet, expand, sample_mask
from wsss.methods.gradcam import grad_cam

K = 3


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))  # features 3 x 3


EXTRACT = {"draws": 5, "draw_chunk": 2, "seed": 0}  # ficklenet.extract settings


def small_model(**own):
    torch.manual_seed(0)
    settings = {"window": 3, "drop_rate": 0.5, **own}
    return FickleNet(num_classes=K, backbone="resnet18", **settings).eval()


def draw_maps(model, images, classes, **options):
    return model.maps(images, classes, **{**EXTRACT, **options})


@pytest.mark.parametrize("window", [1, 3, 5])
def test_expanded_stride_s_conv_equals_ordinary_conv(window):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 7, generator=generator)
    weight = torch.randn(4, 6, window, window, generator=generator)
    expanded = expand(x, window)
    assert expanded.shape == (2, 6, 5 * window, 7 * window)
    mask = sample_mask(2, 5, 7, window, drop_rate=0.0)
    assert (mask == 1).all()  # p = 0 drops nothing
    result = F.conv2d(expanded * mask, weight, stride=window)  # (B, K, h, w)
    torch.testing.assert_close(result, F.conv2d(x, weight, padding=window // 2), rtol=1e-5, atol=1e-5)


def test_expansion_block_holds_the_window():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    block = expand(x, 3)[0, 0, 3:6, 3:6]  # the window around location (1, 1)
    torch.testing.assert_close(block, x[0, 0, 0:3, 0:3])
    corner = expand(x, 3)[0, 0, 0:3, 0:3]  # around (0, 0): zero padding above and left
    torch.testing.assert_close(corner, torch.tensor([[0.0, 0, 0], [0, 0, 1], [0, 4, 5]]))


def test_model_head_without_dropout_is_a_padded_convolution(images):
    model = small_model(window=5, drop_rate=0.0)
    with torch.no_grad():
        features = model.backbone(images)  # (B, C, h, w)
        scores = model(images)
    assert model.classifier.kernel_size == (5, 5) and model.classifier.stride == (5, 5)
    expected = F.conv2d(features, model.classifier.weight, padding=2).mean(dim=(2, 3))
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)


def test_window_centre_is_never_dropped():
    s = 5
    mask = sample_mask(40, 3, 4, s, drop_rate=0.999, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (40, 1, 3 * s, 4 * s)  # one channel: the same mask for every channel
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    windows = mask.view(40, 1, 3, s, 4, s)  # (B, 1, i, a, j, d)
    assert (windows[:, :, :, s // 2, :, s // 2] == 1).all()
    others = windows.sum() - windows[:, :, :, s // 2, :, s // 2].sum()
    assert others < 0.01 * windows.numel()  # nearly everything else is dropped at p = 0.999


def test_keep_rate_of_other_offsets_is_one_minus_p():
    s, p = 9, 0.9
    mask = sample_mask(100, 4, 4, s, drop_rate=p, generator=torch.Generator().manual_seed(1))
    windows = mask.view(100, 4, s, 4, s).permute(0, 1, 3, 2, 4).reshape(-1, s * s)  # (windows, offsets)
    centre = (s // 2) * s + s // 2
    others = torch.cat([windows[:, :centre], windows[:, centre + 1 :]], dim=1)  # 1600 x 80 draws
    # binomial standard deviation sqrt(0.09 / 128000) ~ 0.0008: 0.005 is > 5 sigma
    assert abs(others.mean().item() - (1 - p)) < 0.005
    # windows are independent: two neighbouring windows do not share a pattern
    assert not torch.equal(windows[0], windows[1])


def test_dropout_stays_on_at_inference(images):
    model = small_model(drop_rate=0.5)  # eval mode
    with torch.no_grad():
        first, second = model(images), model(images)
    assert not torch.allclose(first, second)


def test_aggregation_rule_on_hand_made_draws():
    # four pixels, two classes; theta = 0.35
    peak = torch.tensor([[[0.5, 0.6, 0.3, 0.2]], [[0.1, 0.9, 0.35, 0.8]]])  # (K', 1, 4) max over draws
    mean = torch.tensor([[[0.2, 0.3, 0.1, 0.5]], [[0.05, 0.25, 0.2, 0.1]]])  # (K', 1, 4) mean over draws
    seeds = FickleNet.fuse({"max": peak, "mean": mean}, theta=0.35)
    expected = torch.tensor(
        [
            [[0.2, 0.3, 0.0, 0.0]],  # pixel 0: only class 0 over theta; pixel 1: both, class 0 has the higher mean
            [[0.0, 0.0, 0.0, 0.1]],  # pixel 2: none over theta (0.35 is not above); pixel 3: only class 1,
        ]  # although class 0 has the higher mean there
    )
    torch.testing.assert_close(seeds, expected)
    # the default theta is the paper's 0.35
    torch.testing.assert_close(FickleNet.fuse({"max": peak, "mean": mean}), expected)
    # a lower theta lets pixel 2 through (to class 1, the higher mean) and class 0 claims pixel 3 too
    low = FickleNet.fuse({"max": peak, "mean": mean}, theta=0.15)
    torch.testing.assert_close(low, torch.tensor([[[0.2, 0.3, 0.0, 0.5]], [[0.0, 0.0, 0.2, 0.0]]]))
    empty = torch.zeros(0, 1, 4)
    assert FickleNet.fuse({"max": empty, "mean": empty}).shape == (0, 1, 4)
    with pytest.raises(WsssError, match="ficklenet.fuse.theta"):
        FickleNet.fuse({"max": peak, "mean": mean}, theta=1.5)


def test_pseudo_label_rule():
    maps = np.array(
        [
            [[0.4, 0.0, 0.0], [0.2, 0.0, 0.0]],
            [[0.0, 0.7, 0.0], [0.0, 0.0, 0.0]],
        ],
        np.float32,
    )  # (K', 2, 3) fused seeds
    saliency = np.array([[0.9, 0.5, 0.01], [0.02, 0.5, 0.06]], np.float32)
    label = FickleNet.pseudo_label(maps, np.array([3, 7]), saliency, saliency_threshold=0.06)
    assert label.dtype == np.uint8 and label.shape == (2, 3)
    expected = np.array(
        [
            [3, 7, 0],  # seed of class 3 / seed of class 7 / no seed + low saliency -> background
            [255, 255, 255],  # seed + low saliency: conflict / no seed, salient / saliency not below 0.06
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(label, expected)
    # a higher saliency threshold turns the last pixel into background
    assert FickleNet.pseudo_label(maps, np.array([3, 7]), saliency, saliency_threshold=0.1)[1, 2] == 0
    # no present class: background from saliency only
    none = FickleNet.pseudo_label(np.zeros((0, 2, 3), np.float32), np.zeros(0, int), saliency)
    np.testing.assert_array_equal(none, [[255, 255, 0], [0, 255, 255]])


def test_maps_shape_range_and_reproducibility(images):
    model = small_model()
    classes = torch.tensor([2, 0])
    with torch.no_grad():
        maps = draw_maps(model, images, classes)
        again = draw_maps(model, images, classes)
    assert set(maps) == {"max", "mean"}
    for name in ("max", "mean"):
        assert maps[name].shape == (2, 2, 3, 3)  # (B, K', h, w)
        assert (maps[name] >= 0).all() and (maps[name] <= 1 + 1e-6).all()
        torch.testing.assert_close(again[name], maps[name], rtol=0, atol=0)  # same seed, same maps
    assert (maps["max"] >= maps["mean"] - 1e-6).all()
    # every draw is normalised to peak 1, so the max over draws peaks at 1 for a visible class
    peaks = maps["max"].amax(dim=(2, 3))
    assert ((peaks - 1).abs() < 1e-5).any() and ((peaks == 0) | ((peaks - 1).abs() < 1e-5)).all()
    assert not torch.allclose(maps["max"], maps["mean"])  # the draws differ
    with torch.no_grad():
        assert not torch.allclose(draw_maps(model, images, classes, seed=1)["mean"], maps["mean"])
    # chunking the draws changes nothing (2 + 2 + 1 vs 5): each draw samples its own mask in turn
    with torch.no_grad():
        chunked = draw_maps(model, images, classes, draw_chunk=5)
    torch.testing.assert_close(chunked["max"], maps["max"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked["mean"], maps["mean"], rtol=1e-5, atol=1e-6)


def test_maps_are_max_and_mean_of_normalised_per_draw_gradcam(images):
    model = small_model()
    classes = torch.tensor([1, 2])
    with torch.no_grad():
        maps = draw_maps(model, images, classes, draws=3, draw_chunk=2)
        features = model.backbone(images)
    generator = torch.Generator().manual_seed(0)  # the model's seed
    draws = []
    for _ in range(3):  # one draw at a time, one image at a time
        mask = model.mask(features, generator)  # (B, 1, sh, sw)
        per_image = []
        for b in range(2):
            cam = grad_cam(features[b : b + 1], lambda x: model.head(x, mask[b : b + 1]), classes)
            top = cam.amax(dim=(2, 3), keepdim=True)
            per_image.append(cam / torch.where(top > 0, top, torch.ones_like(top)))
        draws.append(torch.cat(per_image))
    draws = torch.stack(draws)  # (N, B, K', h, w)
    torch.testing.assert_close(maps["max"], draws.amax(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(maps["mean"], draws.mean(0), rtol=1e-5, atol=1e-6)


def test_without_dropout_all_draws_agree(images):
    model = small_model(drop_rate=0.0)
    with torch.no_grad():
        maps = draw_maps(model, images, [0, 1], draws=3)
    torch.testing.assert_close(maps["max"], maps["mean"], rtol=1e-5, atol=1e-6)


def test_loss_is_finite_and_reaches_the_backbone(images):
    torch.manual_seed(2)
    model = FickleNet(num_classes=K, backbone="resnet18", window=3).train()
    tags = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    torch.manual_seed(5)  # the backbone draws nothing: the same seed gives the same mask twice
    terms = model.loss(images, tags)
    assert {"loss", "cls"} <= set(terms) and terms["loss"].ndim == 0 and torch.isfinite(terms["loss"])
    torch.manual_seed(5)
    scores = model(images).detach()
    by_hand = -(tags * F.logsigmoid(scores) + (1 - tags) * F.logsigmoid(-scores)).mean()
    torch.testing.assert_close(terms["loss"].detach(), by_hand, rtol=1e-5, atol=1e-6)
    terms["loss"].backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    first_conv = model.backbone.stages[0][0].weight
    assert first_conv.grad is not None and torch.isfinite(first_conv.grad).all()
    assert first_conv.grad.abs().sum() > 0


def test_config_rebuilds_the_model_and_param_groups(images):
    model = small_model()
    assert model.config == {
        "num_classes": K, "backbone": "resnet18", "output_stride": 16, "window": 3, "drop_rate": 0.5,
    }  # fmt: skip
    rebuilt = FickleNet(**model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(draw_maps(rebuilt, images, [1])["max"], draw_maps(model, images, [1])["max"], rtol=0, atol=0)
    groups = model.param_groups()
    ids = [id(p) for params, _ in groups for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    multipliers = {id(p): mult for params, mult in groups for p in params}
    assert multipliers[id(model.classifier.weight)] == 10.0
    assert all(multipliers[id(p)] == 1.0 for p in model.backbone.parameters())


@pytest.mark.parametrize(
    "key, value",
    [("window", 4), ("window", 0), ("drop_rate", 1.5)],
)
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(WsssError, match=f"ficklenet.model.{key}"):
        FickleNet(num_classes=K, **{key: value})


@pytest.mark.parametrize("key, value", [("draws", 0), ("draw_chunk", 0)])
def test_bad_extraction_settings_name_the_key(images, key, value):
    with pytest.raises(WsssError, match=f"ficklenet.extract.{key}"):
        draw_maps(small_model(), images, [0], **{key: value})
