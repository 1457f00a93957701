"""CAM: class activation maps (Zhou et al., "Learning Deep Features for Discriminative
Localization", CVPR 2016).

Backbone -> bias-free 1x1 conv classifier -> global average pooling -> multilabel soft-margin
loss. Because the head is linear and bias-free, GAP and the classifier commute, so the map of
class c is the classifier applied at each location: M_c(x, y) = ReLU(w_c . f(x, y)) (eq. 2 of
the paper, with psa / IRN's ReLU).
"""

import torch.nn.functional as F
from torch import nn

from wsss.models.backbones import build_backbone


class CAM(nn.Module):
    def __init__(self, num_classes, backbone="resnet18", output_stride=16, weights="none"):
        super().__init__()
        # Constructor arguments, saved in checkpoints; weights are in the state dict then.
        self.config = {"num_classes": num_classes, "backbone": backbone, "output_stride": output_stride}
        self.backbone = build_backbone(backbone, output_stride, weights)
        self.classifier = nn.Conv2d(self.backbone.out_channels, num_classes, 1, bias=False)

    def forward(self, images):  # (B, 3, H, W) -> class scores (B, K)
        features = self.backbone(images)  # (B, C, h, w)
        return self.classifier(features).mean(dim=(2, 3))

    def loss(self, images, tags, index=None):
        """tags: (B, K) multi-hot; index: (B,) dataset positions (unused here, SC-CAM needs them).
        Returns named loss terms; `loss` is their sum."""
        cls = F.multilabel_soft_margin_loss(self(images), tags)
        return {"loss": cls, "cls": cls}

    def maps(self, images, classes):
        """Non-negative maps of the given 0-based foreground classes: {"cam": (B, K', h, w)}."""
        cams = F.relu(self.classifier(self.backbone(images)))  # (B, K, h, w)
        return {"cam": cams[:, classes]}

    @staticmethod
    def fuse(maps):
        """One map per class from the named maps (K', H, W): CAM has only one."""
        return maps["cam"]

    def param_groups(self):
        """(parameters, lr multiplier): new layers learn 10x faster, as in psa / IRN."""
        return [(list(self.backbone.parameters()), 1.0), (list(self.classifier.parameters()), 10.0)]
