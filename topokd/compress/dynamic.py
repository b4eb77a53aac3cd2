r"""Dynamic pruning during training: DPF and DCIL, as a schedule object.

Notation: dense weights :math:`W` (what the optimizer holds and updates),
binary mask :math:`M` (recomputed every ``update_every`` steps: the
``round(s * n)`` entries of smallest :math:`|W|` get 0, per layer or over
all layers with ``scope="global"``), masked weights :math:`W \odot M`
(what every forward uses, training and evaluation alike), loss :math:`L`,
learning rate :math:`\gamma`.

DPF -- Lin, Stich, Barba, Dmitriev & Jaggi, "Dynamic Model Pruning with
Feedback", ICLR 2020:

.. math::
    W_{t+1} = W_t - \gamma \, \nabla L(W_t \odot M_t)

The gradient is taken *at the masked weights* and applied to the *dense*
weights (a straight-through estimator through the mask), so pruned
weights keep receiving updates ("feedback") and can come back when the
mask is recomputed.

DCIL -- Kim, Yoo, Song, Yoo & Kwak, "Dynamic Collective Intelligence
Learning: Finding Efficient Sparse Model via Refined Gradients for Pruned
Weights" (arXiv:2109.04660, ACM MM 2023): two forward paths on the same
batch, the sparse one (:math:`W \odot M`) and the dense one (:math:`W`).
As implemented here, the update of a masked layer's weights is

.. math::
    W_{t+1} = W_t - \gamma \big( M_t \odot \nabla L(W_t \odot M_t)
                               + (1 - M_t) \odot \nabla L(W_t) \big)

i.e. kept weights get the sparse network's gradient (as in DPF) and pruned
weights the *refined* gradient of the dense network, instead of the
straight-through sparse gradient.  Parameters without a mask (biases,
BatchNorm) get the sparse path's gradient.  The dense pass does not
update BatchNorm running statistics (they are restored), so they describe
the sparse network that is deployed.  The paper also adds mutual KL terms
between the two paths' outputs to the loss; put them in your loss
closure if wanted (:meth:`DynamicPruning.dense` gives the dense path).

Usage in a plain loop (the optimizer may be created before or after)::

    dp = DynamicPruning(model, sparsity=0.8, update_every=16, mode="dpf")
    for x, y in loader:
        optimizer.zero_grad()
        dp.before_step()                    # recompute the masks every k steps
        loss = F.cross_entropy(model(x), y) # forward with W * M
        loss.backward()                     # gradient at W * M, lands on W
        dp.after_step(lambda: F.cross_entropy(model(x), y))  # DCIL: dense pass + mix; DPF: no-op
        optimizer.step()                    # updates the dense W
    model = dp.finalize()                   # W <- W * M, plain weights again

or ``dp.step(optimizer, closure)`` for the four lines.  ``sparsity`` can
ramp up with the cubic schedule of Zhu & Gupta (2017) used by DPF:
``s_t = s * (1 - (1 - t / ramp_steps)^3)`` for ``t < ramp_steps``.

Implementation: each pruned weight gets a :mod:`torch.nn.utils.parametrize`
parametrisation returning ``W + (W * M - W).detach()`` -- the value of
``W * M`` with an identity Jacobian -- so the model is an ordinary module
during training; :meth:`DynamicPruning.finalize` removes it.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import parametrize

from ._common import CompressionError, add_history, check_amount, check_model, weight_layers

MODES = ("dpf", "dcil")


class _STEMask(nn.Module):
    """``W -> W * mask`` in value, identity in the backward pass (STE)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)
        self.dense = False

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.dense:
            return weight
        return weight + (weight * self.mask - weight).detach()


