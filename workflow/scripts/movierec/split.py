"""Split the indexed ratings into train, validation and test by a named scheme.

Three parts, three jobs: train fits, validation chooses (epochs, early
stopping, tuning), test is read once at the end. A scheme is a config entry
(``splits:`` in the config schema); the algorithm of each method is part of the
data contract, so anyone can rebuild a split from the scheme alone:

``random`` (``seed``, ``val_fraction``, ``test_fraction``)
    ``perm = numpy.random.default_rng(seed).permutation(n)``; the first
    ``round(n * test_fraction)`` positions of ``perm`` are test rows, the next
    ``round(n * val_fraction)`` validation rows, the rest training rows
    (``round`` is Python's, halves to even).
``temporal``, ``by: global`` (``val_fraction``, ``test_fraction``)
    Order the rows by (timestamp, row index); the last
    ``round(n * test_fraction)`` are test and the ``round(n * val_fraction)``
    before them validation. Rows that share a boundary's timestamp all go to
    the *later* part, so a cutoff is simply "every rating at or after this
    second": test is ``timestamp >= test_cutoff``, validation
    ``val_cutoff <= timestamp < test_cutoff``, train ``timestamp < val_cutoff``,
    where each cutoff is the timestamp at that boundary's position. Every
    training rating is then strictly earlier than every validation rating,
    and every validation rating strictly earlier than every test rating; the
    parts can come out a little larger (test, validation) or smaller (train)
    than the fractions say, by the ties at the two cutoffs.
``temporal``, ``by: user`` (``n_val``, ``n_test``)
    Order each user's ratings by (timestamp, row index). A user with ``c``
    ratings keeps at least one in train: test takes the user's last
    ``min(n_test, c - 1)`` ratings and validation the
    ``min(n_val, c - 1 - that)`` before them, so a user short of ratings
    gives up validation rows first and test rows only when no validation
    rows are left; a user with one rating is training only. Test is thus the
    same whatever ``n_val`` is. Users' clocks are not aligned, so a training
    rating of one user can be later than a test rating of another:
    ``leak_free`` in the summary says whether that happened.
``kfold`` (``k``, ``seed``, ``val_fraction``; one split per ``fold`` in 1..k)
    ``perm = default_rng(seed).permutation(n)`` cut into ``k`` contiguous,
    nearly equal parts by ``numpy.array_split``; part ``fold - 1`` is test, so
    the test parts of folds 1..k partition the ratings. Validation is the
    first ``round(n_rest * val_fraction)`` rows of the remaining positions of
    ``perm`` in cyclic order starting after the test part (parts fold, fold+1,
    ..., k-1, 0, ...), so it is a seeded uniform sample of the rest without a
    second generator; the rest is train.
``predefined`` (``train``, ``test``, ``val_fraction``, ``seed``)
    Train and test are files shipped inside the release (ml-100k's
    ``u1.base``/``u1.test``), read in the release's format and coded through
    the index's id maps. Validation is carved out of the train file: the
    first ``round(n_base * val_fraction)`` positions of
    ``default_rng(seed).permutation(n_base)``. Every row of both files lands
    in exactly one part; the files' rows need not be all of ratings.parquet.

Every part keeps the input's schema and its rows in input (or file) order, and
must be non-empty. The summary (split.json) is an audit: sizes, how many
validation/test users and movies training never saw (a model falls back on
biases alone for those), and the timestamp bounds of the parts with
``leak_free``, measured from the data rather than assumed from the method.
All outputs are written under temporary names, only after every check, and
renamed together, so bad input leaves none of them behind.

The label functions of the methods are in `movierec.split_methods`, the
reading and checking of a release's own files in `movierec.split_predefined`.
"""

import contextlib
import json
import logging
import time

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec import formats
from movierec.arrays import to_arrow, to_numpy
from movierec.atomic import atomic_path
from movierec.index_schema import RATINGS_PARQUET, RATINGS_SCHEMA
from movierec.split_methods import (
    TEST,
    TRAIN,
    VAL,
    kfold_parts,
    random_parts,
    require_parts,
    temporal_global_parts,
    temporal_user_parts,
)
from movierec.split_predefined import predefined_parts

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


