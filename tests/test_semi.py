"""Semi-supervised segmentation training (MDC, FickleNet): ground-truth masks for the images of a
strong split, pseudo labels for the rest, loss = weak loss + alpha * cross-entropy on the masks.

Batches must carry the masks of the strong images and the pseudo labels of the others; the loss
must equal the two terms combined by hand with alpha; a strong id without a mask is an error
naming it; a tiny run writes a checkpoint without pseudo labels for the strong images.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wsss import checkpoint
from wsss.data.demo import generate
from wsss.data.voc import IGNORE, VOCDataset
from wsss.errors import WsssError
from wsss.io import StoreReader, StoreWriter
from wsss.refine import dsrg
from wsss.stages import train_segmentation
from wsss.stages.train_segmentation import TrainingSet, make_loss_fn, strong_ids

CLASSES = ["alpha", "beta"]
TRAIN = dict(epochs=1, batch_size=4, crop=48, scale_range=[1.0, 1.0], lr=0.01, momentum=0.9,
             weight_decay=1e-4, seed=0, workers=0)
MODEL = dict(backbone="resnet18", output_stride=16, weights="none")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A generated VOC tree (train: 4 of the 8 train_aug images) and all-background pseudo labels
    for the weak images only."""
    folder = tmp_path_factory.mktemp("semi")
    root = folder / "VOC2012"
    generate(root, CLASSES, seed=0, counts={"train_aug": 8, "train": 4, "val": 2}, min_side=32, max_side=40)
    voc = VOCDataset(root, CLASSES, "train_aug")
    strong = set(VOCDataset(root, CLASSES, "train").ids)
    with StoreWriter(folder / "labels.h5", "make_labels", "cam", ["background", *CLASSES], {}) as w:
        for image_id in voc.ids:
            if image_id not in strong:
                w.write(image_id, {"label": np.zeros(voc.image_size(image_id), np.uint8)})
    return root, folder / "labels.h5", strong


def histogram(label):
    label = np.asarray(label).ravel()
    return np.bincount(label[label != IGNORE], minlength=len(CLASSES) + 1)


def test_batches_use_the_strong_masks_where_given(tree):
    root, labels, strong = tree
    voc = VOCDataset(root, CLASSES, "train_aug")
    dataset = TrainingSet(voc, StoreReader(labels), crop=48, scale_range=(1.0, 1.0), strong=strong)
    for index, image_id in enumerate(voc.ids):
        image, label, is_strong = dataset[index]
        assert bool(is_strong) == (image_id in strong)
        if image_id in strong:  # the whole mask is in the crop (sides <= 40), flipped or not
            np.testing.assert_array_equal(histogram(label), histogram(voc.mask(image_id)))
            assert histogram(label)[1:].sum() > 0
        else:  # the all-background pseudo label
            assert histogram(label).tolist() == [np.prod(voc.image_size(image_id)), 0, 0]


def test_tags_come_with_the_batch_for_dsrg(tree):
    root, labels, strong = tree
    voc = VOCDataset(root, CLASSES, "train_aug")
    dataset = TrainingSet(voc, StoreReader(labels), 48, (1.0, 1.0), strong, with_tags=True)
    _, _, _, tags = dataset[0]
    np.testing.assert_array_equal(tags.numpy(), voc.tags(voc.ids[0]))


class Fixed(nn.Module):
    """A stand-in network: fixed logits at the output stride (backbone) and at full size."""

    def __init__(self, small, size):
        super().__init__()
        self.small = nn.Parameter(small)
        self.backbone = lambda images: self.small
        self.head = nn.Identity()
        self.size = size

    def forward(self, images):
        return F.interpolate(self.small, size=self.size, mode="bilinear", align_corners=False)


def batch(generator):
    small = torch.randn(4, 3, 2, 2, generator=generator)  # (B, C, h, w)
    images = torch.randn(4, 3, 8, 8, generator=generator)  # (B, 3, H, W)
    target = torch.randint(0, 3, (4, 8, 8), generator=generator)
    target[:, 0] = IGNORE
    strong = torch.tensor([False, True, False, True])
    tags = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    return small, images, target, strong, tags


