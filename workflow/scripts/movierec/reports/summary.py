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

The numbers of models.csv are computed in `movierec.reports.summary_table`,
the Markdown sections in `movierec.reports.summary_sections`; this module
reads a run's files, puts the sections in order and writes both outputs.
"""

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from movierec import evaluation
from movierec.atomic import atomic_path, write_text
from movierec.reports.inputs import read_json, read_metrics
from movierec.reports.summary_sections import audit_markdown, ranking_section, results_markdown
from movierec.reports.summary_table import (
    BASELINE_LABELS,
    benchmark_table,
    ensemble_squared_errors,
    models_table,
    squared_errors,
)
from movierec.reports.tables import markdown_table

log = logging.getLogger(__name__)


def _link(path, base):
    return os.path.relpath(path, base).replace(os.sep, "/")


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
    predictions = {
        m: [evaluation.read_predictions(p, len(rating)) for p in ps]
        for m, ps in predictions_paths.items()
    }
    sq = {m: squared_errors(p, rating) for m, p in predictions.items()}
    ensemble_sq = {
        m: ensemble_squared_errors(p, rating) for m, p in predictions.items() if len(p) > 1
    }
    baselines = read_json(baselines_path, ("baselines",))["baselines"]
    base_pred = pd.read_parquet(baseline_predictions_path)
    for name in baselines:
        sq[name] = (base_pred[name].to_numpy(np.float64) - rating) ** 2
    peers = {p: [read_json(path)] for p, path in (peer_metrics_paths or {}).items()}
    for p, path in (peer_predictions_paths or {}).items():
        sq[p] = (evaluation.read_predictions(path, len(rating)) - rating) ** 2
    table, best = models_table(runs, {k: [v] for k, v in baselines.items()}, sq, peers, ensemble_sq)
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
    predictions = {
        (f, m): [evaluation.read_predictions(p, len(ratings[f])) for p in predictions_paths[f][m]]
        for f in folds
        for m in models
    }
    sq = {
        m: np.concatenate([squared_errors(predictions[f, m], ratings[f]) for f in folds])
        for m in models
    }
    # Each fold's replicates averaged, on that fold's test rows.
    ensemble_sq = {
        m: np.concatenate([ensemble_squared_errors(predictions[f, m], ratings[f]) for f in folds])
        for m in models
        if len(predictions[folds[0], m]) > 1
    }
    fold_baselines = {f: read_json(baselines_paths[f], ("baselines",))["baselines"] for f in folds}
    names = list(fold_baselines[folds[0]])
    baselines = {b: [fold_baselines[f][b] for f in folds] for b in names}
    base_pred = {f: pd.read_parquet(baseline_predictions_paths[f]) for f in folds}
    for b in names:
        sq[b] = np.concatenate(
            [(base_pred[f][b].to_numpy(np.float64) - ratings[f]) ** 2 for f in folds]
        )
    table, best = models_table(runs, baselines, sq, ensemble_sq_errors=ensemble_sq)
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
