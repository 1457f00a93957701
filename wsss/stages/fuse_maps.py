"""fuse_maps: one map per present class from a method's named maps (its own fusion rule).

CAM has one map; MDC fuses its dilations, FickleNet aggregates its draws, and so on. The fused
map is max-normalised again so every method's output lives in [0, 1].
"""

import torch
from tqdm import tqdm

from wsss.io import StoreReader, StoreWriter
from wsss.methods import METHODS
from wsss.stages.extract_maps import max_normalize


def run(maps, method, output, fuse=None, threads=1):
    """fuse: the method's `fuse` config block, passed to its fuse() as keyword arguments."""
    fuse = fuse or {}
    with StoreReader(maps) as reader, StoreWriter(
        output, "fuse_maps", method, reader.classes, {"maps": str(maps), "fuse": fuse}
    ) as store:
        for image_id in tqdm(reader.ids(), desc=f"fuse_maps {method}", mininterval=5):
            named, attrs = reader.read(image_id)
            named = {name: torch.from_numpy(array.astype("float32")) for name, array in named.items()}
            if len(attrs["classes"]):
                fused = max_normalize(METHODS[method].fuse(named, **fuse))  # (K', H, W)
            else:  # no foreground tag: nothing to fuse
                fused = next(iter(named.values()))  # (0, H, W)
            store.write(image_id, {"map": fused.numpy()}, classes=attrs["classes"])
