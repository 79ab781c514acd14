"""Read what the reports are built from: learned movie parameters, the movie index, metrics.

Every reader checks what it reads against what the reports assume and says
which file broke the assumption, so a report never silently pairs the wrong
embedding row with a title. pandas is imported by the readers that build a
DataFrame, not at import: evaluate_model reads its JSON here and never needs it.
"""

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MOVIE_COLUMNS = ("movie", "movieId", "title", "genres", "year", "n_ratings", "mean_rating")


def read_movies(path):
    """The movie index (movies.parquet), checked: `movie` must be 0..n-1 in row order.

    Embedding row `i` belongs to the movie whose `movie` is `i`; the reports
    rely on that, so a gap or a shuffled index is an error rather than a
    mislabelled chart.
    """
    import pandas as pd

    movies = pd.read_parquet(path)
    missing = [c for c in MOVIE_COLUMNS if c not in movies.columns]
    if missing:
        raise ValueError(
            f"{path}: movie index lacks column(s) {missing}; expected {list(MOVIE_COLUMNS)}"
        )
    expected = np.arange(len(movies))
    index = movies["movie"].to_numpy()
    if not np.array_equal(index, expected):
        bad = int(np.flatnonzero(index != expected)[0])
        raise ValueError(
            f"{path}: row {bad} has movie={index[bad]}, expected {bad} "
            "(the index must be contiguous from 0 in row order)"
        )
    return movies


def movie_parameters(vectors_path):
    """Movie embedding matrix and movie biases of a trained model.

    Parameters
    ----------
    vectors_path : path
        The ``movie_vectors.parquet`` training writes beside the checkpoint
        (`movierec.vectors`): read without torch.

    Returns
    -------
    embedding : numpy.ndarray, shape (n_movies, n_factors)
    bias : numpy.ndarray of shape (n_movies,), or None for a model without biases (mlp)
    """
    from movierec.vectors import read_movie_vectors

    return read_movie_vectors(vectors_path)


def check_rows(array, movies, vectors_path, movies_path):
    """Fail clearly when a model was trained against another movie index."""
    if array.shape[0] != len(movies):
        raise ValueError(
            f"{vectors_path}: the model has {array.shape[0]} movie rows but {movies_path} "
            f"lists {len(movies)} movies; was it trained on another index?"
        )


def read_json(path, required=()):
    """A JSON object with the named keys present, or a ValueError naming the file and key."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    return data


EPOCH_KEYS = ("epoch", "phase", "lr", "train_mse", "val_rmse", "val_mae")


def read_metrics(path, test=True):
    """A model's metrics.json (or, with test=False, a history.json) with its history checked.

    metrics.json is what evaluate_model writes: the training history
    (validation only) plus the test scores; a pretrain stage has only the
    history, since it is never scored on test.
    """
    required = ["val_rmse", "best_epoch", "n_params", "history"]
    if test:
        required += ["test_rmse", "test_mae"]
    metrics = read_json(path, required)
    epochs = metrics["history"]
    if not isinstance(epochs, list) or not epochs:
        raise ValueError(f"{path}: `history` must be a non-empty list")
    for i, entry in enumerate(epochs):
        missing = [k for k in EPOCH_KEYS if k not in entry]
        if missing:
            raise ValueError(f"{path}: history[{i}] lacks {missing}; expected {list(EPOCH_KEYS)}")
    return metrics


def read_benchmark(path):
    """One Snakemake benchmark file as a dict: seconds and max_rss (MiB); None where not measured.

    Snakemake writes a TSV with a header (`s`, `h:m:s`, `max_rss`, ...) and one
    row per repeat; we take the first row. Values it could not measure are
    written as `-` or `NA`.
    """
    import pandas as pd

    table = pd.read_csv(path, sep="\t", na_values=["-", "NA", ""])
    if "s" not in table.columns or table.empty:
        raise ValueError(f"{path}: not a Snakemake benchmark file (no `s` column or no rows)")
    row = table.iloc[0]

    def value(column):
        if column not in table.columns or pd.isna(row[column]):
            return None
        return float(row[column])

    return {"seconds": value("s"), "max_rss_mb": value("max_rss")}


def training_seconds(metrics):
    """Total training time of a model: `train_seconds`, else the sum of epoch times."""
    if metrics.get("train_seconds") is not None:
        return float(metrics["train_seconds"])
    return float(sum(e.get("seconds") or 0 for e in metrics["history"]))


def ratings_per_second(metrics):
    """Median training throughput over epochs (the first epoch includes warm-up), or None."""
    rates = [e.get("ratings_per_s") for e in metrics["history"] if e.get("ratings_per_s")]
    return float(np.median(rates)) if rates else None
