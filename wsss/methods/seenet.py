"""SeeNet: self-erasing network (Hou et al., "Self-Erasing Network for Integral Object
Attention", NeurIPS 2018).

Three branches share the backbone features x (B, C, h, w); each is a small head (3x3 conv +
ReLU, bias-free 1x1 classifier, global average pooling):

- S_A sees x and gives the attention M_A.
- Ternary mask T_A from M_A (Sec. 3.1), with two thresholds delta_h > delta_l:
      T = 0  where M_A > delta_h   (confident foreground: erased)
      T = -1 where M_A < delta_l   (confident background)
      T = 1  otherwise             (the uncertain region left to discover)
- Conditionally reversed ReLU (Sec. 3.2): C-ReLU(x) = max(x, 0) * B, with B a per-pixel mask.
- S_B sees C-ReLU(x, T): the confident foreground is erased and the background sign-flipped,
  so S_B must find the rest of the object without wandering into the background. Trained
  with the image tags.
- S_C sees C-ReLU(x, B_C), B_C = 1 on the background (T = -1), else 0, and is trained towards
  all-zero labels: the background region must not look like any class.

Loss (eq. 3): L = L_SA + L_SB + L_SC, each the multilabel soft-margin loss.

The attention behind T: M_A detached, ReLU'd, each class map divided by its maximum over the
image, then the maximum over the image's tagged classes (in training: its ground-truth tags;
at inference, without tags: the requested classes, which the extraction stage sets to the
image's tagged classes, so training and inference see the same attention).

Thresholds: delta_h = 0.7, delta_l = 0.05 as in the paper; the released deploy file (Caffe,
deploy only) uses 0.8 and 0.0. Inference in the released code takes the maximum of the
normalised S_A and S_B maps (see `fuse`). The proxy ground truth of Alg. 1 is `pseudo_label`.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wsss.data.voc import IGNORE
from wsss.errors import WsssError
from wsss.methods.saliency import label_inputs
from wsss.models.backbones import build_backbone

def ternary_mask(attention, delta_h=0.7, delta_l=0.05):
    """attention in [0, 1] -> T of the same shape: 0 above delta_h, -1 below delta_l, else 1."""
    ones = torch.ones_like(attention)
    mask = torch.where(attention < delta_l, -ones, ones)
    return torch.where(attention > delta_h, torch.zeros_like(attention), mask)


def c_relu(x, mask):
    """Conditionally reversed ReLU: max(x, 0) * mask. x (B, C, h, w), mask (B, 1, h, w)."""
    return F.relu(x) * mask


def class_attention(maps, select):
    """maps (B, K, h, w) raw S_A maps, select (B, K) 0/1 classes to use -> (B, 1, h, w) in [0, 1].

    ReLU, each class map divided by its maximum over the image, then the max over the selected
    classes (an image with none selected gets zero attention: all background)."""
    maps = F.relu(maps.detach())  # the mask steers S_B and S_C; no gradient flows through it
    peak = maps.flatten(2).max(dim=2).values  # (B, K)
    normalised = maps / (peak[:, :, None, None] + 1e-5)
    return (normalised * select[:, :, None, None]).max(dim=1, keepdim=True).values


def _head(in_channels, width, num_classes):
    conv = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True))
    # bias-free classifier, so GAP of its map is the class score (CAM)
    return nn.Sequential(conv, nn.Conv2d(width, num_classes, 1, bias=False))


class SeeNet(nn.Module):
    def __init__(self, num_classes, backbone="resnet18", output_stride=16, weights="none",
                 delta_h=0.7, delta_l=0.05, head_channels=512):
        super().__init__()
        if not 0 <= delta_l < delta_h <= 1:
            raise WsssError(f"seenet.model: need 0 <= delta_l < delta_h <= 1, got delta_l={delta_l}, delta_h={delta_h}")
        self.config = {"num_classes": num_classes, "backbone": backbone, "output_stride": output_stride,
                       "delta_h": delta_h, "delta_l": delta_l, "head_channels": head_channels}
        self.delta_h, self.delta_l = delta_h, delta_l
        self.backbone = build_backbone(backbone, output_stride, weights)
        channels = self.backbone.out_channels
        # each branch: 3x3 conv (head_channels) + ReLU + bias-free 1x1 classifier
        self.head_a = _head(channels, head_channels, num_classes)  # S_A
        self.head_b = _head(channels, head_channels, num_classes)  # S_B
        self.head_c = _head(channels, head_channels, num_classes)  # S_C

    def branch_maps(self, images, select):
        """select (B, K) 0/1: the classes whose attention builds the mask.
        Returns the raw (un-ReLU'd) maps of S_A, S_B, S_C, each (B, K, h, w), and the mask T."""
        x = self.backbone(images)  # (B, C, h, w)
        map_a = self.head_a(x)  # (B, K, h, w)
        mask = ternary_mask(class_attention(map_a, select), self.delta_h, self.delta_l)  # (B, 1, h, w)
        map_b = self.head_b(c_relu(x, mask))
        map_c = self.head_c(c_relu(x, (mask == -1).to(x.dtype)))  # background only
        return map_a, map_b, map_c, mask

    def forward(self, images):  # (B, 3, H, W) -> S_A's class scores (B, K)
        return self.head_a(self.backbone(images)).mean(dim=(2, 3))

    def loss(self, images, tags, index=None):
        """L_SA + L_SB (image tags) + L_SC (all-zero labels)."""
        map_a, map_b, map_c, _ = self.branch_maps(images, tags)
        sa = F.multilabel_soft_margin_loss(map_a.mean(dim=(2, 3)), tags)
        sb = F.multilabel_soft_margin_loss(map_b.mean(dim=(2, 3)), tags)
        sc = F.multilabel_soft_margin_loss(map_c.mean(dim=(2, 3)), torch.zeros_like(tags))
        return {"loss": sa + sb + sc, "sa": sa, "sb": sb, "sc": sc}

    def maps(self, images, classes):
        """{"a": ReLU(M_A), "b": ReLU(M_B)}, each (B, K', h, w). The mask behind M_B uses the
        attention of the requested classes (no tags at inference)."""
        classes = torch.as_tensor(classes, dtype=torch.long, device=images.device)
        select = torch.zeros(len(images), self.head_a[1].out_channels, device=images.device)
        select[:, classes] = 1
        map_a, map_b, _, _ = self.branch_maps(images, select)
        return {"a": F.relu(map_a)[:, classes], "b": F.relu(map_b)[:, classes]}

    @staticmethod
    def fuse(maps):
        """Elementwise max of the (already max-normalised) S_A and S_B maps, (K', H, W)."""
        if maps and all(len(m) == 0 for m in maps.values()):
            # an image without foreground tags: extract_maps writes one empty map, nothing to fuse
            return next(iter(maps.values()))
        if "a" not in maps or "b" not in maps:
            raise WsssError(f"seenet.fuse: needs the maps 'a' and 'b' of SeeNet's extraction, got {sorted(maps)}")
        return torch.maximum(torch.as_tensor(maps["a"]), torch.as_tensor(maps["b"]))

    @staticmethod
    def pseudo_label(maps, present, saliency, saliency_threshold=0.06, conflict_threshold=0.8):
        """The proxy ground truth (Alg. 1). maps (K', H, W) fused attention in [0, 1], present
        (K',) 1-based classes, saliency (H, W) in [0, 1] -> uint8 label (H, W), 255 = ignore.

        - background (0) where saliency < saliency_threshold; saliency decides first, so the
          rules below apply only to the other pixels;
        - foreground score of class k: the harmonic mean 2 a_k s / (a_k + s) of attention and
          saliency; the pixel takes present[argmax] (saliency is shared by the classes, so this is
          the attention's argmax; the score being 0 marks attention-free pixels);
        - 255 where two or more classes have attention > conflict_threshold, and where the best
          score is 0 (no class attends to the pixel).
        The paper names no values for these two thresholds: 0.06 is MDC's / AE-PSL's saliency
        threshold, 0.8 is ours."""
        maps, saliency = label_inputs("seenet", maps, saliency)
        background = saliency < saliency_threshold  # (H, W)
        label = np.full(saliency.shape, IGNORE, np.uint8)
        if len(maps):
            score = 2 * maps * saliency / np.maximum(maps + saliency, 1e-12)  # (K', H, W) harmonic mean
            label = np.asarray(present, dtype=np.uint8)[score.argmax(0)]
            label[score.max(0) <= 0] = IGNORE
            label[(maps > conflict_threshold).sum(0) >= 2] = IGNORE
        label[background] = 0
        return label

    def param_groups(self):
        """(parameters, lr multiplier): the three new heads learn 10x faster."""
        heads = [p for head in (self.head_a, self.head_b, self.head_c) for p in head.parameters()]
        return [(list(self.backbone.parameters()), 1.0), (heads, 10.0)]
