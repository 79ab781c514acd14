"""The three networks behind the five recommenders: forward passes only.

`mlp`, `dot` and `hybrid` are the 2017 notebook's architectures as
`nn.Module`s; `mlp_then_dot` and `hybrid_then_dot` are a dot model whose
embeddings start from a pretrained mlp or hybrid (`transfer_embeddings`).
Optimizers, epochs and data live in `movierec.training` (spotlight style):
a module here only maps (user, movie) index tensors to predicted ratings.

Every module has ``user_emb`` and ``movie_emb`` (`nn.Embedding`, one row per
contiguous user or movie index of ``users.parquet`` / ``movies.parquet``);
dot and hybrid also have ``user_bias`` and ``movie_bias`` (`nn.Embedding(n,
1)`), so "bias of this movie" and "embedding of this movie" are one lookup
away for the reports.

Outputs are bounded the fastai way when ``y_range`` is set: ``low + (high -
low) * sigmoid(score + offset)``, which keeps a ranking model from spending
capacity on pushing predictions past the rating scale. Without ``y_range`` the
output is ``score + offset``. Training sets the ``offset`` buffer from the mean
training rating (`set_output_offset`), so a model starts at the mean, and a
user or movie never seen in training (raw score about 0) is predicted the
mean rather than the middle of the scale: with ``y_range`` [0.5, 5.5] a raw 0
would mean 3.0 where MovieLens' mean is about 3.5.
"""

import logging

import torch
from torch import nn

from movierec.settings import ModelSettings

log = logging.getLogger(__name__)

#: Standard deviation of the normal initialisation of embedding rows (fastai's
#: choice: small enough that the first predictions sit at the bias/offset).
INIT_STD = 0.01


class OutputScale(nn.Module):
    """Map raw scores to ratings: scaled sigmoid (``y_range``) or ``score + offset``.

    Parameters
    ----------
    y_range : sequence of two floats or None
        ``(low, high)`` bounds of the sigmoid, or None for an unbounded output.
    """

    def __init__(self, y_range=None):
        super().__init__()
        if y_range is not None:
            low, high = (float(v) for v in y_range)
            if not high > low:
                raise ValueError(f"y_range must be [low, high] with high > low, got {y_range!r}")
            self.y_range = (low, high)
        else:
            self.y_range = None
        # Added to the raw score (inside the sigmoid when bounded); part of the state_dict.
        self.register_buffer("offset", torch.zeros(()))

    def forward(self, score):
        if self.y_range is None:
            return score + self.offset
        low, high = self.y_range
        return torch.sigmoid(score + self.offset) * (high - low) + low


@torch.no_grad()
def set_output_offset(model, mean_rating):
    """Make a raw score of 0 predict `mean_rating` (the mean training rating).

    Unbounded: ``offset = mean``. Bounded: ``offset = logit((mean - low) / (high
    - low))``, clamped a little inside (0, 1) so a mean at a bound stays finite.
    """
    output = model.output
    if output.y_range is None:
        output.offset.fill_(float(mean_rating))
        return
    low, high = output.y_range
    p = min(max((float(mean_rating) - low) / (high - low), 1e-4), 1 - 1e-4)
    output.offset.fill_(float(torch.logit(torch.tensor(p, dtype=torch.float64))))


def _embedding(n, dim, generator, std=INIT_STD):
    emb = nn.Embedding(n, dim)
    with torch.no_grad():
        if std:
            emb.weight.normal_(0.0, std, generator=generator)
        else:
            emb.weight.zero_()
    return emb


def _add_embeddings_and_biases(module, n_users, n_movies, n_factors, generator):
    """The four tables dot and hybrid share, drawn in one fixed order (seeded init)."""
    module.user_emb = _embedding(n_users, n_factors, generator)
    module.movie_emb = _embedding(n_movies, n_factors, generator)
    module.user_bias = _embedding(n_users, 1, generator, std=0.0)
    module.movie_bias = _embedding(n_movies, 1, generator, std=0.0)


def _bias_tables(module, user_vectors, movie_vectors):
    return (
        user_vectors,
        movie_vectors,
        module.user_bias.weight.squeeze(1),
        module.movie_bias.weight.squeeze(1),
    )


