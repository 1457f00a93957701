"""CAM and the method registry: maps are the classifier at each location, loss, checkpoints."""

import pytest
import torch
import torch.nn.functional as F

from wsss.errors import WsssError
from wsss.methods import METHODS, build, load_checkpoint, save_checkpoint
from wsss.methods.cam import CAM

K = 4


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CAM(num_classes=K, backbone="resnet18", output_stride=16).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))


def per_location_scores(model, images):
    """The classifier applied at every location by hand: (B, K, h, w), not ReLU'd."""
    with torch.no_grad():
        features = model.backbone(images)                  # (B, C, h, w)
    weight = model.classifier.weight[:, :, 0, 0].detach()  # (K, C)
    return torch.einsum("kc,bchw->bkhw", weight, features)


def test_class_score_is_mean_of_per_location_scores(model, images):
    raw = per_location_scores(model, images)
    assert raw.shape == (2, K, 2, 3)
    with torch.no_grad():
        scores = model(images)  # (B, K)
    assert scores.shape == (2, K)
    torch.testing.assert_close(scores, raw.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)


def test_maps_are_relu_of_classifier_at_each_location(model, images):
    raw = per_location_scores(model, images)
    assert (raw < 0).any() and (raw > 0).any()  # so the ReLU matters
    classes = [3, 0]
    with torch.no_grad():
        maps = model.maps(images, torch.tensor(classes))
    assert set(maps) == {"cam"}
    cam = maps["cam"]
    assert cam.shape == (2, 2, 2, 3)  # (B, K', h, w), classes in the requested order
    assert (cam >= 0).all()
    torch.testing.assert_close(cam, F.relu(raw[:, classes]), rtol=1e-5, atol=1e-5)
    # a plain list selects the same maps
    with torch.no_grad():
        torch.testing.assert_close(model.maps(images, classes)["cam"], cam)


def test_fuse_returns_the_one_map(model, images):
    with torch.no_grad():
        maps = model.maps(images, [1])
    single = {"cam": maps["cam"][0]}  # (K', h, w)
    assert CAM.fuse(single) is single["cam"]


def test_loss_matches_multilabel_soft_margin_formula(images):
    torch.manual_seed(2)
    model = CAM(num_classes=K, backbone="resnet18").train()
    tags = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    terms = model.loss(images, tags)
    assert {"loss", "cls"} <= set(terms)
    loss = terms["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    # the same scores as loss() saw: train-mode BN uses batch statistics, deterministic
    scores = model(images).detach()
    # -1/K sum_k [y log sigmoid(s) + (1 - y) log sigmoid(-s)], averaged over the batch
    by_hand = -(tags * torch.log(torch.sigmoid(scores)) + (1 - tags) * torch.log(torch.sigmoid(-scores)))
    torch.testing.assert_close(loss.detach(), by_hand.mean(1).mean(0), rtol=1e-5, atol=1e-6)
    loss.backward()
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0
    first_conv = model.backbone.stages[0][0].weight
    assert first_conv.grad is not None and torch.isfinite(first_conv.grad).all()
    assert first_conv.grad.abs().sum() > 0


def test_checkpoint_round_trip(model, images, tmp_path):
    path = tmp_path / "classifier.pt"
    save_checkpoint(path, "cam", model, epoch=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and dicts only
    assert raw["method"] == "cam" and raw["epoch"] == 3
    assert raw["config"] == {"num_classes": K, "backbone": "resnet18", "output_stride": 16}
    method, loaded, checkpoint = load_checkpoint(path)
    assert method == "cam" and isinstance(loaded, CAM) and checkpoint["epoch"] == 3
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)
        torch.testing.assert_close(
            loaded.maps(images, [2, 1])["cam"], model.maps(images, [2, 1])["cam"], rtol=0, atol=0
        )


def test_bad_checkpoint_names_path(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WsssError, match="broken.pt"):
        load_checkpoint(path)
    with pytest.raises(WsssError, match="absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")


def test_unknown_method():
    with pytest.raises(WsssError) as info:
        build("notamethod", num_classes=3)
    assert "notamethod" in str(info.value) and "cam" in str(info.value)
    assert METHODS["cam"] is CAM


def test_build_passes_arguments():
    model = build("cam", num_classes=3, backbone="resnet18", output_stride=8)
    assert isinstance(model, CAM) and model.classifier.out_channels == 3
    assert model.config["output_stride"] == 8


def test_param_groups_cover_all_parameters_once(model):
    groups = model.param_groups()
    ids = [id(p) for params, _ in groups for p in params]
    assert len(ids) == len(set(ids))  # no parameter twice
    assert set(ids) == {id(p) for p in model.parameters()}
    multipliers = {id(p): mult for params, mult in groups for p in params}
    assert multipliers[id(model.classifier.weight)] == 10.0
    assert all(multipliers[id(p)] == 1.0 for p in model.backbone.parameters())
