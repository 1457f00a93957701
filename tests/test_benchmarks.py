"""The benchmark runner's bookkeeping on fake rows (the benchmarks themselves are not run here):
the README table text, the rewrite between the markers, partial runs keeping other modules'
rows, and how bench_demo reads Snakemake benchmark file names and runs."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    sys.path.insert(0, str(BENCHMARKS))  # the bench modules import benchlib
    try:
        spec = importlib.util.spec_from_file_location(f"_test_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


runner = load("run")

SPEED = {"benchmark": "Grad-CAM | 1 class", "ours_s": 0.5, "reference_s": 1.25, "ratio": 2.5, "target": ">= 2x",
         "met": True, "detail": "fake"}
MEMORY = {"benchmark": "peak memory", "ours_s": 1034.0, "reference_s": 1000.0, "ratio": 1.034, "target": "<= 1.1x",
          "met": False, "detail": "MB", "unit": "MB"}
SHARE = {"benchmark": "share: extract_maps", "ours_s": 12.0, "reference_s": 100.0, "ratio": 0.12, "target": "",
         "met": True, "detail": "s"}


def fake_results():
    results = {"modules": {}}
    runner.merge(results, "memory", [MEMORY, SHARE], {"command": "python benchmarks/run.py", "quick": False})
    runner.merge(results, "gradcam", [SPEED], {"command": "python benchmarks/run.py", "quick": True})
    return results


def test_table_text_by_hand():
    # gradcam sorts before memory (ORDER); "|" is escaped; MB unit; no target -> dashes; quick marked
    assert runner.table(fake_results()) == "\n".join([
        "| benchmark | ours | reference | ratio | target | met |",
        "|---|---|---|---|---|---|",
        "| Grad-CAM \\| 1 class (quick) | 0.5 s | 1.25 s | 2.5 | >= 2x | yes |",
        "| peak memory | 1,034 MB | 1,000 MB | 1.03 | <= 1.1x | **no** |",
        "| share: extract_maps | 12 s | 100 s | 0.12 | — | — |",
    ])


def test_partial_run_replaces_only_its_module():
    results = fake_results()
    new = dict(SPEED, ratio=4.0)
    runner.merge(results, "gradcam", [new], {"command": "python benchmarks/run.py gradcam", "quick": False})
    assert list(results["modules"]) == ["gradcam", "memory"]
    assert results["modules"]["gradcam"]["rows"] == [new]
    assert results["modules"]["gradcam"]["command"] == "python benchmarks/run.py gradcam"
    assert results["modules"]["memory"]["rows"] == [MEMORY, SHARE]


def test_readme_rewrite_keeps_text_outside_the_markers():
    text = "# T\n\n## Benchmarks\n\n<!-- benchmarks:begin -->\nold table\n<!-- benchmarks:end -->\n\n## After\n"
    assert runner.rewrite_readme(text, "NEW") == (
        "# T\n\n## Benchmarks\n\n<!-- benchmarks:begin -->\nNEW\n<!-- benchmarks:end -->\n\n## After\n")
    twice = runner.rewrite_readme(runner.rewrite_readme(text, "NEW"), "NEWER")
    assert twice.count("<!-- benchmarks:begin -->") == 1 and "NEW\n" not in twice and "NEWER" in twice


def test_readme_without_markers_is_an_error():
    with pytest.raises(runner.MarkerError):
        runner.rewrite_readme("# T\n<!-- benchmarks:end -->\n<!-- benchmarks:begin -->\n", "x")
    with pytest.raises(runner.MarkerError):
        runner.rewrite_readme("# T\n", "x")


def test_render_lists_each_run_once():
    results = fake_results()
    for entry in results["modules"].values():
        entry.update(date="2026-01-01T00:00:00+00:00", quick=False, machine={"cpu": "X", "cores": 2},
                     versions={"torch": "1"})
    block = runner.render(results)
    assert block.startswith(runner.table(results))
    assert block.count("`python benchmarks/run.py` on 2026-01-01T00:00:00+00:00 (gradcam, memory)") == 1
    assert "- peak memory: MB" in block


def test_demo_rule_names_and_last_run():
    demo = load("bench_demo")
    rules = {"make_labels", "make_demo_dataset", "predict", "extract_maps"}
    assert demo.rule_of("make_labels_train_aug_1-of-2", rules) == "make_labels"
    assert demo.rule_of("make_demo_dataset", rules) == "make_demo_dataset"
    assert demo.rule_of("unknown_rule_x", rules) == "unknown_rule_x"
    assert "extract_maps" in demo.rule_names()  # read from workflow/rules/*.smk
    # (rule, seconds, start, end): an old run, then two overlapping jobs and one 10 s later
    old = ("predict", 5.0, 0.0, 5.0)
    recent = [("extract_maps", 50.0, 1000.0, 1050.0), ("predict", 20.0, 1010.0, 1030.0),
              ("make_labels", 5.0, 1060.0, 1065.0)]
    assert demo.last_run([recent[1], old, *recent[::2]]) == recent
