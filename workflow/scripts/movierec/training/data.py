"""Ratings as tensors, read from a split's Parquet files with row-level errors."""

from typing import NamedTuple

import numpy as np
import pyarrow.parquet as pq
import torch

from movierec.arrays import read_parquet, to_numpy


class Ratings(NamedTuple):
    """Ratings as three aligned 1-d tensors (user int64, movie int64, rating float32)."""

    user: torch.Tensor
    movie: torch.Tensor
    rating: torch.Tensor

    def __len__(self):
        return int(self.rating.shape[0])

    def to(self, device):
        return Ratings(*(t.to(device) for t in self))


def count_rows(path):
    """Number of rows of a Parquet file (from its footer, without reading it)."""
    return pq.ParquetFile(path).metadata.num_rows


def read_ratings(path, n_users, n_movies, rating_scale=None):
    """Read a split file (``user``, ``movie``, ``rating`` columns) as `Ratings`.

    Raises
    ------
    ValueError
        Naming the file, the first offending row and its value, if a column is
        missing, an index is outside the users/movies index, or a rating is
        not finite or outside `rating_scale`.
    """
    table = read_parquet(path)
    missing = [c for c in ("user", "movie", "rating") if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; expected user, movie, rating "
            f"(found {', '.join(table.column_names)})"
        )
    cols = {c: to_numpy(table.column(c)) for c in ("user", "movie", "rating")}
    for name, n in (("user", n_users), ("movie", n_movies)):
        values = cols[name]
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{path}: column {name} must be integers, got {values.dtype}")
        bad = np.flatnonzero((values < 0) | (values >= n))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"{path}: row {row}: {name} index {values[row]} is outside the index "
                f"[0, {n}) of the {name}s table it was trained against"
            )
    rating = cols["rating"].astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(rating))
    if rating_scale is not None:
        low, high = rating_scale
        bad = np.flatnonzero(~np.isfinite(rating) | (rating < low) | (rating > high))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{path}: row {row}: rating {rating[row]} is not a number in the rating "
            f"scale {list(rating_scale) if rating_scale is not None else '(finite)'}"
        )
    return Ratings(
        torch.from_numpy(cols["user"].astype(np.int64)),
        torch.from_numpy(cols["movie"].astype(np.int64)),
        torch.from_numpy(rating),
    )
