"""The typical training loop the benchmark measures ours against, and timing helpers."""

import time

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from movierec import models
from movierec.training import Ratings, evaluate
from movierec.training.reference import table_rows_penalty


def naive_fit(
    model, train, val, *, lr, batch_size, rating_scale, weight_decay, loss_weights, seed,
    max_steps=None, target=None, budget_s=None, device="cpu",
):  # fmt: skip
    """Train the way a reader of the notebook would: `DataLoader`, dense Adam, ``.item()``.

    Written plainly on purpose: a `TensorDataset` over the training tensors, a
    shuffling `DataLoader`, batches moved to the device one by one,
    `torch.optim.Adam` over every parameter (dense `nn.Embedding` gradients,
    so every row's moments and values are updated at every step), the loss
    of each batch read with ``.item()``. It minimises our objective: the MSE
    plus the same per-use L2 (Adam's own ``weight_decay`` would decay every
    row at every step, another objective). The output starts at the mean, as
    `fit` starts it.

    Runs whole epochs, validating after each, until `max_steps` steps (speed
    runs), the validation RMSE is at most `target`, or `budget_s` wall seconds
    have passed (whichever comes first; without any of them, one epoch).

    Returns
    -------
    dict
        ``ratings_per_s`` and ``seconds`` of training alone, ``ratings``,
        ``steps``, and ``history`` (per epoch: ``val_rmse`` and ``seconds``,
        training plus validation).
    """
    device = torch.device(device)
    model.to(device).train()
    models.set_output_offset(model, float(train.rating.double().mean()))
    heads = getattr(model, "heads", None)
    loader = DataLoader(
        TensorDataset(train.user, train.movie, train.rating),
        batch_size=int(batch_size),
        shuffle=True,
        generator=torch.Generator().manual_seed(int(seed)),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    val = val.to(device)
    history, steps, seen, train_seconds = [], 0, 0, 0.0
    started = time.perf_counter()
    while True:
        epoch_start = time.perf_counter()
        for user, movie, rating in loader:
            user, movie, rating = user.to(device), movie.to(device), rating.to(device)
            optimizer.zero_grad()
            if heads is not None:
                dot, linear = heads(user, movie)
                loss = loss_weights["dot"] * F.mse_loss(dot, rating)
                loss = loss + loss_weights["linear"] * F.mse_loss(linear, rating)
            else:
                loss = F.mse_loss(model(user, movie), rating)
            if weight_decay:
                loss = loss + weight_decay * table_rows_penalty(model, user, movie) / len(rating)
            loss.backward()
            optimizer.step()
            loss.item()
            steps += 1
            seen += len(rating)
            if max_steps is not None and steps >= max_steps:
                break
        train_seconds += time.perf_counter() - epoch_start
        rmse = evaluate(model, val, rating_scale)["rmse"]
        history.append({"val_rmse": rmse, "seconds": time.perf_counter() - epoch_start})
        model.train()
        if max_steps is not None and steps >= max_steps:
            break
        if target is not None and rmse <= target:
            break
        if budget_s is None or time.perf_counter() - started >= budget_s:
            break
    return {
        "ratings_per_s": seen / train_seconds,
        "seconds": train_seconds,
        "ratings": seen,
        "steps": steps,
        "history": history,
    }


def seconds_to_target(history, target):
    """Wall seconds (training and validation) until the first epoch at or below `target`.

    None if no epoch of `history` reached it.
    """
    elapsed = 0.0
    for epoch in history:
        elapsed += epoch["seconds"]
        if epoch["val_rmse"] <= target:
            return elapsed
    return None


def subset(ratings, n, generator):
    """`n` random rows of `ratings` in their order (all of them if it has no more)."""
    if n >= len(ratings):
        return ratings
    rows = torch.randperm(len(ratings), generator=generator)[:n].sort().values
    return Ratings(*(t[rows] for t in ratings))


def ratings_seen(n, batch_size, steps):
    """Ratings a loop over `n` ratings in batches of `batch_size` sees in `steps` steps."""
    per_epoch = -(-n // batch_size)
    full, rest = divmod(int(steps), per_epoch)
    return full * n + min(rest * batch_size, n)
