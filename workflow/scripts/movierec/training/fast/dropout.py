"""Dropout whose masks come from a pool: the fast engine's stand-in for `nn.Dropout`.

CPU `torch.nn.functional.dropout` draws one Bernoulli variate per element
through a slow generic path (about 18 ns per element here: more than the
MLP's matrix products). `pooled_dropouts` swaps each `nn.Dropout` of a model
for a `PooledDropout` of the same probability while the fast engine trains,
and `restore` puts the originals back, so a saved model holds plain modules.
"""

import contextlib
import threading

import torch
from torch import nn

#: Per-thread override of the generator that picks masks (see `dropout_generator`);
#: worker threads that share a module each use their own.
_THREAD_RNG = threading.local()


@contextlib.contextmanager
def dropout_generator(generator):
    """Within this block, `PooledDropout` in this thread picks masks with `generator`."""
    previous = getattr(_THREAD_RNG, "generator", None)
    _THREAD_RNG.generator = generator
    try:
        yield
    finally:
        _THREAD_RNG.generator = previous


class PooledDropout(nn.Module):
    """Inverted dropout whose masks are rows drawn from a pool of random masks.

    Each rating's mask is a row picked at random from ``pool_rows``
    independent Bernoulli masks; `refresh` redraws the pool (the engine does
    so every epoch, from the seeded generator of `fit`). Per rating the mask
    has exactly dropout's distribution; only ratings that pick the same pool
    row in an epoch share a mask. In eval mode it is the identity.

    Parameters
    ----------
    p : float
        Probability of zeroing a unit, in [0, 1).
    width : int
        Number of units (columns) of the input.
    pool_rows : int
        Number of masks in the pool.
    """

    def __init__(self, p, width, pool_rows=8192):
        super().__init__()
        self.p = float(p)
        self.width = int(width)
        self.pool_rows = int(pool_rows)
        self.pool = None
        self.generator = None

    def refresh(self, generator, device=None):
        """Redraw the mask pool from `generator` (and use it for row picks)."""
        self.generator = generator
        keep = 1.0 - self.p
        rand = torch.rand(self.pool_rows, self.width, generator=generator, device=generator.device)
        self.pool = (rand < keep).to(torch.float32).mul_(1.0 / keep)
        if device is not None:
            self.pool = self.pool.to(device)

    def forward(self, x):
        if not self.training:
            return x
        generator = getattr(_THREAD_RNG, "generator", None) or self.generator
        rows = torch.randint(
            self.pool_rows, (x.shape[0],), generator=generator, device=self.pool.device
        )
        return x * self.pool.index_select(0, rows)

    def extra_repr(self):
        return f"p={self.p}, width={self.width}, pool_rows={self.pool_rows}"


def pooled_dropouts(model):
    """Swap every `nn.Dropout` in the model's `nn.Sequential`s for a `PooledDropout`.

    A dropout's width is the output size of the `nn.Linear` before it.
    Returns the swaps, for `restore`.
    """
    swaps = []
    for sequential in model.modules():
        if not isinstance(sequential, nn.Sequential):
            continue
        width = None
        for i, layer in enumerate(list(sequential)):
            if isinstance(layer, nn.Linear):
                width = layer.out_features
            elif isinstance(layer, nn.Dropout):
                if width is None:
                    raise ValueError(f"{sequential}: a Dropout before any Linear layer")
                pooled = PooledDropout(layer.p, width)
                sequential[i] = pooled
                swaps.append((sequential, i, layer, pooled))
    return swaps


def restore(swaps):
    """Put back the `nn.Dropout` modules `pooled_dropouts` replaced."""
    for sequential, i, original, _ in swaps:
        sequential[i] = original
