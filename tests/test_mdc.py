"""MDC: one CAM per dilated block, the anti-noise fusion, the paper's label rule."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.methods.mdc import MDC

K = 4


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MDC(num_classes=K, backbone="resnet18", block_channels=16).eval()


def classifier_at_each_location(classifier, block_output):
    """A bias-free 1x1 classifier applied by hand at every location: (B, K, h, w), not ReLU'd."""
    weight = classifier.weight[:, :, 0, 0].detach()  # (K, C')
    return torch.einsum("kc,bchw->bkhw", weight, block_output)


def test_single_dilation_one_reduces_to_cam(images):
    torch.manual_seed(3)
    model = MDC(num_classes=K, dilations=(1,), block_channels=16).eval()
    with torch.no_grad():
        hidden = model.blocks[0](model.backbone(images))  # (B, C', h, w)
        raw = classifier_at_each_location(model.classifiers[0], hidden)  # (B, K, h, w)
        scores = model(images)
        maps = model.maps(images, [2, 0])
    assert raw.shape == (2, K, 4, 3)
    assert (raw < 0).any() and (raw > 0).any()  # so the ReLU matters
    assert set(maps) == {"d1"}
    torch.testing.assert_close(maps["d1"], F.relu(raw[:, [2, 0]]), rtol=1e-5, atol=1e-5)
    # class scores = GAP of the un-ReLU'd map (not of the ReLU'd one)
    torch.testing.assert_close(scores, raw.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(scores, F.relu(raw).mean(dim=(2, 3)))
    single = {"d1": maps["d1"][0]}
    assert MDC.fuse(single) is single["d1"]  # only H_0: the fusion gives H_0


def test_blocks_are_dilated_and_forward_averages_them(model, images):
    assert model.dilations == [1, 3, 6, 9]
    assert [block[0].dilation for block in model.blocks] == [(1, 1), (3, 3), (6, 6), (9, 9)]
    with torch.no_grad():
        features = model.backbone(images)
        raws = [classifier_at_each_location(c, b(features)) for b, c in zip(model.blocks, model.classifiers)]
        scores = model(images)
        maps = model.maps(images, torch.tensor([1, 3]))
    assert set(maps) == {"d1", "d3", "d6", "d9"}
    for name, raw in zip(["d1", "d3", "d6", "d9"], raws):
        assert maps[name].shape == (2, 2, 4, 3)  # padding = dilation keeps the size
        torch.testing.assert_close(maps[name], F.relu(raw[:, [1, 3]]), rtol=1e-5, atol=1e-5)
    by_hand = sum(raw.mean(dim=(2, 3)) for raw in raws) / 4
    torch.testing.assert_close(scores, by_hand, rtol=1e-5, atol=1e-5)
    # the blocks differ (different dilations see different context)
    assert not torch.allclose(raws[0], raws[3])


def test_fusion_formula_on_hand_made_maps():
    maps = {  # K' = 1, a 1 x 2 image
        "d1": torch.tensor([[[0.2, 0.0]]]),
        "d3": torch.tensor([[[0.6, 0.3]]]),
        "d6": torch.tensor([[[0.3, 0.0]]]),
        "d9": torch.tensor([[[0.0, 0.9]]]),
    }
    # paper: H_0 + (H_3 + H_6 + H_9) / 3 = [0.2 + 0.9/3, 0 + 1.2/3]
    torch.testing.assert_close(MDC.fuse(maps), torch.tensor([[[0.5, 0.4]]]))
    torch.testing.assert_close(MDC.fuse(maps, variant="paper"), torch.tensor([[[0.5, 0.4]]]))
    # mean_all: (0.2 + 0.6 + 0.3 + 0) / 4, (0 + 0.3 + 0 + 0.9) / 4
    torch.testing.assert_close(MDC.fuse(maps, variant="mean_all"), torch.tensor([[[0.275, 0.3]]]))
    # two dilated maps: the mean is over those two
    two = {"d1": maps["d1"], "d3": maps["d3"], "d9": maps["d9"]}
    torch.testing.assert_close(MDC.fuse(two), torch.tensor([[[0.5, 0.6]]]))


def test_fuse_errors_and_empty_image():
    maps = {"d3": torch.zeros(1, 2, 2)}
    with pytest.raises(WsssError, match=r"mdc\.fuse\.variant: unknown variant 'median'"):
        MDC.fuse({"d1": torch.zeros(1, 2, 2)}, variant="median")
    with pytest.raises(WsssError, match=r"mdc\.fuse\.variant: 'paper' needs the dilation-1 map d1"):
        MDC.fuse(maps)
    torch.testing.assert_close(MDC.fuse(maps, variant="mean_all"), maps["d3"])
    # an image without foreground tags: extract_maps stores one empty "cam" map
    empty = torch.zeros(0, 3, 5)
    assert MDC.fuse({"cam": empty}).shape == (0, 3, 5)


def test_pseudo_label_hand_made_example():
    present = np.array([2, 5])  # 1-based classes of the two maps
    maps = np.array([  # (K' = 2, H = 1, W = 10)
        [[0.0, 0.1, 0.2, 0.3, 0.9, 0.5, 0.1, 0.0, 0.0, 0.2]],
        [[0.0, 0.0, 0.1, 0.1, 0.2, 0.6, 0.7, 0.0, 0.4, 0.1]],
    ], np.float32)
    saliency = np.array([[0.01, 0.5, 0.5, 0.5, 0.5, 0.02, 0.5, 0.03, 0.5, 0.05]], np.float32)
    # per-pixel peak: 0 .1 .2 .3 .9 .6 .7 0 .4 .2; sorted 0 0 .1 .2 .2 .3 .4 .6 .7 .9;
    # 0.7 quantile (linear) at position 6.3: 0.4 + 0.3 * 0.2 = 0.46 -> pixels 4, 5, 6 (3 of 10).
    # background (saliency < 0.06): pixels 0, 5, 7, 9; pixel 5 is both -> 255.
    expected = np.array([[0, 255, 255, 255, 2, 255, 5, 0, 255, 0]], np.uint8)
    label = MDC.pseudo_label(maps, present, saliency)
    assert label.dtype == np.uint8 and label.shape == (1, 10)
    np.testing.assert_array_equal(label, expected)
    # a larger fraction: 0.5 quantile = 0.25 -> pixels 3 (.3, class 2) and 8 (.4, class 5) join
    label = MDC.pseudo_label(maps, present, saliency, top_fraction=0.5)
    np.testing.assert_array_equal(label, [[0, 255, 255, 2, 2, 255, 5, 0, 5, 0]])


def test_pseudo_label_needs_positive_values_and_handles_no_classes():
    saliency = np.array([[0.01, 0.5, 0.9]], np.float32)
    # all-zero map: the quantile is 0, yet nothing is foreground
    zeros = np.zeros((1, 1, 3), np.float32)
    np.testing.assert_array_equal(MDC.pseudo_label(zeros, np.array([4]), saliency), [[0, 255, 255]])
    # no classes: background where saliency is low, the rest ignored
    none = np.zeros((0, 1, 3), np.float32)
    np.testing.assert_array_equal(MDC.pseudo_label(none, np.array([], int), saliency), [[0, 255, 255]])
    with pytest.raises(WsssError, match=r"mdc\.labels\.top_fraction"):
        MDC.pseudo_label(zeros, np.array([4]), saliency, top_fraction=0)


def test_loss_is_mean_of_block_losses_and_differentiable(images):
    torch.manual_seed(2)
    model = MDC(num_classes=K, dilations=(1, 3), block_channels=16).eval()  # eval: fixed BN statistics
    tags = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    terms = model.loss(images, tags)
    assert set(terms) == {"loss", "d1", "d3"}
    loss = terms["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    with torch.no_grad():
        features = model.backbone(images)
        for name, block, classifier in zip(["d1", "d3"], model.blocks, model.classifiers):
            s = classifier_at_each_location(classifier, block(features)).mean(dim=(2, 3))  # (B, K)
            by_hand = -(tags * F.logsigmoid(s) + (1 - tags) * F.logsigmoid(-s)).mean()
            torch.testing.assert_close(terms[name].detach(), by_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss.detach(), (terms["d1"] + terms["d3"]).detach() / 2)
    loss.backward()
    for param in [model.backbone.stages[0][0].weight, *model.blocks.parameters(), *model.classifiers.parameters()]:
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_config_rebuilds_model_and_param_groups(model, images):
    assert model.config == {"num_classes": K, "backbone": "resnet18", "output_stride": 16,
                            "dilations": [1, 3, 6, 9], "block_channels": 16}
    rebuilt = MDC(**model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), model(images), rtol=0, atol=0)
    groups = model.param_groups()
    ids = [id(p) for params, _ in groups for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    multipliers = {id(p): m for params, m in groups for p in params}
    assert all(multipliers[id(p)] == 10.0 for p in model.classifiers.parameters())
    assert all(multipliers[id(p)] == 10.0 for p in model.blocks.parameters())


@pytest.mark.parametrize("dilations", [(), (1, 1), (0, 3)])
def test_bad_dilations(dilations):
    with pytest.raises(WsssError, match=r"mdc\.model\.dilations"):
        MDC(num_classes=2, dilations=dilations)
