"""The networks behind the recommenders: forward passes only.

`mlp`, `dot` and `hybrid` are the 2017 notebook's architectures as
`nn.Module`s; `mlp_then_dot` and `hybrid_then_dot` are a dot model whose
embeddings start from a pretrained mlp or hybrid (`transfer_embeddings`);
`implicit` is the dot model with SVD++-style implicit feedback
(`movierec.implicit_model`). Optimizers, epochs and data live in
`movierec.training` (spotlight style): a module here only maps (user, movie)
index tensors to predicted ratings.

Every module has ``user_emb`` and ``movie_emb`` (`nn.Embedding`, one row per
contiguous user or movie index of ``users.parquet`` / ``movies.parquet``);
dot and hybrid also have ``user_bias`` and ``movie_bias`` (`nn.Embedding(n,
1)`), so "bias of this movie" and "embedding of this movie" are one lookup
away for the reports.

The output scale (``y_range``, the ``offset`` set from the mean training
rating) and the seeded tables are in `movierec.model_layers`. This module
re-exports them and the implicit model, so every name it had stays here:
`models.ImplicitModel`, `models.OutputScale`, `models.set_output_offset`,
`models.INIT_STD`.
"""

import logging

import torch
from torch import nn

from movierec.implicit_model import NEIGHBOUR_BUFFERS, ImplicitModel
from movierec.model_layers import (
    INIT_STD,
    OutputScale,
    add_embeddings_and_biases,
    bias_tables,
    embedding,
    init_linear,
    set_output_offset,
)
from movierec.settings import ModelSettings

__all__ = [
    "INIT_STD",
    "NEIGHBOUR_BUFFERS",
    "DotModel",
    "HybridModel",
    "ImplicitModel",
    "MLPModel",
    "OutputScale",
    "build_model",
    "set_output_offset",
    "transfer_embeddings",
]

log = logging.getLogger(__name__)


class DotModel(nn.Module):
    """Dot product of user and movie embeddings plus a user and a movie bias."""

    arch = "dot"

    def __init__(self, n_users, n_movies, n_factors, y_range=None, generator=None):
        super().__init__()
        add_embeddings_and_biases(self, n_users, n_movies, n_factors, generator)
        self.output = OutputScale(y_range)

    def dot_tables(self):
        """(user vectors, movie vectors, user biases, movie biases): the score's parts."""
        return bias_tables(self, self.user_emb.weight, self.movie_emb.weight)

    def score(self, user, movie):
        """Raw score before the output scale: ``u . m + b_u + b_m``."""
        dot = (self.user_emb(user) * self.movie_emb(movie)).sum(1)
        return dot + self.user_bias(user).squeeze(1) + self.movie_bias(movie).squeeze(1)

    def forward(self, user, movie):
        return self.output(self.score(user, movie))


class HybridModel(nn.Module):
    """Shared embeddings and biases under two heads trained together.

    The linear head reads the concatenated user and movie embeddings; the
    dot head is `DotModel`'s. `forward` returns the dot head (the model's
    prediction); `heads` returns both, as training and reports need.
    """

    arch = "hybrid"

    def __init__(self, n_users, n_movies, n_factors, y_range=None, generator=None):
        super().__init__()
        add_embeddings_and_biases(self, n_users, n_movies, n_factors, generator)
        self.linear = nn.Linear(2 * n_factors, 1)
        init_linear(self.linear, generator)
        self.output = OutputScale(y_range)

    def dot_tables(self):
        """The dot head's parts (`DotModel.dot_tables`): a hybrid predicts with it."""
        return bias_tables(self, self.user_emb.weight, self.movie_emb.weight)

    def heads(self, user, movie):
        """Predictions of both heads: ``(dot, linear)``."""
        u = self.user_emb(user)
        m = self.movie_emb(movie)
        dot = (u * m).sum(1) + self.user_bias(user).squeeze(1) + self.movie_bias(movie).squeeze(1)
        linear = self.linear(torch.cat([u, m], dim=1)).squeeze(1)
        return self.output(dot), self.output(linear)

    def forward(self, user, movie):
        return self.heads(user, movie)[0]


