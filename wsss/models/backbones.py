"""Backbones with output stride 8 or 16 via dilation: torchvision's ResNets and VGG16, and
ResNet-38 (psa / SEAM / SC-CAM; output stride 8 only, see wsss.models.resnet38).

    build_backbone("resnet50", output_stride=16, weights="imagenet")  # -> Backbone
    backbone(x)           # (B, 3, H, W) -> (B, C, H/os, W/os)
    backbone.stages       # nn.ModuleList; stage outputs give low-level features

`weights`: "none" (random init), "imagenet" (torchvision's weights API, read from the local
torch hub cache: no download is attempted, a missing file is named in the error), or a path to
a state dict of the torchvision model. For resnet38 there are no torchvision weights: the path
must be a state dict with psa's `resnet38d` key names (converted from the authors' MXNet file).
"""

from pathlib import Path

import torch
import torchvision
from torch import nn

from wsss.errors import WsssError
from wsss.models import resnet38

RESNETS = {
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet34": ("resnet34", "ResNet34_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "resnet101": ("resnet101", "ResNet101_Weights"),
}
VGGS = {"vgg16": ("vgg16", "VGG16_Weights")}
BACKBONES = sorted(RESNETS) + ["resnet38"] + sorted(VGGS)


class Backbone(nn.Module):
    """A sequence of stages; the last stage's output is the feature map."""

    def __init__(self, stages, out_channels, stage_channels):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out_channels = out_channels
        self.stage_channels = stage_channels  # channels of each stage's output

    def forward(self, x):  # (B, 3, H, W) -> (B, C, h, w)
        for stage in self.stages:
            x = stage(x)
        return x


def build_backbone(name, output_stride=16, weights="none"):
    if name == "resnet38":  # its own stride rule: the published net exists only at OS 8
        return _resnet38(output_stride, weights)
    if output_stride not in (8, 16):
        raise WsssError(f"output_stride: must be 8 or 16, got {output_stride}")
    if name in RESNETS:
        return _resnet(name, output_stride, weights)
    if name in VGGS:
        return _vgg(name, output_stride, weights)
    raise WsssError(f"backbone: unknown name {name!r}; choose one of {', '.join(BACKBONES)}")


def _torchvision_model(name, weights_enum_name, weights, **kwargs):
    if weights in (None, "none"):
        return getattr(torchvision.models, name)(weights=None, **kwargs)
    # Find the weights before building the model, so a missing file fails fast.
    if weights == "imagenet":
        state = _imagenet_state_dict(name, weights_enum_name)
    else:
        state = _file_state_dict(weights)
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    _load(model, state, name, weights)
    return model


def _imagenet_state_dict(name, weights_enum_name):
    weights = getattr(torchvision.models, weights_enum_name).IMAGENET1K_V1
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / Path(weights.url).name
    if not file.is_file():
        raise WsssError(
            f"weights: ImageNet weights for {name} not found: put {file.name} "
            f"(from {weights.url}) into {folder}"
        )
    return _file_state_dict(file)  # a truncated download is reported like any bad file


def _file_state_dict(path):
    path = Path(path)
    if not path.is_file():
        raise WsssError(f"weights: state dict file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise WsssError(f"weights: cannot load state dict {path} ({type(exc).__name__})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _load(model, state, name, source):
    """Load a torchvision state dict; the ImageNet classifier may be missing or extra."""
    try:
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError) as exc:  # shape mismatch / not a state dict
        lines = str(exc).strip().splitlines()
        first = lines[min(1, len(lines) - 1)].strip()  # the first mismatch, on one line
        raise WsssError(f"weights: {source} does not fit {name} ({first})") from None
    head = ("fc.", "classifier.")
    # BN's batch counter is no weight (converted files such as psa's ResNet-38 lack it)
    missing = [k for k in result.missing_keys if not k.startswith(head) and not k.endswith("num_batches_tracked")]
    if missing:
        raise WsssError(f"weights: {source} lacks {len(missing)} {name} keys, e.g. {missing[0]!r}")


def _resnet(name, output_stride, weights):
    tv_name, enum_name = RESNETS[name]
    dilate = [False, output_stride == 8, True]  # layer2, layer3, layer4
    bottleneck = name in ("resnet50", "resnet101")
    kwargs = {"replace_stride_with_dilation": dilate} if bottleneck else {}
    model = _torchvision_model(tv_name, enum_name, weights, **kwargs)
    if not bottleneck:  # torchvision's BasicBlock refuses dilation: convert it after loading
        _dilate_basic_layer(model.layer4, 2 if output_stride == 16 else 4, previous=1 if output_stride == 16 else 2)
        if output_stride == 8:
            _dilate_basic_layer(model.layer3, 2, previous=1)
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    stages = [stem, model.layer1, model.layer2, model.layer3, model.layer4]
    channels = [64] + [_out_channels(layer) for layer in stages[1:]]
    return Backbone(stages, channels[-1], channels)


def _out_channels(layer):
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def _dilate_basic_layer(layer, dilation, previous):
    """Replace the stride-2 entry of a BasicBlock layer by dilation (DeepLab's trick)."""
    first = layer[0]
    first.conv1.stride = (1, 1)
    first.conv1.dilation = first.conv1.padding = (previous, previous)
    if first.downsample is not None:
        first.downsample[0].stride = (1, 1)
    convs = [first.conv2] + [c for block in layer[1:] for c in (block.conv1, block.conv2)]
    for conv in convs:
        conv.dilation = conv.padding = (dilation, dilation)


def _vgg(name, output_stride, weights):
    """VGG16 conv layers (no FC) as MDC, FickleNet and SeeNet use it: pool5 dropped and the conv5
    block dilated by 2 (OS 16); OS 8 also drops pool4 (DeepLab-LargeFOV's stride)."""
    tv_name, enum_name = VGGS[name]
    features = _torchvision_model(tv_name, enum_name, weights).features
    stages, current = [], []
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    for index, module in enumerate(features):
        drop = index == pools[-1] or (output_stride == 8 and index == pools[-2])
        if not drop:
            current.append(module)
        if index in pools:
            stages.append(nn.Sequential(*current))
            current = []
    for conv in stages[-1]:  # conv5_1 .. conv5_3
        if isinstance(conv, nn.Conv2d):
            conv.dilation = conv.padding = (2, 2)
    channels = [max(m.out_channels for m in s if isinstance(m, nn.Conv2d)) for s in stages]
    return Backbone(stages, channels[-1], channels)


def _resnet38(output_stride, weights):
    """ResNet-38 split into 5 stages (OS 2, 4, 8, 8, 8; 128, 256, 512, 1024, 4096 channels)."""
    if output_stride != 8:
        raise WsssError(f"output_stride: resnet38 supports only 8, got {output_stride}")
    if weights == "imagenet":
        raise WsssError(
            "weights: torchvision has no ResNet-38; convert psa's ilsvrc-cls_rna-a1_cls1000_ep-0001.params "
            "(MXNet) to a PyTorch state dict and give its path as weights"
        )
    # Read the file before building the 100M-parameter net, so a missing file fails fast.
    state = None if weights in (None, "none") else _file_state_dict(weights)
    net = resnet38.ResNet38()
    if state is not None:  # load before splitting: the stages share net's modules
        _load(net, state, "resnet38", weights)
    channels = list(resnet38.STAGE_CHANNELS)
    return Backbone(resnet38.stages(net), channels[-1], channels)
