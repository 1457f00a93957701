"""DSRG (Huang et al., CVPR 2018): region growing, seeding and boundary losses, and a training run.

Region growing on a hand-made probability map must add exactly the confident pixels connected
(8-neighbour) to a seed of their class, with the background's stricter threshold; the losses are
checked against values computed by hand.
"""

import math

import numpy as np
import pytest
import torch

from wsss import checkpoint
from wsss.data.demo import generate
from wsss.data.transforms import normalize
from wsss.data.voc import VOCDataset
from wsss.errors import WsssError
from wsss.io import StoreWriter
from wsss.refine import dsrg
from wsss.stages import train_segmentation

N = 255  # unlabelled
CLASSES = ["alpha", "beta"]


def hand_map():
    """(3, 6, 8) probabilities (background, class 1, class 2), seeds, and the expected growth."""
    winner = np.zeros((6, 8), int)
    confidence = np.full((6, 8), 0.5)  # argmax but unsure: never grows
    seeds = np.full((6, 8), N, np.uint8)
    expected = seeds.copy()

    def put(y, x, c, p, seed=False, grows=False):
        winner[y, x], confidence[y, x] = c, p
        if seed:
            seeds[y, x] = expected[y, x] = c
        if grows:
            expected[y, x] = c

    put(1, 1, 1, 0.9, seed=True)
    put(1, 2, 1, 0.9, grows=True)      # next to the seed
    put(2, 3, 1, 0.9, grows=True)      # diagonal neighbour of (1, 2): 8-connectivity
    put(3, 4, 1, 0.86, grows=True)     # just above 0.85, diagonal again
    put(4, 5, 1, 0.84)                 # connected, below the foreground threshold
    put(5, 6, 1, 0.95)                 # confident, connected only through (4, 5)
    put(3, 7, 1, 0.95)                 # confident but disconnected: stays unlabelled
    put(2, 1, 2, 0.99)                 # confident class 2, far from the class-2 seed
    put(2, 2, 2, 0.99)
    put(5, 0, 0, 0.999, seed=True)
    put(5, 1, 0, 0.995, grows=True)    # background above 0.99
    put(4, 0, 0, 0.95)                 # background above 0.85 but below 0.99
    put(3, 0, 0, 0.999)                # confident background reachable only through (4, 0)
    put(0, 4, 1, 0.999, seed=True)     # a class-1 seed where the network says background ...
    winner[0, 4] = 0                   # ... keeps its class
    put(0, 7, 2, 0.97, seed=True)      # a seed of class 2 ...
    put(0, 6, 2, 0.97)                 # ... whose class is not among the tags here
    probs = np.zeros((3, 6, 8))
    rest = (1 - confidence) / 2
    for c in range(3):
        probs[c] = np.where(winner == c, confidence, rest)
    return probs, seeds, expected


def test_grow_adds_exactly_confident_connected_pixels():
    probs, seeds, expected = hand_map()
    grown = dsrg.grow(probs, seeds, bg_threshold=0.99, fg_threshold=0.85, present=[0, 1])
    np.testing.assert_array_equal(grown, expected)
    assert grown.dtype == np.uint8


def test_four_neighbours_would_miss_the_diagonal():
    """The diagonal pixels grow only because DSRG's components are 8-connected."""
    probs, seeds, expected = hand_map()
    grown = dsrg.grow(probs, seeds, present=[0, 1])
    assert grown[2, 3] == 1 and grown[3, 4] == 1
    assert expected[2, 2] == N and expected[1, 3] == N and expected[2, 4] == N  # no 4-neighbour path


def test_classes_grow_from_their_seeds_when_present():
    probs, seeds, expected = hand_map()
    grown = dsrg.grow(probs, seeds)  # present = the seeds' classes: class 2 grows too
    assert grown[0, 6] == 2
    assert grown[2, 1] == N  # class-2 pixels not connected to the class-2 seed
    tags = np.array([1.0, 0.0])  # class 1 (alpha) tagged, class 2 not
    np.testing.assert_array_equal(dsrg.present_classes(tags), [0, 1])


