"""MDC: multi-dilated convolution (Wei et al., "Revisiting Dilated Convolution: A Simple
Approach for Weakly- and Semi-Supervised Semantic Segmentation", CVPR 2018).

After the backbone, k parallel blocks, one per dilation rate d (the paper: d = 1, 3, 6, 9):
a 3x3 convolution with dilation d, then a classifier and global average pooling. Each block is
trained with the multilabel (sigmoid) loss on the image tags; we average the k losses. Each
block gives its own CAM (Zhou et al.): the bias-free 1x1 classifier applied at every location,
ReLU'd. Larger dilations spread the discriminative evidence of a part to its neighbours, so
less discriminative object regions light up too.

Anti-noise fusion (Sec. 3.2): with H_0 the d = 1 map and H_1..H_nd the dilated ones,

    H = H_0 + (1 / n_d) sum_{i=1}^{n_d} H_i

true object regions are shared by several dilations and survive the mean; false positives of a
single dilation are damped, and adding H_0 keeps the precise d = 1 regions. The paper's
ablation averages all four maps instead ("mean_all", about 1 point worse).

Pseudo labels (Sec. 4.1, following AE-PSL): pixels "in the top 30% belonging to the unique
largest value" of the fused map are foreground with that class; pixels with normalised saliency
below 0.06 are background; conflicting and unassigned pixels are ignored (255).
No official code exists.
"""

import numpy as np
import torch.nn.functional as F
from torch import nn

from wsss.data.voc import IGNORE
from wsss.errors import WsssError
from wsss.methods.saliency import label_inputs
from wsss.models.backbones import build_backbone

VARIANTS = ("paper", "mean_all")


class MDC(nn.Module):
    def __init__(self, num_classes, backbone="resnet18", output_stride=16, weights="none",
                 dilations=(1, 3, 6, 9), block_channels=512):
        super().__init__()
        dilations = [int(d) for d in dilations]
        if not dilations or min(dilations) < 1 or len(set(dilations)) != len(dilations):
            # the map names d1, d3, ... must be unique
            raise WsssError(f"mdc.model.dilations: must be distinct positive integers, got {dilations}")
        if block_channels < 1:
            raise WsssError(f"mdc.model.block_channels: must be positive, got {block_channels}")
        self.config = {"num_classes": num_classes, "backbone": backbone, "output_stride": output_stride,
                       "dilations": dilations, "block_channels": block_channels}
        self.dilations = dilations
        self.backbone = build_backbone(backbone, output_stride, weights)
        channels = self.backbone.out_channels
        # padding = dilation keeps the feature size, so every block's map is (h, w)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, block_channels, 3, padding=d, dilation=d), nn.ReLU(inplace=True))
            for d in dilations
        )
        # bias-free, so GAP and the classifier commute and the CAM is exact (as in cam.py)
        self.classifiers = nn.ModuleList(nn.Conv2d(block_channels, num_classes, 1, bias=False) for _ in dilations)

    def block_maps(self, images):
        """Per-block class maps before ReLU: [(B, K, h, w)] in the order of `dilations`."""
        features = self.backbone(images)  # (B, C, h, w)
        return [classifier(block(features)) for block, classifier in zip(self.blocks, self.classifiers)]

    def forward(self, images):  # (B, 3, H, W) -> (B, K): mean of the blocks' GAP scores
        scores = [raw.mean(dim=(2, 3)) for raw in self.block_maps(images)]  # [(B, K)]
        return sum(scores) / len(scores)

    def loss(self, images, tags, index=None):
        """All blocks trained jointly: loss = mean over blocks of the multilabel soft-margin loss."""
        terms = {
            f"d{d}": F.multilabel_soft_margin_loss(raw.mean(dim=(2, 3)), tags)
            for d, raw in zip(self.dilations, self.block_maps(images))
        }
        return {"loss": sum(terms.values()) / len(terms), **terms}

    def maps(self, images, classes):
        """One CAM per dilation: {"d1": (B, K', h, w), "d3": ..., ...}, ReLU'd."""
        return {f"d{d}": F.relu(raw)[:, classes] for d, raw in zip(self.dilations, self.block_maps(images))}

    @staticmethod
    def fuse(maps, variant="paper"):
        """maps {"d1": (K', H, W), "d3": ...} -> (K', H, W).

        "paper": H_0 + mean of the dilated maps (H_0 alone when only d1 is present);
        "mean_all": mean of all maps, the paper's ablation."""
        if variant not in VARIANTS:
            raise WsssError(f"mdc.fuse.variant: unknown variant {variant!r}; choose {' or '.join(VARIANTS)}")
        if not maps:
            raise WsssError("mdc.fuse: no maps to fuse")
        if all(len(m) == 0 for m in maps.values()):
            # an image without foreground tags: extract_maps writes one empty map, nothing to fuse
            return next(iter(maps.values()))
        if variant == "mean_all":
            return sum(maps.values()) / len(maps)
        if "d1" not in maps:
            raise WsssError(f"mdc.fuse.variant: 'paper' needs the dilation-1 map d1, got {sorted(maps)}; "
                            "add 1 to mdc.model.dilations or use mean_all")
        dilated = [m for name, m in maps.items() if name != "d1"]
        if not dilated:
            return maps["d1"]
        return maps["d1"] + sum(dilated) / len(dilated)

    @staticmethod
    def pseudo_label(maps, present, saliency, top_fraction=0.3, saliency_threshold=0.06):
        """The paper's label rule. maps (K', H, W) fused in [0, 1], present (K',) 1-based class
        indices, saliency (H, W) in [0, 1] -> uint8 label (H, W), 255 = ignore.

        Our reading of "the top 30% of the fused map's values": a pixel is a foreground candidate
        when its largest class value is >= the (1 - top_fraction) quantile of this image's
        per-pixel largest values (np.quantile, linear interpolation) and > 0; its label is the
        class with that largest value. Background: saliency < saliency_threshold. A pixel that is
        both (conflict) or neither (unassigned) is ignored."""
        if not 0 < top_fraction <= 1:
            raise WsssError(f"mdc.labels.top_fraction: must be in (0, 1], got {top_fraction}")
        maps, saliency = label_inputs("mdc", maps, saliency)
        background = saliency < saliency_threshold  # (H, W)
        label = np.full(saliency.shape, IGNORE, np.uint8)
        label[background] = 0
        if len(maps):
            peak = maps.max(0)  # (H, W) the largest class value of each pixel
            foreground = (peak >= np.quantile(peak, 1 - top_fraction)) & (peak > 0)
            classes = np.asarray(present, dtype=np.uint8)[maps.argmax(0)]  # (H, W)
            label[foreground] = classes[foreground]
            label[foreground & background] = IGNORE  # conflict
        return label

    def param_groups(self):
        """(parameters, lr multiplier): the new blocks and classifiers learn 10x faster."""
        new = list(self.blocks.parameters()) + list(self.classifiers.parameters())
        return [(list(self.backbone.parameters()), 1.0), (new, 10.0)]
