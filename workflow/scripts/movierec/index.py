"""Index a release's ratings: original ids -> contiguous int32 codes, to Parquet.

The 2017 notebook kept ids in Python dicts built row by row. Here the file is
parsed once by pyarrow (see `movierec.formats`) and coded with numpy over
pyarrow's own chunks, without copying the columns: a counting pass
(`np.bincount`) finds the ids present when they are dense enough (every
MovieLens release), else a sort does. Index order is the sorted original id,
so the same release always gives the same codes.

ratings.parquet is written on a background thread while the next chunk is
coded, as long as the (user, movie) pairs arrive strictly increasing (the
GroupLens files are sorted by user, then movie), which also proves there are
no duplicates. Any other order falls back to a sort-based duplicate check and
a plain write.

The coding and the streaming write are in `movierec.index_codes`, the
output schemas in `movierec.index_schema`; this module reads, checks and joins.

Everything is checked before any output exists under its name: the three
outputs are written under temporary names and renamed together at the end,
so a bad file leaves no output behind.
"""

import contextlib
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
from movierec.index_codes import Vocabulary, code_and_write, rating_sums
from movierec.index_schema import MOVIES_SCHEMA, RATINGS_PARQUET, RATINGS_SCHEMA, USERS_SCHEMA

log = logging.getLogger(__name__)

# A trailing "(1995)" or "(2006-2007)" (hyphen or en dash), spaces allowed after it.
YEAR = r"\((?P<year>\d{4})(?:\s*[-–]\s*\d{4})?\)\s*$"  # RE2 syntax (pyarrow)


def index_ratings(raw_dir, spec, duplicates, ratings_out, users_out, movies_out):
    """Read a release's ratings and movies; write the indexed Parquet files.

    Parameters
    ----------
    raw_dir : str or Path
        The extracted release (`results/{dataset}/raw`).
    spec : dict
        ``{format, ratings, movies, rating_scale}`` as `index_spec()` in
        common.smk gives it: the release format (see `movierec.formats`), the
        two member paths relative to `raw_dir` (`movies` may be None), and the
        inclusive ``[low, high]`` range every rating must lie in.
    duplicates : {"error", "keep_latest"}
        What a repeated (user, movie) pair is: an error naming both lines, or
        resolved by keeping the row with the greatest timestamp (the later
        line on a tie). keep_latest needs timestamps.
    ratings_out, users_out, movies_out : str or Path
        ratings.parquet (user, movie, rating, timestamp; file order),
        users.parquet (user, userId, n_ratings) and movies.parquet (movie,
        movieId, title, genres, year, n_ratings, mean_rating), both sorted by
        original id, which is also their index order. Movies with metadata
        but no rating are left out; rated movies without metadata keep a
        null title and genres.

    Raises
    ------
    ValueError
        Naming the file, the line and the value, for: a missing member,
        missing columns, non-numeric ids, empty or NaN ratings, ratings
        outside `rating_scale`, an empty file, duplicate pairs.
    """
    started = time.perf_counter()
    fmt, ratings_path, movies_path, (low, high) = _check_spec(raw_dir, spec)

    tick = time.perf_counter()
    table, source = formats.read_ratings(fmt, ratings_path)
    log.info(
        "read %d rating rows from %s in %.2fs (%d pyarrow threads)",
        table.num_rows,
        ratings_path,
        time.perf_counter() - tick,
        pa.cpu_count(),
    )
    if table.num_rows == 0:
        raise ValueError(
            f"{ratings_path}, line {1 + int(source.header)}: no ratings in the file; "
            f"expected {source.columns} rows"
        )
    _check_values(table, source, low, high)
    meta = _read_metadata(fmt, movies_path)  # small: fail early on a bad movies file

    with contextlib.ExitStack() as stack:  # rename all three only when all are written
        ratings_tmp = stack.enter_context(atomic_path(ratings_out))
        users_tmp = stack.enter_context(atomic_path(users_out))
        movies_tmp = stack.enter_context(atomic_path(movies_out))

        tick = time.perf_counter()
        users = Vocabulary(table["userId"])
        movies = Vocabulary(table["movieId"])
        coded = code_and_write(table, users, movies, ratings_tmp)
        rating = table["rating"]
        timestamp = table["timestamp"] if "timestamp" in table.column_names else None
        del table
        if coded.written:
            log.info(
                "indexed and wrote %d ratings (%d users, %d movies) in %.2fs",
                len(coded.user),
                len(users.ids),
                len(movies.ids),
                time.perf_counter() - tick,
            )
        else:
            user, movie = coded.user, coded.movie
            keep = _duplicates(
                user, movie, len(movies.ids), timestamp, source, duplicates, users.ids, movies.ids
            )
            if keep is not None:
                user, movie = user[keep], movie[keep]
                rating, timestamp = rating.filter(to_arrow(keep)), timestamp.filter(to_arrow(keep))
                users.counts = np.bincount(user, minlength=len(users.ids))
                movies.counts = np.bincount(movie, minlength=len(movies.ids))
                coded.rating_sums = rating_sums(movie, rating, len(movies.ids))
            columns = [
                to_arrow(user),
                to_arrow(movie),
                rating,
                timestamp if timestamp is not None else pa.nulls(len(user), pa.int64()),
            ]
            pq.write_table(pa.table(columns, schema=RATINGS_SCHEMA), ratings_tmp, **RATINGS_PARQUET)
            log.info(
                "indexed and wrote %d ratings (%d users, %d movies; rows not sorted by "
                "user, movie) in %.2fs",
                len(user),
                len(users.ids),
                len(movies.ids),
                time.perf_counter() - tick,
            )

        tick = time.perf_counter()
        titles, genres = _join_metadata(meta, movies_path, movies.ids, movies.counts)
        years = pc.cast(pc.struct_field(pc.extract_regex(titles, YEAR), "year"), pa.int32())
        users_table = pa.Table.from_arrays(
            [
                to_arrow(np.arange(len(users.ids), dtype=np.int32)),
                to_arrow(users.ids),
                to_arrow(users.counts),
            ],
            schema=USERS_SCHEMA,
        )
        movies_table = pa.Table.from_arrays(
            [
                to_arrow(np.arange(len(movies.ids), dtype=np.int32)),
                to_arrow(movies.ids),
                titles,
                genres,
                years,
                to_arrow(movies.counts),
                to_arrow(coded.rating_sums / movies.counts),
            ],
            schema=MOVIES_SCHEMA,
        )
        pq.write_table(users_table, users_tmp)
        pq.write_table(movies_table, movies_tmp)
        log.info(
            "joined movie metadata, wrote users and movies in %.2fs", time.perf_counter() - tick
        )
    log.info(
        "index_ratings done in %.2fs: %s, %s, %s",
        time.perf_counter() - started,
        ratings_out,
        users_out,
        movies_out,
    )


