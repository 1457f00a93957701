"""The method contract (wsss/methods/__init__.py), checked for every registered method."""

import pytest
import torch

from wsss.methods import METHODS, build, load_checkpoint, save_checkpoint

K = 3
# Small settings so that every method runs in a second; each still exercises its mechanism.
OWN = {"ficklenet": {"window": 3, "drop_rate": 0.5}, "mdc": {"block_channels": 16}, "sccam": {"subcategories": 2}}
OPTIONS = {"ficklenet": {"draws": 4, "draw_chunk": 3}}
TAGS = torch.tensor([[1.0, 0, 1], [0, 1, 0]])


def make(method):
    torch.manual_seed(0)
    return build(method, num_classes=K, backbone="resnet18", output_stride=16, **OWN.get(method, {}))


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_loss_is_finite_and_reaches_every_trainable_layer(method, images):
    model = make(method).train()
    terms = model.loss(images, TAGS, torch.arange(2))
    loss = terms["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in terms.values())
    loss.backward()
    first = model.backbone.stages[0][0].weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    groups = model.param_groups()
    ids = [id(p) for params, _ in groups for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_maps_are_non_negative_per_requested_class_and_fuse(method, images):
    model = make(method).eval()
    classes = torch.tensor([2, 0])
    with torch.no_grad():
        scores = model(images)
        maps = model.maps(images, classes, **OPTIONS.get(method, {}))
    assert scores.shape == (2, K)
    assert maps
    h, w = next(iter(maps.values())).shape[2:]
    for name, value in maps.items():
        assert value.shape == (2, 2, h, w), name  # (B, K', h, w) at the feature stride
        assert (value >= 0).all() and torch.isfinite(value).all(), name
        assert not value.requires_grad, name
    fused = METHODS[method].fuse({name: value[0] for name, value in maps.items()})
    assert fused.shape == (2, h, w) and (fused >= 0).all()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_checkpoint_round_trip_rebuilds_the_same_model(method, images, tmp_path):
    model = make(method).eval()
    path = tmp_path / f"{method}.pt"
    save_checkpoint(path, method, model)
    name, loaded, state = load_checkpoint(path)
    assert name == method and type(loaded) is type(model)
    loaded.eval()
    options = OPTIONS.get(method, {})
    with torch.no_grad():
        scores = [(torch.manual_seed(0), net(images))[1] for net in (loaded, model)]  # FickleNet draws in forward
        torch.testing.assert_close(*scores)
        expected = model.maps(images, torch.tensor([1]), **options)
        got = loaded.maps(images, torch.tensor([1]), **options)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name])
