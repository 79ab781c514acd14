"""The summary of a split's run (or of a k-fold scheme's folds): test RMSE first, with spread.

Every model row leads with its **test** RMSE, mean ± sd over replicates (and
folds), because the test part is read once, after every choice was made on
validation. Differences between models are reported as paired comparisons on
the same test rows (`movierec.evaluation.bootstrap_rmse_difference`), so a
reader can tell a real margin from split noise. The split audit (rows per
part, users and movies training never saw, and for temporal splits that no
training rating is later than the cutoff) says what kind of test it was.

The summary links to the per-model reports without reading them, which is why
the workflow lists those reports as `ancient()` inputs: they must exist, but
re-rendering one (say, after a threshold change) does not redo the summary.
"""

import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from movierec import evaluation
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
    "runs",
    "test_rmse",
    "test_rmse_sd",
    "test_mae",
    "test_mae_sd",
    "val_rmse",
    "val_rmse_sd",
    "best_epoch",
    "test_rmse_unseen_user",
    "test_rmse_unseen_movie",
    "diff_vs_best",
    "diff_vs_best_low",
    "diff_vs_best_high",
    "diff_vs_bias_only",
    "diff_vs_bias_only_low",
    "diff_vs_bias_only_high",
    "n_params",
    "train_seconds",
    "ratings_per_s",
    "device",
]
BASELINE_LABELS = {"global_mean": "global mean", "bias_only": "bias only"}


def _mean_sd(values):
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan


def _cold(runs, key):
    return _mean_sd([(r.get("cold") or {}).get(key, {}).get("rmse") for r in runs])[0]


def _row(name, kind, runs):
    """One models.csv row from a model's (or baseline's) runs: replicates x folds."""
    test, test_sd = _mean_sd([r["test_rmse"] for r in runs])
    mae, mae_sd = _mean_sd([r["test_mae"] for r in runs])
    val, val_sd = _mean_sd([r["val_rmse"] for r in runs])
    row = {
        "model": name,
        "kind": kind,
        "runs": len(runs),
        "test_rmse": test,
        "test_rmse_sd": test_sd,
        "test_mae": mae,
        "test_mae_sd": mae_sd,
        "val_rmse": val,
        "val_rmse_sd": val_sd,
        "test_rmse_unseen_user": _cold(runs, "unseen_user"),
        "test_rmse_unseen_movie": _cold(runs, "unseen_movie"),
    }
    if kind == "model":
        epochs = sorted(int(r["best_epoch"]) for r in runs)
        row.update(
            best_epoch="/".join(str(e) for e in epochs),
            n_params=int(runs[0]["n_params"]),
            train_seconds=float(np.mean([training_seconds(r) for r in runs])),
            ratings_per_s=ratings_per_second(runs[0]),
            device=runs[0].get("device"),
        )
    if kind == "peer":
        row.update(
            train_seconds=float(np.mean([r["fit_seconds"] for r in runs])),
            device=f"{runs[0]['library']} {runs[0]['library_version']}",
        )
    return row


def squared_errors(predictions, rating):
    """Per-row squared error averaged over a model's runs (each an aligned prediction array)."""
    return np.mean([(np.asarray(p) - rating) ** 2 for p in predictions], axis=0)


def models_table(runs, baselines, sq_errors, peers=None):
    """models.csv: one row per model, peer and baseline, with paired differences.

    Parameters
    ----------
    runs : dict
        Model name -> list of metrics.json contents (replicates, folds).
    baselines : dict
        Baseline name -> list of its baselines.json entries (one per fold).
    sq_errors : dict
        Model, peer or baseline name -> per-row squared test error on the same
        rows (averaged over replicates), for the paired comparisons.
    peers : dict, optional
        Peer name -> list of its metrics.json contents (one per fold): the
        reference libraries fitted on the same split (kind "peer").
    """
    peers = peers or {}
    rows = [_row(m, "model", r) for m, r in runs.items()]
    rows += [_row(p, "peer", r) for p, r in peers.items()]
    rows += [_row(BASELINE_LABELS.get(b, b), "baseline", r) for b, r in baselines.items()]
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    keys = list(runs) + list(peers) + list(baselines)
    models_only = table[table["kind"] == "model"]
    best = keys[int(models_only["test_rmse"].idxmin())] if len(models_only) else None
    for i, key in enumerate(keys):
        for ref, column in ((best, "diff_vs_best"), ("bias_only", "diff_vs_bias_only")):
            if ref is None or ref not in sq_errors or ref == key:
                continue
            cmp = evaluation.bootstrap_rmse_difference(sq_errors[key], sq_errors[ref])
            table.loc[i, [column, f"{column}_low", f"{column}_high"]] = (
                cmp["diff"],
                cmp["low"],
                cmp["high"],
            )
    return table.astype({"n_params": "Int64", "runs": "Int64"}), best


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


