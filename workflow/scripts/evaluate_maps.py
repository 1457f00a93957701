"""Snakemake shim for rule evaluate_maps: the work is in wsss.stages.evaluate_maps.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.stages.shim import run_rule  # noqa: E402

run_rule(snakemake, "evaluate_maps")
