"""Distillation losses: each checked against arithmetic written out here with
numpy / literal numbers (never the library's own helpers), plus properties:
zero when student == teacher, gradients reach only the student, symmetry,
1-D (B, C, L) and 2-D (B, C, H, W) maps of odd and even sizes, errors.

The ``*_reference`` functions below restate the authors' public code in plain
torch / numpy (the repository, file and function are named in each), and the
``test_*_reproduces_*`` tests check value *and* gradient against them.

Every random tensor is seeded (the autouse ``seeded`` fixture), so each test
sees the same data on every run."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from topokd.distill import (
    AMDLoss,
    AttentionTransferLoss,
    DDGSDLoss,
    FactorTransferLoss,
    FusedSimilarityPreservingLoss,
    KDCrossEntropyLoss,
    KDLoss,
    MultiTeacherKDLoss,
    Paraphraser,
    SimilarityPreservingLoss,
    Translator,
    kd_objective,
    mixup,
    mixup_criterion,
    partial_mixup,
    standardize_logits,
)
from topokd.distill.losses.kd import MixSTDLoss
from topokd.distill.losses.mixup import mixkd_partial_mixup, mixup_targets

D = torch.float64
#: Seed of the global torch RNG before each test (see ``seeded``).
SEED = 0


@pytest.fixture(autouse=True)
def seeded():
    """Seed torch's global RNG before every test: no test draws unseeded data."""
    torch.manual_seed(SEED)


def t(x, grad=False):
    return torch.tensor(x, dtype=D, requires_grad=grad)


# ----------------------------------------------------------------------------- numpy references


def np_softmax(z):
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_kd(zs, zt, tau):
    """tau^2 * mean_b sum_c p_t (log p_t - log p_s)."""
    ps, pt = np_softmax(np.asarray(zs) / tau), np_softmax(np.asarray(zt) / tau)
    return tau**2 * np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), axis=1))


def np_ce(z, labels):
    p = np_softmax(z)
    return -np.mean(np.log(p[np.arange(len(labels)), labels]))


