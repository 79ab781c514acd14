"""Parquet and numpy <-> pyarrow without copies and without pandas.

`ChunkedArray.to_numpy` and `pa.array(ndarray)` import pandas, and so does
`pq.read_table` (through `pyarrow.dataset`): half a second to a second per job
that never needs pandas (every training, evaluation and top-N job). These read
files, build views and arrays from the buffers instead. Shared by the data
rules, which hold tens of millions of rows as both, and the torch jobs.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def read_parquet(path, columns=None):
    """A Parquet file (not a dataset directory) as a Table, without importing pandas."""
    with pq.ParquetFile(path) as handle:
        return handle.read(columns=None if columns is None else list(columns))


def numpy_view(array):
    """A null-free numeric pyarrow Array as a numpy view (no copy, no pandas import)."""
    data = np.frombuffer(array.buffers()[1], dtype=array.type.to_pandas_dtype())
    return data[array.offset : array.offset + len(array)]


def numpy_chunks(column):
    """(offset, numpy view) of each chunk of a null-free numeric pyarrow column."""
    start = 0
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        yield start, numpy_view(chunk)
        start += len(chunk)


def to_numpy(column):
    """A null-free numeric pyarrow (chunked) array as numpy, without copying a single chunk.

    Built from the data buffers, because `ChunkedArray.to_numpy` imports
    pandas, which costs a second per rule run.
    """
    views = [view for _, view in numpy_chunks(column)]
    if not views:
        return np.empty(0, dtype=column.type.to_pandas_dtype())
    return views[0] if len(views) == 1 else np.concatenate(views)


def to_arrow(values, valid=None):
    """A numpy array as a pyarrow array (zero-copy), nulls where `valid` is False.

    `pa.array(ndarray)` imports pandas; building from buffers does not.
    """
    values = np.ascontiguousarray(values)
    data = np.packbits(values, bitorder="little") if values.dtype == bool else values
    validity = None
    null_count = 0
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
        null_count = int((~valid).sum())
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(values.dtype),
        len(values),
        [validity, pa.py_buffer(data)],
        null_count=null_count,
    )
