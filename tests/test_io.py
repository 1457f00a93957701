"""HDF5 stores: round trip, provenance attributes, atomic writes, shards, pickling, errors."""

import pickle

import numpy as np
import pytest

from wsss import __version__
from wsss.errors import WsssError
from wsss.io import StoreReader, StoreWriter, read_attrs

CLASSES = ["background", "cat", "dog"]
PARAMS = {"scales": [1.0, 0.5], "flip": True, "split": "train"}


def write_store(path, ids, stage="extract_maps", method="cam", seed=0):
    """Write one map per id; return {id: (maps float32, label uint8)}."""
    rng = np.random.default_rng(seed)
    data = {}
    with StoreWriter(path, stage=stage, method=method, classes=CLASSES, params=PARAMS) as w:
        for image_id in ids:
            maps = rng.random((2, 5, 7)).astype(np.float32)
            label = rng.integers(0, 3, (5, 7)).astype(np.uint8)
            label[0, 0] = 255
            w.write(image_id, {"cam": maps, "label": label}, classes=[1, 2])
            data[image_id] = (maps, label)
    return data


def test_round_trip_maps_labels_and_attributes(tmp_path):
    path = tmp_path / "maps" / "train.h5"  # parent folder is created
    data = write_store(path, ["2007_000032", "2007_000039"])
    assert path.is_file()
    with StoreReader(path) as reader:
        assert sorted(reader.ids()) == ["2007_000032", "2007_000039"]
        assert len(reader) == 2 and "2007_000039" in reader and "nope" not in reader
        assert reader.attrs["stage"] == "extract_maps"
        assert reader.attrs["method"] == "cam"
        assert reader.classes == CLASSES
        assert reader.attrs["params"] == PARAMS  # JSON decoded back to the dict
        assert reader.attrs["version"] == __version__
        for image_id, (maps, label) in data.items():
            arrays, attrs = reader.read(image_id)
            assert set(arrays) == {"cam", "label"}
            assert arrays["cam"].dtype == np.float16
            assert arrays["cam"].shape == (2, 5, 7)
            # float16 keeps ~3 significant digits; equal to the float16 cast exactly
            np.testing.assert_array_equal(arrays["cam"], maps.astype(np.float16))
            np.testing.assert_allclose(arrays["cam"], maps, atol=1e-3)
            assert arrays["label"].dtype == np.uint8
            np.testing.assert_array_equal(arrays["label"], label)
            assert arrays["label"][0, 0] == 255
            np.testing.assert_array_equal(attrs["classes"], [1, 2])
    assert read_attrs(path)["params"] == PARAMS
    assert read_attrs(path)["classes"] == CLASSES


def test_float64_maps_stored_as_float16_and_ints_kept(tmp_path):
    path = tmp_path / "s.h5"
    with StoreWriter(path, "make_labels", None, CLASSES, {}) as w:
        w.write("a", {"m": np.array([[0.25, 1.0]], np.float64), "i": np.array([[3, 4]], np.int32)})
    with StoreReader(path) as reader:
        arrays, _ = reader.read("a")
        assert arrays["m"].dtype == np.float16
        np.testing.assert_array_equal(arrays["m"], [[0.25, 1.0]])
        assert arrays["i"].dtype == np.int32
        assert reader.attrs["method"] == ""  # None is stored as an empty string


def test_exception_inside_writer_leaves_no_file(tmp_path):
    path = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with StoreWriter(path, "extract_maps", "cam", CLASSES, PARAMS) as w:
            w.write("a", {"cam": np.zeros((1, 2, 2), np.float32)})
            assert not path.exists()  # only the temporary name exists while writing
            assert len(list(tmp_path.iterdir())) == 1
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file


def test_failed_write_keeps_existing_target(tmp_path):
    path = tmp_path / "out.h5"
    data = write_store(path, ["old"])
    with pytest.raises(ValueError):
        with StoreWriter(path, "extract_maps", "cam", CLASSES, PARAMS) as w:
            w.write("new", {"cam": np.ones((1, 2, 2), np.float32)})
            raise ValueError("killed half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]
    with StoreReader(path) as reader:
        assert reader.ids() == ["old"]
        np.testing.assert_array_equal(reader.read("old")[0]["label"], data["old"][1])


def test_successful_write_replaces_existing_target(tmp_path):
    path = tmp_path / "out.h5"
    write_store(path, ["old"])
    write_store(path, ["new"])
    assert StoreReader(path).ids() == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_folder_of_shards_reads_as_one_store(tmp_path):
    folder = tmp_path / "shards"
    data = write_store(folder / "0.h5", ["a", "b"], seed=1)
    data.update(write_store(folder / "1.h5", ["c"], seed=2))
    (folder / "notes.txt").write_text("not a shard")  # ignored: only *.h5 are shards
    reader = StoreReader(folder)
    assert sorted(reader.ids()) == ["a", "b", "c"]
    assert len(reader) == 3
    assert reader.classes == CLASSES
    for image_id, (_, label) in data.items():
        np.testing.assert_array_equal(reader.read(image_id)[0]["label"], label)
    reader.close()
    assert read_attrs(folder)["stage"] == "extract_maps"


def test_an_id_in_two_shards_raises(tmp_path):
    folder = tmp_path / "shards"
    write_store(folder / "0.h5", ["a", "b"])
    write_store(folder / "1.h5", ["b"])
    with pytest.raises(WsssError, match="'b' is also in"):
        StoreReader(folder)


def test_empty_shard_folder_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WsssError, match="empty"):
        StoreReader(tmp_path / "empty")


def test_reader_survives_pickling(tmp_path):
    path = tmp_path / "s.h5"
    data = write_store(path, ["a", "b"])
    reader = StoreReader(path)
    reader.read("a")  # opens an h5py handle, which cannot be pickled itself
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone.read("b")[0]["label"], data["b"][1])
    assert clone.classes == CLASSES
    # the original still works after being pickled
    np.testing.assert_array_equal(reader.read("a")[0]["label"], data["a"][1])
    reader.close()
    clone.close()


def test_missing_id_names_store_path(tmp_path):
    path = tmp_path / "s.h5"
    write_store(path, ["a"])
    with StoreReader(path) as reader:
        with pytest.raises(WsssError) as info:
            reader.read("zzz_missing")
    assert str(path) in str(info.value) and "zzz_missing" in str(info.value)


def test_missing_store_names_path(tmp_path):
    path = tmp_path / "absent.h5"
    with pytest.raises(WsssError, match="absent.h5"):
        StoreReader(path)
    with pytest.raises(WsssError, match="absent.h5"):
        read_attrs(path)


def test_non_hdf5_file_names_path(tmp_path):
    path = tmp_path / "garbage.h5"
    path.write_bytes(b"this is not an HDF5 file at all" * 10)
    with pytest.raises(WsssError) as info:
        StoreReader(path)
    assert str(path) in str(info.value)
    with pytest.raises(WsssError, match="garbage.h5"):
        read_attrs(path)
