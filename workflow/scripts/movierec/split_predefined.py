"""Train and test files shipped inside a release (ml-100k's u1.base/u1.test) as split parts.

A predefined scheme does not draw its parts: it reads the release's own files
in the release's format, codes their ids through the index's id maps, and
checks them line by line (unknown ids, repeated pairs, pairs shared between
train and test), naming the file and line. Only validation is drawn, from the
train file. Separate because none of this applies to the other methods.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec import formats
from movierec.arrays import to_arrow, to_numpy
from movierec.split_methods import require_parts


def predefined_parts(scheme, schema, raw_dir, release_format, users_path, movies_path, where):
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
    require_parts(
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
