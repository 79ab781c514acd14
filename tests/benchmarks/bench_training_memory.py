"""Scale check of issue 6: train on synthetic-25m within 6 GiB, and run its whole DAG.

Copies the workflow into a work directory (never the repository), writes a
short-schedule config (every model and pretrain stage: one epoch at its first
learning rate) and runs Snakemake there, under ``/usr/bin/time -v`` where it
exists. Then it reads every Snakemake benchmark file of the dataset
(``results/benchmarks/<dataset>/**.tsv``: seconds and ``max_rss`` per job)
and prints them as a table, with the machine's load average before and after
(the machine may be shared; the figures are only as quiet as it was).

Usage::

    # dot and mlp only (the 6 GiB peak-RSS target is checked on these):
    python tests/benchmarks/bench_training_memory.py --workdir /tmp/scale
    # the full DAG (generate, index, split, baselines, five models, reports):
    python tests/benchmarks/bench_training_memory.py --workdir /tmp/scale --all
    # another dataset, or one core (training then runs at 1 thread):
    python tests/benchmarks/bench_training_memory.py --dataset synthetic-1m --jobs 1

Outputs already in the work directory are reused by Snakemake (run the DAG
once, then --all builds only what is missing). A Markdown and a JSON summary
are written to the work directory. This is a benchmark that prints figures,
not a test: it exits 1 only when a training job of dot or mlp went over the
peak-RSS target or Snakemake failed.
"""

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
RSS_TARGET_MIB = 6 * 1024
CHECKED_MODELS = ("dot", "mlp")


def copy_workflow(dest):
    """The same copy the tests make (tests/conftest.py), importable without pytest."""
    sys.path.insert(0, str(TESTS))
    try:
        from conftest import copy_workflow as copy
    finally:
        sys.path.remove(str(TESTS))
    return copy(dest)


def short_schedule(config):
    """A config overlay: every model and pretrain stage for one epoch at its first lr.

    Merged key by key into config.yaml (lists replaced), so a pretrain block
    equal to another model's stays equal, and the DAG still reuses it.
    """
    models = {}
    for name, block in config["models"].items():
        entry = {"phases": [{"lr": block["phases"][0]["lr"], "epochs": 1}]}
        if "pretrain" in block:
            pre = block["pretrain"]
            entry["pretrain"] = {"phases": [{"lr": pre["phases"][0]["lr"], "epochs": 1}]}
        models[name] = entry
    return {"models": models}


def read_benchmarks(root):
    """Every Snakemake benchmark TSV under `root`: [{job, seconds, max_rss_mib, ...}]."""
    rows = []
    for path in sorted(Path(root).rglob("*.tsv")):
        with open(path, newline="") as handle:
            records = list(csv.DictReader(handle, delimiter="\t"))
        if not records or "s" not in records[0]:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no `s` column or no rows)")
        record = records[-1]

        def number(key, record=record):
            value = record.get(key, "NA")
            return None if value in ("NA", "", None) else float(value)

        rel = path.relative_to(root).with_suffix("")
        rows.append(
            {
                "job": " ".join(rel.parts),
                "seconds": number("s"),
                "max_rss_mib": number("max_rss"),
                "cpu_time_s": number("cpu_time"),
                "mean_load": number("mean_load"),
            }
        )
    return rows


