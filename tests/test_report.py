"""The report's figures: units on hand-made metrics and images, then one tiny end-to-end run.

Units check that each figure draws the numbers it is given (curve points and best score, bar
heights, table values and bold maxima, heat over the image, per-image mIoU) and how the sample
is chosen. The end-to-end test (marked e2e) runs `snakemake figures --report report.html
--report-after-run` on the tiny configuration with two methods and checks the HTML holds every
figure with its caption.
"""

import json
import re

import numpy as np
import pytest
import yaml

from wsss.errors import WsssError
from wsss.report import curves, per_class, samples, table
from wsss.report.draw import heat_overlay, heat_rgb, label_rgb, strongest

NAMES = ["background", "alpha", "beta"]


def maps_json(best, curve, per_class_iou):
    return {"split": "train", "images": 8, "miou": best[1], "bg_score": best[0], "miou_psa": 20.0,
            "miou_irn": 19.0, "curve": [{"bg_score": t, "miou": m} for t, m in curve],
            "per_class": dict(zip(NAMES, per_class_iou))}


METRICS = {
    "cam": maps_json((0.1, 30.0), [(0.0, 20.0), (0.1, 30.0), (0.2, 25.0)], [60.0, 10.0, 20.0]),
    "mdc": maps_json((0.2, 35.0), [(0.0, 5.0), (0.1, 15.0), (0.2, 35.0)], [70.0, None, 35.0]),
}


def test_label_colours_and_heat_blend_by_hand():
    assert label_rgb(np.array([[0, 1, 255]], np.uint8)).tolist() == [[[0, 0, 0], [128, 0, 0], [224, 224, 192]]]
    assert heat_rgb(np.array([[1.0]])).tolist() == [[[128, 0, 0]]]  # jet's top is dark red (0.5, 0, 0)
    image = np.full((1, 1, 3), 100, np.uint8)
    assert heat_overlay(image, np.array([[1.0]])).tolist() == [[[114, 50, 50]]]  # (100 + 128) / 2, 100 / 2
    maps = np.array([[[0.25, 0.875]], [[0.5, 0.125]]])  # (K' = 2, 1, 2)
    assert strongest(maps).tolist() == [[0.5, 0.875]]
    assert strongest(np.zeros((0, 1, 2))).tolist() == [[0.0, 0.0]]  # no tagged class


def test_curves_plot_each_method_curve_and_star_its_best():
    fig = curves.figure(METRICS)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    cam = lines["cam: best 30.0 at 0.10"]
    assert cam.get_xdata().tolist() == [0.0, 0.1, 0.2] and cam.get_ydata().tolist() == [20.0, 30.0, 25.0]
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert sorted((s.get_xdata()[0], s.get_ydata()[0]) for s in stars) == [(0.1, 30.0), (0.2, 35.0)]
    assert sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":") == [0.15, 0.2]


def test_per_class_bars_are_the_iou_of_each_class():
    levels = {"maps": METRICS, "labels": METRICS, "segmentation": METRICS}
    fig = per_class.figure(levels, ["cam", "mdc"])
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights[:3] == [60.0, 10.0, 20.0]  # cam, per class
    assert heights[3] == 70.0 and np.isnan(heights[4]) and heights[5] == 35.0  # mdc: alpha never seen
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES


def test_table_holds_every_number_and_bolds_the_best(tmp_path):
    files = {}
    for kind in ("maps", "labels", "segmentation"):
        files[kind] = []
        for method, m in METRICS.items():
            content = dict(m, ignored_fraction=0.25 if method == "mdc" else 0.0)
            if kind != "maps":
                content["miou"] = {"cam": 40.0, "mdc": 12.5}[method]
            path = tmp_path / f"{method}_{kind}.json"
            path.write_text(json.dumps(content))
            files[kind].append(str(path))
    output = tmp_path / "methods.html"
    table.run(["cam", "mdc"], **files, output=str(output), settings={"cam": "resnet18 from scratch"})
    rows = re.findall(r"<tr><th>(\w+)</th>(.*?)</tr>", output.read_text())
    cells = {method: re.findall(r"<td[^>]*>(.*?)</td>", row) for method, row in rows}
    # psa and IRN columns tie: both bold
    assert cells["cam"] == ["30.0", "0.10", "<b>20.0</b>", "<b>19.0</b>", "<b>40.0</b>", "0", "<b>40.0</b>",
                            "resnet18 from scratch"]
    assert cells["mdc"] == ["<b>35.0</b>", "0.20", "<b>20.0</b>", "<b>19.0</b>", "12.5", "25", "12.5", ""]


def test_sample_is_evenly_spaced_or_the_listed_ids():
    ids = [f"i{k}" for k in range(10)]
    assert samples.choose_ids(ids, 4, [], "train") == ["i0", "i2", "i5", "i7"]
    assert samples.choose_ids(ids, 40, [], "train") == ids
    assert samples.choose_ids(ids, 4, ["i9", "i3"], "train") == ["i9", "i3"]
    with pytest.raises(WsssError, match=r"report.ids: image id 'nope' is not in split train"):
        samples.choose_ids(ids, 4, ["i1", "nope"], "train")


