"""Pictures of the results: the Snakemake report's figures and the `wsss` command's PNGs.

Modules: `draw` (heat overlays and palette colours of one image's arrays), `panels` (PNGs of
native-size panels for the `wsss` command), and one module per report rule (`table`,
`curves`, `per_class`, `samples`, rule `report_<module>`), each with a `run(**kwargs)` as the
stages have. Like the stages, nothing here imports snakemake or reads config.yaml.
"""

import contextlib
import importlib
import sys
import traceback

from wsss.errors import WsssError


def run_rule(smk, name):
    """Call wsss.report.<name>.run with the rule's named inputs, outputs and params; params
    named caption_* are for the report's captions only and are not passed.

    As wsss.stages.shim.run_rule, without importing torch: output goes to the rule's log, a
    WsssError becomes one line `error: ...` there and on stderr, and exit status 1.
    """
    module = importlib.import_module(f"wsss.report.{name}")
    params = {key: value for key, value in smk.params.items() if not key.startswith("caption_")}
    kwargs = {**dict(smk.input.items()), **dict(smk.output.items()), **params}
    with open(smk.log[0], "w") as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                module.run(**kwargs)
        except WsssError as exc:
            print(f"error: {exc}", file=log, flush=True)
            print(f"report_{name}: error: {exc}", file=sys.stderr)
            sys.exit(1)
        except Exception:
            traceback.print_exc(file=log)
            raise