def test_ce_loss_is_weak_plus_alpha_strong():
    small, images, target, strong, tags = batch(torch.Generator().manual_seed(0))
    net = Fixed(small, (8, 8))
    logits = net(images)
    weak_ce = F.cross_entropy(logits[~strong], target[~strong], ignore_index=IGNORE)
    strong_ce = F.cross_entropy(logits[strong], target[strong], ignore_index=IGNORE)
    terms = make_loss_fn("ce", strong_weight=2.0)(net, [images, target, strong])
    assert terms["ce"].item() == pytest.approx(weak_ce.item(), rel=1e-6)
    assert terms["strong"].item() == pytest.approx(strong_ce.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(weak_ce.item() + 2.0 * strong_ce.item(), rel=1e-6)
    # Without a strong split every image is weak: today's cross-entropy over the whole batch.
    plain = make_loss_fn("ce")(net, [images, target, torch.zeros(4, dtype=torch.bool)])
    assert set(plain) == {"loss", "ce"}
    assert plain["loss"].item() == pytest.approx(F.cross_entropy(logits, target, ignore_index=IGNORE).item())


def test_dsrg_loss_is_weak_plus_alpha_strong():
    small, images, target, strong, tags = batch(torch.Generator().manual_seed(1))
    net = Fixed(small, (8, 8))
    settings = train_segmentation.dsrg_settings(None)
    weak = dsrg.dsrg_loss(small[~strong], images[~strong], target[~strong], tags[~strong], **settings)
    strong_ce = F.cross_entropy(net(images)[strong], target[strong], ignore_index=IGNORE)
    terms = make_loss_fn("dsrg", settings, strong_weight=2.0)(net, [images, target, strong, tags])
    assert set(terms) == {"loss", "seed", "boundary", "seeded", "grown", "strong"}
    assert terms["seed"].item() == pytest.approx(weak["seed"].item(), rel=1e-6)
    assert terms["boundary"].item() == pytest.approx(weak["boundary"].item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(weak["loss"].item() + 2.0 * strong_ce.item(), rel=1e-6)


def test_batch_of_one_kind_only():
    small, images, target, strong, tags = batch(torch.Generator().manual_seed(2))
    net = Fixed(small, (8, 8))
    all_strong = torch.ones(4, dtype=torch.bool)
    terms = make_loss_fn("dsrg", train_segmentation.dsrg_settings(None), 2.0)(net, [images, target, all_strong, tags])
    ce = F.cross_entropy(net(images), target, ignore_index=IGNORE)
    assert terms["seed"].item() == 0 and terms["boundary"].item() == 0
    assert terms["loss"].item() == pytest.approx(2.0 * ce.item(), rel=1e-6)
    terms = make_loss_fn("ce", strong_weight=2.0)(net, [images, target, ~all_strong])
    assert terms["strong"].item() == 0 and terms["loss"].item() == pytest.approx(ce.item(), rel=1e-6)


def test_strong_id_without_mask_is_an_error(tree, tmp_path):
    root, _, strong = tree
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "ImageSets" / "Segmentation" / "all.txt").write_text("a\nb\n")
    (tmp_path / "ImageSets" / "Segmentation" / "strong.txt").write_text("b\n")
    voc = VOCDataset(tmp_path, CLASSES, "all")
    with pytest.raises(WsssError, match=r"^segmentation.semi: image id b of split strong has no ground-truth mask"):
        strong_ids(voc, "strong")
    voc = VOCDataset(root, CLASSES, "train")
    with pytest.raises(WsssError, match="image id demo_000001 of split train_aug is not in training split train"):
        strong_ids(voc, "train_aug")
    assert strong_ids(VOCDataset(root, CLASSES, "train_aug"), "train") == strong


def test_semi_supervised_dsrg_run_writes_a_checkpoint(tree, tmp_path):
    root, labels, strong = tree
    output = tmp_path / "segmentation.pt"
    train_segmentation.run(root, CLASSES, "train_aug", labels, MODEL, TRAIN, output, device="cpu",
                           loss="dsrg", strong_split="train", strong_weight=2.0)
    state = checkpoint.read(output)
    assert state["strong_split"] == "train" and state["strong_weight"] == 2.0 and state["loss"] == "dsrg"
    (epoch,) = state["history"]
    assert set(epoch) == {"epoch", "loss", "seed", "boundary", "seeded", "grown", "strong"}
    assert epoch["strong"] > 0
    assert epoch["loss"] == pytest.approx(epoch["seed"] + epoch["boundary"] + 2.0 * epoch["strong"], rel=1e-5)


def test_weak_images_still_need_pseudo_labels(tree, tmp_path):
    root, labels, strong = tree
    with pytest.raises(WsssError, match="no pseudo label for image id demo_000000 of split train_aug"):
        train_segmentation.run(root, CLASSES, "train_aug", labels, MODEL, TRAIN, tmp_path / "o.pt", device="cpu")
