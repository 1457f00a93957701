rule extract_maps:
    wildcard_constraints:
        method=METHOD_NAMES,
    input:
        split_list("{split}"),
        checkpoint=classifier,
    output:
        output=shard_file("maps"),
    params:
        **dataset_params(),
        split=lambda w: w.split,
        shard=lambda w: w.scatteritem,
        method=lambda w: w.method,
        saliency=SALIENCY,
        scales=lambda w: method_config(w)["extract"]["scales"],
        flip=lambda w: method_config(w)["extract"]["flip"],
        batch_size=lambda w: method_config(w)["extract"]["batch_size"],
        options=lambda w: {k: v for k, v in method_config(w)["extract"].items() if k not in EXTRACT_KEYS},
        device=config["device"],
        amp=config.get("amp", True),
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        f"{LOGS}/extract_maps_{{split}}_{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/extract_maps_{{split}}_{{scatteritem}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_maps.py"


rule fuse_maps:
    wildcard_constraints:
        method=METHOD_NAMES,
    input:
        maps=shard_file("maps"),
    output:
        output=shard_file("fused"),
    params:
        method=lambda w: w.method,
        fuse=lambda w: method_config(w).get("fuse", {}),
    log:
        f"{LOGS}/fuse_maps_{{split}}_{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/fuse_maps_{{split}}_{{scatteritem}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/fuse_maps.py"


# The eval split needs stores of its own only when it is not part of the training split.
MAP_SPLITS = sorted({SPLITS["train_split"], EVAL_STORE})


rule maps:
    input:
        all_shards("maps", METHODS, MAP_SPLITS),


rule fused:
    input:
        all_shards("fused", METHODS, MAP_SPLITS),
