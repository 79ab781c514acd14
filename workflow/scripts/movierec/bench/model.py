"""One model's benchmark: ours, the plain loop and the typical loop (rule benchmark_model)."""

import contextlib
import dataclasses
import logging
import os

import torch

from movierec import atomic, checkpoint, models
from movierec.bench.loops import naive_fit, ratings_seen, seconds_to_target, subset
from movierec.reports.inputs import read_json
from movierec.settings import ModelSettings
from movierec.training import Ratings, count_rows, fit, read_ratings, resolve_device

log = logging.getLogger(__name__)

#: Validation ratings inside speed runs (fit validates every epoch; that time is not
#: counted in ratings per second, and a small set keeps the wall time down).
SPEED_VAL_ROWS = 1024


@contextlib.contextmanager
def _quiet():
    """fit's line per epoch is noise in a speed run."""
    logger = logging.getLogger("movierec.training")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class Runs:
    """The three loops on one model: same initial weights, same objective, same data."""

    def __init__(self, settings, init, n_users, n_movies, rating_scale, device, naive):
        self.settings = settings
        self.init = init
        self.shape = (n_users, n_movies)
        self.device = device
        self.naive = naive  # naive_batch_size, naive_lr
        self.kwargs = dict(
            rating_scale=rating_scale,
            weight_decay=settings.weight_decay,
            loss_weights=dataclasses.asdict(settings.loss_weights),
            seed=settings.seed,
            device=device,
        )

    def model(self):
        model = models.build_model(self.settings, *self.shape)
        if self.init is not None:
            models.transfer_embeddings(self.init, model)
        return model

    def fit(self, engine, train, val, phases, max_steps=None, average_from=None):
        phases = [dataclasses.asdict(p) for p in phases]
        with _quiet():
            return fit(
                self.model(), train, val, phases=phases, batch_size=self.settings.batch_size,
                engine=engine, max_steps=max_steps, average_from=average_from, **self.kwargs,
            )  # fmt: skip

    def steps_per_s(self, engine, train, val, steps):
        """Ratings per second of `steps` optimizer steps of `fit` with `engine`."""
        epochs = -(-steps * self.settings.batch_size // len(train))
        phases = [dataclasses.replace(self.settings.phases[0], epochs=epochs)]
        result = self.fit(engine, train, val, phases, max_steps=steps)
        return ratings_seen(len(train), self.settings.batch_size, steps) / result["train_seconds"]

    def naive_fit(self, train, val, threads, **stop):
        current = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return naive_fit(
                self.model(), train, val, lr=self.naive["naive_lr"],
                batch_size=self.naive["naive_batch_size"], **self.kwargs, **stop,
            )  # fmt: skip
        finally:
            torch.set_num_threads(current)


def measure_speed(runs, train, val, bench):
    """Ratings per second of ours and plain (same batch) and naive: best of alternating runs.

    Each loop times its steps on a random subset of exactly as many ratings
    as the steps take (one whole epoch of it, so per-epoch costs count in
    proportion); tables keep their full size. The naive loop is warmed up at
    1 thread and at the job's threads and timed at the faster: a baseline
    slowed by OpenMP on small operations would inflate the speedup.
    """
    generator = torch.Generator().manual_seed(bench["seed"])
    ours_train = subset(train, bench["steps"] * runs.settings.batch_size, generator)
    naive_train = subset(train, bench["naive_steps"] * bench["naive_batch_size"], generator)
    small_val = Ratings(*(t[:SPEED_VAL_ROWS] for t in val))
    warm = bench["warmup_steps"]
    if warm:
        for engine in ("fast", "reference"):
            runs.steps_per_s(engine, ours_train, small_val, warm)
    probes = {
        n: runs.naive_fit(naive_train, small_val, n, max_steps=max(warm, 1))["ratings_per_s"]
        for n in sorted({1, torch.get_num_threads()})
    }
    naive_threads = max(probes, key=probes.get)
    best = {"fast": 0.0, "reference": 0.0, "naive": 0.0}
    for _ in range(bench["repeats"]):
        for engine in ("fast", "reference"):
            rate = runs.steps_per_s(engine, ours_train, small_val, bench["steps"])
            best[engine] = max(best[engine], rate)
        naive = runs.naive_fit(
            naive_train, small_val, naive_threads, max_steps=bench["naive_steps"]
        )
        best["naive"] = max(best["naive"], naive["ratings_per_s"])
    return {
        "ratings_per_s": best["fast"],
        "plain_ratings_per_s": best["reference"],
        "naive_ratings_per_s": best["naive"],
        "naive_threads": naive_threads,
    }


def time_to_target(runs, train, val, target, bench):
    """Wall seconds of each loop to a validation RMSE at or below `target` (None: never).

    Ours and plain train the model's whole schedule; the naive loop trains
    epochs at its constant learning rate until it reaches the target or
    ``budget_s`` runs out.
    """
    out = {}
    for prefix, engine in (("", "fast"), ("plain_", "reference")):
        # The model's own schedule, as the DAG trains it (iterate averaging included).
        result = runs.fit(engine, train, val, runs.settings.phases, runs.settings.average_from)
        out[f"{prefix}seconds_to_target"] = seconds_to_target(result["history"], target)
        out[f"{prefix}best_val_rmse"] = result["val_rmse"]
        out[f"{prefix}epochs"] = len(result["history"])
        if engine == "fast":  # the table times ours to each peer's validation RMSE too
            out["history"] = [
                {"val_rmse": e["val_rmse"], "seconds": e["seconds"]} for e in result["history"]
            ]
        log.info("%s: best val_rmse %.4f", engine, result["val_rmse"])
    naive = runs.naive_fit(
        train, val, torch.get_num_threads(), target=target, budget_s=bench["budget_s"]
    )
    out["naive_seconds_to_target"] = seconds_to_target(naive["history"], target)
    out["naive_best_val_rmse"] = min(e["val_rmse"] for e in naive["history"])
    out["naive_epochs"] = len(naive["history"])
    return out


def benchmark_model(
    *, model, train_path, val_path, users_path, movies_path, history_path, init, settings,
    bench, rating_scale, json_path, threads=1,
):  # fmt: skip
    """What the benchmark_model rule runs: one model's figures, as JSON.

    Parameters
    ----------
    model : str
        The model's name.
    history_path : path
        The DAG's ``history.json`` of the model (replicate 1): its validation
        RMSE is our best, and the target is ``(1 + target_margin)`` times it.
    init : path or list of at most one path
        The DAG's checkpoint the model starts from (its pretrain, or the
        model its ``init_from`` names); all three loops start from it.
    settings : dict
        The model's block (replicate 1's seed), complete as the schema fills it.
    bench : dict
        ``bench:`` of config.yaml.
    """
    torch.set_num_threads(int(threads))
    settings = ModelSettings.from_block({k: v for k, v in settings.items() if k != "pretrain"})
    device = resolve_device(settings.device)
    low, high = (float(v) for v in rating_scale)
    n_users, n_movies = count_rows(users_path), count_rows(movies_path)
    train = read_ratings(train_path, n_users, n_movies, (low, high))
    val = read_ratings(val_path, n_users, n_movies, (low, high))
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"{train_path}, {val_path}: need training and validation ratings, "
            f"got {len(train)} and {len(val)}"
        )
    init = checkpoint.init_path(init)
    source = checkpoint.load_model(init)[0] if init else None
    best = float(read_json(history_path, ("val_rmse",))["val_rmse"])
    target = best * (1.0 + bench["target_margin"])
    log.info("%s: target val_rmse %.4f (best %.4f), %d threads", model, target, best, threads)
    runs = Runs(settings, source, n_users, n_movies, (low, high), device, bench)
    figures = {
        "model": model,
        "arch": settings.arch,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_size": settings.batch_size,
        "naive_batch_size": bench["naive_batch_size"],
        "init": str(init) if init else None,
        "dag_best_val_rmse": best,
        "target_val_rmse": target,
        "budget_s": bench["budget_s"],
        "n_train": len(train),
        "load_average_before": os.getloadavg()[0],
        **measure_speed(runs, train, val, bench),
        **time_to_target(runs, train, val, target, bench),
        "load_average_after": os.getloadavg()[0],
    }
    atomic.write_json(json_path, figures)
    return figures
