"""Map extraction (multi-scale + flip, max-normalisation), background cues, pseudo labels and
the map -> label rule of evaluate_maps, on fake models and hand-made maps."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss.data.transforms import normalize
from wsss.errors import WsssError
from wsss.stages.evaluate_maps import maps_to_label
from wsss.stages.extract_maps import max_normalize, multiscale_maps
from wsss.stages.make_labels import background_score, crf_settings, pseudo_label

CPU = torch.device("cpu")


class PointwiseModel:
    """maps = ReLU of the selected input channels (and of their negation), at the input size."""

    def maps(self, batch, classes):  # (B, 3, h, w) -> {name: (B, K', h, w)}
        return {"pos": F.relu(batch[:, classes]), "neg": F.relu(-batch[:, classes])}


class StridedModel:
    """maps at half the input size, like a backbone with output stride 2."""

    def maps(self, batch, classes):
        return {"cam": F.relu(F.avg_pool2d(batch[:, classes], 2))}


def asymmetric_image(h=10, w=14):
    """Red only in the left four columns (+ one pixel), green a left-to-right ramp, blue zero."""
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :4, 0] = 255
    image[7, 9, 0] = 255
    image[..., 1] = np.linspace(0, 255, w).astype(np.uint8)[None, :]
    return image


def one_image(model, image, classes, scales, flip):
    """multiscale_maps on a batch of one image."""
    return multiscale_maps(model, [image], [np.asarray(classes)], scales, flip, CPU)[0]


def resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def test_single_scale_by_hand():
    image = asymmetric_image()
    out = one_image(PointwiseModel(), image, np.array([0]), [1.0], False)
    assert set(out) == {"pos", "neg"}
    pos = out["pos"]
    assert pos.dtype == np.float32 and pos.shape == (1, 10, 14)
    # red 255 -> (1 - 0.485) / 0.229 > 0 -> max-normalised to 1; red 0 -> negative -> 0
    expected = (image[..., 0] == 255).astype(np.float32)
    np.testing.assert_allclose(pos[0], expected, atol=1e-4)


def test_flip_is_undone():
    image = asymmetric_image()
    classes = np.array([0, 1])
    plain = one_image(PointwiseModel(), image, classes, [1.0], False)
    flipped = one_image(PointwiseModel(), image, classes, [1.0], True)
    for name in plain:
        # a pointwise model gives the same map for the flipped copy once flipped back; the sum
        # of the two is twice the plain map, identical after max-normalisation
        np.testing.assert_allclose(flipped[name], plain[name], atol=1e-5)
    # the image is asymmetric, so forgetting to un-flip would have shown
    assert not np.allclose(plain["pos"][0], plain["pos"][0][:, ::-1], atol=0.1)


def test_multiscale_flip_sum_by_hand():
    image = asymmetric_image()
    classes = [1, 0]  # order of the requested classes is kept
    scales = [1.0, 0.5, 1.5]
    out = one_image(StridedModel(), image, np.array(classes), scales, True)
    x = normalize(image)[None]  # (1, 3, 10, 14)
    total = torch.zeros(2, 10, 14)
    for scale, size in zip(scales, [(10, 14), (5, 7), (15, 21)]):
        xs = resize(x, size)
        plain = F.relu(F.avg_pool2d(xs[:, classes], 2))                       # (1, 2, h/2, w/2)
        mirrored = F.relu(F.avg_pool2d(xs.flip(-1)[:, classes], 2)).flip(-1)
        total += resize(plain, (10, 14))[0] + resize(mirrored, (10, 14))[0]
    expected = total / total.flatten(1).max(1).values[:, None, None]
    assert out["cam"].shape == (2, 10, 14)
    np.testing.assert_allclose(out["cam"], expected.numpy(), rtol=1e-4, atol=1e-4)


def test_each_class_peaks_at_one_and_zero_map_stays_zero():
    image = asymmetric_image()
    out = one_image(PointwiseModel(), image, np.array([0, 1, 2]), [1.0, 0.75], True)
    pos = out["pos"]
    assert np.isfinite(pos).all() and (pos >= 0).all()
    np.testing.assert_allclose(pos[:2].reshape(2, -1).max(1), [1.0, 1.0], rtol=1e-4)
    # blue is 0 everywhere -> normalised value negative -> ReLU map all zero, and it stays zero
    np.testing.assert_array_equal(pos[2], 0)
    np.testing.assert_allclose(out["neg"][2].max(), 1.0, rtol=1e-4)


def test_max_normalize_by_hand():
    maps = torch.tensor([[[0.0, 2.0], [1.0, 4.0]],
                         [[0.0, 0.0], [0.0, 0.0]],
                         [[0.3, 0.1], [0.0, 0.2]]])
    out = max_normalize(maps)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[1], torch.zeros(2, 2))
    torch.testing.assert_close(out[2], torch.tensor([[1.0, 1 / 3], [0.0, 2 / 3]]), rtol=1e-4, atol=1e-4)


def test_a_batch_equals_its_images_one_by_one():
    """Same-size images batched (each with its own classes, the union asked of the model) give
    each image exactly its own maps, for CAM and for Grad-CAM's one backward over the union."""
    from wsss.methods import build

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    classes = [np.array([2]), np.array([0, 3]), np.array([3, 1])]
    for method in ("cam", "gradcam"):
        torch.manual_seed(0)
        model = build(method, num_classes=4, backbone="resnet18").eval()
        batched = multiscale_maps(model, images, classes, [1.0, 0.5], True, CPU)
        for image, cls, together in zip(images, classes, batched):
            alone = one_image(model, image, cls, [1.0, 0.5], True)
            assert set(together) == set(alone)
            for name in alone:
                assert together[name].shape == (len(cls), 40, 56)
                np.testing.assert_allclose(together[name], alone[name], atol=1e-4)