class MLPModel(nn.Module):
    """Concatenated user and movie embeddings through ReLU layers with dropout."""

    arch = "mlp"

    def __init__(
        self, n_users, n_movies, n_factors, hidden, dropouts, y_range=None, generator=None
    ):
        super().__init__()
        hidden = [int(h) for h in hidden]
        dropouts = [float(p) for p in dropouts]
        if len(dropouts) != len(hidden):
            raise ValueError(
                f"mlp needs one dropout per hidden layer: hidden={hidden}, dropouts={dropouts}"
            )
        self.user_emb = embedding(n_users, n_factors, generator)
        self.movie_emb = embedding(n_movies, n_factors, generator)
        layers = []
        width = 2 * n_factors
        for size, p in zip(hidden, dropouts, strict=True):
            linear = nn.Linear(width, size)
            init_linear(linear, generator)
            layers += [linear, nn.ReLU(inplace=True)]
            if p > 0:
                layers.append(nn.Dropout(p))
            width = size
        out = nn.Linear(width, 1)
        init_linear(out, generator)
        layers.append(out)
        self.layers = nn.Sequential(*layers)
        self.output = OutputScale(y_range)

    def forward(self, user, movie):
        x = torch.cat([self.user_emb(user), self.movie_emb(movie)], dim=1)
        return self.output(self.layers(x).squeeze(1))


def build_model(settings, n_users, n_movies):
    """The module described by one model block of config.yaml.

    Parameters
    ----------
    settings : movierec.settings.ModelSettings or dict
        A ``models.<name>`` block (or its ``pretrain`` block), complete as the
        schema fills it; only ``arch``, ``n_factors``, ``y_range``, ``seed``
        and, for an mlp, ``hidden`` and ``dropouts`` matter here.
    n_users, n_movies : int
        Rows of the embedding tables (the index sizes of users/movies.parquet).

    Returns
    -------
    torch.nn.Module
        Initialised from ``settings.seed`` (same settings, same weights), in
        training mode, on CPU.
    """
    if not isinstance(settings, ModelSettings):
        settings = ModelSettings.from_block(settings)
    generator = torch.Generator().manual_seed(settings.seed)
    common = dict(y_range=settings.y_range, generator=generator)
    if settings.arch == "dot":
        return DotModel(int(n_users), int(n_movies), settings.n_factors, **common)
    if settings.arch == "hybrid":
        return HybridModel(int(n_users), int(n_movies), settings.n_factors, **common)
    if settings.arch == "implicit":
        return ImplicitModel(
            int(n_users), int(n_movies), settings.n_factors,
            implicit_weight_decay=settings.implicit_weight_decay,
            bias_weight_decay=settings.bias_weight_decay, **common,
        )  # fmt: skip
    return MLPModel(
        int(n_users),
        int(n_movies),
        settings.n_factors,
        hidden=settings.hidden,
        dropouts=settings.dropouts,
        **common,
    )


@torch.no_grad()
def transfer_embeddings(source, target):
    """Copy embeddings (and biases, where both have them) from `source` into `target`.

    This is the pretrain -> finetune edge: `mlp_then_dot` and
    `hybrid_then_dot` start their dot model from the pretrained tables.
    Biases the source lacks (an mlp has none) keep their initial zeros.

    Returns
    -------
    list of str
        Names of the copied tables.

    Raises
    ------
    ValueError
        If a table's shape differs (other n_factors, or another index).
    """
    copied = []
    for name in ("user_emb", "movie_emb", "user_bias", "movie_bias"):
        src = getattr(source, name, None)
        dst = getattr(target, name, None)
        if src is None or dst is None:
            continue
        if src.weight.shape != dst.weight.shape:
            raise ValueError(
                f"cannot initialise {name} of shape {tuple(dst.weight.shape)} from a "
                f"pretrained table of shape {tuple(src.weight.shape)}: the pretrain must "
                "use the same n_factors and the same users/movies index"
            )
        dst.weight.copy_(src.weight.to(dst.weight.device))
        copied.append(name)
    if "user_emb" not in copied or "movie_emb" not in copied:
        raise ValueError("both models need user_emb and movie_emb tables to transfer weights")
    return copied
