"""Grad-CAM: CAM up to scale for a GAP + linear head, hand-computed gradients, one batched
backward equal to a per-class loop, no_grad callers, class order."""

import pytest
import torch
import torch.nn.functional as F

from wsss.methods.cam import CAM
from wsss.methods.gradcam import GradCAM, grad_cam

K = 4


def max_normalize(maps):  # (B, K', h, w) -> each map divided by its maximum (0 stays 0)
    top = maps.amax(dim=(2, 3), keepdim=True)
    return maps / torch.where(top > 0, top, torch.ones_like(top))


@pytest.fixture(scope="module")
def cam_model():
    torch.manual_seed(0)
    return CAM(num_classes=K, backbone="resnet18", output_stride=16).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 32, 48, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def features():
    return torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(2))


def test_gradcam_of_gap_linear_head_is_cam_up_to_scale(cam_model, images):
    model = GradCAM(num_classes=K, backbone="resnet18", output_stride=16).eval()
    model.load_state_dict(cam_model.state_dict())  # a CAM checkpoint's state dict fits
    assert model.config == cam_model.config
    classes = torch.tensor([3, 0, 1, 2])
    with torch.no_grad():
        cam = cam_model.maps(images, classes)["cam"]  # (B, K', h, w)
        maps = model.maps(images, classes)
    assert set(maps) == {"gradcam"}
    gradcam = maps["gradcam"]
    assert gradcam.shape == cam.shape == (2, 4, 2, 3)
    assert (cam > 0).any() and (cam == 0).any()  # the ReLU matters on both sides
    # the gradient of the GAP score is w_c / hw everywhere: Grad-CAM = CAM / hw exactly ...
    torch.testing.assert_close(gradcam, cam / 6, rtol=1e-4, atol=1e-6)
    # ... hence equal after the per-class max-normalisation (Selvaraju et al., Sec. 3.1)
    torch.testing.assert_close(max_normalize(gradcam), max_normalize(cam), rtol=1e-4, atol=1e-5)


def test_grad_cam_of_squared_gap_head_matches_hand_gradient(features):
    # S^c = sum_k V[c, k] g_k^2 with g = GAP(x): dS^c/dx_k(i, j) = 2 V[c, k] g_k / hw, constant
    # over (i, j), so alpha_k^c = 2 V[c, k] g_k / hw.
    V = torch.tensor([[1.0, -2.0, 0.5, 0.0, 3.0], [-1.0, 1.0, 2.0, -0.5, 0.0], [0.5, 0.5, -1.0, 2.0, -3.0]])

    def score_fn(x):
        return (x.mean(dim=(2, 3)) ** 2) @ V.T  # (B, 3)

    g = features.mean(dim=(2, 3))  # (B, C)
    hw = features.shape[2] * features.shape[3]
    alpha = 2 * V[None] * g[:, None] / hw  # (B, 3, C)
    expected = F.relu(torch.einsum("bjc,bchw->bjhw", alpha, features))  # (B, 3, h, w)
    classes = [2, 0]
    result = grad_cam(features, score_fn, torch.tensor(classes))
    assert result.shape == (2, 2, 3, 4)
    assert (expected[:, classes] > 0).any() and (expected[:, classes] == 0).any()
    torch.testing.assert_close(result, expected[:, classes], rtol=1e-5, atol=1e-6)


def nonlinear_head():
    """A head whose gradient varies over space and is not linear in x."""
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(5, 6, 3, padding=1)
    linear = torch.nn.Conv2d(6, 3, 1)

    def score_fn(x):
        return linear(F.softplus(conv(x))).mean(dim=(2, 3))

    return score_fn


def test_one_backward_equals_per_class_autograd_loop(features):
    score_fn = nonlinear_head()
    classes = [1, 2, 0]
    expected = []
    for c in classes:  # the textbook way: one backward per class
        x = features.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(score_fn(x)[:, c].sum(), x)  # images are independent
        alpha = grad.mean(dim=(2, 3))  # (B, C)
        expected.append(F.relu(torch.einsum("bc,bchw->bhw", alpha, features)))
    expected = torch.stack(expected, dim=1)  # (B, K', h, w)
    assert (expected > 0).any()
    with torch.no_grad():
        result = grad_cam(features, score_fn, torch.tensor(classes))
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6)


def test_works_under_no_grad_and_returns_detached_maps(features):
    score_fn = nonlinear_head()
    outside = grad_cam(features, score_fn, [0, 2])
    with torch.no_grad():
        inside = grad_cam(features, score_fn, [0, 2])
    assert not inside.requires_grad and not outside.requires_grad
    torch.testing.assert_close(inside, outside, rtol=0, atol=0)
    # features that require grad themselves get no gradient from Grad-CAM
    leaf = features.clone().requires_grad_(True)
    grad_cam(leaf, score_fn, [1])
    assert leaf.grad is None


def test_class_order_is_respected(features):
    score_fn = nonlinear_head()
    all_classes = grad_cam(features, score_fn, torch.tensor([0, 1, 2]))  # (B, 3, h, w)
    torch.testing.assert_close(grad_cam(features, score_fn, [2, 0, 1]), all_classes[:, [2, 0, 1]])
    torch.testing.assert_close(grad_cam(features, score_fn, [1]), all_classes[:, [1]])
    # the maps of different classes do differ, so a mix-up would be seen
    assert not torch.allclose(all_classes[:, 0], all_classes[:, 2])
    assert grad_cam(features, score_fn, []).shape == (2, 0, 3, 4)


def test_model_maps_order_and_fuse(cam_model, images):
    model = GradCAM(num_classes=K).eval()
    model.load_state_dict(cam_model.state_dict())
    with torch.no_grad():
        both = model.maps(images, torch.tensor([1, 3]))["gradcam"]
        reversed_ = model.maps(images, [3, 1])["gradcam"]
    torch.testing.assert_close(reversed_, both.flip(1))
    assert (both >= 0).all()
    single = {"gradcam": both[0]}  # (K', h, w)
    assert GradCAM.fuse(single) is single["gradcam"]
