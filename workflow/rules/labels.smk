LABELS = config["labels"]


def shared_labels(key):
    """The labels block's `key` for methods labelled by it, None for those with their own rule
    (so a CRF change reruns only the methods that use the CRF)."""
    def value(wildcards):
        own = method_config(wildcards).get("labels", {})
        return LABELS[key] if own.get("rule", "shared") == "shared" else None
    return value


rule make_labels:
    input:
        split_list("{split}"),
        fused=f"{RESULTS}/fused/{{split}}.h5",
    output:
        output=f"{RESULTS}/labels/{{split}}.h5",
        **({"png_dir": directory(f"{RESULTS}/labels/{{split}}_png")} if LABELS["export_png"] else {}),
    params:
        **dataset_params(),
        split=lambda w: w.split,
        saliency=SALIENCY,
        bg_cue=shared_labels("bg_cue"),
        crf=shared_labels("crf"),
        confidence=shared_labels("confidence"),
        method=lambda w: w.method,
        own=lambda w: method_config(w).get("labels"),
    threads: config["threads"]
    log:
        f"{LOGS}/make_labels_{{split}}.log",
    benchmark:
        f"{BENCH}/make_labels_{{split}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/make_labels.py"


rule labels:
    input:
        expand(rules.make_labels.output.output, dataset=DATASET, method=METHODS, split=MAP_SPLITS),
