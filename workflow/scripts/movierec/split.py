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
"""

import contextlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec import formats
from movierec.arrays import to_arrow, to_numpy
from movierec.atomic import atomic_path
from movierec.index_schema import RATINGS_PARQUET, RATINGS_SCHEMA

log = logging.getLogger(__name__)

TRAIN, VAL, TEST = 0, 1, 2  # part labels, one uint8 per row
PARTS = ("train", "val", "test")
_NAMES = ("train", "validation", "test")  # as messages spell them


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
        parts = _predefined(scheme, schema, raw_dir, release_format, users_path, movies_path, where)
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


def random_parts(n, seed, val_fraction, test_fraction):
    """Part label (TRAIN, VAL, TEST) of each of `n` rows under the random contract."""
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    label = np.zeros(n, dtype=np.uint8)
    label[perm[:n_test]] = TEST
    label[perm[n_test : n_test + n_val]] = VAL
    return label


def temporal_global_parts(timestamp, n_val, n_test):
    """Part labels by one pair of time cutoffs; also returns (val_cutoff, test_cutoff).

    Needs ``1 <= n_test``, ``1 <= n_val`` and ``n_val + n_test < len(timestamp)``.
    The cutoffs are order statistics, found by `np.partition` in linear time:
    with ties going to the later part, only the boundary timestamps matter,
    so the full (timestamp, row) sort of the contract never has to be done.
    """
    n = len(timestamp)
    lo, hi = n - n_test - n_val, n - n_test
    bounds = np.partition(timestamp, [lo, hi])
    val_cutoff, test_cutoff = int(bounds[lo]), int(bounds[hi])
    del bounds
    label = np.zeros(n, dtype=np.uint8)
    label[timestamp >= val_cutoff] = VAL
    label[timestamp >= test_cutoff] = TEST
    return label, val_cutoff, test_cutoff


def temporal_user_parts(user, timestamp, n_val, n_test):
    """Part labels from each user's latest ratings (see the module docstring).

    One stable argsort of a combined (user, timestamp) key orders every user's
    ratings by time, ties by row (several times faster than `np.lexsort` on
    25M rows; two stable passes are the fallback when the key does not fit 63
    bits); each user's held-out rows are then the end of its run in that
    order, labelled by a cumulative sum, with no loop over users.
    """
    n = len(user)
    t_min = int(timestamp.min())
    ts_bits = (int(timestamp.max()) - t_min).bit_length()
    if ts_bits + int(user.max()).bit_length() <= 63:
        key = user.astype(np.int64)
        key <<= ts_bits
        key |= timestamp - t_min
        order = np.argsort(key, kind="stable")
        del key
    else:
        order = np.argsort(timestamp, kind="stable")
        order = order[np.argsort(user[order], kind="stable")]
    counts = np.bincount(user)
    spare = np.maximum(counts - 1, 0)  # what a user can give up and keep one in train
    user_test = np.minimum(n_test, spare)
    user_held = user_test + np.minimum(n_val, spare - user_test)
    # In sorted order user u's ratings end at ends[u]: its validation rows start at
    # ends - held, its test rows at ends - test. A step of +1 at each start and -2 at
    # each end, summed, is the label (0 train, 1 val, 2 test) of every sorted position.
    ends = np.cumsum(counts)
    step = np.bincount(
        np.concatenate([ends - user_held, ends - user_test, ends]),
        weights=np.repeat([1.0, 1.0, -2.0], len(ends)),
        minlength=n + 1,
    )
    label = np.empty(n, dtype=np.uint8)
    label[order] = np.cumsum(step[:n]).astype(np.uint8)
    return label


def kfold_parts(n, k, fold, seed, val_fraction):
    """Part labels of fold `fold` (1..k) of the kfold contract."""
    perm = np.random.default_rng(seed).permutation(n)
    pieces = np.array_split(perm, k)
    rest = np.concatenate(pieces[fold:] + pieces[: fold - 1])  # cyclic, after the test part
    label = np.zeros(n, dtype=np.uint8)
    label[pieces[fold - 1]] = TEST
    label[rest[: round(len(rest) * val_fraction)]] = VAL
    return label


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
        _require(where, (n - n_test - n_val, n_val, n_test), f"round(n * fraction) of {n} rows")
        label = random_parts(n, scheme["seed"], scheme["val_fraction"], scheme["test_fraction"])
        return label, (None, None)
    if method == "kfold":
        k = scheme["k"]
        n_test = n // k + (fold - 1 < n % k)
        n_val = round((n - n_test) * scheme["val_fraction"])
        _require(
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
        _require(where, (n - n_test - n_val, n_val, n_test), f"round(n * fraction) of {n} rows")
        label, val_cutoff, test_cutoff = temporal_global_parts(timestamp, n_val, n_test)
        _require(
            where,
            np.bincount(label, minlength=3),
            f"rows tied on a cutoff go to the later part; val_cutoff {val_cutoff}, "
            f"test_cutoff {test_cutoff}",
        )
        return label, (val_cutoff, test_cutoff)
    user = to_numpy(table["user"])
    label = temporal_user_parts(user, timestamp, scheme["n_val"], scheme["n_test"])
    _require(
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


def _require(where, sizes, why):
    """Raise unless every part (train, val, test sizes) is non-empty."""
    empty = [name for name, size in zip(_NAMES, sizes, strict=True) if size < 1]
    if empty:
        n_train, n_val, n_test = (max(int(size), 0) for size in sizes)
        raise ValueError(
            f"{where}: leaves the {' and '.join(empty)} part empty ({n_train} train, "
            f"{n_val} validation, {n_test} test rows; {why}); expected every part non-empty"
        )


def _predefined(scheme, schema, raw_dir, release_format, users_path, movies_path, where):
    """Train, validation and test tables from the release's own train and test files."""
    needed = {
        "raw_dir": raw_dir,
        "release_format": release_format,
        "users_path": users_path,
        "movies_path": movies_path,
    }
    missing = [name for name, value in needed.items() if value is None]
    if missing:
        raise ValueError(f"{where}: a predefined split needs {', '.join(missing)}")
    users = pq.read_table(users_path, columns=["user", "userId"])
    movies = pq.read_table(movies_path, columns=["movie", "movieId"])
    n_movies = int(pc.max(movies["movie"]).as_py() or 0) + 1  # pair key = user * n_movies + movie
    files = {}
    for key in ("train", "test"):
        path = Path(raw_dir) / scheme[key]
        if not path.is_file():
            raise ValueError(
                f"{where}: {path}: the {key} file of the scheme is missing; expected "
                f"{scheme[key]!r} under {raw_dir}"
            )
        table, source = formats.read_ratings(release_format, path)
        if table.num_rows == 0:
            raise ValueError(f"{where}: {path}: no ratings in the file; expected {source.columns}")
        _no_nulls(table, source)
        user = _code(table, source, "userId", users, "user", users_path)
        movie = _code(table, source, "movieId", movies, "movie", movies_path)
        pair = user.astype(np.int64) * n_movies + movie
        _no_repeats(pair, table, source)
        files[key] = (table, source, user, movie, pair)
    _no_overlap(files["train"], files["test"])

    def build(table, user, movie, keep=None):
        n = table.num_rows
        timestamp = (
            table["timestamp"] if "timestamp" in table.column_names else pa.nulls(n, pa.int64())
        )
        columns = [to_arrow(user), to_arrow(movie), table["rating"], timestamp]
        columns = [pa.chunked_array([c]) if isinstance(c, pa.Array) else c for c in columns]
        out = pa.Table.from_arrays(
            [c.cast(field.type) for c, field in zip(columns, schema, strict=True)], schema=schema
        )
        return out if keep is None else out.filter(to_arrow(keep))

    base, _, base_user, base_movie, _ = files["train"]
    probe, _, probe_user, probe_movie, _ = files["test"]
    n_base = base.num_rows
    n_val = round(n_base * scheme["val_fraction"])
    _require(
        where,
        (n_base - n_val, n_val, probe.num_rows),
        f"validation round(n * val_fraction) of the train file's {n_base} rows",
    )
    in_val = np.zeros(n_base, dtype=bool)
    in_val[np.random.default_rng(scheme["seed"]).permutation(n_base)[:n_val]] = True
    whole = build(base, base_user, base_movie)
    return [
        whole.filter(to_arrow(~in_val)),
        whole.filter(to_arrow(in_val)),
        build(probe, probe_user, probe_movie),
    ]


