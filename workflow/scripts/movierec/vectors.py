"""A trained model's movie vectors as Parquet: what the reports read, without torch.

Training writes ``movie_vectors.parquet`` beside each checkpoint: one row per
movie index, its embedding (a fixed-size list column) and, for models that
have one, its bias. The bias ranking, PCA, bias-against-mean figure and
similar-movies reports read this file with pyarrow alone, so their jobs do not
pay torch's import and a checkpoint load (about 2 s each on this machine).
`model_vectors` is the one place that knows where a module keeps them.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.arrays import numpy_view, read_parquet, to_arrow, to_numpy
from movierec.atomic import atomic_path


def model_vectors(module):
    """A module's movie vectors and biases as float64 arrays (bias: None if it has none).

    The dot family's are its `dot_tables` (an implicit model's composed
    vectors); an mlp's are its ``movie_emb`` rows.
    """
    import torch

    with torch.no_grad():
        tables = module.dot_tables() if hasattr(module, "dot_tables") else None
        if tables is None:
            return module.movie_emb.weight.detach().cpu().double().numpy(), None
        return tuple(t.detach().cpu().double().numpy() for t in (tables[1], tables[3]))


def write_movie_vectors(path, embedding, bias=None):
    """Write ``movie``, ``embedding`` (and ``bias``) columns atomically."""
    embedding = np.asarray(embedding, dtype=np.float32)
    n, k = embedding.shape
    columns = {
        "movie": to_arrow(np.arange(n, dtype=np.int32)),
        "embedding": pa.FixedSizeListArray.from_arrays(to_arrow(embedding.reshape(-1)), k),
    }
    if bias is not None:
        columns["bias"] = to_arrow(np.asarray(bias, dtype=np.float32))
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(columns), tmp)


def read_movie_vectors(path):
    """``(embedding, bias)`` of a movie_vectors.parquet (float64; bias None if absent).

    Raises
    ------
    ValueError
        Naming the file, if a column is missing or the rows are not movie 0..n-1 in order.
    """
    table = read_parquet(path)
    for column in ("movie", "embedding"):
        if column not in table.column_names:
            raise ValueError(f"{path}: no {column!r} column; rebuild it with its train_model job")
    movie = to_numpy(table.column("movie"))
    if not np.array_equal(movie, np.arange(len(movie))):
        raise ValueError(f"{path}: rows must be movies 0..{len(movie) - 1} in order")
    column = table.column("embedding").combine_chunks()
    embedding = numpy_view(column.values).reshape(len(movie), column.type.list_size)
    bias = to_numpy(table.column("bias")) if "bias" in table.column_names else None
    return embedding.astype(np.float64), None if bias is None else bias.astype(np.float64)
