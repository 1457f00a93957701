"""The demo's end-to-end wall time and each stage's share, from the Snakemake benchmark files of
the last `make demo` run (results/<dataset>/**/benchmarks/*.tsv; nothing is rerun here).

A file is named <rule>[_<split>][_<i>-of-<n>].tsv; its `s` column is the job's wall time. Times
are summed per rule (the rule names come from workflow/rules/*.smk). A file is written when its
job ends, so its modification time is the job's end and end - s its start: the wall time is the
first start to the last end, over the last contiguous run of jobs (files left by earlier runs,
e.g. of rules since renamed, are ignored). No target: each row's ratio is a share.
"""

import csv
import re
from pathlib import Path

from benchlib import ROOT, main, row

GAP_S = 120  # jobs further apart than this (no job running in between) belong to different runs


def rule_names(root=ROOT):
    names = set()
    for path in (Path(root) / "workflow" / "rules").glob("*.smk"):
        names.update(re.findall(r"^rule (\w+):", path.read_text(), flags=re.M))
    return names


def rule_of(stem, rules):
    """The longest rule name that `stem` is or starts with followed by "_"; else the stem."""
    matches = [r for r in rules if stem == r or stem.startswith(r + "_")]
    return max(matches, key=len) if matches else stem


def jobs(results, rules):
    """[(rule, seconds, start, end)] of every benchmark file under `results`."""
    found = []
    for path in sorted(Path(results).glob("**/benchmarks/*.tsv")):
        with open(path, newline="") as file:
            records = list(csv.DictReader(file, delimiter="\t"))
        if not records:
            continue
        seconds = float(records[0]["s"])
        end = path.stat().st_mtime
        found.append((rule_of(path.stem, rules), seconds, end - seconds, end))
    return found


def last_run(found):
    """The jobs of the last contiguous stretch of time (intervals closer than GAP_S merged)."""
    ordered = sorted(found, key=lambda job: job[2])
    runs, reach = [], None
    for job in ordered:
        if reach is None or job[2] > reach + GAP_S:
            runs.append([])
            reach = job[3]
        runs[-1].append(job)
        reach = max(reach, job[3])
    return runs[-1] if runs else []


def dataset_name(root=ROOT):
    import yaml

    return yaml.safe_load((Path(root) / "config.yaml").read_text())["dataset"]["name"]


def run(quick=False):
    name = dataset_name()
    results = ROOT / "results" / name
    found = jobs(results, rule_names())
    if not found:
        print(f"bench_demo: no benchmark files under {results}/**/benchmarks/ - run `make demo` first; no rows")
        return []
    recent = last_run(found)
    total = sum(job[1] for job in recent)
    wall = max(job[3] for job in recent) - min(job[2] for job in recent)
    ignored = f"; {len(found) - len(recent)} files of earlier runs ignored" if len(found) > len(recent) else ""
    if wall >= max(job[1] for job in recent):
        wall_note = "ours = first job start to last job end (file time minus s)"
    else:  # file times do not tell (copied files): fall back to the sum
        wall, wall_note = total, "ours = sum of job times (file times unusable)"
    rows = [row(f"demo ({name}) end to end", wall, total, wall / total, "", True,
                f"s; {wall_note}, reference = sum of job times, ratio = wall / sum; {len(recent)} jobs{ignored}")]
    per_rule = {}
    for rule, seconds, _, _ in recent:
        per_rule[rule] = per_rule.get(rule, 0.0) + seconds
    for rule, seconds in sorted(per_rule.items(), key=lambda item: -item[1]):
        count = sum(job[0] == rule for job in recent)
        rows.append(row(f"demo stage share: {rule}", seconds, total, seconds / total, "", True,
                        f"s; ours = the rule's {count} job{'s' if count > 1 else ''}, reference = all jobs"))
    return rows


if __name__ == "__main__":
    main(run)
