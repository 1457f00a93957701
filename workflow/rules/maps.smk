rule extract_maps:
    input:
        split_list("{split}"),
        checkpoint=classifier,
    output:
        output=f"{RESULTS}/maps/{{split}}.h5",
    params:
        **dataset_params(),
        split=lambda w: w.split,
        method=lambda w: w.method,
        saliency=SALIENCY,
        scales=lambda w: method_config(w)["extract"]["scales"],
        flip=lambda w: method_config(w)["extract"]["flip"],
        options=lambda w: {k: v for k, v in method_config(w)["extract"].items() if k not in ("scales", "flip")},
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        f"{LOGS}/extract_maps_{{split}}.log",
    benchmark:
        f"{BENCH}/extract_maps_{{split}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_maps.py"


rule fuse_maps:
    input:
        maps=f"{RESULTS}/maps/{{split}}.h5",
    output:
        output=f"{RESULTS}/fused/{{split}}.h5",
    params:
        method=lambda w: w.method,
        fuse=lambda w: method_config(w).get("fuse", {}),
    log:
        f"{LOGS}/fuse_maps_{{split}}.log",
    benchmark:
        f"{BENCH}/fuse_maps_{{split}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/fuse_maps.py"


# The eval split needs stores of its own only when it is not part of the training split.
MAP_SPLITS = sorted({SPLITS["train_split"], EVAL_STORE})


rule maps:
    input:
        expand(rules.extract_maps.output.output, dataset=DATASET, method=METHODS, split=MAP_SPLITS),


rule fused:
    input:
        expand(rules.fuse_maps.output.output, dataset=DATASET, method=METHODS, split=MAP_SPLITS),
