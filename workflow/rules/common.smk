# Shared names and checks. Paths: results/{dataset}/{method}/<stage output>.
from pathlib import Path

DATASET = config["dataset"]["name"]
ROOT = config["dataset"]["root"]
CLASSES = config["dataset"]["classes"]
SALIENCY = config["dataset"]["saliency"]
SPLITS = {k: config["dataset"][k] for k in ("train_split", "eval_split", "val_split")}
EVAL = SPLITS["eval_split"]
VAL = SPLITS["val_split"]
# The store the eval split's maps and labels are read from (see dataset.eval_in_train).
EVAL_STORE = SPLITS["train_split"] if config["dataset"]["eval_in_train"] else EVAL
METHODS = config["methods"]
# Grad-CAM explains CAM's classifier: it trains none of its own.
CLASSIFIER_OF = {method: "cam" if method == "gradcam" else method for method in METHODS}
TRAINED = sorted(set(CLASSIFIER_OF.values()))
IS_DEMO = Path(ROOT).resolve() == Path(config["demo"]["root"]).resolve()
CONDA_ENV = "../../envs/wsss.yaml"  # relative to the rule files
RESULTS = "results/{dataset}/{method}"
LOGS = "results/{dataset}/{method}/logs"
BENCH = "results/{dataset}/{method}/benchmarks"

if not IS_DEMO and not Path(ROOT).is_dir():
    raise WorkflowError(f"dataset.root: folder {ROOT} does not exist")
if config["demo"]["min_side"] > config["demo"]["max_side"]:
    raise WorkflowError("demo.min_side: must not exceed demo.max_side")

wildcard_constraints:
    dataset=DATASET,
    method="|".join(sorted(set(METHODS) | set(TRAINED))),
    split="|".join(sorted(set(SPLITS.values()))),


def split_list(split):
    """The split's id list: a dependency, produced by make_demo_dataset for the demo."""
    return f"{ROOT}/ImageSets/Segmentation/{split}.txt"


def dataset_params():
    return {"root": ROOT, "classes": CLASSES}


def method_config(wildcards):
    return config[wildcards.method]


def classifier(wildcards):
    """The checkpoint a method's maps come from (its own, or CAM's for Grad-CAM)."""
    return f"results/{wildcards.dataset}/{CLASSIFIER_OF[wildcards.method]}/classifier.pt"
