SEG = config["segmentation"]


def when_choice(choice, value):
    """A param that is `value` for runs of this choice and None for the others (so a change to
    one choice's settings reruns only its runs)."""
    return lambda w: value if choice_of(w.method) == choice else None


rule train_segmentation:
    input:
        split_list(SPLITS["train_split"]),
        lambda w: [split_list(SEG["semi"]["split"])] if choice_of(w.method) == "semi" else [],
        labels=lambda w: gather.shard(shard_file("labels"), dataset=w.dataset, method=labels_run(w.method),
                                      split=SPLITS["train_split"]),
    output:
        output=f"{RESULTS}/segmentation.pt",
    params:
        **dataset_params(),
        split=SPLITS["train_split"],
        model=SEG["model"],
        train=SEG["train"],
        loss=lambda w: "dsrg" if choice_of(w.method) == "dsrg" else "ce",
        dsrg=when_choice("dsrg", SEG["dsrg"]),
        strong_split=when_choice("semi", SEG["semi"]["split"]),
        strong_weight=when_choice("semi", SEG["semi"]["weight"]),
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
        expand(rules.train_segmentation.output.output, dataset=DATASET, method=RUNS),


rule predictions:
    input:
        all_shards("predictions", RUNS, SPLITS["val_split"]),
