"""Snakemake shim for rule train_affinity: the work is in wsss.stages.train_affinity.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.stages.shim import run_rule  # noqa: E402

run_rule(snakemake, "train_affinity")