def _pm(mean, sd):
    if pd.isna(mean):
        return "-"
    return f"{mean:.4f}" if pd.isna(sd) else f"{mean:.4f} ± {sd:.4f}"


def _pm_column(table, column):
    return [_pm(m, s) for m, s in zip(table[column], table[f"{column}_sd"], strict=True)]


def _interval(row, column):
    if pd.isna(row[column]):
        return "-"
    return f"{row[column]:+.4f} [{row[f'{column}_low']:+.4f}, {row[f'{column}_high']:+.4f}]"


def _link(path, base):
    return os.path.relpath(path, base).replace(os.sep, "/")


def results_markdown(table, best, what):
    """The lead sentence and the models table of a summary."""
    shown = pd.DataFrame(
        {
            "model": table["model"],
            "kind": table["kind"],
            "test RMSE": _pm_column(table, "test_rmse"),
            "test MAE": _pm_column(table, "test_mae"),
            "val RMSE": _pm_column(table, "val_rmse"),
            "vs best (95% CI)": [_interval(r, "diff_vs_best") for _, r in table.iterrows()],
            "vs bias-only (95% CI)": [
                _interval(r, "diff_vs_bias_only") for _, r in table.iterrows()
            ],
            "unseen-user RMSE": table["test_rmse_unseen_user"],
            "unseen-movie RMSE": table["test_rmse_unseen_movie"],
            "kept epoch": table["best_epoch"].fillna("-"),
            "params": table["n_params"],
            "train s": table["train_seconds"],
            "ratings/s": table["ratings_per_s"].map(_rate),
        }
    )
    lines = []
    models = table[table["kind"] == "model"]
    if best is not None:
        row = table[table["model"] == best].iloc[0]
        bias = table[table["model"] == BASELINE_LABELS["bias_only"]]
        lines += [
            f"Lowest test RMSE of our models: **{best}**, "
            f"{_pm(row['test_rmse'], row['test_rmse_sd'])} "
            f"(mean ± sd over {int(row['runs'])} {what}).",
            "",
        ]
        peers = table[table["kind"] == "peer"]
        if len(peers):
            top = peers.loc[peers["test_rmse"].idxmin()]
            lines += [
                f"Best peer (a reference library on the same split): **{top['model']}**, "
                f"{top['test_rmse']:.4f}; its difference from {best}: "
                f"{_interval(top, 'diff_vs_best')}.",
                "",
            ]
        if len(bias):
            b = bias.iloc[0]
            lines += [
                f"Against the bias-only baseline ({b['test_rmse']:.4f}): "
                f"{_interval(row, 'diff_vs_bias_only')} (RMSE difference, paired 95% "
                "interval over the same test rows).",
                "",
            ]
        close = [
            r["model"]
            for _, r in models.iterrows()
            if r["model"] != best
            and not pd.isna(r["diff_vs_best_low"])
            and r["diff_vs_best_low"] <= 0
        ]
        if close:
            lines += [
                "Not distinguishable from it on this test set (the paired interval of the "
                f"difference includes 0): {', '.join(close)}.",
                "",
            ]
    lines += [
        "How to read this: the test part is read once, after training, by its own rule;",
        "every choice (the kept epoch, early stopping, the defaults) was made on validation.",
        "Rows of kind `peer` are the field's reference libraries (Surprise, myFM) fitted",
        "by their own code on the same train part and scored on the same test rows.",
        "`vs best` and `vs bias-only` are test RMSE differences (positive: worse) with a",
        "95% paired interval over the same test rows (bootstrap of rows; replicates'",
        "squared errors averaged per row). Unseen-user/movie RMSE: test rows whose user",
        "or movie has no training rating. `kept epoch`: the best validation epoch of",
        "each run.",
        "",
        markdown_table(
            shown,
            formats={
                "unseen-user RMSE": ".4f",
                "unseen-movie RMSE": ".4f",
                "train s": ".1f",
            },
        ),
        "The same rows, with every number, are in `models.csv`.",
        "",
    ]
    return lines


