"""Top-N ranking metrics of recommendation lists, scored against the relevant test movies.

A list holds a user's n best movies among those not rated in train or
validation, rank 1 = best. A test movie is *relevant* (binary) when its rating
is at least the threshold. Protocol: every unrated movie is a candidate and the
list is their top n, so a relevant movie the list misses counts against recall
and NDCG but is never a hit, even at a k beyond a short list's end.

The definitions are torchmetrics' retrieval metrics (``tests/test_ranking.py``
compares every one of them with torchmetrics 1.9.0, user by user):

- precision@k = hits in the top k / k (k, not the list length, for a short list);
- recall@k = hits in the top k / number of relevant movies;
- ndcg@k: gain 1, discount 1 / log2(rank + 1), ideal DCG over min(relevant, k) movies;
- map@k is ``RetrievalMAP(top_k=k)``: precision@rank averaged over the hits in
  the top k, i.e. divided by the number of *hits in the top k* (not by
  min(relevant, k) as RecBole does, nor by the relevant count); 0 without a hit;
- hit_rate@k = 1 if the top k hold a hit;
- mrr = 1 / rank of the first hit in the whole list (length n), 0 without one.

Only users with at least one relevant test movie are evaluated. A test user
without one is left out and counted (torchmetrics' ``empty_target_action="skip"``;
its default ``"neg"`` would average in zeros), and a user with relevant movies
but no list scores 0 everywhere.

All is vectorised over a dense users x ranks table (162,541 users x 100: ~2 s).
"""

import math
from typing import NamedTuple

import numpy as np

#: Resamples of `paired_bootstrap`.
N_RESAMPLES = 1000
#: Bootstrap resamples drawn at once: bounds memory to this many index arrays of all users.
_RESAMPLE_CHUNK = 64


class RelevantSets(NamedTuple):
    """Relevant test movies per evaluated user, CSR-like.

    ``user`` holds the evaluated users (at least one relevant movie), increasing;
    the relevant movies of ``user[i]`` are ``movie[indptr[i]:indptr[i + 1]]``,
    sorted. ``n_without_relevant`` counts the test users left out for having none.
    """

    user: np.ndarray
    indptr: np.ndarray
    movie: np.ndarray
    n_without_relevant: int


class RankedLists(NamedTuple):
    """Checked lists as a dense table indexed by user index and rank - 1.

    ``movie[u, r - 1]`` is user u's movie at rank r, and -1 past the end of a
    shorter list or on the row of a user without a list; ``length[u]`` is the
    length of u's list. Columns: n, the longest list.
    """

    movie: np.ndarray
    length: np.ndarray


def relevant_sets(test_user, test_movie, rating, threshold=4.0):
    """The relevant test movies (``rating >= threshold``) of every test user who has one.

    Repeated (user, movie) test rows count once.
    """
    user = np.asarray(test_user, dtype=np.int64)
    movie = np.asarray(test_movie, dtype=np.int64)
    keep = np.asarray(rating, dtype=np.float64) >= threshold
    n_ids = int(movie.max(initial=0)) + 1
    # One sorted int64 key per pair orders the pairs by user, then movie.
    rel_user, rel_movie = np.divmod(np.unique(user[keep] * n_ids + movie[keep]), n_ids)
    users, counts = np.unique(rel_user, return_counts=True)
    return RelevantSets(
        user=users,
        indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        movie=rel_movie,
        n_without_relevant=int(np.unique(user).size - users.size),
    )


def ranked_lists(lists):
    """Check a list table (columns ``user``, ``rank``, ``movie``) and make it a `RankedLists`.

    Each user's ranks must be 1, 2, ..., length (one row each) and its movies
    distinct; otherwise a ValueError names the lowest user index with a rank
    problem (else with a repeated movie) and what was expected. A `RankedLists`
    is returned as it is.
    """
    if isinstance(lists, RankedLists):
        return lists
    user, rank, movie = (np.asarray(lists[c], dtype=np.int64) for c in ("user", "rank", "movie"))
    if not user.shape == rank.shape == movie.shape or user.ndim != 1:
        shapes = f"{user.shape}, {rank.shape}, {movie.shape}"
        raise ValueError(f"user, rank, movie must be aligned 1-D arrays, got {shapes}")
    if user.size and min(user.min(), movie.min()) < 0:
        raise ValueError("user and movie indices must be >= 0")
    length = np.bincount(user)
    n = int(length.max(initial=0))
    # Ranks in 1..length, none repeated, are exactly 1..length.
    bad = (rank < 1) | (rank > length[user])
    cell = user * n + rank - 1
    repeated = np.flatnonzero(np.bincount(cell[~bad], minlength=length.size * n) > 1) // n
    offenders = np.concatenate([user[bad], repeated])
    if offenders.size:
        first = int(offenders.min())
        raise ValueError(_rank_problem(first, rank[user == first]))
    table = np.full((length.size, n), -1, dtype=np.int64)
    table[user, rank - 1] = movie
    ordered = np.sort(table, axis=1)
    twice = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    rows = np.flatnonzero(twice.any(axis=1))
    if rows.size:
        first = int(rows[0])
        dup = ordered[first, 1:][twice[first]][0]
        raise ValueError(
            f"user {first}: movie {dup} is listed at ranks "
            f"{', '.join(str(r) for r in np.flatnonzero(table[first] == dup) + 1)}; "
            "expected each movie at most once per list"
        )
    return RankedLists(movie=table, length=length)


