"""Snakemake shim for rule random_walk: the work is in wsss.stages.random_walk.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.stages.shim import run_rule  # noqa: E402

run_rule(snakemake, "random_walk")
