"""SC-CAM: sub-category exploration (Chang et al., "Weakly-Supervised Semantic Segmentation via
Sub-category Exploration", CVPR 2020).

A CAM classifier (parent head H_p, K classes) gets a second bias-free 1x1 head H_s with K * k
outputs on the same features, one per sub-category s_c^k of each parent class c. The sub-category
labels Y_s are unsupervised: before each extra training round the image features f = E(I)
(GAP of the backbone features) of the images containing class c are clustered by k-means,

    min_T (1/N_c) sum_i min_{Y_s^c} ||f_i - T Y_s^c||^2,   Y_s^c one-hot over k clusters,

so an image with several classes gets one sub-label per class (sub index = c * k + cluster) and
an absent class gives no sub-label. Training then minimises (sec. 3.3)

    L = L_p(H_p(f), Y_p) + lambda * L_s(H_s(f), Y_s),    lambda = 5, k = 10,

both multilabel soft-margin losses; before the first clustering only L_p is used. Localization
uses the parent head only: M^c(x, y) = ReLU(theta_p^c . f(x, y)), as in CAM.
"""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from wsss.errors import WsssError
from wsss.methods.cam import CAM


class SCCAM(CAM):
    """CAM (backbone, parent head `classifier`, forward, maps, fuse) plus the sub-category head."""

    def __init__(self, num_classes, backbone="resnet18", output_stride=16, weights="none",
                 subcategories=10, sub_weight=5.0):
        super().__init__(num_classes, backbone, output_stride, weights)
        if isinstance(subcategories, bool) or not isinstance(subcategories, int) or subcategories < 1:
            raise WsssError(f"sccam.model.subcategories: must be an integer >= 1, got {subcategories!r}")
        if isinstance(sub_weight, bool) or not isinstance(sub_weight, (int, float)) or sub_weight < 0:
            raise WsssError(f"sccam.model.sub_weight: must be a number >= 0, got {sub_weight!r}")
        self.config.update(subcategories=subcategories, sub_weight=sub_weight)
        self.num_classes, self.subcategories, self.sub_weight = num_classes, subcategories, float(sub_weight)
        # self.classifier (from CAM) is the parent head H_p; H_s has k outputs per class.
        self.sub_classifier = nn.Conv2d(self.backbone.out_channels, num_classes * subcategories, 1, bias=False)
        # Set by start_round. Plain attributes, not buffers: their size depends on the dataset,
        # and a checkpoint must rebuild the model from its config alone.
        self.sub_labels = None   # (N, K * k) multi-hot sub-category targets, on the CPU
        self.assignments = []    # one (N, K) int array per round: cluster per class, -1 = absent

    def loss(self, images, tags, index=None):
        """tags: (B, K) multi-hot; index: (B,) dataset positions, to look up the sub-labels.
        Returns {"loss", "parent", "sub"}; sub is 0 before the first start_round."""
        features = self.backbone(images)  # (B, C, h, w)
        parent_scores = self.classifier(features).mean(dim=(2, 3))  # (B, K)
        parent = F.multilabel_soft_margin_loss(parent_scores, tags.to(parent_scores.dtype))
        if self.sub_labels is None:  # round 0: no clusters yet
            sub = parent_scores.new_zeros(())
            return {"loss": parent, "parent": parent, "sub": sub}
        if index is None:
            raise ValueError("SC-CAM loss needs the dataset positions (index) once sub-categories exist")
        targets = self.sub_labels[torch.as_tensor(index).cpu()].to(parent_scores)  # (B, K * k)
        sub_scores = self.sub_classifier(features).mean(dim=(2, 3))  # (B, K * k)
        sub = F.multilabel_soft_margin_loss(sub_scores, targets)
        return {"loss": parent + self.sub_weight * sub, "parent": parent, "sub": sub}

    @torch.no_grad()
    def image_features(self, loader, device):
        """GAP of the backbone features of every image: (features (N, C), tags (N, K) bool),
        rows in dataset positions. loader: (image (1, 3, H, W), tags (1, K), index (1,))."""
        was_training = self.training
        self.eval()  # running BN statistics: an image's feature must not depend on its batch
        features, tags, positions = [], [], []
        try:
            for image, tag, index in loader:
                features.append(self.backbone(image.to(device)).mean(dim=(2, 3))[0].double().cpu())  # (C,)
                tags.append(torch.as_tensor(tag)[0].cpu() > 0)  # (K,)
                positions.append(int(torch.as_tensor(index).reshape(-1)[0]))
        finally:
            self.train(was_training)
        if not positions:
            raise WsssError("sccam: start_round got no images to cluster")
        n = max(positions) + 1
        all_features = torch.zeros(n, self.backbone.out_channels, dtype=torch.float64)
        all_tags = torch.zeros(n, self.num_classes, dtype=torch.bool)
        all_features[positions] = torch.stack(features)
        all_tags[positions] = torch.stack(tags)
        return all_features.numpy(), all_tags.numpy()

    def start_round(self, round, loader, device):
        """Cluster each parent class's images into sub-categories (k-means on image features) and
        set the sub-category targets for the next training round."""
        features, tags = self.image_features(loader, device)  # (N, C), (N, K)
        k = self.subcategories
        assignment = np.full(tags.shape, -1, dtype=np.int64)  # (N, K)
        for c in range(self.num_classes):
            members = np.flatnonzero(tags[:, c])
            if len(members) == 0:
                print(f"sccam round {round}: class {c}: no images, no sub-categories")
                continue
            # Fixed seed and n_init as in the reference code: the same features give the same labels.
            kmeans = KMeans(n_clusters=min(k, len(members)), random_state=0, n_init=10)
            assignment[members, c] = kmeans.fit_predict(features[members])
            sizes = np.bincount(assignment[members, c], minlength=kmeans.n_clusters).tolist()
            print(f"sccam round {round}: class {c}: {len(members)} images, cluster sizes {sizes}")
        labels = torch.zeros(len(assignment), self.num_classes * k)  # (N, K * k) multi-hot
        rows, classes = np.nonzero(assignment >= 0)
        columns = classes * k + assignment[rows, classes]  # sub index = class * k + cluster
        labels[torch.from_numpy(rows), torch.from_numpy(columns)] = 1.0
        self.sub_labels = labels
        self.assignments.append(assignment)

    def param_groups(self):
        """(parameters, lr multiplier): the two new heads learn 10x faster, as in psa / IRN."""
        heads = list(self.classifier.parameters()) + list(self.sub_classifier.parameters())
        return [(list(self.backbone.parameters()), 1.0), (heads, 10.0)]