def ranking_section(ranking_path):
    """ranking.md one heading level down, under a heading of its own (the summary's top-N part)."""
    text = Path(ranking_path).read_text(encoding="utf-8").splitlines()
    body = text[1:] if text and text[0].startswith("# ") else text
    lines = ["## Top-N recommendations (ranking.md)"]
    lines += ["#" + line if line.startswith("#") else line for line in body]
    return lines + [""]


def audit_markdown(audit):
    """The split audit: rows per part, unseen users and movies, and the temporal leak check."""
    rows = []
    for part in ("train", "val", "test"):
        row = {"part": part, "ratings": audit.get(f"n_{part}")}
        if part != "train":
            row["unseen users"] = audit.get(f"{part}_unseen_users")
            row["unseen movies"] = audit.get(f"{part}_unseen_movies")
            row["rows with unseen user"] = audit.get(f"{part}_rows_with_unseen_user")
            row["rows with unseen movie"] = audit.get(f"{part}_rows_with_unseen_movie")
        rows.append({k: "-" if v is None else str(v) for k, v in row.items()})
    settings = {k: v for k, v in audit.items() if k in ("method", "fold") and v is not None}
    settings.update(audit.get("scheme") or {})
    lines = [
        "## Split audit",
        "",
        "Scheme: " + ", ".join(f"{k} `{v}`" for k, v in settings.items()) + ".",
        "",
        markdown_table(pd.DataFrame(rows)),
    ]
    if audit.get("method") == "temporal":
        verdict = "yes" if audit["leak_free"] else "**NO**"
        lines += [
            f"No training rating is later than a validation or test one: {verdict} "
            f"(latest training timestamp {audit.get('train_max_timestamp')}, earliest test "
            f"timestamp {audit.get('test_min_timestamp')}).",
            "",
        ]
    return lines


def _write(table, csv_path, summary_path, lines):
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    write_text(summary_path, "\n".join(lines))


def summarize_models(
    *,
    metrics_paths,
    predictions_paths,
    baselines_path,
    baseline_predictions_path,
    test_path,
    split_path,
    benchmarks,
    peer_metrics_paths=None,
    peer_predictions_paths=None,
    ranking_path=None,
    summary_path,
    csv_path,
    dataset,
    split,
    links,
    figures,
):
    """Write summary.md and models.csv of one split.

    Parameters
    ----------
    metrics_paths, predictions_paths : dict
        Model name -> its replicates' metrics.json / test_predictions.parquet,
        in the order the table should list them.
    peer_metrics_paths, peer_predictions_paths : dict, optional
        Peer name -> its metrics.json / test_predictions.parquet.
    baselines_path, baseline_predictions_path : path
        What compute_baselines wrote.
    test_path, split_path : path
        The test part (its ratings, for the paired comparisons) and split.json.
    benchmarks : dict
        "rule target" -> Snakemake benchmark TSV.
    ranking_path : path, optional
        ranking.md (score_recommendations), quoted as the top-N section.
    summary_path, csv_path : path
        Outputs, written atomically.
    links : dict
        Model name -> its report files, linked relative to the summary.
    figures : dict
        Figure title -> path of a split-level figure.
    """
    rating = evaluation.read_part(test_path, ("rating",))["rating"]
    runs = {m: [read_metrics(p) for p in ps] for m, ps in metrics_paths.items()}
    sq = {
        m: squared_errors([evaluation.read_predictions(p, len(rating)) for p in ps], rating)
        for m, ps in predictions_paths.items()
    }
    baselines = read_json(baselines_path, ("baselines",))["baselines"]
    base_pred = pd.read_parquet(baseline_predictions_path)
    for name in baselines:
        sq[name] = (base_pred[name].to_numpy(np.float64) - rating) ** 2
    peers = {p: [read_json(path)] for p, path in (peer_metrics_paths or {}).items()}
    for p, path in (peer_predictions_paths or {}).items():
        sq[p] = (evaluation.read_predictions(path, len(rating)) - rating) ** 2
    table, best = models_table(runs, {k: [v] for k, v in baselines.items()}, sq, peers)
    audit = read_json(split_path)
    n_rep = max(len(r) for r in runs.values())
    lines = [f"# Models on `{dataset}`, split `{split}`", ""]
    lines += results_markdown(table, best, f"replicate{'s' if n_rep > 1 else ''}")
    if ranking_path is not None:
        lines += ranking_section(ranking_path)
    lines += audit_markdown(audit)
    base = os.path.dirname(os.path.abspath(summary_path))
    lines += ["## Figures", ""]
    for name, path in figures.items():
        lines.append(f"- [{name}]({_link(os.path.abspath(path), base)})")
    lines += ["", "## Per-model reports (replicate 1)", ""]
    for model, files in links.items():
        items = ", ".join(f"[{Path(p).name}]({_link(os.path.abspath(p), base)})" for p in files)
        lines.append(f"- **{model}**: {items}")
    lines += [
        "",
        "## Time and peak memory per rule",
        "",
        "From Snakemake's benchmark files under `results/benchmarks/`; peak RSS is the",
        "largest resident memory of the job's processes. Report rules are listed as they",
        "were when this summary was written.",
        "",
        markdown_table(
            benchmark_table(benchmarks), formats={"seconds": ".2f", "peak RSS (MiB)": ".0f"}
        ),
    ]
    _write(table, csv_path, summary_path, lines)
    log.info("summarised %d models over %d replicate(s)", len(runs), n_rep)
    return table


