"""Backbones: output stride by dilation, channels, weights from the hub cache or a file, errors;
ResNet-38 with psa's key names."""

import copy
import re

import pytest
import torch
import torchvision

from wsss.errors import WsssError
from wsss.models import resnet38
from wsss.models.backbones import BACKBONES, build_backbone


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def vgg16_features():
    """torchvision's VGG16 conv layers, built once (its 100M-parameter FC init is slow)."""
    return torchvision.models.vgg16(weights=None).features.eval()


@pytest.fixture
def fast_vgg16(vgg16_features, monkeypatch):
    """Serve copies of the cached VGG16 conv layers to build_backbone("vgg16", ...)."""

    class Light(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = copy.deepcopy(vgg16_features)

    monkeypatch.setattr(torchvision.models, "vgg16", lambda weights=None: Light())
    return vgg16_features


def check_stages(backbone, x):
    """Every stage's output has the channels it reports; returns the feature map."""
    with torch.no_grad():
        for stage, expected in zip(backbone.stages, backbone.stage_channels):
            x = stage(x)
            assert x.shape[1] == expected
    return x


@pytest.mark.parametrize("name, channels", [("resnet18", 512), ("resnet50", 2048)])
@pytest.mark.parametrize("stride", [16, 8])
def test_resnet_output_stride_and_channels(name, channels, stride):
    backbone = build_backbone(name, output_stride=stride).eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        features = backbone(x)
    assert features.shape == (1, channels, 32 // stride, 48 // stride)
    assert backbone.out_channels == channels
    assert backbone.stage_channels[-1] == channels
    torch.testing.assert_close(check_stages(backbone, x), features)


@pytest.mark.parametrize("stride", [16, 8])
def test_vgg16_output_stride_and_channels(fast_vgg16, stride):
    backbone = build_backbone("vgg16", output_stride=stride).eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        features = backbone(x)
    assert features.shape == (1, 512, 32 // stride, 48 // stride)
    assert backbone.out_channels == 512
    assert backbone.stage_channels == [64, 128, 256, 512, 512]
    torch.testing.assert_close(check_stages(backbone, x), features)
    pools = [m for m in backbone.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == (4 if stride == 16 else 3)  # pool5 dropped; at OS 8 pool4 too


@pytest.mark.parametrize("stride", [16, 8])
def test_vgg16_conv5_dilated_by_two(fast_vgg16, stride):
    """MDC / FickleNet / SeeNet: conv5 dilated by 2 at both strides, conv1-4 undilated."""
    backbone = build_backbone("vgg16", output_stride=stride).eval()
    convs = [[m for m in stage if isinstance(m, torch.nn.Conv2d)] for stage in backbone.stages]
    assert [len(c) for c in convs] == [2, 2, 3, 3, 3]
    for stage, stage_convs in enumerate(convs):
        expected = (2, 2) if stage == 4 else (1, 1)
        for conv in stage_convs:
            assert conv.dilation == expected and conv.padding == expected
    # Same result as torchvision's conv layers up to conv5_3 + ReLU with conv5 dilated by hand
    # and the dropped pools removed (torchvision indices: pool4 = 23, conv5_x = 24, 26, 28).
    reference = copy.deepcopy(fast_vgg16[:30])
    for index in (24, 26, 28):
        reference[index].dilation = reference[index].padding = (2, 2)
    if stride == 8:
        reference = torch.nn.Sequential(*[m for i, m in enumerate(reference) if i != 23])
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), reference(x))


def test_bad_output_stride():
    with pytest.raises(WsssError, match="output_stride"):
        build_backbone("resnet18", output_stride=32)


def test_unknown_backbone_lists_choices():
    with pytest.raises(WsssError) as info:
        build_backbone("resnet7")
    message = str(info.value)
    assert "resnet7" in message
    for name in BACKBONES:
        assert name in message
    assert {"resnet18", "resnet50", "resnet38", "vgg16"} <= set(BACKBONES)


@pytest.fixture
def resnet18_file(tmp_path):
    torch.manual_seed(1)
    model = torchvision.models.resnet18(weights=None)
    # non-trivial BN statistics so that a wrong load would show
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "r18.pth"
    torch.save(model.state_dict(), path)
    return model.eval(), path


def assert_same_parameters(backbone, model):
    """Every backbone tensor equals the torchvision model's tensor of the same name."""
    reference = model.state_dict()
    names = {"0": "conv1", "1": "bn1"}
    compared = 0
    for key, value in backbone.state_dict().items():
        _, index, rest = key.split(".", 2)  # stages.<i>.<rest>
        if index == "0":
            tv_key = names[rest.rsplit(".", 1)[0]] + "." + rest.rsplit(".", 1)[1]
        else:
            tv_key = f"layer{index}.{rest}"
        torch.testing.assert_close(value, reference[tv_key], rtol=0, atol=0)
        compared += 1
    assert compared == len([k for k in reference if not k.startswith("fc.")])


def layer4_torchvision(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


@pytest.mark.parametrize("stride", [16, 8])
def test_weights_from_file(resnet18_file, stride, image):
    model, path = resnet18_file
    backbone = build_backbone("resnet18", output_stride=stride, weights=str(path)).eval()
    assert_same_parameters(backbone, model)
    # dilation instead of stride computes the torchvision (OS 32) features on a finer grid:
    # sampling every (32 / stride)-th location gives them back exactly (DeepLab's trick)
    with torch.no_grad():
        ours = backbone(image)               # (1, 512, 64/stride, 64/stride)
        theirs = layer4_torchvision(model, image)  # (1, 512, 2, 2)
    step = 32 // stride
    torch.testing.assert_close(ours[..., ::step, ::step], theirs, rtol=1e-4, atol=1e-4)


def test_weights_file_with_state_dict_key(resnet18_file, tmp_path):
    model, path = resnet18_file
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": torch.load(path, weights_only=True)}, wrapped)
    assert_same_parameters(build_backbone("resnet18", weights=str(wrapped)), model)


def test_weights_file_without_fc_is_fine(resnet18_file, tmp_path):
    model, path = resnet18_file
    state = {k: v for k, v in torch.load(path, weights_only=True).items() if not k.startswith("fc.")}
    headless = tmp_path / "headless.pth"
    torch.save(state, headless)
    assert_same_parameters(build_backbone("resnet18", weights=str(headless)), model)


def test_weights_file_missing_keys(resnet18_file, tmp_path):
    _, path = resnet18_file
    state = torch.load(path, weights_only=True)
    del state["layer3.0.conv1.weight"]
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with pytest.raises(WsssError) as info:
        build_backbone("resnet18", weights=str(partial))
    assert "partial.pth" in str(info.value) and "layer3.0.conv1.weight" in str(info.value)


def test_weights_file_of_other_architecture(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(WsssError, match="r50.pth"):
        build_backbone("resnet18", weights=str(path))


def test_weights_file_missing_or_garbage(tmp_path):
    with pytest.raises(WsssError, match="absent.pth"):
        build_backbone("resnet18", weights=str(tmp_path / "absent.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"definitely not a torch file" * 4)
    with pytest.raises(WsssError, match="garbage.pth"):
        build_backbone("resnet18", weights=str(garbage))


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # undo any set_dir()
    monkeypatch.delenv("TORCH_HUB", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize(
    "name, file",
    [("resnet18", "resnet18-f37072fd.pth"), ("resnet50", "resnet50-0676ba61.pth"), ("vgg16", "vgg16-397923af.pth")],
)
def test_imagenet_weights_missing_names_file_and_folder(empty_hub, name, file):
    with pytest.raises(WsssError) as info:
        build_backbone(name, weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert re.search(rf"\b{re.escape(file)}\b", message)
    assert str(empty_hub) in message
    assert not empty_hub.exists() or not any(empty_hub.iterdir())  # nothing was downloaded


def test_imagenet_weights_from_hub_cache(empty_hub, resnet18_file):
    model, path = resnet18_file
    empty_hub.mkdir(parents=True)
    (empty_hub / "resnet18-f37072fd.pth").write_bytes(path.read_bytes())
    backbone = build_backbone("resnet18", weights="imagenet")
    assert_same_parameters(backbone, model)


# ---- ResNet-38 (psa's resnet38d key names) --------------------------------------------------


@pytest.fixture(scope="module")
def net38():
    """One ResNet38 for the whole module (~105M parameters: slow to initialise)."""
    torch.manual_seed(2)
    net = resnet38.ResNet38()
    for module in net.modules():  # non-trivial BN statistics so that a wrong load would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def net38_file(net38, tmp_path_factory):
    """The net's weights saved like psa's converted MXNet file: no num_batches_tracked, plus
    the ImageNet classifier linear1000.*"""
    state = {k: v for k, v in net38.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["linear1000.weight"] = torch.randn(1000, 4096)
    state["linear1000.bias"] = torch.randn(1000)
    path = tmp_path_factory.mktemp("r38") / "resnet38_psa.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def backbone38(net38_file):
    """build_backbone from the file. The net it builds is allocated without its (slow, and here
    overwritten) random init: every tensor it has must then come from the file."""
    real = resnet38.ResNet38

    def uninitialised():
        with torch.device("meta"):
            return real().to_empty(device="cpu")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resnet38, "ResNet38", uninitialised)
        return build_backbone("resnet38", output_stride=8, weights=str(net38_file)).eval()


@pytest.fixture(scope="module")
def x38():
    return torch.randn(1, 3, 24, 16, generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def net38_output(net38, x38):
    with torch.no_grad():
        return net38(x38)  # (1, 4096, 3, 2)


@pytest.fixture
def meta_resnet38(monkeypatch):
    """Make build_backbone build ResNet-38 on the meta device (instant, no memory): enough for
    tests that only check which keys or shapes a file has."""
    real = resnet38.ResNet38

    def on_meta():
        with torch.device("meta"):
            return real()

    monkeypatch.setattr(resnet38, "ResNet38", on_meta)


def tiny_state(net):
    """A state dict with net's keys and shapes whose tensors share a 1-element storage (a tiny file)."""
    return {k: torch.zeros(1).expand(v.shape) for k, v in net.state_dict().items() if v.dim() > 0}


@pytest.mark.parametrize(
    "key, shape",
    [
        ("conv1a.weight", (64, 3, 3, 3)),
        ("b2.bn_branch2a.weight", (64,)),
        ("b2.conv_branch2a.weight", (128, 64, 3, 3)),
        ("b2.conv_branch1.weight", (128, 64, 1, 1)),
        ("b2_2.conv_branch2b1.weight", (128, 128, 3, 3)),
        ("b3.conv_branch1.weight", (256, 128, 1, 1)),
        ("b4_5.bn_branch2b1.running_mean", (512,)),
        ("b5.conv_branch2a.weight", (512, 512, 3, 3)),
        ("b5.conv_branch2b1.weight", (1024, 512, 3, 3)),
        ("b5.conv_branch1.weight", (1024, 512, 1, 1)),
        ("b5_2.conv_branch2a.weight", (512, 1024, 3, 3)),
        ("b6.conv_branch2a.weight", (512, 1024, 1, 1)),
        ("b6.bn_branch2b1.weight", (512,)),
        ("b6.conv_branch2b1.weight", (1024, 512, 3, 3)),
        ("b6.bn_branch2b2.running_var", (1024,)),
        ("b6.conv_branch2b2.weight", (2048, 1024, 1, 1)),
        ("b6.conv_branch1.weight", (2048, 1024, 1, 1)),
        ("b7.conv_branch2a.weight", (1024, 2048, 1, 1)),
        ("b7.conv_branch2b1.weight", (2048, 1024, 3, 3)),
        ("b7.conv_branch2b2.weight", (4096, 2048, 1, 1)),
        ("b7.conv_branch1.weight", (4096, 2048, 1, 1)),
        ("bn7.running_var", (4096,)),
    ],
)
def test_resnet38_key_names_and_shapes(net38, key, shape):
    assert tuple(net38.state_dict()[key].shape) == shape


def test_resnet38_structure(net38):
    keys = set(net38.state_dict())
    # identity shortcuts where the shape is unchanged
    for block in ["b2_1", "b2_2", "b3_1", "b4_1", "b4_5", "b5_1", "b5_2"]:
        assert f"{block}.conv_branch1.weight" not in keys
    assert not any(k.startswith("b4_6.") or k.startswith("linear1000.") for k in keys)
    # convs: conv1a, 2 in each of the 15 ResBlocks, 4 projection shortcuts, 3 + 1 in b6 and b7
    assert len([k for k in keys if k.endswith(".weight") and "conv" in k]) == 1 + 15 * 2 + 4 + 2 * 4
    # dilation: b5's first conv undilated, the rest of block 5 rate 2, blocks 6-7 rate 4
    assert net38.b5.conv_branch2a.dilation == (1, 1)
    assert net38.b5.conv_branch2b1.dilation == (2, 2) == net38.b5.conv_branch2b1.padding
    assert net38.b5_1.conv_branch2a.dilation == (2, 2) == net38.b5_1.conv_branch2b1.dilation
    assert net38.b6.conv_branch2b1.dilation == (4, 4) == net38.b6.conv_branch2b1.padding
    assert net38.b7.conv_branch2b1.dilation == (4, 4)
    assert net38.b4.conv_branch2a.stride == (2, 2) == net38.b4.conv_branch1.stride
    assert net38.b5.conv_branch2a.stride == (1, 1) == net38.b5.conv_branch1.stride
    assert (net38.b6.dropout_2b1.p, net38.b6.dropout_2b2.p) == (0.3, 0.3)
    assert (net38.b7.dropout_2b1.p, net38.b7.dropout_2b2.p) == (0.5, 0.5)
    assert not any(m.bias is not None for m in net38.modules() if isinstance(m, torch.nn.Conv2d))


def eval_bn(bn, t):
    """BatchNorm in eval mode, written out: (t - mean) / sqrt(var + eps) * weight + bias."""
    shape = (1, -1, 1, 1)
    normalised = (t - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    return normalised * bn.weight.view(shape) + bn.bias.view(shape)


@torch.no_grad()
def test_resnet38_block_arithmetic():
    """A pre-activation block is x + conv(relu(bn(conv(relu(bn(x)))))): check it by hand."""
    torch.manual_seed(3)
    block = resnet38.ResBlock(4, 6, 4).eval()
    bottleneck = resnet38.ResBlockBottleneck(4, 8, stride=2, dropout=0.5).eval()
    for bn in [m for m in [*block.modules(), *bottleneck.modules()] if isinstance(m, torch.nn.BatchNorm2d)]:
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 5, 5)
    y = torch.relu(eval_bn(block.bn_branch2a, x))
    branch = block.conv_branch2b1(torch.relu(eval_bn(block.bn_branch2b1, block.conv_branch2a(y))))
    torch.testing.assert_close(block(x), x + branch)  # identity shortcut on x, not on y
    # with a shape change the shortcut is a 1x1 conv of the *activated* input; no dropout in eval
    y = torch.relu(eval_bn(bottleneck.bn_branch2a, x))
    b = bottleneck.conv_branch2a(y)                                           # (2, 2, 3, 3)
    b = bottleneck.conv_branch2b1(torch.relu(eval_bn(bottleneck.bn_branch2b1, b)))  # (2, 4, 3, 3)
    b = bottleneck.conv_branch2b2(torch.relu(eval_bn(bottleneck.bn_branch2b2, b)))  # (2, 8, 3, 3)
    assert b.shape == (2, 8, 3, 3)
    torch.testing.assert_close(bottleneck(x), bottleneck.conv_branch1(y) + b)


def test_resnet38_psa_file_loads_and_reproduces_output(net38, backbone38, x38, net38_output):
    ours = {k: v for k, v in backbone38.state_dict().items() if not k.endswith("num_batches_tracked")}
    reference = net38.state_dict()
    file_keys = {k for k in reference if not k.endswith("num_batches_tracked")}  # as net38_file
    # every backbone tensor is the file's tensor of psa's name: stages.<i>.<psa key>
    assert {key.split(".", 2)[2] for key in ours} == file_keys
    for key, value in ours.items():
        torch.testing.assert_close(value, reference[key.split(".", 2)[2]], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(backbone38(x38), net38_output)


def test_resnet38_output_stride_and_stages(backbone38, x38, net38_output):
    assert backbone38.out_channels == 4096
    assert backbone38.stage_channels == [128, 256, 512, 1024, 4096]
    shapes = []
    with torch.no_grad():
        features = x38  # (1, 3, 24, 16)
        for stage in backbone38.stages:
            features = stage(features)
            shapes.append(tuple(features.shape[1:]))
    assert shapes == [(128, 12, 8), (256, 6, 4), (512, 3, 2), (1024, 3, 2), (4096, 3, 2)]
    # the stages run in sequence give the whole network's output (which ends with relu(bn7(.)))
    torch.testing.assert_close(features, net38_output)
    assert net38_output.min() >= 0 and net38_output.max() > 0


def test_resnet38_stages_share_one_net(net38):
    stages = resnet38.stages(net38)
    assert stages[2].b4_5 is net38.b4_5 and stages[3].b5 is net38.b5 and stages[4].bn7 is net38.bn7
    assert stages[0].conv1a is net38.conv1a


quiet_meta = pytest.mark.filterwarnings("ignore:.*meta parameter:UserWarning")  # loads into meta are no-ops


@quiet_meta
def test_resnet38_file_missing_key_is_named(net38, meta_resnet38, tmp_path):
    state = tiny_state(net38)
    del state["b5_1.conv_branch2b1.weight"]
    state["linear1000.weight"] = torch.zeros(1).expand(1000, 4096)
    path = tmp_path / "partial38.pth"
    torch.save(state, path)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(WsssError) as info:
        build_backbone("resnet38", output_stride=8, weights=str(path))
    message = str(info.value)
    assert "partial38.pth" in message and "'b5_1.conv_branch2b1.weight'" in message
    assert "\n" not in message


@quiet_meta
def test_resnet38_file_with_wrong_shape(net38, meta_resnet38, tmp_path):
    state = tiny_state(net38)
    state["b6.conv_branch2a.weight"] = torch.zeros(1).expand(256, 1024, 1, 1)
    path = tmp_path / "wrong38.pth"
    torch.save(state, path)
    with pytest.raises(WsssError, match=r"wrong38\.pth.*b6\.conv_branch2a\.weight"):
        build_backbone("resnet38", output_stride=8, weights=str(path))


@quiet_meta
def test_resnet38_tiny_file_fits(net38, meta_resnet38, tmp_path):
    """The complete key set (as psa's file) passes the key check; guards the tests above."""
    path = tmp_path / "complete38.pth"
    torch.save(tiny_state(net38), path)
    backbone = build_backbone("resnet38", output_stride=8, weights=str(path))
    assert backbone.out_channels == 4096


@pytest.mark.parametrize("stride", [16, 32])
def test_resnet38_only_output_stride_8(stride):
    with pytest.raises(WsssError, match=rf"^output_stride: resnet38 supports only 8, got {stride}$"):
        build_backbone("resnet38", output_stride=stride)


def test_resnet38_has_no_torchvision_imagenet_weights():
    with pytest.raises(WsssError) as info:
        build_backbone("resnet38", output_stride=8, weights="imagenet")
    message = str(info.value)
    assert message.startswith("weights:") and "torchvision has no ResNet-38" in message
    assert "ilsvrc-cls_rna-a1_cls1000_ep-0001.params" in message and "\n" not in message


def test_resnet38_missing_file(tmp_path):
    with pytest.raises(WsssError, match="absent38.pth"):
        build_backbone("resnet38", output_stride=8, weights=str(tmp_path / "absent38.pth"))
