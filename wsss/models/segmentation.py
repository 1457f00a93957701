"""DeepLab-v3 (torchvision's head) on any of our backbones.

torchvision builds DeepLab-v3 only on ResNet-50/101 and MobileNet; wrapping our Backbone lets
the segmentation net use the same backbones (VGG16, small ResNets for CPU runs) as the
classifiers.
"""

import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

from wsss.models.backbones import build_backbone


class SegmentationNet(nn.Module):
    def __init__(self, num_classes, backbone="resnet18", output_stride=16, weights="none"):
        super().__init__()
        self.config = {"num_classes": num_classes, "backbone": backbone, "output_stride": output_stride}
        self.backbone = build_backbone(backbone, output_stride, weights)
        # DeepLab-v3's ASPP rates: (6, 12, 18) at output stride 16, doubled at 8.
        rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        self.head = DeepLabHead(self.backbone.out_channels, num_classes, rates)

    def forward(self, images):  # (B, 3, H, W) -> logits (B, C, H, W)
        logits = self.head(self.backbone(images))  # (B, C, h, w)
        return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)

    def param_groups(self):
        return [(list(self.backbone.parameters()), 1.0), (list(self.head.parameters()), 10.0)]