def np_unit_rows(a):
    a = np.asarray(a, dtype=float).reshape(len(a), -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def np_amd_terms(q_s, q_t, s, m, eps=1e-7):
    """(1/3)[MSE(A) + MSE(P) + MSE(N)] for (B, n) slices of the normalised maps."""

    def dists(q):
        pos = s * np.cos(m * np.arccos(np.clip(q, -1 + eps, 1 - eps)))
        neg = s * (1 - q)
        ang = pos - np.log(np.exp(pos) + np.exp(neg))
        return [np_unit_rows(v) for v in (ang, pos, neg)]

    return sum(np.mean((a - b) ** 2) for a, b in zip(dists(q_s), dists(q_t))) / 3


def assert_same_value_and_grad(ours, reference, inputs, rel=1e-10):
    """ours(*inputs) and reference(*inputs): equal values and equal gradients w.r.t. every input."""
    a = [x.detach().clone().requires_grad_() for x in inputs]
    b = [x.detach().clone().requires_grad_() for x in inputs]
    va, vb = ours(*a), reference(*b)
    assert va.item() == pytest.approx(vb.item(), rel=rel, abs=1e-300)
    ga = torch.autograd.grad(va, a, allow_unused=True)
    gb = torch.autograd.grad(vb, b, allow_unused=True)
    for x, y in zip(ga, gb):
        assert (x is None) == (y is None)
        if x is not None:
            assert torch.allclose(x, y, rtol=rel, atol=rel * y.abs().max().item()), (x - y).abs().max()
    return va.item()


def kldiv_mean(log_q, p):
    """``nn.KLDivLoss()`` with its default reduction (``'mean'``: divide by every element, B * K)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns that 'mean' is not the KL's 'batchmean'
        return nn.KLDivLoss()(log_q, p)


def grads_only_student(loss_fn, student, teacher, nonzero=True):
    """Backward through loss_fn and check the student got a gradient and the teacher none."""
    teachers = teacher if isinstance(teacher, (list, tuple)) else [teacher]
    loss = loss_fn(student, teacher)
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    if nonzero:
        assert student.grad.abs().sum() > 0
    for tt in teachers:
        assert tt.grad is None
    return loss


# ----------------------------------------------------------------------------- KD


def test_kd_matches_hand_computation():
    # one sample, tau = 2: p_t = softmax([1.5, .5, 0]), p_s = softmax([.5, 1, 1.5])
    zs, zt = [[1.0, 2.0, 3.0]], [[3.0, 1.0, 0.0]]
    et = [math.exp(1.5), math.exp(0.5), math.exp(0.0)]
    es = [math.exp(0.5), math.exp(1.0), math.exp(1.5)]
    pt = [e / sum(et) for e in et]
    ps = [e / sum(es) for e in es]
    expected = 4.0 * sum(a * math.log(a / b) for a, b in zip(pt, ps))
    got = KDLoss(temperature=2.0)(t(zs), t(zt))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_kd_batchmean_and_tau_one():
    rng = np.random.default_rng(0)
    zs, zt = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    for tau in (1.0, 3.0, 4.0):
        assert KDLoss(tau)(t(zs), t(zt)).item() == pytest.approx(np_kd(zs, zt, tau), rel=1e-10)
    # batchmean: the mean of the per-sample losses
    per_sample = [KDLoss(4.0)(t(zs[i : i + 1]), t(zt[i : i + 1])).item() for i in range(5)]
    assert KDLoss(4.0)(t(zs), t(zt)).item() == pytest.approx(np.mean(per_sample), rel=1e-12)


def test_kd_zero_when_equal_positive_otherwise_and_grads():
    z = torch.randn(4, 6, dtype=D)
    assert KDLoss()(z, z.clone()).item() == pytest.approx(0.0, abs=1e-12)
    s, te = torch.randn(4, 6, dtype=D, requires_grad=True), torch.randn(4, 6, dtype=D, requires_grad=True)
    loss = grads_only_student(KDLoss(), s, te)
    assert loss.item() > 0


def test_standardize_logits_by_hand():
    z = t([[1.0, 2.0, 3.0, 6.0], [2.0, 2.0, 2.0, 2.0]])
    # row 0: mean 3, squared deviations 4, 1, 0, 9 -> population var 14/4, unbiased var 14/3
    pop, unb = math.sqrt(3.5), math.sqrt(14 / 3)
    out = standardize_logits(z, eps=0.0)  # default: Bessel-corrected, as torch.std in Sun et al.'s code
    assert np.allclose(out[0].numpy(), [-2 / unb, -1 / unb, 0, 3 / unb], atol=1e-14)
    assert torch.equal(out[0], standardize_logits(z, eps=0.0, unbiased=True)[0])
    out_p = standardize_logits(z, eps=0.0, unbiased=False)
    assert np.allclose(out_p[0].numpy(), [-2 / pop, -1 / pop, 0, 3 / pop], atol=1e-14)
    # a constant row has std 0: with eps > 0 it becomes all zeros
    assert np.allclose(standardize_logits(z, eps=1e-7)[1].numpy(), 0.0)


def test_kd_standardized_matches_hand_and_is_shift_scale_invariant():
    rng = np.random.default_rng(1)
    zs, zt = rng.normal(size=(3, 5)) * 4 + 2, rng.normal(size=(3, 5))

    def std_np(z, ddof):
        c = z - z.mean(axis=1, keepdims=True)
        return c / np.sqrt((c**2).sum(axis=1, keepdims=True) / (z.shape[1] - ddof))

    expected = np_kd(std_np(zs, 1), std_np(zt, 1), 2.0)
    got = KDLoss(temperature=2.0, standardize=True, eps=0.0)(t(zs), t(zt)).item()
    assert got == pytest.approx(expected, rel=1e-10)
    expected_pop = np_kd(std_np(zs, 0), std_np(zt, 0), 2.0)
    got_pop = KDLoss(temperature=2.0, standardize=True, eps=0.0, unbiased=False)(t(zs), t(zt)).item()
    assert got_pop == pytest.approx(expected_pop, rel=1e-10) and abs(got_pop - got) > 1e-3
    # a student that is an affine copy (a * z + b, a > 0 per sample) of the teacher: zero loss
    scale, shift = t([[3.0], [0.5], [10.0]]), t([[5.0], [-2.0], [0.0]])
    assert KDLoss(4.0, standardize=True)(t(zt) * scale + shift, t(zt)).item() == pytest.approx(0.0, abs=1e-9)
    assert KDLoss(4.0)(t(zt) * scale + shift, t(zt)).item() > 1e-3  # but not without standardisation


def test_kd_errors():
    kd = KDLoss()
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 6\)"):
        kd(torch.randn(4, 5), torch.randn(4, 6))
    with pytest.raises(ValueError, match="num_classes"):
        kd(torch.randn(4), torch.randn(4))
    with pytest.raises(TypeError, match="floating"):
        kd(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        KDLoss(0.0)
    with pytest.raises(TypeError, match="Tensor"):
        kd([[1.0, 2.0]], torch.randn(1, 2))
    with pytest.raises(ValueError, match="reduction must be one of 'batchmean', 'mean'"):
        KDLoss(reduction="sum")
    with pytest.raises(ValueError, match="scale"):
        KDLoss(scale=-1.0)


def test_kd_objective_and_kd_cross_entropy():
    assert kd_objective(torch.tensor(2.0), torch.tensor(5.0), 0.3).item() == pytest.approx(0.7 * 2 + 0.3 * 5)
    with pytest.raises(ValueError, match="kd_weight"):
        kd_objective(torch.tensor(2.0), torch.tensor(5.0), 1.5)
    zs, zt, y = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]], [[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]], [0, 2]
    ce0 = -math.log(math.exp(1) / (math.exp(1) + 1 + math.exp(-1)))  # sample 0, label 0
    ce1 = -math.log(1 / (math.exp(0.5) + math.exp(2) + 1))  # sample 1, label 2
    ce = (ce0 + ce1) / 2
    assert np_ce(zs, y) == pytest.approx(ce)
    expected = 0.25 * ce + 0.75 * np_kd(zs, zt, 3.0)
    loss = KDCrossEntropyLoss(temperature=3.0, kd_weight=0.75)(t(zs), t(zt), torch.tensor(y))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert KDCrossEntropyLoss(3.0, 0.75)(t(zs), t(zt), torch.tensor(y)).item() == loss.item()  # positional
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\)"):
        KDCrossEntropyLoss()(t(zs), t(zt), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        KDCrossEntropyLoss()(t(zs), t(zt), t([0.0, 1.0]))


def test_lam_is_the_deprecated_name_of_kd_weight():
    ce, kd = torch.tensor(2.0), torch.tensor(5.0)
    with pytest.warns(DeprecationWarning, match="kd_weight"):
        assert kd_objective(ce, kd, lam=0.3).item() == pytest.approx(0.7 * 2 + 0.3 * 5)
    with pytest.warns(DeprecationWarning, match="kd_weight"):
        loss = KDCrossEntropyLoss(lam=0.25)
    assert loss.kd_weight == 0.25
    with pytest.warns(DeprecationWarning, match="kd_weight"):
        assert loss.lam == 0.25
    with pytest.raises(TypeError, match="kd_weight only"):
        kd_objective(ce, kd, 0.3, lam=0.3)
    with pytest.raises(TypeError, match="missing the KD weight"):
        kd_objective(ce, kd)


def test_old_loss_names_warn_once_and_are_the_same_classes(monkeypatch):
    import warnings

    import topokd.distill as distill
    from topokd.distill import losses

    monkeypatch.setattr(losses, "_WARNED", set())
    renamed = {"AttentionTransfer": AttentionTransferLoss, "FactorTransfer": FactorTransferLoss,
               "FusedSimilarityPreserving": FusedSimilarityPreservingLoss, "KDCrossEntropy": KDCrossEntropyLoss,
               "MultiTeacherKD": MultiTeacherKDLoss, "SimilarityPreserving": SimilarityPreservingLoss}
    assert losses.RENAMED == {old: new.__name__ for old, new in renamed.items()}
    for old, new in renamed.items():
        module = losses if old != "KDCrossEntropy" else distill  # both packages resolve the old names
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: use {new.__name__}"):
            assert getattr(module, old) is new
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the second use is silent
            assert getattr(losses, old) is new and getattr(distill, old) is new
    with pytest.raises(AttributeError, match="no attribute 'KDLos'"):
        losses.KDLos
    # every loss module is named *Loss; the new names are the exported ones
    exported = [n for n in losses.__all__ if isinstance(getattr(losses, n), type)]
    assert sorted(n for n in exported if not n.endswith("Loss")) == ["Paraphraser", "Translator"]
    assert not set(renamed) & set(losses.__all__) and not set(renamed) & set(distill.__all__)


def test_multi_teacher_kd():
    rng = np.random.default_rng(2)
    zs, z1, z2 = (rng.normal(size=(4, 5)) for _ in range(3))
    expected = 0.7 * np_kd(zs, z1, 4.0) + 0.3 * np_kd(zs, z2, 4.0)
    assert MultiTeacherKDLoss()(t(zs), [t(z1), t(z2)]).item() == pytest.approx(expected, rel=1e-12)
    expected3 = 1.0 * np_kd(zs, z1, 2.0) + 0.0 * np_kd(zs, z2, 2.0) + 2.0 * np_kd(zs, zs, 2.0)
    got3 = MultiTeacherKDLoss((1.0, 0.0, 2.0), temperature=2.0)(t(zs), [t(z1), t(z2), t(zs)])
    assert got3.item() == pytest.approx(expected3, rel=1e-12)
    # zero when every teacher equals the student; gradients only to the student
    assert MultiTeacherKDLoss()(t(zs), [t(zs), t(zs)]).item() == pytest.approx(0.0, abs=1e-12)
    s, a, b = t(zs, True), t(z1, True), t(z2, True)
    grads_only_student(MultiTeacherKDLoss(), s, [a, b])


def test_kd_mean_reduction_divides_by_classes():
    rng = np.random.default_rng(6)
    zs, zt = rng.normal(size=(5, 7)) * 2, rng.normal(size=(5, 7)) * 2
    for tau in (1.0, 4.0):
        mean = KDLoss(tau, reduction="mean")(t(zs), t(zt)).item()
        assert mean == pytest.approx(np_kd(zs, zt, tau) / 7, rel=1e-12)  # / (B K) instead of / B
    # scale replaces tau^2
    assert KDLoss(4.0, scale=1.0)(t(zs), t(zt)).item() == pytest.approx(np_kd(zs, zt, 4.0) / 16, rel=1e-12)
    assert KDLoss(4.0, scale=0.0)(t(zs), t(zt)).item() == 0.0


def tgd_kd_reference(zs, z1, z2, alpha, T=4.0):
    """jeunsom/TGD main_train.py, TrainManager.train: the KD part of
    ``(1 - lambda_) * loss_SL + lambda_ * T * T * loss_KD`` (without lambda_), with
    ``loss_KD = alpha * KLDivLoss()(log_softmax(output / T), softmax(t1 / T)) + (1 - alpha) * (same for t2)``."""
    kd1 = kldiv_mean(F.log_softmax(zs / T, dim=1), F.softmax(z1 / T, dim=1))
    kd2 = kldiv_mean(F.log_softmax(zs / T, dim=1), F.softmax(z2 / T, dim=1))
    return T * T * (alpha * kd1 + (1 - alpha) * kd2)


def tda_kd_reference(zs, z1, z2, T=4.0):
    """jeunsom/TDA_KD train_ad.py, TrainManager.train: the KD part of
    ``0.7 * lambda_ * T * T * loss_KD + 0.3 * lambda_ * T * T * loss_KD2`` (without lambda_), with
    ``loss_KD = KLDivLoss()(log_softmax(output * 2.0 / stds), softmax(teacher * 2.0 / stdt))`` and
    ``stds = torch.std(output, dim=-1, keepdim=True)`` (Bessel, no epsilon)."""
    stds = torch.std(zs, dim=-1, keepdim=True)
    std1, std2 = torch.std(z1, dim=-1, keepdim=True), torch.std(z2, dim=-1, keepdim=True)
    kd1 = kldiv_mean(F.log_softmax(zs * 2.0 / stds, dim=1), F.softmax(z1 * 2.0 / std1, dim=1))
    kd2 = kldiv_mean(F.log_softmax(zs * 2.0 / stds, dim=1), F.softmax(z2 * 2.0 / std2, dim=1))
    return 0.7 * T * T * kd1 + 0.3 * T * T * kd2


def sun_kd_reference(zs, zt, T):
    """sunshangquan/logit-standardization-KD mdistiller/distillers/KD.py: normalize() and kd_loss(..., logit_stand=True)."""

    def normalize(logit):
        mean = logit.mean(dim=-1, keepdims=True)
        stdv = logit.std(dim=-1, keepdims=True)
        return (logit - mean) / (1e-7 + stdv)

    log_pred_student = F.log_softmax(normalize(zs) / T, dim=1)
    pred_teacher = F.softmax(normalize(zt) / T, dim=1)
    return F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1).mean() * T**2


def test_kd_reproduces_jeon_et_al_tgd():
    zs, z1, z2 = torch.randn(6, 4, dtype=D) * 3, torch.randn(6, 4, dtype=D) * 3, torch.randn(6, 4, dtype=D)
    ours = MultiTeacherKDLoss((0.99, 0.01), 4.0, reduction="mean")
    value = assert_same_value_and_grad(lambda s: ours(s, [z1, z2]), lambda s: tgd_kd_reference(s, z1, z2, 0.99),
                                       [zs])
    # the default (Hinton's batchmean) is K = 4 times larger
    assert MultiTeacherKDLoss((0.99, 0.01), 4.0)(zs, [z1, z2]).item() == pytest.approx(4 * value, rel=1e-12)
    single = KDLoss(4.0, reduction="mean")
    assert_same_value_and_grad(lambda s: single(s, z1), lambda s: tgd_kd_reference(s, z1, z1, 1.0), [zs])


def test_kd_reproduces_jeon_et_al_tda_kd():
    # standardised logits at softmax temperature 1/2, factor T * T = 16 outside the mean-reduced KL
    zs, z1, z2 = torch.randn(5, 6, dtype=D) * 2 + 1, torch.randn(5, 6, dtype=D) * 4, torch.randn(5, 6, dtype=D)
    ours = MultiTeacherKDLoss((0.7, 0.3), 0.5, standardize=True, eps=0.0, reduction="mean", scale=16.0)
    assert_same_value_and_grad(lambda s: ours(s, [z1, z2]), lambda s: tda_kd_reference(s, z1, z2), [zs])


def test_kd_standardized_reproduces_sun_et_al():
    zs, zt = torch.randn(7, 4, dtype=D) * 5, torch.randn(7, 4, dtype=D)
    for tau in (1.0, 2.0, 4.0):  # the authors' base temperature is 2
        value = assert_same_value_and_grad(lambda s, tau=tau: KDLoss(tau, standardize=True)(s, zt),
                                           lambda s, tau=tau: sun_kd_reference(s, zt, tau), [zs])
        # the population std makes every standardised logit sqrt(K / (K - 1)) larger: another loss
        pop = KDLoss(tau, standardize=True, unbiased=False)(zs, zt).item()
        assert abs(pop - value) > 1e-3 * value
    # the KD weight is ours to choose: KDCrossEntropyLoss forwards the options
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    loss = KDCrossEntropyLoss(2.0, 0.9, standardize=True)(zs, zt, y)
    assert loss.item() == pytest.approx(0.1 * F.cross_entropy(zs, y).item() + 0.9 * sun_kd_reference(zs, zt, 2.0).item(),
                                        rel=1e-12)


def mixstd_reference(logit_s, logit_t, target, gamma, alpha):
    """hchoi71/MIX-KD distiller_zoo/MIXSTD.py, MIXSTDLoss.forward (gamma, alpha = opt.gamma, opt.alpha)."""
    stdt = torch.std(logit_t, dim=-1, keepdim=True)
    stds = torch.std(logit_s, dim=-1, keepdim=True)
    loss = -F.log_softmax(logit_s / stds, -1) * target
    loss_cls = gamma * (torch.sum(loss)) / logit_s.shape[0]
    p_s = F.log_softmax(logit_s / stds, dim=1)
    p_t = F.softmax(logit_t / stdt, dim=1)
    std_kd = nn.KLDivLoss(reduction="batchmean")(p_s, p_t)
    return loss_cls, alpha * std_kd


def test_mixstd_reproduces_mix_kd():
    b, k = 8, 5
    zs, zt = torch.randn(b, k, dtype=D) * 3, torch.randn(b, k, dtype=D) * 2 + 1
    x = torch.randn(b, 3, 4, dtype=D)
    _, y_a, y_b, lam = mixkd_partial_mixup(x, torch.randint(0, k, (b,)), 1.0, 0.5,
                                           generator=torch.Generator().manual_seed(0))
    target = mixup_targets(y_a, y_b, lam, k)
    assert torch.allclose(target.sum(1), torch.ones(b, dtype=D))
    ours = MixSTDLoss(eps=0.0)  # MIX-KD adds no epsilon
    assert_same_value_and_grad(lambda s: ours(s, zt, target), lambda s: sum(mixstd_reference(s, zt, target, 0.1, 0.9)),
                               [zs])
    parts = ours.terms(zs, zt, target)
    ref_cls, ref_kd = mixstd_reference(zs, zt, target, 0.1, 0.9)
    assert parts["ce"].item() == pytest.approx(ref_cls.item(), rel=1e-10)
    assert parts["kd"].item() == pytest.approx(ref_kd.item(), rel=1e-10)
    # the KD term is KDLoss at temperature 1 on standardised logits (no tau^2 to speak of)
    assert (parts["kd"] / 0.9).item() == pytest.approx(KDLoss(1.0, standardize=True, eps=0.0)(zs, zt).item(), rel=1e-10)
    # hard labels are one-hot targets; the default eps changes the value by ~eps / std
    labels = torch.randint(0, k, (b,))
    onehot = F.one_hot(labels, k).to(D)
    assert MixSTDLoss(eps=0.0)(zs, zt, labels).item() == pytest.approx(sum(mixstd_reference(zs, zt, onehot, 0.1, 0.9)).item(),
                                                                    rel=1e-10)
    assert MixSTDLoss()(zs, zt, labels).item() == pytest.approx(MixSTDLoss(eps=0.0)(zs, zt, labels).item(), rel=1e-5)
    # a constant logit row: the reference divides by zero, the default eps keeps it finite
    const = torch.zeros(b, k, dtype=D, requires_grad=True)
    loss = MixSTDLoss()(const, zt, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(const.grad).all()
    with pytest.raises(ValueError, match="soft targets"):
        MixSTDLoss()(zs, zt, torch.rand(b, k + 1, dtype=D))


def test_multi_teacher_kd_errors():
    with pytest.raises(ValueError, match="2 weights"):
        MultiTeacherKDLoss()(torch.randn(2, 3), [torch.randn(2, 3)])
    with pytest.raises(ValueError, match=">= 0"):
        MultiTeacherKDLoss((0.5, -0.1))
    with pytest.raises(ValueError, match="all be zero"):
        MultiTeacherKDLoss((0.0, 0.0))
    with pytest.raises(TypeError, match="list or tuple"):
        MultiTeacherKDLoss()(torch.randn(2, 3), torch.randn(2, 2, 3))
    with pytest.raises(ValueError, match=r"teacher_logits\[1\].*\(2, 3\).*\(2, 4\)"):
        MultiTeacherKDLoss()(torch.randn(2, 3), [torch.randn(2, 3), torch.randn(2, 4)])


# ----------------------------------------------------------------------------- attention transfer


def test_at_1d_by_hand():
    # B=1, C=2, L=3; mean over channels of squares
    s = [[[1.0, -2.0, 0.0], [3.0, 1.0, 2.0]]]  # -> [5, 2.5, 2]
    te = [[[0.0, 1.0, 1.0], [2.0, 1.0, -3.0]]]  # -> [2, 1, 5]
    qs = np.array([5, 2.5, 2]) / math.sqrt(25 + 6.25 + 4)
    qt = np.array([2, 1, 5]) / math.sqrt(4 + 1 + 25)
    expected = np.mean((qs - qt) ** 2)
    assert AttentionTransferLoss()(t(s), t(te)).item() == pytest.approx(expected, rel=1e-12)
    assert AttentionTransferLoss(reduction="batchmean")(t(s), t(te)).item() == pytest.approx(3 * expected, rel=1e-12)


def test_at_2d_p1_by_hand_with_different_channels():
    # student C=1, teacher C=2, 2x2 maps, p=1: mean over channels of |A|
    s = [[[[1.0, 2.0], [2.0, 4.0]]]]  # -> [1, 2, 2, 4] / 5
    te = [[[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, 1.0]]]]  # -> [1, 0, 0, 1] / sqrt(2)
    qs, qt = np.array([1, 2, 2, 4]) / 5, np.array([1, 0, 0, 1]) / math.sqrt(2)
    assert AttentionTransferLoss(p=1)(t(s), t(te)).item() == pytest.approx(np.mean((qs - qt) ** 2), rel=1e-12)


def test_at_interpolate_resizes_student_linearly_1d():
    # resize="interpolate" (the former behaviour):
    # student map [a, b] (L=2) -> teacher length 4 with align_corners=False:
    # source coordinates -0.25, 0.25, 0.75, 1.25 -> [a, .75a + .25b, .25a + .75b, b]
    a, b = 4.0, 1.0
    s = [[[2.0, 1.0]]]  # squares: [4, 1]
    te = [[[1.0, 2.0, 1.0, 3.0]]]
    up = np.array([a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b])
    qs, qt = up / np.linalg.norm(up), np.array([1, 4, 1, 9]) / math.sqrt(99)
    at = AttentionTransferLoss(resize="interpolate")
    assert at(t(s), t(te)).item() == pytest.approx(np.mean((qs - qt) ** 2), rel=1e-12)


def test_at_interpolate_resizes_student_bilinearly_2d():
    rng = np.random.default_rng(3)
    s, te = rng.normal(size=(2, 3, 2, 2)), rng.normal(size=(2, 5, 4, 4))
    m = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])  # separable bilinear weights 2 -> 4
    a_s = (s**2).mean(axis=1)
    up = np.einsum("ij,bjk,lk->bil", m, a_s, m)
    qs, qt = np_unit_rows(up), np_unit_rows((te**2).mean(axis=1))
    at = AttentionTransferLoss(resize="interpolate")
    assert at(t(s), t(te)).item() == pytest.approx(np.mean((qs - qt) ** 2), rel=1e-12)


def at_reference(f_s, f_t, p=2):
    """HobbitLong/RepDistiller distiller_zoo/AT.py, Attention.at_loss: the larger map is average-pooled
    to the smaller one's (square) size, then ``(at(f_s) - at(f_t)).pow(2).mean()`` with
    ``at(f) = normalize(f.pow(p).mean(1).view(B, -1))``.  1-D maps: the same with adaptive_avg_pool1d."""
    pool = F.adaptive_avg_pool1d if f_s.ndim == 3 else F.adaptive_avg_pool2d
    s_H, t_H = f_s.shape[2], f_t.shape[2]
    size = (lambda h: h) if f_s.ndim == 3 else (lambda h: (h, h))
    if s_H > t_H:
        f_s = pool(f_s, size(t_H))
    elif s_H < t_H:
        f_t = pool(f_t, size(s_H))

    def at(f):
        return F.normalize(f.pow(p).mean(1).view(f.size(0), -1))

    return (at(f_s) - at(f_t)).pow(2).mean()


@pytest.mark.parametrize("s_size,t_size", [((8, 8), (4, 4)), ((3, 3), (6, 6)), ((7, 7), (3, 3)), ((5, 5), (5, 5)),
                                           ((16,), (6,)), ((5,), (10,)), ((9,), (9,))])
def test_at_reproduces_repdistiller_pooling(s_size, t_size):
    s, te = torch.randn(3, 4, *s_size, dtype=D), torch.randn(3, 6, *t_size, dtype=D)
    at = AttentionTransferLoss()
    assert_same_value_and_grad(lambda a: at(a, te), lambda a: at_reference(a, te), [s])
    if s_size != t_size:  # interpolating the smaller map up instead is another loss
        assert abs(AttentionTransferLoss(resize="interpolate")(s, te).item() - at(s, te).item()) > 1e-4
    # pooling the features (not the attention map) of the larger side: by hand for 4 -> 2 in 1-D
    if s_size == (16,):
        x = torch.tensor([[[1.0, 3.0, -2.0, 0.0]]], dtype=D)  # pooled to [2, -1] -> squares [4, 1]
        y = torch.tensor([[[1.0, 1.0]]], dtype=D)
        q = torch.tensor([4.0, 1.0], dtype=D) / math.sqrt(17)
        expected = ((q - torch.tensor([1.0, 1.0], dtype=D) / math.sqrt(2)) ** 2).mean().item()
        assert at(x, y).item() == pytest.approx(expected, rel=1e-12)
        assert at.attention_map(x, size=(2,)).flatten().tolist() == pytest.approx(q.tolist(), rel=1e-12)


def test_at_pools_non_square_maps_per_axis():
    # RepDistiller pools to a square (t_H, t_H); here each axis goes to the smaller size
    s, te = torch.randn(2, 3, 8, 6, dtype=D), torch.randn(2, 5, 4, 3, dtype=D)
    ps = F.adaptive_avg_pool2d(s, (4, 3))
    qs = F.normalize(ps.pow(2).mean(1).flatten(1))
    qt = F.normalize(te.pow(2).mean(1).flatten(1))
    assert AttentionTransferLoss()(s, te).item() == pytest.approx((qs - qt).pow(2).mean().item(), rel=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 1), (2, 3, 7), (2, 3, 8), (2, 3, 5, 5), (2, 3, 4, 6), (2, 3, 3, 8)])
def test_at_properties(shape):
    x = torch.randn(*shape, dtype=D)
    at = AttentionTransferLoss()
    assert at(x, x.clone()).item() == pytest.approx(0.0, abs=1e-14)
    s = torch.randn(shape[0], 4, *shape[2:], dtype=D, requires_grad=True)  # other width
    te = torch.randn(*shape, dtype=D, requires_grad=True)
    assert at(s, te).item() == pytest.approx(at(te, s).item(), rel=1e-12)  # symmetric
    # a single-position map normalises to 1 whatever the input: zero (but defined) gradient
    grads_only_student(at, s, te, nonzero=math.prod(shape[2:]) > 1)


def test_at_lists_and_errors():
    pairs = [(torch.randn(2, 3, 5), torch.randn(2, 4, 5)), (torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4))]
    at = AttentionTransferLoss()
    total = at([p[0] for p in pairs], [p[1] for p in pairs])
    assert total.item() == pytest.approx(sum(at(a, b).item() for a, b in pairs), rel=1e-6)
    with pytest.raises(ValueError, match=r"\(2, 3, 5\).*\(2, 3, 5, 5\)"):
        at(torch.randn(2, 3, 5), torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"batch size.*\(2, 3, 5\).*\(3, 3, 5\)"):
        at(torch.randn(2, 3, 5), torch.randn(3, 3, 5))
    with pytest.raises(ValueError, match="in pairs"):
        at([torch.randn(2, 3, 5)], [torch.randn(2, 3, 5), torch.randn(2, 3, 5)])
    with pytest.raises(ValueError, match=r"\(B, C, L\) or \(B, C, H, W\)"):
        at(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="reduction"):
        AttentionTransferLoss(reduction="sum")
    with pytest.raises(ValueError, match="resize"):
        AttentionTransferLoss(resize="nearest")


# ----------------------------------------------------------------------------- AMD


def _q(x, norm_eps=1e-6):
    """Channel-sum of squares divided by (its norm + norm_eps): (B, C, *S) numpy -> (B, *S)."""
    a = (np.asarray(x) ** 2).sum(axis=1)
    flat = a.reshape(len(a), -1)
    return (flat / (np.linalg.norm(flat, axis=1, keepdims=True) + norm_eps)).reshape(a.shape)


@pytest.mark.parametrize("s_scale", [4.0, 64.0])
def test_amd_2d_odd_by_hand(s_scale):
    rng = np.random.default_rng(4)
    xs, xt = rng.normal(size=(2, 3, 3, 5)), rng.normal(size=(2, 2, 3, 5))
    qs, qt = _q(xs), _q(xt)
    m = 1.35
    glob = np_amd_terms(qs.reshape(2, -1), qt.reshape(2, -1), s_scale, m)
    # 3 x 5 -> cut at row 3 // 2 = 1 and column 5 // 2 = 2: rows [0:1], [1:3]; cols [0:2], [2:5]
    quads = [(slice(0, 1), slice(0, 2)), (slice(0, 1), slice(2, 5)),
             (slice(1, 3), slice(0, 2)), (slice(1, 3), slice(2, 5))]
    local = np.mean([np_amd_terms(qs[:, r, c].reshape(2, -1), qt[:, r, c].reshape(2, -1), s_scale, m)
                     for r, c in quads])
    expected = 0.8 * glob + 0.2 * local
    assert AMDLoss(s=s_scale)(t(xs), t(xt)).item() == pytest.approx(expected, rel=1e-9)
    assert AMDLoss(s=s_scale, local_weight=0.0, global_weight=1.0)(t(xs), t(xt)).item() == pytest.approx(glob, rel=1e-9)
    # norm_eps=None: exact unit-norm maps (F.normalize)
    qs0, qt0 = _q(xs, 0.0), _q(xt, 0.0)
    glob0 = np_amd_terms(qs0.reshape(2, -1), qt0.reshape(2, -1), s_scale, m)
    assert AMDLoss(s=s_scale, local_weight=0.0, global_weight=1.0, norm_eps=None)(t(xs), t(xt)).item() == \
        pytest.approx(glob0, rel=1e-9)


def test_amd_1d_odd_by_hand():
    rng = np.random.default_rng(5)
    xs, xt = rng.normal(size=(3, 2, 7)), rng.normal(size=(3, 4, 7))
    qs, qt = _q(xs), _q(xt)
    s, m = 8.0, 1.2
    glob = np_amd_terms(qs, qt, s, m)
    segs = [slice(0, 1), slice(1, 3), slice(3, 5), slice(5, 7)]  # cuts at 7 k // 4 = 1, 3, 5: 1 + 2 + 2 + 2
    local = np.mean([np_amd_terms(qs[:, g], qt[:, g], s, m) for g in segs])
    expected = 0.6 * glob + 0.4 * local
    got = AMDLoss(s=s, m=m, local_weight=0.4, global_weight=0.6)(t(xs), t(xt))
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_amd_parts_cover_every_position_once():
    for size in [(1,), (2,), (3,), (4,), (5,), (7,), (8,), (1, 1), (1, 4), (3, 3), (5, 4), (6, 7)]:
        n = int(np.prod(size))
        q = torch.arange(n, dtype=D).reshape(1, 1, *size)
        parts = AMDLoss.parts(q)
        flat = torch.cat(parts, dim=1).flatten().sort().values
        assert torch.equal(flat, torch.arange(n, dtype=D)), size
        assert len(parts) == min(4, n) if len(size) == 1 else True
        assert all(p.shape[1] > 0 for p in parts)
    assert [p.shape[1] for p in AMDLoss.parts(torch.zeros(1, 1, 5, 4))] == [4, 4, 6, 6]  # 2x2, 2x2, 3x2, 3x2
    assert [p.shape[1] for p in AMDLoss.parts(torch.zeros(1, 1, 5, 7))] == [6, 8, 9, 12]  # rows 2 | 3, cols 3 | 4
    assert [p.shape[1] for p in AMDLoss.parts(torch.zeros(1, 1, 10))] == [2, 3, 2, 3]  # cuts at 2, 5, 7


@pytest.mark.parametrize("shape", [(2, 3, 1), (2, 3, 2), (2, 3, 3), (2, 3, 9), (2, 3, 16),
                                   (2, 3, 1, 1), (2, 3, 1, 5), (2, 3, 7, 7), (2, 3, 4, 4), (2, 3, 5, 6)])
def test_amd_properties_any_size(shape):
    amd = AMDLoss()
    x = torch.randn(*shape, dtype=D)
    assert amd(x, x.clone()).item() == pytest.approx(0.0, abs=1e-14)
    s = torch.randn(shape[0], 5, *shape[2:], dtype=D, requires_grad=True)
    te = torch.randn(*shape, dtype=D, requires_grad=True)
    loss = amd(s, te)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(amd(te, s).item(), rel=1e-12)  # symmetric
    grads_only_student(amd, s, te, nonzero=math.prod(shape[2:]) > 1)


def test_amd_resizes_student_like_at():
    # student L=2 with squares [4, 1]: the resized map is [4, 3.25, 1.75, 1]; a length-4 student
    # whose squares are exactly that map must give the same loss
    s_small = t([[[2.0, 1.0]]])
    s_equiv = t([[[2.0, math.sqrt(3.25), math.sqrt(1.75), 1.0]]])
    te = t([[[1.0, 2.0, 1.0, 3.0]]])
    amd = AMDLoss(s=8.0)
    assert amd(s_small, te).item() == pytest.approx(amd(s_equiv, te).item(), rel=1e-12)
    # 2-D: a one-channel student whose squares are the bilinearly resized (align_corners=False)
    # channel sum of squares of the 3 x 3 student gives the same loss on the 6 x 5 teacher
    s2d, t2d = torch.randn(2, 3, 3, 3, dtype=D), torch.randn(2, 4, 6, 5, dtype=D)
    resized = torch.nn.functional.interpolate(s2d.pow(2).sum(1, keepdim=True), size=(6, 5), mode="bilinear",
                                              align_corners=False)
    assert amd(s2d, t2d).item() == pytest.approx(amd(resized.sqrt(), t2d).item(), rel=1e-12)
    assert amd(s2d, t2d).item() > 1e-6  # and the maps differ


def amd4b_reference(x_s, x_t, s=64.0, m=1.35, eps=1e-7):
    """jeunsom/AMD_loss distiller_zoo/AMD.py, AngularPenaltyLoss4b.amdloss: attention_map (sum of squares over
    channels divided by its norm + 1e-6), quadrants cut at int(H / 2), int(W / 2), and
    ``(loss1 + loss1a + loss1b) / 3 * 0.2 + loss2 / 3 * 0.8``.  The published function reads ``excl`` before
    assigning it and reuses the last quadrant's ``1 - Q`` for the global term; this restatement uses each
    region's own ``1 - Q`` (as AngularPenaltyLoss, the global-only AMD, does)."""

    def attention_map(fm, eps=1e-6):
        am = torch.sum(torch.pow(torch.abs(fm), 2), dim=1, keepdim=True)
        return torch.div(am, torch.norm(am, dim=(2, 3), keepdim=True) + eps)

    def dists(w):  # w: (B, n) slice of the normalised map
        numerator = s * torch.cos(m * torch.acos(torch.clamp(w, -1.0 + eps, 1 - eps)))
        pos = torch.exp(numerator)
        neg = torch.exp(s * (1 - w))  # the original's (1 - w).float() is a no-op in its float32 training
        ang = numerator - torch.log(pos + neg)
        return [F.normalize(v, p=2, dim=1) for v in (ang, torch.log(pos), torch.log(neg))]

    ws, wt = attention_map(x_s), attention_map(x_t)
    h, w = int(ws.shape[2] / 2), int(ws.shape[3] / 2)
    cuts = [(slice(None, h), slice(None, w)), (slice(None, h), slice(w, None)),
            (slice(h, None), slice(None, w)), (slice(h, None), slice(w, None))]
    b = ws.shape[0]
    local = [[F.mse_loss(a, c) for a, c in zip(dists(ws[:, :, r, q].reshape(b, -1)),
                                                dists(wt[:, :, r, q].reshape(b, -1)))] for r, q in cuts]
    loss1, loss1a, loss1b = (sum(part[i] for part in local) / 4.0 for i in range(3))
    loss2 = sum(F.mse_loss(a, c) for a, c in zip(dists(ws.reshape(b, -1)), dists(wt.reshape(b, -1))))
    return (loss1 + loss1a + loss1b) / 3.0 * 0.2 + loss2 / 3.0 * 0.8


@pytest.mark.parametrize("size", [(5, 5), (3, 7), (4, 4), (6, 5), (2, 2)])
@pytest.mark.parametrize("s_scale", [8.0, 64.0])
def test_amd_reproduces_jeon_et_al_reference(size, s_scale):
    xs, xt = torch.randn(3, 4, *size, dtype=D), torch.randn(3, 6, *size, dtype=D)
    amd = AMDLoss(s=s_scale)
    assert_same_value_and_grad(lambda a: amd(a, xt), lambda a: amd4b_reference(a, xt, s=s_scale), [xs], rel=1e-9)


def test_amd_large_activations_stay_finite():
    s = (torch.randn(2, 8, 16, 16) * 100).requires_grad_()
    te = torch.randn(2, 8, 16, 16) * 100
    loss = AMDLoss(s=64.0)(s, te)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_amd_errors():
    with pytest.raises(ValueError, match="local_weight"):
        AMDLoss(local_weight=-1)
    with pytest.raises(ValueError, match="both be zero"):
        AMDLoss(local_weight=0, global_weight=0)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\).*\(2, 3, 16\)"):
        AMDLoss()(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 16))


