"""End to end: the Snakemake chain on a tiny demo configuration in a temporary folder.

One full run (shared by the tests in this module), then: a rerun does nothing, `-R make_labels
--until make_labels` reruns only that stage, and a changed CRF parameter reruns exactly the
labels and what follows. Bad configurations fail at load time with a message naming the key.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]
pytestmark = pytest.mark.e2e


METHODS = ["cam", "gradcam", "mdc", "ficklenet", "seam", "seenet", "sccam"]
VARIANTS = {"random_walk": ["cam"], "dsrg": ["ficklenet"], "semi": ["ficklenet"]}  # extra runs
RUNS = ["cam", "cam+random_walk", "gradcam", "mdc", "ficklenet", "ficklenet+dsrg", "ficklenet+semi", "seam",
        "seenet", "sccam"]
SHARED_LABELS = ["cam", "gradcam", "seam", "sccam"]  # the others label with their paper's rule


def tiny_config(methods=METHODS):
    """The default config.yaml, shrunk: every method's mechanism runs, on 24 tiny images."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["demo"].update(counts={"train_aug": 24, "train": 8, "val": 8}, min_side=64, max_side=80)
    config["dataset"]["classes"] = ["alpha", "beta", "gamma"]
    config["threads"] = 1
    config["methods"] = list(methods)
    trained = [config[m]["train"] for m in METHODS if "train" in config[m]]
    for block in trained + [config["segmentation"]["train"], config["random_walk"]["train"]]:
        block.update(epochs=1, batch_size=8, crop=64)
    for method in METHODS:
        config[method]["extract"]["scales"] = [1.0, 0.5]
    config["ficklenet"]["extract"].update(draws=4, draw_chunk=4)
    config["sccam"]["model"]["subcategories"] = 2
    config["sccam"]["train"].update(rounds=1, round_epochs=1)
    config["labels"]["export_png"] = True
    config["shards"] = 2
    config["variants"] = {choice: list(methods) for choice, methods in VARIANTS.items()}
    return config


def snakemake(workdir, *args):
    return subprocess.run(
        [*SNAKEMAKE, "-d", str(workdir), *args], capture_output=True, text=True, timeout=600
    )


def write_config(workdir, config):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def planned_rules(workdir, *args):
    """Rules a dry run would execute, from Snakemake's job-stats table."""
    out = snakemake(workdir, "-n", *args)
    assert out.returncode == 0, out.stderr
    lines = (out.stdout + out.stderr).splitlines()
    if "Job stats:" not in lines:
        return set()
    rules = set()
    for line in lines[lines.index("Job stats:") + 3:]:  # skip the header and its rule
        name = line.split()[0]
        if name == "total":
            return rules
        rules.add(name)
    raise AssertionError("unterminated job-stats table")


