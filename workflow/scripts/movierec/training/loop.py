"""`fit`: the training loop, plain at the centre, with a choice of engine.

For each epoch of the learning-rate schedule: a fresh permutation of the
training ratings from a seeded `torch.Generator`, batches taken as slices of
tensors already on the device (no `DataLoader`, no per-batch collation), one
optimizer step per batch, then validation in large batches without
gradients, with predictions clipped to the rating scale. The state of the
best epoch (lowest validation RMSE, or best ranking score) is kept and loaded
back at the end; with ``average_from``, what is validated and kept from that
epoch on is the mean of the weights since then (`movierec.training.averaging`).
The same settings on the same machine give the same numbers
(CPU; timing fields aside).

The step itself is an engine's: ``reference`` (`movierec.training.reference`,
autograd with torch's own optimizers: read it to know what training computes)
or ``fast`` (`movierec.training.fast`, the same arithmetic, several times
quicker on CPU; tests hold the two equal).
"""

import contextlib
import logging
import math
import time

import torch

from movierec import models
from movierec.training import fast, reference
from movierec.training.averaging import WeightAverage

log = logging.getLogger(__name__)

#: Ratings per validation batch.
EVAL_BATCH = 1 << 16

ENGINES = ("fast", "reference")


def check_phases(phases):
    """Validate a learning-rate schedule: a non-empty list of {lr > 0, epochs >= 1}."""
    if not isinstance(phases, list | tuple) or not phases:
        raise ValueError(f"phases must be a non-empty list of {{lr, epochs}}, got {phases!r}")
    for i, phase in enumerate(phases):
        if not isinstance(phase, dict):
            raise ValueError(f"phases[{i}] must be a mapping {{lr, epochs}}, got {phase!r}")
        lr, epochs = phase.get("lr"), phase.get("epochs")
        if not (isinstance(lr, int | float) and lr > 0):
            raise ValueError(f"phases[{i}]: lr must be a positive number, got {lr!r}")
        if not (isinstance(epochs, int) and epochs >= 1):
            raise ValueError(f"phases[{i}]: epochs must be an integer >= 1, got {epochs!r}")


@torch.no_grad()
def evaluate(model, ratings, rating_scale, batch_size=EVAL_BATCH):
    """Validation metrics: RMSE and MAE of clipped predictions (hybrid: both heads).

    Returns
    -------
    dict
        ``rmse``, ``mae`` and, for a hybrid, ``rmse_linear``.
    """
    was_training = model.training
    model.eval()
    low, high = rating_scale
    n = len(ratings)
    sq = torch.zeros((), dtype=torch.float64, device=ratings.rating.device)
    ab = torch.zeros_like(sq)
    sq_lin = torch.zeros_like(sq)
    hybrid = isinstance(model, models.HybridModel)
    for start in range(0, n, batch_size):
        u = ratings.user[start : start + batch_size]
        m = ratings.movie[start : start + batch_size]
        r = ratings.rating[start : start + batch_size]
        if hybrid:
            pred, linear = model.heads(u, m)
            err_lin = linear.clamp(low, high) - r
            sq_lin += torch.dot(err_lin, err_lin).double()
        else:
            pred = model(u, m)
        err = pred.clamp(low, high) - r
        sq += torch.dot(err, err).double()
        ab += err.abs().sum().double()
    model.train(was_training)
    out = {"rmse": math.sqrt(sq.item() / n), "mae": ab.item() / n}
    if hybrid:
        out["rmse_linear"] = math.sqrt(sq_lin.item() / n)
    return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_epoch(engine, train, generator, batch_size, lr, budget, progress):
    """One pass over a fresh permutation of `train`; stops early after `budget` steps.

    Returns
    -------
    (float, int, int)
        Summed squared training error, ratings seen, optimizer steps taken.
    """
    device = train.rating.device
    _sync(device)
    started = time.perf_counter()
    engine.start_epoch(generator)
    n = len(train)
    perm = torch.randperm(n, generator=generator, device=device)
    # index_select, not train.user[perm]: on CPU the same gather in half the time.
    user, movie, rating = (t.index_select(0, perm) for t in train)
    sse = torch.zeros((), dtype=torch.float64, device=device)
    seen = steps = 0
    label, every_s = progress
    last_note = started
    for start in range(0, n, batch_size):
        if budget is not None and steps >= budget:
            break
        stop = min(start + batch_size, n)
        sse += engine.train_batch(user[start:stop], movie[start:stop], rating[start:stop], lr)
        seen += stop - start
        steps += 1
        now = time.perf_counter()
        if now - last_note >= every_s:
            last_note = now
            log.info(
                "%s: %.0f%% of %d ratings, %.3g ratings/s",
                label, 100.0 * seen / n, n, seen / (now - started),
            )  # fmt: skip
    engine.sync()
    _sync(device)
    return float(sse.item()), seen, steps


