"""Nearest movies by cosine similarity of their embedding rows.

Two movies whose ``movie_emb`` rows point the same way are liked by the same
users in the model's eyes, whatever their popularity: the dot family keeps
popularity and overall quality in the movie bias, and cosine ignores the
rows' lengths. This is what ``movierec similar`` prints for one movie and what
a report lists for the most-rated ones, so it takes many queries at once:
one matrix product per block of queries, not a loop over movies.
"""

import numpy as np

#: Similarities held at once per block of queries (float64): 2**23 is 64 MiB.
BLOCK_ELEMENTS = 1 << 23


def unit_rows(factors):
    """Rows scaled to length 1; an all-zero row stays zero (similarity 0 to everything)."""
    factors = np.asarray(factors, dtype=np.float64)
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)


def nearest_movies(movie_factors, query_rows, n, eligible_mask=None):
    """The `n` movies most cosine-similar to each query movie, most similar first.

    Parameters
    ----------
    movie_factors : array, shape (n_movies, f)
        The movie embedding table (``movie_emb.weight``).
    query_rows : int or array of int
        Row indices of the query movies.
    n : int
        Neighbours per query.
    eligible_mask : array of bool, shape (n_movies,), optional
        Movies that may be listed (e.g. enough ratings to trust their row);
        default every movie. A query never lists itself.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``indices`` (int64) and ``similarity`` (float64), both of shape
        ``(len(query_rows), min(n, eligible movies))``; ties are broken towards
        the lower index. Where a query has fewer eligible neighbours than
        columns (it is itself eligible and eligible movies are few), the
        missing entries are index -1 and similarity NaN.
    """
    unit = unit_rows(movie_factors)
    n_movies = unit.shape[0]
    queries = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
    bad = queries[(queries < 0) | (queries >= n_movies)]
    if bad.size:
        raise ValueError(f"query movie index {int(bad[0])} is outside [0, {n_movies})")
    n = int(n)
    if n < 1:
        raise ValueError(f"number of neighbours n must be at least 1, got {n}")
    if eligible_mask is None:
        eligible = np.ones(n_movies, dtype=bool)
    else:
        eligible = np.asarray(eligible_mask, dtype=bool)
        if eligible.shape != (n_movies,):
            raise ValueError(
                f"eligible_mask has shape {eligible.shape}, expected ({n_movies},): one per movie"
            )
    keep = min(n, int(eligible.sum()))
    indices = np.full((len(queries), keep), -1, dtype=np.int64)
    similarity = np.full((len(queries), keep), np.nan)
    if keep == 0:
        return indices, similarity
    block = max(1, BLOCK_ELEMENTS // n_movies)
    for begin in range(0, len(queries), block):
        chunk = queries[begin : begin + block]
        sims = unit[chunk] @ unit.T
        sims[:, ~eligible] = -np.inf
        sims[np.arange(len(chunk)), chunk] = -np.inf
        # Sort by similarity, then index: a stable argsort of the negated row.
        order = np.argsort(-sims, axis=1, kind="stable")[:, :keep]
        best = np.take_along_axis(sims, order, axis=1)
        found = np.isfinite(best)
        indices[begin : begin + len(chunk)] = np.where(found, order, -1)
        similarity[begin : begin + len(chunk)] = np.where(found, best, np.nan)
    return indices, similarity
