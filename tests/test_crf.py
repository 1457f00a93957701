"""Dense CRF: snaps a shifted, noisy label boundary onto an image edge; matches pydensecrf."""

import numpy as np
import pytest

from wsss.crf import PRESETS, dense_crf
from wsss.errors import WsssError

H, W, EDGE, SHIFT = 32, 48, 24, 4   # image edge at column 24, score boundary at column 28


def edge_case(seed=0):
    """(H, W, 3) image: dark left half, bright right half; (2, H, W) noisy scores whose
    foreground starts SHIFT columns right of the image edge. Returns image, scores, truth."""
    rng = np.random.default_rng(seed)
    image = np.full((H, W, 3), 30, np.uint8)
    image[:, EDGE:] = 220
    fg = np.where(np.arange(W) >= EDGE + SHIFT, 0.65, 0.35)            # (W,)
    fg = np.clip(fg[None, :] + rng.uniform(-0.2, 0.2, (H, W)), 0.01, 0.99)
    scores = np.stack([1.0 - fg, fg]).astype(np.float32)              # (2, H, W)
    truth = np.broadcast_to(np.arange(W) >= EDGE, (H, W)).astype(int)  # (H, W)
    return image, scores, truth


@pytest.mark.parametrize("preset", ["psa", "irn"])
def test_crf_moves_boundary_to_image_edge(preset):
    image, scores, truth = edge_case()
    before = int((scores.argmax(0) != truth).sum())
    q = dense_crf(image, scores, **PRESETS[preset])
    assert q.shape == (2, H, W) and q.dtype == np.float32
    after = int((q.argmax(0) != truth).sum())
    assert before >= SHIFT * H            # the shifted columns at least
    assert after <= before // 10, (before, after)
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)


def test_scores_need_not_sum_to_one():
    image, scores, truth = edge_case(seed=1)
    q = dense_crf(image, 3.0 * scores, **PRESETS["psa"])
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)
    assert (q.argmax(0) != truth).sum() <= SHIFT * H // 10


def test_matches_pydensecrf_called_directly():
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_labels, unary_from_softmax

    image, scores, _ = edge_case(seed=2)
    image, scores = image[:12, 16:36], scores[:, :12, 16:36]   # small, non-contiguous views
    h, w = image.shape[:2]

    # psa crf_inference
    d = dcrf.DenseCRF2D(w, h, 2)
    d.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.ascontiguousarray(scores))))
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=80, srgb=13, rgbim=np.ascontiguousarray(image), compat=10)
    ref = np.array(d.inference(10)).reshape(2, h, w)
    np.testing.assert_allclose(dense_crf(image, scores, **PRESETS["psa"]), ref, atol=1e-6)

    # IRN crf_inference_label
    d = dcrf.DenseCRF2D(w, h, 2)
    d.setUnaryEnergy(unary_from_labels(scores.argmax(0), 2, gt_prob=0.7, zero_unsure=False))
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=50, srgb=5, rgbim=np.ascontiguousarray(image), compat=10)
    ref = np.array(d.inference(10)).reshape(2, h, w)
    np.testing.assert_allclose(dense_crf(image, scores, **PRESETS["irn"]), ref, atol=1e-6)


def test_single_label_is_all_ones():
    q = dense_crf(np.zeros((5, 7, 3), np.uint8), np.full((1, 5, 7), 0.3), unary="labels")
    np.testing.assert_array_equal(q, np.ones((1, 5, 7), np.float32))


def test_float64_scores_and_many_labels():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    q = dense_crf(image, rng.random((5, 9, 11)))                        # float64 in
    assert q.shape == (5, 9, 11) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)


def test_shape_validation():
    img = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(WsssError, match="4x5.*4x6"):
        dense_crf(img, np.ones((2, 4, 6)))
    with pytest.raises(WsssError, match="L >= 1"):
        dense_crf(img, np.ones((0, 4, 5)))
    with pytest.raises(WsssError, match=r"\(L, H, W\)"):
        dense_crf(img, np.ones((4, 5)))
    with pytest.raises(WsssError, match=r"\(H, W, 3\)"):
        dense_crf(np.zeros((4, 5), np.uint8), np.ones((2, 4, 5)))
    with pytest.raises(WsssError, match="uint8"):
        dense_crf(img.astype(np.float32), np.ones((2, 4, 5)))
    with pytest.raises(WsssError, match="unary"):
        dense_crf(img, np.ones((2, 4, 5)), unary="bogus")


def test_read_only_inputs():
    """Images decoded by PIL (np.asarray) are read-only; pydensecrf must still get them."""
    image, scores, truth = edge_case(seed=2)
    image.setflags(write=False)
    scores.setflags(write=False)
    q = dense_crf(image, scores, **PRESETS["psa"])
    assert (q.argmax(0) != truth).sum() <= SHIFT * H // 10