def planned_outputs(workdir):
    """Output files of the jobs a dry run would execute."""
    out = snakemake(workdir, "-n")
    assert out.returncode == 0, out.stderr
    lines = (out.stdout + out.stderr).splitlines()
    return [p.strip() for line in lines if line.strip().startswith("output:")
            for p in line.split("output:", 1)[1].split(",")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    write_config(workdir, tiny_config())
    out = snakemake(workdir)
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


SHARDS = 2  # tiny_config's `shards`: the per-image stages write <store>/1-of-2.h5 and 2-of-2.h5
STAGE_FILES = [  # train is part of train_aug (dataset.eval_in_train): no stores of its own
    *[f"{store}/{i}-of-{SHARDS}.h5" for store in ("maps/train_aug", "fused/train_aug", "labels/train_aug",
                                                  "predictions/val") for i in range(1, SHARDS + 1)],
    "segmentation.pt", "metrics/maps.json", "metrics/labels.json", "metrics/segmentation.json",
]


@pytest.mark.parametrize("method", METHODS)
def test_every_stage_writes_its_file(run_dir, method):
    results = run_dir / "results" / "demo" / method
    for name in STAGE_FILES:
        assert (results / name).is_file(), name
    assert not (results / "maps" / "train").exists()
    assert (results / "classifier.pt").is_file() == (method != "gradcam")  # Grad-CAM explains cam's
    assert len(list((results / "labels" / "train_aug_png").glob("*.png"))) == 24
    for rule in ("extract_maps_train_aug_1-of-2", "make_labels_train_aug_2-of-2", "predict_val_1-of-2"):
        assert (results / "benchmarks" / f"{rule}.tsv").is_file()
        assert (results / "logs" / f"{rule}.log").is_file()


def test_method_outputs_carry_their_mechanism(run_dir):
    """Named maps as each method defines them; SC-CAM keeps its cluster assignments."""
    from wsss.checkpoint import read
    from wsss.io import StoreReader

    names = {"cam": {"cam"}, "gradcam": {"gradcam"}, "mdc": {"d1", "d2", "d3", "d4"}, "ficklenet": {"max", "mean"},
             "seam": {"cam", "pcm"}, "seenet": {"a", "b"}, "sccam": {"cam"}}
    for method, expected in names.items():
        with StoreReader(run_dir / "results" / "demo" / method / "maps" / "train_aug") as store:
            assert set(store.read(store.ids()[0])[0]) == expected, method
    state = read(run_dir / "results" / "demo" / "sccam" / "classifier.pt")
    rounds = state["subcategories"]
    assert list(rounds) == [1] and len(rounds[1]) == 24
    assert all(0 <= k < 2 for clusters in rounds[1].values() for k in clusters.values())


def test_metrics_are_sane(run_dir):
    results = run_dir / "results" / "demo" / "cam" / "metrics"
    maps = json.loads((results / "maps.json").read_text())
    assert 0 <= maps["miou"] <= 100
    assert maps["miou"] == max(point["miou"] for point in maps["curve"])
    assert {"miou_psa", "miou_irn", "bg_score", "per_class", "precision", "recall"} <= set(maps)
    assert set(maps["per_class"]) == {"background", "alpha", "beta", "gamma"}
    labels = json.loads((results / "labels.json").read_text())
    assert 0 <= labels["miou"] <= 100 and 0 <= labels["ignored_fraction"] <= 1
    seg = json.loads((results / "segmentation.json").read_text())
    assert 0 <= seg["miou"] <= 100 and seg["images"] == 8
    summary = (run_dir / "results" / "demo" / "summary.tsv").read_text().splitlines()
    assert summary[0].startswith("method\tmaps_miou")
    assert [line.split("\t")[0] for line in summary[1:]] == RUNS


def test_variant_runs_train_on_their_method_labels(run_dir):
    """ficklenet+dsrg and ficklenet+semi: ficklenet's maps and labels, their own segmentation."""
    from wsss.checkpoint import read

    demo = run_dir / "results" / "demo"
    for run, loss, strong in (("ficklenet+dsrg", "dsrg", None), ("ficklenet+semi", "ce", "train")):
        state = read(demo / run / "segmentation.pt")
        assert (state["loss"], state["strong_split"]) == (loss, strong), run
        assert not (demo / run / "labels").exists() and not (demo / run / "maps").exists()
        assert (demo / run / "predictions" / "val" / "1-of-2.h5").is_file()
    rows = {line.split("\t")[0]: line.split("\t") for line in (demo / "summary.tsv").read_text().splitlines()}
    for run in ("ficklenet+dsrg", "ficklenet+semi"):
        assert rows[run][1:7] == rows["ficklenet"][1:7]  # maps and labels columns are ficklenet's


def test_random_walk_run_has_its_own_labels(run_dir):
    """cam+random_walk: an affinity network and walked labels of its own, cam's maps."""
    from wsss.checkpoint import read
    from wsss.io import StoreReader

    demo = run_dir / "results" / "demo"
    assert read(demo / "cam+random_walk" / "affinity.pt")["method"] == "affinity"
    with StoreReader(demo / "cam+random_walk" / "labels" / "train_aug") as walked, \
            StoreReader(demo / "cam" / "labels" / "train_aug") as plain:
        assert walked.attrs["stage"] == "random_walk" and sorted(walked.ids()) == sorted(plain.ids())
    assert len(list((demo / "cam+random_walk" / "labels" / "train_aug_png").glob("*.png"))) == 24
    rows = {line.split("\t")[0]: line.split("\t") for line in (demo / "summary.tsv").read_text().splitlines()}
    assert rows["cam+random_walk"][1:5] == rows["cam"][1:5]  # the maps columns are cam's


def test_variants_of_methods_not_run_are_skipped(tmp_path):
    config = tiny_config(["cam"])
    config["variants"] = {"dsrg": ["ficklenet", "cam"]}
    write_config(tmp_path, config)
    outputs = planned_outputs(tmp_path)
    assert any("results/demo/cam+dsrg/segmentation.pt" in p for p in outputs)
    assert not any("ficklenet" in p for p in outputs)


def test_rerun_does_nothing(run_dir):
    assert planned_rules(run_dir) == set()


def test_rerun_one_stage_only(run_dir):
    assert planned_rules(run_dir, "-R", "make_labels", "--until", "make_labels") == {"make_labels"}


def test_changed_crf_parameter_reruns_labels_and_what_follows(run_dir):
    config = tiny_config()
    config["labels"]["crf"]["iterations"] = 3
    write_config(run_dir, config)
    try:
        planned = planned_rules(run_dir)
        outputs = planned_outputs(run_dir)
    finally:
        write_config(run_dir, tiny_config())
    assert planned == {
        "make_labels", "export_labels", "evaluate_labels", "train_segmentation", "predict",
        "evaluate_segmentation", "summarize", "all",
    }
    # only the methods labelled by the CRF rerun: MDC, FickleNet and SeeNet use their own rule
    relabelled = {Path(p).parts[2] for p in outputs if "/labels/train_aug/" in p}
    assert relabelled == set(SHARED_LABELS)


def test_shards_partition_the_split(run_dir):
    """Each shard holds a contiguous block of the split's ids; together they hold each id once."""
    import h5py

    ids = (run_dir / "resources" / "demo" / "VOC2012" / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split()
    for kind in ("maps", "fused", "labels"):
        blocks = []
        for i in range(1, SHARDS + 1):
            with h5py.File(run_dir / "results" / "demo" / "cam" / kind / "train_aug" / f"{i}-of-{SHARDS}.h5") as h5:
                blocks.append(sorted(h5.keys()))
        assert blocks == [sorted(ids[:12]), sorted(ids[12:])], kind


def test_set_scatter_overrides_the_shard_count(run_dir):
    """--set-scatter shard=3 plans three extraction jobs per store (and reruns from there on)."""
    out = snakemake(run_dir, "-n", "--set-scatter", "shard=3")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for i in (1, 2, 3):
        assert f"results/demo/cam/maps/train_aug/{i}-of-3.h5" in text
    assert "maps/train_aug/1-of-2.h5" not in text


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c.update(methods=["nosuch"]), "config: methods.0: 'nosuch' is not one of"),
        (lambda c: c["cam"]["train"].update(epochs="ten"), "config: cam.train.epochs: 'ten' is not of type"),
        (lambda c: c["labels"]["crf"].update(preset="fancy"), "config: labels.crf.preset: 'fancy'"),
        (lambda c: c["variants"].update(dsrg=["nosuch"]), "config: variants.dsrg.0: 'nosuch' is not one of"),
        (lambda c: c["dataset"].update(root="no/such/VOC2012"), "dataset.root: folder no/such/VOC2012 does not exist"),
    ],
)
def test_bad_config_fails_at_load_naming_the_key(tmp_path, change, expected):
    config = tiny_config()
    change(config)
    write_config(tmp_path, config)
    out = snakemake(tmp_path, "-n")
    assert out.returncode != 0
    assert any(expected in line for line in (out.stderr + out.stdout).splitlines())
    assert not (tmp_path / "results").exists()


