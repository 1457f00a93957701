"""What every report figure shares: the Agg backend, one colour per method, metric JSON reading."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402

from wsss.errors import WsssError  # noqa: E402

DPI = 100


def method_colors(methods):
    """{method: colour}, by position in the config's `methods`, the same in every figure."""
    cycle = plt.get_cmap("tab10").colors
    return {method: cycle[i % len(cycle)] for i, method in enumerate(methods)}


def read_metrics(methods, paths, kind):
    """{method: the metric JSON of `kind` (maps, labels, segmentation)}, in the order of `methods`."""
    if len(methods) != len(paths):
        raise WsssError(f"{kind}: {len(paths)} metric files for {len(methods)} methods")
    return {method: json.loads(Path(path).read_text()) for method, path in zip(methods, paths)}


def save(fig, output):
    """Write the figure as PNG (under a temporary name, renamed when complete) and close it."""
    from wsss.files import atomic_output

    with atomic_output(output) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