def parse_time_v(text):
    """Peak RSS (MiB) and wall seconds from GNU time -v output, where present."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Maximum resident set size (kbytes):"):
            out["max_rss_mib"] = int(line.rsplit(":", 1)[1]) / 1024
        elif line.startswith("Elapsed (wall clock) time"):
            clock = line.rsplit(" ", 1)[1].split(":")
            out["wall_s"] = sum(float(v) * 60**i for i, v in enumerate(reversed(clock)))
    return out


def markdown(summary):
    lines = [
        f"# Scale run: {summary['dataset']}",
        "",
        f"Run {summary['date']} on {summary['machine']}; load average "
        f"{summary['load_before']:.2f} before, {summary['load_after']:.2f} after; "
        f"snakemake --cores {summary['jobs']}; short schedule (1 epoch a stage).",
        "",
        f"Command: `{summary['command']}`",
        "",
        f"Snakemake wall time: {summary['wall_s']:.0f} s"
        + (
            f"; largest process (time -v): {summary['time_v']['max_rss_mib']:.0f} MiB"
            if "max_rss_mib" in summary.get("time_v", {})
            else ""
        ),
        "",
        "| job | seconds | peak RSS (MiB) | CPU seconds |",
        "|---|--:|--:|--:|",
    ]
    for row in summary["benchmarks"]:

        def fmt(value, spec):
            return "n/a" if value is None else format(value, spec)

        lines.append(
            f"| {row['job']} | {fmt(row['seconds'], '.1f')} | {fmt(row['max_rss_mib'], '.0f')} | "
            f"{fmt(row['cpu_time_s'], '.1f')} |"
        )
    lines += ["", f"Peak-RSS target for {', '.join(CHECKED_MODELS)}: {RSS_TARGET_MIB} MiB: "]
    lines[-1] += "met" if summary["rss_target_met"] else "MISSED"
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="synthetic-25m")
    parser.add_argument("--workdir", default="/tmp/movierec-scale", help="workflow copy here")
    parser.add_argument("--all", action="store_true", help="the full DAG, reports included")
    parser.add_argument(
        "--jobs", type=int, default=2, help="Snakemake --cores (default 2: training uses 2 threads)"
    )
    args = parser.parse_args(argv)

    work = Path(args.workdir).resolve()
    if REPO in (work, *work.parents):
        raise SystemExit(f"--workdir {work} is inside the repository; use a directory outside it")
    project = work / "project"
    if not (project / "Snakefile").exists():
        copy_workflow(project)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    overlay = project / "short-schedule.yaml"
    overlay.write_text(yaml.safe_dump(short_schedule(config), sort_keys=False))
    (project / "dataset.yaml").write_text(f"dataset: {args.dataset}\n")
    if args.all:
        targets = []  # rule all of the dataset in dataset.yaml
    else:
        targets = [f"results/{args.dataset}/models/{m}/metrics.json" for m in CHECKED_MODELS]
    cmd = [
        sys.executable, "-m", "snakemake", "--cores", str(args.jobs),
        "--configfile", overlay.name, "dataset.yaml", *targets,
    ]  # fmt: skip
    timer = Path("/usr/bin/time").exists()
    full_cmd = (["/usr/bin/time", "-v"] if timer else []) + cmd
    shown = " ".join(["snakemake", *cmd[3:]])
    print(f"in {project}: {shown}", flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(full_cmd, cwd=project, capture_output=True, text=True)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    (work / "snakemake.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stderr[-4000:])
        print(f"snakemake failed ({proc.returncode}); log: {work / 'snakemake.log'}")
        return 1
    bench_root = project / "results" / "benchmarks" / args.dataset
    rows = read_benchmarks(bench_root)
    checked = [r for r in rows if r["job"] in {f"train_model {m}" for m in CHECKED_MODELS}]
    if len(checked) != len(CHECKED_MODELS):
        print(f"missing benchmark files of train_model {CHECKED_MODELS} under {bench_root}")
        return 1
    met = all(r["max_rss_mib"] is not None and r["max_rss_mib"] < RSS_TARGET_MIB for r in checked)
    summary = {
        "dataset": args.dataset,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPU cores",
        "jobs": args.jobs,
        "command": shown,
        "load_before": load_before,
        "load_after": load_after,
        "wall_s": wall,
        "time_v": parse_time_v(proc.stderr),
        "benchmarks": rows,
        "rss_target_mib": RSS_TARGET_MIB,
        "rss_target_met": met,
    }
    (work / "scale.json").write_text(json.dumps(summary, indent=2) + "\n")
    page = markdown(summary)
    (work / "scale.md").write_text(page)
    print(page)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
