"""export_labels: a store's labels as VOC palette PNGs, one per image id (`labels.export_png`).

Reads every shard of the store, so the folder holds the whole split. The folder is written
under a temporary name and renamed when complete.
"""

import os
import shutil
from pathlib import Path

from tqdm import tqdm

from wsss.data.palette import save_palette_png
from wsss.io import StoreReader


def run(labels, output, threads=1):
    """labels: a store (file, folder or list of shard files); output: the PNG folder."""
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with StoreReader(labels) as reader:
            for image_id in tqdm(reader.ids(), desc="export_labels", mininterval=5):
                save_palette_png(tmp / f"{image_id}.png", reader.read(image_id)[0]["label"])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(output, ignore_errors=True)  # Snakemake removes an old output before the job
    os.replace(tmp, output)
