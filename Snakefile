# wsss: weakly-supervised semantic segmentation as cached stages.
#   snakemake --cores all                      the whole chain on the config below
#   snakemake -R make_labels --until make_labels   rerun one stage, keep the rest
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"

SCHEMA = "workflow/schemas/config.schema.yaml"


def check_config(config):
    """Fail on the first invalid value with one line naming its key; then let Snakemake's
    validation fill in the schema's defaults."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(open(f"{workflow.basedir}/{SCHEMA}"))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise WorkflowError(f"config: {key}: {error.message}")
    validate(config, SCHEMA)


check_config(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/random_walk.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        f"results/{DATASET}/summary.tsv",
        LABEL_PNGS,
    default_target: True
