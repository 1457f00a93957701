"""Snakemake shim for rule report_per_class: the work is in wsss.report.per_class.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.report import run_rule  # noqa: E402

run_rule(snakemake, "per_class")