def split_ratings(
    ratings_path,
    scheme,
    *,
    dataset,
    train_out,
    val_out,
    test_out,
    summary_out,
    fold=None,
    raw_dir=None,
    release_format=None,
    users_path=None,
    movies_path=None,
):
    """Write the train, validation and test parts of `ratings_path` under `scheme`.

    Parameters
    ----------
    ratings_path : path
        ``ratings.parquet`` of the index (user, movie, rating, timestamp); its
        schema is the schema of every output.
    scheme : dict
        A split scheme as the config schema validated it, ``method`` plus that
        method's settings (see the module docstring for what each does).
    dataset : str
        The dataset's name, for error messages.
    train_out, val_out, test_out : path
        Parquet outputs, rows in the input's order (predefined: file order).
    summary_out : path
        split.json: ``dataset``, ``method``, ``scheme`` (the settings as given),
        ``fold``, ``n_ratings``, ``n_train``, ``n_val``, ``n_test``; for
        ``part`` in val and test ``{part}_unseen_users``,
        ``{part}_unseen_movies`` (distinct ids absent from train),
        ``{part}_rows_with_unseen_user``, ``{part}_rows_with_unseen_movie``;
        ``val_cutoff`` and ``test_cutoff`` (temporal global, else null),
        ``train_max_timestamp``, ``val_min_timestamp``, ``val_max_timestamp``,
        ``test_min_timestamp`` and ``leak_free`` (no training rating later than
        a validation or test one), null when the timestamps are not known.
    fold : int, optional
        The fold (1..k) of a kfold scheme; None for every other method.
    raw_dir, release_format, users_path, movies_path : optional
        Predefined schemes only: the extracted release the file names are
        relative to, its format (see `movierec.formats`), and the index's
        users.parquet and movies.parquet that turn release ids into codes.

    Returns
    -------
    dict
        The summary written to `summary_out`.

    Raises
    ------
    ValueError
        Naming the dataset (and for predefined files, the file and line) when
        a part would be empty, a temporal scheme meets a release without
        timestamps, `fold` does not fit the scheme, or a predefined file holds
        an id the index lacks, repeats a (user, movie) pair, or shares one
        between test and train.
    """
    started = time.perf_counter()
    method = scheme["method"]
    where = f"dataset {dataset!r}, split scheme {scheme}"
    where += "" if fold is None else f" fold {fold}"
    _check_fold(method, scheme, fold, where)
    cutoffs = (None, None)
    if method == "predefined":
        schema = pq.read_schema(ratings_path)
        if schema.names != RATINGS_SCHEMA.names:
            raise ValueError(
                f"{ratings_path}: columns {schema.names}; expected {RATINGS_SCHEMA.names}"
            )
        n_ratings = pq.read_metadata(ratings_path).num_rows
        parts = predefined_parts(
            scheme, schema, raw_dir, release_format, users_path, movies_path, where
        )
    else:
        table = _read(ratings_path)
        n_ratings = table.num_rows
        label, cutoffs = _labels(table, scheme, fold, where, ratings_path)
        parts = [table.filter(to_arrow(label == k)) for k in (TRAIN, VAL, TEST)]
        del table, label
    summary = {
        "dataset": dataset,
        "method": method,
        "scheme": dict(scheme),
        "fold": fold,
        "n_ratings": n_ratings,
        **{f"n_{name}": part.num_rows for name, part in zip(PARTS, parts, strict=True)},
        **_unseen(*parts),
        **_time_bounds(*parts, *cutoffs),
    }
    options = RATINGS_PARQUET if parts[0].schema.names == RATINGS_SCHEMA.names else {}
    with contextlib.ExitStack() as stack:  # all four are renamed only when all are written
        tmps = [
            stack.enter_context(atomic_path(path))
            for path in (train_out, val_out, test_out, summary_out)
        ]
        for part, tmp in zip(parts, tmps, strict=False):
            pq.write_table(part, tmp, **options)
        tmps[3].write_text(json.dumps(summary, indent=2) + "\n")
    log.info("split %s in %.2fs: %s", ratings_path, time.perf_counter() - started, summary)
    return summary


def _check_fold(method, scheme, fold, where):
    if method == "kfold":
        if fold is None or not 1 <= fold <= scheme["k"]:
            raise ValueError(f"{where}: fold {fold!r} is not one of 1..{scheme['k']}")
    elif fold is not None:
        raise ValueError(f"{where}: a fold ({fold!r}) belongs to kfold schemes only")


def _read(ratings_path):
    table = pq.read_table(ratings_path)
    missing = [c for c in ("user", "movie") if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{ratings_path}: missing column(s) {missing}; expected user and movie "
            f"among {table.column_names}"
        )
    if table.num_rows == 0:
        raise ValueError(f"{ratings_path}: no rating rows; expected at least three")
    return table


