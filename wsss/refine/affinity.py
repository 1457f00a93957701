"""AffinityNet (Ahn & Kwak, "Learning Pixel-level Semantic Affinity with Image-level Supervision",
CVPR 2018; code jiwoon-ahn/psa): predicts how likely two nearby pixels belong to the same class.

Network (psa's `resnet38_aff`): the outputs of the backbone's last three stages (ResNet-38's
conv4, conv5, conv6) each go through a 1x1 conv to 64, 128 and 256 channels with ELU, are
concatenated (448 channels) and mixed by one more 1x1 conv with ELU; output stride 8. The
affinity of feature-grid cells i and j is a_ij = exp(-mean_c |f_i,c - f_j,c|) (the paper's
eq. 1 uses the L1 norm; psa's code the channel mean, as here).

Pairs: every two cells closer than `radius` (psa: 5) on the stride-8 grid, each unordered pair
once: psa's half-disk of offsets (0, dx) for dx = 1 .. r-1 and (dy, dx) for dy = 1 .. r-1,
|dx| < r, dy^2 + dx^2 < r^2 (34 offsets for r = 5). psa drops the cells within r of the crop's
left, right and bottom borders as pair origins; here every pair inside the grid counts.

Training labels (psa `infer_cls.py` + `voc12/data.py`): two dense CRFs of the CAMs with the
background score (1 - max_c M_c)^alpha, a low alpha (4) that over-estimates the background and a
high alpha (32 in psa's `infer_cls.py`; SEAM uses 24) that under-estimates it. Foreground where
the low-alpha CRF says foreground, background where the high-alpha CRF says background,
everything else ignored (see `affinity_labels`). The label map is sampled at the feature grid
(psa average-pools the CRF scores over each 8 x 8 cell and takes the argmax; here the centre pixel
of each cell). A pair of two background cells is a bg pair, of two cells of the same foreground
class an fg pair, of different classes a negative pair; pairs touching an ignored cell are left out.

Loss (psa `train_aff.py`): L = L_bg / 4 + L_fg / 4 + L_neg / 2 with
L_bg = mean over bg pairs of -log(a + 1e-5), likewise L_fg, and L_neg = mean over negative pairs
of -log(1 + 1e-5 - a); each mean divides by (count + 1e-5).
"""

import torch
import torch.nn.functional as F
from torch import nn

from wsss.data.voc import IGNORE
from wsss.errors import WsssError
from wsss.models.backbones import build_backbone

EPS = 1e-5  # psa's constant in the logs and the pair counts
LEVEL_CHANNELS = (64, 128, 256)  # psa: conv4 -> 64, conv5 -> 128, conv6 -> 256 (448 in all)


def pair_offsets(radius):
    """The half-disk of (dy, dx) offsets with 0 < dy^2 + dx^2 < radius^2, one per unordered pair."""
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(1 - radius, radius)
                if dy * dy + dx * dx < radius * radius]
    return offsets


def _windows(height, width, dy, dx):
    """Slices (rows, cols) of the pair origins and of their partners at offset (dy, dx)."""
    x0 = max(0, -dx)
    x1 = max(x0, width - max(0, dx))  # empty when the grid is narrower than the offset
    origins = (slice(0, max(0, height - dy)), slice(x0, x1))
    partners = (slice(dy, height), slice(x0 + dx, x1 + dx))
    return origins, partners


def pair_indices(height, width, radius):
    """Flat indices (from, to), each (P,) int64, of every pair of grid cells within the radius.

    The order (offset by offset, row-major inside) is that of `pair_affinities` and `pair_labels`."""
    grid = torch.arange(height * width).view(height, width)
    froms, tos = [grid.new_zeros(0)], [grid.new_zeros(0)]  # radius < 2: no pairs
    for dy, dx in pair_offsets(radius):
        src, dst = _windows(height, width, dy, dx)
        froms.append(grid[src].reshape(-1))
        tos.append(grid[dst].reshape(-1))
    return torch.cat(froms), torch.cat(tos)


def pair_affinities(features, radius):
    """features (B, C, h, w) -> affinities (B, P) = exp(-mean_c |f_from - f_to|).

    One offset at a time, so memory stays at a few feature maps however many pairs there are."""
    height, width = features.shape[-2:]
    out = [features.new_zeros(len(features), 0)]
    for dy, dx in pair_offsets(radius):
        src, dst = _windows(height, width, dy, dx)
        diff = (features[:, :, src[0], src[1]] - features[:, :, dst[0], dst[1]]).abs().mean(1)  # (B, h', w')
        out.append(torch.exp(-diff).flatten(1))
    return torch.cat(out, 1)


