"""Deep Seeded Region Growing (Huang et al., CVPR 2018, "Weakly-Supervised Semantic Segmentation
Network with Deep Seeded Region Growing"); FickleNet trains its segmentation network this way.

The network learns from sparse seeds (255 = unlabelled elsewhere) and, at every step, grows them
from its own prediction H = softmax of its logits at the output stride:

- Region growing: an unlabelled pixel u joins class c when c = argmax H_u, H_{u,c} exceeds the
  class's threshold (background 0.99, foreground 0.85: the reference code's th1 / th2) and u is
  connected to a seed of c through such pixels. Connectivity is 8-neighbour, as the reference
  code (speedinghzl/DSRG, pylayers/CC_labeling_8.py) labels components; here scipy.ndimage.label
  does it. Seeds are regrown from the original seeds at every step, never kept between steps.
  Only the image's classes (its tags, background always) grow.
- Seeding loss (L_seed): mean -log H_{u,c} over the foreground seed pixels plus the same mean over
  the background seed pixels, each per image, averaged over the batch (balanced, as the reference
  SeedLossLayer3; an image without seeds of a kind adds 0 to that term).
- Boundary loss (L_boundary, from SEC): KL(Q || H) averaged over pixels, where Q is a dense CRF of
  H on the image downscaled to the output size; Q is a constant target here.

Loss = L_seed + L_boundary. Where this differs from the reference code: its CRF takes -H as the
unary energy (SEC's krahenbuhl2013 wrapper), ours -log H (`wsss.crf`, "softmax" unary); it sends
an approximate gradient through the CRF, ours treats Q as a constant; it grows from the
CRF-refined H (`grow_from: crf` reproduces that), the paper from H itself (the default).
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from wsss.crf import dense_crf
from wsss.data.transforms import MEAN, STD
from wsss.data.voc import IGNORE
from wsss.errors import WsssError

BG_THRESHOLD = 0.99
FG_THRESHOLD = 0.85
# The reference CRF (SEC's, scale_factor 12 at the 41 x 41 output): bilateral sxy 80 / 12, srgb 13,
# weight 10; Gaussian sxy 3 / 12, weight 3; 10 mean-field iterations.
CRF = {"unary": "softmax", "iterations": 10, "gauss_sxy": 3 / 12, "gauss_compat": 3,
       "bi_sxy": 80 / 12, "bi_srgb": 13, "bi_compat": 10}
GROW_FROM = ("softmax", "crf")
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def grow(probs, seeds, bg_threshold=BG_THRESHOLD, fg_threshold=FG_THRESHOLD, present=None):
    """Grow seeds into the unlabelled pixels the network is confident about.

    probs: (C, h, w) class probabilities (background first); seeds: (h, w) uint8 class indices,
    255 = unlabelled; present: the class indices allowed to grow (background and the image's
    tags), None = the classes of the seeds. Returns the grown (h, w) uint8 seeds; seed pixels
    never change class. With thresholds above 0.5 the argmax over all classes equals the
    reference code's argmax over the present classes wherever the threshold is passed.
    """
    probs, seeds = np.asarray(probs), np.asarray(seeds)
    if probs.shape[1:] != seeds.shape:
        raise WsssError(f"dsrg: probabilities {probs.shape[1:]} and seeds {seeds.shape} differ in size")
    winner, confidence = probs.argmax(0), probs.max(0)  # (h, w), (h, w)
    free = seeds == IGNORE
    if present is None:
        present = np.unique(seeds[~free])
    grown = seeds.astype(np.uint8).copy()
    for c in present:
        threshold = bg_threshold if c == 0 else fg_threshold
        candidate = free & (winner == c) & (confidence > threshold)
        components, _ = ndimage.label(candidate | (seeds == c), structure=EIGHT_NEIGHBOURS)
        reached = np.unique(components[seeds == c])  # components holding a seed of c
        grown[candidate & np.isin(components, reached[reached > 0])] = c
    return grown


def present_classes(tags):
    """(K,) multi-hot foreground tags -> class indices with background: [0, k + 1, ...]."""
    return np.concatenate([[0], np.flatnonzero(np.asarray(tags) > 0.5) + 1])


def seed_loss(log_probs, seeds):
    """Balanced seeding loss. log_probs (B, C, h, w); seeds (B, h, w) int64, 255 = no seed."""
    labelled = seeds != IGNORE
    picked = log_probs.gather(1, torch.where(labelled, seeds, 0)[:, None])[:, 0]  # (B, h, w)
    terms = []
    for kind in (labelled & (seeds == 0), labelled & (seeds > 0)):  # background, foreground
        count = kind.sum((1, 2)).clamp(min=1)  # (B,)
        terms.append((-(picked * kind).sum((1, 2)) / count).mean())
    return terms[0] + terms[1]


def boundary_loss(log_probs, crf_probs):
    """Mean over pixels of KL(Q || P) = sum_c Q log(Q / P). log_probs, crf_probs (B, C, h, w)."""
    kl = crf_probs * (torch.log(crf_probs.clamp(min=1e-5)) - log_probs)  # (B, C, h, w)
    return kl.sum(1).mean()


def image_pixels(images, size):
    """Normalised (B, 3, H, W) images -> uint8 (B, h, w, 3) RGB at `size`, for the CRF."""
    small = F.interpolate(images.detach().float(), size=size, mode="bilinear", align_corners=False)
    rgb = small.permute(0, 2, 3, 1).cpu().numpy() * STD + MEAN  # (B, h, w, 3) in [0, 1]
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def crf_marginals(pixels, probs, crf):
    """(B, h, w, 3) uint8 and (B, C, h, w) probabilities -> (B, C, h, w) CRF marginals."""
    return np.stack([dense_crf(image, p, **crf) for image, p in zip(pixels, probs)])


def downscale_seeds(seeds, size):
    """(B, H, W) labels -> (B, h, w) by nearest neighbour (no new class values appear)."""
    if tuple(seeds.shape[1:]) == tuple(size):
        return seeds.long()
    return F.interpolate(seeds[:, None].float(), size=size, mode="nearest")[:, 0].long()


def dsrg_loss(net_output, images, seeds, tags, bg_threshold=BG_THRESHOLD, fg_threshold=FG_THRESHOLD,
              crf=None, grow_from="softmax"):
    """One DSRG training step's loss.

    net_output: (B, C, h, w) logits at the output stride; images: (B, 3, H, W) normalised;
    seeds: (B, H, W) or (B, h, w) labels with 255 = unlabelled; tags: (B, K) multi-hot.
    Returns {"loss", "seed", "boundary", "seeded", "grown"}: seeded / grown are the fractions of
    pixels labelled before and after growing (logged per epoch, so a run shows whether seeds grow).
    """
    if grow_from not in GROW_FROM:
        raise WsssError(f"segmentation.dsrg.grow_from: {grow_from!r} is not one of {', '.join(GROW_FROM)}")
    if net_output.shape[0] == 0:  # a batch of strong masks only (semi-supervised)
        zero = net_output.sum() * 0
        return {"loss": zero, "seed": zero, "boundary": zero, "seeded": zero.detach(), "grown": zero.detach()}
    log_probs = F.log_softmax(net_output.float(), dim=1)  # (B, C, h, w)
    size = log_probs.shape[2:]
    probs = log_probs.detach().exp().cpu().numpy()
    q = crf_marginals(image_pixels(images, size), probs, {**CRF, **(crf or {})})  # (B, C, h, w)
    source = probs if grow_from == "softmax" else q
    small = downscale_seeds(seeds, size).cpu().numpy().astype(np.uint8)  # (B, h, w)
    tags = tags.detach().cpu().numpy()
    grown = np.stack([grow(source[b], small[b], bg_threshold, fg_threshold, present_classes(tags[b]))
                      for b in range(len(small))])
    seed = seed_loss(log_probs, torch.from_numpy(grown).long().to(log_probs.device))
    boundary = boundary_loss(log_probs, torch.from_numpy(q).to(log_probs.device))
    seeded, labelled = float(np.mean(small != 255)), float(np.mean(grown != 255))
    return {"loss": seed + boundary, "seed": seed, "boundary": boundary,
            "seeded": torch.tensor(seeded), "grown": torch.tensor(labelled)}