def _labels(table, scheme, fold, where, ratings_path):
    """Part label of every row of `table`, and the (val, test) cutoffs or Nones."""
    n = table.num_rows
    method = scheme["method"]
    if method == "random":
        n_test, n_val = round(n * scheme["test_fraction"]), round(n * scheme["val_fraction"])
        require_parts(
            where, (n - n_test - n_val, n_val, n_test), f"round(n * fraction) of {n} rows"
        )
        label = random_parts(n, scheme["seed"], scheme["val_fraction"], scheme["test_fraction"])
        return label, (None, None)
    if method == "kfold":
        k = scheme["k"]
        n_test = n // k + (fold - 1 < n % k)
        n_val = round((n - n_test) * scheme["val_fraction"])
        require_parts(
            where,
            (n - n_test - n_val, n_val, n_test),
            f"{n} rows in {k} folds, validation round(n_rest * val_fraction)",
        )
        return kfold_parts(n, k, fold, scheme["seed"], scheme["val_fraction"]), (None, None)
    if method != "temporal":
        raise ValueError(f"{where}: unknown split method {method!r}")
    timestamp = _timestamps(table, ratings_path, where)
    if scheme["by"] == "global":
        n_test, n_val = round(n * scheme["test_fraction"]), round(n * scheme["val_fraction"])
        require_parts(
            where, (n - n_test - n_val, n_val, n_test), f"round(n * fraction) of {n} rows"
        )
        label, val_cutoff, test_cutoff = temporal_global_parts(timestamp, n_val, n_test)
        require_parts(
            where,
            np.bincount(label, minlength=3),
            f"rows tied on a cutoff go to the later part; val_cutoff {val_cutoff}, "
            f"test_cutoff {test_cutoff}",
        )
        return label, (val_cutoff, test_cutoff)
    user = to_numpy(table["user"])
    label = temporal_user_parts(user, timestamp, scheme["n_val"], scheme["n_test"])
    require_parts(
        where,
        np.bincount(label, minlength=3),
        "every user keeps one rating in train and gives up validation rows before test rows",
    )
    return label, (None, None)


def _timestamps(table, ratings_path, where):
    """The timestamp column as numpy, or the error a temporal split without them is."""
    column = table["timestamp"] if "timestamp" in table.column_names else None
    if column is None or column.null_count == len(column):
        what = "no timestamp column" if column is None else "only null timestamps"
        raise ValueError(
            f"{where}: temporal splits need timestamps, and {ratings_path} has {what} "
            "(the release has none); use a random, kfold or predefined scheme"
        )
    if column.null_count:
        row = formats.first_true(pc.is_null(column))
        raise ValueError(
            f"{where}: temporal splits need a timestamp on every rating; {ratings_path} "
            f"lacks {column.null_count} of {len(column)}, e.g. row {row}"
        )
    return to_numpy(column)


def _unseen(train, val, test):
    """For val and test: distinct users/movies absent from train, and the rows holding them."""
    out = {}
    for side in ("user", "movie"):
        seen_ids = to_numpy(train[side])
        parts = {"val": to_numpy(val[side]), "test": to_numpy(test[side])}
        size = 1 + max(int(ids.max()) for ids in (seen_ids, *parts.values()) if len(ids))
        seen = np.bincount(seen_ids, minlength=size) > 0
        for name, ids in parts.items():
            new = ids[~seen[ids]]
            out[f"{name}_unseen_{side}s"] = int(np.count_nonzero(np.bincount(new, minlength=1)))
            out[f"{name}_rows_with_unseen_{side}"] = len(new)
    return out


def _time_bounds(train, val, test, val_cutoff, test_cutoff):
    """Timestamp bounds of the parts and whether training saw the future (null if unknown)."""
    bounds = {}
    for name, part in zip(PARTS, (train, val, test), strict=True):
        column = part["timestamp"] if "timestamp" in part.column_names else None
        known = column is not None and column.null_count == 0
        low, high = pc.min_max(column).values() if known else (None, None)
        bounds[name] = (low.as_py(), high.as_py()) if known else (None, None)
    known = all(low is not None for low, _ in bounds.values())
    return {
        "val_cutoff": val_cutoff,
        "test_cutoff": test_cutoff,
        "train_max_timestamp": bounds["train"][1],
        "val_min_timestamp": bounds["val"][0],
        "val_max_timestamp": bounds["val"][1],
        "test_min_timestamp": bounds["test"][0],
        "leak_free": (
            bool(bounds["train"][1] <= min(bounds["val"][0], bounds["test"][0])) if known else None
        ),
    }