# ----------------------------------------------------------------------------- similarity preserving


def test_sp_by_hand():
    fs = [[1.0, 0.0], [1.0, 1.0]]  # G = [[1, 1], [1, 2]]
    ft = [[0.0, 1.0], [2.0, 0.0]]  # G = [[1, 0], [0, 4]]
    gs = np.array([[1 / math.sqrt(2), 1 / math.sqrt(2)], [1 / math.sqrt(5), 2 / math.sqrt(5)]])
    gt = np.array([[1.0, 0.0], [0.0, 1.0]])
    expected = ((gs - gt) ** 2).sum() / 4
    assert SimilarityPreservingLoss()(t(fs), t(ft)).item() == pytest.approx(expected, rel=1e-12)
    assert np.allclose(SimilarityPreservingLoss.gram(t(fs)).numpy(), gs)


def test_sp_properties_and_mixed_shapes():
    sp = SimilarityPreservingLoss()
    x = torch.randn(5, 3, 8, dtype=D)
    assert sp(x, x.clone()).item() == pytest.approx(0.0, abs=1e-14)
    assert sp(x, 3.0 * x).item() == pytest.approx(0.0, abs=1e-14)  # scale invariant
    s = torch.randn(5, 3, 7, dtype=D, requires_grad=True)  # 1-D student
    te = torch.randn(5, 2, 5, 5, dtype=D, requires_grad=True)  # 2-D teacher, other width
    assert sp(s, te).item() == pytest.approx(sp(te, s).item(), rel=1e-12)
    g_s = np_unit_rows(s.detach().numpy().reshape(5, -1) @ s.detach().numpy().reshape(5, -1).T)
    g_t = np_unit_rows(te.detach().numpy().reshape(5, -1) @ te.detach().numpy().reshape(5, -1).T)
    assert sp(s, te).item() == pytest.approx(((g_s - g_t) ** 2).sum() / 25, rel=1e-12)
    grads_only_student(sp, s, te)
    assert sp([s, s], [te, te]).item() == pytest.approx(2 * sp(s, te).item(), rel=1e-12)
    with pytest.raises(ValueError, match=r"batch size.*\(5, 3, 7\).*\(4, 3, 7\)"):
        sp(torch.randn(5, 3, 7), torch.randn(4, 3, 7))


