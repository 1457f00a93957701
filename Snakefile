# wsss: weakly-supervised semantic segmentation as cached stages.
#   snakemake --cores all                      the whole chain on the config below
#   snakemake -R make_labels --until make_labels   rerun one stage, keep the rest
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    input:
        f"results/{DATASET}/summary.tsv",
    default_target: True
