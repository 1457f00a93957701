SEG = config["segmentation"]


rule train_segmentation:
    input:
        split_list(SPLITS["train_split"]),
        labels=shards_of("labels", SPLITS["train_split"]),
    output:
        output=f"{RESULTS}/segmentation.pt",
    params:
        **dataset_params(),
        split=SPLITS["train_split"],
        model=SEG["model"],
        train=SEG["train"],
        device=config["device"],
        amp=config["amp"],
    threads: config["threads"]
    resources:
        gpu=config["gpus"],
    log:
        f"{LOGS}/train_segmentation.log",
    benchmark:
        f"{BENCH}/train_segmentation.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/train_segmentation.py"


rule predict:
    input:
        split_list("{split}"),
        checkpoint=f"{RESULTS}/segmentation.pt",
    output:
        output=shard_file("predictions"),
    params:
        **dataset_params(),
        split=lambda w: w.split,
        shard=lambda w: w.scatteritem,
        scales=SEG["predict"]["scales"],
        flip=SEG["predict"]["flip"],
        crf=SEG["predict"]["crf"],
        device=config["device"],
        amp=config.get("amp", True),
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        f"{LOGS}/predict_{{split}}_{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/predict_{{split}}_{{scatteritem}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/predict.py"


rule segmentations:
    input:
        expand(rules.train_segmentation.output.output, dataset=DATASET, method=METHODS),


rule predictions:
    input:
        all_shards("predictions", METHODS, SPLITS["val_split"]),
