"""DIST: knowledge distillation from a stronger teacher (Huang, You, Wang,
Qian & Xu, NeurIPS 2022)."""

from __future__ import annotations

from torch import Tensor, nn

from ._checks import _logits_pair, _nonnegative, _positive

__all__ = ["DISTLoss"]


def _pearson_rows(a: Tensor, b: Tensor, eps: float) -> Tensor:
    """Per-row Pearson correlation, ``<a~, b~> / (||a~|| ||b~|| + eps)`` with ``x~`` the row-centred ``x``."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


class DISTLoss(nn.Module):
    r"""DIST (Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A
    Stronger Teacher", NeurIPS 2022): match the *relations* of the
    predictions rather than their values.

    With ``Y = softmax(z / tau)`` row-wise (``(B, K)``) and
    ``rho(a, b) = <a - mean(a), b - mean(b)> / (||a - mean(a)|| ||b - mean(b)|| + eps)``:

    .. math::
        L_{inter} = 1 - \frac{1}{B} \sum_i \rho\big(Y^s_{i,:}, Y^t_{i,:}\big), \qquad
        L_{intra} = 1 - \frac{1}{K} \sum_j \rho\big(Y^s_{:,j}, Y^t_{:,j}\big)

        L = \tau^2 \big(\beta\, L_{inter} + \gamma\, L_{intra}\big)

    inter-class: each sample's correlation across the classes;
    intra-class: each class's correlation across the batch.  Exactly the
    ``DIST`` class of the authors' classification code
    (hunto/image_classification_sota ``lib/models/losses/dist_kd.py``, the
    file the DIST_KD README points to): ``eps = 1e-8`` added to the product
    of the norms, the ``tau^2`` factor on both terms.  (The DIST_KD
    repository's own ``segmentation/losses/dist_kd.py`` has no ``tau``,
    i.e. ``tau = 1``.)  Defaults ``beta = gamma = 1``, ``tau = 1`` (the
    ``dist`` method there; its CIFAR-100 config uses ``dist_t4``, ``tau =
    4``, and both weight the loss by ``kd_loss_weight = 2``, which the
    trainer applies here).

    Edge cases: the intra-class relation needs :attr:`min_batch` = 2
    samples (with one, every class column is constant and the reference
    returns the constant 1), and the inter-class one 2 classes; smaller
    inputs raise ``ValueError``.  Constant student logits give the uniform
    distribution, whose centred rows are zero: the loss is finite, but, as
    in the reference, the gradient there is of order ``1 / eps``.

    Teacher logits are detached (the reference computes them under
    ``torch.no_grad``): gradients reach the student only.

    Args:
        beta: inter-class weight (default 1.0).  gamma: intra-class weight
            (default 1.0).
        temperature: ``tau > 0`` (default 1.0).
        eps: default 1e-8.

    ``forward(student_logits, teacher_logits)``: both ``(B, K)``.  Returns a
    scalar; :meth:`terms` returns the parts.
    """

    #: Smallest batch the intra-class relation is defined for.
    min_batch = 2

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0, eps: float = 1e-8):
        super().__init__()
        self.beta = _nonnegative(beta, "beta")
        self.gamma = _nonnegative(gamma, "gamma")
        self.temperature = _positive(temperature, "temperature")
        self.eps = _positive(eps, "eps")

    def terms(self, student_logits: Tensor, teacher_logits: Tensor) -> dict[str, Tensor]:
        """``{"inter", "intra", "total"}``: the two relation losses (with ``tau^2``, unweighted) and the loss."""
        _logits_pair(student_logits, teacher_logits)
        b, k = student_logits.shape
        if b < self.min_batch:
            raise ValueError(f"DISTLoss needs a batch of at least {self.min_batch} samples (its intra-class "
                             f"relation correlates each class across the batch), got logits of shape {(b, k)}")
        if k < 2:
            raise ValueError(f"DISTLoss needs at least 2 classes, got logits of shape {(b, k)}")
        tau = self.temperature
        y_s = (student_logits / tau).softmax(dim=1)
        y_t = (teacher_logits.detach() / tau).softmax(dim=1)
        inter = tau**2 * (1 - _pearson_rows(y_s, y_t, self.eps).mean())
        intra = tau**2 * (1 - _pearson_rows(y_s.t(), y_t.t(), self.eps).mean())
        return {"inter": inter, "intra": intra, "total": self.beta * inter + self.gamma * intra}

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        return self.terms(student_logits, teacher_logits)["total"]

    def extra_repr(self) -> str:
        return f"beta={self.beta}, gamma={self.gamma}, temperature={self.temperature}"