def test_thresholds_are_parameters():
    probs, seeds, expected = hand_map()
    grown = dsrg.grow(probs, seeds, bg_threshold=0.9, fg_threshold=0.8, present=[0, 1])
    assert grown[4, 0] == 0 and grown[3, 0] == 0      # background now at 0.95 / 0.999
    assert grown[4, 5] == 1 and grown[5, 6] == 1      # 0.84 passes 0.8, and the path opens
    assert grown[3, 7] == N                            # still disconnected


def test_seed_loss_by_hand():
    # B = 2, C = 3, one row of 4 pixels; probabilities chosen per pixel.
    probs = torch.tensor([
        [[0.7, 0.2, 0.1], [0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
        [[0.9, 0.05, 0.05], [0.2, 0.2, 0.6], [0.4, 0.4, 0.2], [0.1, 0.1, 0.8]],
    ]).permute(0, 2, 1)[:, :, None, :]  # (2, 3, 1, 4)
    seeds = torch.tensor([[[0, 0, 1, N]], [[0, N, N, N]]])  # (2, 1, 4)
    bg = ((-math.log(0.7) - math.log(0.5)) / 2 + -math.log(0.9)) / 2
    fg = (-math.log(0.8) + 0.0) / 2  # image 2 has no foreground seed: it adds 0
    assert dsrg.seed_loss(probs.log(), seeds).item() == pytest.approx(bg + fg, rel=1e-6)


def test_seed_loss_is_balanced():
    """Ten times more background seeds at the same probability leave the loss unchanged."""
    row = torch.tensor([[0.6, 0.3, 0.1]] * 11 + [[0.2, 0.7, 0.1]])  # (12, 3)
    log_probs = row.T.log()[None, :, None, :]  # (1, 3, 1, 12)
    few = torch.tensor([[[0] + [N] * 10 + [1]]])
    many = torch.tensor([[[0] * 11 + [1]]])
    expected = -math.log(0.6) - math.log(0.7)
    assert dsrg.seed_loss(log_probs, few).item() == pytest.approx(expected, rel=1e-6)
    assert dsrg.seed_loss(log_probs, many).item() == pytest.approx(expected, rel=1e-6)


def test_boundary_loss_by_hand():
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).T[None, :, None, :]  # (1, 2, 1, 2)
    q = torch.tensor([[0.8, 0.2], [0.9, 0.1]]).T[None, :, None, :]
    kl = (0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5) + 0.0) / 2  # second pixel: Q = P
    assert dsrg.boundary_loss(p.log(), q).item() == pytest.approx(kl, rel=1e-6)
    assert dsrg.boundary_loss(p.log(), p).item() == pytest.approx(0.0, abs=1e-7)