def _check_spec(raw_dir, spec):
    """Validate the spec; return format, the two member paths and the rating scale."""
    missing = [key for key in ("format", "ratings", "rating_scale") if key not in spec]
    if missing:
        raise ValueError(f"index spec {spec!r} lacks {', '.join(missing)}")
    fmt = spec["format"]
    if fmt not in formats.FORMATS:
        raise ValueError(
            f"index spec: unknown format {fmt!r}; expected one of {', '.join(formats.FORMATS)}"
        )
    scale = spec["rating_scale"]
    if len(scale) != 2 or not float(scale[0]) < float(scale[1]):
        raise ValueError(f"index spec: rating_scale {scale!r} is not [low, high] with low < high")
    raw_dir = Path(raw_dir)
    ratings_path = _member(raw_dir, spec["ratings"], "ratings")
    movies_path = _member(raw_dir, spec["movies"], "movies") if spec.get("movies") else None
    return fmt, ratings_path, movies_path, (float(scale[0]), float(scale[1]))


def _member(raw_dir, name, what):
    path = raw_dir / name
    if not path.is_file():
        present = (
            sorted(str(p.relative_to(raw_dir)) for p in raw_dir.rglob("*") if p.is_file())
            if raw_dir.is_dir()
            else []
        )
        shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
        raise ValueError(
            f"{path}: the {what} file of this release is missing; expected {name!r} under "
            f"{raw_dir} (found: {shown or 'nothing'})"
        )
    return path


def _check_values(table, source, low, high):
    """Reject empty ids, empty/NaN ratings and ratings off the scale.

    The checks are whole-column reductions in pyarrow; a row is looked for
    only when one of them fails.
    """
    for name in table.column_names:
        column = table[name]
        if column.null_count:
            row = formats.first_true(pc.is_null(column))
            what = {
                "rating": f"a rating in [{low:g}, {high:g}]",
                "timestamp": "an integer timestamp",
            }.get(name, f"an integer {name}")
            formats.fail(source, row, f"{name} is empty or NaN", expected=what)
    rating = table["rating"]
    lowest, highest = pc.min_max(rating).values()
    if lowest.as_py() < low or highest.as_py() > high or pc.any(pc.is_nan(rating)).as_py():
        outside = pc.or_(pc.or_(pc.less(rating, low), pc.greater(rating, high)), pc.is_nan(rating))
        row = formats.first_true(outside)
        formats.fail(
            source,
            row,
            f"rating {rating[row].as_py():g} is outside the rating scale",
            expected=f"a rating in [{low:g}, {high:g}]",
        )


