"""Per-image work (the dense CRF, label rules) spread over a rule's `threads` as processes.

pydensecrf holds the GIL and runs on one core, so threads would not help: `ordered_map` forks
`processes` workers and yields results in input order, so the caller writes its store in a
fixed order from the main process (h5py files are never shared across processes).

Workers are forked: the task function must be a module-level function (it is pickled by name);
what it needs is set up before the fork with `shared(...)` and read back with `shared()`, so
closures and open datasets reach the workers without being pickled.
"""

import multiprocessing
from collections import deque

_SHARED = {}


def shared(**values):
    """Set (with keyword arguments) or get the state that forked workers inherit."""
    _SHARED.update(values)
    return _SHARED


def _single_threaded():
    """Workers run one thread each: the processes are the parallelism."""
    import torch

    torch.set_num_threads(1)


def ordered_map(function, items, processes):
    """function(item) for each item, in order; in `processes` forked workers when > 1.

    `items` is consumed lazily, at most 2 x processes ahead of the results, so a generator that
    computes large items (predict's class probabilities) never piles them up in memory.
    """
    if processes <= 1:
        yield from map(function, items)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(processes, initializer=_single_threaded) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.apply_async(function, (item,)))
            if len(pending) >= 2 * processes:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
