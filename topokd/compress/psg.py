r"""PSG: position-based scaled gradients (Kim, Yoo & Kwak, "Position-based
Scaled Gradient for Model Quantization and Pruning", NeurIPS 2020).

PSG multiplies each weight's gradient by a function of the weight's
distance to the nearest point of a compression grid before the optimizer
uses it:

.. math::
    \tilde g_i = g_i \cdot s(w_i), \qquad
    s(w) = \lambda_s \, \lvert w - Q(w) \rvert + \varepsilon

Weights sitting on a grid point get (almost) no gradient and stay there;
weights between grid points move freely.  Gradient descent with
:math:`\tilde g` is gradient descent in a warped weight space (the paper's
PSGD), and it pulls the full-precision weights towards the grid, so the
model loses less when it is later quantised (or pruned).

Grids (``Q``), recomputed from the current weights at every step:

``grid="uniform"`` (default)
    Uniform ``b``-bit symmetric per-tensor grid, the restricted range of
    the authors' code: :math:`\Delta = \max_i |w_i| / (2^{b-1} - 1)`,
    :math:`Q(w) = \Delta \cdot \mathrm{clamp}(\mathrm{round}(w / \Delta),
    -(2^{b-1} - 1), 2^{b-1} - 1)`.  (If every weight is 0, :math:`Q(w) = w`.)
``grid="zero"``
    The single point 0 (sparse training): :math:`s(w) = \lambda_s |w| + \varepsilon`.

Defaults follow the authors' released code: ``bits=4``, ``lambda_s=150``,
``eps=0`` (they fine-tune with SGD at lr 0.01).  Since :math:`|w - Q(w)|
\le \Delta / 2`, the gradient scale is at most :math:`\lambda_s \Delta / 2
+ \varepsilon`: with 8 bits :math:`\Delta` is 16x smaller than with 4, so
raise ``lambda_s`` (or the learning rate) accordingly.

Only tensors of two or more dimensions (Conv/Linear weights) are scaled by
default; biases and BatchNorm parameters keep their gradients.
"""

from __future__ import annotations

import math

import torch

GRIDS = ("uniform", "zero")


def nearest_grid_point(w: torch.Tensor, bits: int = 4) -> torch.Tensor:
    """``Q(w)`` on the uniform ``bits``-bit symmetric per-tensor grid."""
    levels = 2 ** (bits - 1) - 1
    top = w.detach().abs().max()
    if top == 0:
        return w.detach().clone()
    delta = top / levels
    return torch.clamp(torch.round(w.detach() / delta), -levels, levels) * delta


def psg_scale(w: torch.Tensor, *, bits: int = 4, lambda_s: float = 150.0, eps: float = 0.0,
              grid: str = "uniform") -> torch.Tensor:
    """``s(w) = lambda_s * |w - Q(w)| + eps`` elementwise (see the module docstring)."""
    if grid == "zero":
        return lambda_s * w.detach().abs() + eps
    return lambda_s * (w.detach() - nearest_grid_point(w, bits)).abs() + eps


class PSG:
    """Optimizer wrapper: scales gradients with :func:`psg_scale`, then
    calls the wrapped optimizer's ``step``.

    ``PSG(torch.optim.SGD(model.parameters(), lr=0.01), bits=4)`` is used
    like the optimizer it wraps (``zero_grad``, ``step``, ``param_groups``,
    ``state_dict``).  ``params`` restricts the scaling to those tensors
    (default: every parameter of the optimizer with ``dim() >= 2``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, bits: int = 4, lambda_s: float = 150.0,
                 eps: float = 0.0, grid: str = "uniform", params=None):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"PSG wraps a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ValueError(f"bits must be an int in [2, 16], got {bits!r}")
        if not (math.isfinite(float(lambda_s)) and lambda_s > 0):
            raise ValueError(f"lambda_s must be a finite number > 0, got {lambda_s!r}")
        if not (math.isfinite(float(eps)) and eps >= 0):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {list(GRIDS)}, got {grid!r}")
        self.optimizer = optimizer
        self.bits, self.lambda_s, self.eps, self.grid = bits, float(lambda_s), float(eps), grid
        if params is None:
            self.params = [p for g in optimizer.param_groups for p in g["params"] if p.dim() >= 2]
        else:
            self.params = list(params)
            known = {id(p) for g in optimizer.param_groups for p in g["params"]}
            if any(id(p) not in known for p in self.params):
                raise ValueError("params must be parameters of the wrapped optimizer")

    @torch.no_grad()
    def scale_gradients(self) -> None:
        """``p.grad *= s(p)`` for every selected parameter with a gradient."""
        for p in self.params:
            if p.grad is not None:
                p.grad.mul_(psg_scale(p, bits=self.bits, lambda_s=self.lambda_s, eps=self.eps, grid=self.grid))

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.scale_gradients()
        self.optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return (f"PSG(bits={self.bits}, lambda_s={self.lambda_s}, eps={self.eps}, grid={self.grid!r}, "
                f"optimizer={type(self.optimizer).__name__})")


__all__ = ["GRIDS", "PSG", "nearest_grid_point", "psg_scale"]