def test_fused_sp_by_hand():
    fs = [[1.0, 0.0], [1.0, 1.0]]
    f1 = [[0.0, 1.0], [2.0, 0.0]]  # G~ = I
    f2 = [[1.0, 1.0], [1.0, 1.0]]  # G = all 2 -> G~ = all 1/sqrt(2)
    gs = np.array([[1 / math.sqrt(2), 1 / math.sqrt(2)], [1 / math.sqrt(5), 2 / math.sqrt(5)]])
    # default (TGD): fuse the raw Grams 0.7 [[1, 0], [0, 4]] + 0.3 [[2, 2], [2, 2]] = [[1.3, .6], [.6, 3.4]], then rows
    raw = np.array([[1.3, 0.6], [0.6, 3.4]])
    fused = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    expected = ((gs - fused) ** 2).sum() / 4
    assert FusedSimilarityPreservingLoss((0.7, 0.3))(t(fs), [t(f1), t(f2)]).item() == pytest.approx(expected, rel=1e-12)
    # fuse="normalized": the convex combination of the row-normalised maps
    fused_n = 0.7 * np.eye(2) + 0.3 * np.full((2, 2), 1 / math.sqrt(2))
    expected_n = ((gs - fused_n) ** 2).sum() / 4
    got_n = FusedSimilarityPreservingLoss((0.7, 0.3), fuse="normalized")(t(fs), [t(f1), t(f2)]).item()
    assert got_n == pytest.approx(expected_n, rel=1e-12)
    # weights are normalised to sum to one
    assert FusedSimilarityPreservingLoss((7, 3))(t(fs), [t(f1), t(f2)]).item() == pytest.approx(expected, rel=1e-12)
    got_n73 = FusedSimilarityPreservingLoss((7, 3), fuse="normalized")(t(fs), [t(f1), t(f2)]).item()
    assert got_n73 == pytest.approx(expected_n, rel=1e-12)
    # one non-zero weight: plain SP against that teacher
    one = FusedSimilarityPreservingLoss((1.0, 0.0))(t(fs), [t(f1), t(f2)]).item()
    assert one == pytest.approx(SimilarityPreservingLoss()(t(fs), t(f1)).item(), rel=1e-12)


