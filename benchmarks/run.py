"""Run the benchmarks and regenerate the README's table.

    python benchmarks/run.py [--quick] [names...]

Runs every benchmarks/bench_<name>.py (or the named ones: `crf` or `bench_crf`), each of which
has `run(quick=False) -> list[dict]` rows {"benchmark", "ours_s", "reference_s", "ratio",
"target", "met", "detail"} (optional "unit" when ours / reference are not seconds). The rows go
to benchmarks/results.json with the machine, the versions, the command line and the date of the
run that produced them; a partial run replaces only its modules' rows. The README's table
between `<!-- benchmarks:begin -->` and `<!-- benchmarks:end -->` is then rewritten from
results.json. Absolute times are context only: the ratios are what the targets are about.
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
ORDER = ["gradcam", "ficklenet", "extract", "crf", "memory", "demo"]  # table order; others follow by name


class MarkerError(Exception):
    """The README lacks the benchmark markers."""


# ----------------------------------------------------------------------------- modules

def discover(names=()):
    """Module short names (`crf` for bench_crf.py) to run: the named ones, else all, in ORDER."""
    found = sorted(path.stem[len("bench_"):] for path in HERE.glob("bench_*.py"))
    if names:
        wanted = [Path(name).stem.removeprefix("bench_") for name in names]
        unknown = [name for name in wanted if name not in found]
        if unknown:
            raise SystemExit(f"run.py: no benchmarks/bench_{unknown[0]}.py; known: {', '.join(found)}")
        found = wanted
    return sorted(dict.fromkeys(found), key=order_key)


def order_key(name):
    return (ORDER.index(name), "") if name in ORDER else (len(ORDER), name)


def run_module(name, quick):
    """Import bench_<name> and return its rows."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module = importlib.import_module(f"bench_{name}")
    return module.run(quick=quick)


# ----------------------------------------------------------------------------- provenance

def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def machine():
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable, "ram_gb": ram_gb(), "gpu": gpu,
            "os": platform.platform(), "torch_threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def package_version(*names):
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def versions():
    import torch

    import wsss

    return {"python": platform.python_version(), "torch": torch.__version__, "wsss": wsss.__version__,
            "pydensecrf": package_version("pydensecrf2", "pydensecrf"), "grad-cam": package_version("grad-cam")}


def command_line(argv):
    return " ".join(["python benchmarks/run.py", *argv])


# ----------------------------------------------------------------------------- results.json

def load_results(path=RESULTS):
    if Path(path).is_file():
        return json.loads(Path(path).read_text())
    return {"modules": {}}


def merge(results, name, rows, run_info):
    """Replace module `name`'s entry (its rows and the run that produced them); others stay."""
    results.setdefault("modules", {})[name] = {**run_info, "rows": rows}
    results["modules"] = {k: results["modules"][k] for k in sorted(results["modules"], key=order_key)}
    return results


# ----------------------------------------------------------------------------- README

def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def value(number, unit):
    """3 significant digits, without exponents for large values (1,820 s)."""
    return f"{number:,.0f} {unit}" if abs(number) >= 1000 else f"{number:.3g} {unit}"


def table(results):
    """The markdown table of every module's rows, in module order."""
    lines = ["| benchmark | ours | reference | ratio | target | met |", "|---|---|---|---|---|---|"]
    for entry in results.get("modules", {}).values():
        for r in entry["rows"]:
            unit = r.get("unit", "s")
            name = r["benchmark"] + (" (quick)" if entry.get("quick") else "")
            met = ("yes" if r["met"] else "**no**") if r["target"] else "—"
            lines.append(f"| {cell(name)} | {value(r['ours_s'], unit)} | {value(r['reference_s'], unit)} | "
                         f"{r['ratio']:.3g} | {cell(r['target'] or '—')} | {met} |")
    return "\n".join(lines)


def runs_text(results):
    """The machine, versions, command line and date of each run that produced rows."""
    runs = {}
    for name, entry in results.get("modules", {}).items():
        key = json.dumps([entry.get(k) for k in ("machine", "versions", "command", "date")], sort_keys=True)
        runs.setdefault(key, (entry, []))[1].append(name)
    lines = []
    for entry, names in runs.values():
        m, v = entry.get("machine") or {}, entry.get("versions") or {}
        lines.append(f"- `{entry.get('command')}` on {entry.get('date')} ({', '.join(names)}): "
                     f"{m.get('cpu')}, {m.get('usable_cores')} of {m.get('cores')} cores, {m.get('ram_gb')} GB RAM, "
                     f"GPU {m.get('gpu')}, load average {m.get('load_average')}; "
                     + ", ".join(f"{k} {val}" for k, val in v.items()))
    return "\n".join(lines)


def details_text(results):
    lines = []
    for entry in results.get("modules", {}).values():
        for r in entry["rows"]:
            lines.append(f"- {r['benchmark']}: {r['detail']}")
    return "\n".join(lines)


def render(results):
    """The README block between the markers: table, details, then the runs' provenance."""
    if not results.get("modules"):
        return "No results yet: run `python benchmarks/run.py`."
    return (f"{table(results)}\n\nRatios are measured side by side in one run; absolute times are context only "
            f"(ours / reference in seconds unless marked MB).\n\n<details><summary>What each row measures</summary>"
            f"\n\n{details_text(results)}\n\n</details>\n\nMeasured with:\n\n{runs_text(results)}")


def rewrite_readme(text, block):
    """`text` with everything between the markers replaced by `block` (the markers stay)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise MarkerError(f"README.md: needs {BEGIN} ... {END} around the benchmark table")
    return f"{text[:start + len(BEGIN)]}\n{block}\n{text[end:]}"


# ----------------------------------------------------------------------------- main

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description="Run the benchmarks; rewrite results.json and the README table.")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test (< 1 min each)")
    parser.add_argument("names", nargs="*", help="modules to run (crf or bench_crf); default: all")
    args = parser.parse_args(argv)
    names = discover(args.names)
    rewrite_readme(README.read_text(), "")  # fail before running when the markers are missing
    results = load_results()
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = {"command": command_line(argv), "date": date, "quick": args.quick, "machine": machine(),
            "versions": versions()}
    failed = []
    for name in names:
        print(f"== bench_{name}", flush=True)
        began = time.perf_counter()
        try:
            rows = run_module(name, args.quick)
        except Exception:  # one broken benchmark must not lose the others' rows
            traceback.print_exc()
            failed.append(name)
            continue
        merge(results, name, rows, {**info, "seconds": round(time.perf_counter() - began, 1)})
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")  # after each module: a crash keeps the rest
        print(f"bench_{name}: {len(rows)} rows in {time.perf_counter() - began:.0f} s", flush=True)
    README.write_text(rewrite_readme(README.read_text(), render(results)))
    print(table(results))
    if failed:
        print(f"failed: {', '.join(failed)} (their earlier rows are kept)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