def tiny_step():
    """Logits (1, 3, 4, 4), a normalised 4 x 4 image, seeds and tags for dsrg_loss."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, generator=generator, requires_grad=True)
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, 2:] = 200
    seeds = torch.full((1, 4, 4), N)
    seeds[0, 0, 0], seeds[0, 3, 3] = 0, 1
    return logits, normalize(image)[None], seeds, torch.tensor([[1.0, 0.0]])


def test_boundary_term_is_zero_when_the_crf_returns_p(monkeypatch):
    monkeypatch.setattr(dsrg, "dense_crf", lambda image, scores, **crf: scores)
    logits, images, seeds, tags = tiny_step()
    terms = dsrg.dsrg_loss(logits, images, seeds, tags)
    assert terms["boundary"].item() == pytest.approx(0.0, abs=1e-6)
    grown = dsrg.grow(torch.softmax(logits, 1)[0].detach().numpy(), seeds[0].numpy().astype(np.uint8),
                      present=[0, 1])
    expected = dsrg.seed_loss(torch.log_softmax(logits, 1), torch.from_numpy(grown).long()[None])
    assert terms["seed"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(terms["seed"].item() + terms["boundary"].item())
    # the logged fractions: 2 of 16 pixels seeded, and what grow() labelled by hand
    assert terms["seeded"].item() == pytest.approx(2 / 16)
    assert terms["grown"].item() == pytest.approx(float(np.mean(grown != 255)))


def test_boundary_term_with_the_real_crf_is_positive_and_trains():
    logits, images, seeds, tags = tiny_step()
    terms = dsrg.dsrg_loss(logits, images, seeds, tags)
    assert terms["boundary"].item() > 1e-3  # the CRF smooths random logits: Q differs from P
    terms["loss"].backward()
    assert logits.grad.abs().sum() > 0


def test_crf_sees_the_image_itself():
    image = (np.arange(4 * 6 * 3).reshape(4, 6, 3) * 3).astype(np.uint8)
    np.testing.assert_allclose(dsrg.image_pixels(normalize(image)[None], (4, 6))[0], image, atol=1)


def test_seeds_downscale_by_nearest_neighbour():
    seeds = torch.full((1, 8, 8), N)
    seeds[0, :4, :4] = 1
    small = dsrg.downscale_seeds(seeds, (2, 2))
    assert small.tolist() == [[[1, N], [N, N]]]


def make_tree(root):
    generate(root, CLASSES, seed=0, counts={"train_aug": 8, "train": 4, "val": 2}, min_side=32, max_side=40)
    return root


def write_seeds(voc, path, ids):
    """Pseudo labels: every other row of the ground truth, the rest unlabelled."""
    with StoreWriter(path, stage="make_labels", method="cam", classes=["background", *CLASSES], params={}) as w:
        for image_id in ids:
            label = voc.mask(image_id).copy()
            label[::2] = N
            w.write(image_id, {"label": label})


TRAIN = dict(epochs=1, batch_size=4, crop=48, scale_range=[1.0, 1.0], lr=0.01, momentum=0.9,
             weight_decay=1e-4, seed=0, workers=0)
MODEL = dict(backbone="resnet18", output_stride=16, weights="none")


def test_training_with_dsrg_writes_a_checkpoint(tmp_path):
    root = make_tree(tmp_path / "VOC2012")
    voc = VOCDataset(root, CLASSES, "train_aug")
    write_seeds(voc, tmp_path / "labels.h5", voc.ids)
    output = tmp_path / "segmentation.pt"
    train_segmentation.run(root, CLASSES, "train_aug", tmp_path / "labels.h5", MODEL, TRAIN, output,
                           device="cpu", loss="dsrg", dsrg={"fg_threshold": 0.8, "crf": {"iterations": 5}})
    state = checkpoint.read(output)
    assert state["loss"] == "dsrg" and state["strong_split"] is None
    assert state["dsrg"]["fg_threshold"] == 0.8 and state["dsrg"]["bg_threshold"] == 0.99
    assert state["dsrg"]["crf"]["iterations"] == 5 and state["dsrg"]["crf"]["bi_srgb"] == 13
    (epoch,) = state["history"]
    assert set(epoch) == {"epoch", "loss", "seed", "boundary", "seeded", "grown"}
    assert epoch["loss"] == pytest.approx(epoch["seed"] + epoch["boundary"], rel=1e-5)
    assert epoch["seed"] > 0 and epoch["boundary"] > 0


def test_unknown_loss_and_dsrg_setting_are_one_line_errors(tmp_path):
    with pytest.raises(WsssError, match="segmentation.train.loss: 'sec'"):
        train_segmentation.run(tmp_path, CLASSES, "train_aug", tmp_path / "x.h5", MODEL, TRAIN, tmp_path / "o.pt",
                               loss="sec")
    with pytest.raises(WsssError, match="segmentation.dsrg.fg_thresh:"):
        train_segmentation.dsrg_settings({"fg_thresh": 0.8})
    with pytest.raises(WsssError, match="segmentation.dsrg.grow_from: 'cam'"):
        train_segmentation.dsrg_settings({"grow_from": "cam"})