def test_image_iou_by_hand():
    gt = np.array([[0, 1], [1, 1]], np.uint8)
    label = np.array([[0, 1], [0, 1]], np.uint8)
    # background: 1 / (1 + 1) = 50 %, alpha: 2 / 3; beta absent from both: left out of the mean
    assert samples.image_iou(gt, label, NAMES) == pytest.approx((50 + 200 / 3) / 2)
    assert samples.image_iou(np.full((2, 2), 255, np.uint8), label, NAMES) is None


def test_grid_shows_heat_over_the_image_and_the_labels():
    image = np.full((2, 2, 3), 100, np.uint8)
    gt = np.array([[0, 1], [1, 1]], np.uint8)
    heat = np.array([[0.0, 1.0], [0.5, 0.25]])
    label = np.array([[0, 1], [255, 1]], np.uint8)
    prediction = np.array([[0, 2], [1, 1]], np.uint8)
    fig = samples.grid("i0", "train", image, gt, ["cam"], [(heat, label, prediction)], NAMES)
    axes = fig.axes
    shown = lambda ax: ax.get_images()[0].get_array()  # noqa: E731
    assert (shown(axes[1]) == heat_overlay(image, heat)).all()  # row 0, column "cam"
    assert (shown(axes[3]) == label_rgb(label)).all() and (shown(axes[5]) == label_rgb(prediction)).all()
    assert axes[1].get_title() == "cam"
    assert [t.get_text() for t in axes[4].get_legend().get_texts()] == ["background", "alpha", "beta", "ignored"]
    assert "image i0 (split train); classes: alpha" == fig._suptitle.get_text()


# --- end to end ------------------------------------------------------------------------------

REPORT_METHODS = ["cam", "gradcam"]  # one classifier for two methods: the quickest pair


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from test_workflow import snakemake, tiny_config, write_config

    workdir = tmp_path_factory.mktemp("report")
    config = tiny_config(methods=REPORT_METHODS)
    config.update(shards=1)
    config["labels"]["export_png"] = False
    write_config(workdir, config)
    out = snakemake(workdir, "figures", "--report", "report.html", "--report-after-run")
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


def report_results(workdir):
    """The report's entries: {path: {name, caption, labels, ...}} from its embedded JSON."""
    html = (workdir / "report.html").read_text()
    start = html.index('{"results/demo/report/')
    return json.JSONDecoder().raw_decode(html[start:])[0]


@pytest.mark.e2e
def test_report_holds_every_figure_with_its_caption(report_dir):
    split = (report_dir / "resources/demo/VOC2012/ImageSets/Segmentation/train.txt").read_text().split()
    ids = samples.choose_ids(split, 4, [], "train")
    results = report_results(report_dir)
    figures = "results/demo/report"
    expected = [f"{figures}/methods.html", f"{figures}/bg_sweep.png", f"{figures}/per_class.png",
                *(f"{figures}/samples/{i}.png" for i in ids)]
    assert sorted(results) == sorted(expected)
    assert "background score" in results[f"{figures}/bg_sweep.png"]["caption"]
    assert "IoU of every class" in results[f"{figures}/per_class.png"]["caption"]
    for i in ids:
        entry = results[f"{figures}/samples/{i}.png"]
        assert entry["labels"] == {"image": i}
        assert f"Image <strong>{i}</strong>" in entry["caption"]
        assert entry["mime_type"] == "image/png"
    for path in expected[1:]:  # captions name the methods and their settings
        assert "<strong>gradcam</strong>: cam's classifier" in results[path]["caption"], path


@pytest.mark.e2e
def test_report_table_matches_the_metrics(report_dir):
    page = (report_dir / "results/demo/report/methods.html").read_text()
    for method in REPORT_METHODS:
        seg = json.loads((report_dir / f"results/demo/{method}/metrics/segmentation.json").read_text())
        row = re.search(rf"<tr><th>{method}</th>(.*?)</tr>", page).group(1)
        assert re.findall(r"<td class='num'>(?:<b>)?([\d.]+)", row)[6] == f"{seg['miou']:.1f}"


@pytest.mark.e2e
def test_figures_rerun_only_when_the_sample_changes(report_dir):
    from test_workflow import planned_rules, write_config

    assert planned_rules(report_dir, "figures") == set()
    config = yaml.safe_load((report_dir / "config.yaml").read_text())
    split = (report_dir / "resources/demo/VOC2012/ImageSets/Segmentation/train.txt").read_text().split()
    config["report"]["ids"] = split[1:2]
    write_config(report_dir, config)
    try:
        assert planned_rules(report_dir, "figures") == {"report_samples", "figures"}
    finally:
        config["report"]["ids"] = []
        write_config(report_dir, config)
