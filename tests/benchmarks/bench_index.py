"""Benchmark index_ratings against a bare pyarrow.csv.read_csv of the same file.

Issue 2, item 10: indexing the synthetic-25m ratings.csv must take at most 2x
the time `pyarrow.csv.read_csv` alone needs for that file, with peak memory
under 4 GiB. Each measurement runs in its own subprocess, so its peak RSS
(`getrusage(RUSAGE_SELF).ru_maxrss`) is its own; the two runs alternate so
that load from other work on the machine hits both alike. The best time of
each is compared (the least disturbed run is the best estimate of the cost).

Usage::

    python tests/benchmarks/bench_index.py RATINGS.csv [MOVIES.csv] [--repeat 3]
    # write a synthetic ml-25m-shaped file first (162,541 users, 59,047 movies):
    python tests/benchmarks/bench_index.py --make 25000095 /tmp/bench/ratings.csv

Outputs go to a temporary directory (or --workdir), never into the repository.
This is a benchmark that prints figures, not a test: it exits 1 only when a
target is missed, so it can be run by hand or from CI alike.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
ML25M_USERS = 162_541
ML25M_MOVIES = 59_047
ML25M_RATINGS = 25_000_095
ML25M_MAX_MOVIE_ID = 209_171
TIME_RATIO_TARGET = 2.0
RSS_TARGET_BYTES = 4 * 2**30


def make_ratings(path, n_ratings, n_users, n_movies, seed=0):
    """Write a GroupLens-layout ratings.csv (and movies.csv beside it).

    Heavy-tailed user activity (lognormal) and movie popularity (Zipf-like),
    every user and every movie rated at least once, no repeated (user, movie)
    pair, rows sorted by userId then movieId as in the GroupLens releases,
    half-star ratings and second timestamps. Movie ids are sparse (as in
    ml-25m, up to 209,171) so the indexer cannot rely on dense ids.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if n_ratings < max(n_users, n_movies) or n_ratings > n_users * n_movies:
        raise ValueError(f"--make {n_ratings}: cannot place it on {n_users}x{n_movies}")
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.2, n_users)
    activity /= activity.sum()
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())
    # Pairs every user and every movie appear in, then random pairs until n is reached.
    # (Sorting by hand: numpy 2.4's hash-based np.unique is ~50x slower than np.sort.)
    must = _sorted_unique(
        np.concatenate(
            [
                np.arange(n_users, dtype=np.int64) * n_movies + rng.integers(0, n_movies, n_users),
                rng.integers(0, n_users, n_movies) * n_movies + np.arange(n_movies),
            ]
        )
    )
    keys = must
    while keys.size < n_ratings:
        draw = int((n_ratings - keys.size) * 1.2) + 1000
        users = rng.choice(n_users, size=draw, p=activity)
        movies = rng.choice(n_movies, size=draw, p=popularity)
        keys = _sorted_unique(np.concatenate([keys, users.astype(np.int64) * n_movies + movies]))
        del users, movies
    if keys.size > n_ratings:
        is_must = np.zeros(keys.size, dtype=bool)
        is_must[np.searchsorted(keys, must)] = True
        optional = np.flatnonzero(~is_must)
        drop = optional[rng.permutation(optional.size)[: keys.size - n_ratings]]
        keys = np.delete(keys, drop)
    user, movie = np.divmod(keys, n_movies)
    del keys
    movie_ids = np.sort(
        rng.choice(
            np.arange(1, max(ML25M_MAX_MOVIE_ID, n_movies) + 1), size=n_movies, replace=False
        )
    )
    stars = pa.array([f"{k / 2:.1f}" for k in range(1, 11)])
    table = pa.table(
        {
            "userId": pa.array(user + 1),
            "movieId": pa.array(movie_ids[movie]),
            "rating": pa.DictionaryArray.from_arrays(
                pa.array(rng.integers(0, 10, user.size, dtype=np.int8)), stars
            ),
            "timestamp": pa.array(rng.integers(789_652_009, 1_574_327_703, user.size)),
        }
    )
    del user, movie
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(b"userId,movieId,rating,timestamp\n")
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    titles = [
        f'"Movie {i}, The ({1900 + i % 120})"' if i % 7 == 0 else f"Movie {i} ({1900 + i % 120})"
        for i in movie_ids
    ]
    genres = ["Comedy|Drama", "Action", "(no genres listed)", "Sci-Fi|Thriller"]
    with open(path.with_name("movies.csv"), "w", encoding="utf-8") as out:
        out.write("movieId,title,genres\n")
        for k, (movie_id, title) in enumerate(zip(movie_ids, titles, strict=True)):
            out.write(f"{movie_id},{title},{genres[k % len(genres)]}\n")
    return path, path.with_name("movies.csv")


