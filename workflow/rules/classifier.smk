rule train_classifier:
    wildcard_constraints:
        method=METHOD_NAMES,
    input:
        split_list(SPLITS["train_split"]),
    output:
        output=f"{RESULTS}/classifier.pt",
    params:
        **dataset_params(),
        split=SPLITS["train_split"],
        method=lambda w: w.method,
        model=lambda w: method_config(w)["model"],
        train=lambda w: method_config(w)["train"],
        device=config["device"],
        amp=config["amp"],
    threads: config["threads"]
    resources:
        gpu=config["gpus"],
    log:
        f"{LOGS}/train_classifier.log",
    benchmark:
        f"{BENCH}/train_classifier.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/train_classifier.py"


rule classifiers:
    input:
        expand(rules.train_classifier.output.output, dataset=DATASET, method=TRAINED),