def xml_annotation(names):
    objects = "".join(f"<object><name>{name}</name></object>" for name in names)
    return f"<annotation>{objects}</annotation>"


def test_another_voc_format_dataset(tmp_path):
    """Only dataset.name, root and classes change; tags come from XML where masks are absent."""
    from wsss.data.demo import generate
    from wsss.data.voc import VOCDataset

    classes = ["cell", "nucleus"]
    root = tmp_path / "data" / "VOC"
    generate(root, classes, seed=3, counts={"train_aug": 16, "train": 6, "val": 6}, min_side=64, max_side=72)
    voc = VOCDataset(root, classes, "train_aug")
    train = set(VOCDataset(root, classes, "train").ids)
    for image_id in voc.ids:
        if image_id not in train:  # no mask for these: their tags must come from Annotations/
            names = [classes[k] for k in voc.tags(image_id).nonzero()[0]]
            (root / "Annotations").mkdir(exist_ok=True)
            (root / "Annotations" / f"{image_id}.xml").write_text(xml_annotation(names))
            (root / "SegmentationClassAug" / f"{image_id}.png").unlink()
    config = tiny_config(methods=["cam", "mdc"])  # mdc: saliency from the dataset's own folder
    config["dataset"].update(name="cells", root=str(root), classes=classes)
    write_config(tmp_path, config)
    out = snakemake(tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (tmp_path / "resources").exists()  # the demo generator did not run
    seg = json.loads((tmp_path / "results" / "cells" / "cam" / "metrics" / "segmentation.json").read_text())
    assert set(seg["per_class"]) == {"background", "cell", "nucleus"}
