"""The parts every network of `movierec.models` is built from: output scale and seeded tables.

Outputs are bounded the fastai way when ``y_range`` is set: ``low + (high -
low) * sigmoid(score + offset)``, which keeps a ranking model from spending
capacity on pushing predictions past the rating scale. Without ``y_range`` the
output is ``score + offset``. Training sets the ``offset`` buffer from the mean
training rating (`set_output_offset`), so a model starts at the mean, and a
user or movie never seen in training (raw score about 0) is predicted the
mean rather than the middle of the scale: with ``y_range`` [0.5, 5.5] a raw 0
would mean 3.0 where MovieLens' mean is about 3.5.

Every table and layer is initialised from the `torch.Generator` the model is
built with, in a fixed order, so the same settings give the same weights.
"""

import torch
from torch import nn

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


def embedding(n, dim, generator, std=INIT_STD):
    emb = nn.Embedding(n, dim)
    with torch.no_grad():
        if std:
            emb.weight.normal_(0.0, std, generator=generator)
        else:
            emb.weight.zero_()
    return emb


def add_embeddings_and_biases(module, n_users, n_movies, n_factors, generator):
    """The four tables dot and hybrid share, drawn in one fixed order (seeded init)."""
    module.user_emb = embedding(n_users, n_factors, generator)
    module.movie_emb = embedding(n_movies, n_factors, generator)
    module.user_bias = embedding(n_users, 1, generator, std=0.0)
    module.movie_bias = embedding(n_movies, 1, generator, std=0.0)


def bias_tables(module, user_vectors, movie_vectors):
    return (
        user_vectors,
        movie_vectors,
        module.user_bias.weight.squeeze(1),
        module.movie_bias.weight.squeeze(1),
    )


def init_linear(linear, generator):
    """PyTorch's default Linear init (Kaiming-uniform), but from `generator`."""
    bound = 1.0 / linear.in_features**0.5
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound, generator=generator)
        linear.bias.uniform_(-bound, bound, generator=generator)
