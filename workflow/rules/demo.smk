# The built-in generated dataset, only when dataset.root is the demo's folder.
if IS_DEMO:

    rule make_demo_dataset:
        output:
            [split_list(s) for s in ("train_aug", "train", "val")],
        params:
            root=ROOT,
            classes=CLASSES,
            seed=config["demo"]["seed"],
            counts=config["demo"]["counts"],
            min_side=config["demo"]["min_side"],
            max_side=config["demo"]["max_side"],
        log:
            f"results/{DATASET}/logs/make_demo_dataset.log",
        benchmark:
            f"results/{DATASET}/benchmarks/make_demo_dataset.tsv"
        conda:
            CONDA_ENV
        script:
            "../scripts/make_demo_dataset.py"

    rule demo:
        input:
            rules.make_demo_dataset.output,
