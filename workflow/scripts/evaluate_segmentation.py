"""Snakemake shim for rule evaluate_segmentation: the work is in wsss.stages.evaluate_segmentation.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.stages.shim import run_rule  # noqa: E402

run_rule(snakemake, "evaluate_segmentation")
