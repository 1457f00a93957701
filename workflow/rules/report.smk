# Figures for Snakemake's HTML report: the method table, the background-score sweep, IoU per
# class, and one grid per sample image. Run what is missing and write the report in one go:
#   snakemake --cores all figures --report report.html --report-after-run
REPORT = config["report"]
FIGURES = f"results/{DATASET}/report"
REPORT_LOGS = f"results/{DATASET}/logs"
REPORT_BENCH = f"results/{DATASET}/benchmarks"


report: "../report/workflow.rst"


def metrics_of(rule):
    """Every method's metric JSON written by `rule`, in the order of `methods`."""
    return expand(rule.output.output, dataset=DATASET, method=METHODS)


def store(kind, method, split):
    """One method's store of `kind` (maps, fused, labels, predictions) as its list of shard
    files, which wsss.io.StoreReader reads as one store: the one place that knows the layout."""
    return gather.shard(shard_file(kind), dataset=DATASET, method=method, split=split)


def network(model, train):
    """e.g. 'resnet18 from scratch, 7 epochs, crop 96'."""
    weights = {"none": "from scratch", "imagenet": "ImageNet-initialised"}.get(
        model["weights"], f"weights {model['weights']}"
    )
    return f"{model['backbone']} {weights}, {train['epochs']} epoch{'s' * (train['epochs'] > 1)}, crop {train['crop']}"


def method_settings(method):
    """One line of what tells a method's run apart, for the table and the captions."""
    block = config[method]
    if CLASSIFIER_OF[method] == method:
        parts = [network(block["model"], block["train"])]
    else:
        parts = [f"{CLASSIFIER_OF[method]}'s classifier"]
    extract = block["extract"]
    parts.append("scales " + ", ".join(map(str, extract["scales"])) + (" + flip" if extract["flip"] else ""))
    if block.get("labels", {}).get("rule", "shared") == "shared":
        parts.append(f"labels: {LABELS['bg_cue']['type']} background cue + {LABELS['crf']['preset']} CRF")
    else:
        parts.append("labels: the paper's rule")
    return "; ".join(parts)


SETTINGS = {method: method_settings(method) for method in METHODS}
CHOICE_SETTINGS = {"random_walk": "then AffinityNet's random walk gives the labels", "dsrg": "segmentation: DSRG region growing",
                   "semi": "segmentation: + ground-truth masks of " + str(SEG["semi"]["split"])}
# The table also lists the variant runs (cam+random_walk, ...): their method's settings + the choice.
RUN_SETTINGS = {run: SETTINGS[base_method(run)] + (f"; {CHOICE_SETTINGS[choice_of(run)]}" if choice_of(run) else "")
                for run in RUNS}
SEGMENTATION_SETTINGS = "DeepLab-v3 on " + network(SEG["model"], SEG["train"])
METRICS = {kind: metrics_of(getattr(rules, f"evaluate_{kind}")) for kind in ("maps", "labels", "segmentation")}


def figure(path, caption, category, **labels):
    """A report() output of the "Methods compared" kind; params named caption_* feed its caption only."""
    return report(path, caption=f"../report/{caption}", category=category,
                  subcategory=f"dataset {DATASET}", labels=labels)


rule report_table:
    input:
        **{kind: metric_files(kind) for kind in METRICS},
    output:
        output=figure(f"{FIGURES}/methods.html", "methods.rst", "1. Methods compared", figure="1 method table"),
    params:
        methods=RUNS,
        settings=RUN_SETTINGS,
        caption_segmentation=SEGMENTATION_SETTINGS,
    log:
        f"{REPORT_LOGS}/report_table.log",
    benchmark:
        f"{REPORT_BENCH}/report_table.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/report_table.py"


rule report_curves:
    input:
        maps=METRICS["maps"],
    output:
        output=figure(
            f"{FIGURES}/bg_sweep.png", "bg_sweep.rst", "1. Methods compared", figure="2 background-score sweep"
        ),
    params:
        methods=METHODS,
        caption_settings=SETTINGS,
        caption_bg_scores=config["evaluate"]["bg_scores"],
    log:
        f"{REPORT_LOGS}/report_curves.log",
    benchmark:
        f"{REPORT_BENCH}/report_curves.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/report_curves.py"


rule report_per_class:
    input:
        **METRICS,
    output:
        output=figure(f"{FIGURES}/per_class.png", "per_class.rst", "1. Methods compared", figure="3 IoU per class"),
    params:
        methods=METHODS,
        caption_settings=SETTINGS,
        caption_segmentation=SEGMENTATION_SETTINGS,
    log:
        f"{REPORT_LOGS}/report_per_class.log",
    benchmark:
        f"{REPORT_BENCH}/report_per_class.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/report_per_class.py"


# The sample images come from the eval split (they have ground truth, maps and pseudo labels),
# so the segmentation networks predict that split too, not only val_split.
SAMPLE_STORES = {"fused": EVAL_STORE, "labels": EVAL_STORE, "predictions": EVAL}


rule report_samples:
    input:
        split_list(EVAL),
        [file for kind, split in SAMPLE_STORES.items() for method in METHODS for file in store(kind, method, split)],
    output:
        output=report(
            directory(f"{FIGURES}/samples"),
            patterns=["{image_id}.png"],
            caption="../report/samples.rst",
            category="2. Sample images",
            subcategory=f"dataset {DATASET}",
            labels={"image": "{image_id}"},
        ),
    params:
        **dataset_params(),
        split=EVAL,
        methods=METHODS,
        **{kind: [store(kind, method, split) for method in METHODS] for kind, split in SAMPLE_STORES.items()},
        images=REPORT["images"],
        ids=REPORT["ids"],
        caption_settings=SETTINGS,
        caption_segmentation=SEGMENTATION_SETTINGS,
        caption_label_stores=[str(Path(store("labels", method, EVAL_STORE)[0]).parent) for method in METHODS],
    log:
        f"{REPORT_LOGS}/report_samples.log",
    benchmark:
        f"{REPORT_BENCH}/report_samples.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/report_samples.py"


rule figures:
    input:
        rules.report_table.output,
        rules.report_curves.output,
        rules.report_per_class.output,
        rules.report_samples.output,
