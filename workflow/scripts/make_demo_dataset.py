"""Snakemake shim for rule make_demo_dataset: the work is in wsss.stages.make_demo_dataset.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.stages.shim import run_rule  # noqa: E402

run_rule(snakemake, "make_demo_dataset")
