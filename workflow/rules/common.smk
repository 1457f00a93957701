# Shared names and checks. Paths: results/{dataset}/{method}/<stage output>.
import re
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
# Issue 5's choices: each (method, choice) in `variants` is one more run named "<method>+<choice>",
# with its own results folder and summary row. random_walk refines the method's labels with
# AffinityNet; dsrg trains the segmentation by seeded region growing; semi adds the ground-truth
# masks of segmentation.semi.split. A run's maps are its method's. Variants of methods that are
# not in `methods` are not run (so `--config methods=[cam]` needs no variants edit).
VARIANTS = config["variants"]
RUNS = [run for method in METHODS
        for run in [method, *(f"{method}+{choice}" for choice, methods in VARIANTS.items() if method in methods)]]
IS_DEMO = Path(ROOT).resolve() == Path(config["demo"]["root"]).resolve()
CONDA_ENV = "../../envs/wsss.yaml"  # relative to the rule files
RESULTS = "results/{dataset}/{method}"
LOGS = "results/{dataset}/{method}/logs"
BENCH = "results/{dataset}/{method}/benchmarks"

if not IS_DEMO and not Path(ROOT).is_dir():
    raise WorkflowError(f"dataset.root: folder {ROOT} does not exist")
if config["demo"]["min_side"] > config["demo"]["max_side"]:
    raise WorkflowError("demo.min_side: must not exceed demo.max_side")
if set(VARIANTS.get("semi", [])) & set(METHODS) and not config["segmentation"]["semi"]["split"]:
    raise WorkflowError("segmentation.semi.split: variants.semi needs the split whose ground-truth masks are used")


def base_method(run):
    """"cam+dsrg" -> "cam"."""
    return run.split("+")[0]


def choice_of(run):
    """"cam+dsrg" -> "dsrg"; a plain method -> None."""
    return run.partition("+")[2] or None


def labels_run(run):
    """Whose pseudo labels a run trains on: its own after the random walk, else its method's."""
    return run if choice_of(run) == "random_walk" else base_method(run)


def one_of(names):
    """A wildcard regex matching exactly these names ('+' is literal)."""
    return "|".join(re.escape(name) for name in sorted(names))


# Rules that work on a method's own classifier and maps take only method names.
METHOD_NAMES = one_of(set(METHODS) | set(TRAINED))
# Runs with pseudo labels of their own (make_labels or the random walk).
LABELLED = [run for run in RUNS if labels_run(run) == run]

wildcard_constraints:
    dataset=DATASET,
    method=one_of(set(METHODS) | set(TRAINED) | set(RUNS)),
    split="|".join(sorted(set(SPLITS.values()))),


# The per-image stages run as `shards` jobs per split (--set-scatter shard=N overrides);
# a store is the folder results/{dataset}/{method}/<kind>/{split}/ of files i-of-n.h5.
scattergather:
    shard=config["shards"],

# Extraction settings every method has; the rest of a method's extract block are its own options.
EXTRACT_KEYS = ("scales", "flip", "batch_size")


def shard_file(kind):
    """One shard of a store: the output (and 1:1 input) pattern of the per-image rules."""
    return f"{RESULTS}/{kind}/{{split}}/{{scatteritem}}.h5"


def shards_of(kind, split=None):
    """Input function: every shard file of one method's store of `split` (default: the job's)."""
    def files(wildcards):
        return gather.shard(shard_file(kind), dataset=wildcards.dataset, method=wildcards.method,
                            split=split or wildcards.split)
    return files


def all_shards(kind, methods, splits):
    """Every shard file of the stores of these methods and splits (for target rules)."""
    return gather.shard(shard_file(kind), dataset=DATASET, method=methods, split=splits)


def split_list(split):
    """The split's id list: a dependency, produced by make_demo_dataset for the demo."""
    return f"{ROOT}/ImageSets/Segmentation/{split}.txt"


def dataset_params():
    return {"root": ROOT, "classes": CLASSES}


def method_config(wildcards):
    """The config block of the job's method (of a run's method: "cam+dsrg" -> cam)."""
    return config[base_method(wildcards.method)]


def classifier(wildcards):
    """The checkpoint a method's maps come from (its own, or CAM's for Grad-CAM)."""
    return f"results/{wildcards.dataset}/{CLASSIFIER_OF[base_method(wildcards.method)]}/classifier.pt"
