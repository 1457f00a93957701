"""FickleNet: map expansion = ordinary convolution, centre-preserving dropout, the per-offset
identity (Grad-CAM from keep counts, training head without the expanded map) against autograd on
the expanded map, Grad-CAM over seeded draws, the paper's aggregation rule and the DSRG-style
label rule."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.methods.ficklenet import (
    FickleNet,
    draw_cams,
    expand,
    grad_cam_expanded,
    head,
    head_expanded,
    keep_counts,
    offset_maps,
    sample_counts,
    sample_mask,
    shifted_masks,
)

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
    # chunking the draws changes nothing (2 + 2 + 1 vs 5): the counts of all draws are sampled first
    with torch.no_grad():
        chunked = draw_maps(model, images, classes, draw_chunk=5)
    torch.testing.assert_close(chunked["max"], maps["max"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked["mean"], maps["mean"], rtol=1e-5, atol=1e-6)


def mask_with_counts(counts, height, width, window, last=False):
    """A mask (B, 1, sh, sw) with the given keep counts n_d (B, s*s): offset d is kept by the first
    (or last) n_d windows, row-major, that read inside the map at d. Any such mask gives the same
    Grad-CAM."""
    s, r = window, window // 2
    mask = torch.zeros(counts.shape[0], 1, height, s, width, s)  # (B, 1, i, a, j, e)
    for b, a, e in np.ndindex(counts.shape[0], s, s):
        inside = [(i, j) for i in range(height) for j in range(width) if 0 <= i + a - r < height and 0 <= j + e - r < width]
        kept = int(counts[b, a * s + e])
        for i, j in inside[len(inside) - kept :] if last else inside[:kept]:
            mask[b, 0, i, a, j, e] = 1
    return mask.view(counts.shape[0], 1, height * s, width * s)


def test_maps_are_max_and_mean_of_normalised_expanded_gradcam_of_the_seeded_draws(images):
    model = small_model()
    classes = torch.tensor([1, 2])
    with torch.no_grad():
        maps = draw_maps(model, images, classes, draws=3, draw_chunk=2)
        features = model.backbone(images)  # (B, C, h, w)
    height, width = features.shape[2:]
    generator = torch.Generator().manual_seed(0)  # the model's seed: the same counts
    draws = []
    for counts in model.counts(features, 3, generator):  # one draw at a time: (B, s*s)
        mask = mask_with_counts(counts, height, width, model.window)
        assert torch.equal(keep_counts(mask, model.window), counts)
        cam = grad_cam_expanded(features, model.classifier.weight, mask, classes)  # by autograd: (B, K', h, w)
        top = cam.amax(dim=(2, 3), keepdim=True)
        draws.append(cam / torch.where(top > 0, top, torch.ones_like(top)))
    draws = torch.stack(draws)  # (N, B, K', h, w)
    assert not torch.allclose(draws[0], draws[1])  # the draws differ
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


# --- the per-offset identity (module docstring) against autograd on the expanded map ---------

WINDOWS = [1, 3, 5, 7]  # 7 > the 4 x 5 map: some windows read only padding at some offsets


def random_head(window, drop_rate=0.5, seed=0):
    """Features (2, 6, 4, 5), weight (3, 6, s, s) and a sampled mask, in float64 (tight tolerances)."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 6, 4, 5, generator=generator, dtype=torch.float64)
    weight = torch.randn(3, 6, window, window, generator=generator, dtype=torch.float64)
    mask = sample_mask(2, 4, 5, window, drop_rate, generator).double()  # (B, 1, 4s, 5s)
    return features, weight, mask


@pytest.mark.parametrize("window", WINDOWS)
def test_gradcam_from_keep_counts_equals_autograd_on_the_expanded_map(window):
    features, weight, mask = random_head(window)
    if window > 1:  # the case exercises the border rule: some kept offsets read the zero padding
        assert (keep_counts(mask, window).sum(1) < mask.sum(dim=(1, 2, 3))).all()
    classes = torch.tensor([2, 0])
    expected = grad_cam_expanded(features, weight, mask, classes)  # (B, K', h, w), autograd
    assert expected.amax() > 0
    counts = keep_counts(mask, window)[None]  # (1, B, s*s): one draw
    ours = draw_cams(offset_maps(features, weight[classes]), counts)[0]
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-14)


