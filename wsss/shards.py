"""Shards: the per-image stages (extract_maps, fuse_maps, make_labels, predict) run as
`n` independent jobs over contiguous blocks of a split's ids.

A shard is named as Snakemake's scattergather names its items: "i-of-n" (1-based). Each job
reads only its block and writes `<store>/<i>-of-<n>.h5`; readers treat the shard files as one
store (wsss.io.StoreReader). Memory and time per job depend on the block, not the dataset.
"""

import re

from wsss.errors import WsssError


def parse(shard):
    """"2-of-4" -> (2, 4)."""
    match = re.fullmatch(r"(\d+)-of-(\d+)", str(shard))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise WsssError(f"shard: expected 'i-of-n' with 1 <= i <= n, got {shard!r}")
    return int(match[1]), int(match[2])


def select(ids, shard):
    """The ids of shard "i-of-n": the i-th of n contiguous, near-equal blocks (None = all ids).

    Blocks differ in size by at most one id; with more shards than ids some are empty.
    """
    if shard is None:
        return list(ids)
    index, count = parse(shard)
    start, stop = (index - 1) * len(ids) // count, index * len(ids) // count
    return list(ids[start:stop])
