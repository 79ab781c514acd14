"""Lazy Adam over the rows of an embedding table that a batch used."""

import math

import torch

from movierec.training.fast import private

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class RowAdam:
    """Lazy Adam over the rows of one embedding table that a batch touched.

    Per-use gradient rows are summed into dense accumulators (`accumulate`,
    any number of times per batch; one accumulator per worker thread, summed
    in a fixed order, so results do not depend on thread timing); `step`
    then updates only the touched rows' moments and values, with Adam's bias
    correction by the table's step count (as `torch.optim.SparseAdam`), and
    adds the per-use L2 gradient ``2 * weight_decay * uses * row / batch_size``.

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
        self.grads = [torch.zeros_like(table) for _ in range(accumulators)]
        self.steps = 0
        private.fused_adam_kernel(table.device.type)  # self-check once, here, not in a worker

    def accumulate(self, index, grad, acc=0):
        """Add per-use gradient rows ``grad[i]`` to row ``index[i]`` (in accumulator `acc`)."""
        self.grads[acc].index_add_(0, index, grad)

    def begin_step(self, index):
        """Rows the batch used (`index`: every use) and their use counts.

        Also counts the step, for Adam's bias correction.
        """
        uses = torch.bincount(index, minlength=self.table.shape[0]).to(self.table.dtype)
        rows = (uses > 0).nonzero().squeeze(1)
        self.steps += 1
        return rows, uses

    @torch.no_grad()
    def gradient(self, rows, uses, batch_size, weights=None):
        """The full gradient of `rows`: summed accumulators plus the per-use L2.

        Resets the accumulators of those rows; frozen columns get 0.
        `weights` (the rows' current values) saves a gather if already at hand.
        """
        grad = self.grads[0].index_select(0, rows)
        self.grads[0].index_fill_(0, rows, 0.0)
        for extra in self.grads[1:]:
            grad += extra.index_select(0, rows)
            extra.index_fill_(0, rows, 0.0)
        if self.weight_decay:
            counts = uses.index_select(0, rows).unsqueeze(1)
            if weights is None:
                weights = self.table.index_select(0, rows)
            grad.addcmul_(weights, counts, value=2.0 * self.weight_decay / batch_size)
        if self.frozen:
            grad[:, self.frozen] = 0.0
        return grad

    @torch.no_grad()
    def update(self, rows, uses, lr, batch_size):
        """Update `rows` (a subset of `begin_step`'s; disjoint subsets may run in parallel)."""
        if rows.numel() == 0:
            return
        weights = self.table.index_select(0, rows)
        grad = self.gradient(rows, uses, batch_size, weights)
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

    def step(self, index, lr, batch_size):
        """Update the rows the batch used (`index`: every use) and reset the accumulators."""
        rows, uses = self.begin_step(index)
        self.update(rows, uses, lr, batch_size)
