"""The summary of a dataset's run: one row per model and baseline, links, time and memory per rule.

The summary is built from metrics, baselines and Snakemake's benchmark files
only. It links to the per-model reports without reading them, which is why the
workflow lists those reports as `ancient()` inputs: they must exist, but
re-rendering one (say, after a threshold change) does not redo the summary.
"""

import logging
import math
import os
from pathlib import Path

import pandas as pd

from movierec.atomic import atomic_path, write_text
from movierec.reports.inputs import (
    ratings_per_second,
    read_benchmark,
    read_json,
    read_metrics,
    training_seconds,
)
from movierec.reports.tables import markdown_table

log = logging.getLogger(__name__)

CSV_COLUMNS = [
    "model",
    "kind",
    "best_val_rmse",
    "best_val_mae",
    "best_epoch",
    "n_params",
    "train_seconds",
    "ratings_per_s",
    "device",
    "rmse_gain_vs_bias_only",
]


def best_epoch_mae(metrics):
    """Validation MAE at the best epoch (by RMSE); NaN when that epoch is not in the list."""
    for entry in reversed(metrics["epochs"]):
        if entry["epoch"] == metrics["best_epoch"]:
            return float(entry["val_mae"])
    return math.nan


def models_table(metrics, baselines):
    """models.csv rows: each model in the given order, then the two baselines.

    Parameters
    ----------
    metrics : dict
        Model name -> metrics.json content.
    baselines : dict
        baselines.json content.
    """
    bias_only = float(baselines["bias_only_rmse"])
    rows = []
    for model, m in metrics.items():
        rows.append(
            {
                "model": model,
                "kind": "model",
                "best_val_rmse": float(m["best_val_rmse"]),
                "best_val_mae": best_epoch_mae(m),
                "best_epoch": int(m["best_epoch"]),
                "n_params": int(m["n_params"]),
                "train_seconds": training_seconds(m),
                "ratings_per_s": ratings_per_second(m),
                "device": m.get("device"),
                "rmse_gain_vs_bias_only": bias_only - float(m["best_val_rmse"]),
            }
        )
    for name, key in (("global mean", "global_mean_rmse"), ("bias only", "bias_only_rmse")):
        rows.append(
            {
                "model": name,
                "kind": "baseline",
                "best_val_rmse": float(baselines[key]),
                "rmse_gain_vs_bias_only": bias_only - float(baselines[key]),
            }
        )
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    return table.astype({"best_epoch": "Int64", "n_params": "Int64"})


def benchmark_table(benchmarks):
    """Time and peak memory per rule, from Snakemake benchmark files ({label: path})."""
    rows = []
    for label, path in benchmarks.items():
        rule, _, target = label.partition(" ")
        bench = read_benchmark(path)
        rows.append(
            {
                "rule": rule,
                "target": target or "-",
                "seconds": bench["seconds"],
                "peak RSS (MiB)": bench["max_rss_mb"],
            }
        )
    return pd.DataFrame(rows, columns=["rule", "target", "seconds", "peak RSS (MiB)"])


def _rate(value):
    """Ratings per second for a reader: 2.41M, 65.3k, or a dash when not measured."""
    if value is None or pd.isna(value):
        return "-"
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"


def _link(path, base):
    return os.path.relpath(path, base).replace(os.sep, "/")


def summary_markdown(table, bench, dataset, links, figures, base):
    """summary.md: the models table, figures, per-model report links and the rule timings."""
    shown = table.drop(columns=["kind"]).rename(
        columns={
            "best_val_rmse": "val RMSE",
            "best_val_mae": "val MAE",
            "best_epoch": "epoch",
            "n_params": "params",
            "train_seconds": "train s",
            "ratings_per_s": "ratings/s",
            "rmse_gain_vs_bias_only": "gain vs bias-only",
        }
    )
    shown["ratings/s"] = shown["ratings/s"].map(_rate)
    models = table[table["kind"] == "model"]
    lines = [f"# Models on `{dataset}`", ""]
    if len(models):
        best = models.loc[models["best_val_rmse"].idxmin()]
        lines += [
            f"Best validation RMSE: **{best['model']}**, {best['best_val_rmse']:.4f} "
            f"({best['rmse_gain_vs_bias_only']:+.4f} against the bias-only baseline). "
            "Validation metrics are on the held-out split, at each model's best epoch; "
            "`ratings/s` is the median training throughput over epochs.",
            "",
        ]
    lines += [
        markdown_table(
            shown,
            formats={
                "val RMSE": ".4f",
                "val MAE": ".4f",
                "train s": ".1f",
                "gain vs bias-only": "+.4f",
            },
        ),
        "The same rows are in `models.csv`.",
        "",
        "## Figures",
        "",
    ]
    for name, path in figures.items():
        lines.append(f"- [{name}]({_link(path, base)})")
    lines += ["", "## Per-model reports", ""]
    for model, files in links.items():
        items = ", ".join(f"[{Path(p).name}]({_link(p, base)})" for p in files)
        lines.append(f"- **{model}**: {items}")
    lines += [
        "",
        "## Time and peak memory per rule",
        "",
        "From Snakemake's benchmark files under `results/benchmarks/`; peak RSS is the",
        "largest resident memory of the job's processes. Report rules are listed as they",
        "were when this summary was written.",
        "",
        markdown_table(bench, formats={"seconds": ".2f", "peak RSS (MiB)": ".0f"}),
    ]
    return "\n".join(lines)


def summarize_models(
    metrics_paths, baselines_path, benchmarks, summary_path, csv_path, dataset, links, figures
):
    """Write summary.md and models.csv.

    Parameters
    ----------
    metrics_paths : dict
        Model name -> metrics.json, in the order the table should list them.
    baselines_path : path
        baselines.json.
    benchmarks : dict
        "rule target" -> Snakemake benchmark TSV.
    summary_path, csv_path : path
        Outputs, written atomically.
    dataset : str
    links : dict
        Model name -> its report files, linked relative to the summary.
    figures : dict
        Figure title -> path of a dataset-level figure.
    """
    metrics = {model: read_metrics(path) for model, path in metrics_paths.items()}
    baselines = read_json(baselines_path, ("global_mean_rmse", "bias_only_rmse"))
    table = models_table(metrics, baselines)
    bench = benchmark_table(benchmarks)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    base = os.path.dirname(os.path.abspath(summary_path))
    links = {m: [os.path.abspath(p) for p in files] for m, files in links.items()}
    figures = {name: os.path.abspath(p) for name, p in figures.items()}
    write_text(summary_path, summary_markdown(table, bench, dataset, links, figures, base))
    log.info("summarised %d models and %d benchmark files", len(metrics), len(bench))
    return table
