"""The fast engine: what makes training quick, kept apart from what it computes.

It computes exactly what `movierec.training.reference` does (tests compare
the parameters after a number of steps), faster on CPU:

* Embedding tables get row-wise lazy Adam (`RowAdam`): only the rows a batch
  used, and their moments, are gathered, updated in one fused kernel
  (`private`, self-checked) and scattered back.
* The dot and hybrid models have a fused step (`DotStep`): the gradient of
  their few arithmetic operations is written out by hand over packed tables
  ``[embedding | bias | 1]``, processed in cache-sized chunks, with no
  autograd graph.
* The mlp runs through autograd (`AutogradStep`) with the same `RowAdam`,
  the same fused Adam for its dense layers (`DenseAdam`: no `torch.optim`,
  whose import of `torch._dynamo` costs a second per job), and pooled
  dropout masks (`dropout`).
* On CPU both steps split a batch over worker threads with one intra-op
  thread each (`workers`); splits are static and partial sums are added in
  a fixed order, so a run is reproducible for a given thread count.

An engine offers ``name``, ``start_epoch(generator)``, ``train_batch(user,
movie, rating, lr) -> summed squared error``, ``sync()`` (write its weights
into the module before validation) and ``finish()``.
"""

import torch

from movierec import models
from movierec.training.fast.autograd_step import AutogradStep
from movierec.training.fast.dot_step import DotStep

#: Ratings per chunk of a fused step on CPU: keeps a chunk's temporaries
#: (chunk x (n_factors + 2) floats) in a core's L2 cache (2048 was fastest of
#: 1024-8192 here). The gradient is summed over all chunks of a batch before
#: the update, so this changes speed and only the rounding of sums.
CPU_CHUNK = 2048

#: Fewest ratings per worker thread's part of an autograd batch.
MIN_WORKER_PART = 1024


def make_engine(model, *, weight_decay, loss_weights, batch_size, device, seed):
    """The fast engine's step for `model`, with as many workers as the batch feeds.

    Worker threads only where a batch has enough work for each (small
    batches: one thread, whose small operations OpenMP leaves serial anyway).
    """
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    if isinstance(model, models.DotModel | models.HybridModel):
        chunk = CPU_CHUNK if device.type == "cpu" else batch_size
        workers = min(threads, -(-batch_size // chunk))
        return DotStep(model, weight_decay, chunk, workers, loss_weights)
    if not isinstance(model, models.MLPModel):
        raise ValueError(
            f"the fast engine has no step for {type(model).__name__}; "
            "set the model's engine: reference"
        )
    workers = max(1, min(threads, batch_size // MIN_WORKER_PART))
    return AutogradStep(model, weight_decay, loss_weights, workers, seed)
