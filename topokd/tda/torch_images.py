"""Differentiable persistence images in PyTorch (CPU or GPU).

The same transform as :class:`topokd.PersistenceImage`, written with tensor
operations so that gradients flow to the diagram points: use it where PIs
feed a network, or to optimise through the diagram.  For a batch of ``B``
diagrams padded to ``K`` points::

    m_b[B, K, Rb]  = Phi((upper_b - b) / sb) - Phi((lower_b - b) / sb)
    m_p[B, K, Rp]  = Phi((upper_p - p) / sp) - Phi((lower_p - p) / sp)
    PI[B, Rb, Rp]  = einsum("bk,bki,bkj->bij", w * mask, m_b, m_p)

Padded points get weight zero, so they contribute neither value nor gradient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # the numpy engine never imports this module at import time
    from .images import ImageSpec, PersistenceImage


class TorchPersistenceImage(torch.nn.Module):
    """``nn.Module`` form of a :class:`~topokd.PersistenceImage`.

    Built from the imager's :meth:`~topokd.PersistenceImage.spec` (or an
    :class:`~topokd.tda.images.ImageSpec`): a snapshot, so later changes to
    the imager's parameters do not reach an existing module.

    ``forward(diagrams, counts=None)``: ``diagrams`` is ``(K, 2)`` or
    ``(B, K, 2)`` in (birth, death); ``counts`` (``(B,)`` ints) marks how
    many leading points of each diagram are real (default: all).  Returns
    ``(*shape)`` or ``(B, *shape)`` in the dtype of ``diagrams`` (use
    float64 for agreement with the numba engine to ~1e-12).
    """

    def __init__(self, imager: PersistenceImage | ImageSpec, device=None):
        super().__init__()
        if device is not None:
            from .._validation import check_device

            device = check_device(device)
        spec = imager.spec() if hasattr(imager, "spec") else imager
        self.layout = spec.layout
        self.normalize = spec.normalize
        self.sigma = spec.sigma
        self._weight = spec.weight
        arrays = (("b_lower", spec.birth_lower), ("b_upper", spec.birth_upper),
                  ("p_lower", spec.pers_lower), ("p_upper", spec.pers_upper))
        for name, arr in arrays:
            self.register_buffer(name, torch.as_tensor(np.array(arr, np.float64), device=device), persistent=False)

    def forward(self, diagrams: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        single = diagrams.dim() == 2
        if single:
            diagrams = diagrams.unsqueeze(0)
        if diagrams.dim() != 3 or diagrams.shape[-1] != 2:
            raise ValueError(f"diagrams must be (K, 2) or (B, K, 2), got {tuple(diagrams.shape)}")
        if not torch.is_floating_point(diagrams):
            raise TypeError(f"diagrams must be a floating tensor, got {diagrams.dtype}")
        dtype = diagrams.dtype
        bsz, k, _ = diagrams.shape
        birth = diagrams[..., 0]
        pers = diagrams[..., 1] - birth
        mask = torch.ones(bsz, k, dtype=torch.bool, device=diagrams.device)
        if counts is not None:
            counts = torch.as_tensor(counts, device=diagrams.device)
            mask = torch.arange(k, device=diagrams.device)[None, :] < counts[:, None]
        w = self._weights(birth, pers, mask)
        m_b = _masses(birth, self.b_lower.to(dtype), self.b_upper.to(dtype), self.sigma[0])
        m_p = _masses(pers, self.p_lower.to(dtype), self.p_upper.to(dtype), self.sigma[1])
        img = torch.einsum("bk,bki,bkj->bij", w, m_b, m_p)
        if self.layout == "legacy":
            img = img.transpose(1, 2).flip(1)
        if self.normalize == "max":
            peak = img.amax(dim=(1, 2), keepdim=True)
            img = img / torch.where(peak > 0, peak, torch.ones_like(peak))
        return img[0] if single else img

    def _weights(self, birth, pers, mask):
        zero = torch.zeros_like(pers)
        if self._weight == "linear":
            return torch.where(mask, pers, zero)
        if self._weight == "linear_max":
            p = torch.where(mask, pers, zero)
            peak = p.amax(dim=1, keepdim=True) if p.shape[1] else torch.ones_like(p[:, :1])
            return p / torch.where(peak > 0, peak, torch.ones_like(peak))
        return torch.where(mask, self._weight(birth, pers), zero)


def _masses(center, lower, upper, sigma):
    """Gaussian mass of each bin [lower, upper] around each point, (B, K, R)."""
    c = center.unsqueeze(-1)
    return torch.special.ndtr((upper - c) / sigma) - torch.special.ndtr((lower - c) / sigma)
