"""Training benchmark: our loop against the `DataLoader` loop people usually write.

Issue 6 promises that `movierec.training.fit` trains the notebook's models one
to three orders of magnitude faster than a typical PyTorch loop. This module
measures that claim side by side, in one process, on the same split, the same
model modules and the same initial weights, so that load from other work on
the machine hits both loops alike (the two are run alternately, `repeats`
times, and the best run of each is kept: the least disturbed run is the best
estimate of a loop's cost).

Two loops:

* ours: `movierec.training.fit` with the model's config block (its batch
  size, learning rate, fused or row-wise sparse steps);
* naive (`naive_fit`): what a reader of the 2017 notebook writes in PyTorch:
  a `TensorDataset` and ``DataLoader(shuffle=True, batch_size=64)``, dense
  `nn.Embedding` tables, `torch.optim.Adam` over all parameters, and a
  per-batch ``loss.item()`` for the loss log.

Two measurements per training stage (a model with a ``pretrain`` block has
two stages, pretrain then train):

* speed: `steps` optimizer steps of ours and `naive_steps` of the naive loop
  (after `warmup_steps` untimed ones). When the steps need fewer ratings than
  the training set holds, each loop trains on a random subset of exactly that
  many ratings, so that the timed steps are one whole epoch of that subset:
  per-epoch costs (the permutation, the shuffle) are then counted in
  proportion, and ``epoch_seconds = n_train / ratings_per_s`` estimates a
  full epoch of either loop (the naive loop's epoch on a large set would take
  too long to time directly). The embedding tables keep their full size, so
  per-step costs that grow with the tables (dense Adam) are all there.
* accuracy: both loops train every stage for the same number of epochs
  (`epochs`; ours with the first epochs of the model's learning-rate phases,
  the naive loop at `naive_lr`), finetunes start from their own loop's
  pretrained embeddings, and the validation RMSE after the last epoch is
  reported for both (``epochs: 0`` skips this: on a large set one naive
  epoch takes too long). Both minimise the same objective: the MSE plus the
  config's per-use L2 (`l2_penalty`). With `full_schedule`, ours also trains
  the model's whole schedule (cheap for ours, and what the training rules
  reach), so the page shows both "same epochs" and "what you get".

The naive loop is warmed up at 1 thread and at the configured thread count
and timed at the faster (see `_threads_tried`): a baseline slowed by its
thread count would inflate the speedup.

A stage whose settings equal another model's (``hybrid_then_dot``'s pretrain
is ``hybrid``; a finetune's speed is that of the dot model with the same
block) is measured once and reused, as the DAG trains it once.
"""

import contextlib
import copy
import datetime
import json
import logging
import math
import os
import time

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from movierec import atomic, models, training

log = logging.getLogger(__name__)

#: Bench settings and their defaults (the schema's `bench:` section repeats them).
DEFAULTS = {
    "steps": 200,
    "naive_steps": 500,
    "naive_batch_size": 64,
    "naive_lr": 0.001,
    "warmup_steps": 3,
    "repeats": 3,
    "epochs": 1,
    "goals": {"dot": 100.0, "mlp": 10.0},
    "full_schedule": True,
    "seed": 0,
}

#: Steps of the naive loop's warm-up at each thread count (the faster count is timed).
PROBE_STEPS = 50

#: Validation ratings used inside speed runs (fit validates every epoch; the
#: time is not counted, but a small set keeps the wall time down).
SPEED_VAL_ROWS = 1024


def bench_settings(bench):
    """`bench` merged over `DEFAULTS`, checked.

    Raises
    ------
    ValueError
        Naming the key, its value and what was expected.
    """
    unknown = sorted(set(bench or {}) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"bench: unknown setting(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}"
        )
    out = copy.deepcopy(DEFAULTS)
    out.update(copy.deepcopy(dict(bench or {})))
    for key in ("steps", "naive_steps", "naive_batch_size", "repeats"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"bench.{key} must be an integer >= 1, got {value!r}")
    for key in ("warmup_steps", "epochs", "seed"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"bench.{key} must be an integer >= 0, got {value!r}")
    lr = out["naive_lr"]
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ValueError(f"bench.naive_lr must be a positive number, got {lr!r}")
    if not isinstance(out["full_schedule"], bool):
        raise ValueError(f"bench.full_schedule must be true or false, got {out['full_schedule']!r}")
    goals = out["goals"]
    if not isinstance(goals, dict) or any(
        isinstance(v, bool) or not isinstance(v, int | float) or v <= 0 for v in goals.values()
    ):
        raise ValueError(f"bench.goals must map model names to positive speedups, got {goals!r}")
    return out


