"""Synthetic MovieLens-like releases with a known (planted) answer.

Real releases cannot tell us whether a learned movie bias or embedding axis is
*right*; a synthetic release can, because we chose the truth. `generate` writes
a release in the GroupLens CSV layout (``ratings.csv``, ``movies.csv``) so that
it flows through the same index rule as a download, plus the planted truth
(``planted_movies.csv``, ``planted_users.csv``, ``planted.json``) that report
tests compare against.

The model behind a rating of user u for movie m::

    r = clip(round_half(mean + b_u + b_m + p_u . q_m + noise), 0.5, 5.0)

with user activity and movie popularity drawn from lognormal weights (heavy
tails, as in MovieLens), every user and every movie rated at least once, and
unique (user, movie) pairs, so the indexed counts equal the spec exactly.
Everything is vectorised numpy; the same spec gives the same bytes.
"""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

log = logging.getLogger(__name__)

#: Settings with their defaults; `generate` documents each one.
DEFAULTS = {
    "n_users": None,
    "n_movies": None,
    "n_ratings": None,
    "n_factors": 2,
    "seed": 7,
    "mean_rating": 3.2,
    "user_bias_sd": 0.3,
    "movie_bias_sd": 0.55,
    "factor_sd": 0.7,
    "factor_decay": 0.75,
    "noise_sd": 0.2,
    "user_activity_sigma": 1.0,
    "movie_popularity_sigma": 1.6,
    "movie_popularity_floor": 0.3,
    "min_user_ratings": 5,
    "bias_popularity_corr": 0.3,
    "n_classics": 10,
    "classic_bias": 1.5,
}
REQUIRED = ("n_users", "n_movies", "n_ratings")
INTEGER_KEYS = (*REQUIRED, "n_factors", "seed", "min_user_ratings", "n_classics")
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
HALF_STARS = tuple(f"{x / 2:.1f}" for x in range(1, 11))  # "0.5" .. "5.0"
# Users whose quota exceeds this share of all movies are sampled exactly
# (one key per movie); the rest by drawing with replacement and redrawing repeats.
HEAVY_USER_SHARE = 0.05
CSV_CHUNK_ROWS = 1_000_000
T_START, T_END = 946_684_800, 1_672_531_200  # 2000-01-01 .. 2023-01-01 (UTC)


def resolve_spec(spec):
    """Fill in defaults and check a generator spec.

    Raises
    ------
    ValueError
        On a missing or unknown key, a non-integer count, or counts that cannot
        be met (fewer ratings than users or movies, more than all pairs).
    """
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"synthetic spec: unknown key(s) {unknown}; expected some of {sorted(DEFAULTS)}"
        )
    missing = [key for key in REQUIRED if spec.get(key) is None]
    if missing:
        raise ValueError(f"synthetic spec: missing {missing}; got {dict(spec)}")
    out = {**DEFAULTS, **spec}
    for key in INTEGER_KEYS:
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"synthetic spec: {key} must be an integer, got {value!r}")
        out[key] = int(value)
        lowest = 0 if key in ("seed", "n_classics") else 1
        if out[key] < lowest:
            raise ValueError(f"synthetic spec: {key} must be >= {lowest}, got {out[key]}")
    for key in sorted(set(DEFAULTS) - set(INTEGER_KEYS)):
        value = out[key]
        lowest = -np.inf if key == "mean_rating" else 0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= lowest:
            raise ValueError(f"synthetic spec: {key} must be a number >= {lowest}, got {value!r}")
        out[key] = float(value)
    if out["bias_popularity_corr"] > 1:
        raise ValueError(
            f"synthetic spec: bias_popularity_corr must be in [0, 1], "
            f"got {out['bias_popularity_corr']}"
        )
    if out["n_classics"] > out["n_movies"]:
        raise ValueError(
            f"synthetic spec: n_classics={out['n_classics']} exceeds n_movies={out['n_movies']}"
        )
    n_users, n_movies, n_ratings = out["n_users"], out["n_movies"], out["n_ratings"]
    if n_ratings < max(n_users, n_movies):
        raise ValueError(
            f"synthetic spec: n_ratings={n_ratings} is fewer than n_users={n_users} or "
            f"n_movies={n_movies}; every user and movie needs at least one rating"
        )
    if n_ratings > n_users * n_movies // 2:
        raise ValueError(
            f"synthetic spec: n_ratings={n_ratings} exceeds half of all "
            f"{n_users} x {n_movies} (user, movie) pairs; expected a sparse matrix"
        )
    return out


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


