"""The pipeline through profiles/slurm and snakemake-executor-plugin-slurm on a real SLURM.

tests/slurm/start_slurm.sh starts a single-node cluster on this machine (munged, MariaDB +
slurmdbd, slurmctld, slurmd with two fake GPUs). The tiny demo configuration then runs with
`--profile profiles/slurm`, the account and partition given as the profile documents it
(WSSS_SLURM_ACCOUNT, WSSS_SLURM_PARTITION), and SLURM's own accounting says what each job got:
a GPU for the GPU rules, none for the others, always the user's account and partition. An
unset variable fails at the first submission with a message naming it.

Runs when the test cluster is already up, or with WSSS_SLURM=1 (`make test-slurm`), which
starts it (root; installs Debian packages when missing) and stops it afterwards. Plain
`make test` skips it: it must not install system packages or start daemons as a side effect.
"""

import os
import re
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
GPU_RULES = {"train_classifier", "extract_maps", "train_segmentation", "predict"}  # at least these
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
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


def planned_jobs(workdir, env):
    """(rule, whether it asks for a GPU) of each job a dry run plans, but `all`: the target runs
    nothing, so Snakemake does it on the submitting host."""
    out = subprocess.run([*SNAKEMAKE, "-d", str(workdir), "-n"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    jobs = []
    for line in out.stdout.splitlines():
        if match := re.match(r"(?:local)?rule (\w+):", line):
            jobs.append([match.group(1), False] if match.group(1) != "all" else None)
        elif line.strip().startswith("resources:") and re.search(r"\bgpu=[1-9]", line) and jobs[-1]:
            jobs[-1][1] = True
    return [tuple(job) for job in jobs if job]


def through_profile(workdir):
    """The snakemake command a user runs on a cluster (plus a faster first status check)."""
    return [
        *SNAKEMAKE, "-d", str(workdir), "--profile", str(REPO / "profiles" / "slurm"),
        "--slurm-init-seconds-before-status-checks", "2",  # the default 40 s suits a busy cluster
    ]


def tiny_slurm_config():
    """tiny_config with one method and no variants: every rule kind in ~17 jobs."""
    config = tiny_config(methods=["cam"])
    config["variants"] = {}
    return config


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """One pipeline run through the profile: its folder, planned jobs and accounted jobs."""
    workdir = tmp_path_factory.mktemp("slurm")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_slurm_config()))
    env = {**cluster, "WSSS_SLURM_ACCOUNT": ACCOUNT, "WSSS_SLURM_PARTITION": PARTITION}
    planned = planned_jobs(workdir, env)
    out = subprocess.run(through_profile(workdir), env=env, capture_output=True, text=True, timeout=1200)
    (workdir / "snakemake.log").write_text(out.stdout + out.stderr)
    assert out.returncode == 0, out.stderr[-4000:]
    return workdir, planned, accounted_jobs(workdir, env)


def test_pipeline_writes_the_summary(run):
    workdir, _, _ = run
    summary = (workdir / "results" / "demo" / "summary.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in summary[1:]] == ["cam"]


def test_every_job_ran_on_slurm_with_the_users_account_and_partition(run):
    _, planned, jobs = run
    assert sorted(job["rule"] for job in jobs) == sorted(rule for rule, _ in planned)
    assert {(job["Account"], job["Partition"], job["State"]) for job in jobs} == {(ACCOUNT, PARTITION, "COMPLETED")}


def test_gpu_rules_get_a_gpu_and_cpu_rules_none(run):
    _, planned, jobs = run
    gpu_rules = {rule for rule, gpu in planned if gpu}
    assert GPU_RULES <= gpu_rules
    assert {"make_demo_dataset", "make_labels", "summarize"}.isdisjoint(gpu_rules)
    for job in jobs:
        got_gpu = any(tres.startswith("gres/gpu=") for tres in job["AllocTRES"].split(","))
        assert got_gpu == (job["rule"] in gpu_rules), (job["rule"], job["AllocTRES"])


@pytest.mark.parametrize("variable", ["WSSS_SLURM_ACCOUNT", "WSSS_SLURM_PARTITION"])
def test_an_unset_variable_fails_at_submission_naming_it(cluster, tmp_path, variable):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_slurm_config()))
    env = {**cluster, "WSSS_SLURM_ACCOUNT": ACCOUNT, "WSSS_SLURM_PARTITION": PARTITION}
    del env[variable]
    out = subprocess.run([*through_profile(tmp_path), "demo"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert f"${variable}" in out.stderr and not (tmp_path / "resources").exists()
