"""Seeded train/validation split of the indexed ratings.

The algorithm is part of the data contract, so that anyone can reproduce a
split from the seed alone: ``perm = numpy.random.default_rng(seed)
.permutation(n_rows)``; the first ``round(n_rows * val_fraction)`` positions of
``perm`` are validation rows; both outputs keep the original row order.
A random row split (not per user) can put a user or movie in validation that
training never saw; `split_ratings` counts those so reports can say how often
a model had to fall back on biases alone.
"""

import logging
import numbers

import numpy as np
import pyarrow.parquet as pq

from movierec import atomic

log = logging.getLogger(__name__)


def split_indices(n_rows, seed, val_fraction):
    """Sorted row indices of the validation and training sets.

    Raises
    ------
    ValueError
        If the seed is not a non-negative integer, `val_fraction` is not in
        (0, 1), or either side would be empty.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"split seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, numbers.Real)
        or not 0 < val_fraction < 1
    ):
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    n_val = round(n_rows * val_fraction)
    if n_val == 0 or n_val == n_rows:
        raise ValueError(
            f"val_fraction={val_fraction} of {n_rows} rows leaves "
            f"{'no validation' if n_val == 0 else 'no training'} rows; "
            "expected both sides non-empty"
        )
    perm = np.random.default_rng(int(seed)).permutation(n_rows)
    is_val = np.zeros(n_rows, dtype=bool)
    is_val[perm[:n_val]] = True
    return np.flatnonzero(is_val), np.flatnonzero(~is_val)


def _unseen(train_ids, val_ids):
    """Distinct validation ids absent from training, and the rows holding them."""
    rows = ~np.isin(val_ids, train_ids)
    return int(len(np.unique(val_ids[rows]))), int(rows.sum())


def split_ratings(ratings_path, seed, val_fraction, train_out, val_out, summary_out):
    """Split `ratings_path` (Parquet) into training and validation files.

    Parameters
    ----------
    ratings_path : path
        ``ratings.parquet`` with at least ``user`` and ``movie`` columns; every
        column is carried over unchanged (same schema in both outputs).
    seed : int
        Seed of the permutation (the only source of randomness).
    val_fraction : float
        Share of rows held out, in (0, 1).
    train_out, val_out : path
        Parquet outputs, rows in the input's order.
    summary_out : path
        JSON with n_ratings, n_train, n_val, seed, val_fraction,
        val_unseen_users, val_unseen_movies, val_rows_with_unseen_user and
        val_rows_with_unseen_movie.

    Returns
    -------
    dict
        The summary written to `summary_out`.

    All three outputs are written atomically, and only after every check, so
    bad input leaves none of them behind.
    """
    table = pq.read_table(ratings_path)
    missing = [c for c in ("user", "movie") if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{ratings_path}: missing column(s) {missing}; expected user and movie "
            f"among {table.column_names}"
        )
    if table.num_rows == 0:
        raise ValueError(f"{ratings_path}: no rating rows; expected at least two")
    val_idx, train_idx = split_indices(table.num_rows, seed, val_fraction)
    train, val = table.take(train_idx), table.take(val_idx)
    summary = {
        "n_ratings": table.num_rows,
        "n_train": train.num_rows,
        "n_val": val.num_rows,
        "seed": int(seed),
        "val_fraction": float(val_fraction),
    }
    for side in ("user", "movie"):
        ids_train = train.column(side).to_numpy()
        ids_val = val.column(side).to_numpy()
        summary[f"val_unseen_{side}s"], summary[f"val_rows_with_unseen_{side}"] = _unseen(
            ids_train, ids_val
        )
    with atomic.atomic_path(train_out) as tmp_train, atomic.atomic_path(val_out) as tmp_val:
        pq.write_table(train, tmp_train)
        pq.write_table(val, tmp_val)
    atomic.write_json(summary_out, summary)
    log.info("split %s: %s", ratings_path, summary)
    return summary