def tgd_sp_reference(student_stages, t1_stages, t2_stages, alpha):
    """jeunsom/TGD main_train.py, TrainManager.train with SP2 (raw Gram ``fm.view(B, -1) @ fm.view(B, -1).t()``):
    ``tmap = normalize(SP(t1) * alpha + SP(t2) * (1 - alpha))``, the student's map row-normalised, and
    ``sp_losst / 3.0`` with ``sp_losst`` the sum of the three stages' ``F.mse_loss``."""

    def sp2(fm):
        fm = fm.view(fm.size(0), -1)
        return torch.mm(fm, fm.t())

    total = 0.0
    for fs, ft1, ft2 in zip(student_stages, t1_stages, t2_stages):
        tmap = F.normalize(sp2(ft1) * alpha + sp2(ft2) * (1 - alpha), p=2, dim=1)
        total = total + F.mse_loss(F.normalize(sp2(fs), p=2, dim=1), tmap)
    return total / 3.0


def test_fused_sp_reproduces_tgd_over_three_stages():
    b = 6
    shapes_s = [(b, 4, 8, 8), (b, 8, 4, 4), (b, 16, 2, 2)]
    s = [torch.randn(*sh, dtype=D) for sh in shapes_s]
    t1 = [torch.randn(b, 2 * sh[1], *sh[2:], dtype=D) * 3 for sh in shapes_s]  # raw-image teacher
    t2 = [torch.randn(b, 2 * sh[1], *sh[2:], dtype=D).abs() for sh in shapes_s]  # PI teacher, other scale
    for alpha in (0.99, 0.5):
        fsp = FusedSimilarityPreservingLoss((alpha, 1 - alpha))
        assert_same_value_and_grad(lambda s0, s1, s2, fsp=fsp: fsp([s0, s1, s2], [t1, t2]),
                                   lambda s0, s1, s2, alpha=alpha: tgd_sp_reference([s0, s1, s2], t1, t2, alpha), s)
    # one stage: the reference restricted to it (times 3, its fixed / 3)
    fsp = FusedSimilarityPreservingLoss((0.7, 0.3))
    one = fsp(s[2], [t1[2], t2[2]]).item()
    assert one == pytest.approx(3 * tgd_sp_reference(s[2:], t1[2:], t2[2:], 0.7).item(), rel=1e-12)
    # the stages are averaged (TGD) or summed; fusing normalised maps is another loss
    summed = FusedSimilarityPreservingLoss((0.7, 0.3), stage_reduction="sum")(s, [t1, t2]).item()
    assert summed == pytest.approx(3 * fsp(s, [t1, t2]).item(), rel=1e-12)
    other = FusedSimilarityPreservingLoss((0.7, 0.3), fuse="normalized")(s, [t1, t2]).item()
    assert abs(other - fsp(s, [t1, t2]).item()) > 1e-4
    with pytest.raises(ValueError, match=r"teacher_features\[1\] must be a sequence of 3 tensors"):
        fsp(s, [t1, t2[:2]])


def test_fused_sp_properties_and_errors():
    fsp = FusedSimilarityPreservingLoss()
    x = torch.randn(4, 6, dtype=D)
    assert fsp(x, [x.clone(), 2 * x]).item() == pytest.approx(0.0, abs=1e-14)
    s = torch.randn(4, 3, 9, dtype=D, requires_grad=True)
    a = torch.randn(4, 2, 5, 5, dtype=D, requires_grad=True)  # PI teacher
    b = torch.randn(4, 6, 9, dtype=D, requires_grad=True)  # raw-signal teacher
    grads_only_student(fsp, s, [a, b])
    with pytest.raises(ValueError, match="2 weights"):
        fsp(s, [a])
    with pytest.raises(ValueError, match="fuse must be one of"):
        FusedSimilarityPreservingLoss(fuse="mean")
    with pytest.raises(ValueError, match=">= 0"):
        FusedSimilarityPreservingLoss((1.0, -1.0))
    with pytest.raises(ValueError, match=r"batch size.*\(4, 2, 5, 5\).*\(3, 6, 9\)"):
        fsp(s, [a, torch.randn(3, 6, 9, dtype=D)])
    with pytest.raises(ValueError, match=r"batch size.*\(3, 4\).*\(4, 2, 5, 5\)"):
        fsp(torch.randn(3, 4, dtype=D), [a, b])


