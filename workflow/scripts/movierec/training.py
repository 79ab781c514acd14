"""Training: a plain `fit` that owns optimizer, phases and epochs.

Design, and why it is fast (issue 6 measures it against a `DataLoader` loop):

* Ratings live as tensors on the training device. Each epoch draws one
  permutation from a seeded `torch.Generator`, gathers the three columns once,
  and takes batches as slices: no `DataLoader`, no per-batch collation.
* Embedding tables get *sparse* updates. A batch touches a few thousand rows
  of tables that can have hundreds of thousands; `RowAdam` (lazy Adam, as
  `torch.optim.SparseAdam`) updates only those rows and their moments, where
  dense Adam would sweep every row every step.
* L2 regularisation is applied to the rows a batch uses, once per use
  (``weight_decay * sum over the batch of |u|^2 + |m|^2 + b_u^2 + b_m^2``,
  divided by the batch size like the MSE). That is the classic matrix
  factorisation penalty: a row is pulled towards 0 in proportion to how often
  it is trained, and rows a batch does not use are left alone, which is what
  sparse row-wise optimizers need (`weight_decay` in torch's optimizers would
  decay every row at every step, or none, with lazy Adam).
* The dot and hybrid models have a fused step (`DotStep`): the gradient of
  their few arithmetic operations is written out by hand over packed tables
  ``[embedding | bias | 1]``, so a step is a handful of large tensor
  operations with no autograd graph, processed in cache-sized chunks. Tests
  check it against autograd. The mlp uses autograd (`AutogradStep`) with
  sparse embedding gradients fed to the same `RowAdam`, fused Adam for its
  dense layers, and `models.PooledDropout` (CPU dropout's per-element random
  draw costs more than the MLP's matrix products).
* On CPU both steps use the rule's threads as Python worker threads over
  parts of each batch, one intra-op thread each, instead of OpenMP inside
  every small operation: that scales better, and degrades gracefully on a
  busy machine. Work splits are static and partial sums are added in a fixed
  order, so a run is reproducible for a given thread count (another count
  changes only the rounding, and the mlp's dropout draws).

Validation runs every epoch in large batches without gradients, with
predictions clipped to the rating scale; the state of the best epoch (lowest
validation RMSE) is kept and loaded back into the model at the end. The same
settings on the same machine give the same numbers (CPU; timing fields aside).
"""

import copy
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pyarrow.parquet as pq
import torch

from movierec import models

log = logging.getLogger(__name__)

#: Ratings per chunk of a fused step on CPU: keeps a chunk's temporaries
#: (chunk x (n_factors + 2) floats) in a core's L2 cache (2048 was fastest of
#: 1024-8192 here). The gradient is summed over all chunks of a batch before
#: the update, so this changes speed and only the rounding of sums.
CPU_CHUNK = 2048

#: Fewest ratings per worker thread's part of an autograd batch.
MIN_WORKER_PART = 1024

#: Ratings per validation batch.
EVAL_BATCH = 1 << 16

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# torch.optim.Adam's fused kernel (private API, present in the pinned torch); None: eager math.
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)


class Ratings(NamedTuple):
    """Ratings as three aligned 1-d tensors (user int64, movie int64, rating float32)."""

    user: torch.Tensor
    movie: torch.Tensor
    rating: torch.Tensor

    def __len__(self):
        return int(self.rating.shape[0])

    def to(self, device):
        return Ratings(*(t.to(device) for t in self))


def count_rows(path):
    """Number of rows of a Parquet file (from its footer, without reading it)."""
    return pq.ParquetFile(path).metadata.num_rows


