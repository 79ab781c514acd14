"""The reference engine: plain autograd and torch's own optimizers.

This is the training step as a reader expects it, and what the fast engine
(`movierec.training.fast`) must equal: embedding tables are
``nn.Embedding(sparse=True)`` updated by `torch.optim.SparseAdam`, other
parameters by `torch.optim.Adam`, and the loss is

    MSE(prediction)  [hybrid: w_dot * MSE(dot head) + w_linear * MSE(linear head)]
    + weight_decay * sum over the batch of |row|^2 of every table row it looks up / B

so a row is pulled towards 0 once per use, and rows a batch does not use are
left alone (torch's ``weight_decay`` option would decay every row at every
step, or, with sparse Adam, none). A model with L2 terms of its own (the
implicit model's on its composed sums) offers ``penalised_forward(user, movie,
weight_decay) -> (prediction, penalty)``, one pass for both. Dropout is
`nn.Dropout`, drawing from torch's global generator, which `ReferenceEngine` seeds.
"""

import torch
from torch import nn


def table_rows_penalty(model, user, movie):
    """Sum over uses of the squared rows of every table the batch looks up.

    A table named ``user_*`` is indexed by users, any other by movies (the
    naming of `movierec.models`).
    """
    total = 0.0
    for name, table in model.named_children():
        if isinstance(table, nn.Embedding):
            total = total + table(user if name.startswith("user") else movie).square().sum()
    return total


class ReferenceEngine:
    """One optimizer step per batch: loss, backward, step."""

    name = "reference"

    def __init__(self, model, weight_decay, loss_weights, seed):
        self.model = model
        self.weight_decay = float(weight_decay)
        self.tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        for table in self.tables:
            table.sparse = True
        table_params = {id(table.weight) for table in self.tables}
        dense = [p for p in model.parameters() if id(p) not in table_params]
        self.optimizers = [torch.optim.SparseAdam([table.weight for table in self.tables])]
        if dense:
            self.optimizers.append(torch.optim.Adam(dense))
        self.heads = getattr(model, "heads", None)
        self.loss_weights = loss_weights
        torch.manual_seed(int(seed))

    def start_epoch(self, generator):
        pass

    def loss(self, user, movie, rating):
        """The batch loss (with its L2 term) and the prediction's error."""
        batch = rating.shape[0]
        own = getattr(self.model, "penalised_forward", None)  # a model with its own L2 terms
        if own is not None:
            prediction, penalty = own(user, movie, self.weight_decay)
            err = prediction - rating
            return err.square().mean() + penalty / batch, err.detach()
        if self.heads is not None:
            dot, linear = self.heads(user, movie)
            err = dot - rating
            loss = self.loss_weights["dot"] * err.square().mean()
            loss = loss + self.loss_weights["linear"] * (linear - rating).square().mean()
        else:
            err = self.model(user, movie) - rating
            loss = err.square().mean()
        if self.weight_decay:
            loss = loss + self.weight_decay * table_rows_penalty(self.model, user, movie) / batch
        return loss, err.detach()

    def train_batch(self, user, movie, rating, lr):
        for optimizer in self.optimizers:
            optimizer.zero_grad()
            for group in optimizer.param_groups:
                group["lr"] = lr
        loss, err = self.loss(user, movie, rating)
        loss.backward()
        for optimizer in self.optimizers:
            optimizer.step()
        return torch.dot(err, err)

    def sync(self):
        pass

    def finish(self):
        for table in self.tables:
            table.sparse = False
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
