"""models.csv of a summary: one row per model, peer and baseline, with paired differences.

A row's numbers are means and sds over its runs (replicates, and folds for a
k-fold scheme); its differences from the best model and from the bias-only
baseline are paired bootstrap intervals on the same test rows
(`movierec.evaluation.bootstrap_rmse_difference`). The per-rule time and
memory table is built here too, from Snakemake's benchmark files.
"""

import math

import numpy as np
import pandas as pd

from movierec import evaluation
from movierec.reports.inputs import ratings_per_second, read_benchmark, training_seconds

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
    "ensemble_test_rmse",
    "diff_vs_best_ensemble",
    "diff_vs_best_ensemble_low",
    "diff_vs_best_ensemble_high",
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


def ensemble_squared_errors(predictions, rating):
    """Per-row squared error of the mean of a model's runs' predictions (their ensemble)."""
    return (np.mean([np.asarray(p) for p in predictions], axis=0) - rating) ** 2


def models_table(runs, baselines, sq_errors, peers=None, ensemble_sq_errors=None):
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
    ensemble_sq_errors : dict, optional
        Model name -> per-row squared test error of the mean of its replicates'
        predictions: ``ensemble_test_rmse``, and every other row's difference
        from the best model's ensemble (``diff_vs_best_ensemble``).
    """
    peers = peers or {}
    ensemble_sq_errors = ensemble_sq_errors or {}
    rows = [_row(m, "model", r) for m, r in runs.items()]
    rows += [_row(p, "peer", r) for p, r in peers.items()]
    rows += [_row(BASELINE_LABELS.get(b, b), "baseline", r) for b, r in baselines.items()]
    table = pd.DataFrame(rows, columns=CSV_COLUMNS)
    keys = list(runs) + list(peers) + list(baselines)
    models_only = table[table["kind"] == "model"]
    best = keys[int(models_only["test_rmse"].idxmin())] if len(models_only) else None
    refs = (
        (best, sq_errors.get(best), "diff_vs_best"),
        ("bias_only", sq_errors.get("bias_only"), "diff_vs_bias_only"),
        # The best model against its own ensemble too: what averaging gains.
        (None, ensemble_sq_errors.get(best), "diff_vs_best_ensemble"),
    )
    for i, key in enumerate(keys):
        if key in ensemble_sq_errors:
            table.loc[i, "ensemble_test_rmse"] = math.sqrt(float(ensemble_sq_errors[key].mean()))
        for ref_key, ref, column in refs:
            if ref is None or ref_key == key:
                continue
            cmp = evaluation.bootstrap_rmse_difference(sq_errors[key], ref)
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
