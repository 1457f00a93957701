"""make_demo_dataset: the built-in generated VOC-format dataset (see wsss.data.demo)."""

from wsss.data.demo import generate


def run(root, classes, seed, counts, min_side, max_side, threads=1):
    generate(root, classes, seed=seed, counts=counts, min_side=min_side, max_side=max_side)
