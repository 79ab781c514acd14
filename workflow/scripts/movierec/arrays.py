"""numpy <-> pyarrow without copies and without pandas, for the data rules.

`ChunkedArray.to_numpy` and `pa.array(ndarray)` import pandas, which costs a
second per rule run; these build views and arrays from the buffers instead.
Shared by index and split, which hold tens of millions of rows as both.
"""

import numpy as np
import pyarrow as pa


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