class DotModel(nn.Module):
    """Dot product of user and movie embeddings plus a user and a movie bias."""

    arch = "dot"

    def __init__(self, n_users, n_movies, n_factors, y_range=None, generator=None):
        super().__init__()
        _add_embeddings_and_biases(self, n_users, n_movies, n_factors, generator)
        self.output = OutputScale(y_range)

    def dot_tables(self):
        """(user vectors, movie vectors, user biases, movie biases): the score's parts."""
        return _bias_tables(self, self.user_emb.weight, self.movie_emb.weight)

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
        _add_embeddings_and_biases(self, n_users, n_movies, n_factors, generator)
        self.linear = nn.Linear(2 * n_factors, 1)
        _init_linear(self.linear, generator)
        self.output = OutputScale(y_range)

    def dot_tables(self):
        """The dot head's parts (`DotModel.dot_tables`): a hybrid predicts with it."""
        return _bias_tables(self, self.user_emb.weight, self.movie_emb.weight)

    def heads(self, user, movie):
        """Predictions of both heads: ``(dot, linear)``."""
        u = self.user_emb(user)
        m = self.movie_emb(movie)
        dot = (u * m).sum(1) + self.user_bias(user).squeeze(1) + self.movie_bias(movie).squeeze(1)
        linear = self.linear(torch.cat([u, m], dim=1)).squeeze(1)
        return self.output(dot), self.output(linear)

    def forward(self, user, movie):
        return self.heads(user, movie)[0]


#: The training neighbour lists an `ImplicitModel` keeps (CSR: index and offsets).
NEIGHBOUR_BUFFERS = ("user_movies", "user_offsets", "movie_users", "movie_offsets")


def _neighbour_sums(table, index, offsets, rows):
    """``|S(r)|^-1/2 * sum_{j in S(r)} table[j]`` for each of `rows`, ``S`` given as CSR.

    `table` is an `nn.Embedding`, whose ``sparse`` flag the gradient follows
    (the reference engine sets it). A row without neighbours gets zeros.
    """
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    bag_offsets = torch.cumsum(lengths, 0) - lengths
    at = torch.repeat_interleave(starts - bag_offsets, lengths)
    at += torch.arange(int(lengths.sum()), device=at.device)
    weight = table.weight
    weights = torch.repeat_interleave(lengths.clamp(min=1).to(weight.dtype).rsqrt(), lengths)
    return nn.functional.embedding_bag(
        index[at], weight, bag_offsets, mode="sum", per_sample_weights=weights,
        sparse=table.sparse,
    )  # fmt: skip


