"""Data-parallel training across processes started by torchrun (DistributedDataParallel).

torchrun gives every process RANK, LOCAL_RANK and WORLD_SIZE in its environment; without them
(a plain single-process run) every function here is a no-op, so the training stages call them
unconditionally. Processes talk through NCCL on CUDA (one GPU each: cuda:LOCAL_RANK) and through
gloo on the CPU. Each process sees 1 / WORLD_SIZE of every batch (DistributedSampler); DDP
averages the gradients, so the update is the one-process update on the whole batch, except
that BatchNorm normalises with each process's own batch statistics. Only rank 0 writes files.
"""

import contextlib
import os

import torch
import torch.distributed as dist

from wsss.errors import WsssError


def world_size():
    return int(os.environ.get("WORLD_SIZE", 1))


def rank():
    return int(os.environ.get("RANK", 0))


def is_distributed():
    return world_size() > 1


def is_main():
    """Rank 0, the one process that writes outputs and logs."""
    return rank() == 0


@contextlib.contextmanager
def process_group(device):
    """Join torchrun's process group for the block; yields the device this process trains on."""
    if not is_distributed():
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def per_process_batch(batch_size):
    """Each process's share of a batch of `batch_size` images."""
    if batch_size % world_size():
        raise WsssError(f"train.batch_size {batch_size} does not split evenly over gpus {world_size()}")
    return batch_size // world_size()


def sampler(dataset, seed):
    """A shuffling DistributedSampler (each process its own share), or None for one process."""
    if not is_distributed():
        return None
    return torch.utils.data.DistributedSampler(dataset, world_size(), rank(), shuffle=True, seed=seed)


def wrap(model, device):
    """DDP around a module whose forward returns the loss terms. find_unused_parameters: some
    heads receive no gradient in some steps (SC-CAM's sub-category head before its first round)."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def mean_over_processes(values, device):
    """{name: float} averaged over processes (each process's epoch means -> the global ones)."""
    if not is_distributed():
        return values
    names = list(values)  # the same order in every process: one loss_fn
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {n: v / world_size() for n, v in zip(names, tensor.tolist())}


def broadcast_buffers(model):
    """Copy rank 0's buffers to every process: after the last training step each process's
    BatchNorm running statistics moved with its own batch; rank 0's are the ones saved."""
    if is_distributed():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def check_same(model, device):
    """Raise unless every process holds the same parameters and buffers (checked before rank 0
    saves them: ranks that drifted apart would make the checkpoint one arbitrary replica)."""
    if not is_distributed():
        return
    with torch.no_grad():
        state = [t.detach().float().flatten() for t in model.state_dict().values() if t.is_floating_point()]
        local = torch.cat(state).to(device)  # (P,) every weight and buffer entry
        lowest, highest = local.clone(), local.clone()
        dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
        dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    if not torch.equal(lowest, highest):
        raise RuntimeError(f"the {world_size()} training processes ended with different weights")
