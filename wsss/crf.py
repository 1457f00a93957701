"""Fully connected CRF refinement (Krähenbühl & Koltun, NIPS 2011) through pydensecrf.

Two presets reproduce the reference code bases:

- ``psa``: ``crf_inference`` of jiwoon-ahn/psa (Ahn & Kwak, CVPR 2018). The unary is
  ``-log(score)`` of the per-label scores (``unary_from_softmax``), Gaussian kernel
  sxy 3 compat 3, bilateral kernel sxy 80 srgb 13 compat 10, 10 mean-field iterations.
- ``irn``: ``crf_inference_label`` of jiwoon-ahn/irn (Ahn et al., CVPR 2019). The unary comes
  from the hard labels ``argmax(scores)`` with confidence ``gt_prob`` 0.7
  (``unary_from_labels``), bilateral sxy 50 srgb 5. IRN takes the argmax of the result; here
  both presets return marginals and the caller takes the argmax.

Use ``dense_crf(image, scores, **PRESETS["psa"])``.
"""

import numpy as np

from wsss.errors import WsssError

PRESETS = {
    "psa": {"unary": "softmax", "iterations": 10, "gauss_sxy": 3, "gauss_compat": 3,
            "bi_sxy": 80, "bi_srgb": 13, "bi_compat": 10},
    "irn": {"unary": "labels", "gt_prob": 0.7, "iterations": 10, "gauss_sxy": 3, "gauss_compat": 3,
            "bi_sxy": 50, "bi_srgb": 5, "bi_compat": 10},
}


def dense_crf(image, scores, unary="softmax", iterations=10, gauss_sxy=3, gauss_compat=3,
              bi_sxy=80, bi_srgb=13, bi_compat=10, gt_prob=0.7) -> np.ndarray:
    """Refine per-label scores with a dense CRF; returns the (L, H, W) float32 marginals.

    image:  (H, W, 3) uint8 RGB.
    scores: (L, H, W) non-negative per-label scores, e.g. a background score stacked on the
            class activation maps; they need not sum to 1 ("softmax" takes -log, clipped at 1e-5).
    unary:  "softmax" (psa) or "labels" (IRN: hard argmax labels with confidence ``gt_prob``).
    The marginals sum to 1 over L at every pixel. With L == 1 the answer is all ones and
    pydensecrf is not called.
    """
    image = np.asarray(image)
    scores = np.asarray(scores)
    if image.ndim != 3 or image.shape[2] != 3:
        raise WsssError(f"dense_crf: image must be (H, W, 3), got shape {image.shape}")
    if scores.ndim != 3 or scores.shape[0] < 1:
        raise WsssError(f"dense_crf: scores must be (L, H, W) with L >= 1, got shape {scores.shape}")
    n_labels, h, w = scores.shape
    if image.shape[:2] != (h, w):
        raise WsssError(f"dense_crf: image is {image.shape[0]}x{image.shape[1]} but scores are {h}x{w}")
    if unary not in ("softmax", "labels"):
        raise WsssError(f"dense_crf: unary must be 'softmax' or 'labels', got {unary!r}")
    if image.dtype != np.uint8:
        raise WsssError(f"dense_crf: image must be uint8, got {image.dtype}")
    if n_labels == 1:
        return np.ones((1, h, w), np.float32)

    # Imported here so that modules importing wsss.crf load without the C extension.
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_labels, unary_from_softmax

    scores = np.ascontiguousarray(scores, dtype=np.float32)            # (L, H, W)
    if unary == "softmax":
        u = unary_from_softmax(scores)                                   # (L, H*W) -log(score)
    else:
        if not 0 < gt_prob < 1:
            raise WsssError(f"dense_crf: gt_prob must be in (0, 1), got {gt_prob}")
        labels = scores.argmax(axis=0)                                   # (H, W) in [0, L)
        u = unary_from_labels(labels, n_labels, gt_prob=gt_prob, zero_unsure=False)  # (L, H*W)

    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(u, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=gauss_sxy, compat=gauss_compat)
    crf.addPairwiseBilateral(sxy=bi_sxy, srgb=bi_srgb, rgbim=np.array(image, dtype=np.uint8, order="C"),
                             compat=bi_compat)
    q = crf.inference(iterations)                                        # (L, H*W)
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)