# ----------------------------------------------------------------------------- mixup


def test_mixup_formula_and_reproducibility():
    x = torch.randn(8, 3, 5)
    y = torch.arange(8)  # labels = indices, so y_b reveals the partner
    x_mix, y_a, y_b, lam = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert isinstance(lam, float) and 0 < lam < 1  # Beta(0.4, 0.4) never draws an endpoint
    assert torch.equal(y_a, y) and sorted(y_b.tolist()) == list(range(8))
    assert torch.allclose(x_mix, lam * x + (1 - lam) * x[y_b])
    # the draw comes from the generator: another seed, another lam and partners
    other = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(1))
    assert other[3] != lam and not torch.equal(other[2], y_b)
    again = mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert again[3] == lam and torch.equal(again[0], x_mix)
    x0, _, _, lam0 = mixup(x, y, alpha=0.0, generator=torch.Generator().manual_seed(0))
    assert lam0 == 1.0 and torch.equal(x0, x)


def test_mixup_lambda_follows_beta():
    g = torch.Generator().manual_seed(1)
    lams = np.array([mixup(torch.zeros(2, 1), torch.zeros(2), alpha=0.2, generator=g)[3] for _ in range(2000)])
    # Beta(0.2, 0.2): mean 1/2, variance 1 / (4 (2 alpha + 1)) = 1/5.6
    assert abs(lams.mean() - 0.5) < 0.03
    assert abs(lams.var() - 1 / 5.6) < 0.015


@pytest.mark.parametrize("b,fraction,k",
                         [(10, 0.3, 3), (10, 0.25, 3), (8, 0.5, 4), (7, 0.0, 0), (7, 1.0, 7), (5, 0.5, 3)])
def test_partial_mixup_without_replacement(b, fraction, k):
    x = torch.randn(b, 2, 3)  # float32, as in training
    y = torch.arange(b)
    x_mix, y_a, y_b, lam = partial_mixup(x, y, alpha=1.0, fraction=fraction,
                                         generator=torch.Generator().manual_seed(b), replace=False)
    assert lam.shape == (b,) and lam.dtype == x.dtype
    mixed = lam != 1.0
    assert int(mixed.sum()) == k  # exactly round-half-up(fraction * B) samples
    if k > 1:  # one lam per sample (as MIX-KD), not one per batch
        assert len(set(lam[mixed].tolist())) == k
    unmixed = ~mixed
    assert torch.equal(x_mix[unmixed], x[unmixed]) and torch.equal(y_b[unmixed], y[unmixed])
    # Float32 error bound (u = 2^-24, the unit roundoff).  The library mixes with its float64 lam_i,
    # this test with lam_value = fl32(lam_i): the lam * x[i] products agree (the library rounds the
    # coefficient to float32) but the partner coefficients fl32(1 - lam) and fl32(1 - fl32(lam)) may differ
    # by up to 2u in absolute terms, i.e. 2u |x[j]|; the second product and the sum add at most
    # u (|x[i]| + |x[j]|) per side.  So |difference| <= 4u (|x[i]| + |x[j]|).  An absolute bound in the
    # size of the inputs is needed: when the two terms nearly cancel, allclose's default
    # atol=1e-8 + rtol=1e-5 * |result| is below one rounding of the inputs (it failed for ~1 seed in 50).
    u = 2.0**-24
    for i in torch.nonzero(mixed).flatten().tolist():
        j, lam_value = y_b[i], lam[i].item()
        expected = lam_value * x[i] + (1 - lam_value) * x[j]
        bound = 4 * u * (x[i].abs() + x[j].abs())
        assert torch.all((x_mix[i] - expected).abs() <= bound), (x_mix[i] - expected).abs().max()
        # the same mixing in float64 agrees with float32 rounding of the inputs' size
        exact = lam_value * x[i].double() + (1 - lam_value) * x[j].double()
        assert torch.all((x_mix[i].double() - exact).abs() <= bound.double())
    assert torch.equal(y_a, y)


def test_partial_mixup_with_replacement_duplicates():
    b, k = 10, 10
    distinct = []
    for seed in range(20):
        x = torch.randn(b, 4)
        _, _, _, lam = partial_mixup(x, torch.arange(b), alpha=1.0, fraction=1.0,
                                     generator=torch.Generator().manual_seed(seed), replace=True)
        distinct.append(int((lam != 1.0).sum()))
    assert max(distinct) <= k and min(distinct) < k  # draws with replacement repeat indices
    # 10 draws from 10 with replacement hit 10 (1 - 0.9^10) = 6.5 distinct samples on average
    assert 5 < np.mean(distinct) < 8
    r1 = partial_mixup(torch.ones(6, 2).cumsum(0), torch.arange(6), 1.0, 0.5, torch.Generator().manual_seed(3), True)
    r2 = partial_mixup(torch.ones(6, 2).cumsum(0), torch.arange(6), 1.0, 0.5, torch.Generator().manual_seed(3), True)
    assert all(torch.equal(a, c) for a, c in zip(r1, r2))


def test_partial_mixup_one_lambda_per_batch_option():
    b = 12
    x, y = torch.randn(b, 3), torch.arange(b)
    lam = partial_mixup(x, y, 1.0, 0.5, generator=torch.Generator().manual_seed(4), per_sample=False)[3]
    mixed = lam != 1.0
    assert int(mixed.sum()) == 6 and len(set(lam[mixed].tolist())) == 1
    # per-sample coefficients follow Beta(alpha, alpha): mean 1/2, variance 1 / (4 (2 alpha + 1))
    g = torch.Generator().manual_seed(5)
    lams = torch.cat([partial_mixup(torch.zeros(50, 1), torch.arange(50), 0.4, 1.0, generator=g)[3]
                      for _ in range(60)]).double()
    assert abs(lams.mean().item() - 0.5) < 0.03 and abs(lams.var().item() - 1 / 7.2) < 0.015
    # the draw depends on B and the generator only: replaying the state mixes a second tensor alike
    g = torch.Generator().manual_seed(6)
    state = g.get_state()
    a = partial_mixup(torch.randn(b, 3), y, 1.0, 0.5, generator=g)
    g.set_state(state)
    c = partial_mixup(torch.randn(b, 2, 2, dtype=D), y, 1.0, 0.5, generator=g)
    assert torch.equal(a[2], c[2]) and torch.equal(a[3].double(), c[3].float().double())


def mixkd_pmu_reference(inputs, targets, percent, beta_a, num_classes):
    """hchoi71/MIX-KD helper/loops_mixstd.py, PMU (mixup=True), for any input shape and class count (the
    original tiles ``b`` to CIFAR's [1, 3, 32, 32] and uses 100 classes); global torch and numpy RNGs."""
    batch_size = inputs.shape[0]
    rp1 = torch.randperm(batch_size)
    inputs1, targets1 = inputs[rp1], targets[rp1]
    rp2 = torch.randperm(batch_size)
    inputs2, targets2 = inputs[rp2], targets[rp2]
    targets1_oh = torch.zeros(batch_size, num_classes).scatter_(1, targets1.unsqueeze(1), 1)
    targets2_oh = torch.zeros(batch_size, num_classes).scatter_(1, targets2.unsqueeze(1), 1)
    a = np.random.beta(beta_a, beta_a, [batch_size, 1])
    ridx = torch.randint(0, batch_size, (int(a.shape[0] * percent),))
    a[ridx] = 1.0
    b = np.tile(a.reshape((batch_size,) + (1,) * (inputs.ndim - 1)), (1,) + tuple(inputs.shape[1:]))
    inputs1 = inputs1 * torch.from_numpy(b).float()
    inputs2 = inputs2 * torch.from_numpy(1 - b).float()
    c = np.tile(a, [1, num_classes])
    targets1_oh = targets1_oh.float() * torch.from_numpy(c).float()
    targets2_oh = targets2_oh.float() * torch.from_numpy(1 - c).float()
    return inputs1 + inputs2, targets1_oh + targets2_oh, a[:, 0]


@pytest.mark.parametrize("b,partmixup,alpha", [(64, 0.9, 1.0), (10, 0.5, 0.2), (7, 0.3, 1.0), (5, 1.0, 0.4)])
def test_mixkd_partial_mixup_reproduces_the_reference_draw(b, partmixup, alpha):
    x, y, k = torch.randn(b, 3, 4), torch.randint(0, 6, (b,)), 6
    numpy_state = np.random.get_state()  # MIX-KD draws lam from numpy's global RNG; restored below
    try:
        torch.manual_seed(11)
        np.random.seed(11)
        ref_x, ref_targets, ref_a = mixkd_pmu_reference(x, y, partmixup, alpha, k)
        torch.manual_seed(11)
        np.random.seed(11)
        x_mix, y_a, y_b, lam = mixkd_partial_mixup(x, y, alpha, partmixup, beta_rng=np.random)
    finally:
        np.random.set_state(numpy_state)
    assert torch.equal(x_mix, ref_x)  # bit for bit, float32
    assert torch.equal(lam, torch.from_numpy(ref_a).float())
    assert torch.allclose(mixup_targets(y_a, y_b, lam, k), ref_targets, rtol=0, atol=2**-23)
    # with a torch.Generator only: the same steps, lam from a numpy Generator seeded by one torch draw
    g = torch.Generator().manual_seed(12)
    x_mix, y_a, y_b, lam = mixkd_partial_mixup(x, y, alpha, partmixup, generator=torch.Generator().manual_seed(12))
    rp1, rp2 = torch.randperm(b, generator=g), torch.randperm(b, generator=g)
    seed = torch.randint(0, 2**62, (1,), generator=g).item()
    a = np.random.default_rng(seed).beta(alpha, alpha, b)
    a[torch.randint(0, b, (int(b * partmixup),), generator=g).numpy()] = 1.0
    shape = (b, 1, 1)
    expected = x[rp1] * torch.from_numpy(a).float().view(shape) + x[rp2] * torch.from_numpy(1 - a).float().view(shape)
    assert torch.equal(x_mix, expected) and torch.equal(y_a, y[rp1]) and torch.equal(y_b, y[rp2])
    assert torch.equal(lam, torch.from_numpy(a).float())


