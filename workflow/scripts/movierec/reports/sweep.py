"""The sweep report: sweep.md (the winner, its test RMSE, every trial) and its figure.

The figure shows validation RMSE against each swept value, one panel per key
(a log axis where the values span a decade or more, categories in order of
first appearance otherwise); a grid over exactly two keys is a heatmap
instead. The winner is marked; failed trials are listed in the table only.
"""

import math

import matplotlib.patches
import numpy as np
import pandas as pd

from movierec import atomic
from movierec.reports.canvas import new_figure, save_figure
from movierec.reports.inputs import read_json
from movierec.reports.tables import markdown_table
from movierec.sweeps import cell


def swept_keys(space):
    return list(space["grid"] if "grid" in space else space["random"]["space"])


def _numeric(values):
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _log_axis(values):
    return _numeric(values) and min(values) > 0 and max(values) / min(values) >= 10


def _positions(values):
    """x positions of categorical values, in order of first appearance, and their labels."""
    labels = list(dict.fromkeys(str(v) for v in values))
    return [labels.index(str(v)) for v in values], labels


def sweep_figure(table, best, keys, title):
    """Validation RMSE against each swept key (or a heatmap for a two-key grid)."""
    ok = table[table["status"] == "ok"]
    if len(keys) == 2 and "grid" in best["space"]:
        return _heatmap(ok, best, keys, title)
    fig = new_figure(4.2 * len(keys), 3.4)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        values = list(ok[key])
        if _numeric(values):
            x = np.asarray(values, dtype=float)
            if _log_axis(values):
                ax.set_xscale("log")
        else:
            x, labels = _positions(values)
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.scatter(x, ok["val_rmse"], s=18, color="tab:blue", alpha=0.8, label="trial")
        win = ok["trial"] == best["trial"]
        ax.scatter(np.asarray(x)[win.to_numpy()], ok["val_rmse"][win], s=80, marker="*",
                   color="tab:red", zorder=3, label="chosen (lowest val RMSE)")  # fmt: skip
        ax.set_xlabel(key)
        ax.set_ylabel("validation RMSE")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def _heatmap(ok, best, keys, title):
    row_key, col_key = keys
    grid = best["space"]["grid"]
    rows = [cell(v) for v in grid[row_key]]
    cols = [cell(v) for v in grid[col_key]]
    values = np.full((len(rows), len(cols)), np.nan)
    for _, trial in ok.iterrows():
        values[rows.index(trial[row_key]), cols.index(trial[col_key])] = trial["val_rmse"]
    fig = new_figure(1.2 + 0.9 * len(cols), 1.2 + 0.55 * len(rows))
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=8)
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    winner = ok[ok["trial"] == best["trial"]].iloc[0]
    for i, j in np.ndindex(values.shape):
        text = "failed" if math.isnan(values[i, j]) else f"{values[i, j]:.4f}"
        is_best = (rows[i], cols[j]) == (winner[row_key], winner[col_key])
        dark = not math.isnan(values[i, j]) and image.norm(values[i, j]) > 0.6
        ax.text(j, i, text + (" *" if is_best else ""), ha="center", va="center", fontsize=7,
                color="white" if dark else "black", weight="bold" if is_best else None)  # fmt: skip
        if is_best:
            box = matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                               edgecolor="tab:red", linewidth=2)  # fmt: skip
            ax.add_patch(box)
    fig.colorbar(image, ax=ax, label="validation RMSE")
    fig.suptitle(title + "  (* chosen)", fontsize=10)
    return fig


def sweep_markdown(table, best, keys, dataset, split, figure_name):
    kind = (
        "grid"
        if "grid" in best["space"]
        else f"random sample (seed {best['space']['random'].get('seed', 0)})"
    )
    chosen = ", ".join(f"{k} = {v}" for k, v in best["overrides"].items())
    lines = [
        f"# Sweep {best['sweep']}: {best['model']} on {dataset} / {split}",
        "",
        f"**Chosen: {chosen}** (trial {best['trial']}), the lowest validation RMSE "
        f"({best['val_rmse']:.4f}) of {best['n_trials']} trials ({kind} over "
        f"{', '.join(keys)}; {best['n_failed']} failed). Its test RMSE, read once after "
        f"the choice, is **{best['test_rmse']:.4f}** (MAE {best['test_mae']:.4f}, "
        f"{best['n_test']} test ratings).",
        "",
        "Every trial trains the model's block with the values below laid over it "
        "(replicate 1's seed) on train, keeps its best validation epoch, and is "
        "judged on validation only; the test part is scored for the chosen trial alone, "
        "so the test RMSE above is not a selected minimum.",
        "",
        f"![validation RMSE against the swept values]({figure_name})",
        "",
        "## Trials (best validation RMSE first)",
        "",
    ]
    shown = table[["trial", "status", *keys, "val_rmse", "best_epoch", "seconds"]]
    lines.append(markdown_table(shown, formats={"val_rmse": ".4f", "seconds": ".1f"}))
    failed = table[table["status"] != "ok"]
    if len(failed):
        lines += ["", "## Failed trials", ""]
        lines += [f"- {row.trial}: {row.error}" for row in failed.itertuples()]
    return "\n".join(lines) + "\n"


def report_sweep(*, trials_csv, best_json, md_path, png_path, svg_path, dataset, split):
    """What rule report_sweep runs (reads trials.csv and best.json only)."""
    table = pd.read_csv(trials_csv)
    best = read_json(best_json, ("trial", "overrides", "space", "val_rmse", "test_rmse"))
    keys = swept_keys(best["space"])
    title = f"{best['sweep']}: {best['model']} on {dataset} / {split}"
    save_figure(sweep_figure(table, best, keys, title), png_path, svg_path)
    text = sweep_markdown(table, best, keys, dataset, split, figure_name=_name(png_path))
    atomic.write_text(md_path, text)


def _name(path):
    return str(path).rsplit("/", 1)[-1]
