"""Sharded stages and the process pool: shard blocks by hand, stores read from a list of shard
files, ordered results from forked workers, and make_labels / export_labels giving the same
labels whatever the number of processes or shards."""

import os
import time

import numpy as np
import pytest
from PIL import Image

from wsss import shards
from wsss.data.demo import generate
from wsss.data.palette import VOC_PALETTE
from wsss.errors import WsssError
from wsss.io import StoreReader, StoreWriter
from wsss.parallel import ordered_map
from wsss.stages import export_labels, make_labels

CLASSES = ["alpha", "beta", "gamma"]


def test_shard_blocks_by_hand():
    ids = [f"i{k}" for k in range(10)]
    blocks = [shards.select(ids, f"{i}-of-3") for i in (1, 2, 3)]
    assert blocks == [ids[0:3], ids[3:6], ids[6:10]]  # floor(10 i / 3) = 3, 6, 10
    assert shards.select(ids, None) == ids
    # more shards than ids: floor(2 i / 4) = 0, 1, 1, 2 -> some shards are empty
    assert [shards.select(ids[:2], f"{i}-of-4") for i in (1, 2, 3, 4)] == [[], ["i0"], [], ["i1"]]


@pytest.mark.parametrize("bad", ["0-of-2", "3-of-2", "two", "1of2"])
def test_bad_shard_name(bad):
    with pytest.raises(WsssError, match="shard: expected 'i-of-n'"):
        shards.select(["a"], bad)


def _slow_square(x):
    time.sleep(0.02 * (x % 3))  # out-of-order completion
    return x * x, os.getpid()


def test_ordered_map_keeps_order_and_uses_worker_processes():
    results = list(ordered_map(_slow_square, range(12), processes=2))
    assert [r for r, _ in results] == [x * x for x in range(12)]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert [r for r, _ in ordered_map(_slow_square, range(5), processes=1)] == [0, 1, 4, 9, 16]


def _fail_on_three(x):
    if x == 3:
        raise WsssError("image id 3: broken")
    return x


def test_ordered_map_reraises_a_worker_error():
    with pytest.raises(WsssError, match="image id 3"):
        list(ordered_map(_fail_on_three, range(6), processes=2))


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """A tiny VOC tree and a fused store whose maps favour each image's true classes."""
    tmp = tmp_path_factory.mktemp("labels")
    root = tmp / "VOC"
    generate(root, CLASSES, seed=0, counts={"train_aug": 6, "train": 2, "val": 2}, min_side=40, max_side=56)
    from wsss.data.voc import VOCDataset

    voc = VOCDataset(root, CLASSES, "train_aug")
    rng = np.random.default_rng(0)
    path = tmp / "fused.h5"
    with StoreWriter(path, "fuse_maps", "cam", ["background", *CLASSES], {}) as store:
        for image_id in voc.ids:
            present = np.flatnonzero(voc.tags(image_id)) + 1
            maps = rng.random((len(present), *voc.image_size(image_id))).astype(np.float32)
            store.write(image_id, {"map": maps}, classes=present)
    return root, path, voc.ids


LABELS = {"bg_cue": {"type": "power", "alpha": 4}, "crf": {"preset": "psa", "iterations": 5}, "confidence": 0.0}


def labels_of(path):
    with StoreReader(path) as reader:
        return {image_id: reader.read(image_id)[0]["label"] for image_id in reader.ids()}


def test_make_labels_same_with_two_processes_and_by_shards(fused, tmp_path):
    root, path, ids = fused
    args = dict(root=root, classes=CLASSES, split="train_aug", method="cam", **LABELS)
    make_labels.run(path, output=tmp_path / "one.h5", threads=1, **args)
    make_labels.run(path, output=tmp_path / "two.h5", threads=2, **args)
    for i in (1, 2):
        make_labels.run(path, output=tmp_path / "shards" / f"{i}-of-2.h5", threads=2, shard=f"{i}-of-2", **args)
    one, two = labels_of(tmp_path / "one.h5"), labels_of(tmp_path / "two.h5")
    assert sorted(one) == sorted(ids)
    for image_id in ids:
        np.testing.assert_array_equal(one[image_id], two[image_id])
    assert sorted(labels_of(tmp_path / "shards" / "1-of-2.h5")) == sorted(ids[:3])  # a shard holds its block
    sharded = labels_of(sorted((tmp_path / "shards").glob("*.h5")))  # a list of shard files is one store
    assert sharded.keys() == one.keys()
    for image_id in ids:
        np.testing.assert_array_equal(sharded[image_id], one[image_id])
    assert any(len(np.unique(label)) > 1 for label in one.values())  # not trivially all background


def test_export_labels_writes_palette_pngs_of_every_shard(fused, tmp_path):
    root, path, ids = fused
    args = dict(root=root, classes=CLASSES, split="train_aug", method="cam", **LABELS)
    files = [tmp_path / f"{i}-of-2.h5" for i in (1, 2)]
    for i, file in enumerate(files, start=1):
        make_labels.run(path, output=file, shard=f"{i}-of-2", **args)
    export_labels.run([str(f) for f in files], tmp_path / "png")
    pngs = sorted(p.stem for p in (tmp_path / "png").glob("*.png"))
    assert pngs == sorted(ids)
    expected = labels_of(files)
    for image_id in ids:
        with Image.open(tmp_path / "png" / f"{image_id}.png") as img:
            assert img.mode == "P"
            assert img.getpalette()[:12] == list(VOC_PALETTE[:12])
            np.testing.assert_array_equal(np.asarray(img), expected[image_id])
    assert not list(tmp_path.glob(".png.tmp-*"))


def test_missing_shard_file_is_named(tmp_path):
    write_labels = StoreWriter(tmp_path / "1-of-2.h5", "make_labels", "cam", ["background"], {})
    with write_labels as store:
        store.write("a", {"label": np.zeros((2, 2), np.uint8)})
    with pytest.raises(WsssError, match="2-of-2.h5: store shard does not exist"):
        StoreReader([tmp_path / "1-of-2.h5", tmp_path / "2-of-2.h5"])