def _csr(keys, values, n_keys):
    """`values` grouped by `keys` (in key order, stable), with per-key offsets."""
    order = torch.argsort(keys, stable=True)
    counts = torch.bincount(keys, minlength=n_keys)
    offsets = torch.zeros(n_keys + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    return values[order].clone(), offsets


class ImplicitModel(nn.Module):
    """The dot model with SVD++-style implicit feedback on both sides.

    ``score = b_u + b_m + (p_u + Y_u) . (q_m + Z_m)`` with ``Y_u = |R(u)|^-1/2
    sum_{j in R(u)} y_j`` over the movies ``R(u)`` the user rated in training
    and ``Z_m = |N(m)|^-1/2 sum_{v in N(m)} z_v`` over the users ``N(m)`` who
    rated the movie: a user is also described by what they chose to rate, a
    movie by who chose it (`nn.functional.embedding_bag`). `set_neighbours`
    stores ``R`` and ``N`` from the training ratings as buffers, so a
    checkpoint carries them. Its penalty (`l2_penalty`) puts
    ``weight_decay`` on the rows a batch uses, as the other models, and
    ``implicit_weight_decay`` on the composed ``Y_u`` and ``Z_m`` (the sums,
    not the rows ``y_j``: a popular movie's ``y_j`` sits in many sums).
    """

    arch = "implicit"

    def __init__(
        self, n_users, n_movies, n_factors, y_range=None, generator=None,
        implicit_weight_decay=0.0,
    ):  # fmt: skip
        super().__init__()
        _add_embeddings_and_biases(self, n_users, n_movies, n_factors, generator)
        self.movie_implicit = _embedding(n_movies, n_factors, generator)  # y_j
        self.user_implicit = _embedding(n_users, n_factors, generator)  # z_v
        self.output = OutputScale(y_range)
        self.implicit_weight_decay = float(implicit_weight_decay)
        for name in NEIGHBOUR_BUFFERS:
            self.register_buffer(name, torch.zeros(0, dtype=torch.long))

    def set_neighbours(self, user, movie):
        """Keep the training pairs' neighbour lists (`user`, `movie`: index tensors)."""
        device = self.user_emb.weight.device
        user, movie = user.cpu(), movie.cpu()
        n_users, n_movies = self.user_emb.num_embeddings, self.movie_emb.num_embeddings
        for prefix, (keys, values, n) in {
            "user": (user, movie, n_users),
            "movie": (movie, user, n_movies),
        }.items():
            index, offsets = _csr(keys, values, n)
            other = "movies" if prefix == "user" else "users"
            setattr(self, f"{prefix}_{other}", index.to(device))
            setattr(self, f"{prefix}_offsets", offsets.to(device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The neighbour lists' sizes depend on the data: take them from the checkpoint.
        for name in NEIGHBOUR_BUFFERS:
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _sums(self, users, movies):
        """``Y`` of each of `users` and ``Z`` of each of `movies` (index tensors)."""
        if self.user_offsets.numel() == 0:
            raise RuntimeError("an implicit model needs set_neighbours(train) before use")
        y = _neighbour_sums(self.movie_implicit, self.user_movies, self.user_offsets, users)
        z = _neighbour_sums(self.user_implicit, self.movie_users, self.movie_offsets, movies)
        return y, z

    def implicit_parts(self, user, movie):
        """``Y_u`` and ``Z_m`` for each pair of a batch (each distinct row summed once)."""
        users, user_at = torch.unique(user, return_inverse=True)
        movies, movie_at = torch.unique(movie, return_inverse=True)
        y, z = self._sums(users, movies)
        return y[user_at], z[movie_at]

    def _score(self, user, movie, parts):
        y, z = parts
        u = self.user_emb(user) + y
        m = self.movie_emb(movie) + z
        return (u * m).sum(1) + self.user_bias(user).squeeze(1) + self.movie_bias(movie).squeeze(1)

    def score(self, user, movie):
        return self._score(user, movie, self.implicit_parts(user, movie))

    def forward(self, user, movie):
        return self.output(self.score(user, movie))

    def l2_penalty(self, user, movie, weight_decay, parts=None):
        """The batch's L2 sum (the engine divides it by the batch size), see the class.

        `parts`: the batch's ``(Y_u, Z_m)`` if already at hand.
        """
        rows = sum(
            table(index).square().sum()
            for table, index in (
                (self.user_emb, user), (self.movie_emb, movie),
                (self.user_bias, user), (self.movie_bias, movie),
            )
        )  # fmt: skip
        y, z = self.implicit_parts(user, movie) if parts is None else parts
        implicit = y.square().sum() + z.square().sum()
        return weight_decay * rows + self.implicit_weight_decay * implicit

    def penalised_forward(self, user, movie, weight_decay):
        """Predictions and `l2_penalty` from one pass over the neighbour lists (training)."""
        parts = self.implicit_parts(user, movie)
        prediction = self.output(self._score(user, movie, parts))
        return prediction, self.l2_penalty(user, movie, weight_decay, parts)

    def dot_tables(self):
        """Composed vectors ``p_u + Y_u``, ``q_m + Z_m`` of every user and movie, and biases."""
        users = torch.arange(self.user_emb.num_embeddings, device=self.user_offsets.device)
        movies = torch.arange(self.movie_emb.num_embeddings, device=self.movie_offsets.device)
        y, z = self._sums(users, movies)
        return _bias_tables(self, self.user_emb.weight + y, self.movie_emb.weight + z)


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
        self.user_emb = _embedding(n_users, n_factors, generator)
        self.movie_emb = _embedding(n_movies, n_factors, generator)
        layers = []
        width = 2 * n_factors
        for size, p in zip(hidden, dropouts, strict=True):
            linear = nn.Linear(width, size)
            _init_linear(linear, generator)
            layers += [linear, nn.ReLU(inplace=True)]
            if p > 0:
                layers.append(nn.Dropout(p))
            width = size
        out = nn.Linear(width, 1)
        _init_linear(out, generator)
        layers.append(out)
        self.layers = nn.Sequential(*layers)
        self.output = OutputScale(y_range)

    def forward(self, user, movie):
        x = torch.cat([self.user_emb(user), self.movie_emb(movie)], dim=1)
        return self.output(self.layers(x).squeeze(1))


def _init_linear(linear, generator):
    """PyTorch's default Linear init (Kaiming-uniform), but from `generator`."""
    bound = 1.0 / linear.in_features**0.5
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound, generator=generator)
        linear.bias.uniform_(-bound, bound, generator=generator)


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
            implicit_weight_decay=settings.implicit_weight_decay, **common,
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
