# AffinityNet's random walk (psa) for the runs "<method>+random_walk": an affinity network
# trained on the method's confident labels, then a walk over the method's fused maps.
RW = config["random_walk"]
RW_RUNS = [run for run in RUNS if choice_of(run) == "random_walk"]


def method_fused(split, shard=None):
    """Input function: the fused maps of the run's method (one shard, or every shard)."""
    def files(w):
        method = base_method(w.method)
        if shard:
            return expand(shard_file("fused"), dataset=w.dataset, method=method, split=w.split, scatteritem=w.scatteritem)
        return gather.shard(shard_file("fused"), dataset=w.dataset, method=method, split=split)
    return files


rule train_affinity:
    wildcard_constraints:
        method=one_of(RW_RUNS) or "(?!)",
    input:
        split_list(SPLITS["train_split"]),
        fused=method_fused(SPLITS["train_split"]),
        classifier=lambda w: classifier(w) if RW["model"]["init_from_classifier"] else [],
    output:
        output=f"{RESULTS}/affinity.pt",
    params:
        **dataset_params(),
        split=SPLITS["train_split"],
        model=lambda w: {k: v for k, v in RW["model"].items() if k != "init_from_classifier"},
        train=RW["train"],
        bg_alphas=RW["labels"]["bg_alphas"],
        crf=RW["labels"]["crf"],
        device=config["device"],
        amp=config["amp"],
    threads: config["threads"]
    resources:
        gpu=config["gpus"],
    log:
        f"{LOGS}/train_affinity.log",
    benchmark:
        f"{BENCH}/train_affinity.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/train_affinity.py"


rule random_walk:
    wildcard_constraints:
        method=one_of(RW_RUNS) or "(?!)",
    input:
        split_list("{split}"),
        checkpoint=f"{RESULTS}/affinity.pt",
        fused=method_fused(None, shard=True),
    output:
        output=shard_file("labels"),
    params:
        **dataset_params(),
        split=lambda w: w.split,
        shard=lambda w: w.scatteritem,
        alpha=RW["walk"]["alpha"],
        beta=RW["walk"]["beta"],
        steps=RW["walk"]["steps"],
        crf=RW["walk"]["crf"],
        dense_limit=RW["walk"]["dense_limit"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=1,
    log:
        f"{LOGS}/random_walk_{{split}}_{{scatteritem}}.log",
    benchmark:
        f"{BENCH}/random_walk_{{split}}_{{scatteritem}}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/random_walk.py"
