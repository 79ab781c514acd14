"""The training benchmark: what our training costs against the loops people write.

Per model (`movierec.bench.model`, rule benchmark_model), in one job, on the
DAG's own split and with the DAG's own pretrain checkpoint for a finetune:

* **ours**: `movierec.training.fit` with the fast engine, at the model's batch size;
* **plain**: the same loop with the reference engine (autograd,
  `nn.Embedding(sparse=True)`, `torch.optim.SparseAdam` and `Adam`): the
  plain loop at the same batch size and schedule;
* **naive**: the loop a reader of the 2017 notebook writes (`movierec.bench.loops`):
  ``DataLoader(shuffle=True, batch_size=64)``, dense tables, `torch.optim.Adam`
  over everything, a ``loss.item()`` per batch.

Two figures each: ratings per second (timed steps, best of alternating
repeats, so load from other work hits all loops alike) and wall seconds to a
target validation RMSE (within `target_margin` of the DAG's own best for the
model, counting every epoch's training and validation). `movierec.bench.table`
(rule benchmark_training) puts them beside the peers' fit times.
"""