def _duplicates(user, movie, n_movies, timestamp, source, policy, user_ids, movie_ids):
    """Check that no (user, movie) pair repeats; return a keep-mask, or None if all stay.

    GroupLens files are sorted by user then movie, so a strictly increasing
    pair key proves there are no duplicates in one linear pass; otherwise the
    keys are sorted.
    """
    key = user.astype(np.int64) * n_movies + movie
    if np.all(key[1:] > key[:-1]):
        return None
    sorted_key = np.sort(key)  # unstable sort is several times faster than argsort
    if np.all(sorted_key[1:] != sorted_key[:-1]):
        return None
    order = np.argsort(key, kind="stable")  # only now: we need the lines
    sorted_key = key[order]
    repeat = np.flatnonzero(sorted_key[1:] == sorted_key[:-1]) + 1  # positions in `order`
    later = int(order[repeat].min())  # the first line in the file that repeats a pair
    first = int(order[np.searchsorted(sorted_key, key[later])])
    pair = f"(userId, movieId) = ({user_ids[user[later]]}, {movie_ids[movie[later]]})"
    if policy == "error":
        formats.fail(
            source,
            later,
            f"{pair} repeats line {source.line_of(first)}",
            expected="each (user, movie) pair once, or index.duplicates: keep_latest "
            "to keep the latest rating of each",
        )
    if timestamp is None:
        formats.fail(
            source,
            later,
            f"{pair} repeats line {source.line_of(first)}, and with no timestamps in the "
            "file index.duplicates: keep_latest cannot tell which is latest",
            expected="each (user, movie) pair once",
        )
    # Order by pair, then timestamp, then line; the last row of each pair wins.
    order = np.lexsort((np.arange(len(key)), to_numpy(timestamp), key))
    sorted_key = key[order]
    last = np.ones(len(key), dtype=bool)
    last[:-1] = sorted_key[1:] != sorted_key[:-1]
    keep = np.zeros(len(key), dtype=bool)
    keep[order[last]] = True
    log.warning(
        "dropped %d repeated (user, movie) ratings, keeping the latest of each",
        len(key) - int(keep.sum()),
    )
    return keep


def _read_metadata(fmt, movies_path):
    """The movies file as a table with unique, non-null ids (None without a movies file)."""
    if movies_path is None:
        return None
    meta, source = formats.read_movies(fmt, movies_path)
    if meta.num_rows == 0:
        raise ValueError(f"{movies_path}: no movies in the file; expected {source.columns} rows")
    meta_ids = meta["movieId"]
    if meta_ids.null_count:
        formats.fail(source, formats.first_true(pc.is_null(meta_ids)), "movieId is empty")
    meta_ids = to_numpy(meta_ids)
    order = np.argsort(meta_ids, kind="stable")
    sorted_ids = meta_ids[order]
    repeated = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if repeated.size:
        later = int(order[repeated + 1].min())
        first = int(order[np.searchsorted(sorted_ids, meta_ids[later])])
        formats.fail(
            source,
            later,
            f"movieId {meta_ids[later]} repeats line {source.line_of(first)}",
            expected="each movieId once",
        )
    return meta


def _join_metadata(meta, movies_path, movie_ids, movie_counts):
    """Titles and genres of the rated movies, aligned with `movie_ids`; log what's missing."""
    n = len(movie_ids)
    if meta is None:
        log.warning("no movies file: all %d titles and genres are null", n)
        return pa.nulls(n, pa.string()), pa.nulls(n, pa.string())
    meta_ids = to_numpy(meta["movieId"])
    order = np.argsort(meta_ids)
    sorted_ids = meta_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, movie_ids), len(sorted_ids) - 1)
    found = sorted_ids[pos] == movie_ids
    rows = to_arrow(order[pos], valid=found)
    titles = meta["title"].take(rows).combine_chunks()
    genres = meta["genres"].take(rows).combine_chunks()
    unrated = len(sorted_ids) - int(found.sum())
    if unrated:
        log.info("left out %d movies of %s that have no rating", unrated, movies_path)
    if not found.all():
        log.warning(
            "%d ratings of %d movies have no row in %s (title and genres null), e.g. movieId %s",
            int(movie_counts[~found].sum()),
            int((~found).sum()),
            movies_path,
            movie_ids[~found][:5].tolist(),
        )
    return titles, genres