def test_mixkd_partial_mixup_mixes_about_40_percent_at_partmixup_0_9():
    # a sample stays unmixed iff one of the k = int(B p) draws with replacement hits it:
    # P(mixed) = (1 - 1/B)^k, 40.75 % for MIX-KD's defaults B = 64, p = 0.9 (k = 57)
    b, p = 64, 0.9
    k = int(b * p)
    assert k == 57
    expected = (1 - 1 / b) ** k
    assert expected == pytest.approx(0.407524, abs=1e-6)
    # Monte Carlo of the reference's marking step alone (torch.randint with replacement)
    rng = torch.Generator().manual_seed(0)
    hit = [torch.zeros(b, dtype=torch.bool).index_fill_(0, torch.randint(0, b, (k,), generator=rng), True)
           for _ in range(4000)]
    mc = 1 - torch.stack(hit).double().mean().item()
    # the per-sample indicator's variance is at most 1/4; 4000 * 64 draws: sd of the mean < 0.002
    assert mc == pytest.approx(expected, abs=0.008)
    g = torch.Generator().manual_seed(1)
    ours = np.mean([(mixkd_partial_mixup(torch.zeros(b, 1), torch.arange(b), 1.0, p, generator=g)[3] != 1)
                    .double().mean().item() for _ in range(1000)])
    assert ours == pytest.approx(expected, abs=0.015)
    # partial_mixup's fraction means the mixed share: fraction=0.9 mixes round(0.9 * 64) = 58 samples
    lam = partial_mixup(torch.zeros(b, 1), torch.arange(b), 1.0, 0.9, generator=torch.Generator().manual_seed(2))[3]
    assert int((lam != 1).sum()) == 58


def test_mixup_targets():
    y_a, y_b = torch.tensor([0, 2, 1]), torch.tensor([1, 2, 0])
    lam = torch.tensor([0.25, 0.5, 1.0], dtype=D)
    expected = torch.tensor([[0.25, 0.75, 0], [0, 0, 1.0], [0, 1.0, 0]], dtype=D)
    assert torch.equal(mixup_targets(y_a, y_b, lam, 3), expected)
    assert torch.allclose(mixup_targets(y_a, y_b, 0.3, 4)[0], torch.tensor([0.3, 0.7, 0, 0]))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        mixup_targets(y_a, y_b, lam[:2], 3)


def test_mixup_criterion_scalar_and_per_sample():
    pred = t([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ya, yb = torch.tensor([0, 1]), torch.tensor([2, 0])
    ce_a, ce_b = np_ce(pred.numpy(), [0, 1]), np_ce(pred.numpy(), [2, 0])
    got = mixup_criterion(nn.CrossEntropyLoss(), pred, ya, yb, 0.3)
    assert got.item() == pytest.approx(0.3 * ce_a + 0.7 * ce_b, rel=1e-12)
    lam = t([0.3, 1.0])
    la = -np.log(np_softmax(pred.numpy())[[0, 1], [0, 1]])
    lb = -np.log(np_softmax(pred.numpy())[[0, 1], [2, 0]])
    expected = np.mean(np.array([0.3, 1.0]) * la + np.array([0.7, 0.0]) * lb)
    got = mixup_criterion(nn.CrossEntropyLoss(reduction="none"), pred, ya, yb, lam)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="reduction='none'"):
        mixup_criterion(nn.CrossEntropyLoss(), pred, ya, yb, lam)


def test_mixup_errors():
    with pytest.raises(ValueError, match=r"batch size.*\(4, 3\).*\(5,\)"):
        mixup(torch.randn(4, 3), torch.arange(5))
    with pytest.raises(ValueError, match="alpha"):
        mixup(torch.randn(4, 3), torch.arange(4), alpha=-1)
    with pytest.raises(ValueError, match="fraction"):
        partial_mixup(torch.randn(4, 3), torch.arange(4), fraction=1.5)
    with pytest.raises(ValueError, match="partmixup"):
        mixkd_partial_mixup(torch.randn(4, 3), torch.arange(4), partmixup=-0.1)


# ----------------------------------------------------------------------------- factor transfer


def test_factor_loss_by_hand():
    fs, ft = t([[3.0, 4.0]]), t([[4.0, 3.0]])  # unit rows [.6, .8] and [.8, .6]
    assert FactorTransferLoss.factor_loss(fs, ft, p=1).item() == pytest.approx(0.2, rel=1e-12)
    assert FactorTransferLoss.factor_loss(fs, ft, p=2).item() == pytest.approx(0.04, rel=1e-12)
    # (B, k, L) factors are flattened per sample before normalising
    fs3 = t([[[3.0], [0.0]], [[1.0], [1.0]]])
    ft3 = t([[[0.0], [5.0]], [[2.0], [2.0]]])
    expected = (abs(1 - 0) + abs(0 - 1) + 0 + 0) / 4
    assert FactorTransferLoss.factor_loss(fs3, ft3).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dims,size", [(1, (7,)), (1, (8,)), (2, (5, 5)), (2, (4, 6)), (2, (1, 3))])
def test_paraphraser_translator_shapes(dims, size):
    para = Paraphraser(6, rate=0.5, dims=dims)
    assert para.factor_channels == 3
    x = torch.randn(2, 6, *size)
    factor, rec = para(x)
    assert factor.shape == (2, 3, *size) and rec.shape == x.shape
    tr = Translator(4, para.factor_channels, dims=dims)
    assert tr(torch.randn(2, 4, *size)).shape == (2, 3, *size)


@pytest.mark.parametrize("dims,s_size,t_size", [(1, (9,), (9,)), (1, (5,), (10,)), (2, (3, 3), (3, 3)),
                                                (2, (4, 4), (7, 6))])
def test_factor_transfer_forward_and_gradients(dims, s_size, t_size):
    torch.manual_seed(0)
    ft = FactorTransferLoss(student_channels=3, teacher_channels=8, rate=0.5, dims=dims)
    s = torch.randn(2, 3, *s_size, requires_grad=True)
    te = torch.randn(2, 8, *t_size, requires_grad=True)
    loss = ft(s, te)
    # by hand: L1 distance of the unit-normalised, flattened factors (student factor resized to the teacher's)
    with torch.no_grad():
        f_t = ft.paraphraser.encoder(te).flatten(1)
        f_s = ft.translator.encoder(s)
        if s_size != t_size:
            f_s = torch.nn.functional.interpolate(f_s, size=t_size, mode="linear" if dims == 1 else "bilinear",
                                                  align_corners=False)
        f_s = f_s.flatten(1)
        expected = (f_s / f_s.norm(dim=1, keepdim=True) - f_t / f_t.norm(dim=1, keepdim=True)).abs().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() > 1e-3
    loss.backward()
    assert s.grad is not None and te.grad is None
    assert all(p.grad is not None for p in ft.translator.parameters())
    assert all(p.grad is None for p in ft.paraphraser.parameters())  # frozen during transfer


def test_factor_width_and_layers_follow_the_authors():
    # k = int(round(C * rate)) (Jangho-Kim/Factor-Transfer-pytorch train_student.py: int(round(64 * RATE))),
    # Python's round: half to even
    for c, rate, k in [(64, 0.5, 32), (7, 0.5, 4), (5, 0.5, 2), (3, 0.5, 2), (10, 0.25, 2), (6, 0.25, 2), (1, 0.1, 1)]:
        assert Paraphraser(c, rate).factor_channels == k == max(1, int(round(c * rate))), (c, rate)
    ft = FactorTransferLoss(3, 7, rate=0.5)
    assert ft.paraphraser.factor_channels == 4 and ft.translator.factor_channels == 4
    # no BatchNorm anywhere by default (the authors' BatchNorm layers are commented out)
    kinds = {type(m).__name__ for m in ft.modules()}
    assert not any("BatchNorm" in n for n in kinds)
    assert any("BatchNorm" in type(m).__name__ for m in FactorTransferLoss(3, 7, translator_bn=True).modules())


def ft_paraphraser_reference(x, para):
    """Jangho-Kim/Factor-Transfer-pytorch Models/FeatureProjection.py, Paraphraser.forward(x, mode=0)
    (conv0-2, deconv0-2, LeakyReLU(0.1) after each), with our module's weights; train_Paraphraser.py trains it
    with ``nn.L1Loss()(output_p, feature.detach())``."""
    convs = [m for m in para.encoder if isinstance(m, nn.Conv2d)]
    deconvs = [m for m in para.decoder if isinstance(m, nn.ConvTranspose2d)]
    out = x
    for c in convs:
        out = F.leaky_relu(F.conv2d(out, c.weight, c.bias, stride=1, padding=1), 0.1)
    factor = out
    for c in deconvs:
        out = F.leaky_relu(F.conv_transpose2d(out, c.weight, c.bias, stride=1, padding=1), 0.1)
    return factor, out


def test_paraphraser_reconstruction_reproduces_the_authors_l1():
    torch.manual_seed(0)
    para = Paraphraser(6, rate=0.5, dims=2).double()
    x = torch.randn(3, 6, 5, 4, dtype=D)
    ours = para.reconstruction_loss(x)
    ref = nn.L1Loss()(ft_paraphraser_reference(x, para)[1], x.detach())
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    g_ours = torch.autograd.grad(ours, list(para.parameters()))
    g_ref = torch.autograd.grad(ref, list(para.parameters()))
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-14) for a, b in zip(g_ours, g_ref))
    assert para.reconstruction_loss(x, p=2).item() == pytest.approx(
        F.mse_loss(ft_paraphraser_reference(x, para)[1], x).item(), rel=1e-12)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        para.reconstruction_loss(x, p=3)


