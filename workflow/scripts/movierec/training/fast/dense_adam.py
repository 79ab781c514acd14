"""Adam for the fast engine's dense parameters, without `torch.optim`.

Building any `torch.optim` optimizer imports `torch._dynamo` (and pandas with
it): about a second of every training job on this 2-core machine, for a few
small dense tensors (the mlp's layers, the hybrid's linear head). The fast
engine already has Adam's arithmetic for its tables (`private.adam_update`:
the fused kernel behind ``torch.optim.Adam(fused=True)``, self-checked), so
the dense parameters use it too. The reference engine keeps `torch.optim`;
tests hold this equal to ``torch.optim.Adam`` step by step.
"""

import torch

from movierec.training.fast import private
from movierec.training.fast.row_adam import ADAM_BETAS, ADAM_EPS


class DenseAdam:
    """``torch.optim.Adam`` (no weight decay) over `params`, stepped with given gradients."""

    def __init__(self, params):
        self.params = list(params)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    @torch.no_grad()
    def step(self, grads, lr):
        """One Adam step: ``grads[i]`` is the gradient of ``params[i]``."""
        self.steps += 1
        for param, grad, exp_avg, exp_avg_sq in zip(
            self.params, grads, self.exp_avg, self.exp_avg_sq, strict=True
        ):
            private.adam_update(
                param.data, grad.contiguous(), exp_avg, exp_avg_sq, self.steps, lr, ADAM_BETAS,
                ADAM_EPS,
            )  # fmt: skip