def _movie_ids(rng, n_movies):
    """Increasing movieIds from 1 with gaps, so the index step has work to do."""
    return 1 + np.cumsum(rng.geometric(0.6, n_movies)) - 1


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


def plant(spec, rng):
    """Draw activity, popularity, biases and factors (the planted truth)."""
    n_users, n_movies, k = spec["n_users"], spec["n_movies"], spec["n_factors"]
    activity = rng.lognormal(0.0, spec["user_activity_sigma"], n_users)
    z_pop = rng.standard_normal(n_movies)
    popularity = np.exp(spec["movie_popularity_sigma"] * z_pop) + spec["movie_popularity_floor"]
    rho = spec["bias_popularity_corr"]
    movie_bias = spec["movie_bias_sd"] * (
        rho * z_pop + np.sqrt(1 - rho**2) * rng.standard_normal(n_movies)
    )
    # A few "classics", drawn ∝ popularity, stand clearly above the rest
    # (bias = classic_bias + |ordinary draw|), so that "the best movies" is a
    # question with a recoverable answer rather than a near-tie in a normal tail.
    classics = rng.choice(
        n_movies, spec["n_classics"], replace=False, p=popularity / popularity.sum()
    )
    movie_bias[classics] = spec["classic_bias"] + np.abs(movie_bias[classics])
    user_bias = spec["user_bias_sd"] * rng.standard_normal(n_users)
    user_factors = rng.standard_normal((n_users, k))
    user_factors -= user_factors.mean(axis=0)  # so movie biases stay identifiable
    scales = spec["factor_sd"] * spec["factor_decay"] ** np.arange(k)
    movie_factors = rng.standard_normal((n_movies, k)) * scales
    return {
        "activity": activity,
        "popularity": popularity,
        "movie_bias": movie_bias,
        "user_bias": user_bias,
        "user_factors": user_factors,
        "movie_factors": movie_factors,
    }


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


def rate(spec, truth, user, movie, rng, chunk=CSV_CHUNK_ROWS):
    """Half-star ratings (as indices 0..9 into HALF_STARS) for the given pairs."""
    out = np.empty(len(user), dtype=np.int8)
    for start in range(0, len(user), chunk):
        u, m = user[start : start + chunk], movie[start : start + chunk]
        score = (
            spec["mean_rating"]
            + truth["user_bias"][u]
            + truth["movie_bias"][m]
            + np.einsum("ij,ij->i", truth["user_factors"][u], truth["movie_factors"][m])
            + spec["noise_sd"] * rng.standard_normal(len(u))
        )
        out[start : start + chunk] = np.clip(np.rint(score * 2), 1, 10) - 1
    return out


def _write_csv(path, header, table):
    """GroupLens style CSV: plain header, no quotes (no field holds a comma)."""
    with open(path, "wb") as f:
        f.write((",".join(header) + "\n").encode())
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        with pacsv.CSVWriter(f, table.schema, write_options=options) as writer:
            for batch in table.to_batches(max_chunksize=CSV_CHUNK_ROWS):
                writer.write_batch(batch)


def _movies_table(rng, movie_ids):
    n = len(movie_ids)
    years = 1920 + np.floor(103 * rng.beta(4.0, 1.5, n)).astype(int)  # mostly recent
    has_year = rng.random(n) >= 0.01  # a few titles without a year, as in MovieLens
    titles = [
        f"Synthetic Movie {i} ({y})" if keep else f"Synthetic Movie {i}"
        for i, y, keep in zip(movie_ids.tolist(), years.tolist(), has_year.tolist(), strict=True)
    ]
    n_genres = rng.integers(1, 4, n)
    picks = np.argsort(rng.random((n, len(GENRES))), axis=1)
    genres = [
        "|".join(sorted(GENRES[j] for j in row[:c])) for row, c in zip(picks, n_genres, strict=True)
    ]
    no_genre = rng.random(n) < 0.005
    genres = ["(no genres listed)" if flag else g for g, flag in zip(genres, no_genre, strict=True)]
    return pa.table({"movieId": pa.array(movie_ids, pa.int64()), "title": titles, "genres": genres})


def _planted_table(id_name, ids, bias, factors):
    columns = {id_name: pa.array(ids, pa.int64()), "bias": pa.array(bias)}
    for j in range(factors.shape[1]):
        columns[f"factor_{j + 1}"] = pa.array(factors[:, j])
    return pa.table(columns)


