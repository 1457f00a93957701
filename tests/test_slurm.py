"""The pipeline through profiles/slurm and snakemake-executor-plugin-slurm on a real SLURM.

tests/slurm/start_slurm.sh starts a single-node cluster on this machine (munged, MariaDB +
slurmdbd, slurmctld, slurmd with one fake GPU). The tiny demo configuration then runs with
`--profile profiles/slurm`, the account and partition given as the profile documents it
(WSSS_SLURM_ACCOUNT, WSSS_SLURM_PARTITION), and SLURM's own accounting says what each job got:
a GPU for the GPU rules, none for the others, always the user's account and partition.

Runs when the test cluster is already up, or with WSSS_SLURM=1 (`make test-slurm`), which
starts it (root; installs Debian packages when missing) and stops it afterwards. Plain
`make test` skips it: it must not install system packages or start daemons as a side effect.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_workflow import tiny_config

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tests" / "slurm"
STATE = Path(os.environ.get("WSSS_SLURM_STATE", "/tmp/wsss-slurm"))
ACCOUNT = PARTITION = "wsss_test"  # as registered by start_slurm.sh; root's default account differs
GPU_RULES = {"train_classifier", "extract_maps", "train_segmentation", "predict"}
pytestmark = pytest.mark.slurm


def slurm_env():
    return {**os.environ, "SLURM_CONF": str(STATE / "slurm.conf")}


def cluster_up():
    # sinfo and friends wait a minute for a missing slurm.conf: check the file first
    if not (STATE / "slurm.conf").is_file():
        return False
    ping = subprocess.run(["scontrol", "ping"], env=slurm_env(), capture_output=True, text=True)
    return ping.returncode == 0 and "UP" in ping.stdout


@pytest.fixture(scope="module")
def cluster():
    """The test cluster's environment; started (and stopped afterwards) only with WSSS_SLURM=1."""
    started = False
    if not cluster_up():
        if os.environ.get("WSSS_SLURM") != "1":
            pytest.skip("no test SLURM cluster: run `make test-slurm` (root) or tests/slurm/start_slurm.sh")
        out = subprocess.run(["bash", str(SCRIPTS / "start_slurm.sh")], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr
        started = True
    yield slurm_env()
    if started:
        subprocess.run(["bash", str(SCRIPTS / "stop_slurm.sh")], capture_output=True, timeout=120)


def accounted_jobs(workdir, env):
    """SLURM's accounting of the jobs run in `workdir`: one dict per job, with its rule."""
    fields = ["JobID", "Account", "Partition", "State", "AllocTRES", "Comment", "WorkDir"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-S", "now-1days", "-o", ",".join(fields)],
        env=env, capture_output=True, text=True, check=True,
    )
    jobs = [dict(zip(fields, line.split("|"))) for line in out.stdout.splitlines()]
    jobs = [job for job in jobs if Path(job["WorkDir"]) == workdir]
    for job in jobs:  # the plugin's comment: rule_<name> or rule_<name>_wildcards_<values>
        job["rule"] = job["Comment"].removeprefix("rule_").split("_wildcards_")[0]
    return jobs


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """One pipeline run through the profile; returns its folder and its accounted jobs."""
    workdir = tmp_path_factory.mktemp("slurm")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config(methods=["cam", "ficklenet"])))
    env = {**cluster, "WSSS_SLURM_ACCOUNT": ACCOUNT, "WSSS_SLURM_PARTITION": PARTITION}
    command = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--profile", str(REPO / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks", "2",  # the default 40 s suits a busy cluster
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    (workdir / "snakemake.log").write_text(out.stdout + out.stderr)
    assert out.returncode == 0, out.stderr[-4000:]
    return workdir, accounted_jobs(workdir, env)


def test_pipeline_writes_the_summary(run):
    workdir, _ = run
    summary = (workdir / "results" / "demo" / "summary.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in summary[1:]] == ["cam", "ficklenet"]


def test_every_job_ran_on_slurm_with_the_users_account_and_partition(run):
    _, jobs = run
    rules = {job["rule"] for job in jobs}
    assert GPU_RULES <= rules and {"make_demo_dataset", "make_labels", "summarize"} <= rules
    assert {(job["Account"], job["Partition"], job["State"]) for job in jobs} == {(ACCOUNT, PARTITION, "COMPLETED")}


def test_gpu_rules_get_a_gpu_and_cpu_rules_none(run):
    _, jobs = run
    for job in jobs:
        tres = job["AllocTRES"].split(",")
        assert ("gres/gpu=1" in tres) == (job["rule"] in GPU_RULES), (job["rule"], job["AllocTRES"])