def test_size_batches_groups_same_size_images():
    from wsss.stages.extract_maps import size_batches

    class Sizes:
        def image_size(self, image_id):
            return {"a": (5, 7), "b": (7, 5), "c": (5, 7), "d": (5, 7), "e": (7, 5)}[image_id]

    batches = list(size_batches(Sizes(), ["a", "b", "c", "d", "e"], batch_size=2))
    assert batches == [["a", "c"], ["d"], ["b", "e"]]


# ---- make_labels ----

# two class maps over 2x2 pixels
MAPS = np.array([[[0.5, 0.0], [1.0, 0.2]],
                 [[0.25, 0.9], [0.0, 0.2]]], np.float32)


def test_background_constant():
    bg = background_score({"type": "constant", "score": 0.2}, MAPS)
    assert bg.shape == (2, 2) and bg.dtype == np.float32
    np.testing.assert_allclose(bg, 0.2)


def test_background_power():
    bg = background_score({"type": "power", "alpha": 2}, MAPS)
    # max over classes [[.5, .9], [1, .2]] -> (1 - max)^2
    np.testing.assert_allclose(bg, [[0.25, 0.01], [0.0, 0.64]], atol=1e-6)
    bg4 = background_score({"type": "power", "alpha": 4}, MAPS)
    np.testing.assert_allclose(bg4, np.array([[0.5, 0.1], [0.0, 0.8]]) ** 4, atol=1e-6)
    # no present class: everything background
    none = background_score({"type": "power", "alpha": 4}, np.zeros((0, 2, 3), np.float32))
    np.testing.assert_array_equal(none, np.ones((2, 3)))


def test_background_saliency():
    sal = np.array([[0.01, 0.5], [0.06, 0.0599]], np.float32)
    bg = background_score({"type": "saliency", "saliency_threshold": 0.06}, MAPS, sal)
    np.testing.assert_array_equal(bg, [[1, 0], [0, 1]])


def test_background_unknown_cue():
    with pytest.raises(WsssError, match="bg_cue"):
        background_score({"type": "magic"}, MAPS)


