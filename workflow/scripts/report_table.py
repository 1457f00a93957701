"""Snakemake shim for rule report_table: the work is in wsss.report.table.run."""
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")  # the repo root, so --use-conda needs no install
from wsss.report import run_rule  # noqa: E402

run_rule(snakemake, "table")