class DynamicPruning:
    """DPF / DCIL schedule over a model's Conv1d/Conv2d/Linear weights (see
    the module docstring for the update rules).

    Parameters
    ----------
    model : nn.Module
        Trained in place (this object attaches masks to it).
    sparsity : float in (0, 1)
        Target fraction of zero weights (per layer, or over all ``layers``
        with ``scope="global"``).
    update_every : int
        Recompute the masks every this many steps (DPF's ``k``; 16 in the paper).
    mode : "dpf" or "dcil"
    scope : "layer" or "global"
    ramp_steps : int
        Steps of the cubic sparsity ramp (0: full sparsity from step 0).
    layers : list of str, optional
        Layer names (default: every Conv1d/Conv2d/Linear).
    """

    def __init__(self, model: nn.Module, sparsity: float, update_every: int = 16, *, mode: str = "dpf",
                 scope: str = "layer", ramp_steps: int = 0, layers=None):
        check_model(model)
        self.sparsity = check_amount(sparsity, "sparsity")
        if isinstance(update_every, bool) or not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be an int >= 1, got {update_every!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if scope not in ("layer", "global"):
            raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
        if isinstance(ramp_steps, bool) or not isinstance(ramp_steps, int) or ramp_steps < 0:
            raise ValueError(f"ramp_steps must be an int >= 0, got {ramp_steps!r}")
        targets = weight_layers(model, layers)
        for name, module in targets:
            if parametrize.is_parametrized(module, "weight") or hasattr(module, "weight_mask"):
                raise CompressionError(f"layer {name!r} is already pruned or parametrised; a model is pruned once")
        self.model, self.mode, self.scope = model, mode, scope
        self.update_every, self.ramp_steps = update_every, ramp_steps
        self.names = [n for n, _ in targets]
        self.modules = [m for _, m in targets]
        self.steps = 0
        self.mask_updates = 0
        self._finalized = False
        for module in self.modules:
            parametrize.register_parametrization(module, "weight",
                                                 _STEMask(torch.ones_like(module.weight, dtype=torch.bool)))
        self.update_masks()

    # -- masks ---------------------------------------------------------------
    def _param(self, module: nn.Module) -> nn.Parameter:
        return module.parametrizations.weight.original

    def _mask_module(self, module: nn.Module) -> _STEMask:
        return module.parametrizations.weight[0]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """``{layer name: bool mask}`` (True = kept)."""
        return {n: self._mask_module(m).mask for n, m in zip(self.names, self.modules)}

    def current_sparsity(self) -> float:
        """The target sparsity at the current step (ramp applied)."""
        if self.ramp_steps and self.steps < self.ramp_steps:
            return self.sparsity * (1.0 - (1.0 - self.steps / self.ramp_steps) ** 3)
        return self.sparsity

    @torch.no_grad()
    def update_masks(self) -> None:
        """Recompute every mask from the dense weights' magnitudes (exactly
        ``round(s * n)`` zeros per layer, or over all layers if global)."""
        s = self.current_sparsity()
        dense = [self._param(m).detach() for m in self.modules]
        if self.scope == "layer":
            for module, w in zip(self.modules, dense):
                self._mask_module(module).mask.copy_(_keep_largest(w.abs().flatten(), s).view_as(w))
        else:
            flat = torch.cat([w.abs().flatten() for w in dense])
            keep = _keep_largest(flat, s)
            offset = 0
            for module, w in zip(self.modules, dense):
                self._mask_module(module).mask.copy_(keep[offset:offset + w.numel()].view_as(w))
                offset += w.numel()
        self.mask_updates += 1

    # -- the training step -----------------------------------------------------
    def before_step(self) -> None:
        """Call before the forward: recomputes the masks every ``update_every`` steps."""
        self._check_live()
        if self.steps > 0 and self.steps % self.update_every == 0:
            self.update_masks()

    @contextmanager
    def dense(self):
        """Forwards inside use the dense weights ``W`` (no mask)."""
        flags = [self._mask_module(m) for m in self.modules]
        for f in flags:
            f.dense = True
        try:
            yield
        finally:
            for f in flags:
                f.dense = False

    def after_step(self, closure=None) -> None:
        """Call after ``loss.backward()``, before ``optimizer.step()``.

        DPF: nothing to do (the gradient at ``W * M`` is already on ``W``).
        DCIL: ``closure()`` recomputes the loss on the same batch; it is run
        with the dense weights, back-propagated, and the gradients are mixed
        ``M * g_sparse + (1 - M) * g_dense``.
        """
        self._check_live()
        if self.mode == "dcil":
            if closure is None:
                raise ValueError("DCIL needs closure: a callable recomputing the loss on the same batch")
            self._dcil_mix(closure)
        self.steps += 1

    def _dcil_mix(self, closure) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        sparse = {p: (p.grad.detach().clone() if p.grad is not None else None) for p in params}
        for p in params:
            p.grad = None
        stats = {name: buf.detach().clone() for name, buf in self.model.named_buffers()
                 if name.endswith(("running_mean", "running_var", "num_batches_tracked"))}
        with self.dense(), torch.enable_grad():
            loss = closure()
            loss.backward()
        if stats:
            buffers = dict(self.model.named_buffers())
            with torch.no_grad():
                for name, value in stats.items():
                    buffers[name].copy_(value)
        masked = {id(self._param(m)): self._mask_module(m).mask for m in self.modules}
        with torch.no_grad():
            for p in params:
                g_s, g_d = sparse[p], p.grad
                if id(p) in masked and g_s is not None and g_d is not None:
                    mask = masked[id(p)].to(g_s.dtype)
                    p.grad = mask * g_s + (1 - mask) * g_d
                else:
                    p.grad = g_s

    def step(self, optimizer: torch.optim.Optimizer, closure) -> torch.Tensor:
        """One full step: ``zero_grad``, :meth:`before_step`, ``closure()``
        (the loss on the sparse weights), backward, :meth:`after_step`,
        ``optimizer.step()``.  Returns the loss."""
        optimizer.zero_grad(set_to_none=True)
        self.before_step()
        loss = closure()
        loss.backward()
        self.after_step(closure)
        optimizer.step()
        return loss.detach()

    # -- the end ---------------------------------------------------------------
    def _check_live(self) -> None:
        if self._finalized:
            raise RuntimeError("this DynamicPruning was finalised; create a new one")

    def finalize(self) -> nn.Module:
        """Write ``W * M`` into the weights and remove the parametrisations
        (plain ``weight`` tensors with their zeros, nothing else in the
        state_dict); returns the model."""
        self._check_live()
        with torch.no_grad():
            for module in self.modules:
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        self._finalized = True
        add_history(self.model, {"op": "prune", "method": f"dynamic-{self.mode}", "amount": self.sparsity,
                                 "scope": self.scope, "update_every": self.update_every, "steps": self.steps,
                                 "layers": self.names})
        return self.model


def _keep_largest(values: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool mask keeping all but the ``round(sparsity * n)`` smallest values."""
    n = values.numel()
    k = int(round(sparsity * n))
    keep = torch.ones(n, dtype=torch.bool, device=values.device)
    if k > 0:
        keep[torch.argsort(values, stable=True)[:k]] = False
    return keep


__all__ = ["DynamicPruning", "MODES"]
