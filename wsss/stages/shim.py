"""Run a stage from a Snakemake `script:` shim without importing snakemake.

The rule's named inputs, named outputs and params become keyword arguments of
`wsss.stages.<rule>.run`; unnamed inputs are dependencies only. Output goes to the rule's log.
A WsssError becomes one line `error: ...` in the log and on stderr and exit status 1.
"""

import contextlib
import importlib
import sys
import traceback

import torch

from wsss.errors import WsssError


class LineLog:
    """A log file in which tqdm's carriage-return redraws become separate lines (tail -f friendly)."""

    def __init__(self, path):
        self.file = open(path, "w")

    def write(self, text):
        return self.file.write(text.replace("\r", "\n").replace("\n\n", "\n"))

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()


def stage_kwargs(smk):
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **dict(smk.params.items())}
    kwargs["threads"] = smk.threads
    return kwargs


def run_rule(smk, stage):
    torch.set_num_threads(max(1, smk.threads))
    module = importlib.import_module(f"wsss.stages.{stage}")
    log = LineLog(smk.log[0]) if smk.log else sys.stderr
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            module.run(**stage_kwargs(smk))
    except WsssError as exc:
        message = f"error: {exc}"
        print(message, file=log, flush=True)
        if log is not sys.stderr:
            print(f"{stage}: {message}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=log)
        log.flush()
        raise
    finally:
        if log is not sys.stderr:
            log.close()
