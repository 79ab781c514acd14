"""The implicit model (SVD++-style): the dot model plus what users chose to rate, and who.

A sibling of `movierec.models`, which builds it (``arch: implicit``) and
re-exports it, so `models.ImplicitModel` and checkpoints keep working. Its
training neighbour lists are CSR buffers of the module, summed per batch with
`nn.functional.embedding_bag`.
"""

import torch
from torch import nn

from movierec.model_layers import OutputScale, add_embeddings_and_biases, embedding

#: The training neighbour lists an `ImplicitModel` keeps (CSR: index and offsets).
NEIGHBOUR_BUFFERS = ("user_movies", "user_offsets", "movie_users", "movie_offsets")


def _neighbour_sums(table, index, offsets, rows):
    """``|S(r)|^-1/2 * sum_{j in S(r)} table[j]`` for each of `rows`, ``S`` given as CSR.

    `table` is an `nn.Embedding`, whose ``sparse`` flag the gradient follows
    (the reference engine sets it). A row without neighbours gets zeros.
    The rows the bags use are looked up once each and the bags summed over
    that compact copy: a batch's bags hold each popular movie many times, and
    a sparse gradient with one entry per use costs the optimizer a sort of all
    of them (`coalesce`); per distinct row, training on ml-latest-small takes
    two thirds of the time, with the same sums.
    """
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    bag_offsets = torch.cumsum(lengths, 0) - lengths
    at = torch.repeat_interleave(starts - bag_offsets, lengths)
    at += torch.arange(int(lengths.sum()), device=at.device)
    weight = table.weight
    weights = torch.repeat_interleave(lengths.clamp(min=1).to(weight.dtype).rsqrt(), lengths)
    used, position = torch.unique(index[at], return_inverse=True)
    compact = nn.functional.embedding(used, weight, sparse=table.sparse)
    return nn.functional.embedding_bag(
        position, compact, bag_offsets, mode="sum", per_sample_weights=weights
    )


