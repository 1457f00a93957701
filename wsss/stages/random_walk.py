"""random_walk: pseudo labels from a method's fused maps refined by AffinityNet's random walk
(psa `infer_aff.py`; wsss.refine.random_walk), the second half after train_affinity.

Per image: the maps of the present classes with the background score (1 - max_c M_c)^alpha
stacked first (psa: alpha 16 on its max-normalised CAMs, which fuse_maps' maps are too; SEAM: 6
on min-max-normalised ones), average-pooled to the affinity net's stride-8 grid (the image is
zero-padded to a multiple of the stride first, as psa does), walked `steps` steps with
T = column-normalised A^beta (psa: beta 8, t 256; SEAM: beta 8, t 64), upsampled bilinearly to
the image and, optionally, refined by a dense CRF (`crf`, as SEAM's `--crf` option; the walked
scores are divided by their per-pixel sum first). The label is the argmax: no pixel is ignored.

The net and the walk run in the main process (on the GPU when there is one); the CRFs, when
set, in `threads` worker processes. The walk builds the dense (n, n) transition matrix only when
it fits `dense_limit` bytes, else it walks on a sparse matrix (see wsss.refine.random_walk).
"""

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wsss import shards
from wsss.checkpoint import read as read_checkpoint
from wsss.crf import dense_crf
from wsss.data.transforms import normalize
from wsss.data.voc import VOCDataset
from wsss.device import pick_device
from wsss.errors import WsssError
from wsss.io import StoreReader, StoreWriter
from wsss.parallel import ordered_map, shared
from wsss.refine.affinity import AffinityNet, pair_indices
from wsss.refine.random_walk import random_walk
from wsss.stages.make_labels import background_score, crf_settings

DENSE_LIMIT = 2 ** 28  # bytes (256 MiB): a 500 x 375 image's dense walk needs 70 MB


def load_affinity(path):
    state = read_checkpoint(path)
    if state.get("method") != "affinity":
        raise WsssError(f"{path}: not an affinity checkpoint (it holds {state.get('method')!r}); run train_affinity")
    net = AffinityNet(**state["config"])
    net.load_state_dict(state["state_dict"])
    return net


@torch.no_grad()
def walk_scores(net, image, maps, alpha, beta, steps, dense_limit, device):
    """image uint8 (H, W, 3), maps (K', H, W) in [0, 1] -> walked scores (K'+1, H, W) float32,
    background first."""
    height, width = image.shape[:2]
    scores = np.concatenate([background_score({"type": "power", "alpha": alpha}, maps)[None], maps])
    if len(maps) == 0:  # no foreground tag: background everywhere, nothing to walk
        return scores.astype(np.float32)
    stride = net.config["output_stride"]
    pad = (0, -width % stride, 0, -height % stride)  # right, bottom: psa pads to a multiple of 8
    aff, size = net.affinities(F.pad(normalize(image)[None], pad).to(device))  # (1, P), (h, w)
    cams = F.pad(torch.from_numpy(scores.astype(np.float32))[None], pad)  # (1, K'+1, H', W')
    padded = cams.shape[-2:]
    cams = F.adaptive_avg_pool2d(cams, size).to(device).flatten(2)[0]  # (K'+1, h * w)
    walked = random_walk(cams, aff[0], pair_indices(*size, net.radius), beta, steps, dense_limit)
    walked = F.interpolate(walked.view(1, -1, *size), size=padded, mode="bilinear", align_corners=False)
    return walked[0, :, :height, :width].cpu().numpy()  # (K'+1, H, W)


def run(checkpoint, fused, root, classes, split, output, alpha, beta, steps, crf=None, device="auto", threads=1,
        shard=None, dense_limit=DENSE_LIMIT):
    """checkpoint: train_affinity's; fused: the method's fused maps of the split (or shard);
    alpha: background exponent; beta, steps: the walk's; crf: a crf block (None or preset none:
    no CRF); shard: "i-of-n" (None = the whole split); dense_limit: bytes allowed for the walk's
    dense matrices."""
    device = pick_device(device)
    net = load_affinity(checkpoint).to(device).eval()
    voc = VOCDataset(root, classes, split)
    ids = shards.select(voc.ids, shard)
    crf_params = crf_settings(crf) if crf else None
    params = {"checkpoint": str(checkpoint), "fused": str(fused), "shard": shard, "alpha": alpha, "beta": beta,
              "steps": steps, "crf": crf_params, "dense_limit": dense_limit}
    shared(crf=crf_params)  # seen by the workers
    with StoreReader(fused) as reader, StoreWriter(
        output, "random_walk", reader.attrs.get("method"), reader.classes, params
    ) as store:

        def walked():  # (image, walked scores, present classes) per id, computed lazily here
            for image_id in ids:
                arrays, attrs = reader.read(image_id)
                image = voc.image(image_id)
                maps = arrays["map"].astype(np.float32)  # (K', H, W)
                yield image, walk_scores(net, image, maps, alpha, beta, steps, dense_limit, device), attrs["classes"]

        labels = ordered_map(label_of, walked(), max(1, threads) if crf_params else 1)
        for image_id, label in tqdm(zip(ids, labels), total=len(ids), desc=f"random_walk {split}", mininterval=5):
            store.write(image_id, {"label": label})


def label_of(item):
    """(image, walked scores (K'+1, H, W), present (K',) 1-based) -> uint8 label (H, W)."""
    image, scores, present = item
    if shared()["crf"] is not None and len(scores) > 1:
        probs = scores / np.maximum(scores.sum(0, keepdims=True), 1e-5)
        scores = dense_crf(image, probs, **shared()["crf"])
    lookup = np.concatenate([[0], present]).astype(np.uint8)
    return lookup[scores.argmax(0)]
