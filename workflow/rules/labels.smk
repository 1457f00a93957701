LABELS = config["labels"]


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
        bg_cue=LABELS["bg_cue"],
        crf=LABELS["crf"],
        confidence=LABELS["confidence"],
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
