"""SEAM: Self-supervised Equivariant Attention Mechanism (Wang et al., "Self-supervised
Equivariant Attention Mechanism for Weakly Supervised Semantic Segmentation", CVPR 2020).

A siamese network sees an image I and a transformed copy A(I) (here, as in the reference code,
A = bilinear rescaling by `rescale`, 0.3). F(.) is the CAM head (K + 1 channels, channel 0 is
background); the paper's terms:

    equivariant regularisation   R_ER  = || F(A(I)) - A(F(I)) ||_1
    pixel correlation module     y_i   = sum_j ReLU(cos(f_i, f_j)) y^_j / sum_j ReLU(cos(f_i, f_j))
                                 (f: low-level features + the image; y^: the CAM of the same view)
    equivariant cross reg.       R_ECR = || PCM(A(y^o)) - y^t ||_1 + || PCM(y^t) - A(y^o) ||_1
                                 (o: original view, t: transformed view)
    total                        L = L_cls + L_ER + L_ECR

Reference-code details followed here (see /work/shared/METHODS.md): classification is GAP over
the foreground channels 1..K; maps are compared after a per-channel min-max normalisation
(`max_norm`) and masking by the image tags (background always kept); the CAM fed to the PCM is
detached, max-normalised, with background 1 - max(foreground) and only each pixel's maximum
foreground channel kept; the ECR target (the other view's CAM) is prepared the same way and
detached, and the L1 is the mean of the largest 20% of the differences per image; a min-pooling
term (the lowest 25% of the per-pixel maximum foreground PCM score, ReLU'd) is added.

Deviations, on purpose:
- The reference upsamples every map to its input size before comparing; here both views are
  compared at view 2's feature size (view 1's maps resized down to it): the same alignment at a
  fraction of the memory, and the PCM works at the feature size in both anyway.
- `cls` is the plain classification loss and `min_pool` its own term; the reference folds the
  min-pooling term into its logged classification loss. `loss` is the sum of the four.
- The low-level features come from backbone.stages[-3] and stages[-2] (psa ResNet-38's conv4 /
  conv5 there); our ResNets have them at different strides, so they are resized to the final
  feature size.
- As in the reference, the head's background channel receives no gradient (classification uses
  channels 1..K, ER compares foreground, and ECR / the PCM overwrite the background with
  1 - max(foreground)); it is never used for maps either.
"""

import torch
import torch.nn.functional as F
from torch import nn

from wsss.errors import WsssError
from wsss.models.backbones import build_backbone

EPS = 1e-5  # the reference code's epsilon in every normalisation


def resize(x, size):
    """Bilinear resize to (h, w); align_corners=True as the reference code uses everywhere."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def max_norm(maps, eps=EPS):
    """SEAM's per-channel min-max normalisation after ReLU: (B, C, h, w) -> values in [0, 1)."""
    maps = F.relu(maps)
    flat = maps.flatten(2)  # (B, C, hw)
    low = flat.min(dim=2).values[:, :, None, None]
    high = flat.max(dim=2).values[:, :, None, None]
    return F.relu(maps - low - eps) / (high - low + eps)


def keep_max_foreground(maps):
    """(B, K+1, h, w) -> a new tensor: background = 1 - max(foreground), and every foreground
    channel zeroed where it is below the pixel's maximum foreground (ties are all kept). The
    PCM input and the ECR target are prepared this way: one-hot-like foreground evidence."""
    fg = maps[:, 1:]  # (B, K, h, w)
    top = fg.max(dim=1, keepdim=True).values  # (B, 1, h, w)
    fg = torch.where(fg < top, torch.zeros_like(fg), fg)
    return torch.cat([1 - top, fg], dim=1)


def pcm_input(cam, eps=EPS):
    """The CAM as the PCM sees it: detached, ReLU'd, divided by each channel's max, then
    `keep_max_foreground`. cam (B, K+1, h, w) raw head output -> (B, K+1, h, w)."""
    cam = F.relu(cam.detach())
    peak = cam.flatten(2).max(dim=2).values[:, :, None, None] + eps  # (B, K+1, 1, 1)
    return keep_max_foreground(F.relu(cam - eps) / peak)


def pcm_affinity(features, eps=EPS):
    """features (B, D, h, w) -> (B, hw, hw); entry [b, i, j] is the weight of source pixel i
    into target pixel j: ReLU of the cosine similarity, normalised so each target's incoming
    weights sum to one (a weighted average, so a constant map stays constant)."""
    flat = features.flatten(2)  # (B, D, hw)
    flat = flat / (flat.norm(dim=1, keepdim=True) + eps)  # unit vector per pixel
    affinity = F.relu(flat.transpose(1, 2) @ flat)  # (B, hw, hw), symmetric before normalising
    return affinity / (affinity.sum(dim=1, keepdim=True) + eps)  # sum over sources i


