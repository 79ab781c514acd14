"""The fast engine's step for models without a hand-written gradient (the mlp)."""

import threading
from contextlib import contextmanager

import torch

from movierec.training.fast.dense_adam import DenseAdam
from movierec.training.fast.dropout import dropout_generator, pooled_dropouts, restore
from movierec.training.fast.row_adam import RowAdam
from movierec.training.fast.workers import Workers


class Lookups:
    """Forward hooks that record each embedding lookup of this thread's forward pass.

    A lookup is ``(table, index, output)``. The gradient of the loss with
    respect to ``output`` is the per-use gradient of the table's rows
    ``index``: what `RowAdam` takes, with no sparse gradient tensor built.
    Records are per thread, so worker threads can share the module.
    """

    def __init__(self, tables):
        self._local = threading.local()
        self._handles = [table.register_forward_hook(self._record) for table in tables]

    def _record(self, table, args, output):
        records = getattr(self._local, "records", None)
        if records is not None:
            records.append((table, args[0], output))

    @contextmanager
    def capture(self):
        self._local.records = []
        try:
            yield self._local.records
        finally:
            self._local.records = None

    def remove(self):
        for handle in self._handles:
            handle.remove()


class AutogradStep:
    """Training step of any model through autograd, with row-wise Adam for its tables.

    Each embedding table gets one `RowAdam` fed the per-use gradients of its
    lookups (`Lookups`); all other parameters (dense layers) go to `DenseAdam`
    (torch.optim.Adam's update) without weight decay (dropout regularises the MLP).
    A hybrid model's loss is ``w_linear * MSE(linear) + w_dot * MSE(dot)``.
    Dropout is pooled (`PooledDropout`) while it trains.

    With ``workers > 1`` (CPU) each batch is split into that many contiguous
    parts whose forward and backward passes run in parallel threads
    (`torch.autograd.grad`, so nothing is accumulated concurrently); their
    gradients are summed in part order and each part draws dropout masks
    from its own generator, so results do not depend on thread timing.
    """

    name = "fast-autograd"

    def __init__(self, model, weight_decay, loss_weights=None, workers=1, seed=0):
        self.model = model
        self.tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
        self.row_opts = {table: RowAdam(table.weight.data, weight_decay) for table in self.tables}
        table_params = {id(table.weight) for table in self.tables}
        self.dense = [p for p in model.parameters() if id(p) not in table_params]
        self.dense_opt = DenseAdam(self.dense) if self.dense else None
        self.heads = getattr(model, "heads", None)
        if self.heads is not None:
            self.w_linear = float(loss_weights["linear"])
            self.w_dot = float(loss_weights["dot"])
        self.lookups = Lookups(self.tables)
        self.swaps = pooled_dropouts(model)
        self.pool = Workers(workers, "autograd")
        self.generators = [None]
        if self.pool.n > 1:
            device = self.tables[0].weight.device
            self.generators = [
                torch.Generator(device=device).manual_seed(seed * 1_000_003 + w)
                for w in range(self.pool.n)
            ]

    def start_epoch(self, generator):
        """Redraw the dropout pools (from `fit`'s generator, in module order)."""
        for *_, pooled in self.swaps:
            pooled.refresh(generator, self.tables[0].weight.device)

    def _loss_and_error(self, user, movie, rating, batch):
        """Loss of a part of a batch (its share of the batch mean) and its prediction error."""
        if self.heads is not None:
            dot, linear = self.heads(user, movie)
            err = dot - rating
            lin_sq = (linear - rating).square().sum()
            loss = (self.w_dot * err.square().sum() + self.w_linear * lin_sq) / batch
        else:
            err = self.model(user, movie) - rating
            loss = err.square().sum() / batch
        return loss, err.detach()

    def _part(self, worker, job):
        """Per-use table gradients ``[(table, index, rows)]``, dense gradients, squared error."""
        user, movie, rating, batch = job
        generator = self.generators[worker]
        with self.lookups.capture() as lookups:
            if generator is None:
                loss, err = self._loss_and_error(user, movie, rating, batch)
            else:
                with dropout_generator(generator):
                    loss, err = self._loss_and_error(user, movie, rating, batch)
        outputs = [output for *_, output in lookups]
        grads = torch.autograd.grad(loss, outputs + self.dense)
        uses = [(table, index, g) for (table, index, _), g in zip(lookups, grads, strict=False)]
        return uses, list(grads[len(outputs) :]), torch.dot(err, err)

    def train_batch(self, user, movie, rating, lr):
        batch = rating.shape[0]
        splits = (t.tensor_split(self.pool.n) for t in (user, movie, rating))
        jobs = [(*part, batch) for part in zip(*splits, strict=True)]
        results = self.pool.run(self._part, jobs)
        with torch.no_grad():
            uses = {table: ([], []) for table in self.tables}
            for part_uses, _, _ in results:  # in part order
                for table, index, rows in part_uses:
                    uses[table][0].append(index)
                    uses[table][1].append(rows)
            for table, (index, rows) in uses.items():
                self.row_opts[table].step(torch.cat(index), torch.cat(rows), lr, batch)
            if self.dense_opt is not None:
                grads = [g.clone() for g in results[0][1]]
                for _, dense, _ in results[1:]:  # in part order
                    for total, part in zip(grads, dense, strict=True):
                        total += part
                self.dense_opt.step(grads, lr)
        sse = results[0][2]
        for *_, part_sse in results[1:]:
            sse = sse + part_sse
        return sse

    def sync(self):
        pass

    def finish(self):
        self.lookups.remove()
        restore(self.swaps)
        self.pool.close()
