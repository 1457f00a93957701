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
Grad-CAM^c = ReLU(sum_k alpha_k^c x_k), under N = 200 random draws of the dropout mask.
Aggregation: pixel u goes to class c if c's map exceeds theta (0.35) in ANY of the N draws; a
pixel claimed by several classes goes to the class with the highest mean map; unassigned pixels
are ignored. maps() returns the max and the mean over draws; fuse() applies that rule.
Seeds feed DSRG with a saliency background cue (pseudo_label).

Draws without a backward pass. Write r = s // 2, W (K, C, s, s) the classifier, u a window (a
location of x), d an offset in it and m(u, d) in {0, 1} the draw's keep mask. The head is

    S^c = (1/hw) sum_u sum_d m(u, d) W[c, :, d] . x(u + d - r)        (x = 0 outside the map).

It is linear in x, so dS^c / dx(v) = (1/hw) sum_d m'(v, d) W[c, :, d] with m'(v, d) = m(v - d + r, d)
(the keep of the window that reads v at offset d; 0 if that window lies outside the map), and
Grad-CAM's weight, the spatial mean of the gradient, is

    alpha^c = (1/hw) sum_v dS^c / dx(v) = (1/(hw)^2) sum_d n_d W[c, :, d],   n_d = sum_v m'(v, d),

n_d = the number of windows that keep offset d and read inside the map. With the per-offset class
maps P_d(c, v) = W[c, :, d] . x(v) (one 1x1 convolution with K*s*s outputs),

    Grad-CAM^c(v) = ReLU(sum_k alpha_k^c x_k(v)) = ReLU((1/(hw)^2) sum_d n_d P_d(c, v)).

So P is computed once per image and scale, and a draw is s*s counts and a weighted sum of s*s
maps: no backward pass and no expanded map (C x sh x sw: 512 x 369 x 369 floats for a 321 crop
at output stride 8). Only the counts matter, so maps() samples them directly (sample_counts): the keeps are
independent Bernoulli(1 - p), so n_d ~ Binomial(V_d, 1 - p) over the V_d windows whose offset d
reads inside the map, and n_centre = hw. That is the distribution of keep_counts(sample_mask(..)),
but s*s numbers per draw instead of s*s*h*w: for 200 draws of one VOC image (VGG16, output
stride 8, 46 x 62 features, 2 busy CPU threads) sampling masks and counting them took about 5 s,
more than the backbone (3 s); sampling the counts takes under 0.01 s, and the per-offset maps
and all 200 draws 0.08 s (benchmarks/bench_ficklenet.py).

Training uses the same sum reordered: S^c = (1/hw) sum_d W[c, :, d] . g_d with g_d = sum_v m'(v, d)
x(v), the features pooled under each offset's shifted mask. Same scores and gradients as the
expanded head, but the head's tensors over the map are the mask and its shifted planes m'
(B, s*s, h, w), without channels, instead of the expanded map (B, C, sh, sw). The classifier stays a (K, C, s, s) convolution, so checkpoints are unchanged.
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