def model_stages(settings, models_config=None):
    """The training stages of one model block: ``[(stage, settings), ...]`` in order.

    A block with ``pretrain`` gives ``pretrain`` then ``train``; one with
    ``init_from`` gives the named model's block (from `models_config`) as its
    ``pretrain`` stage; any other block just ``train``.
    """
    settings = copy.deepcopy(dict(settings))
    pretrain = settings.pop("pretrain", None)
    source = settings.get("init_from")
    if source is not None:
        pretrain = {k: v for k, v in models_config[source].items() if k != "pretrain"}
    stages = [] if pretrain is None else [("pretrain", dict(pretrain))]
    return stages + [("train", settings)]


def truncate_phases(phases, epochs):
    """The first `epochs` epochs of a learning-rate schedule, as phases."""
    training.check_phases(phases)
    out, left = [], int(epochs)
    for phase in phases:
        if left <= 0:
            break
        take = min(int(phase["epochs"]), left)
        out.append({"lr": float(phase["lr"]), "epochs": take})
        left -= take
    return out


def ratings_seen(n, batch_size, steps):
    """Ratings a loop over `n` ratings in batches of `batch_size` sees in `steps` steps."""
    per_epoch = math.ceil(n / batch_size)
    full, rest = divmod(int(steps), per_epoch)
    return full * n + min(rest * batch_size, n)


def subset(ratings, n, generator):
    """`n` random rows of `ratings` (all of them, in order, if it has no more)."""
    if n >= len(ratings):
        return ratings
    rows = torch.randperm(len(ratings), generator=generator)[:n].sort().values
    return training.Ratings(*(t[rows] for t in ratings))


def _init_offset(model, train):
    """fit's data-dependent start at the mean rating (both loops start alike)."""
    models.set_output_offset(model, float(train.rating.double().mean()))


def l2_penalty(model, user, movie):
    """Mean over a batch of the squared norms of the embedding and bias rows it uses.

    ``sum_i (|u_i|^2 + |m_i|^2 + b_u_i^2 + b_m_i^2) / B``: the per-use L2 of
    `movierec.training` (see its module docstring), written for autograd.
    Tables a model lacks (an mlp has no biases) add nothing.
    """
    total = 0.0
    for name, index in (
        ("user_emb", user), ("movie_emb", movie), ("user_bias", user), ("movie_bias", movie),
    ):  # fmt: skip
        table = getattr(model, name, None)
        if table is not None:
            total = total + table(index).square().sum()
    return total / user.shape[0]