def _no_nulls(table, source):
    for name in table.column_names:
        column = table[name]
        if column.null_count:
            formats.fail(source, formats.first_true(pc.is_null(column)), f"{name} is empty")


def _code(table, source, id_column, index, code_column, index_path):
    """Codes of a file's release ids through an id map; an unknown id fails with its line."""
    ids = to_numpy(table[id_column])
    known = to_numpy(index[id_column])
    codes = to_numpy(index[code_column])
    order = np.argsort(known)
    sorted_ids = known[order]
    pos = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    found = sorted_ids[pos] == ids if len(sorted_ids) else np.zeros(len(ids), dtype=bool)
    if not found.all():
        row = int(np.flatnonzero(~found)[0])
        formats.fail(
            source,
            row,
            f"{id_column} {ids[row]} is not in the index {index_path}",
            expected=f"a {id_column} of the indexed release",
        )
    return codes[order[pos]]


def _no_repeats(pair, table, source):
    """Fail on the first line that repeats a (user, movie) pair of an earlier line."""
    if np.all(pair[1:] > pair[:-1]):  # the GroupLens order proves it in one pass
        return
    ordered = np.sort(pair)
    if np.all(ordered[1:] != ordered[:-1]):
        return
    order = np.argsort(pair, kind="stable")  # only now: we need the lines
    ordered = pair[order]
    repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    later = int(order[repeat].min())
    first = int(order[np.searchsorted(ordered, pair[later])])
    formats.fail(
        source,
        later,
        f"(userId, movieId) = ({table['userId'][later]}, {table['movieId'][later]}) repeats "
        f"line {source.line_of(first)}",
        expected="each (user, movie) pair once per file",
    )


def _no_overlap(train, test):
    """Fail on the first test line whose (user, movie) pair the train file also holds."""
    base, base_source, *_, base_pair = train
    probe, probe_source, *_, probe_pair = test
    ordered = np.sort(base_pair)
    pos = np.minimum(np.searchsorted(ordered, probe_pair), len(ordered) - 1)
    shared = ordered[pos] == probe_pair
    if shared.any():
        row = int(np.flatnonzero(shared)[0])
        twin = int(np.flatnonzero(base_pair == probe_pair[row])[0])
        formats.fail(
            probe_source,
            row,
            f"(userId, movieId) = ({probe['userId'][row]}, {probe['movieId'][row]}) is also in "
            f"the train file {base_source.path}, line {base_source.line_of(twin)}",
            expected="test pairs that the train file does not hold",
        )


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
