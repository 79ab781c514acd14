"""Original ids to contiguous int32 codes, written to ratings.parquet while coding.

`Vocabulary` finds a column's distinct ids (a counting pass when they are
dense, a sort otherwise) and codes chunks of it; `code_and_write` codes every
batch and streams ratings.parquet on a background thread for as long as the
(user, movie) pairs arrive strictly increasing. This is the speed-critical
part of index_ratings, apart from its checks and its metadata join.
"""

import queue
import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from movierec.arrays import numpy_chunks, numpy_view, to_arrow, to_numpy
from movierec.index_schema import RATINGS_PARQUET, RATINGS_SCHEMA


class Vocabulary:
    """The distinct ids of an id column, sorted, with counts and a way to code chunks.

    Dense ids (their range within a few times the row count) are counted with
    `np.bincount` over pyarrow's chunks, linear and without copying the
    column, and coded through a lookup table; sparse ids are sorted (not
    np.unique: in numpy 2.4 its hash-based path is ~50x slower than a sort)
    and coded by binary search.
    """

    def __init__(self, column):
        low, high = (value.as_py() for value in pc.min_max(column).values())
        n = len(column)
        self._lookup = None
        if high - low < 4 * n + (1 << 20):
            self._offset = min(low, 0)  # ids >= 0 index the table directly
            counts = np.zeros(high - self._offset + 1, dtype=np.int64)
            for _, values in numpy_chunks(column):
                counts += np.bincount(self._shift(values), minlength=len(counts))
            present = np.flatnonzero(counts)
            self._lookup = np.zeros(len(counts), dtype=np.int32)
            self._lookup[present] = np.arange(len(present), dtype=np.int32)
            self.ids, self.counts = present + self._offset, counts[present]
        else:
            values = np.sort(to_numpy(column))
            starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
            self.ids = values[starts]
            self.counts = np.diff(np.append(starts, n))

    def _shift(self, values):
        return values - self._offset if self._offset else values

    def code(self, values, out):
        """Write the codes of `values` (ids of this column) into `out` (int32)."""
        if self._lookup is not None:
            np.take(self._lookup, self._shift(values), out=out)  # releases the GIL, unlike []
        else:
            out[:] = np.searchsorted(self.ids, values)


@dataclass
class _Coded:
    """What `code_and_write` returns: codes, per-movie rating sums, whether it wrote."""

    user: np.ndarray
    movie: np.ndarray
    rating_sums: np.ndarray
    written: bool


def code_and_write(table, users, movies, path):
    """Code every batch; stream ratings.parquet to `path` while pairs stay increasing.

    Returns the full code arrays either way. `written` is False when a batch
    broke the (user, movie) order: the caller then checks duplicates by
    sorting and writes the file itself (the partial file is overwritten).
    """
    n = table.num_rows
    user = np.empty(n, dtype=np.int32)
    movie = np.empty(n, dtype=np.int32)
    rating_sums = np.zeros(len(movies.ids))
    n_movies = np.int64(len(movies.ids))
    increasing, last_key = True, -1
    with _BackgroundWriter(path, RATINGS_SCHEMA, RATINGS_PARQUET) as writer:
        start = 0
        for batch in table.to_batches():
            stop = start + batch.num_rows
            if stop == start:
                continue
            u, m = user[start:stop], movie[start:stop]
            users.code(numpy_view(batch.column("userId")), out=u)
            movies.code(numpy_view(batch.column("movieId")), out=m)
            rating = batch.column("rating")
            rating_sums += np.bincount(m, weights=numpy_view(rating), minlength=len(rating_sums))
            if increasing:
                key = u.astype(np.int64)
                key *= n_movies
                key += m
                increasing = bool(key[0] > last_key and np.all(key[1:] > key[:-1]))
                last_key = key[-1]
                if increasing:
                    names = batch.schema.names
                    timestamp = (
                        batch.column("timestamp")
                        if "timestamp" in names
                        else pa.nulls(batch.num_rows, pa.int64())
                    )
                    writer.put(
                        pa.record_batch(
                            [to_arrow(u), to_arrow(m), rating, timestamp], schema=RATINGS_SCHEMA
                        )
                    )
                else:
                    writer.cancel()
            start = stop
    return _Coded(user, movie, rating_sums, written=increasing)


class _BackgroundWriter:
    """A Parquet writer on its own thread, fed record batches through a small queue.

    Parquet encoding and the disk write run in C++ without the GIL, so they
    overlap with the numpy coding of the next batch on the other core.
    `cancel()` stops writing (the file is then incomplete, for the caller to
    overwrite); errors of the writer are raised on exit.
    """

    def __init__(self, path, schema, options):
        self._queue = queue.Queue(maxsize=4)
        self._writer = pq.ParquetWriter(path, schema, **options)
        self._error = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def put(self, batch):
        self._queue.put(batch)

    def cancel(self):
        self._cancelled = True

    def _run(self):
        while (batch := self._queue.get()) is not None:
            if self._error is None and not self._cancelled:
                try:
                    self._writer.write_batch(batch)
                except BaseException as err:  # noqa: BLE001 - re-raised in __exit__
                    self._error = err
        try:
            self._writer.close()
        except BaseException as err:  # noqa: BLE001
            self._error = self._error or err

    def __exit__(self, *exc):
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error
        return False


def rating_sums(movie, rating, n_movies):
    sums = np.zeros(n_movies)
    for start, values in numpy_chunks(rating):
        sums += np.bincount(movie[start : start + len(values)], weights=values, minlength=n_movies)
    return sums