def summarize_folds(
    *,
    metrics_paths,
    predictions_paths,
    baselines_paths,
    baseline_predictions_paths,
    test_paths,
    audit_paths,
    summary_path,
    csv_path,
    dataset,
    scheme,
):
    """Write the summary.md and models.csv of a k-fold scheme from its folds.

    Parameters are keyed by fold split name (``cv5-1`` ...); the metrics and
    predictions values are {model: [replicate paths]}. Means and sds are over
    every (fold, replicate) run; paired comparisons use all folds' test rows
    together (the folds' test parts partition the ratings).
    """
    folds = list(metrics_paths)
    ratings = {f: evaluation.read_part(test_paths[f], ("rating",))["rating"] for f in folds}
    models = list(metrics_paths[folds[0]])
    fold_runs = {
        f: {m: [read_metrics(p) for p in metrics_paths[f][m]] for m in models} for f in folds
    }
    runs = {m: [r for f in folds for r in fold_runs[f][m]] for m in models}
    sq = {
        m: np.concatenate(
            [
                squared_errors(
                    [
                        evaluation.read_predictions(p, len(ratings[f]))
                        for p in predictions_paths[f][m]
                    ],
                    ratings[f],
                )
                for f in folds
            ]
        )
        for m in models
    }
    fold_baselines = {f: read_json(baselines_paths[f], ("baselines",))["baselines"] for f in folds}
    names = list(fold_baselines[folds[0]])
    baselines = {b: [fold_baselines[f][b] for f in folds] for b in names}
    base_pred = {f: pd.read_parquet(baseline_predictions_paths[f]) for f in folds}
    for b in names:
        sq[b] = np.concatenate(
            [(base_pred[f][b].to_numpy(np.float64) - ratings[f]) ** 2 for f in folds]
        )
    table, best = models_table(runs, baselines, sq)
    per_fold = pd.DataFrame(
        {
            "model": models + [BASELINE_LABELS.get(b, b) for b in names],
            **{
                f: [float(np.mean([r["test_rmse"] for r in fold_runs[f][m]])) for m in models]
                + [fold_baselines[f][b]["test_rmse"] for b in names]
                for f in folds
            },
        }
    )
    n_rep = len(fold_runs[folds[0]][models[0]])
    lines = [f"# Models on `{dataset}`, {len(folds)}-fold scheme `{scheme}`", ""]
    lines += results_markdown(table, best, f"runs: {len(folds)} folds x {n_rep} replicate(s)")
    lines += [
        "## Test RMSE per fold (mean over replicates)",
        "",
        markdown_table(per_fold, formats={f: ".4f" for f in folds}),
        "## Folds",
        "",
    ]
    for f in folds:
        audit = read_json(audit_paths[f])
        lines.append(
            f"- `{f}`: {audit.get('n_train')} train, {audit.get('n_val')} validation, "
            f"{audit.get('n_test')} test ratings; {audit.get('test_unseen_movies')} test "
            "movies unseen in training"
        )
    lines.append("")
    _write(table, csv_path, summary_path, lines)
    log.info("summarised %d folds of %s", len(folds), scheme)
    return table