def naive_fit(
    model,
    train,
    val,
    *,
    lr,
    batch_size,
    rating_scale,
    epochs=1,
    max_steps=None,
    weight_decay=0.0,
    loss_weights=None,
    seed=1,
    device="cpu",
):
    """Train the way a reader of the notebook would: `DataLoader`, dense Adam, ``.item()``.

    The reference for the benchmark, written plainly on purpose: a
    `TensorDataset` over the training tensors, a shuffling `DataLoader`,
    batches moved to the device one by one, `torch.optim.Adam` over every
    parameter (dense `nn.Embedding` gradients, so every row's moments and
    values are updated at every step), and the loss of each batch logged with
    ``.item()`` (a device synchronisation per step on a GPU).

    Parameters
    ----------
    model : torch.nn.Module
        From `models.build_model` (its embeddings are dense); trained in place.
    train, val : training.Ratings
    lr : float
        Adam's learning rate, constant.
    batch_size : int
    rating_scale : (float, float)
        Validation predictions are clipped to it.
    epochs : int
        Passes over `train`.
    max_steps : int, optional
        Stop after this many steps (speed runs).
    weight_decay : float
        Strength of the per-use L2 penalty added to the loss (`l2_penalty`):
        the objective our loop minimises. (Adam's own ``weight_decay`` would
        decay every row at every step, another objective: at the config's
        0.15 it flattens the model to the mean within an epoch.)
    loss_weights : dict, optional
        Hybrid only: ``{"linear": 0.2, "dot": 1.0}``.
    seed : int
        Seeds the shuffle.
    device : str or torch.device

    Returns
    -------
    dict
        ``seconds`` (training only), ``ratings``, ``steps``, ``ratings_per_s``,
        ``val_rmse`` (and ``val_rmse_linear`` for a hybrid) after the last
        epoch, and ``losses`` (mean of the logged batch losses per epoch).
    """
    device = torch.device(device)
    model.to(device)
    model.train()
    _init_offset(model, train)
    hybrid = isinstance(model, models.HybridModel)
    weights = loss_weights or {}
    w_linear, w_dot = float(weights.get("linear", 0.2)), float(weights.get("dot", 1.0))
    dataset = TensorDataset(train.user, train.movie, train.rating)
    loader = DataLoader(
        dataset,
        batch_size=int(batch_size),
        shuffle=True,
        generator=torch.Generator().manual_seed(int(seed)),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, steps, seen = [], 0, 0
    seconds = 0.0
    for _ in range(int(epochs)):
        started = time.perf_counter()
        epoch_losses = []
        for user, movie, rating in loader:
            user, movie, rating = user.to(device), movie.to(device), rating.to(device)
            optimizer.zero_grad()
            if hybrid:
                dot, linear = model.heads(user, movie)
                loss = w_dot * F.mse_loss(dot, rating) + w_linear * F.mse_loss(linear, rating)
            else:
                loss = F.mse_loss(model(user, movie), rating)
            if weight_decay:
                loss = loss + weight_decay * l2_penalty(model, user, movie)
            loss.backward()
            optimizer.step()
            epoch_losses.append(loss.item())
            steps += 1
            seen += rating.shape[0]
            if max_steps is not None and steps >= max_steps:
                break
        seconds += time.perf_counter() - started
        losses.append(sum(epoch_losses) / max(1, len(epoch_losses)))
        if max_steps is not None and steps >= max_steps:
            break
    metrics = training.evaluate(model, val.to(device), rating_scale)
    out = {
        "seconds": seconds,
        "ratings": seen,
        "steps": steps,
        "ratings_per_s": seen / seconds if seconds > 0 else float("inf"),
        "val_rmse": metrics["rmse"],
        "losses": losses,
    }
    if hybrid:
        out["val_rmse_linear"] = metrics["rmse_linear"]
    return out


def _fit_kwargs(settings, rating_scale, device):
    return dict(
        batch_size=int(settings.get("batch_size", 4096)),
        rating_scale=rating_scale,
        weight_decay=float(settings.get("weight_decay", 0.0)),
        loss_weights=settings.get("loss_weights"),
        seed=int(settings.get("seed", 1)),
        device=device,
    )


@contextlib.contextmanager
def _quiet(logger):
    """Silence `logger` below WARNING (fit's line per epoch of a speed run is noise)."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _ours_speed(settings, train, val, n_users, n_movies, steps, rating_scale, device):
    """Time `steps` steps of `training.fit`; returns (ratings/s, seconds, ratings, engine)."""
    kwargs = _fit_kwargs(settings, rating_scale, device)
    lr = float(settings["phases"][0]["lr"])
    epochs = math.ceil(steps * kwargs["batch_size"] / len(train))
    model = models.build_model(settings, n_users, n_movies)
    with _quiet(logging.getLogger("movierec.training")):
        result = training.fit(
            model, train, val, phases=[{"lr": lr, "epochs": epochs}], max_steps=steps, **kwargs
        )
    seen = ratings_seen(len(train), kwargs["batch_size"], steps)
    seconds = result["train_seconds"]
    return seen / seconds, seconds, seen, result["engine"]


def _naive_speed(settings, train, val, n_users, n_movies, steps, bench, rating_scale, device):
    kwargs = _fit_kwargs(settings, rating_scale, device)
    kwargs["batch_size"] = bench["naive_batch_size"]
    model = models.build_model(settings, n_users, n_movies)
    epochs = math.ceil(steps * kwargs["batch_size"] / len(train))
    result = naive_fit(
        model, train, val, lr=bench["naive_lr"], epochs=epochs, max_steps=steps, **kwargs
    )
    return result["ratings_per_s"], result["seconds"], result["ratings"]


def _threads_tried():
    """Thread counts the naive loop is timed at: 1 and the configured count.

    On a busy machine OpenMP's barriers make the naive loop's many small
    operations much slower with 2 threads than with 1; the baseline gets the
    better of the two, so a speedup is never an artefact of its thread count.
    """
    return sorted({1, torch.get_num_threads()})


def measure_speed(settings, train, val, n_users, n_movies, bench, rating_scale, device):
    """Ratings per second of both loops on one stage (best of `repeats` alternating runs).

    Our loop runs at the configured threads; the naive loop is warmed up
    at each of `_threads_tried` and timed at the faster (recorded as
    ``naive_threads``).

    Returns
    -------
    dict
        ``ratings_per_s``, ``naive_ratings_per_s``, ``speedup``, ``epoch_seconds``,
        ``naive_epoch_seconds`` (estimated for all of `train`), the timed runs'
        seconds, ``engine``, batch sizes, step counts and ``naive_threads``.
    """
    batch = int(settings.get("batch_size", 4096))
    naive_batch = bench["naive_batch_size"]
    generator = torch.Generator().manual_seed(bench["seed"])
    ours_train = subset(train, bench["steps"] * batch, generator)
    naive_train = subset(train, bench["naive_steps"] * naive_batch, generator)
    small_val = training.Ratings(*(t[:SPEED_VAL_ROWS] for t in val))
    threads = torch.get_num_threads()
    args = (small_val, n_users, n_movies)

    def ours(steps):
        return _ours_speed(settings, ours_train, *args, steps, rating_scale, device)

    def naive(steps, n_threads):
        torch.set_num_threads(n_threads)
        try:
            run = _naive_speed(settings, naive_train, *args, steps, bench, rating_scale, device)
        finally:
            torch.set_num_threads(threads)
        return (*run, n_threads)

    if bench["warmup_steps"]:
        ours(bench["warmup_steps"])
    # Warm up the naive loop at each thread count, then time it at the faster one.
    probe_steps = max(bench["warmup_steps"], min(bench["naive_steps"], PROBE_STEPS))
    probes = [naive(probe_steps, n_threads) for n_threads in _threads_tried()]
    naive_threads = max(probes, key=lambda run: run[0])[3]
    ours_runs, naive_runs = [], []
    for _ in range(bench["repeats"]):
        ours_runs.append(ours(bench["steps"]))
        naive_runs.append(naive(bench["naive_steps"], naive_threads))
    best = max(ours_runs, key=lambda run: run[0])
    naive_best = max(naive_runs, key=lambda run: run[0])
    return {
        "arch": settings["arch"],
        "engine": best[3],
        "batch_size": batch,
        "naive_batch_size": naive_batch,
        "steps": bench["steps"],
        "naive_steps": bench["naive_steps"],
        "threads": threads,
        "naive_threads": naive_best[3],
        "ratings_per_s": best[0],
        "naive_ratings_per_s": naive_best[0],
        "speedup": best[0] / naive_best[0],
        "epoch_seconds": len(train) / best[0],
        "naive_epoch_seconds": len(train) / naive_best[0],
        "timed_seconds": [run[1] for run in ours_runs],
        "naive_timed_seconds": [run[1] for run in naive_runs],
        "timed_ratings": best[2],
        "naive_timed_ratings": naive_best[2],
    }


def train_both_skipped():
    """`train_both`'s figures when no accuracy run is made (``epochs`` 0)."""
    return {
        "epochs": 0,
        "val_rmse": None,
        "naive_val_rmse": None,
        "train_seconds": None,
        "naive_train_seconds": None,
    }


def train_both(settings, init, train, val, n_users, n_movies, bench, rating_scale, device):
    """Train one stage with both loops for `bench["epochs"]` epochs, and ours for all.

    Parameters
    ----------
    init : (torch.nn.Module or None, torch.nn.Module or None, torch.nn.Module or None) or None
        The pretrained modules a finetune starts from: ours after the same
        epochs, naive, and ours after its whole schedule (None where that run
        was skipped: ``bench["epochs"]`` 0, ``bench["full_schedule"]`` off).

    Returns
    -------
    (dict, tuple)
        ``epochs``, ``val_rmse`` and ``naive_val_rmse`` after the last epoch
        of each loop and their ``train_seconds`` (None with ``epochs`` 0); with
        the full schedule also ``full_epochs``, ``full_best_val_rmse`` and
        ``full_train_seconds`` of ours. Then the three trained modules, in
        `init`'s order (None where not trained).
    """
    epochs = bench["epochs"]
    kwargs = _fit_kwargs(settings, rating_scale, device)
    trained = [models.build_model(settings, n_users, n_movies) for _ in range(3)]
    if init is not None:
        for source, target in zip(init, trained, strict=True):
            if source is not None:
                models.transfer_embeddings(source, target)
    ours, naive, full = trained
    out = train_both_skipped()
    if epochs:
        result = training.fit(
            ours, train, val, phases=truncate_phases(settings["phases"], epochs), **kwargs
        )
        last = result["history"][-1]
        naive_kwargs = dict(kwargs, batch_size=bench["naive_batch_size"])
        naive_result = naive_fit(
            naive, train, val, lr=bench["naive_lr"], epochs=epochs, **naive_kwargs
        )
        out.update(
            epochs=len(result["history"]),
            val_rmse=last["val_rmse"],
            naive_val_rmse=naive_result["val_rmse"],
            train_seconds=result["train_seconds"],
            naive_train_seconds=naive_result["seconds"],
        )
        if "val_rmse_linear" in last:
            out["val_rmse_linear"] = last["val_rmse_linear"]
            out["naive_val_rmse_linear"] = naive_result["val_rmse_linear"]
    else:
        ours = naive = None
    if bench["full_schedule"] and (init is None or init[2] is not None):
        full_result = training.fit(full, train, val, phases=settings["phases"], **kwargs)
        out["full_epochs"] = len(full_result["history"])
        out["full_best_val_rmse"] = full_result["val_rmse"]
        out["full_train_seconds"] = full_result["train_seconds"]
    else:
        full = None
    return out, (ours, naive, full)


def _key(settings):
    return json.dumps(settings, sort_keys=True, default=str)


def _combine(stages, n_train):
    """A model's figures from its stages: one epoch of each stage, back to back."""
    epoch = sum(s["epoch_seconds"] for s in stages)
    naive_epoch = sum(s["naive_epoch_seconds"] for s in stages)
    ratings = n_train * len(stages)
    return {
        "ratings_per_s": ratings / epoch,
        "naive_ratings_per_s": ratings / naive_epoch,
        "speedup": naive_epoch / epoch,
        "epoch_seconds": epoch,
        "naive_epoch_seconds": naive_epoch,
    }


def run_benchmark(models_config, bench, train, val, n_users, n_movies, rating_scale):
    """Measure every model of `models_config`; returns ``{model: figures}``.

    See the module docstring for what is measured. Each model's figures are
    those of its last (``train``) stage for batch sizes, engine and
    validation RMSE; speed figures combine its stages (one epoch of each).
    """
    speeds, trained = {}, {}
    out = {}
    for name, block in models_config.items():
        stages = []
        init = None
        init_key = None
        for stage, settings in model_stages(block, models_config):
            device = training.resolve_device(settings.get("device", "auto"))
            key = _key(settings)
            if key not in speeds:
                log.info("%s %s: timing both loops", name, stage)
                speeds[key] = measure_speed(
                    settings, train, val, n_users, n_movies, bench, rating_scale, device
                )
            else:
                log.info("%s %s: same settings as a stage measured before, reused", name, stage)
            train_key = (key, init_key)
            if train_key not in trained and not (bench["epochs"] or bench["full_schedule"]):
                trained[train_key] = (train_both_skipped(), (None, None, None))
            elif train_key not in trained:
                log.info("%s %s: training for the accuracy columns", name, stage)
                trained[train_key] = train_both(
                    settings, init, train, val, n_users, n_movies, bench, rating_scale, device
                )
            accuracy, modules = trained[train_key]
            record = {"stage": stage, "device": str(device), **speeds[key], **accuracy}
            stages.append(record)
            log.info(
                "%s %s: %.3g ratings/s vs naive %.3g (%.1fx); val_rmse %s vs naive %s",
                name, stage, record["ratings_per_s"], record["naive_ratings_per_s"],
                record["speedup"], _fmt_rmse(record["val_rmse"]),
                _fmt_rmse(record["naive_val_rmse"]),
            )  # fmt: skip
            init, init_key = modules, train_key
        last = stages[-1]
        figures = {
            "device": last["device"],
            "engine": last["engine"],
            "batch_size": last["batch_size"],
            "naive_batch_size": last["naive_batch_size"],
            **_combine(stages, len(train)),
            "epochs": last["epochs"],
            "val_rmse": last["val_rmse"],
            "naive_val_rmse": last["naive_val_rmse"],
            "naive_threads": last["naive_threads"],
            "stages": stages,
        }
        if "full_best_val_rmse" in last:
            figures["full_epochs"] = sum(s["full_epochs"] for s in stages)
            figures["full_best_val_rmse"] = last["full_best_val_rmse"]
            figures["full_train_seconds"] = sum(s["full_train_seconds"] for s in stages)
        goal = bench["goals"].get(name)
        if goal is not None:
            figures["goal_speedup"] = float(goal)
            figures["goal_met"] = figures["speedup"] >= goal
        out[name] = figures
    return out


def _fmt_rmse(value):
    return "n/a" if value is None else f"{value:.4f}"


def _fmt_rate(value):
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


def markdown(result):
    """The benchmark as a Markdown page: how it was measured, then one row per model and stage."""
    bench = result["settings"]
    full = bench["full_schedule"]
    lines = [
        f"# Training benchmark: {result['dataset']}",
        "",
        f"Measured {result['date']} on {result['machine']} "
        f"(torch {result['torch']}, {result['threads']} threads; load average "
        f"{result['load_average_before']:.2f} before, {result['load_average_after']:.2f} after).",
        f"Training set: {result['n_train']:,} ratings ({result['n_users']:,} users, "
        f"{result['n_movies']:,} movies); validation: {result['n_val']:,}.",
        "",
        f"Command: `{result['command']}`",
        "",
        "- **ours**: `movierec.training.fit` with each model's config block (its batch size "
        f"and learning rates), at {result['threads']} threads.",
        f"- **naive**: `TensorDataset` + `DataLoader(shuffle=True, "
        f"batch_size={bench['naive_batch_size']})`, dense `nn.Embedding`, "
        f"`torch.optim.Adam(lr={bench['naive_lr']})`, per-batch `loss.item()`, the same "
        "per-use L2 as ours added to the loss; warmed up at 1 and "
        f"{result['threads']} threads and timed at the faster.",
        f"- **Speed**: {bench['steps']} steps of ours and {bench['naive_steps']} of naive "
        f"after {bench['warmup_steps']} warm-up steps, best of {bench['repeats']} "
        "alternating runs; epoch s = training ratings / ratings per second (estimated "
        "from those steps).",
        f"- **Accuracy budget**: both loops train each stage for {bench['epochs']} epoch(s) "
        "from the same initial weights (a finetune from its own loop's pretrain); "
        "validation RMSE after that epoch (the dot head for hybrids)."
        if bench["epochs"]
        else "- **Accuracy budget**: none (bench.epochs is 0): speed only.",
    ]
    if full:
        lines.append(
            "- **Full schedule**: ours also trains each stage for its whole configured "
            "schedule: best validation RMSE and training seconds (all stages)."
        )
    lines += [
        "- A model with a pretrain stage: its first row combines one epoch of each stage.",
        "",
    ]
    header = [
        "model", "stage", "device", "batch", "naive batch", "ratings/s", "naive ratings/s",
        "speedup", "goal", "epoch s", "naive epoch s",
    ]  # fmt: skip
    epochs = bench["epochs"]
    if epochs:
        header += [f"val RMSE ({epochs} ep)", f"naive val RMSE ({epochs} ep)"]
    if full:
        header += ["full schedule: epochs", "val RMSE", "seconds"]
    lines.append("| " + " | ".join(header) + " |")
    align = ["---", "---", "---"] + ["--:"] * 5 + ["---"] + ["--:"] * (len(header) - 9)
    lines.append("|" + "|".join(align) + "|")
    for name, fig in result["models"].items():
        goal = ""
        if "goal_speedup" in fig:
            goal = f">= {fig['goal_speedup']:g}x: {'met' if fig['goal_met'] else 'MISSED'}"
        multi = len(fig["stages"]) > 1
        rows = [(name, "all" if multi else "train", fig, goal)]
        if multi:
            rows += [("", s["stage"], s, "") for s in fig["stages"]]
        for label, stage, row, goal_text in rows:
            cells = [
                label, stage, row["device"], str(row["batch_size"]),
                str(row["naive_batch_size"]), _fmt_rate(row["ratings_per_s"]),
                _fmt_rate(row["naive_ratings_per_s"]), f"{row['speedup']:.1f}x", goal_text,
                f"{row['epoch_seconds']:.3g}", f"{row['naive_epoch_seconds']:.3g}",
            ]  # fmt: skip
            if epochs:
                cells += [_fmt_rmse(row["val_rmse"]), _fmt_rmse(row["naive_val_rmse"])]
            if full:
                cells += [
                    str(row.get("full_epochs", "")),
                    f"{row['full_best_val_rmse']:.4f}" if "full_best_val_rmse" in row else "",
                    f"{row['full_train_seconds']:.2f}" if "full_train_seconds" in row else "",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _machine():
    cores = f"{os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        return f"{cores}, {torch.cuda.get_device_name(0)}"
    return cores


def benchmark_training(
    *,
    train_path,
    val_path,
    users_path,
    movies_path,
    models_config,
    bench,
    rating_scale,
    dataset,
    json_path,
    md_path,
    threads=1,
    command=None,
):
    """What the benchmark_training rule runs: read the split, measure, write JSON and Markdown.

    Parameters
    ----------
    train_path, val_path : path
        The split files.
    users_path, movies_path : path
        The id maps (their row counts size the embedding tables).
    models_config : dict
        ``models:`` of config.yaml (each block with its ``pretrain``, if any).
    bench : dict
        ``bench:`` of config.yaml (see `DEFAULTS`).
    rating_scale : (float, float)
    dataset : str
        Named in the outputs.
    json_path, md_path : path
        Outputs, written atomically.
    threads : int
        `torch.set_num_threads` (the rule's ``threads``), for both loops.
    command : str, optional
        The command to print in the Markdown page.
    """
    bench = bench_settings(bench)
    if not models_config:
        raise ValueError("models: no model to benchmark")
    torch.set_num_threads(int(threads))
    load_before = os.getloadavg()[0]
    low, high = (float(v) for v in rating_scale)
    n_users = training.count_rows(users_path)
    n_movies = training.count_rows(movies_path)
    train = training.read_ratings(train_path, n_users, n_movies, (low, high))
    val = training.read_ratings(val_path, n_users, n_movies, (low, high))
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"{train_path}, {val_path}: need training and validation ratings, "
            f"got {len(train)} and {len(val)}"
        )
    log.info(
        "benchmarking %d models on %s: %d training ratings, %d threads",
        len(models_config), dataset, len(train), torch.get_num_threads(),
    )  # fmt: skip
    figures = run_benchmark(models_config, bench, train, val, n_users, n_movies, (low, high))
    result = {
        "dataset": dataset,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "n_train": len(train),
        "n_val": len(val),
        "n_users": n_users,
        "n_movies": n_movies,
        "command": command or f"snakemake -j2 results/benchmarks/training-{dataset}.json",
        "settings": bench,
        "models": figures,
    }
    atomic.write_json(json_path, result)
    atomic.write_text(md_path, markdown(result))
    return result
