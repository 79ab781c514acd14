"""What the default DAG would cost on a large split: each job's unit cost, measured, times its work.

Issue 13, item 5 asks for the full DAG with the default schedules on
`synthetic-25m`. Where that takes days on this 2-core machine, running it is
not the way to find out; this measures what each expensive job repeats and
multiplies it out, on the real split and tables (full size):

* training (every model block of config.yaml, a pretrain stage as its own
  job): ratings/s of `fit`'s steps on a random subset of the training part
  (`movierec.bench.loops.subset`, as the training benchmark times them; the
  implicit model's neighbour sets are the whole training part's, as in its
  job), plus per epoch the shuffle of the whole part, a validation pass and,
  with sampled negatives, the validation NDCG lists; times the schedule's
  epochs. A model with negatives trains on its part with them added.
* top-N lists: `recommend.top_n` for a sample of users, scaled to every user
  (per replicate; the dot family all score like the dot model).
* peers: Surprise's SVD and baseline and myFM's BMF fitted on a random
  subsample of the training part (myFM for a few Gibbs iterations), scaled
  linearly to the whole part and the configured iterations; the implicit
  myFM variant is not measured (its cost grows with every user's ratings).

Everything else (data, evaluation, reports) is minutes at most and left out.
Prints a Markdown table (seconds per job, jobs, total) and writes it with the
figures to `--out`. A projection, not a run: it says where the days go.

Usage::

    snakemake -j2 results/synthetic-25m/random/split/split.json
    python tests/benchmarks/bench_scale_projection.py results/synthetic-25m
"""

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from movierec import models, negatives, recommend  # noqa: E402
from movierec.bench.loops import subset  # noqa: E402
from movierec.evaluation import read_part  # noqa: E402
from movierec.settings import ModelSettings  # noqa: E402
from movierec.training import Ratings, count_rows, read_ratings  # noqa: E402
from movierec.training.loop import evaluate, fit  # noqa: E402
from schema_defaults import model_block  # noqa: E402

#: Timed optimizer steps per model (the implicit model's take seconds each at scale).
STEPS = {"implicit": 3, "mlp": 100}
DEFAULT_STEPS = 50


def _timed(call):
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def training_job(name, block, train, val, n_users, n_movies, scale):
    """Projected seconds of one training job of `block`, and what they are made of."""
    settings = ModelSettings.from_block(model_block(block))
    model = models.build_model(settings, n_users, n_movies)
    if hasattr(model, "set_neighbours"):
        model.set_neighbours(train.user, train.movie)
    part, ranking = train, None
    if settings.negatives is not None:
        sampled = settings.negatives
        part = negatives.add_negatives(
            train, n_movies, sampled.per_rating, sampled.rating, settings.seed
        )
        ranking = negatives.ValRanking(train, val, n_users, sampled.relevant_rating)
    steps = STEPS.get(settings.arch, DEFAULT_STEPS)
    timed = subset(part, steps * settings.batch_size, torch.Generator().manual_seed(0))
    result = fit(
        model, timed, Ratings(*(t[:1000] for t in val)),
        phases=[{"lr": settings.phases[0].lr, "epochs": 1}], batch_size=settings.batch_size,
        rating_scale=scale, weight_decay=settings.weight_decay,
        loss_weights=dataclasses.asdict(settings.loss_weights), seed=settings.seed,
        max_steps=steps, engine=settings.engine,
    )  # fmt: skip
    rate = steps * settings.batch_size / result["train_seconds"]
    shuffle_s, _ = _timed(lambda: [t.index_select(0, torch.randperm(len(part))) for t in part])
    val_s, _ = _timed(lambda: evaluate(model, val, scale))
    rank_s = _timed(lambda: ranking(model))[0] if ranking is not None else 0.0
    epochs = sum(p.epochs for p in settings.phases)
    epoch_s = len(part) / rate + shuffle_s + val_s + rank_s
    return {
        "job": f"train {name}", "engine": settings.engine, "ratings_per_s": rate,
        "rows": len(part), "epochs": epochs, "shuffle_s": shuffle_s, "val_s": val_s,
        "val_ranking_s": rank_s, "seconds": epochs * epoch_s,
    }  # fmt: skip


def top_n_job(arch_block, seen, n_users, n_movies, users, n):
    settings = ModelSettings.from_block(model_block(arch_block))
    model = models.build_model(settings, n_users, n_movies).eval()
    scorer = recommend.ModelScorer(model)
    seconds, _ = _timed(lambda: recommend.top_n(scorer, seen, n, users=np.arange(users)))
    return seconds * n_users / users