def _rank_problem(user, ranks):
    """The message for a user whose ranks are not 1..length, one row each."""
    got = np.sort(ranks)
    expected = np.arange(1, got.size + 1)
    i = int(np.flatnonzero(got != expected)[0])
    if got[i] < 1:
        what = f"found rank {got[i]}, but ranks start at 1"
    elif got[i] < expected[i]:
        what = f"rank {got[i]} appears more than once"
    else:
        what = f"rank {expected[i]} is missing (next found: {got[i]})"
    return f"user {user}: expected ranks 1..{got.size}, one row each, for {got.size} rows; {what}"


def _discount(width):
    """DCG discounts 1 / log2(rank + 1) for ranks 1..width."""
    return 1.0 / np.log2(np.arange(2, width + 2))


def _hits(lists, relevant, width):
    """Boolean (evaluated users x max(n, width)) table: is the movie at this rank relevant?

    Also returns the number of relevant movies per evaluated user.
    """
    lists = ranked_lists(lists)
    n_rel = np.diff(relevant.indptr)
    n = lists.movie.shape[1]
    hits = np.zeros((relevant.user.size, max(n, width)), dtype=bool)
    rows = np.flatnonzero(relevant.user < lists.length.size)
    rows = rows[lists.length[relevant.user[rows]] > 0]
    if rows.size:
        listed = lists.movie[relevant.user[rows]]
        n_ids = max(int(listed.max()), int(relevant.movie.max())) + 1
        # (row, movie) keys; the relevant ones come sorted from relevant_sets.
        rel_key = np.repeat(np.arange(relevant.user.size), n_rel) * n_ids + relevant.movie
        key = rows[:, None] * n_ids + listed
        pos = np.minimum(np.searchsorted(rel_key, key), rel_key.size - 1)
        hits[rows, :n] = (rel_key[pos] == key) & (listed >= 0)
    return hits, n_rel


def _check_ks(ks):
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    return ks


def per_user_metrics(lists, relevant, ks=(10,)):
    """Every metric for every evaluated user (see the module docstring for definitions).

    Parameters
    ----------
    lists : RankedLists, DataFrame or mapping of arrays ``user``, ``rank``, ``movie``
    relevant : RelevantSets
    ks : iterable of int
        Cut-offs; a k beyond the longest list counts the missing ranks as misses.

    Returns
    -------
    dict
        ``user`` (the evaluated users, as in `relevant`), then one float array
        per metric aligned with it: ``precision@k``, ``recall@k``, ``ndcg@k``,
        ``map@k``, ``hit_rate@k`` for each k, and ``mrr``.
    """
    ks = _check_ks(ks)
    hits, n_rel = _hits(lists, relevant, max(ks))
    rank = np.arange(1, hits.shape[1] + 1)
    found = np.cumsum(hits, axis=1, dtype=np.int32)  # hits within the top r
    discount = _discount(hits.shape[1])
    dcg = np.cumsum(hits * discount, axis=1)
    ideal = np.cumsum(discount)
    precision_at_hits = np.cumsum(np.where(hits, found / rank, 0.0), axis=1)
    out = {"user": relevant.user}
    for k in ks:
        n_hits = found[:, k - 1]
        out[f"precision@{k}"] = n_hits / k
        out[f"recall@{k}"] = n_hits / n_rel
        out[f"ndcg@{k}"] = dcg[:, k - 1] / ideal[np.minimum(n_rel, k) - 1]
        ap = np.zeros(n_hits.size)
        np.divide(precision_at_hits[:, k - 1], n_hits, out=ap, where=n_hits > 0)
        out[f"map@{k}"] = ap
        out[f"hit_rate@{k}"] = (n_hits > 0).astype(np.float64)
    out["mrr"] = np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1), 0.0)
    return out