def _sorted_unique(values):
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _cpu():
    """CPU seconds of this process, all threads: less sensitive than wall time to other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_read(ratings):
    import pyarrow.csv as pacsv

    start, cpu = time.perf_counter(), _cpu()
    table = pacsv.read_csv(ratings)  # all defaults: what "read_csv alone" means
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    return {"seconds": seconds, "cpu_s": cpu, "rows": table.num_rows}


def _child_index(ratings, movies, out_dir):
    sys.path.insert(0, str(SCRIPTS))
    from movierec.index import index_ratings

    out_dir = Path(out_dir)
    raw = out_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, source in (("ratings.csv", ratings), ("movies.csv", movies)):
        link = raw / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(source).resolve())
    spec = {
        "format": "csv",
        "ratings": "ratings.csv",
        "movies": "movies.csv",
        "rating_scale": [0.5, 5.0],
    }
    start, cpu = time.perf_counter(), _cpu()
    index_ratings(
        raw,
        spec,
        "error",
        out_dir / "ratings.parquet",
        out_dir / "users.parquet",
        out_dir / "movies.parquet",
    )
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    import pyarrow.parquet as pq

    rows = pq.read_metadata(out_dir / "ratings.parquet").num_rows
    return {"seconds": seconds, "cpu_s": cpu, "rows": rows}


def _run_child(args):
    """Run one measurement in a fresh interpreter; return its JSON plus peak RSS and wall time."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ratings", help="ratings.csv (GroupLens layout)")
    parser.add_argument("movies", nargs="?", help="movies.csv (default: beside ratings)")
    parser.add_argument("--make", type=int, metavar="N", help="first write N synthetic ratings")
    parser.add_argument("--users", type=int, help=f"with --make (default {ML25M_USERS:,} scaled)")
    parser.add_argument(
        "--movies-count",
        type=int,
        dest="n_movies",
        help=f"with --make (default {ML25M_MOVIES:,} scaled)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best is kept)")
    parser.add_argument("--workdir", help="where index outputs go (default: a temp dir)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)

    if args.child:  # internal: `--child read PATH` / `--child index RATINGS MOVIES OUT`
        mode, *paths = [args.ratings, args.movies, *rest]
        paths = [p for p in paths if p is not None]
        result = _child_read(*paths) if mode == "read" else _child_index(*paths)
        result["maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(result))
        return 0

    ratings = Path(args.ratings)
    if args.make:
        scale = min(1.0, args.make / ML25M_RATINGS)
        n_users = args.users or max(10, round(ML25M_USERS * scale))
        n_movies = args.n_movies or max(10, round(ML25M_MOVIES * scale))
        start = time.perf_counter()
        make_ratings(ratings, args.make, n_users, n_movies, seed=args.seed)
        print(
            f"wrote {args.make:,} ratings ({n_users:,} users, {n_movies:,} movies) "
            f"to {ratings} in {time.perf_counter() - start:.1f}s"
        )
    if args.repeat < 1:
        return 0
    movies = Path(args.movies) if args.movies else ratings.with_name("movies.csv")
    size = ratings.stat().st_size
    print(f"file: {ratings} ({size / 2**20:,.0f} MiB); movies: {movies}")
    print(
        f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f} before"
    )

    with tempfile.TemporaryDirectory(prefix="bench_index_", dir=args.workdir) as work:
        reads, indexes = [], []
        for k in range(args.repeat):
            reads.append(_run_child(["read", str(ratings)]))
            indexes.append(_run_child(["index", str(ratings), str(movies), work]))
            read, index = reads[-1], indexes[-1]
            print(
                f"run {k + 1}: read_csv {read['seconds']:.2f}s wall, {read['cpu_s']:.2f}s CPU, "
                f"{read['maxrss_bytes'] / 2**30:.2f} GiB; index_ratings {index['seconds']:.2f}s "
                f"wall, {index['cpu_s']:.2f}s CPU, {index['maxrss_bytes'] / 2**30:.2f} GiB",
                flush=True,
            )
    rows = indexes[-1]["rows"]
    best_read = min(r["seconds"] for r in reads)
    best_index = min(r["seconds"] for r in indexes)
    median_ratio = statistics.median(
        i["seconds"] / r["seconds"] for r, i in zip(reads, indexes, strict=True)
    )
    peak = max(r["maxrss_bytes"] for r in indexes)
    print(f"rows indexed:          {rows:,}")
    print(
        f"pyarrow.csv.read_csv:  best {best_read:.2f}s, "
        f"peak RSS {max(r['maxrss_bytes'] for r in reads) / 2**30:.2f} GiB"
    )
    print(f"index_ratings:         best {best_index:.2f}s, peak RSS {peak / 2**30:.2f} GiB")
    ratio = best_index / best_read
    print(
        f"ratio (best/best):     {ratio:.2f}x (target <= {TIME_RATIO_TARGET}x); "
        f"median of paired ratios {median_ratio:.2f}x"
    )
    cpu_ratio = min(r["cpu_s"] for r in indexes) / min(r["cpu_s"] for r in reads)
    print(f"CPU-time ratio (best):  {cpu_ratio:.2f}x (for reference: how much more work)")
    print(f"load average after:    {os.getloadavg()[0]:.1f} (other work on the machine)")
    if rows < ML25M_RATINGS:
        print(f"(the targets are for the {ML25M_RATINGS:,}-row file; fixed costs dominate here)")
        return 0
    ok = ratio <= TIME_RATIO_TARGET and peak < RSS_TARGET_BYTES
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
