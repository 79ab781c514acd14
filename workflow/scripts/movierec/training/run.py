"""`train_model`: what the train_model and pretrain_model rules run."""

import dataclasses
import logging

import torch

from movierec import models
from movierec.settings import ModelSettings
from movierec.training.data import count_rows, read_ratings
from movierec.training.device import resolve_device
from movierec.training.loop import fit

log = logging.getLogger(__name__)


def train_model(
    *,
    train_path,
    val_path,
    users_path,
    movies_path,
    settings,
    rating_scale,
    model_pt,
    model_json,
    history_json,
    init=None,
    movie_vectors=None,
    threads=1,
    gpus=0,
):
    """What the train_model and pretrain_model rules run: read, build, fit, save.

    Reads training and validation ratings only; the test set is not an input
    of these rules (see `movierec.evaluation`).

    Parameters
    ----------
    train_path, val_path : path
        ``split/train.parquet`` and ``split/val.parquet``.
    users_path, movies_path : path
        The id maps; their row counts size the embedding tables and their
        paths are recorded in ``model.json``.
    settings : dict
        The model's block of config.yaml, complete as the schema fills it
        (a ``pretrain`` key in it is ignored: that is the rule's ``init``).
    rating_scale : (float, float)
    model_pt, model_json, history_json : path
        Outputs, each written atomically (``history_json``: what `fit` returns).
    movie_vectors : path, optional
        Also write the model's movie vectors there (`movierec.vectors`), for
        the reports.
    init : path, or a list of at most one path, optional
        A pretrained ``model.pt`` whose embeddings (and biases) initialise
        this model (the finetune half of mlp_then_dot / hybrid_then_dot);
        a rule's ``input.init`` as it comes, [] for a model without pretrain.
    threads : int
        `torch.set_num_threads` (the rule's ``threads``).
    gpus : int
        GPUs the job was promised (the rule's ``gpu`` resource); see resolve_device.
    """
    from movierec import atomic, checkpoint, vectors

    init = checkpoint.init_path(init)
    torch.set_num_threads(int(threads))
    settings = ModelSettings.from_block({k: v for k, v in settings.items() if k != "pretrain"})
    device = resolve_device(settings.device, gpus=gpus)
    low, high = (float(v) for v in rating_scale)
    n_users = count_rows(users_path)
    n_movies = count_rows(movies_path)
    train = read_ratings(train_path, n_users, n_movies, (low, high))
    val = read_ratings(val_path, n_users, n_movies, (low, high))
    rated = train  # what users chose to rate (before any sampled negatives)
    val_ranking = None
    if settings.negatives is not None:
        from movierec import negatives

        sampled = settings.negatives
        val_ranking = negatives.ValRanking(train, val, n_users, sampled.relevant_rating)
        before = len(train)
        train = negatives.add_negatives(
            train, n_movies, sampled.per_rating, sampled.rating, settings.seed
        )
        log.info("added %d sampled negatives to %d training ratings", len(train) - before, before)
    model = models.build_model(settings, n_users, n_movies)
    if hasattr(model, "set_neighbours"):  # implicit: who rated what, from training alone
        model.set_neighbours(rated.user, rated.movie)
    init_info = None
    if init:
        source, source_meta = checkpoint.load_model(init)
        for key, n in (("n_users", n_users), ("n_movies", n_movies)):
            if source_meta.get(key) != n:
                raise ValueError(
                    f"{init}: pretrained on {source_meta.get(key)} {key[2:]}, but this model "
                    f"has {n} (from {users_path if key == 'n_users' else movies_path})"
                )
        copied = models.transfer_embeddings(source, model)
        init_info = {"path": str(init), "arch": source_meta.get("arch"), "copied": copied}
        log.info("initialised %s from %s", ", ".join(copied), init)
    log.info("device %s, %d threads, torch %s", device, torch.get_num_threads(), torch.__version__)
    metrics = fit(
        model,
        train,
        val,
        phases=[dataclasses.asdict(phase) for phase in settings.phases],
        batch_size=settings.batch_size,
        rating_scale=(low, high),
        weight_decay=settings.weight_decay,
        loss_weights=dataclasses.asdict(settings.loss_weights),
        seed=settings.seed,
        device=device,
        patience=settings.patience,
        average_from=settings.average_from,
        val_ranking=val_ranking,
        engine=settings.engine,
    )
    meta = {
        "arch": settings.arch,
        "settings": settings.as_block(),
        "n_users": n_users,
        "n_movies": n_movies,
        "users": str(users_path),
        "movies": str(movies_path),
        "train": str(train_path),
        "val": str(val_path),
        "rating_scale": [low, high],
        "torch_version": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "init": init_info,
        # How it was trained (history.json holds what `fit` returns, minus this).
        "engine": metrics.pop("engine"),
    }
    checkpoint.save_model(model, meta, model_pt, model_json)
    if movie_vectors is not None:
        vectors.write_movie_vectors(movie_vectors, *vectors.model_vectors(model))
    atomic.write_json(history_json, metrics)
    return metrics
