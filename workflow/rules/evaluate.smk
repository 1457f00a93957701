rule evaluate_maps:
    wildcard_constraints:
        method=METHOD_NAMES,
    input:
        split_list(EVAL),
        fused=shards_of("fused", EVAL_STORE),
    output:
        output=f"{RESULTS}/metrics/maps.json",
    params:
        **dataset_params(),
        split=EVAL,
        bg_scores=config["evaluate"]["bg_scores"],
    log:
        f"{LOGS}/evaluate_maps.log",
    benchmark:
        f"{BENCH}/evaluate_maps.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_maps.py"


rule evaluate_labels:
    wildcard_constraints:
        method=one_of(LABELLED),
    input:
        split_list(EVAL),
        labels=shards_of("labels", EVAL_STORE),
    output:
        output=f"{RESULTS}/metrics/labels.json",
    params:
        **dataset_params(),
        split=EVAL,
    log:
        f"{LOGS}/evaluate_labels.log",
    benchmark:
        f"{BENCH}/evaluate_labels.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_labels.py"


rule evaluate_segmentation:
    input:
        split_list(VAL),
        predictions=shards_of("predictions", VAL),
    output:
        output=f"{RESULTS}/metrics/segmentation.json",
    params:
        **dataset_params(),
        split=VAL,
    log:
        f"{LOGS}/evaluate_segmentation.log",
    benchmark:
        f"{BENCH}/evaluate_segmentation.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/evaluate_segmentation.py"


# Each run's metrics: its method's maps, the labels it trains on, its own segmentation.
METRIC_OWNER = {"maps": base_method, "labels": labels_run, "segmentation": lambda run: run}


def metric_files(kind):
    """The `kind` metrics file of every run, in the order of RUNS."""
    return [f"results/{DATASET}/{METRIC_OWNER[kind](run)}/metrics/{kind}.json" for run in RUNS]


rule metrics:
    input:
        metric_files("maps"),
        metric_files("labels"),
        metric_files("segmentation"),


rule summarize:
    input:
        maps=metric_files("maps"),
        labels=metric_files("labels"),
        segmentation=metric_files("segmentation"),
    output:
        output=f"results/{DATASET}/summary.tsv",
    params:
        methods=RUNS,
    log:
        f"results/{DATASET}/logs/summarize.log",
    benchmark:
        f"results/{DATASET}/benchmarks/summarize.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/summarize.py"