def read_ratings(path, n_users, n_movies, rating_scale=None):
    """Read a split file (``user``, ``movie``, ``rating`` columns) as `Ratings`.

    Raises
    ------
    ValueError
        Naming the file, the first offending row and its value, if a column is
        missing, an index is outside the users/movies index, or a rating is
        not finite or outside `rating_scale`.
    """
    table = pq.read_table(path)
    missing = [c for c in ("user", "movie", "rating") if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; expected user, movie, rating "
            f"(found {', '.join(table.column_names)})"
        )
    cols = {c: table.column(c).to_numpy() for c in ("user", "movie", "rating")}
    for name, n in (("user", n_users), ("movie", n_movies)):
        values = cols[name]
        if not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{path}: column {name} must be integers, got {values.dtype}")
        bad = np.flatnonzero((values < 0) | (values >= n))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"{path}: row {row}: {name} index {values[row]} is outside the index "
                f"[0, {n}) of the {name}s table it was trained against"
            )
    rating = cols["rating"].astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(rating))
    if rating_scale is not None:
        low, high = rating_scale
        bad = np.flatnonzero(~np.isfinite(rating) | (rating < low) | (rating > high))
    if bad.size:
        row = int(bad[0])
        raise ValueError(
            f"{path}: row {row}: rating {rating[row]} is not a number in the rating "
            f"scale {list(rating_scale) if rating_scale is not None else '(finite)'}"
        )
    return Ratings(
        torch.from_numpy(cols["user"].astype(np.int64)),
        torch.from_numpy(cols["movie"].astype(np.int64)),
        torch.from_numpy(rating),
    )


def resolve_device(setting, gpus=0):
    """The torch device for a ``device`` setting (auto, cpu, cuda) and a GPU promise.

    ``gpus`` is the number of GPUs the job was promised (the rule's ``gpu``
    resource, set by the gpu and slurm-gpu profiles). A promised GPU that
    PyTorch cannot see is an error, not a silent CPU run: on a cluster that
    means a misconfigured node or a CPU-only PyTorch build, and the job would
    otherwise hold a GPU for hours while training on the CPU.

    Raises
    ------
    RuntimeError
        If ``cuda`` is asked for, or a GPU was promised, and PyTorch sees no CUDA device.
    ValueError
        For any other value.
    """
    if setting not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {setting!r}")
    if setting == "cpu":
        if gpus:
            log.warning("device: cpu in the config wins over the %d GPU(s) this job holds", gpus)
        return torch.device("cpu")
    if setting == "cuda" or gpus:
        if not torch.cuda.is_available():
            why = (
                "device: cuda was requested"
                if setting == "cuda"
                else (
                    f"this job was promised {gpus} GPU(s) (resources: gpu={gpus}, from the profile)"
                )
            )
            raise RuntimeError(
                f"{why} but PyTorch sees no CUDA device (torch {torch.__version__}, built with "
                f"CUDA: {torch.version.cuda or 'no'}, CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}). Run on a GPU node with a "
                "CUDA build of PyTorch, use a CPU profile, or set the model's device to cpu."
            )
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
        if _FUSED_ADAM is not None and weights.device.type in ("cpu", "cuda"):
            # One vectorised pass over the gathered rows instead of eight.
            step = torch.tensor(float(self.steps), device=weights.device)
            _FUSED_ADAM(
                [weights], [grad], [exp_avg], [exp_avg_sq], [], [step],
                lr=lr, beta1=self.beta1, beta2=self.beta2, weight_decay=0.0,
                eps=self.eps, amsgrad=False, maximize=False,
            )  # fmt: skip
        else:
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            correction1 = 1 - self.beta1**self.steps
            correction2 = 1 - self.beta2**self.steps
            denom = (exp_avg_sq / correction2).sqrt_().add_(self.eps)
            weights.addcdiv_(exp_avg, denom, value=-lr / correction1)
        self.exp_avg.index_copy_(0, rows, exp_avg)
        self.exp_avg_sq.index_copy_(0, rows, exp_avg_sq)
        self.table.index_copy_(0, rows, weights)

    def step(self, index, lr, batch_size):
        """Update the rows the batch used (`index`: every use) and reset the accumulators."""
        rows, uses = self.begin_step(index)
        self.update(rows, uses, lr, batch_size)


