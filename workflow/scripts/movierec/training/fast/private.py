"""The one private torch call of the fast engine, checked once before it is trusted.

`torch._fused_adam_` is the kernel behind ``torch.optim.Adam(fused=True)``:
one vectorised pass over the gathered rows of a sparse update instead of
eight eager operations. It is private API, so its signature or semantics may
change between torch releases. `fused_adam` runs it once per device type on a
small problem against the eager Adam arithmetic it replaces; if the call
fails or disagrees, the fast engine logs why and uses the eager arithmetic.
"""

import functools
import logging

import torch

log = logging.getLogger(__name__)


def eager_adam(weights, grad, exp_avg, exp_avg_sq, step, lr, betas, eps):
    """Adam's update of `weights` in place, as torch.optim.Adam writes it (no weight decay)."""
    beta1, beta2 = betas
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    correction1 = 1 - beta1**step
    correction2 = 1 - beta2**step
    denom = (exp_avg_sq / correction2).sqrt_().add_(eps)
    weights.addcdiv_(exp_avg, denom, value=-lr / correction1)


def _call_fused(kernel, weights, grad, exp_avg, exp_avg_sq, step, lr, betas, eps):
    step_tensor = torch.tensor(float(step), device=weights.device)
    kernel(
        [weights], [grad], [exp_avg], [exp_avg_sq], [], [step_tensor],
        lr=lr, beta1=betas[0], beta2=betas[1], weight_decay=0.0,
        eps=eps, amsgrad=False, maximize=False,
    )  # fmt: skip


@functools.cache
def fused_adam_kernel(device_type):
    kernel = getattr(torch, "_fused_adam_", None)
    if kernel is None:
        log.warning("torch %s has no fused Adam kernel; using eager Adam", torch.__version__)
        return None
    generator = torch.Generator().manual_seed(0)
    shape = (7, 5)
    start = [torch.randn(shape, generator=generator) for _ in range(2)]
    runs = []
    try:
        for fused in (True, False):
            weights, exp_avg = (t.clone().to(device_type) for t in start)
            exp_avg_sq = start[1].square().to(device_type)
            for step in (1, 2, 3):
                grad = torch.full(shape, 0.1 * step, device=device_type)
                args = (weights, grad, exp_avg, exp_avg_sq, step, 0.01, (0.9, 0.999), 1e-8)
                if fused:
                    _call_fused(kernel, *args)
                else:
                    eager_adam(*args)
            runs.append(torch.cat([weights, exp_avg, exp_avg_sq]).cpu())
    except Exception as error:  # any failure means: do not trust the kernel
        log.warning("fused Adam kernel failed its self-check (%s); using eager Adam", error)
        return None
    if not torch.allclose(runs[0], runs[1], rtol=1e-5, atol=1e-6):
        log.warning(
            "fused Adam kernel disagrees with eager Adam (%s); using eager Adam", device_type
        )
        return None
    return kernel


def adam_update(weights, grad, exp_avg, exp_avg_sq, step, lr, betas, eps):
    """Adam's update in place: the fused kernel where it passed its self-check, else eager."""
    device_type = weights.device.type
    kernel = fused_adam_kernel(device_type) if device_type in ("cpu", "cuda") else None
    if kernel is None:
        eager_adam(weights, grad, exp_avg, exp_avg_sq, step, lr, betas, eps)
    else:
        _call_fused(kernel, weights, grad, exp_avg, exp_avg_sq, step, lr, betas, eps)
