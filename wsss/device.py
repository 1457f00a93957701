"""Device choice and what follows from it: CUDA when available (or asked for), CPU otherwise.

On CUDA, training and extraction run under automatic mixed precision (float16 autocast, and a
GradScaler so small float16 gradients do not flush to zero) and DataLoaders pin host memory for
faster copies. On the CPU none of this applies: autocast is a null context and the GradScaler a
pass-through, so CPU results do not depend on the `amp` setting.
"""

import contextlib

import torch

from wsss.errors import WsssError


def pick_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WsssError(f"device: {name!r} requested but CUDA is not available")
    return torch.device(name)


def amp_enabled(device, enabled=True):
    """Mixed precision only on CUDA: CPU float16 kernels are slow or missing."""
    return bool(enabled) and torch.device(device).type == "cuda"


def autocast(device, enabled=True):
    """torch.autocast in float16 on CUDA (when enabled), else a context that changes nothing."""
    if amp_enabled(device, enabled):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device, enabled=True):
    """Loss scaling for float16 training; disabled (scale 1, a plain optimizer.step) off CUDA."""
    on = amp_enabled(device, enabled)
    return torch.amp.GradScaler("cuda" if on else "cpu", enabled=on)


def data_workers(workers, threads):
    """DataLoader worker processes: a number, or "auto" = threads - 1 (one thread stays with
    the training process itself)."""
    if workers == "auto":
        return max(0, int(threads) - 1)
    return int(workers)


def loader_options(device, workers, threads):
    """The device-dependent DataLoader arguments: worker count and pinned memory (CUDA only)."""
    return {"num_workers": data_workers(workers, threads), "pin_memory": torch.device(device).type == "cuda"}
