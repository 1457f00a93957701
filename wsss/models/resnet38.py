"""ResNet-38: the wide pre-activation ResNet of Wu, Shen & van den Hengel, "Wider or Deeper:
Revisiting the ResNet Model for Visual Recognition" (Pattern Recognition 2019; model A1 of the
ImageNet experiments), as used by psa, SEAM and SC-CAM.

The last two downsamplings are replaced by dilation (rate 2 in block 5, rate 4 in blocks 6-7), so
the output stride is 8 and the feature map has 4096 channels:

    conv1a                      3 -> 64                        OS 1
    b2,  b2_1, b2_2             64 -> 128     (stride 2)       OS 2
    b3,  b3_1, b3_2             128 -> 256    (stride 2)       OS 4
    b4,  b4_1 .. b4_5           256 -> 512    (stride 2)       OS 8
    b5,  b5_1, b5_2             512 -> 1024   (dilation 2)     OS 8
    b6   (bottleneck)           1024 -> 2048  (dilation 4)     OS 8
    b7   (bottleneck)           2048 -> 4096  (dilation 4)     OS 8
    relu(bn7(.))                                               OS 8

The blocks are pre-activation (He et al. 2016, "Identity mappings"): BN + ReLU come before each
convolution, so a block's output is a plain sum and only the network's end (bn7) normalises it.

Attribute names follow psa's `resnet38d`, so the state dict converted from the authors' MXNet
weights (ilsvrc-cls_rna-a1_cls1000_ep-0001.params) loads with `load_state_dict(..., strict=False)`;
its extra `linear1000.*` classifier is ignored.
"""

from collections import OrderedDict

import torch.nn.functional as F
from torch import nn

# the residual blocks in order, grouped as `stages(net)` splits them (the first stage also
# holds conv1a, the last also bn7 + ReLU)
STAGE_BLOCKS = [
    ["b2", "b2_1", "b2_2"],
    ["b3", "b3_1", "b3_2"],
    ["b4", "b4_1", "b4_2", "b4_3", "b4_4", "b4_5"],
    ["b5", "b5_1", "b5_2"],
    ["b6", "b7"],
]
BLOCKS = [name for group in STAGE_BLOCKS for name in group]
STAGE_CHANNELS = [128, 256, 512, 1024, 4096]  # channels of each stage's output


def _conv(in_channels, out_channels, kernel, stride=1, dilation=1):
    """A bias-free conv; 'same' padding for the 3x3 ones (padding = dilation)."""
    padding = dilation if kernel == 3 else 0
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=padding, dilation=dilation, bias=False)


class ResBlock(nn.Module):
    """Two 3x3 convs: x + conv(relu(bn(conv(relu(bn(x)))))).

    The shortcut is a 1x1 conv of the *activated* input when the shape changes (pre-activation
    style), else the identity on x itself.
    """

    def __init__(self, in_channels, mid_channels, out_channels, stride=1, first_dilation=None, dilation=1):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = _conv(in_channels, mid_channels, 3, stride, first_dilation)
        self.bn_branch2b1 = nn.BatchNorm2d(mid_channels)
        self.conv_branch2b1 = _conv(mid_channels, out_channels, 3, dilation=dilation)
        if in_channels != out_channels or stride != 1:
            self.conv_branch1 = _conv(in_channels, out_channels, 1, stride)

    def forward(self, x):  # (B, in, H, W) -> (B, out, H/stride, W/stride)
        y = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(y) if hasattr(self, "conv_branch1") else x
        branch = self.conv_branch2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(y))))
        return shortcut + branch


class ResBlockBottleneck(nn.Module):
    """1x1 (out/4) -> 3x3 (out/2) -> 1x1 (out), pre-activated, with spatial dropout before the
    last two convs (the wide blocks 6 and 7 of ResNet-38; psa calls it ResBlock_bot)."""

    def __init__(self, in_channels, out_channels, stride=1, dilation=1, dropout=0.0):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(in_channels)
        self.conv_branch2a = _conv(in_channels, out_channels // 4, 1, stride)
        self.bn_branch2b1 = nn.BatchNorm2d(out_channels // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = _conv(out_channels // 4, out_channels // 2, 3, dilation=dilation)
        self.bn_branch2b2 = nn.BatchNorm2d(out_channels // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = _conv(out_channels // 2, out_channels, 1)
        if in_channels != out_channels or stride != 1:
            self.conv_branch1 = _conv(in_channels, out_channels, 1, stride)

    def forward(self, x):  # (B, in, H, W) -> (B, out, H/stride, W/stride)
        y = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(y) if hasattr(self, "conv_branch1") else x
        b = self.conv_branch2a(y)                                   # (B, out/4, h, w)
        b = self.dropout_2b1(F.relu(self.bn_branch2b1(b)))
        b = self.conv_branch2b1(b)                                  # (B, out/2, h, w)
        b = self.dropout_2b2(F.relu(self.bn_branch2b2(b)))
        b = self.conv_branch2b2(b)                                  # (B, out, h, w)
        return shortcut + b


class ResNet38(nn.Module):
    """ResNet-38 without its classifier: (B, 3, H, W) -> (B, 4096, H/8, W/8)."""

    def __init__(self):
        super().__init__()
        self.conv1a = _conv(3, 64, 3)

        self.b2 = ResBlock(64, 128, 128, stride=2)
        self.b2_1 = ResBlock(128, 128, 128)
        self.b2_2 = ResBlock(128, 128, 128)

        self.b3 = ResBlock(128, 256, 256, stride=2)
        self.b3_1 = ResBlock(256, 256, 256)
        self.b3_2 = ResBlock(256, 256, 256)

        self.b4 = ResBlock(256, 512, 512, stride=2)
        for i in range(1, 6):
            setattr(self, f"b4_{i}", ResBlock(512, 512, 512))

        # Block 5 would have stride 2 in the classification net: dilation keeps OS 8 instead.
        # Its first conv still sees the OS-8 grid unchanged, hence first_dilation 1.
        self.b5 = ResBlock(512, 512, 1024, first_dilation=1, dilation=2)
        self.b5_1 = ResBlock(1024, 512, 1024, dilation=2)
        self.b5_2 = ResBlock(1024, 512, 1024, dilation=2)

        self.b6 = ResBlockBottleneck(1024, 2048, dilation=4, dropout=0.3)
        self.b7 = ResBlockBottleneck(2048, 4096, dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(4096)

    def forward(self, x):  # (B, 3, H, W) -> (B, 4096, H/8, W/8)
        x = self.conv1a(x)
        for name in BLOCKS:
            x = getattr(self, name)(x)
        return F.relu(self.bn7(x))


def stages(net):
    """Split a ResNet38 into 5 sequential stages sharing its modules (so weights loaded into `net`
    are the stages' weights). Outputs: OS 2 / 4 / 8 / 8 / 8 with STAGE_CHANNELS channels; all but
    the last are pre-activation sums (no BN/ReLU applied yet)."""

    def seq(*names):
        return nn.Sequential(OrderedDict((name, getattr(net, name)) for name in names))

    groups = [list(group) for group in STAGE_BLOCKS]
    groups[0].insert(0, "conv1a")
    groups[-1].append("bn7")
    result = [seq(*group) for group in groups]
    result[-1].add_module("relu7", nn.ReLU())  # the final activation of a pre-activation net
    # outputs: (B, 128, H/2, W/2), (B, 256, H/4, W/4), then (B, 512 | 1024 | 4096, H/8, W/8)
    return result
