"""FickleNet (Lee et al., "FickleNet: Weakly and Semi-supervised Semantic Image Segmentation
using Stochastic Inference", CVPR 2019).

The classifier is an s x s convolution (s = 9) over the last features x (C, h, w) in which every
sliding window keeps a random subset of its hidden units: spatial dropout with rate p (0.9),
sampled per window, uniform over channels, the window's centre always kept. "Map expansion"
(Sec. 3.1, Fig. 2b) makes this one ordinary operation: zero-pad x by s // 2 and copy every
s x s window side by side into x^expand (C, sh, sw), so windows no longer overlap; drop units of
x^expand (x^expand_p), then a convolution with kernel s and stride s gives the class map
(K, h, w) -> GAP -> scores S -> multilabel soft-margin loss. Dropout stays on at inference.

Localization (Sec. 3.2): Grad-CAM of each class with respect to x (before expansion),
Grad-CAM^c = ReLU(sum_k alpha_k^c x_k), under N = 200 random draws of the dropout mask. The
randomness is only in the head, so the backbone runs once per image and the head is resampled.
Aggregation: pixel u goes to class c if c's map exceeds theta (0.35) in ANY of the N draws; a
pixel claimed by several classes goes to the class with the highest mean map; unassigned pixels
are ignored. maps() returns the max and the mean over draws; fuse() applies that rule.
Seeds feed DSRG with a saliency background cue (pseudo_label).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wsss.errors import WsssError
from wsss.methods.gradcam import grad_cam
from wsss.methods.saliency import label_inputs
from wsss.models.backbones import build_backbone


def expand(x, window):
    """Map expansion: (B, C, h, w) -> (B, C, s*h, s*w), block (i, j) = the s x s window at (i, j).

    expanded[b, c, i*s + a, j*s + d] = x[b, c, i + a - s//2, j + d - s//2] (0 outside x), so a
    convolution with kernel s and stride s on it is an ordinary s x s convolution with
    padding s // 2 on x.
    """
    batch, channels, height, width = x.shape
    s = window
    cols = F.unfold(x, kernel_size=s, padding=s // 2)  # (B, C*s*s, h*w), ordered (C, a, d) x (i, j)
    cols = cols.view(batch, channels, s, s, height, width)  # (B, C, a, d, i, j)
    return cols.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels, height * s, width * s)


def sample_mask(batch, height, width, window, drop_rate, generator=None, device=None):
    """Centre-preserving spatial dropout mask for an expanded map: (B, 1, s*h, s*w), 0 or 1.

    One Bernoulli(1 - p) keep per (window, offset), shared by all channels (the 1), and the
    centre of every window always kept. No 1 / (1 - p) rescaling: training and inference both
    sample the same distribution, and Grad-CAM is normalised per draw, so a scale is moot.
    """
    s = window
    keep = torch.rand(batch, 1, height, s, width, s, generator=generator, device=device) >= drop_rate
    keep[:, :, :, s // 2, :, s // 2] = True  # (B, 1, i, a, j, d): the centre offset a = d = s // 2
    return keep.reshape(batch, 1, height * s, width * s).float()


class FickleNet(nn.Module):
    def __init__(
        self,
        num_classes,
        backbone="resnet18",
        output_stride=16,
        weights="none",
        window=9,
        drop_rate=0.9,
    ):
        super().__init__()
        if not isinstance(window, int) or window < 1 or window % 2 == 0:
            raise WsssError(f"ficklenet.model.window: must be a positive odd integer, got {window!r}")
        if not 0 <= drop_rate <= 1:
            raise WsssError(f"ficklenet.model.drop_rate: must be in [0, 1], got {drop_rate!r}")
        # Constructor arguments, saved in checkpoints; weights are in the state dict then.
        self.config = {
            "num_classes": num_classes,
            "backbone": backbone,
            "output_stride": output_stride,
            "window": window,
            "drop_rate": drop_rate,
        }
        self.window, self.drop_rate = window, drop_rate
        self.backbone = build_backbone(backbone, output_stride, weights)
        # kernel s, stride s on the expanded map = one s x s window per output location
        self.classifier = nn.Conv2d(self.backbone.out_channels, num_classes, window, stride=window, bias=False)

    def mask(self, features, generator=None):  # (B, C, h, w) -> (B, 1, s*h, s*w)
        batch, _, height, width = features.shape
        return sample_mask(batch, height, width, self.window, self.drop_rate, generator, features.device)

    def head(self, features, mask):
        """features (B, C, h, w), mask (B, 1, s*h, s*w) -> class scores (B, K)."""
        dropped = expand(features, self.window) * mask  # x^expand_p   (B, C, s*h, s*w)
        return self.classifier(dropped).mean(dim=(2, 3))  # (B, K, h, w) -> GAP

    def forward(self, images):  # (B, 3, H, W) -> class scores (B, K), one random draw
        features = self.backbone(images)  # (B, C, h, w)
        return self.head(features, self.mask(features))  # dropout on in train and eval

    def loss(self, images, tags, index=None):
        """tags: (B, K) multi-hot; index unused. Returns named loss terms; `loss` is their sum."""
        cls = F.multilabel_soft_margin_loss(self(images), tags)
        return {"loss": cls, "cls": cls}

    def maps(self, images, classes, draws=200, draw_chunk=50, seed=0):
        """{"max", "mean"} over `draws` random draws of the Grad-CAM maps, each (B, K', h, w).

        draws, draw_chunk, seed: extraction settings (ficklenet.extract), not the model's, so
        changing them reruns extraction only.

        Each draw's map is divided by its own per-class maximum first (so theta applies per
        draw). The generator is seeded afresh at every call: the same image gives the same maps
        whatever else was extracted before. Draws are processed `draw_chunk` at a time as one
        batch (draw-major: row n * B + b is draw n of image b); every draw samples its own mask
        in turn, so the result does not depend on the chunk size.
        """
        for key, value in (("draws", draws), ("draw_chunk", draw_chunk)):
            if not isinstance(value, int) or value < 1:
                raise WsssError(f"ficklenet.extract.{key}: must be a positive integer, got {value!r}")
        features = self.backbone(images).detach()  # (B, C, h, w): once, the randomness is in the head
        batch = features.shape[0]
        generator = torch.Generator(device=features.device).manual_seed(seed)
        peak, total = None, 0
        for start in range(0, draws, draw_chunk):
            count = min(draw_chunk, draws - start)
            masks = torch.cat([self.mask(features, generator) for _ in range(count)])  # (n*B, 1, sh, sw)
            repeated = features.repeat(count, 1, 1, 1)  # (n*B, C, h, w)
            cams = grad_cam(repeated, lambda x: self.head(x, masks), classes)  # (n*B, K', h, w)
            cams = cams.view(count, batch, *cams.shape[1:])  # (n, B, K', h, w)
            top = cams.amax(dim=(3, 4), keepdim=True)  # per draw, image and class
            cams = cams / torch.where(top > 0, top, torch.ones_like(top))  # in [0, 1]; all-zero stays 0
            chunk_peak = cams.amax(dim=0)  # (B, K', h, w)
            peak = chunk_peak if peak is None else torch.maximum(peak, chunk_peak)
            total = total + cams.sum(dim=0)
        return {"max": peak, "mean": total / draws}

    @staticmethod
    def fuse(maps, theta=0.35):
        """maps {"max", "mean"}: (K', H, W) -> localization seeds (K', H, W).

        Pixel u goes to class c if max_c(u) > theta; claimed by several classes, to the one with
        the highest mean. The assigned class keeps its mean value (> 0, since some draw exceeded
        theta), every other class is 0, and unassigned pixels are 0 for all classes. These are
        seeds, not dense maps: most of the image is 0.
        """
        if not 0 <= theta <= 1:
            raise WsssError(f"ficklenet.fuse.theta: must be in [0, 1], got {theta!r}")
        peak, mean = maps["max"], maps["mean"]  # (K', H, W)
        seeds = torch.zeros_like(mean)
        if mean.shape[0] == 0:
            return seeds
        claimed = peak > theta  # (K', H, W)
        winner = torch.where(claimed, mean, torch.full_like(mean, -float("inf"))).argmax(0, keepdim=True)
        assigned = claimed.any(0, keepdim=True)  # (1, H, W)
        seeds.scatter_(0, winner, mean.gather(0, winner) * assigned)
        return seeds

    @staticmethod
    def pseudo_label(maps, present, saliency, saliency_threshold=0.06):
        """maps (K', H, W) fused seeds, present (K',) 1-based, saliency (H, W) -> uint8 (H, W).

        Foreground seed: present[argmax] where the fused map is > 0. Background (DSRG's cue):
        saliency < saliency_threshold. A pixel that is both, or neither, is ignored (255).
        """
        maps, saliency = label_inputs("ficklenet", maps, saliency)
        present = np.asarray(present)
        label = np.full(saliency.shape, 255, np.uint8)
        if len(maps):
            seed = maps.max(0) > 0
            classes = present.astype(np.uint8)[maps.argmax(0)]
        else:
            seed = np.zeros(saliency.shape, bool)
            classes = np.zeros(saliency.shape, np.uint8)
        background = saliency < saliency_threshold
        label[seed & ~background] = classes[seed & ~background]
        label[background & ~seed] = 0
        return label

    def param_groups(self):
        """(parameters, lr multiplier): the new classifier learns 10x faster, as for CAM."""
        return [(list(self.backbone.parameters()), 1.0), (list(self.classifier.parameters()), 10.0)]
