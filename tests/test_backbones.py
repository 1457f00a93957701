"""Backbones: output stride by dilation, channels, weights from the hub cache or a file, errors."""

import copy
import re

import pytest
import torch
import torchvision

from wsss.errors import WsssError
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
    assert len(pools) == (4 if stride == 16 else 3)
    if stride == 16:  # pool5 dropped: exactly torchvision's conv5_3 + ReLU output
        with torch.no_grad():
            torch.testing.assert_close(features, fast_vgg16[:30](x))


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
    assert {"resnet18", "resnet50", "vgg16"} <= set(BACKBONES)


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
