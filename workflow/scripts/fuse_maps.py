"""Snakemake shim for rule fuse_maps: the work is in wsss.stages.fuse_maps.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.stages.shim import run_rule  # noqa: E402

run_rule(snakemake, "fuse_maps")