class DotStep:
    """Fused training step of a `models.DotModel` or `models.HybridModel`.

    The gradient is written out by hand: the model's tables are packed as
    ``U = [user_emb | user_bias | 1]`` and ``M = [movie_emb | 1 | movie_bias]``
    so that one row dot product is the whole score ``u . m + b_u + b_m``; the
    constant columns are frozen. For the loss ``MSE(pred)`` the gradient with
    respect to the score is ``g = 2 (pred - r) dpred/dscore / B`` and the
    rows' gradients are ``g * M[m]`` and ``g * U[u]``. A hybrid adds its
    linear head ``l = u . w_u + m . w_m + c`` (loss weights ``w_dot``,
    ``w_linear``): rows get ``g_l * w_u`` (``w_m``) more, and the head's own
    gradient is ``sum g_l * u`` (``m``, 1), fed to Adam. A test checks both
    against autograd. `sync` writes the packed tables back into the module.

    On CPU a batch is cut into cache-sized chunks, dealt round-robin to
    `workers` Python threads (PyTorch releases the GIL inside each
    operation) that each sum into their own accumulators; the optimizer then
    updates disjoint halves of the touched rows in parallel. Intra-op
    threads are set to 1 meanwhile. This scales better than OpenMP inside
    each small operation, and much better on a busy machine, where an OpenMP
    barrier waits for a descheduled thread at every operation. The work
    split is static and sums are taken in a fixed order, so results are the
    same on every run with the same number of workers.
    """

    def __init__(self, model, weight_decay, chunk, workers=1, loss_weights=None):
        self.model = model
        self.chunk = int(chunk)
        self.workers = max(1, int(workers))
        f = model.user_emb.weight.shape[1]
        self.n_factors = f
        with torch.no_grad():
            ones_u = torch.ones_like(model.user_bias.weight)
            ones_m = torch.ones_like(model.movie_bias.weight)
            self.users = torch.cat([model.user_emb.weight, model.user_bias.weight, ones_u], 1)
            self.movies = torch.cat([model.movie_emb.weight, ones_m, model.movie_bias.weight], 1)
        self.user_opt = RowAdam(self.users, weight_decay, [f + 1], self.workers)
        self.movie_opt = RowAdam(self.movies, weight_decay, [f], self.workers)
        self.y_range = model.output.y_range
        self.offset = model.output.offset
        self.linear = getattr(model, "linear", None)
        self.name = "fused-dot" if self.linear is None else "fused-hybrid"
        if self.linear is not None:
            weights = loss_weights or {}
            self.w_linear = float(weights.get("linear", 0.2))
            self.w_dot = float(weights.get("dot", 1.0))
            fused = self.users.device.type in ("cpu", "cuda")
            self.linear_opt = torch.optim.Adam(self.linear.parameters(), lr=1e-3, fused=fused)
            # Per worker: gradient of [w_u (padded to the packed width) | w_m | c].
            self.linear_grads = [self.users.new_zeros(2, f + 2) for _ in range(self.workers)]
            self.linear_bias_grads = [self.users.new_zeros(()) for _ in range(self.workers)]
        else:
            self.w_dot = 1.0
        self._pool = None
        self._threads = None
        if self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="dotstep")
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def _run(self, fn, jobs):
        """Run ``fn(worker, job)`` for each worker's job; results in worker order."""
        if self._pool is None:
            return [fn(0, jobs[0])]
        futures = [self._pool.submit(fn, w, job) for w, job in enumerate(jobs) if w > 0]
        first = fn(0, jobs[0])
        return [first] + [f.result() for f in futures]

    def _score_grad(self, score, r, scale):
        """Error of the scaled score, and ``scale * err * dpred/dscore`` (in place)."""
        if self.y_range is None:
            err = score.add_(self.offset).sub_(r)
            return err, err * scale
        low, high = self.y_range
        sig = score.add_(self.offset).sigmoid_()
        err = sig * (high - low)
        err.add_(low).sub_(r)
        # d pred / d score = (high - low) * sig * (1 - sig)
        return err, sig.sub_(sig * sig).mul_(err).mul_(scale * (high - low))

    @torch.no_grad()
    def _chunks(self, worker, job):
        user, movie, rating, starts, batch, head = job
        sse = torch.zeros((), device=rating.device)
        for start in starts:
            stop = min(start + self.chunk, user.shape[0])
            u, m, r = user[start:stop], movie[start:stop], rating[start:stop]
            ue = self.users.index_select(0, u)
            me = self.movies.index_select(0, m)
            err, grad = self._score_grad((ue * me).sum(1), r, 2.0 * self.w_dot / batch)
            sse += torch.dot(err, err)
            grad = grad.unsqueeze(1)
            if head is None:
                movie_grad = ue.mul_(grad)
                user_grad = me.mul_(grad)
            else:
                w_user, w_movie, bias = head
                linear = torch.mv(ue, w_user).add_(torch.mv(me, w_movie)).add_(bias)
                _, lin_grad = self._score_grad(linear, r, 2.0 * self.w_linear / batch)
                self.linear_grads[worker][0].add_(torch.mv(ue.t(), lin_grad))
                self.linear_grads[worker][1].add_(torch.mv(me.t(), lin_grad))
                self.linear_bias_grads[worker].add_(lin_grad.sum())
                movie_grad = ue.mul_(grad).addr_(lin_grad, w_movie)
                user_grad = me.mul_(grad).addr_(lin_grad, w_user)
            self.user_opt.accumulate(u, user_grad, worker)
            self.movie_opt.accumulate(m, movie_grad, worker)
        return sse

    @torch.no_grad()
    def _update(self, worker, job):
        for opt, rows, uses, lr, batch in job:
            opt.update(rows, uses, lr, batch)

    def _head(self):
        """The linear head's weights padded to the packed widths (w_u, w_m, c)."""
        if self.linear is None:
            return None
        f = self.n_factors
        weight = self.linear.weight.detach()[0]
        w_user = self.users.new_zeros(f + 2)
        w_movie = self.users.new_zeros(f + 2)
        w_user[:f] = weight[:f]
        w_movie[:f] = weight[f:]
        return w_user, w_movie, self.linear.bias.detach()[0]

    def accumulate(self, user, movie, rating):
        """Sum the batch's per-row gradients; returns its summed squared error."""
        batch = rating.shape[0]
        starts = list(range(0, batch, self.chunk))
        head = self._head()
        jobs = [
            (user, movie, rating, starts[w :: self.workers], batch, head)
            for w in range(self.workers)
        ]
        sse = None
        for part in self._run(self._chunks, jobs):
            sse = part if sse is None else sse + part
        return sse

    def apply(self, user, movie, lr):
        """Update the rows of the accumulated batch (`user`, `movie`: its indices)."""
        batch = user.shape[0]
        jobs = [[] for _ in range(self.workers)]
        for opt, index in ((self.user_opt, user), (self.movie_opt, movie)):
            rows, uses = opt.begin_step(index)
            for w, part in enumerate(rows.tensor_split(self.workers)):
                jobs[w].append((opt, part, uses, lr, batch))
        self._run(self._update, jobs)
        if self.linear is not None:
            f = self.n_factors
            grads = self.linear_grads[0].clone()
            bias = self.linear_bias_grads[0].clone()
            for w in range(self.workers):
                if w:
                    grads += self.linear_grads[w]
                    bias += self.linear_bias_grads[w]
                self.linear_grads[w].zero_()
                self.linear_bias_grads[w].zero_()
            self.linear.weight.grad = torch.cat([grads[0, :f], grads[1, :f]]).unsqueeze(0)
            self.linear.bias.grad = bias.reshape(1)
            for group in self.linear_opt.param_groups:
                group["lr"] = lr
            self.linear_opt.step()

    def train_batch(self, user, movie, rating, lr):
        """One optimizer step on a batch; returns the batch's summed squared error."""
        sse = self.accumulate(user, movie, rating)
        self.apply(user, movie, lr)
        return sse

    @torch.no_grad()
    def sync(self):
        f = self.n_factors
        self.model.user_emb.weight.copy_(self.users[:, :f])
        self.model.user_bias.weight.copy_(self.users[:, f : f + 1])
        self.model.movie_emb.weight.copy_(self.movies[:, :f])
        self.model.movie_bias.weight.copy_(self.movies[:, f + 1 : f + 2])

    def finish(self):
        self.sync()
        if self.linear is not None:
            self.linear.weight.grad = None
            self.linear.bias.grad = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads)