def test_factor_transfer_reproduces_the_authors_loss():
    """train_student.py: ``criterion(utils.FT(factor_s), utils.FT(factor_t.detach()))`` with nn.L1Loss and
    ``FT(x) = F.normalize(x.view(x.size(0), -1))``; Translator.forward as conv0-2 + LeakyReLU(0.1)."""
    torch.manual_seed(0)
    ft = FactorTransferLoss(student_channels=3, teacher_channels=8, rate=0.5, dims=2).double()
    s, te = torch.randn(4, 3, 5, 5, dtype=D), torch.randn(4, 8, 5, 5, dtype=D)

    def reference(student):
        factor_t = ft_paraphraser_reference(te, ft.paraphraser)[0]
        out = student
        for c in [m for m in ft.translator.encoder if isinstance(m, nn.Conv2d)]:
            out = F.leaky_relu(F.conv2d(out, c.weight, c.bias, stride=1, padding=1), 0.1)
        return nn.L1Loss()(F.normalize(out.view(out.size(0), -1)), F.normalize(factor_t.detach().view(4, -1)))

    assert_same_value_and_grad(lambda a: ft(a, te), reference, [s])
    loss, ref = ft(s, te), reference(s)
    g_ours = torch.autograd.grad(loss, list(ft.translator.parameters()))
    g_ref = torch.autograd.grad(ref, list(ft.translator.parameters()))
    assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-14) for a, b in zip(g_ours, g_ref))


def test_factor_transfer_zero_when_translator_equals_paraphraser():
    ft = FactorTransferLoss(4, 4, rate=0.5, dims=2, translator_bn=False)
    ft.translator.encoder.load_state_dict(ft.paraphraser.encoder.state_dict())
    x = torch.randn(3, 4, 5, 5)
    assert ft(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)


def test_paraphraser_training_reduces_reconstruction():
    torch.manual_seed(1)
    ft = FactorTransferLoss(3, 6, dims=1)
    feats = torch.relu(torch.randn(16, 6, 12))
    opt = torch.optim.Adam(ft.paraphraser.parameters(), lr=1e-2)
    first = ft.reconstruction_loss(feats).item()  # L1, as the authors
    for _ in range(60):
        opt.zero_grad()
        ft.reconstruction_loss(feats).backward()
        opt.step()
    assert ft.reconstruction_loss(feats).item() < 0.85 * first


def test_factor_transfer_errors():
    ft = FactorTransferLoss(3, 8, dims=2)
    with pytest.raises(ValueError, match="8 channels"):
        ft(torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match="3 channels"):
        ft(torch.randn(2, 4, 4, 4), torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match="dims=2"):
        ft(torch.randn(2, 3, 4), torch.randn(2, 8, 4))
    with pytest.raises(ValueError, match="dims must be 1"):
        FactorTransferLoss(3, 8, dims=3)
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        FactorTransferLoss(3, 8, p=3)
    with pytest.raises(ValueError, match=r"same shape.*\(1, 2\).*\(1, 3\)"):
        FactorTransferLoss.factor_loss(torch.randn(1, 2), torch.randn(1, 3))


# ----------------------------------------------------------------------------- DDGSD


def test_ddgsd_by_hand():
    z1 = [[1.0, 0.0, 2.0], [0.5, 0.5, -1.0]]
    z2 = [[0.0, 1.0, 1.0], [2.0, 0.0, 0.0]]
    y = [2, 0]
    f1 = [[1.0, 2.0], [3.0, 4.0]]  # mean [2, 3]
    f2 = [[0.0, 0.0], [2.0, 2.0]]  # mean [1, 1] -> MMD^2 = 1 + 4 = 5
    tau = 2.0
    ce = np_ce(z1, y) + np_ce(z2, y)  # CE on both views, summed
    kl = np_kd(z1, z2, tau) + np_kd(z2, z1, tau)  # tau^2 [KL(p2||p1) + KL(p1||p2)]
    loss = DDGSDLoss(temperature=tau, mmd_weight=0.1, kl_weight=0.5)
    parts = loss.terms(t(z1), t(z2), t(f1), t(f2), torch.tensor(y))
    assert parts["ce"].item() == pytest.approx(ce, rel=1e-12)
    assert parts["kl"].item() == pytest.approx(kl, rel=1e-12)
    assert parts["mmd"].item() == pytest.approx(5.0, rel=1e-12)
    total = loss(t(z1), t(z2), t(f1), t(f2), torch.tensor(y))
    assert total.item() == pytest.approx(ce + 0.5 * kl + 0.1 * 5.0, rel=1e-12)
    # symmetric in the two views
    swapped = loss(t(z2), t(z1), t(f2), t(f1), torch.tensor(y))
    assert swapped.item() == pytest.approx(total.item(), rel=1e-12)
    # the former topokd reductions as options: CE averaged over the views, KL / (B K) without tau^2
    old = DDGSDLoss(temperature=tau, mmd_weight=0.1, kl_weight=0.5, ce_reduction="mean", kl_reduction="mean",
                    kl_scale=1.0)
    parts = old.terms(t(z1), t(z2), t(f1), t(f2), torch.tensor(y))
    assert parts["ce"].item() == pytest.approx(ce / 2, rel=1e-12)
    assert parts["kl"].item() == pytest.approx(kl / tau**2 / 3, rel=1e-12)


def test_ddgsd_zero_terms_when_views_equal():
    z, f = torch.randn(4, 5, dtype=D), torch.randn(4, 3, 6, dtype=D)
    parts = DDGSDLoss().terms(z, z.clone(), f, f.clone(), torch.tensor([0, 1, 2, 3]))
    assert parts["kl"].item() == pytest.approx(0.0, abs=1e-12)
    assert parts["mmd"].item() == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("detach", [True, False])
def test_ddgsd_gradient_by_hand(detach):
    z1v, z2v, y, tau = [[1.0, -1.0, 0.5]], [[0.0, 2.0, 1.0]], [1], 3.0
    z1, z2 = t(z1v, True), t(z2v, True)
    f = torch.zeros(1, 2, dtype=D)
    DDGSDLoss(temperature=tau, mmd_weight=0.0, detach_targets=detach)(z1, z2, f, f, torch.tensor(y)).backward()
    p, p1, p2 = np_softmax(z1v)[0], np_softmax(np.array(z1v) / tau)[0], np_softmax(np.array(z2v) / tau)[0]
    onehot = np.array([0.0, 1.0, 0.0])
    # d/dz1 of CE(z1) is p - onehot; of tau^2 KL(p2 || p1) it is tau (p1 - p2)
    expected = (p - onehot) + tau * (p1 - p2)
    if not detach:
        # plus d/dz1 of tau^2 KL(p1 || p2) = tau^2 sum p1 (log p1 - log p2): tau p1 (d - sum p1 d)
        d = np.log(p1) - np.log(p2)
        expected = expected + tau * p1 * (d - np.sum(p1 * d))
    assert np.allclose(z1.grad.numpy()[0], expected, atol=1e-12)


def ddgsd_public_reference(logit_a, logit_b, label, T, lmbda, mu):
    """youngerous/ddgsd-pytorch src/trainer.py, Trainer.train (ddgsd branch) with src/utils.py DistillationLoss:
    ``(ce_loss + lmbda * torch.mean(kd_loss, dim=1) + mu * torch.mean(mmd_loss, dim=1)).mean()``."""

    def distill(out1, out2):
        return F.kl_div(F.log_softmax(out1 / T, dim=1), F.softmax(out2 / T, dim=1), reduction="none")

    ce_loss = nn.CrossEntropyLoss(reduction="none")(logit_a, label) + nn.CrossEntropyLoss(reduction="none")(logit_b,
                                                                                                           label)
    kd_loss = distill(logit_a, logit_b) + distill(logit_b, logit_a)
    mmd_loss = nn.MSELoss(reduction="none")(logit_a, logit_b)
    return (ce_loss + lmbda * torch.mean(kd_loss, dim=1) + mu * torch.mean(mmd_loss, dim=1)).mean()


def test_ddgsd_public_code_reproduces_youngerous():
    za, zb = torch.randn(6, 5, dtype=D) * 2, torch.randn(6, 5, dtype=D) * 2
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    f = torch.zeros(6, 3, dtype=D)  # not used by the public code
    for T, lmbda, mu in [(3.0, 1.0, 5e-4), (1.0, 0.5, 0.1)]:
        loss = DDGSDLoss.public_code(temperature=T, kl_weight=lmbda, mmd_weight=mu)
        assert_same_value_and_grad(lambda a, b, loss=loss: loss(a, b, f, f, y),
                                   lambda a, b, T=T, lmbda=lmbda, mu=mu: ddgsd_public_reference(a, b, y, T, lmbda, mu),
                                   [za, zb])
    # the paper's formulation (default) is another loss: linear-kernel MMD on features, batchmean KL with tau^2
    f1, f2 = torch.randn(6, 4, dtype=D), torch.randn(6, 4, dtype=D) + 0.5
    paper = DDGSDLoss(temperature=3.0)(za, zb, f1, f2, y).item()
    public = DDGSDLoss.public_code()(za, zb, f1, f2, y).item()
    assert abs(paper - public) > 1e-3
    by_hand = (F.cross_entropy(za, y) + F.cross_entropy(zb, y)).item() + np_kd(za.numpy(), zb.numpy(), 3.0) \
        + np_kd(zb.numpy(), za.numpy(), 3.0) + 5e-4 * ((f1.mean(0) - f2.mean(0)) ** 2).sum().item()
    assert paper == pytest.approx(by_hand, rel=1e-12)


def test_ddgsd_errors():
    loss = DDGSDLoss()
    z, f, y = torch.randn(2, 3), torch.randn(2, 4), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 5\)"):
        loss(z, torch.randn(2, 5), f, f, y)
    with pytest.raises(ValueError, match=r"features1 and features2.*\(2, 4\).*\(2, 5\)"):
        loss(z, z, f, torch.randn(2, 5), y)
    with pytest.raises(ValueError, match="mmd_weight"):
        DDGSDLoss(mmd_weight=-1)
    with pytest.raises(ValueError, match="mmd must be one of"):
        DDGSDLoss(mmd="rbf")
    with pytest.raises(ValueError, match="ce_reduction"):
        DDGSDLoss(ce_reduction="batchmean")
