"""Training: ratings as tensors, a plain `fit` loop, two engines, the rule entry point.

* `data`: a split's Parquet files as `Ratings` tensors, with row-level errors.
* `device`: the torch device of a job.
* `loop`: `fit` (epochs, batches, validation, the kept epoch) and `evaluate`.
* `reference`: the step as autograd and torch's own optimizers compute it.
* `fast`: the same step, several times quicker on CPU (fused kernels, worker threads).
* `run`: `train_model`, what the train_model and pretrain_model rules call.
"""

from movierec.training.data import Ratings, count_rows, read_ratings
from movierec.training.device import resolve_device
from movierec.training.loop import check_phases, evaluate, fit
from movierec.training.run import train_model

__all__ = [
    "Ratings",
    "check_phases",
    "count_rows",
    "evaluate",
    "fit",
    "read_ratings",
    "resolve_device",
    "train_model",
]
