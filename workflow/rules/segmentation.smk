SEG = config["segmentation"]


rule train_segmentation:
    input:
        split_list(SPLITS["train_split"]),
        labels=f"{RESULTS}/labels/{SPLITS['train_split']}.h5",
    output:
        output=f"{RESULTS}/segmentation.pt",
    params:
        **dataset_params(),
        split=SPLITS["train_split"],
        model=SEG["model"],
        train=SEG["train"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=1,
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
        output=f"{RESULTS}/predictions/{{split}}.h5",
    params:
        **dataset_params(),
        split=lambda w: w.split,
        scales=SEG["predict"]["scales"],
        flip=SEG["predict"]["flip"],
        crf=SEG["predict"]["crf"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        f"{LOGS}/predict_{{split}}.log",
    benchmark:
        f"{BENCH}/predict_{{split}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/predict.py"


rule segmentations:
    input:
        expand(rules.train_segmentation.output.output, dataset=DATASET, method=METHODS),


rule predictions:
    input:
        expand(rules.predict.output.output, dataset=DATASET, method=METHODS, split=SPLITS["val_split"]),