def pcm_refine(cam, features):
    """The PCM: every pixel's map becomes the affinity-weighted average of the maps of the
    pixels like it. cam (B, C, h, w), features (B, D, h, w) -> (B, C, h, w)."""
    b, c, h, w = cam.shape
    return (cam.flatten(2) @ pcm_affinity(features)).view(b, c, h, w)  # (B, C, hw) @ (B, hw, hw)


def with_background(tags):
    """tags (B, K) -> (B, K+1, 1, 1) with the background (always present) first."""
    ones = torch.ones_like(tags[:, :1])
    return torch.cat([ones, tags], dim=1)[:, :, None, None]


def view_maps(maps, tags, size):
    """A view's maps as the losses compare them: max_norm, resized to `size` (view 2's map
    size), absent classes zeroed. maps (B, K+1, h, w) -> (B, K+1, *size)."""
    return resize(max_norm(maps), size) * with_background(tags)


def equivariance_loss(view1, view2):
    """ER: mean |A(F(I)) - F(A(I))| over the foreground channels. Both from `view_maps` at the
    same size (view 1 already transformed to view 2). (B, K+1, h, w) x 2 -> scalar."""
    return (view1[:, 1:] - view2[:, 1:]).abs().mean()


def topk_mean(values, fraction):
    """Per image, the mean of the largest `fraction` of its values (at least one); then the
    mean over images. values (B, ...) -> scalar. The reference's top-k L1 of ECR."""
    flat = values.flatten(1)  # (B, N)
    k = max(1, int(flat.shape[1] * fraction))
    return flat.topk(k, dim=1).values.mean()


def ecr_loss(target, refined, fraction):
    """One direction of ECR: top-k mean of |keep_max_foreground(target) - refined| over all
    channels and pixels; target = the other view's `view_maps` (detached here), refined = this
    view's PCM output through `view_maps`. Both (B, K+1, h, w)."""
    return topk_mean((keep_max_foreground(target.detach()) - refined).abs(), fraction)


def min_pool_loss(refined, tags, fraction):
    """The reference's min-pooling term: the per-pixel maximum of the tag-masked foreground PCM
    output, its lowest `fraction` per image (at least one), ReLU'd, averaged. It pushes the
    least foreground-like pixels to zero. refined (B, K+1, h, w) raw, tags (B, K) -> scalar."""
    top = (refined[:, 1:] * tags[:, :, None, None]).amax(dim=1).flatten(1)  # (B, hw)
    k = max(1, int(top.shape[1] * fraction))
    return F.relu(top.topk(k, dim=1, largest=False).values).mean()


def _check_fraction(name, value):
    if not 0 < value <= 1:
        raise WsssError(f"seam.model.{name}: must be in (0, 1], got {value}")