def fit(
    model,
    train,
    val,
    *,
    phases,
    batch_size,
    rating_scale,
    weight_decay=0.0,
    loss_weights=None,
    seed=1,
    device="cpu",
    max_steps=None,
    patience=None,
    average_from=None,
    val_ranking=None,
    engine="fast",
    progress_every_s=10.0,
):
    """Train `model` on `train`, validating on `val` every epoch.

    Parameters
    ----------
    model : torch.nn.Module
        From `models.build_model`; trained in place, and at the end holds the
        best epoch's weights (on `device`).
    train, val : Ratings
        On any device; moved to `device`.
    phases : list of dict
        Learning-rate schedule: ``[{"lr": 0.01, "epochs": 10}, ...]`` run in order.
    batch_size : int
        Ratings per optimizer step (the last batch of an epoch may be smaller).
    rating_scale : (float, float)
        Validation predictions are clipped to it.
    weight_decay : float
        L2 on embedding rows (and biases) per use in a batch.
    loss_weights : dict, optional
        Hybrid only: ``{"linear": 0.2, "dot": 1.0}``.
    seed : int
        Seeds the generator of batch order and dropout masks.
    device : str or torch.device
    max_steps : int, optional
        Stop after this many optimizer steps (benchmarks); the last epoch is
        then partial and is validated and recorded like the others.
    patience : int, optional
        Early stopping: stop when this many epochs in a row have not improved
        on the best validation RMSE (None: run the whole schedule).
    average_from : int, optional
        From this epoch on, validation scores (and the kept checkpoint is) the
        mean of the weights after each epoch since then
        (`movierec.training.averaging`); None: the weights as they are.
    val_ranking : callable, optional
        ``val_ranking(model) -> float``, higher is better, with a ``name``
        (`negatives.ValRanking`: validation NDCG@10). When given, every
        epoch records it and the kept epoch (and early stopping) follows it
        instead of the validation RMSE: a model trained to rank is chosen
        by how it ranks.
    engine : str
        ``fast`` or ``reference`` (see the module docstring).
    progress_every_s : float
        Seconds between progress lines within a long epoch.

    Returns
    -------
    dict
        What training chose and how it went (``history.json``): ``val_rmse``
        and ``val_mae`` of the kept checkpoint, ``best_epoch`` (the argmin of
        the per-epoch validation RMSE, the epoch whose weights are kept),
        ``stopped_epoch``, ``n_params``, ``history`` (one record per epoch:
        ``epoch, phase, lr, train_mse, val_rmse, val_mae, seconds,
        ratings_per_s``; hybrid adds ``val_rmse_linear``, and
        ``val_rmse_linear`` of the kept checkpoint at the top), ``device``,
        ``engine``, ``train_seconds``. Only validation is seen here: the test
        set is scored by `movierec.evaluation` after training.
    """
    check_phases(phases)
    n_epochs = sum(int(p["epochs"]) for p in phases)
    if average_from is not None and not 1 <= average_from <= n_epochs:
        raise ValueError(
            f"average_from {average_from} is outside the schedule's epochs 1-{n_epochs} "
            "(phases): nothing would be averaged; lower it, or null for no averaging"
        )
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"need training and validation ratings, got {len(train)} and {len(val)}")
    device = torch.device(device)
    model.to(device)
    model.train()
    train = train.to(device)
    val = val.to(device)
    # Data-dependent init: a raw score of 0 (an unseen user or movie) predicts the mean.
    models.set_output_offset(model, float(train.rating.double().mean()))
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    hybrid = isinstance(model, models.HybridModel)
    if hybrid and loss_weights is None:
        raise ValueError("a hybrid model needs loss_weights {linear, dot}")
    if engine == "fast":
        step = fast.make_engine(
            model, weight_decay=weight_decay, loss_weights=loss_weights, batch_size=batch_size,
            device=device, seed=int(seed),
        )  # fmt: skip
    else:
        step = reference.ReferenceEngine(model, weight_decay, loss_weights, int(seed))
    generator = torch.Generator(device=device).manual_seed(int(seed))
    log.info(
        "training %s (%s step) on %s: %d ratings, batch %d, %d epochs, %d parameters",
        type(model).__name__, step.name, device, len(train), batch_size, n_epochs,
        sum(p.numel() for p in model.parameters()),
    )  # fmt: skip
    schedule = [(i, float(p["lr"])) for i, p in enumerate(phases) for _ in range(int(p["epochs"]))]
    records = []
    best = None  # (criterion, epoch, state) of the kept epoch
    average = None if average_from is None else WeightAverage(model)
    steps = 0
    train_seconds = 0.0
    try:
        for epoch, (phase_index, lr) in enumerate(schedule, start=1):
            started = time.perf_counter()
            budget = None if max_steps is None else max_steps - steps
            sse, seen, n_steps = _train_epoch(
                step, train, generator, batch_size, lr, budget,
                progress=(f"epoch {epoch}/{len(schedule)}", progress_every_s),
            )  # fmt: skip
            steps += n_steps
            trained = time.perf_counter() - started
            if average is not None and epoch >= average_from:
                average.add()
            with average.swapped_in() if average is not None else contextlib.nullcontext():
                metrics = evaluate(model, val, rating_scale)
                ranking = None if val_ranking is None else val_ranking(model)
                # The kept epoch minimises validation RMSE, or minus the ranking score.
                criterion = metrics["rmse"] if val_ranking is None else -ranking
                if best is None or criterion < best[0]:
                    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    best = (criterion, epoch, state)
            _sync(device)
            seconds = time.perf_counter() - started
            train_seconds += trained
            record = {
                "epoch": epoch,
                "phase": phase_index,
                "lr": lr,
                "train_mse": sse / seen,
                "val_rmse": metrics["rmse"],
                "val_mae": metrics["mae"],
                "seconds": seconds,
                "ratings_per_s": seen / trained if trained > 0 else float("inf"),
            }
            if average is not None:
                record["averaged_epochs"] = average.count
            if hybrid:
                record["val_rmse_linear"] = metrics["rmse_linear"]
            if val_ranking is not None:
                record[val_ranking.name] = ranking
            records.append(record)
            log.info(
                "epoch %d/%d (phase %d, lr %g): train_mse %.4f val_rmse %.4f val_mae %.4f%s"
                " | %.2f s, %.3g ratings/s",
                epoch, len(schedule), phase_index, lr, record["train_mse"], record["val_rmse"],
                record["val_mae"],
                f" val_rmse_linear {record['val_rmse_linear']:.4f}" if hybrid else "",
                seconds, record["ratings_per_s"],
            )  # fmt: skip
            if not math.isfinite(record["train_mse"]):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch} (train_mse {record['train_mse']}); "
                    f"lower the learning rate (phase {phase_index}: lr {lr})"
                )
            if max_steps is not None and steps >= max_steps:
                break
            if patience is not None and epoch - best[1] >= patience:
                log.info("early stop after epoch %d: no improvement for %d epochs", epoch, patience)
                break
    finally:
        step.finish()
    model.load_state_dict(best[2])
    kept = records[best[1] - 1]
    result = {
        "val_rmse": kept["val_rmse"],
        "val_mae": kept["val_mae"],
        "best_epoch": best[1],
        "stopped_epoch": records[-1]["epoch"],
        "n_params": sum(p.numel() for p in model.parameters()),
        "history": records,
        "device": str(device),
        "engine": step.name,
        "train_seconds": train_seconds,
    }
    if hybrid:
        # The linear head of the kept checkpoint (not the best linear epoch).
        result["val_rmse_linear"] = kept["val_rmse_linear"]
    if val_ranking is not None:
        result["selected_by"] = val_ranking.name
        result[val_ranking.name] = kept[val_ranking.name]
    log.info("best epoch %d: val_rmse %.4f", best[1], kept["val_rmse"])
    return result
