"""Run a stage from a Snakemake `script:` shim without importing snakemake.

The rule's named inputs, named outputs and params become keyword arguments of
`wsss.stages.<rule>.run`; unnamed inputs are dependencies only. Output goes to the rule's log.
A WsssError becomes one line `error: ...` in the log and on stderr and exit status 1.

A rule given more than one GPU (`resources: gpu=N`, config key `gpus`) re-runs its stage under
torchrun with N processes (DistributedDataParallel, see wsss.distributed): the keyword arguments
travel in a JSON file, the job's threads are split between the processes, rank 0 writes the log
and the outputs, and a WsssError in any process still ends as one line.
"""

import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import torch

from wsss import distributed
from wsss.errors import WsssError

REPO = Path(__file__).resolve().parents[2]  # holds the wsss package: the workers import it from here


class LineLog:
    """A log file in which tqdm's carriage-return redraws become separate lines (tail -f friendly)."""

    def __init__(self, path):
        self.file = open(path, "w")
        self.line_open = False  # the last write left a line unfinished (a progress bar)

    def write(self, text):
        text = text.replace("\r", "\n").replace("\n\n", "\n")
        if text:
            self.line_open = not text.endswith("\n")
        return self.file.write(text)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()


def stage_kwargs(smk):
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **dict(smk.params.items())}
    kwargs["threads"] = smk.threads
    return kwargs


def gpus(smk):
    """GPUs (so processes) the rule was given: its `gpu` resource, 1 when it has none."""
    return max(1, int(getattr(getattr(smk, "resources", None), "gpu", 1)))


def run_rule(smk, stage):
    log = smk.log[0] if smk.log else None
    processes = gpus(smk)
    if processes > 1:
        message = launch(stage, stage_kwargs(smk), log, processes)
    else:
        message = run_stage(stage, stage_kwargs(smk), log)
    if message is not None:
        if log is not None:
            print(f"{stage}: error: {message}", file=sys.stderr)
        sys.exit(1)


def run_stage(stage, kwargs, log_path):
    """Run the stage in this process, its output to the log (or stderr); returns the message of
    a WsssError (already written to the log) or None."""
    torch.set_num_threads(max(1, kwargs["threads"]))
    module = importlib.import_module(f"wsss.stages.{stage}")
    log = LineLog(log_path) if log_path else sys.stderr
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            module.run(**kwargs)
    except WsssError as exc:
        if getattr(log, "line_open", False):  # a progress bar was drawing: the error gets its own line
            log.write("\n")
        print(f"error: {exc}", file=log, flush=True)
        return str(exc)
    except Exception:
        traceback.print_exc(file=log)
        log.flush()
        raise
    finally:
        if log is not sys.stderr:
            log.close()
    return None


def launch(stage, kwargs, log_path, processes):
    """Run the stage under torchrun with `processes` processes; returns a WsssError's message or
    None. Each process gets an equal share of the job's threads."""
    kwargs = {**kwargs, "threads": max(1, kwargs["threads"] // processes)}
    with tempfile.TemporaryDirectory(prefix=f"wsss-{stage}-") as folder:
        job = Path(folder) / "job.json"
        job.write_text(json.dumps({"stage": stage, "kwargs": kwargs, "log": log_path, "errors": folder}))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", "--module", "wsss.stages.shim", str(job)]
        env = {**os.environ, "OMP_NUM_THREADS": str(kwargs["threads"]),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        # With a log, torchrun's own messages go there only if it fails; without, to stderr.
        chatter = Path(folder) / "torchrun.txt"
        with open(chatter, "w") as out:
            status = subprocess.run(command, env=env, stdout=out if log_path else None,
                                    stderr=subprocess.STDOUT if log_path else None).returncode
        if status == 0:
            return None
        return failure(stage, status, folder, log_path, chatter)


def failure(stage, status, folder, log_path, chatter):
    """A WsssError's message from the first process that wrote one (appended to the log unless
    rank 0 already wrote it there); otherwise torchrun's report goes to the log and we raise."""
    errors = sorted(Path(folder).glob("error.*"), key=lambda p: int(p.suffix[1:]))
    if errors:
        message = errors[0].read_text()
        if errors[0].suffix != ".0" and log_path:
            with open(log_path, "a") as log:
                print(f"error: {message}", file=log)
        return message
    if log_path:
        with open(log_path, "a") as log:
            log.write(chatter.read_text())
    raise RuntimeError(f"{stage}: torchrun exited with status {status}; see {log_path or 'above'}")


def worker(job_path):
    """One torchrun process: run the stage; only rank 0 writes the log."""
    job = json.loads(Path(job_path).read_text())
    log = job["log"] if distributed.is_main() else os.devnull
    message = run_stage(job["stage"], job["kwargs"], log)
    if message is not None:
        (Path(job["errors"]) / f"error.{distributed.rank()}").write_text(message)
        sys.exit(1)


if __name__ == "__main__":
    worker(sys.argv[1])
