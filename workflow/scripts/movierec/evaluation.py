"""Test-set scoring, read once after training, and paired comparisons of models.

Training (`movierec.training`) sees train and validation only; every choice it
makes (the kept epoch, early stopping) is made on validation. The rule
`evaluate_model` then runs this module on the test part, the only place the
test ratings are read for a model, and writes the number reports lead with.

Cold rows are scored separately: a test rating whose user (or movie) has no
training rating can only be predicted from the other side's bias and the
global offset, and is where models differ most.

`bootstrap_rmse_difference` compares two models on the same test rows: the
difference of their RMSEs with a percentile interval from resampling rows
(paired, so the spread of the rows' difficulty cancels out).
"""

import logging
import math
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.arrays import read_parquet, to_arrow, to_numpy

log = logging.getLogger(__name__)

#: Resamples of the paired bootstrap.
N_BOOTSTRAP = 1000
#: Above this many rows the interval comes from the normal approximation of the
#: same statistic (delta method), which the bootstrap converges to, at O(n) cost.
BOOTSTRAP_MAX_ROWS = 200_000


def error_metrics(pred, rating):
    """RMSE and MAE of predictions against ratings (NaN for no rows)."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(rating, dtype=np.float64)
    if err.size == 0:
        return {"rmse": math.nan, "mae": math.nan}
    return {"rmse": math.sqrt(float(np.mean(err * err))), "mae": float(np.mean(np.abs(err)))}


def cold_masks(train_user, train_movie, user, movie):
    """Boolean masks of rows whose user / movie has no training rating."""
    seen_users = np.bincount(train_user, minlength=int(user.max(initial=0)) + 1) > 0
    seen_movies = np.bincount(train_movie, minlength=int(movie.max(initial=0)) + 1) > 0
    return ~seen_users[user], ~seen_movies[movie]


def test_metrics(pred, rating, cold_user, cold_movie):
    """``test_rmse``, ``test_mae`` and the cold/warm breakdown of one set of predictions.

    Returns
    -------
    dict
        ``test_rmse``, ``test_mae``, ``n_test`` and ``cold``: for
        ``unseen_user``, ``unseen_movie`` and ``warm`` (both seen), the row
        count and RMSE (NaN written as null when there are no such rows).
    """
    pred = np.asarray(pred, dtype=np.float64)
    rating = np.asarray(rating, dtype=np.float64)
    overall = error_metrics(pred, rating)
    cold = {}
    for name, mask in (
        ("unseen_user", cold_user),
        ("unseen_movie", cold_movie),
        ("warm", ~(cold_user | cold_movie)),
    ):
        rmse = error_metrics(pred[mask], rating[mask])["rmse"]
        cold[name] = {"rows": int(mask.sum()), "rmse": None if math.isnan(rmse) else rmse}
    return {
        "test_rmse": overall["rmse"],
        "test_mae": overall["mae"],
        "n_test": int(rating.size),
        "cold": cold,
    }


def read_part(path, columns=("user", "movie", "rating")):
    """Columns of a split part as numpy arrays (user/movie int64, rating float64)."""
    table = read_parquet(path, columns)
    out = {}
    for name in columns:
        values = to_numpy(table.column(name))
        out[name] = values.astype(np.float64 if name == "rating" else np.int64)
    return out


def write_predictions(path, pred):
    """``test_predictions.parquet``: one float32 ``prediction`` per test row, in row order."""
    write_prediction_columns(path, {"prediction": pred})


def write_prediction_columns(path, columns):
    """A Parquet file of float32 prediction columns (name -> one value per test row)."""
    from movierec import atomic

    table = pa.table({k: to_arrow(np.asarray(v, dtype=np.float32)) for k, v in columns.items()})
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_predictions(path, n_rows=None):
    """The ``prediction`` column of a predictions file, checked against the test row count."""
    pred = to_numpy(read_parquet(path, ["prediction"]).column("prediction"))
    if n_rows is not None and len(pred) != n_rows:
        raise ValueError(
            f"{path}: {len(pred)} predictions, but the test part has {n_rows} rows; "
            "was it written for another split?"
        )
    return pred.astype(np.float64)


def predict(model, user, movie, batch=1 << 16):
    """Model predictions for index tensors, in large batches without gradients."""
    import torch

    parts = [np.zeros(0)]
    with torch.no_grad():
        for start in range(0, len(user), batch):
            stop = start + batch
            parts.append(model(user[start:stop], movie[start:stop]).double().numpy())
    return np.concatenate(parts)


def evaluate_model(*, model_pt, history_json, train_path, test_path, metrics_json,
                   predictions_out, rating_scale, threads=1):  # fmt: skip
    """What rule evaluate_model runs: score a trained checkpoint on the test part once.

    ``metrics.json`` is the training history (`history_json`, validation only)
    plus ``test_rmse``, ``test_mae``, ``n_test`` and the ``cold`` breakdown
    (hybrid: also ``test_rmse_linear``). Predictions are clipped to the
    rating scale, as on validation.
    """
    import torch

    from movierec import atomic, checkpoint
    from movierec.reports.inputs import read_json
    from movierec.training import Ratings, evaluate

    torch.set_num_threads(int(threads))
    history = read_json(history_json, ("val_rmse", "best_epoch", "history"))
    model, meta = checkpoint.load_model(model_pt)
    train = read_part(train_path, ("user", "movie"))
    test = read_part(test_path)
    for name, n in (("user", meta["n_users"]), ("movie", meta["n_movies"])):
        if test[name].size and (test[name].min() < 0 or test[name].max() >= n):
            raise ValueError(
                f"{test_path}: {name} index outside [0, {n}) of the model {model_pt}; "
                "was it split from another index?"
            )
    low, high = (float(v) for v in rating_scale)
    user = torch.from_numpy(test["user"])
    movie = torch.from_numpy(test["movie"])
    pred = np.clip(predict(model, user, movie), low, high)
    cold_user, cold_movie = cold_masks(train["user"], train["movie"], test["user"], test["movie"])
    metrics = dict(history)
    metrics.update(test_metrics(pred, test["rating"], cold_user, cold_movie))
    if meta["arch"] == "hybrid":
        ratings = Ratings(user, movie, torch.from_numpy(test["rating"].astype(np.float32)))
        metrics["test_rmse_linear"] = evaluate(model, ratings, (low, high))["rmse_linear"]
    write_predictions(predictions_out, pred)
    atomic.write_json(metrics_json, metrics)
    log.info(
        "%s: test RMSE %.4f, MAE %.4f on %d rows (val RMSE %.4f at epoch %d)",
        model_pt, metrics["test_rmse"], metrics["test_mae"], metrics["n_test"],
        metrics["val_rmse"], metrics["best_epoch"],
    )  # fmt: skip
    return metrics


def evaluate_replicates(*, model_pts, history_jsons, metrics_jsons, predictions_outs, **common):
    """`evaluate_model` for each replicate of a model (aligned lists of paths)."""
    lists = (model_pts, history_jsons, metrics_jsons, predictions_outs)
    if len({len(x) for x in lists}) != 1:
        raise ValueError(f"need one of each path per replicate, got {[len(x) for x in lists]}")
    return [
        evaluate_model(model_pt=pt, history_json=h, metrics_json=m, predictions_out=p, **common)
        for pt, h, m, p in zip(*lists, strict=True)
    ]


def bootstrap_rmse_difference(sq_a, sq_b, n_boot=N_BOOTSTRAP, seed=0, level=0.95):
    """Paired bootstrap of ``RMSE(a) - RMSE(b)`` over the same test rows.

    Parameters
    ----------
    sq_a, sq_b : array
        Squared errors of models a and b on the same rows (averaged over
        replicates where there are several).

    Returns
    -------
    dict
        ``diff`` (on all rows), ``low`` and ``high`` (percentile interval),
        ``level``, ``method`` (bootstrap, or delta above `BOOTSTRAP_MAX_ROWS`),
        ``n_boot``, ``n_rows``.
    """
    sq_a = np.asarray(sq_a, dtype=np.float64)
    sq_b = np.asarray(sq_b, dtype=np.float64)
    if sq_a.shape != sq_b.shape or sq_a.size == 0:
        raise ValueError(f"need two equal non-empty sets of rows, got {sq_a.shape}, {sq_b.shape}")
    n = sq_a.size
    rmse_a, rmse_b = math.sqrt(sq_a.mean()), math.sqrt(sq_b.mean())
    alpha = (1 - level) / 2
    if n > BOOTSTRAP_MAX_ROWS:
        # d RMSE = d MSE / (2 RMSE): the per-row influence of each model's error.
        influence = sq_a / (2 * max(rmse_a, 1e-12)) - sq_b / (2 * max(rmse_b, 1e-12))
        half = NormalDist().inv_cdf(1 - alpha) * float(influence.std(ddof=1)) / math.sqrt(n)
        low, high, method = rmse_a - rmse_b - half, rmse_a - rmse_b + half, "delta"
    else:
        rng = np.random.default_rng(seed)
        diffs = np.empty(n_boot)
        for i in range(n_boot):
            idx = rng.integers(0, n, n)
            diffs[i] = math.sqrt(sq_a[idx].mean()) - math.sqrt(sq_b[idx].mean())
        low, high = float(np.quantile(diffs, alpha)), float(np.quantile(diffs, 1 - alpha))
        method = "bootstrap"
    return {
        "diff": rmse_a - rmse_b,
        "low": low,
        "high": high,
        "level": level,
        "method": method,
        "n_boot": int(n_boot) if method == "bootstrap" else 0,
        "n_rows": int(n),
    }
