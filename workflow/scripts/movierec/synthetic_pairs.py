"""Which users rate which movies in a synthetic release: unique pairs with exact counts.

Each user's count is apportioned from its activity weight, then movies are
drawn in proportion to popularity without repeats (light users by redrawing
repeats, heavy users exactly by Efraimidis-Spirakis keys), and every movie
left unrated takes over a spare rating. The hardest part of the generator to
get both exact and fast, so it lives apart from what the ratings are.
"""

import logging

import numpy as np

log = logging.getLogger(__name__)

# Users whose quota exceeds this share of all movies are sampled exactly
# (one key per movie); the rest by drawing with replacement and redrawing repeats.
HEAVY_USER_SHARE = 0.05


def _apportion(total, weights, floor, cap):
    """Integer counts summing to `total`, each in [floor, cap], about ∝ `weights`.

    Largest-remainder rounding keeps the sum exact; counts above `cap` are cut
    and the excess spread over the others until none is above it.
    """
    counts = np.full(len(weights), floor, dtype=np.int64)
    free = np.ones(len(weights), dtype=bool)
    rest = total - counts.sum()
    while rest > 0:
        share = np.zeros(len(weights))
        share[free] = rest * weights[free] / weights[free].sum()
        add = np.floor(share).astype(np.int64)
        left = rest - add.sum()
        if left:
            frac = np.where(free, share - add, -1.0)
            add[np.argsort(-frac, kind="stable")[:left]] += 1
        counts += add
        over = counts > cap
        rest = int((counts[over] - cap).sum())
        counts[over] = cap
        free &= counts < cap
    return counts


def _sample_light(rng, users, quota, cdf, n_movies):
    """Distinct movies ∝ popularity for users with small quotas.

    Draw with replacement, then redraw the repeats until every (user, movie)
    key is unique: close to successive sampling without replacement, and
    cheap because a small quota rarely repeats a movie.
    Returns the sorted int64 keys user * n_movies + movie.
    """
    user = np.repeat(users.astype(np.int64), quota)
    keys = _sorted_unique(user * n_movies + _draw(rng, cdf, len(user)))
    lost = len(user) - len(keys)
    rounds = 0
    while lost:
        rounds += 1
        # Which users lost rows: their quota minus what they kept.
        kept = np.bincount(keys // n_movies, minlength=users.max() + 1)[users]
        short = users[kept < quota].astype(np.int64)
        redo = np.repeat(short, (quota - kept)[kept < quota])
        new = _sorted_unique(redo * n_movies + _draw(rng, cdf, len(redo)))
        pos = np.searchsorted(keys, new)
        taken = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == new)
        new = new[~taken]
        # Concatenated sorted runs: the stable sort (timsort) merges in linear time.
        keys = np.sort(np.concatenate([keys, new]), kind="stable")
        lost -= len(new)
    log.info("light users: %d ratings after %d redraw rounds", len(keys), rounds)
    return keys


def _sorted_unique(a):
    """np.unique by sorting (numpy 2.4's hash-based unique is ~5x slower here)."""
    a = np.sort(a)
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = a[1:] != a[:-1]
    return a[keep]


def _draw(rng, cdf, n):
    return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(cdf) - 1)


def _sample_heavy(rng, users, quota, weights, n_movies):
    """Distinct movies ∝ popularity, exactly (Efraimidis-Spirakis keys).

    One random score per (user, movie); the `quota` smallest scores are the
    user's movies. Costs n_movies per heavy user, which is bounded by a constant
    times n_ratings because heavy users have quota > HEAVY_USER_SHARE * n_movies.
    """
    out = []
    chunk = max(1, 4_000_000 // n_movies)
    log_w = np.log(weights)
    for start in range(0, len(users), chunk):
        u, q = users[start : start + chunk], quota[start : start + chunk]
        score = np.log(-np.log(rng.random((len(u), n_movies)))) - log_w  # smallest wins
        order = np.argsort(score, axis=1, kind="stable")
        movie = order[np.arange(n_movies) < q[:, None]]
        out.append(np.repeat(u.astype(np.int64), q) * n_movies + movie)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _cover_movies(rng, user, movie, n_movies):
    """Give every unrated movie one rating, keeping every count exact.

    Each unrated movie takes over a random rating row whose movie has a rating
    to spare (at least two). The user keeps its count, and no pair repeats
    because the new movie had no ratings at all.
    """
    counts = np.bincount(movie, minlength=n_movies)
    unrated = np.flatnonzero(counts == 0)
    if len(unrated) == 0:
        return movie
    order = rng.permutation(len(movie))
    # Occurrence number of each row within its movie, in `order`'s order.
    m = movie[order]
    by_movie = np.argsort(m, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    occurrence = np.empty(len(m), dtype=np.int64)
    occurrence[by_movie] = np.arange(len(m)) - starts[m[by_movie]]
    spare = order[occurrence < counts[m] - 1][: len(unrated)]
    movie = movie.copy()
    movie[spare] = unrated
    log.info("moved %d ratings onto movies that had none", len(unrated))
    return movie


def sample_pairs(spec, truth, rng):
    """Unique (user, movie) index pairs with exact counts, sorted by user then movie."""
    n_users, n_movies, n_ratings = spec["n_users"], spec["n_movies"], spec["n_ratings"]
    floor = max(1, min(spec["min_user_ratings"], n_ratings // n_users))
    # No user rates more than half of all movies (validation guarantees room).
    quota = _apportion(n_ratings, truth["activity"], floor, (n_movies + 1) // 2)
    weights = truth["popularity"]
    heavy = quota > HEAVY_USER_SHARE * n_movies
    users = np.arange(n_users)
    keys = np.concatenate(
        [
            _sample_light(rng, users[~heavy], quota[~heavy], np.cumsum(weights), n_movies)
            if (~heavy).any()
            else np.zeros(0, dtype=np.int64),
            _sample_heavy(rng, users[heavy], quota[heavy], weights, n_movies),
        ]
    )
    log.info("sampled %d pairs (%d heavy users sampled exactly)", len(keys), heavy.sum())
    user = (keys // n_movies).astype(np.int32)
    movie = _cover_movies(rng, user, (keys % n_movies).astype(np.int32), n_movies)
    keys = np.sort(user.astype(np.int64) * n_movies + movie)
    return (keys // n_movies).astype(np.int32), (keys % n_movies).astype(np.int32)
