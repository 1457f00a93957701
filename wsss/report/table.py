"""report_table: the method comparison table as a small HTML page (the report shows it inline).

One row per method: maps mIoU at the best background score (and that score), at psa's 0.20 and
IRN's 0.15; pseudo-label mIoU and the fraction of pixels left ignored; segmentation mIoU on the
val split; and the settings that tell the methods apart. The best value of a column is bold.
"""

import html

from wsss.files import write_text
from wsss.report.style import read_metrics

COLUMNS = [  # (header, number format, bold the highest?)
    ("maps mIoU (best bg score)", "{:.1f}", True),
    ("best bg score", "{:.2f}", False),
    ("maps @0.20 (psa)", "{:.1f}", True),
    ("maps @0.15 (IRN)", "{:.1f}", True),
    ("pseudo labels mIoU", "{:.1f}", True),
    ("ignored pixels (%)", "{:.0f}", False),
    ("segmentation mIoU", "{:.1f}", True),
]


def row(maps, labels, segmentation):
    """One method's numbers from its three metric dicts, in the order of COLUMNS."""
    return [maps["miou"], maps["bg_score"], maps["miou_psa"], maps["miou_irn"],
            labels["miou"], 100 * labels["ignored_fraction"], segmentation["miou"]]


STYLE = """body{font-family:sans-serif;font-size:14px;margin:8px}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px}
td.num{text-align:right}th{background:#f3f3f3}caption{text-align:left;padding:4px 0}
p{color:#555;max-width:60em}"""


def run(methods, maps, labels, segmentation, output, settings=None):
    """maps / labels / segmentation: metric JSON files in the order of `methods`;
    settings: {method: one line of its settings} for the last column."""
    maps, labels, segmentation = (read_metrics(methods, files, kind) for files, kind in
                                   ((maps, "maps"), (labels, "labels"), (segmentation, "segmentation")))
    values = {method: row(maps[method], labels[method], segmentation[method]) for method in methods}
    write_text(output, page(values, settings or {}, maps[methods[0]], segmentation[methods[0]]))


def page(values, settings, maps, segmentation):
    """maps, segmentation: one method's metric dicts, for the splits and image counts."""
    best = [max(v[i] for v in values.values()) if bold else None for i, (_, _, bold) in enumerate(COLUMNS)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in COLUMNS)
    rows = []
    for method, numbers in values.items():
        cells = "".join(cell(fmt.format(v), v == b) for v, (_, fmt, _), b in zip(numbers, COLUMNS, best))
        rows.append(f"<tr><th>{html.escape(method)}</th>{cells}<td>{html.escape(settings.get(method, ''))}</td></tr>")
    note = (f"mIoU in %, background included, over one confusion matrix per split. Maps and pseudo labels: "
            f"split {maps['split']} ({maps['images']} images); segmentation: split {segmentation['split']} "
            f"({segmentation['images']} images). Bold: the best of a column.")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{STYLE}</style></head><body>"
            f"<table><caption>Methods compared</caption><tr><th>method</th>{head}<th>settings</th></tr>"
            f"{''.join(rows)}</table><p>{html.escape(note)}</p></body></html>\n")


def cell(text, bold):
    return f"<td class='num'>{'<b>' + text + '</b>' if bold else text}</td>"
