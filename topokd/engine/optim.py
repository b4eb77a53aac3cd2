"""Optimizers topokd needs beyond ``torch.optim``.

:class:`KerasAdam` is Adam with the update of Keras 2.x
(``keras/optimizers/optimizer_v2/adam.py`` in keras 2.10, the version the
PI-Net authors pin in ``requirements.txt``; TensorFlow's fused
``ResourceApplyAdam`` kernel computes the same).  For step ``t = 1, 2, ...``::

    m     = beta1 * m + (1 - beta1) * g
    v     = beta2 * v + (1 - beta2) * g**2
    lr_t  = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
    param = param - lr_t * m / (sqrt(v) + epsilon)

``epsilon`` is added to the square root of the *uncorrected* second moment.
``torch.optim.Adam`` adds its ``eps`` to ``sqrt(v / (1 - beta2**t))``, so the
two agree only with ``eps_torch = epsilon / sqrt(1 - beta2**t)``: with
``beta2 = 0.999`` the same number is ~31.6x larger in Keras at ``t = 1`` and
~1.26x at ``t = 1000``, which matters when ``epsilon`` is as large as the
PI-Net authors' 0.1 (``Signal PI-Net/train.py`` line 47).

The update itself is :func:`keras_adam_update` (plain tensor arithmetic, no
optimizer machinery), so tests can check it against a hand-written NumPy
version; :class:`KerasAdam` only keeps the state.  Its state per parameter is
``exp_avg``, ``exp_avg_sq`` (tensors) and ``step`` (an int), which topokd's
training state stores and restores like any torch optimizer's.
"""

from __future__ import annotations

import math

import torch

__all__ = ["KerasAdam", "keras_adam_update"]


@torch.no_grad()
def keras_adam_update(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                      step: int, *, lr: float, beta1: float, beta2: float, epsilon: float) -> None:
    """One Keras-semantics Adam step (see the module docstring), in place on
    ``param``, ``exp_avg`` and ``exp_avg_sq``; ``step`` is the 1-based count
    of this update."""
    exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    lr_t = lr * math.sqrt(1.0 - beta2 ** step) / (1.0 - beta1 ** step)
    param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(epsilon), value=-lr_t)


class KerasAdam(torch.optim.Optimizer):
    """Adam with Keras 2.x semantics (``epsilon`` outside the bias
    correction; see :mod:`topokd.engine.optim`).  Defaults are Keras':
    ``lr=1e-3, betas=(0.9, 0.999), eps=1e-7``; no weight decay, no AMSGrad
    (the PI-Net reference uses neither).  A new instance starts at ``t = 0``
    with zero moments, as a Keras optimizer given to ``model.compile``."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-7):
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("KerasAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] = int(state["step"]) + 1
                keras_adam_update(p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                                  lr=group["lr"], beta1=beta1, beta2=beta2, epsilon=group["eps"])
        return loss