def ndcg_curve(lists, relevant, max_k):
    """Mean NDCG@k over the evaluated users for k = 1..max_k (NaN when nobody is evaluated)."""
    max_k = _check_ks([max_k])[0]
    hits, n_rel = _hits(lists, relevant, max_k)
    if not n_rel.size:
        return np.full(max_k, math.nan)
    discount = _discount(max_k)
    dcg = np.cumsum(hits[:, :max_k] * discount, axis=1)
    ideal = np.cumsum(discount)[np.minimum.outer(n_rel, np.arange(1, max_k + 1)) - 1]
    return (dcg / ideal).mean(axis=0)


def _top_movies(lists, k):
    """The movies of every user's top k, one entry per (user, rank)."""
    top = ranked_lists(lists).movie[:, :k]
    return top[top >= 0]


def catalogue_coverage(lists, n_movies, k=10):
    """Fraction of the `n_movies` catalogue that appears in at least one user's top k."""
    shown = np.unique(_top_movies(lists, k))
    if shown.size and shown[-1] >= n_movies:
        raise ValueError(f"movie {shown[-1]} is outside the catalogue of {n_movies} movies")
    return shown.size / n_movies


def popularity_rank(popularity):
    """Rank of each movie by training ratings count, 1 = most rated.

    Ties share the best rank of their group (competition ranking, "1224"): a
    movie's rank is 1 + the number of movies with strictly more ratings, which
    depends on the counts only, never on the movies' index order.
    """
    popularity = np.asarray(popularity)
    ascending = np.sort(popularity)
    return popularity.size - np.searchsorted(ascending, popularity, side="right") + 1


def novelty(lists, popularity, k=10):
    """Mean `popularity_rank` of the recommended movies in the top k (higher = less popular).

    Every (user, rank <= k) entry counts once, so a user's weight is the length
    of their top k. NaN without recommendations.
    """
    shown = _top_movies(lists, k)
    return float(popularity_rank(popularity)[shown].mean()) if shown.size else math.nan


def summarize(lists, test_user, test_movie, test_rating, *, n_movies, popularity, ks=(10,),
              threshold=4.0):  # fmt: skip
    """One flat dict of the mean ranking metrics of a list table on the test part.

    Keys: ``precision@k``, ``recall@k``, ``ndcg@k``, ``map@k``, ``hit_rate@k``
    for each k (means over the evaluated users), ``mrr``, ``coverage@k`` and
    ``novelty@k`` (over all listed users, whether evaluated or not),
    ``n_users_evaluated`` and ``n_users_without_relevant``.
    """
    lists = ranked_lists(lists)
    relevant = relevant_sets(test_user, test_movie, test_rating, threshold)
    per_user = per_user_metrics(lists, relevant, ks)
    out = {
        name: float(values.mean()) if values.size else math.nan
        for name, values in per_user.items()
        if name != "user"
    }
    for k in _check_ks(ks):
        out[f"coverage@{k}"] = catalogue_coverage(lists, n_movies, k)
        out[f"novelty@{k}"] = novelty(lists, popularity, k)
    out["n_users_evaluated"] = int(relevant.user.size)
    out["n_users_without_relevant"] = relevant.n_without_relevant
    return out


def paired_bootstrap(a, b, seed, n_resamples=N_RESAMPLES, level=0.95):
    """Mean of ``a - b`` over the same users, with a percentile interval from resampling users.

    Resampling users (not ranks) keeps each user's pair together, so how hard
    a user is cancels out of the difference. The same seed and `n_resamples`
    give the same interval.

    Returns
    -------
    dict
        ``diff``, ``low``, ``high``, ``level``, ``n_resamples``, ``n_users``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal non-empty per-user arrays, got {a.shape}, {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, _RESAMPLE_CHUNK):
        size = min(_RESAMPLE_CHUNK, n_resamples - start)
        means[start : start + size] = diff[rng.integers(0, diff.size, (size, diff.size))].mean(1)
    alpha = (1 - level) / 2
    return {
        "diff": float(diff.mean()),
        "low": float(np.quantile(means, alpha)),
        "high": float(np.quantile(means, 1 - alpha)),
        "level": level,
        "n_resamples": int(n_resamples),
        "n_users": int(diff.size),
    }
