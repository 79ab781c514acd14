"""The Markdown sections of a summary: the results lead and table, the top-N quote, the audit.

Each function returns a list of lines; `movierec.reports.summary` puts them
in order and writes the file. Numbers are shown as mean ± sd and paired
intervals as ``diff [low, high]``, with a dash where a value was not measured.
"""

from pathlib import Path

import pandas as pd

from movierec.reports.summary_table import BASELINE_LABELS
from movierec.reports.tables import markdown_table


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


def results_markdown(table, best, what):
    """The lead sentence and the models table of a summary."""
    shown = pd.DataFrame(
        {
            "model": table["model"],
            "kind": table["kind"],
            "test RMSE": _pm_column(table, "test_rmse"),
            "test MAE": _pm_column(table, "test_mae"),
            "val RMSE": _pm_column(table, "val_rmse"),
            "replicates averaged": table["ensemble_test_rmse"],
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
        ensemble = not pd.isna(row["ensemble_test_rmse"])
        if ensemble:
            lines += [
                f"Averaging {best}'s replicates' predictions row by row (their ensemble): "
                f"{row['ensemble_test_rmse']:.4f}; single replicates against it: "
                f"{_interval(row, 'diff_vs_best_ensemble')}.",
                "",
            ]
        peers = table[table["kind"] == "peer"]
        if len(peers):
            top = peers.loc[peers["test_rmse"].idxmin()]
            against = f"; from their ensemble: {_interval(top, 'diff_vs_best_ensemble')}"
            lines += [
                f"Best peer (a reference library on the same split): **{top['model']}**, "
                f"{top['test_rmse']:.4f}; its difference from {best}: "
                f"{_interval(top, 'diff_vs_best')}{against if ensemble else ''}.",
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
        "or movie has no training rating. `replicates averaged`: the test RMSE of the",
        "mean of a model's replicates' predictions (an ensemble of them; each replicate",
        "is one training, so it costs their train s together). `kept epoch`: the best",
        "validation epoch of each run.",
        "",
        markdown_table(
            shown,
            formats={
                "replicates averaged": ".4f",
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