def _csr(keys, values, n_keys):
    """`values` grouped by `keys` (in key order, stable), with per-key offsets."""
    order = torch.argsort(keys, stable=True)
    counts = torch.bincount(keys, minlength=n_keys)
    offsets = torch.zeros(n_keys + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    return values[order].clone(), offsets


class ImplicitModel(nn.Module):
    """The dot model with SVD++-style implicit feedback on both sides, in vectors and biases.

    ``score = b_u + c_u + b_m + c_m + (p_u + Y_u) . (q_m + Z_m)`` with ``Y_u =
    |R(u)|^-1/2 sum_{j in R(u)} y_j`` over the movies ``R(u)`` the user rated
    in training and ``Z_m = |N(m)|^-1/2 sum_{v in N(m)} z_v`` over the users
    ``N(m)`` who rated the movie: a user is also described by what they chose
    to rate, a movie by who chose it (`nn.functional.embedding_bag`). ``c_u``
    and ``c_m`` are the same normalised sums of one more weight per row (the
    linear terms a factorisation machine has for these sets: a user who rated
    what high raters rate gets a higher bias). That weight is the last column
    of ``y_j`` and ``z_v``, so one pass over the neighbour lists gives both.
    `set_neighbours` stores ``R`` and ``N`` from the training ratings as
    buffers, so a checkpoint carries them. Its penalty (`l2_penalty`) puts
    ``weight_decay`` on the rows a batch uses, as the other models (on its
    biases ``bias_weight_decay`` instead, when given), and
    ``implicit_weight_decay`` on the composed ``[Y_u | c_u]`` and ``[Z_m |
    c_m]`` (the sums, not the rows ``y_j``: a popular movie's ``y_j`` sits in
    many sums).
    """

    arch = "implicit"

    def __init__(
        self, n_users, n_movies, n_factors, y_range=None, generator=None,
        implicit_weight_decay=0.0, bias_weight_decay=None,
    ):  # fmt: skip
        super().__init__()
        add_embeddings_and_biases(self, n_users, n_movies, n_factors, generator)
        # y_j and z_v, each with its bias weight as one more, last, column.
        self.movie_implicit = embedding(n_movies, n_factors + 1, generator)
        self.user_implicit = embedding(n_users, n_factors + 1, generator)
        self.output = OutputScale(y_range)
        self.implicit_weight_decay = float(implicit_weight_decay)
        self.bias_weight_decay = None if bias_weight_decay is None else float(bias_weight_decay)
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
        """``[Y | c]`` of each of `users` and ``[Z | c]`` of each of `movies` (index tensors)."""
        if self.user_offsets.numel() == 0:
            raise RuntimeError("an implicit model needs set_neighbours(train) before use")
        y = _neighbour_sums(self.movie_implicit, self.user_movies, self.user_offsets, users)
        z = _neighbour_sums(self.user_implicit, self.movie_users, self.movie_offsets, movies)
        return y, z

    def implicit_parts(self, user, movie):
        """``[Y_u | c_u]`` and ``[Z_m | c_m]`` for each pair of a batch (each distinct row
        summed once)."""
        users, user_at = torch.unique(user, return_inverse=True)
        movies, movie_at = torch.unique(movie, return_inverse=True)
        y, z = self._sums(users, movies)
        # index_select, not y[user_at]: the backward of advanced indexing (index_put_ with
        # accumulate) adds repeated rows in a thread-dependent order on CPU; index_add_'s
        # order is fixed, so the same config trains to the same bits.
        return y.index_select(0, user_at), z.index_select(0, movie_at)

    def _score(self, user, movie, parts):
        y, z = parts
        u = self.user_emb(user) + y[:, :-1]
        m = self.movie_emb(movie) + z[:, :-1]
        bias = self.user_bias(user).squeeze(1) + y[:, -1] + self.movie_bias(movie).squeeze(1)
        return (u * m).sum(1) + bias + z[:, -1]

    def score(self, user, movie):
        return self._score(user, movie, self.implicit_parts(user, movie))

    def forward(self, user, movie):
        return self.output(self.score(user, movie))

    def l2_penalty(self, user, movie, weight_decay, parts=None):
        """The batch's L2 sum (the engine divides it by the batch size), see the class.

        `parts`: the batch's ``(Y_u, Z_m)`` if already at hand.
        """
        vectors = self.user_emb(user).square().sum() + self.movie_emb(movie).square().sum()
        biases = self.user_bias(user).square().sum() + self.movie_bias(movie).square().sum()
        bias_decay = weight_decay if self.bias_weight_decay is None else self.bias_weight_decay
        y, z = self.implicit_parts(user, movie) if parts is None else parts
        implicit = y.square().sum() + z.square().sum()
        return weight_decay * vectors + bias_decay * biases + self.implicit_weight_decay * implicit

    def penalised_forward(self, user, movie, weight_decay):
        """Predictions and `l2_penalty` from one pass over the neighbour lists (training)."""
        parts = self.implicit_parts(user, movie)
        prediction = self.output(self._score(user, movie, parts))
        return prediction, self.l2_penalty(user, movie, weight_decay, parts)

    def dot_tables(self):
        """Composed vectors ``p_u + Y_u``, ``q_m + Z_m`` of every user and movie, and
        composed biases ``b_u + c_u``, ``b_m + c_m``."""
        users = torch.arange(self.user_emb.num_embeddings, device=self.user_offsets.device)
        movies = torch.arange(self.movie_emb.num_embeddings, device=self.movie_offsets.device)
        y, z = self._sums(users, movies)
        return (
            self.user_emb.weight + y[:, :-1],
            self.movie_emb.weight + z[:, :-1],
            self.user_bias.weight.squeeze(1) + y[:, -1],
            self.movie_bias.weight.squeeze(1) + z[:, -1],
        )
