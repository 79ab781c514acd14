"""What the sweep rules run: train one trial, then choose on validation and score on test.

`train_trial` is rule train_trial: `movierec.training.train_model` on one set of
settings, plus ``trial.json`` (status, validation RMSE, seconds). Divergence
(`FloatingPointError` from `fit`) does not fail the job: the trial is recorded
as failed and its checkpoint holds the untrained initial weights, so every
trial has the same files and the sweep goes on. Any other error (a bad file,
a setting the model cannot take) stops the job as usual.

`score_sweep` is rule score_sweep: ``trials.csv`` from every ``trial.json``,
the winner by `movierec.sweeps.choose` (validation only), and the test part
read once, for the winner alone, into ``best.json``.
"""

import logging
import math
import time

import numpy as np
import pandas as pd

from movierec import atomic, sweeps

log = logging.getLogger(__name__)


def train_trial(*, name, overrides, settings, result_json, model_pt, model_json,
                history_json, **train_args):  # fmt: skip
    """Train one trial (`train_args` go to `train_model`); write ``trial.json``."""
    from movierec import training

    started = time.perf_counter()
    result = {"trial": name, "overrides": overrides, "settings": settings}
    try:
        metrics = training.train_model(
            settings=settings, model_pt=model_pt, model_json=model_json,
            history_json=history_json, **train_args,
        )  # fmt: skip
        result.update(
            status="ok",
            val_rmse=metrics["val_rmse"],
            val_mae=metrics["val_mae"],
            best_epoch=metrics["best_epoch"],
            train_seconds=metrics["train_seconds"],
            error=None,
        )
    except FloatingPointError as error:
        log.warning("trial %s %s failed: %s", name, overrides, error)
        _save_untrained(settings, model_pt, model_json, train_args, str(error))
        atomic.write_json(history_json, {"status": "failed", "error": str(error)})
        result.update(status="failed", val_rmse=None, val_mae=None, best_epoch=None,
                      train_seconds=None, error=str(error))  # fmt: skip
    result["seconds"] = time.perf_counter() - started
    atomic.write_json(result_json, result)
    return result


def _save_untrained(settings, model_pt, model_json, train_args, error):
    """A failed trial's checkpoint: the initial weights, marked failed in model.json."""
    from movierec import checkpoint, models, training

    n_users = training.count_rows(train_args["users_path"])
    n_movies = training.count_rows(train_args["movies_path"])
    model = models.build_model(settings, n_users, n_movies)
    meta = {"arch": settings["arch"], "settings": settings, "n_users": n_users,
            "n_movies": n_movies, "failed": error}  # fmt: skip
    checkpoint.save_model(model, meta, model_pt, model_json)


def trials_table(results, keys):
    """One row per trial (its swept values, status, validation RMSE, seconds), best first."""
    rows = []
    for name, r in results.items():
        row = {"trial": name, "status": r["status"]}
        row |= {key: sweeps.cell(r["overrides"].get(key)) for key in keys}
        row |= {k: r.get(k) for k in ("val_rmse", "val_mae", "best_epoch", "seconds", "error")}
        rows.append(row)
    table = pd.DataFrame(rows)
    table["val_rmse"] = table["val_rmse"].astype(float)
    return table.sort_values(["val_rmse", "trial"], na_position="last", ignore_index=True)


def score_sweep(*, sweep_name, sweep, results_paths, model_paths, test_path, rating_scale,
                trials_csv, best_json, threads=1):  # fmt: skip
    """Write trials.csv and best.json; the test part is read for the winner only.

    Parameters
    ----------
    sweep : dict
        The sweep's config block (``model`` and ``grid`` or ``random``).
    results_paths, model_paths : dict
        Trial name -> its ``trial.json`` and ``model.pt``.
    """
    import torch

    from movierec import checkpoint
    from movierec.evaluation import error_metrics, predict, read_part
    from movierec.reports.inputs import read_json

    torch.set_num_threads(int(threads))
    results = {
        name: read_json(path, ("status", "val_rmse", "overrides", "settings"))
        for name, path in results_paths.items()
    }
    for r in results.values():
        if r["val_rmse"] is None:
            r["val_rmse"] = math.nan
    keys = list(sweep["grid"] if "grid" in sweep else sweep["random"]["space"])
    table = trials_table(results, keys)
    with atomic.atomic_path(trials_csv) as tmp:
        table.to_csv(tmp, index=False)
    winner = sweeps.choose(results)
    model, meta = checkpoint.load_model(model_paths[winner])
    test = read_part(test_path)
    low, high = (float(v) for v in rating_scale)
    pred = np.clip(predict(model, torch.from_numpy(test["user"]), torch.from_numpy(test["movie"])),
                   low, high)  # fmt: skip
    test_scores = error_metrics(pred, test["rating"])
    chosen = results[winner]
    best = {
        "sweep": sweep_name,
        "model": sweep["model"],
        "trial": winner,
        "overrides": chosen["overrides"],
        "settings": chosen["settings"],
        "val_rmse": chosen["val_rmse"],
        "test_rmse": test_scores["rmse"],
        "test_mae": test_scores["mae"],
        "n_test": int(len(pred)),
        "n_trials": len(results),
        "n_failed": int(sum(r["status"] != "ok" for r in results.values())),
        "selected_by": "val_rmse",
        "space": sweep,
    }
    atomic.write_json(best_json, best)
    log.info("sweep %s: %s %s val RMSE %.4f, test RMSE %.4f (%d trials, %d failed)",
             sweep_name, winner, chosen["overrides"], best["val_rmse"], best["test_rmse"],
             best["n_trials"], best["n_failed"])  # fmt: skip
    return best
