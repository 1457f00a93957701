"""wsss: weakly-supervised semantic segmentation as a cached Snakemake pipeline."""

__version__ = "0.1.0"