def pair_labels(labels, radius):
    """labels (B, h, w) int (255 = ignore) -> float masks bg, fg, neg, each (B, P)."""
    height, width = labels.shape[-2:]
    a, b = [labels.new_zeros(len(labels), 0)], [labels.new_zeros(len(labels), 0)]
    for dy, dx in pair_offsets(radius):
        src, dst = _windows(height, width, dy, dx)
        a.append(labels[:, src[0], src[1]].flatten(1))
        b.append(labels[:, dst[0], dst[1]].flatten(1))
    a, b = torch.cat(a, 1), torch.cat(b, 1)
    valid = (a != IGNORE) & (b != IGNORE)
    same = valid & (a == b)
    return (same & (a == 0)).float(), (same & (a != 0)).float(), (valid & (a != b)).float()


def affinity_loss(aff, bg, fg, neg):
    """psa's loss on affinities (B, P) and pair masks (B, P): {"loss", "bg", "fg", "neg"}."""
    bg_loss = -(bg * torch.log(aff + EPS)).sum() / (bg.sum() + EPS)
    fg_loss = -(fg * torch.log(aff + EPS)).sum() / (fg.sum() + EPS)
    neg_loss = -(neg * torch.log(1 + EPS - aff)).sum() / (neg.sum() + EPS)
    loss = bg_loss / 4 + fg_loss / 4 + neg_loss / 2
    return {"loss": loss, "bg": bg_loss, "fg": fg_loss, "neg": neg_loss}


def affinity_labels(low, high):
    """Training label from the low-alpha and high-alpha CRF labels (uint8 (H, W), 0 = background):
    the low one's foreground, the high one's background (it wins where they disagree, as in psa),
    255 where the low one says background but the high one foreground."""
    label = low.copy()
    label[low == 0] = IGNORE
    label[high == 0] = 0
    return label


def grid_labels(labels, size):
    """labels (B, H, W) -> (B, h, w): the label at the centre pixel of each feature-grid cell."""
    (height, width), (h, w) = labels.shape[-2:], size
    rows = ((torch.arange(h) + 0.5) * height / h).long().clamp(max=height - 1).to(labels.device)
    cols = ((torch.arange(w) + 0.5) * width / w).long().clamp(max=width - 1).to(labels.device)
    return labels[:, rows][:, :, cols]


class AffinityNet(nn.Module):
    def __init__(self, backbone="resnet18", output_stride=8, weights="none", radius=5):
        super().__init__()
        if radius < 2:
            raise WsssError(f"random_walk.model.radius: must be at least 2 (psa: 5), got {radius}")
        # Constructor arguments, saved in checkpoints; weights are in the state dict then.
        self.config = {"backbone": backbone, "output_stride": output_stride, "radius": radius}
        self.radius = radius
        self.backbone = build_backbone(backbone, output_stride, weights)
        levels = self.backbone.stage_channels[-3:]
        self.reduce = nn.ModuleList(nn.Conv2d(c, o, 1, bias=False) for c, o in zip(levels, LEVEL_CHANNELS))
        self.head = nn.Conv2d(sum(LEVEL_CHANNELS), sum(LEVEL_CHANNELS), 1, bias=False)
        for conv in self.reduce:
            nn.init.kaiming_normal_(conv.weight)
        nn.init.xavier_uniform_(self.head.weight, gain=4)  # psa's init of its last 1x1 conv

    def forward(self, images):  # (B, 3, H, W) -> affinity features (B, 448, h, w), float32
        x, levels = images, []
        for stage in self.backbone.stages:
            x = stage(x)
            levels.append(x)
        size = levels[-1].shape[-2:]
        reduced = []
        for conv, level in zip(self.reduce, levels[-3:]):
            level = F.elu(conv(level))
            if level.shape[-2:] != size:  # e.g. output stride 16: earlier stages are larger
                level = F.interpolate(level, size=size, mode="bilinear", align_corners=False)
            reduced.append(level)
        # float32 from here: under float16 autocast 1 + 1e-5 - a would round to 1 - a and log(0) follow
        return F.elu(self.head(torch.cat(reduced, 1))).float()

    def affinities(self, images):
        """(B, 3, H, W) -> (affinities (B, P), grid size (h, w)); pairs as in pair_indices."""
        features = self(images)
        return pair_affinities(features, self.radius), tuple(features.shape[-2:])

    def loss(self, images, labels):
        """images (B, 3, H, W), labels (B, H, W) int64 with 255 = ignore -> named loss terms."""
        aff, size = self.affinities(images)
        bg, fg, neg = pair_labels(grid_labels(labels, size), self.radius)
        return affinity_loss(aff, bg, fg, neg)

    def param_groups(self):
        """(parameters, lr multiplier): the new 1x1 convs learn 10x faster, as in psa."""
        new = list(self.reduce.parameters()) + list(self.head.parameters())
        return [(list(self.backbone.parameters()), 1.0), (new, 10.0)]
