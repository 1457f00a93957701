"""Snakemake shim for rule export_labels: the work is in wsss.stages.export_labels.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.stages.shim import run_rule  # noqa: E402

run_rule(snakemake, "export_labels")
