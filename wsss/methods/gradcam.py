"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017).

For a feature map x (C channels) and class score S^c, the map of class c is

    L^c = ReLU(sum_k alpha_k^c x_k),   alpha_k^c = (1 / hw) sum_{i,j} dS^c / dx_k(i, j)   (eqs. 1-2)

i.e. the channels weighted by the spatial mean of their gradient. For a GAP + linear head,
S^c = (1 / hw) sum_{i,j} w_c . x(i, j), the gradient is w_c / hw everywhere, so Grad-CAM is
CAM divided by hw: the same map after max-normalisation (the paper's Sec. 3.1 property).

GradCAM below is CAM's network (same constructor and state dict, so it loads a CAM
checkpoint) whose maps come from gradients instead of the classifier weights.
"""

import torch
import torch.nn.functional as F

from wsss.methods.cam import CAM


def grad_cam(features, score_fn, classes):
    """features (B, C, h, w); score_fn: features -> scores (B, K); classes (K',) 0-based.

    Returns the detached Grad-CAM maps (B, K', h, w), classes in the given order. One
    backward pass serves all K' classes: the K' one-hot output gradients are batched
    (is_grads_batched vmaps the backward over them). The gradient of image b is summed
    over the batch's scores, which is dS_b / dx_b only because images are independent in
    the head: the model must be in eval mode (no batch statistics).
    Works under torch.no_grad(): the features are detached into a leaf that needs grad.
    """
    classes = torch.as_tensor(classes, dtype=torch.long, device=features.device)
    batch, _, height, width = features.shape
    if classes.numel() == 0:
        return features.new_zeros(batch, 0, height, width)
    with torch.enable_grad():
        x = features.detach().requires_grad_(True)  # (B, C, h, w), a leaf
        scores = score_fn(x)[:, classes]  # (B, K')
        count = classes.numel()
        # one-hot output gradients: row j selects class j of every image   # (K', B, K')
        one_hot = torch.eye(count, dtype=scores.dtype, device=scores.device)
        one_hot = one_hot[:, None, :].expand(count, batch, count)
        (grads,) = torch.autograd.grad(scores, x, grad_outputs=one_hot, is_grads_batched=True)
    alpha = grads.mean(dim=(3, 4))  # (K', B, C): spatial mean of dS^c / dx_k
    cams = F.relu(torch.einsum("jbc,bchw->bjhw", alpha, x.detach()))  # (B, K', h, w)
    return cams


class GradCAM(CAM):
    """CAM's backbone and GAP + 1x1 classifier head; maps by Grad-CAM on the last features."""

    def head(self, features):  # (B, C, h, w) -> class scores (B, K)
        return self.classifier(features).mean(dim=(2, 3))

    def maps(self, images, classes):
        """{"gradcam": (B, K', h, w)}, non-negative. Gradients are switched on inside grad_cam."""
        features = self.backbone(images)  # (B, C, h, w)
        return {"gradcam": grad_cam(features, self.head, classes)}

    @staticmethod
    def fuse(maps):
        """One map per class (K', H, W): Grad-CAM has only one."""
        return maps["gradcam"]
