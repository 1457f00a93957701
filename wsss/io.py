"""HDF5 stores: the only module that imports h5py.

Layout (DESIGN.md): one file per stage output. Root attributes say what produced it
(`stage`, `method`, `classes` with background first, `params` as JSON, `version`). One group
per image id holding named datasets: maps are float16 (K, H, W) with a `classes` attribute
listing the K class indices (1-based, background is 0); labels / predictions are uint8
(H, W) with 255 for "ignore".

Writers write to a temporary name in the same folder and rename on success, so a killed job
never leaves a file that looks finished. A store may also be split into shard files (the
sharded stages write `<store>/<i>-of-<n>.h5`): a folder of them or a list of their paths is read
as one store.
"""

import json
import os
from pathlib import Path

import h5py
import numpy as np

from wsss import __version__
from wsss.errors import WsssError


class StoreWriter:
    """Context manager writing one store atomically.

    with StoreWriter(path, stage="extract_maps", method="cam", classes=names, params={...}) as w:
        w.write(image_id, {"cam": maps}, classes=[3, 7])
    """

    def __init__(self, path, stage, method, classes, params):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self.attrs = {
            "stage": stage,
            "method": method or "",
            "classes": json.dumps(list(classes)),
            "params": json.dumps(params, sort_keys=True, default=str),
            "version": __version__,
        }
        self.file = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = h5py.File(self.tmp, "w")
        self.file.attrs.update(self.attrs)
        return self

    def write(self, image_id, arrays, **attrs):
        """arrays: name -> ndarray. Floats are stored as float16 (maps), the rest as given."""
        group = self.file.create_group(image_id)
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.dtype.kind == "f":
                array = array.astype(np.float16)
            group.create_dataset(name, data=array, compression="gzip", compression_opts=1)
        for key, value in attrs.items():
            group.attrs[key] = np.asarray(value)

    def __exit__(self, exc_type, exc, tb):
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def _store_files(path):
    if isinstance(path, (list, tuple)):  # the shard files of one store
        if not path:
            raise WsssError("store: empty list of shard files")
        for file in path:
            if not Path(file).is_file():
                raise WsssError(f"{file}: store shard does not exist")
        return sorted(Path(file) for file in path)
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.h5"))
        if not files:
            raise WsssError(f"{path}: folder holds no .h5 shard files")
        return files
    if not path.exists():
        raise WsssError(f"{path}: store does not exist")
    return [path]


class StoreReader:
    """Read a store (one file or a folder of shards) as a mapping image id -> arrays.

    h5py handles do not survive pickling, so files are opened lazily on first use in each
    process (DataLoader workers included).
    """

    def __init__(self, path):
        self.files = _store_files(path)
        self.path = store_name(path)
        self._handles = None
        self._index = {}
        for file in self.files:
            with _open(file) as h5:
                for image_id in h5.keys():
                    if image_id in self._index:
                        raise WsssError(f"{file}: image id {image_id!r} is also in {self._index[image_id]}")
                    self._index[image_id] = file
        with _open(self.files[0]) as h5:
            self.attrs = _decode_attrs(h5.attrs)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = None
        return state

    def _handle(self, file):
        if self._handles is None:
            self._handles = {}
        if file not in self._handles:
            self._handles[file] = _open(file)
        return self._handles[file]

    @property
    def classes(self):
        return self.attrs["classes"]

    def ids(self):
        return list(self._index)

    def __contains__(self, image_id):
        return image_id in self._index

    def __len__(self):
        return len(self._index)

    def read(self, image_id):
        """Return ({name: ndarray}, {attr: value}) for one image."""
        if image_id not in self._index:
            raise WsssError(f"{self.path}: image id {image_id!r} not in store")
        group = self._handle(self._index[image_id])[image_id]
        arrays = {name: group[name][()] for name in group.keys()}
        attrs = {key: group.attrs[key] for key in group.attrs.keys()}
        return arrays, attrs

    def close(self):
        for handle in (self._handles or {}).values():
            handle.close()
        self._handles = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def store_name(path):
    """A store's name in messages and provenance: its file, its folder, or its shards' folder."""
    if isinstance(path, (list, tuple)):
        return Path(os.path.commonpath([str(p) for p in path])) if len(path) > 1 else Path(path[0])
    return Path(path)


def _open(file):
    try:
        return h5py.File(file, "r")
    except OSError as exc:
        raise WsssError(f"{file}: not a readable HDF5 store ({exc})") from None


def _decode_attrs(attrs):
    out = {key: attrs[key] for key in attrs.keys()}
    for key in ("classes", "params"):
        if key in out:
            out[key] = json.loads(out[key])
    return out


def read_attrs(path):
    """Root attributes (provenance) of a store."""
    with _open(_store_files(path)[0]) as h5:
        return _decode_attrs(h5.attrs)