def sample_counts(draws, batch, height, width, window, drop_rate, generator=None, device=None):
    """The keep counts n_d (N, B, s*s) of N draws, without their masks; float, like keep_counts.

    Same distribution as keep_counts(sample_mask(...)) for each draw: each of the V_d windows
    whose offset d reads inside the map keeps it independently with probability 1 - p, so n_d is
    Binomial(V_d, 1 - p); the centre is always kept and always reads inside, so n_centre = hw.
    """
    s = window
    like = torch.empty(0, device=device)
    rows, cols = _reads_inside(height, s, like).sum(0), _reads_inside(width, s, like).sum(0)  # (s,), (s,)
    valid = (rows[:, None] * cols[None, :]).flatten()  # V_d (s*s,)
    valid = valid.expand(draws, batch, s * s).contiguous()  # (N, B, s*s)
    counts = torch.binomial(valid, torch.full_like(valid, 1 - drop_rate), generator=generator)
    counts[:, :, (s * s) // 2] = height * width  # the centre offset (s // 2, s // 2)
    return counts


def keep_counts(mask, window):
    """Mask (B, 1, s*h, s*w) -> n_d (B, s*s): the windows that keep offset d and read inside the map.

    Offset d = (a, e) of window (i, j) reads x at (i + a - r, j + e - r); outside the map it reads
    the zero padding, which adds nothing to the score or its gradient, so it is not counted.
    Equals shifted_masks(mask, window).sum((2, 3)), in one contraction.
    """
    s = window
    batch, height, width = mask.shape[0], mask.shape[2] // s, mask.shape[3] // s
    keep = mask.view(batch, height, s, width, s)  # (B, i, a, j, e)
    rows, cols = _reads_inside(height, s, mask), _reads_inside(width, s, mask)  # (h, s), (w, s)
    return torch.einsum("biaje,ia,je->bae", keep, rows, cols).reshape(batch, s * s)


def _reads_inside(size, window, like):
    """(size, s), 1 where location i at offset a reads inside the map: 0 <= i + a - s // 2 < size."""
    offsets = torch.arange(window, device=like.device) - window // 2  # (s,)
    reads = torch.arange(size, device=like.device)[:, None] + offsets  # (size, s)
    return ((reads >= 0) & (reads < size)).to(like.dtype)


def shifted_masks(mask, window):
    """Mask (B, 1, s*h, s*w) -> m' (B, s*s, h, w), m'[b, d, v] = m(v - d + r, d).

    The keep of the window that reads location v at offset d (0 where that window lies outside
    the map): the mask moved from the windows to the locations they read.
    """
    s, r = window, window // 2
    batch, height, width = mask.shape[0], mask.shape[2] // s, mask.shape[3] // s
    planes = mask.view(batch, height, s, width, s).permute(0, 2, 4, 1, 3)  # (B, a, e, i, j)
    planes = F.pad(planes, (r, r, r, r))  # window (i, j) now at (i + r, j + r)
    # the window reading v at offset (a, e) is v - (a, e) + r, stored at v - (a, e) + 2r
    rows = [slice(2 * r - a, 2 * r - a + height) for a in range(s)]
    cols = [slice(2 * r - e, 2 * r - e + width) for e in range(s)]
    shifted = [planes[:, a, e, rows[a], cols[e]] for a in range(s) for e in range(s)]  # s*s x (B, h, w)
    return torch.stack(shifted, dim=1)


def head(features, weight, mask):
    """Class scores (B, K) of one draw, features (B, C, h, w), weight (K, C, s, s), mask (B, 1, sh, sw).

    S^c = (1/hw) sum_d W[c, :, d] . g_d, g_d = features pooled under offset d's shifted mask:
    the expanded head's sum reordered, without the expanded map (see the module docstring).
    """
    shifted = shifted_masks(mask, weight.shape[-1])  # m' (B, s*s, h, w)
    pooled = torch.einsum("bdhw,bchw->bcd", shifted, features)  # g (B, C, s*s)
    area = features.shape[2] * features.shape[3]
    return torch.einsum("bcd,kcd->bk", pooled, weight.flatten(2)) / area


def head_expanded(features, weight, mask):
    """The paper's head, the reference for head(): expand, drop, kernel-s stride-s conv, GAP -> (B, K)."""
    window = weight.shape[-1]
    dropped = expand(features, window) * mask  # x^expand_p   (B, C, s*h, s*w)
    return F.conv2d(dropped, weight, stride=window).mean(dim=(2, 3))  # (B, K, h, w) -> GAP


def grad_cam_expanded(features, weight, mask, classes):
    """Reference Grad-CAM of one draw by autograd through head_expanded: (B, K', h, w)."""
    return grad_cam(features, lambda x: head_expanded(x, weight, mask), classes)


def offset_maps(features, weight):
    """P (B, K, s*s, h, w), P[b, c, d] = W[c, :, d] . x_b: one 1x1 convolution with K*s*s outputs."""
    return torch.einsum("kcd,bchw->bkdhw", weight.flatten(2), features)


def draw_cams(offsets, counts):
    """P (B, K', s*s, h, w), n_d (n, B, s*s) -> each draw's Grad-CAM (n, B, K', h, w).

    ReLU((1/(hw)^2) sum_d n_d P_d). The counts are divided by hw before the sum and the result
    after it, so that half precision (amp on CUDA) neither overflows nor underflows.
    """
    area = offsets.shape[-2] * offsets.shape[-1]
    fractions = (counts / area).to(offsets.dtype)  # in [0, 1]
    return F.relu(torch.einsum("nbd,bkdhw->nbkhw", fractions, offsets)) / area


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

    def counts(self, features, draws, generator=None):  # (B, C, h, w) -> n_d (N, B, s*s)
        batch, _, height, width = features.shape
        return sample_counts(draws, batch, height, width, self.window, self.drop_rate, generator, features.device)

    def head(self, features, mask):
        """features (B, C, h, w), mask (B, 1, s*h, s*w) -> class scores (B, K)."""
        return head(features, self.classifier.weight, mask)

    def head_expanded(self, features, mask):
        """The same scores through the expanded map (the reference; memory grows with C*s*s)."""
        return head_expanded(features, self.classifier.weight, mask)

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
        whatever else was extracted before. A draw's Grad-CAM is the sum of the per-offset maps
        weighted by its keep counts (module docstring): the backbone and the per-offset maps run
        once, the counts of all draws are sampled at once ((N, B, s*s), so the result does not
        depend on the chunk size), and `draw_chunk` draws are combined at a time (it bounds the
        (n, B, K', h, w) tensor).
        """
        for key, value in (("draws", draws), ("draw_chunk", draw_chunk)):
            if not isinstance(value, int) or value < 1:
                raise WsssError(f"ficklenet.extract.{key}: must be a positive integer, got {value!r}")
        features = self.backbone(images).detach()  # (B, C, h, w): once, the randomness is in the head
        classes = torch.as_tensor(classes, dtype=torch.long, device=features.device)
        offsets = offset_maps(features, self.classifier.weight[classes].detach())  # P (B, K', s*s, h, w)
        generator = torch.Generator(device=features.device).manual_seed(seed)
        counts = self.counts(features, draws, generator)  # n_d (N, B, s*s)
        peak, total = None, 0
        for start in range(0, draws, draw_chunk):
            cams = draw_cams(offsets, counts[start : start + draw_chunk])  # (n, B, K', h, w)
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