def test_gradcam_from_counts_ignores_where_the_kept_windows_are():
    # two masks, same counts, different windows: the same Grad-CAM (what makes counts enough)
    window, height, width = 3, 4, 5
    features, weight, _ = random_head(window)
    counts = sample_counts(1, 2, height, width, window, 0.6, torch.Generator().manual_seed(3))[0]  # (B, s*s)
    first = mask_with_counts(counts, height, width, window)
    last = mask_with_counts(counts, height, width, window, last=True)
    assert not torch.equal(first, last) and torch.equal(keep_counts(last, window), counts)
    cams = [grad_cam_expanded(features, weight, m.double(), [0, 1, 2]) for m in (first, last)]
    torch.testing.assert_close(cams[0], cams[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("window", WINDOWS)
def test_training_head_equals_expanded_head_in_scores_and_gradients(window):
    features, weight, mask = random_head(window, seed=1)
    outer = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # dL/dS
    results = []
    for fn in (head, head_expanded):
        x, w = features.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        scores = fn(x, w, mask)  # (B, K)
        (scores * outer).sum().backward()
        results.append((scores.detach(), x.grad, w.grad))
    for ours, expected in zip(*results):
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-13)


def test_model_loss_through_either_head_gives_the_same_backbone_gradients(images):
    model = FickleNet(num_classes=K, backbone="resnet18", window=3, drop_rate=0.5).eval()
    tags = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    with torch.no_grad():
        mask = model.mask(model.backbone(images), torch.Generator().manual_seed(4))
    grads = []
    for fn in (model.head, model.head_expanded):
        model.zero_grad()
        F.multilabel_soft_margin_loss(fn(model.backbone(images), mask), tags).backward()
        grads.append([p.grad.clone() for p in (model.backbone.stages[0][0].weight, model.classifier.weight)])
    for ours, expected in zip(*grads):
        assert expected.abs().sum() > 0
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)


def hand_mask():
    """h = 2, w = 3, s = 3: every centre kept, plus (window -> offsets (a, e); what they read):
    (0, 0) -> (0, 0) reads (-1, -1) outside, (2, 2) reads (1, 1);
    (1, 2) -> (0, 0) reads (0, 1), (2, 2) reads (2, 3) outside, (1, 2) reads (1, 3) outside;
    (1, 0) -> (2, 1) reads (2, 0) outside, (0, 1) reads (0, 0)."""
    mask = torch.zeros(1, 1, 2, 3, 3, 3)  # (B, 1, i, a, j, e)
    mask[:, :, :, 1, :, 1] = 1
    for (i, j), (a, e) in [((0, 0), (0, 0)), ((0, 0), (2, 2)), ((1, 2), (0, 0)), ((1, 2), (2, 2)),
                           ((1, 2), (1, 2)), ((1, 0), (2, 1)), ((1, 0), (0, 1))]:  # fmt: skip
        mask[0, 0, i, a, j, e] = 1
    return mask.view(1, 1, 6, 9)


def test_keep_counts_by_hand():
    counts = keep_counts(hand_mask(), 3)  # (1, 9), offsets row-major (a, e)
    expected = torch.tensor([[1.0, 1, 0], [0, 6, 0], [0, 0, 1]])  # 13 keeps, 4 of them read outside
    torch.testing.assert_close(counts.view(3, 3), expected)
    shifted = shifted_masks(hand_mask(), 3)  # (1, 9, h, w): m'(v, d), indexed by the location read
    assert shifted.shape == (1, 9, 2, 3)
    assert shifted[0, 4].eq(1).all()  # every location is read by its own window's centre
    assert shifted.sum() == 9 and shifted[0, 8, 1, 1] == 1 and shifted[0, 0, 0, 1] == 1 and shifted[0, 1, 0, 0] == 1
    torch.testing.assert_close(shifted.sum(dim=(2, 3)), counts)
    # all offsets kept: n_d = the windows whose offset d reads inside, (rows) x (cols)
    full = keep_counts(torch.ones(1, 1, 6, 9), 3).view(3, 3)
    torch.testing.assert_close(full, torch.tensor([1.0, 2, 1])[:, None] * torch.tensor([2.0, 3, 2]))


def test_sampled_counts_have_the_distribution_of_counted_masks():
    s, p, height, width, n = 7, 0.7, 3, 4, 4000  # s > h: the outer rows of offsets read only padding
    valid = torch.tensor([0.0, 1, 2, 3, 2, 1, 0])[:, None] * torch.tensor([1.0, 2, 3, 4, 3, 2, 1])  # V_d by hand
    torch.testing.assert_close(sample_counts(2, 3, height, width, s, 0.0), valid.flatten().expand(2, 3, s * s))
    direct = sample_counts(n, 1, height, width, s, p, torch.Generator().manual_seed(0)).view(n, s, s)
    counted = keep_counts(sample_mask(n, height, width, s, p, torch.Generator().manual_seed(1)), s).view(n, s, s)
    centre = s // 2
    for counts in (direct, counted):
        assert (counts[:, centre, centre] == height * width).all()  # the centre: always kept, always inside
        assert (counts >= 0).all() and (counts <= valid).all() and counts.eq(counts.round()).all()
        others = torch.ones(s, s, dtype=torch.bool)
        others[centre, centre] = False
        mean, var = counts.mean(0)[others], counts.var(0)[others]  # Binomial(V_d, 1 - p)
        sigma = (valid[others] * p * (1 - p) / n).sqrt()  # standard error of the mean
        assert ((mean - valid[others] * (1 - p)).abs() <= 5 * sigma + 1e-6).all()
        torch.testing.assert_close(var, valid[others] * p * (1 - p), rtol=0.15, atol=1e-6)
    assert not torch.equal(direct[0], direct[1])  # draws are independent