def test_pseudo_label_without_crf():
    image = np.zeros((2, 2, 3), np.uint8)
    present = np.array([5, 12])
    cue = {"type": "constant", "score": 0.2}
    # scores [bg, c5, c12] per pixel and normalised probabilities:
    #   (0,0) .2 .5 .25 -> 5,  .5/.95 = .526     (0,1) .2 0 .9 -> 12, .9/1.1 = .818
    #   (1,0) .2 1 0    -> 5,  1/1.2 = .833      (1,1) .2 .2 .2 -> tie, background first, 1/3
    label = pseudo_label(image, MAPS, present, cue, None, confidence=0.0)
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, [[5, 12], [5, 0]])
    label = pseudo_label(image, MAPS, present, cue, None, confidence=0.6)
    np.testing.assert_array_equal(label, [[255, 12], [5, 255]])
    label = pseudo_label(image, MAPS, present, cue, None, confidence=0.82)
    np.testing.assert_array_equal(label, [[255, 255], [5, 255]])


def test_pseudo_label_power_cue_and_no_class():
    image = np.zeros((2, 2, 3), np.uint8)
    cue = {"type": "power", "alpha": 2}
    # bg [[.25, .01], [0, .64]] vs maps -> argmax [[c5, c12], [c5, bg]]
    label = pseudo_label(image, MAPS, np.array([5, 12]), cue, None, confidence=0.0)
    np.testing.assert_array_equal(label, [[5, 12], [5, 0]])
    empty = pseudo_label(image, np.zeros((0, 2, 2), np.float32), np.array([], int), cue, None, 0.9)
    np.testing.assert_array_equal(empty, np.zeros((2, 2)))


def test_pseudo_label_with_crf_stays_in_label_set():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    maps = np.zeros((2, 8, 8), np.float32)
    maps[0, :, :4] = 0.9
    maps[1, :, 4:] = 0.8
    crf = crf_settings({"preset": "psa", "iterations": 3})
    assert crf["iterations"] == 3 and crf["bi_sxy"] == 80
    label = pseudo_label(image, maps, np.array([3, 9]), {"type": "constant", "score": 0.2}, crf, 0.0)
    assert set(np.unique(label)) <= {0, 3, 9}
    assert (label[:, :2] == 3).all() and (label[:, -2:] == 9).all()


def test_crf_settings():
    assert crf_settings({"preset": "none"}) is None
    irn = crf_settings({"preset": "irn", "gt_prob": None, "bi_srgb": 7})
    assert irn["gt_prob"] == 0.7 and irn["bi_srgb"] == 7 and irn["unary"] == "labels"
    with pytest.raises(WsssError, match="crf.preset"):
        crf_settings({"preset": "fancy"})


# ---- evaluate_maps ----


def test_maps_to_label_and_tie_rule():
    maps = np.array([[[0.9, 0.5, 0.1], [0.30, 0.2, 0.0]],
                     [[0.2, 0.6, 0.5], [0.30, 0.7, 0.0]]], np.float32)
    label = maps_to_label(maps, [3, 7], bg_score=0.5)
    assert label.dtype == np.uint8
    # (0,0) .9 > .5 -> 3; (0,1) .6 > .5 -> 7; (0,2) max .5 == bg -> background
    # (1,0) .3 < .5 -> 0; (1,1) .7 -> 7; (1,2) 0 -> 0
    np.testing.assert_array_equal(label, [[3, 7, 0], [0, 7, 0]])
    np.testing.assert_array_equal(maps_to_label(maps, [3, 7], bg_score=0.1), [[3, 7, 7], [3, 7, 0]])
    np.testing.assert_array_equal(maps_to_label(maps, [3, 7], bg_score=0.0), [[3, 7, 7], [3, 7, 0]])


def test_maps_to_label_no_present_class():
    label = maps_to_label(np.zeros((0, 3, 4), np.float32), np.array([], np.int64), 0.15)
    assert label.shape == (3, 4) and label.dtype == np.uint8
    np.testing.assert_array_equal(label, 0)
