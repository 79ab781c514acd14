"""Top-N lists at the size of synthetic-25m: every user's top 100, time and peak memory.

The recommendation issue's target: top-100 for all 162,541 users against all
59,047 movies within 5 minutes and 4 GiB on this 2-core machine. A dot model
of that shape (50 factors, the default, random weights) is scored by
`movierec.recommend.top_n` exactly as rule recommend_model does, with 25
million seen (user, movie) pairs drawn at random left out (the size of the
train + validation parts). Prints seconds, users per second and the peak
resident memory of this process, with the load average before and after
(the machine may be shared; the figures are only as quiet as it was).

Usage::

    python tests/benchmarks/bench_recommend.py            # synthetic-25m's shape
    python tests/benchmarks/bench_recommend.py --users 20000 --threads 1

This prints figures; it is not a test. It exits 1 only when a target is missed.
"""

import argparse
import datetime
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow" / "scripts"))

TARGET_SECONDS = 300
TARGET_RSS_GIB = 4.0


def main(argv=None):
    import torch
    from movierec import models, recommend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--movies", type=int, default=59_047)
    parser.add_argument("--seen", type=int, default=25_000_095)
    parser.add_argument("--factors", type=int, default=50)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    # Seen pairs: distinct per user in expectation (collisions only mask a movie twice).
    user = rng.integers(0, args.users, args.seen)
    movie = rng.integers(0, args.movies, args.seen)
    seen = recommend.Seen.from_pairs(user, movie, args.users)
    del user, movie
    settings = {"arch": "dot", "n_factors": args.factors, "y_range": [0.5, 5.5], "seed": 1}
    model = models.build_model(settings, args.users, args.movies).eval()
    with torch.no_grad():
        for table in (model.user_emb, model.movie_emb, model.user_bias, model.movie_bias):
            table.weight.normal_(0, 0.3)
    started = time.perf_counter()
    lists = recommend.top_n(recommend.ModelScorer(model), seen, args.n)
    seconds = time.perf_counter() - started
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows = len(lists["user"])
    print(f"# top-{args.n} lists, {datetime.date.today()}, {args.threads} threads")
    print(f"command: python tests/benchmarks/bench_recommend.py {' '.join(argv or sys.argv[1:])}")
    print(f"shape: {args.users} users x {args.movies} movies, {args.factors} factors, "
          f"{args.seen} seen pairs left out")  # fmt: skip
    print(f"rows written: {rows} ({rows / args.users:.1f} per user)")
    print(f"seconds: {seconds:.1f} ({args.users / seconds:,.0f} users/s; target {TARGET_SECONDS})")
    print(f"peak RSS of this process: {rss_gib:.2f} GiB (target {TARGET_RSS_GIB}; includes the "
          "seen pairs and the 25M-row inputs)")  # fmt: skip
    print(f"load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    full = args.users == 162_541 and args.movies == 59_047
    missed = full and (seconds > TARGET_SECONDS or rss_gib > TARGET_RSS_GIB)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
