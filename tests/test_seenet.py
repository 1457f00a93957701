"""SeeNet: ternary mask, C-ReLU, the three branches and their losses, fusion, proxy labels."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.methods.seenet import SeeNet, c_relu, class_attention, ternary_mask

K = 3
TAGS = torch.tensor([[1.0, 0, 1], [0, 1, 0]])


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # output stride 8: 4 x 4 maps, so the mask has all three values (checked where it matters)
    return SeeNet(num_classes=K, backbone="resnet18", output_stride=8).eval()


def by_hand(model, images, select):
    """The branches written out: features, raw S_A map, mask T (from the attention of the
    selected classes), raw S_B and S_C maps."""
    with torch.no_grad():
        x = model.backbone(images)  # (B, C, h, w)
        map_a = model.head_a(x)  # (B, K, h, w)
        a = F.relu(map_a)
        a = a / (a.amax(dim=(2, 3), keepdim=True) + 1e-5)  # each class max-normalised
        attention = (a * select[:, :, None, None]).amax(dim=1, keepdim=True)  # (B, 1, h, w)
        mask = torch.ones_like(attention)
        mask[attention < model.delta_l] = -1
        mask[attention > model.delta_h] = 0
        map_b = model.head_b(F.relu(x) * mask)
        map_c = model.head_c(F.relu(x) * (mask == -1).float())
    return x, map_a, mask, map_b, map_c


def test_ternary_mask_hand_made():
    attention = torch.tensor([[0.0, 0.04, 0.05, 0.3, 0.7, 0.71, 1.0]])
    expected = torch.tensor([[-1.0, -1, 1, 1, 1, 0, 0]])  # the thresholds themselves are "uncertain"
    torch.testing.assert_close(ternary_mask(attention, 0.7, 0.05), expected)
    torch.testing.assert_close(ternary_mask(attention), expected)  # the paper's defaults
    # the released deploy file's 0.8 / 0.0: no background at all
    torch.testing.assert_close(ternary_mask(attention, 0.8, 0.0), torch.tensor([[1.0, 1, 1, 1, 1, 1, 0]]))


def test_c_relu_hand_made():
    x = torch.tensor([[[[-1.0, 2, 3]], [[4.0, -5, 6]]]])  # (B=1, C=2, h=1, w=3)
    mask = torch.tensor([[[[0.0, -1, 1]]]])  # (1, 1, 1, 3): erase, flip, keep
    expected = torch.tensor([[[[0.0, -2, 3]], [[0.0, 0, 6]]]])  # max(x, 0) * mask, per channel
    torch.testing.assert_close(c_relu(x, mask), expected)


def test_class_attention_hand_made():
    maps = torch.tensor([[  # (B=1, K=3, h=1, w=3), raw
        [[2.0, 1.0, -1.0]],   # normalised: 1, .5, 0
        [[0.5, 1.0, 0.25]],   # normalised: .5, 1, .25
        [[4.0, 0.0, -3.0]],   # normalised: 1, 0, 0
    ]])
    got = class_attention(maps, torch.tensor([[1.0, 1, 0]]))
    torch.testing.assert_close(got, torch.tensor([[[[1.0, 1.0, 0.25]]]]), atol=1e-4, rtol=0)
    got = class_attention(maps, torch.tensor([[0.0, 1, 0]]))
    torch.testing.assert_close(got, torch.tensor([[[[0.5, 1.0, 0.25]]]]), atol=1e-4, rtol=0)
    assert (class_attention(maps, torch.zeros(1, 3)) == 0).all()  # no tag: all background


def test_loss_terms_and_zero_target_of_sc(model, images):
    x, map_a, mask, map_b, map_c = by_hand(model, images, TAGS)
    assert {-1.0, 0.0, 1.0} <= set(mask.unique().tolist())  # every branch of the mask is exercised
    terms = model.loss(images, TAGS)
    assert set(terms) == {"loss", "sa", "sb", "sc"}
    # S_C is trained towards all-zero labels: -mean log sigmoid(-s)
    s_c = map_c.mean(dim=(2, 3))
    torch.testing.assert_close(terms["sc"].detach(), F.multilabel_soft_margin_loss(s_c, torch.zeros_like(TAGS)))
    torch.testing.assert_close(terms["sc"].detach(), -F.logsigmoid(-s_c).mean(), rtol=1e-5, atol=1e-6)
    # S_A and S_B with the image tags
    s_a, s_b = map_a.mean(dim=(2, 3)), map_b.mean(dim=(2, 3))
    torch.testing.assert_close(terms["sa"].detach(), F.multilabel_soft_margin_loss(s_a, TAGS))
    torch.testing.assert_close(terms["sb"].detach(), F.multilabel_soft_margin_loss(s_b, TAGS))
    torch.testing.assert_close(terms["loss"].detach(), (terms["sa"] + terms["sb"] + terms["sc"]).detach())
    with torch.no_grad():
        torch.testing.assert_close(model(images), s_a)  # forward = S_A's scores


def test_gradients_reach_backbone_and_all_heads(images):
    torch.manual_seed(0)
    model = SeeNet(num_classes=K, output_stride=8).eval()
    _, _, mask, _, _ = by_hand(model, images, TAGS)
    assert (mask == -1).any()  # S_C sees some background, so its conv weights get gradient
    terms = model.loss(images, TAGS)
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    params = [model.backbone.stages[0][0].weight]
    params += [p for head in (model.head_a, model.head_b, model.head_c) for p in head.parameters()]
    for param in params:
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_maps_use_the_requested_classes_for_the_mask(model, images):
    with torch.no_grad():
        maps = model.maps(images, [2, 0])
    assert set(maps) == {"a", "b"}
    _, map_a, mask, map_b, _ = by_hand(model, images, torch.tensor([[1.0, 0, 1], [1.0, 0, 1]]))
    assert maps["a"].shape == maps["b"].shape == (2, 2, 4, 4)
    torch.testing.assert_close(maps["a"], F.relu(map_a[:, [2, 0]]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps["b"], F.relu(map_b[:, [2, 0]]), rtol=1e-5, atol=1e-5)
    # another class set gives another mask, hence another S_B map
    _, _, other_mask, other_b, _ = by_hand(model, images, torch.tensor([[0.0, 1, 0], [0.0, 1, 0]]))
    assert not torch.equal(other_mask, mask)
    with torch.no_grad():
        torch.testing.assert_close(model.maps(images, [1])["b"], F.relu(other_b[:, [1]]), rtol=1e-5, atol=1e-5)


def test_fuse_is_elementwise_max():
    maps = {"a": torch.tensor([[[0.2, 0.9]], [[0.0, 0.4]]]), "b": torch.tensor([[[0.5, 0.1]], [[0.3, 0.4]]])}
    torch.testing.assert_close(SeeNet.fuse(maps), torch.tensor([[[0.5, 0.9]], [[0.3, 0.4]]]))
    assert SeeNet.fuse({"cam": torch.zeros(0, 2, 3)}).shape == (0, 2, 3)  # image without tags
    with pytest.raises(WsssError, match=r"seenet\.fuse"):
        SeeNet.fuse({"a": torch.zeros(1, 2, 2)})


def test_pseudo_label_hand_made():
    present = np.array([3, 7])
    maps = np.array([  # (K' = 2, H = 1, W = 6)
        [[0.9, 0.9, 0.2, 0.85, 0.0, 0.3]],
        [[0.9, 0.1, 0.6, 0.9, 0.0, 0.1]],
    ], np.float32)
    saliency = np.array([[0.02, 0.9, 0.5, 0.9, 0.9, 0.5]], np.float32)
    # pixel 0: low saliency -> background (saliency decides before the conflict rule)
    # pixel 1: scores 2*.9*.9/1.8 = .9, 2*.1*.9/1 = .18 -> 3
    # pixel 2: 2*.2*.5/.7 = .286, 2*.6*.5/1.1 = .545 -> 7
    # pixel 3: both attentions > 0.8 -> conflict, 255
    # pixel 4: no attention, best score 0 -> 255
    # pixel 5: .375, .167 -> 3
    label = SeeNet.pseudo_label(maps, present, saliency)
    assert label.dtype == np.uint8 and label.shape == (1, 6)
    np.testing.assert_array_equal(label, [[0, 3, 7, 255, 255, 3]])
    # a higher conflict threshold keeps pixel 3 (class 7 is larger there)
    np.testing.assert_array_equal(SeeNet.pseudo_label(maps, present, saliency, conflict_threshold=0.95),
                                  [[0, 3, 7, 7, 255, 3]])
    # a higher saliency threshold makes pixels 2 and 5 background
    np.testing.assert_array_equal(SeeNet.pseudo_label(maps, present, saliency, saliency_threshold=0.6),
                                  [[0, 3, 0, 255, 255, 0]])
    # no classes: background where saliency is low, the rest ignored
    none = np.zeros((0, 1, 6), np.float32)
    np.testing.assert_array_equal(SeeNet.pseudo_label(none, np.array([], int), saliency),
                                  [[0, 255, 255, 255, 255, 255]])


def test_config_rebuilds_model_and_param_groups(model, images):
    assert model.config == {"num_classes": K, "backbone": "resnet18", "output_stride": 8,
                            "delta_h": 0.7, "delta_l": 0.05, "head_channels": 512}
    rebuilt = SeeNet(**model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.maps(images, [1])["b"], model.maps(images, [1])["b"], rtol=0, atol=0)
    groups = model.param_groups()
    ids = [id(p) for params, _ in groups for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    multipliers = {id(p): m for params, m in groups for p in params}
    assert all(multipliers[id(p)] == 1.0 for p in model.backbone.parameters())
    assert all(multipliers[id(p)] == 10.0 for p in model.head_c.parameters())


def test_bad_thresholds():
    with pytest.raises(WsssError, match=r"seenet\.model"):
        SeeNet(num_classes=2, delta_h=0.05, delta_l=0.7)
