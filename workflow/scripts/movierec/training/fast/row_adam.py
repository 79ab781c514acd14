"""Lazy Adam over the rows of an embedding table that a batch used."""

import math

import torch

from movierec.training.fast import private

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class RowAdam:
    """Lazy Adam over the rows of one embedding table that a batch touched.

    A step starts with `begin_batch(index)` (every use of a row in the batch):
    the batch's distinct rows, sorted, get compact gradient accumulators, one
    per worker thread, and each use its position among them. Per-use
    gradient rows are summed into those (`accumulate`, any number of times;
    accumulators are added in a fixed order, so results do not depend on
    thread timing). `update` then changes only those rows' moments and
    values, with Adam's bias correction by the table's step count (as
    `torch.optim.SparseAdam`), adding the per-use L2 gradient
    ``2 * weight_decay * uses * row / batch_size``.

    Why compact: on tables of 100k+ rows the step is bound by memory
    traffic. Accumulators as large as the table cost two full-table passes
    per accumulator (gather the batch's rows, then zero them); compact ones
    stay in cache and are read as contiguous slices.

    Parameters
    ----------
    table : torch.Tensor
        The (n_rows, dim) weights, updated in place.
    weight_decay : float
        L2 strength per use of a row (see the module docstring).
    frozen_columns : sequence of int
        Columns never updated (the constant-1 columns of packed tables).
    accumulators : int
        Independent gradient accumulators (one per worker thread).
    """

    def __init__(
        self,
        table,
        weight_decay=0.0,
        frozen_columns=(),
        accumulators=1,
        betas=ADAM_BETAS,
        eps=ADAM_EPS,
    ):
        self.table = table
        self.weight_decay = float(weight_decay)
        self.frozen = list(frozen_columns)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = torch.zeros_like(table)
        self.exp_avg_sq = torch.zeros_like(table)
        self.n_accumulators = int(accumulators)
        self.rows = self.uses = None
        self.grads = []
        self._buffers = []
        self.steps = 0
        private.fused_adam_kernel(table.device.type)  # self-check once, here, not in a worker

    def begin_batch(self, index):
        """Start a step on the rows `index` uses (every use); returns each use's position.

        Sets ``rows`` (the distinct rows, sorted), ``uses`` (their use counts)
        and fresh accumulators; counts the step, for Adam's bias correction.
        """
        self.rows, positions, counts = torch.unique(
            index, sorted=True, return_inverse=True, return_counts=True
        )
        self.uses = counts.to(self.table.dtype)
        n = self.rows.shape[0]
        if not self._buffers or self._buffers[0].shape[0] < n:  # grows to the largest batch
            shape = (n, self.table.shape[1])
            self._buffers = [self.table.new_empty(shape) for _ in range(self.n_accumulators)]
        self.grads = [buffer[:n].zero_() for buffer in self._buffers]
        self.steps += 1
        return positions

    def accumulate(self, positions, grad, acc=0):
        """Add per-use gradient rows ``grad[i]`` at ``positions[i]`` (from `begin_batch`)."""
        self.grads[acc].index_add_(0, positions, grad)

    def parts(self, n):
        """`n` contiguous (start, stop) ranges of the batch's rows, for parallel `update`s."""
        bounds = torch.linspace(0, self.rows.shape[0], n + 1).round().long().tolist()
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    @torch.no_grad()
    def gradient(self, start, stop, weights, batch_size):
        """The full gradient of the batch's rows ``start:stop``: accumulators plus per-use L2.

        `weights` are those rows' current values; frozen columns get 0.
        """
        grad = self.grads[0][start:stop].clone()
        for extra in self.grads[1:]:
            grad += extra[start:stop]
        if self.weight_decay:
            counts = self.uses[start:stop].unsqueeze(1)
            grad.addcmul_(weights, counts, value=2.0 * self.weight_decay / batch_size)
        if self.frozen:
            grad[:, self.frozen] = 0.0
        return grad

    @torch.no_grad()
    def update(self, lr, batch_size, start=0, stop=None):
        """Update the batch's rows ``start:stop`` (disjoint ranges may run in parallel)."""
        rows = self.rows[start:stop]
        if rows.numel() == 0:
            return
        stop = start + rows.shape[0]
        weights = self.table.index_select(0, rows)
        grad = self.gradient(start, stop, weights, batch_size)
        exp_avg = self.exp_avg.index_select(0, rows)
        exp_avg_sq = self.exp_avg_sq.index_select(0, rows)
        # torch.optim.SparseAdam adds eps before Adam's bias correction of the
        # second moment; Adam's kernel adds it after: eps / sqrt(1 - beta2^t) matches them.
        eps = self.eps / math.sqrt(1.0 - self.beta2**self.steps)
        private.adam_update(
            weights, grad, exp_avg, exp_avg_sq, self.steps, lr, (self.beta1, self.beta2), eps
        )
        self.exp_avg.index_copy_(0, rows, exp_avg)
        self.exp_avg_sq.index_copy_(0, rows, exp_avg_sq)
        self.table.index_copy_(0, rows, weights)

    def step(self, index, grad, lr, batch_size):
        """One whole step: the per-use gradient rows `grad` of uses `index`, then the update."""
        self.accumulate(self.begin_batch(index), grad)
        self.update(lr, batch_size)