class SEAM(nn.Module):
    def __init__(
        self,
        num_classes,
        backbone="resnet18",
        output_stride=16,
        weights="none",
        rescale=0.3,
        pcm_channels=192,
        low_channels=(64, 128),
        topk_fraction=0.2,
        min_pool_fraction=0.25,
    ):
        super().__init__()
        if not rescale > 0:
            raise WsssError(f"seam.model.rescale: must be positive, got {rescale}")
        if not (isinstance(pcm_channels, int) and pcm_channels >= 1):
            raise WsssError(f"seam.model.pcm_channels: must be a positive integer, got {pcm_channels}")
        low_channels = list(low_channels)
        if len(low_channels) != 2 or not all(isinstance(c, int) and c >= 1 for c in low_channels):
            raise WsssError(f"seam.model.low_channels: must be two positive integers, got {low_channels}")
        _check_fraction("topk_fraction", topk_fraction)
        _check_fraction("min_pool_fraction", min_pool_fraction)
        self.config = {
            "num_classes": num_classes,
            "backbone": backbone,
            "output_stride": output_stride,
            "rescale": rescale,
            "pcm_channels": pcm_channels,
            "low_channels": low_channels,
            "topk_fraction": topk_fraction,
            "min_pool_fraction": min_pool_fraction,
        }
        self.rescale = rescale
        self.topk_fraction = topk_fraction
        self.min_pool_fraction = min_pool_fraction
        self.backbone = build_backbone(backbone, output_stride, weights)
        self.dropout = nn.Dropout2d(0.5)  # on the features before the head, training only
        self.classifier = nn.Conv2d(self.backbone.out_channels, num_classes + 1, 1, bias=False)
        middle, deep = self.backbone.stage_channels[-3:-1]  # the reference's conv4 / conv5
        self.low_convs = nn.ModuleList(
            [nn.Conv2d(middle, low_channels[0], 1, bias=False), nn.Conv2d(deep, low_channels[1], 1, bias=False)]
        )
        self.f9 = nn.Conv2d(3 + sum(low_channels), pcm_channels, 1, bias=False)
        # The reference code's initialisation of its new layers.
        nn.init.xavier_uniform_(self.classifier.weight)
        for conv in self.low_convs:
            nn.init.kaiming_normal_(conv.weight)
        nn.init.xavier_uniform_(self.f9.weight, gain=4)

    def _stages(self, images):
        """Every backbone stage's output, the last being the feature map."""
        outputs, x = [], images
        for stage in self.backbone.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def _branch(self, images):
        """One siamese branch: (raw CAM, PCM-refined CAM), both (B, K+1, h, w)."""
        outputs = self._stages(images)
        cam = self.classifier(self.dropout(outputs[-1]))  # (B, K+1, h, w)
        size = cam.shape[-2:]
        # PCM features: detached low-level features (the PCM must not reshape the backbone),
        # each 1x1 conv + ReLU as in the reference code, and the image itself, at the feature size.
        low = [F.relu(conv(x.detach())) for conv, x in zip(self.low_convs, outputs[-3:-1])]
        features = torch.cat([resize(images, size)] + [resize(x, size) for x in low], dim=1)
        features = self.f9(features)  # (B, pcm_channels, h, w)
        return cam, pcm_refine(pcm_input(cam), features)

    def forward(self, images):  # (B, 3, H, W) -> class scores (B, K)
        cam = self.classifier(self.dropout(self.backbone(images)))  # (B, K+1, h, w)
        return cam[:, 1:].mean(dim=(2, 3))  # GAP over the foreground channels

    def loss(self, images, tags, index=None):
        """Siamese loss on images (B, 3, H, W) and view 2 = images rescaled by `rescale`.
        tags (B, K) multi-hot; index unused. Returns {loss, cls, er, ecr, min_pool}."""
        cam1, refined1 = self._branch(images)
        height, width = images.shape[-2:]
        small = (max(1, int(height * self.rescale)), max(1, int(width * self.rescale)))
        try:
            cam2, refined2 = self._branch(resize(images, small))
        except RuntimeError as exc:  # a pooling layer got less than its window (e.g. VGG)
            if "too small" not in str(exc):
                raise
            raise WsssError(
                f"seam.model.rescale: the second view ({small[0]}x{small[1]} px) is too small for "
                f"{self.config['backbone']}; use a larger rescale or larger training crops"
            ) from None

        cls = sum(F.multilabel_soft_margin_loss(c[:, 1:].mean(dim=(2, 3)), tags) for c in (cam1, cam2)) / 2
        min_pool = sum(min_pool_loss(r, tags, self.min_pool_fraction) for r in (refined1, refined2)) / 2

        size = cam2.shape[-2:]  # compare at view 2's feature size: A(F(I)) vs F(A(I))
        cam1, refined1 = view_maps(cam1, tags, size), view_maps(refined1, tags, size)
        cam2, refined2 = view_maps(cam2, tags, size), view_maps(refined2, tags, size)
        er = equivariance_loss(cam1, cam2)
        ecr = ecr_loss(cam2, refined1, self.topk_fraction) + ecr_loss(cam1, refined2, self.topk_fraction)
        return {"loss": cls + min_pool + er + ecr, "cls": cls, "er": er, "ecr": ecr, "min_pool": min_pool}

    def maps(self, images, classes):
        """{"cam": the plain CAM, "pcm": the PCM-refined CAM}, each (B, K', h, w), ReLU'd, for
        the given 0-based foreground classes (head channel 1 + c)."""
        cam, refined = self._branch(images)
        channels = 1 + torch.as_tensor(classes, dtype=torch.long, device=cam.device)
        return {"cam": F.relu(cam)[:, channels], "pcm": F.relu(refined)[:, channels]}

    @staticmethod
    def fuse(maps, use="cam"):
        """The plain CAM by default (the reference code infers with it), or the PCM output."""
        if use not in ("cam", "pcm"):
            raise WsssError(f"seam.fuse.use: must be 'cam' or 'pcm', got {use!r}")
        return maps[use]

    def param_groups(self):
        """(parameters, lr multiplier): the new layers (head, low-level convs, f9) learn 10x faster."""
        new = [self.classifier, self.low_convs, self.f9]
        return [(list(self.backbone.parameters()), 1.0), ([p for m in new for p in m.parameters()], 10.0)]
