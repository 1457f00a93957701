"""Data-parallel training on the CPU: gloo process groups of two processes.

DDP with each process on half of every batch must end where one process on the whole batches
ends (a model without BatchNorm: BN would normalise with each half's own statistics). The
real train_classifier stage, launched through the shim's torchrun path, must write one
checkpoint and one copy of its progress, and a WsssError must still end as one line.
The spawned processes import this module: heavy imports (torchvision) stay inside the tests.
"""

import os
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from wsss import distributed
from wsss.data.demo import generate
from wsss.stages.shim import failure, run_rule
from wsss.train import fit, make_optimizer

CLASSES = ["alpha", "beta"]


def tiny_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 3),
    )


def dataset():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(8, 3, 8, 8, generator=generator)  # (N, 3, 8, 8)
    tags = (torch.rand(8, 3, generator=generator) > 0.5).float()  # (N, K)
    return torch.utils.data.TensorDataset(images, tags)


def bce(net, batch):
    images, tags = batch
    loss = F.binary_cross_entropy_with_logits(net(images), tags)
    return {"loss": loss, "bce": loss}


def train(net, loader):
    optimizer = make_optimizer([(list(net.parameters()), 1.0)], lr=0.5, momentum=0.9, weight_decay=1e-3)
    return fit(net, loader, bce, optimizer, epochs=3, device=torch.device("cpu"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp_worker(rank, world, port, folder):
    """One of two processes: DDP training on half batches, then the agreement checks."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with distributed.process_group(torch.device("cpu")):
        net = tiny_net(seed=rank)  # different initial weights: DDP must start both from rank 0's
        data = dataset()
        sampler = torch.utils.data.DistributedSampler(data, world, rank, shuffle=False)
        history = train(net, torch.utils.data.DataLoader(data, batch_size=4 // world, sampler=sampler))
        distributed.check_same(net, torch.device("cpu"))  # must pass: the replicas agree
        trained = {k: v.clone() for k, v in net.state_dict().items()}
        net.register_buffer("stat", torch.full((2,), float(rank)))
        distributed.broadcast_buffers(net)
        stat = net.stat.clone()
        with torch.no_grad():
            net[0].weight[0, 0, 0, 0] += rank  # rank 1 drifts
        try:
            distributed.check_same(net, torch.device("cpu"))
            caught = False
        except RuntimeError:
            caught = True
    torch.save({"state": trained, "history": history, "stat": stat, "caught": caught}, Path(folder) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker, args=(2, free_port(), str(folder)), nprocs=2)
    return [torch.load(folder / f"rank{r}.pt") for r in range(2)]


def test_ddp_on_half_batches_matches_one_process_on_whole_batches(ddp_results):
    net = tiny_net(seed=0)
    history = train(net, torch.utils.data.DataLoader(dataset(), batch_size=4, shuffle=False))
    for result in ddp_results:
        for name, value in net.state_dict().items():
            torch.testing.assert_close(result["state"][name], value, rtol=1e-5, atol=1e-6)
        for mine, theirs in zip(result["history"], history):  # epoch means over both processes
            assert mine["epoch"] == theirs["epoch"]
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)


def test_ranks_agree_and_drift_is_caught(ddp_results):
    assert [r["caught"] for r in ddp_results] == [True, True]  # every process raises, not just one
    for result in ddp_results:
        assert torch.equal(result["stat"], torch.zeros(2))  # rank 0's buffer everywhere


def make_voc(root):
    generate(root, CLASSES, seed=0, counts={"train_aug": 8, "train": 4, "val": 4}, min_side=32, max_side=40)
    return root


def classifier_rule(tmp_path):
    """A train_classifier rule given 2 GPUs: two gloo processes on the CPU, 2 images each per batch."""
    train = dict(epochs=2, batch_size=4, crop=32, scale_range=[1.0, 1.0], lr=0.01, momentum=0.9,
                 weight_decay=1e-4, seed=0, workers=0)
    return SimpleNamespace(
        input={}, output={"output": str(tmp_path / "out" / "classifier.pt")},
        params=dict(root=str(make_voc(tmp_path / "VOC2012")), classes=CLASSES, split="train_aug", method="cam",
                    model=dict(backbone="resnet18", output_stride=16, weights="none"), train=train,
                    device="cpu", amp=True),
        threads=2, log=[str(tmp_path / "train_classifier.log")], resources=SimpleNamespace(gpu=2),
    )


def test_stage_under_torchrun_writes_one_checkpoint_and_one_log(tmp_path):
    from wsss.methods import load_checkpoint

    smk = classifier_rule(tmp_path)
    run_rule(smk, "train_classifier")
    assert os.listdir(tmp_path / "out") == ["classifier.pt"]  # no leftover temporary file of a second writer
    method, net, state = load_checkpoint(tmp_path / "out" / "classifier.pt")
    assert method == "cam" and [h["epoch"] for h in state["history"]] == [1, 2]
    assert all(torch.isfinite(v).all() for v in net.state_dict().values() if v.is_floating_point())
    log = Path(smk.log[0]).read_text().splitlines()
    for epoch in (1, 2):  # rank 0's progress only, once; rank 1 wrote nothing
        assert sum(line.startswith(f"train_classifier cam epoch {epoch}:") for line in log) == 1
    assert not any("error" in line.lower() for line in log)


def test_error_under_torchrun_is_one_line(tmp_path, capsys):
    # The launch path is the same for every stage; make_demo_dataset imports fast.
    log = tmp_path / "make_demo_dataset.log"
    smk = SimpleNamespace(
        input={}, output={}, threads=2, log=[str(log)], resources=SimpleNamespace(gpu=2),
        params=dict(root=str(tmp_path / "VOC2012"), classes=CLASSES, seed=0,
                    counts={"train_aug": 2, "train": 1, "val": 1}, min_side=8, max_side=40),
    )
    with pytest.raises(SystemExit) as exit_info:
        run_rule(smk, "make_demo_dataset")
    assert exit_info.value.code == 1
    errors = [line for line in log.read_text().splitlines() if "error" in line.lower()]
    assert errors == ["error: min_side: expected an integer >= 32, got 8"]  # rank 0's, once
    stderr = capsys.readouterr().err.strip().splitlines()
    assert stderr == ["make_demo_dataset: error: min_side: expected an integer >= 32, got 8"]


def test_error_of_another_rank_reaches_the_log(tmp_path):
    """Rank 1 failed alone (rank 0 was stopped by torchrun): its message is appended to the log."""
    (tmp_path / "error.1").write_text("loss became nan")
    log = tmp_path / "stage.log"
    log.write_text("progress\n")
    assert failure("stage", 1, tmp_path, str(log), tmp_path / "torchrun.txt") == "loss became nan"
    assert log.read_text() == "progress\nerror: loss became nan\n"


def test_crash_under_torchrun_raises_with_torchrun_report(tmp_path):
    (tmp_path / "torchrun.txt").write_text("ChildFailedError: rank 1 exited with code -9\n")
    log = tmp_path / "stage.log"
    log.write_text("progress\n")
    with pytest.raises(RuntimeError, match="torchrun exited with status 1"):
        failure("stage", 1, tmp_path, str(log), tmp_path / "torchrun.txt")
    assert log.read_text().endswith("ChildFailedError: rank 1 exited with code -9\n")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