def peer_jobs(train, config, sample, n_users, n_movies, scale, myfm_iters):
    import pandas as pd
    import scipy.sparse as sps
    import surprise
    from movierec.peer_libraries import import_myfm

    n = len(train["rating"])
    pick = np.random.default_rng(0).choice(n, min(sample, n), replace=False)
    part = {k: v[pick] for k, v in train.items()}
    factor = n / len(pick)
    frame = pd.DataFrame(part)
    build_s, trainset = _timed(
        lambda: surprise.Dataset.load_from_df(
            frame[["user", "movie", "rating"]], surprise.Reader(rating_scale=scale)
        ).build_full_trainset()
    )
    out = []
    for peer, algo in (
        ("surprise_baseline", surprise.BaselineOnly(verbose=False)),
        ("surprise_svd", surprise.SVD(random_state=1)),
    ):
        fit_s, _ = _timed(lambda algo=algo: algo.fit(trainset))
        out.append({"job": f"fit_peer {peer}", "seconds": (build_s + fit_s) * factor})
    rows = np.arange(len(pick))
    x = sps.hstack(
        [
            sps.csr_matrix((np.ones(len(pick)), (rows, part["user"])), shape=(len(pick), n_users)),
            sps.csr_matrix((np.ones(len(pick)), (rows, part["movie"])), (len(pick), n_movies)),
        ],
        format="csr",
    )
    settings = config["peers"]["myfm_bmf"]
    regressor = import_myfm().MyFMRegressor(rank=int(settings["rank"]), random_seed=1)
    fit_s, _ = _timed(
        lambda: regressor.fit(x, part["rating"], n_iter=myfm_iters, n_kept_samples=myfm_iters)
    )
    per_iter = fit_s / myfm_iters * factor
    out.append({"job": "fit_peer myfm_bmf", "seconds": per_iter * int(settings["n_iter"])})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset_dir", type=Path, help="results/<dataset> of a finished split")
    parser.add_argument("--split", default="random")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--list-users", type=int, default=400, help="users scored per model")
    parser.add_argument("--peer-sample", type=int, default=2_000_000)
    parser.add_argument("--myfm-iters", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/scale-projection"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    dataset = args.dataset_dir.name
    scale = tuple(float(v) for v in config["datasets"][dataset]["rating_scale"])
    replicates = int(config["replicates"])
    data, split = args.dataset_dir / "data", args.dataset_dir / args.split / "split"
    n_users, n_movies = count_rows(data / "users.parquet"), count_rows(data / "movies.parquet")
    train = read_ratings(split / "train.parquet", n_users, n_movies, scale)
    val = read_ratings(split / "val.parquet", n_users, n_movies, scale)
    load_before = os.getloadavg()

    jobs = []
    for name, block in config["models"].items():
        block = {k: v for k, v in block.items() if k not in ("pretrain", "init_from")}
        if "pretrain" in config["models"][name]:
            pre = config["models"][name]["pretrain"]
            stage = f"{name} (pretrain)"
            jobs.append(training_job(stage, pre, train, val, n_users, n_movies, scale))
        jobs.append(training_job(name, block, train, val, n_users, n_movies, scale))
        print(json.dumps(jobs[-1]), flush=True)
    for job in jobs:
        job["count"] = replicates
    parts = read_part(split / "train.parquet", ("user", "movie"))
    seen = recommend.Seen.from_pairs(parts["user"], parts["movie"], n_users)
    n = int(config["recommend"]["n"])
    for arch, models_of_arch in (("mlp", ["mlp"]), ("dot", None)):
        users = args.list_users if arch == "mlp" else 10 * args.list_users
        seconds = top_n_job(config["models"][arch], seen, n_users, n_movies, users, n)
        count = len(models_of_arch or [m for m in config["models"] if m != "mlp"])
        jobs.append({"job": f"recommend ({arch} scoring)", "seconds": seconds,
                     "count": count * replicates})  # fmt: skip
    train_np = read_part(split / "train.parquet")
    for peer in peer_jobs(
        train_np, config, args.peer_sample, n_users, n_movies, scale, args.myfm_iters
    ):
        jobs.append({**peer, "count": 1})

    total = sum(j["seconds"] * j["count"] for j in jobs)
    lines = [
        f"# Projected cost of the default DAG on {dataset} ({datetime.date.today()})",
        "",
        f"{len(train):,} training ratings, {n_users:,} users x {n_movies:,} movies; "
        f"{args.threads} threads; load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}.",
        "",
        "| job | seconds per job | jobs | seconds |",
        "|---|--:|--:|--:|",
    ]
    for j in sorted(jobs, key=lambda j: -j["seconds"] * j["count"]):
        rate = f" ({j['ratings_per_s'] / 1e6:.3f}M ratings/s)" if "ratings_per_s" in j else ""
        lines.append(
            f"| {j['job']}{rate} | {j['seconds']:,.0f} | {j['count']} | "
            f"{j['seconds'] * j['count']:,.0f} |"
        )
    wall_h = total / args.threads / 3600
    lines += ["", f"Total job time: {total:,.0f} s ({total / 3600:.1f} h); "
              f"on {args.threads} cores at best {wall_h:.1f} h wall."]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"jobs": jobs, "total_s": total}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