def generate(spec, out_dir):
    """Write a synthetic release into the directory `out_dir`.

    Parameters
    ----------
    spec : dict
        Generator settings. Required: ``n_users``, ``n_movies``, ``n_ratings``
        (exact counts after indexing). Optional (defaults in `DEFAULTS`):
        ``n_factors`` (planted rank), ``seed``, ``mean_rating``, ``user_bias_sd``,
        ``movie_bias_sd``, ``factor_sd`` (sd of the first movie factor; user
        factors are standard normal), ``factor_decay`` (each further factor's sd
        is this times the previous one's, so PCA axes are identifiable),
        ``noise_sd``, ``user_activity_sigma`` and ``movie_popularity_sigma``
        (lognormal sigmas of the heavy tails), ``movie_popularity_floor``
        (added to each popularity weight, so few movies rest on one rating),
        ``min_user_ratings`` (floor of a user's count, lowered if the spec
        cannot afford it; no user rates more than half of the movies),
        ``bias_popularity_corr`` (popular movies tend to be better, as in
        MovieLens), ``n_classics`` and ``classic_bias`` (a few popular movies
        with bias ``classic_bias + |ordinary bias|``, so the top of the ranking
        is a clear answer, not a near-tie). The schema describes each one.
    out_dir : path
        Must not exist (or be empty). Written under a temporary name and
        renamed, so a failure leaves nothing behind.

    Returns
    -------
    dict
        Summary: counts, rating mean, top-10% movie share.

    Files
    -----
    ``ratings.csv`` (userId,movieId,rating,timestamp; sorted by userId, movieId;
    userIds 1..n_users, movieIds increasing with gaps), ``movies.csv``
    (movieId,title,genres; titles like "Synthetic Movie 17 (1994)"),
    ``planted_movies.csv`` (movieId, bias, factor_1..factor_k),
    ``planted_users.csv`` (userId, bias, factor_1..factor_k) and
    ``planted.json`` (the resolved spec).
    """
    spec = resolve_spec(spec)
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise ValueError(f"{out_dir}: output directory exists and is not empty")
        out_dir.rmdir()
    log.info("generating %s into %s", spec, out_dir)
    rng = np.random.default_rng(spec["seed"])
    truth = plant(spec, rng)
    movie_ids = _movie_ids(rng, spec["n_movies"])
    user, movie = sample_pairs(spec, truth, rng)
    rating = rate(spec, truth, user, movie, rng)
    start = rng.integers(T_START, T_END, spec["n_users"])
    span = rng.integers(86_400, 4 * 365 * 86_400, spec["n_users"])
    timestamp = start[user] + (rng.random(len(user)) * span[user]).astype(np.int64)
    timestamp = np.minimum(timestamp, T_END)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the release is not
    try:
        ratings = pa.table(
            {
                "userId": pa.array(user + 1, pa.int32()),
                "movieId": pa.array(movie_ids[movie], pa.int64()),
                "rating": pa.DictionaryArray.from_arrays(
                    pa.array(rating, pa.int8()), pa.array(HALF_STARS)
                ),
                "timestamp": pa.array(timestamp, pa.int64()),
            }
        )
        _write_csv(tmp / "ratings.csv", ratings.column_names, ratings)
        movies = _movies_table(rng, movie_ids)
        _write_csv(tmp / "movies.csv", movies.column_names, movies)
        for name, id_name, ids, side in (
            ("planted_movies.csv", "movieId", movie_ids, "movie"),
            ("planted_users.csv", "userId", np.arange(1, spec["n_users"] + 1), "user"),
        ):
            table = _planted_table(id_name, ids, truth[f"{side}_bias"], truth[f"{side}_factors"])
            _write_csv(tmp / name, table.column_names, table)
        (tmp / "planted.json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = np.bincount(movie, minlength=spec["n_movies"])
    top = np.sort(counts)[::-1][: max(1, spec["n_movies"] // 10)].sum() / len(movie)
    summary = {
        "n_users": int((np.bincount(user) > 0).sum()),
        "n_movies": int((counts > 0).sum()),
        "n_ratings": len(user),
        "mean_rating": float((rating.astype(np.float64) + 1).mean() / 2),
        "top10pct_movie_share": float(top),
    }
    log.info("wrote %s: %s", out_dir, summary)
    return summary