class AutogradStep:
    """Training step of any model through autograd.

    Embedding tables (every `nn.Embedding`) produce sparse gradients that go
    to one `RowAdam` each; all other parameters (dense layers) go to a fused
    `torch.optim.Adam` without weight decay (dropout regularises the MLP).
    A hybrid model's loss is ``w_linear * MSE(linear) + w_dot * MSE(dot)``.

    With ``workers > 1`` (CPU) each batch is split into that many contiguous
    parts whose forward and backward passes run in parallel Python threads
    with one intra-op thread each (`torch.autograd.grad`, so nothing is
    accumulated concurrently); their gradients are summed in part order and
    each part draws dropout masks from its own generator, so results do not
    depend on thread timing. Like `DotStep`'s workers, this avoids an OpenMP
    barrier per small operation.
    """

    name = "autograd"

    def __init__(self, model, weight_decay, loss_weights=None, workers=1, seed=0):
        self.model = model
        self.embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
        for emb in self.embeddings:
            emb.sparse = True
        self.row_opts = [RowAdam(emb.weight.data, weight_decay) for emb in self.embeddings]
        emb_params = {id(emb.weight) for emb in self.embeddings}
        self.dense = [p for p in model.parameters() if id(p) not in emb_params]
        fused = self.dense[0].device.type in ("cpu", "cuda") if self.dense else False
        self.dense_opt = torch.optim.Adam(self.dense, lr=1e-3, fused=fused) if self.dense else None
        self.params = [emb.weight for emb in self.embeddings] + self.dense
        self.hybrid = isinstance(model, models.HybridModel)
        weights = loss_weights or {}
        self.w_linear = float(weights.get("linear", 0.2))
        self.w_dot = float(weights.get("dot", 1.0))
        self.workers = max(1, int(workers))
        self._pool = None
        if self.workers > 1:
            device = self.params[0].device
            self.generators = [
                torch.Generator(device=device).manual_seed(seed * 1_000_003 + w)
                for w in range(self.workers)
            ]
            self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="autograd")
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def _loss_and_error(self, user, movie, rating, batch):
        """Loss of a part of a batch (its share of the batch mean) and its dot-head error."""
        if self.hybrid:
            dot, linear = self.model.heads(user, movie)
            err = dot - rating
            lin_sq = (linear - rating).square().sum()
            loss = (self.w_dot * err.square().sum() + self.w_linear * lin_sq) / batch
        else:
            err = self.model(user, movie) - rating
            loss = err.square().sum() / batch
        return loss, err.detach()

    def _grads(self, loss):
        """Gradients for `self.params`; an embedding's as (index, rows) of its uses."""
        grads = list(torch.autograd.grad(loss, self.params))
        for i in range(len(self.embeddings)):
            if not grads[i].is_sparse:
                raise RuntimeError("an embedding produced a dense gradient; expected sparse")
            grads[i] = (grads[i]._indices()[0], grads[i]._values())
        return grads

    def _part(self, worker, job):
        user, movie, rating, batch = job
        with models.dropout_generator(self.generators[worker]):
            loss, err = self._loss_and_error(user, movie, rating, batch)
        return self._grads(loss), torch.dot(err, err)

    def _gradients(self, user, movie, rating):
        """Gradients of the batch loss for `self.params`, and the summed squared error."""
        batch = rating.shape[0]
        if self.workers == 1:
            loss, err = self._loss_and_error(user, movie, rating, batch)
            return self._grads(loss), torch.dot(err, err)
        splits = (t.tensor_split(self.workers) for t in (user, movie, rating))
        jobs = [(*part, batch) for part in zip(*splits, strict=True)]
        futures = [self._pool.submit(self._part, w, job) for w, job in enumerate(jobs) if w > 0]
        results = [self._part(0, jobs[0])] + [f.result() for f in futures]
        grads = []
        for i in range(len(self.params)):
            per_part = [r[0][i] for r in results]
            if i < len(self.embeddings):  # the uses, concatenated in part order
                index = torch.cat([g[0] for g in per_part])
                values = torch.cat([g[1] for g in per_part])
                grads.append((index, values))
            else:
                total = per_part[0].clone()
                for g in per_part[1:]:
                    total += g
                grads.append(total)
        sse = results[0][1]
        for r in results[1:]:
            sse = sse + r[1]
        return grads, sse

    def train_batch(self, user, movie, rating, lr):
        batch = rating.shape[0]
        grads, sse = self._gradients(user, movie, rating)
        with torch.no_grad():
            for (index, values), opt in zip(grads, self.row_opts, strict=False):
                opt.accumulate(index, values)
                opt.step(index, lr, batch)
            if self.dense_opt is not None:
                for param, grad in zip(self.dense, grads[len(self.embeddings) :], strict=True):
                    param.grad = grad
                for group in self.dense_opt.param_groups:
                    group["lr"] = lr
                self.dense_opt.step()
        return sse

    def sync(self):
        pass

    def finish(self):
        for emb in self.embeddings:
            emb.sparse = False
        for param in self.params:
            param.grad = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads)


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


