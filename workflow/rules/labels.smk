LABELS = config["labels"]


def shared_labels(key):
    """The labels block's `key` for methods labelled by it, None for those with their own rule
    (so a CRF change reruns only the methods that use the CRF)."""
    def value(wildcards):
        own = method_config(wildcards).get("labels", {})
        return LABELS[key] if own.get("rule", "shared") == "shared" else None
    return value


rule make_labels:
    wildcard_constraints:
        method=METHOD_NAMES,
    input:
        split_list("{split}"),
        fused=shard_file("fused"),
    output:
        output=shard_file("labels"),
    params:
        **dataset_params(),
        split=lambda w: w.split,
        shard=lambda w: w.scatteritem,
        saliency=SALIENCY,
        bg_cue=shared_labels("bg_cue"),
        crf=shared_labels("crf"),
        confidence=shared_labels("confidence"),
        method=lambda w: w.method,
        own=lambda w: method_config(w).get("labels"),
    threads: config["threads"]
    log:
        f"{LOGS}/make_labels_{{split}}_{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/make_labels_{{split}}_{{scatteritem}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/make_labels.py"


rule export_labels:
    wildcard_constraints:
        method=one_of(LABELLED),
    input:
        labels=shards_of("labels"),
    output:
        output=directory(f"{RESULTS}/labels/{{split}}_png"),
    log:
        f"{LOGS}/export_labels_{{split}}.log",
    benchmark:
        f"{BENCH}/export_labels_{{split}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/export_labels.py"


# VOC palette PNGs of the training split's pseudo labels, when labels.export_png is set.
LABEL_PNGS = (
    expand(rules.export_labels.output.output, dataset=DATASET, method=LABELLED, split=SPLITS["train_split"])
    if LABELS["export_png"]
    else []
)


rule labels:
    input:
        all_shards("labels", LABELLED, MAP_SPLITS),
        LABEL_PNGS,
