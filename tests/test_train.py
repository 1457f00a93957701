"""The training loop's device decisions, checked on the CPU (this machine has no GPU).

Mixed precision: on the CPU autocast and the GradScaler must change nothing, bit for bit; the
CUDA branch must build a float16 autocast and a CUDA GradScaler (only the decision is tested
here: running it needs a GPU). DataLoaders: workers from threads, pinned memory on CUDA only,
each torchrun process a 1 / world_size share of every batch.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from wsss.device import amp_enabled, autocast, data_workers, grad_scaler, loader_options
from wsss.errors import WsssError
from wsss.train import fit, make_loader, make_optimizer, poly_lr, seed_everything

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_amp_only_on_cuda_and_only_when_enabled():
    assert amp_enabled(CUDA, True) and amp_enabled("cuda:1", True)
    assert not amp_enabled(CUDA, False)
    assert not amp_enabled(CPU, True) and not amp_enabled(CPU, False)


def test_autocast_on_cpu_is_a_null_context():
    context = autocast(CPU, True)
    assert isinstance(context, contextlib.nullcontext)
    with context:
        product = torch.ones(2, 3) @ torch.ones(3, 2)
    assert product.dtype == torch.float32


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
def test_cuda_branch_builds_float16_autocast_and_cuda_grad_scaler():
    context = autocast(CUDA, True)
    assert isinstance(context, torch.autocast)
    assert context.device == "cuda" and context.fast_dtype == torch.float16
    assert grad_scaler(CUDA, True)._device == "cuda"  # enabled wherever CUDA exists
    assert not grad_scaler(CUDA, False).is_enabled()
    assert not grad_scaler(CPU, True).is_enabled()


def tiny_training(amp):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    images, tags = torch.randn(8, 3, 8, 8), (torch.rand(8, 2) > 0.5).float()  # (N, 3, 8, 8), (N, K)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, tags), batch_size=4)

    def loss_fn(net, batch):
        loss = F.binary_cross_entropy_with_logits(net(batch[0]), batch[1])
        return {"loss": loss}

    optimizer = make_optimizer([(list(net.parameters()), 1.0)], lr=0.1, momentum=0.9, weight_decay=1e-4)
    history = fit(net, loader, loss_fn, optimizer, epochs=2, device=CPU, amp=amp)
    return net.state_dict(), history


def test_amp_on_the_cpu_changes_nothing():
    with_amp, history_amp = tiny_training(amp=True)
    without, history = tiny_training(amp=False)
    assert history_amp == history
    for name, value in without.items():
        assert torch.equal(with_amp[name], value), name


def test_workers_from_threads():
    assert data_workers("auto", 4) == 3  # one thread stays with training
    assert data_workers("auto", 1) == 0
    assert data_workers(2, 8) == 2 and data_workers(0, 8) == 0


def test_pinned_memory_only_on_cuda():
    assert loader_options(CUDA, "auto", 3) == {"num_workers": 2, "pin_memory": True}
    assert loader_options(CPU, 1, 3) == {"num_workers": 1, "pin_memory": False}


def numbers(n):
    return torch.utils.data.TensorDataset(torch.arange(n))


def test_one_process_loader_takes_whole_batches():
    loader = make_loader(numbers(10), 4, 0, CPU, threads=1, seed=0)
    assert loader.batch_size == 4 and loader.drop_last and loader.num_workers == 0
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)
    assert not make_loader(numbers(3), 4, 0, CPU, threads=1, seed=0).drop_last  # keep the only batch


def test_each_process_loads_its_share_of_every_batch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        loader = make_loader(numbers(12), 4, 0, CPU, threads=1, seed=5)
        assert loader.batch_size == 2 and loader.drop_last
        loader.sampler.set_epoch(1)
        seen.append([int(i) for batch in loader for i in batch[0]])
    assert len(seen[0]) == len(seen[1]) == 6
    assert sorted(seen[0] + seen[1]) == list(range(12))  # one shared permutation, split between ranks


def test_batch_that_does_not_split_over_processes_is_an_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(WsssError, match="train.batch_size 3 .* gpus 2"):
        make_loader(numbers(12), 3, 0, CPU, threads=1, seed=0)


def test_each_process_seeds_seed_plus_rank(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    seed_everything(7)
    drawn = torch.rand(3)
    torch.manual_seed(8)
    assert torch.equal(drawn, torch.rand(3))


def test_poly_lr():
    optimizer = make_optimizer([([torch.nn.Parameter(torch.zeros(1))], 1.0), ([torch.nn.Parameter(torch.zeros(1))], 10.0)],
                               lr=0.01, momentum=0.9, weight_decay=0.0)
    poly_lr(optimizer, 5, 10)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01 * 0.5 ** 0.9, 0.1 * 0.5 ** 0.9])