def _train_epoch(engine, train, generator, dropouts, batch_size, lr, budget, progress):
    """One pass over a fresh permutation of `train`; stops early after `budget` steps.

    Returns
    -------
    (float, int, int)
        Summed squared training error, ratings seen, optimizer steps taken.
    """
    device = train.rating.device
    _sync(device)
    started = time.perf_counter()
    for dropout in dropouts:
        dropout.refresh(generator, device)
    n = len(train)
    perm = torch.randperm(n, generator=generator, device=device)
    user, movie, rating = train.user[perm], train.movie[perm], train.rating[perm]
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
    val_ranking=None,
    fused=True,
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
    val_ranking : callable, optional
        ``val_ranking(model) -> float``, higher is better, with a ``name``
        (`negatives.ValRanking`: validation NDCG@10). When given, every
        epoch records it and the kept epoch (and early stopping) follows it
        instead of the validation RMSE: a model trained to rank is chosen
        by how it ranks.
    fused : bool
        Use the fused step for dot and hybrid models (False: autograd, for
        comparison; the mlp always uses autograd).
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
    # Worker threads only where a batch has enough work for each (small
    # batches: one thread, whose small operations OpenMP leaves serial anyway).
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    if fused and isinstance(model, models.DotModel | models.HybridModel):
        chunk = CPU_CHUNK if device.type == "cpu" else batch_size
        workers = min(threads, -(-batch_size // chunk))
        engine = DotStep(model, weight_decay, chunk, workers, loss_weights)
    else:
        workers = max(1, min(threads, batch_size // MIN_WORKER_PART))
        engine = AutogradStep(model, weight_decay, loss_weights, workers, int(seed))
    dropouts = [m for m in model.modules() if isinstance(m, models.PooledDropout)]
    generator = torch.Generator(device=device).manual_seed(int(seed))
    hybrid = isinstance(model, models.HybridModel)
    log.info(
        "training %s (%s step) on %s: %d ratings, batch %d, %d epochs, %d parameters",
        type(model).__name__, engine.name, device, len(train), batch_size,
        sum(int(p["epochs"]) for p in phases),
        sum(p.numel() for p in model.parameters()),
    )  # fmt: skip
    schedule = [(i, float(p["lr"])) for i, p in enumerate(phases) for _ in range(int(p["epochs"]))]
    records = []
    best = None
    steps = 0
    train_seconds = 0.0
    try:
        for epoch, (phase_index, lr) in enumerate(schedule, start=1):
            started = time.perf_counter()
            budget = None if max_steps is None else max_steps - steps
            sse, seen, n_steps = _train_epoch(
                engine, train, generator, dropouts, batch_size, lr, budget,
                progress=(f"epoch {epoch}/{len(schedule)}", progress_every_s),
            )  # fmt: skip
            steps += n_steps
            trained = time.perf_counter() - started
            metrics = evaluate(model, val, rating_scale)
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
            if hybrid:
                record["val_rmse_linear"] = metrics["rmse_linear"]
            if val_ranking is not None:
                record[val_ranking.name] = val_ranking(model)
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
            # The kept epoch minimises the criterion: validation RMSE, or minus the ranking score.
            criterion = record["val_rmse"] if val_ranking is None else -record[val_ranking.name]
            if best is None or criterion < best[0]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (criterion, epoch, state, record)
            if max_steps is not None and steps >= max_steps:
                break
            if patience is not None and epoch - best[1] >= patience:
                log.info("early stop after epoch %d: no improvement for %d epochs", epoch, patience)
                break
    finally:
        engine.finish()
    model.load_state_dict(best[2])
    kept = best[3]
    result = {
        "val_rmse": kept["val_rmse"],
        "val_mae": kept["val_mae"],
        "best_epoch": best[1],
        "stopped_epoch": records[-1]["epoch"],
        "n_params": sum(p.numel() for p in model.parameters()),
        "history": records,
        "device": str(device),
        "engine": engine.name,
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
        The model's block of config.yaml (without ``pretrain``).
    rating_scale : (float, float)
    model_pt, model_json, history_json : path
        Outputs, each written atomically (``history_json``: what `fit` returns).
    init : path, or a list of at most one path, optional
        A pretrained ``model.pt`` whose embeddings (and biases) initialise
        this model (the finetune half of mlp_then_dot / hybrid_then_dot);
        a rule's ``input.init`` as it comes, [] for a model without pretrain.
    threads : int
        `torch.set_num_threads` (the rule's ``threads``).
    gpus : int
        GPUs the job was promised (the rule's ``gpu`` resource); see resolve_device.
    """
    from movierec import atomic, checkpoint

    if not isinstance(init, str | os.PathLike | type(None)):
        init = next(iter(init), None)
    torch.set_num_threads(int(threads))
    settings = copy.deepcopy(dict(settings))
    settings.pop("pretrain", None)
    device = resolve_device(settings.get("device", "auto"), gpus=gpus)
    check_phases(settings.get("phases"))
    low, high = (float(v) for v in rating_scale)
    n_users = count_rows(users_path)
    n_movies = count_rows(movies_path)
    train = read_ratings(train_path, n_users, n_movies, (low, high))
    val = read_ratings(val_path, n_users, n_movies, (low, high))
    val_ranking = None
    if settings.get("negatives"):
        from movierec import negatives

        sampled = settings["negatives"]
        val_ranking = negatives.ValRanking(train, val, n_users, sampled["relevant_rating"])
        before = len(train)
        train = negatives.add_negatives(
            train, n_movies, sampled["per_rating"], sampled["rating"], int(settings["seed"])
        )
        log.info("added %d sampled negatives to %d training ratings", len(train) - before, before)
    model = models.build_model(settings, n_users, n_movies)
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
        phases=settings["phases"],
        batch_size=settings.get("batch_size", 4096),
        rating_scale=(low, high),
        weight_decay=float(settings.get("weight_decay", 0.0)),
        loss_weights=settings.get("loss_weights"),
        seed=int(settings.get("seed", 1)),
        device=device,
        patience=settings.get("patience"),
        val_ranking=val_ranking,
    )
    meta = {
        "arch": settings["arch"],
        "settings": settings,
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
    atomic.write_json(history_json, metrics)
    return metrics
