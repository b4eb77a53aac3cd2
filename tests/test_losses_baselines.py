"""The KD baselines (FitNet, RKD, PKT, DKD, DIST, CE), each checked -- value and
gradient -- against the reference formula written out here independently
(numpy loops / plain torch, never the library's helpers), plus the edge cases:
batches too small for a relation, constant inputs, finiteness, and that only
the student (and the loss's own regressor) gets gradients.

References: FitNet -- RepDistiller ``distiller_zoo/FitNet.py`` + ``models/util.py``
(``ConvReg``), mdistiller ``distillers/FitNet.py`` + ``_common.py``; RKD --
RepDistiller ``distiller_zoo/RKD.py``, mdistiller ``distillers/RKD.py``; PKT --
RepDistiller ``distiller_zoo/PKT.py``, mdistiller ``distillers/PKT.py``; DKD --
mdistiller ``distillers/DKD.py``; DIST -- hunto/image_classification_sota
``lib/models/losses/dist_kd.py``."""

import math

import numpy as np
import pytest
import torch

from topokd.distill.losses import (
    CELoss,
    DISTLoss,
    DKDLoss,
    FitNetLoss,
    KDLoss,
    PKTLoss,
    RKDLoss,
    embedding,
)

D = torch.float64


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def randn(*shape, grad=False, scale=1.0):
    return (torch.randn(*shape, dtype=D) * scale).requires_grad_(grad)


def grad_of(value, x):
    (g,) = torch.autograd.grad(value, x)
    return g


def assert_close(a, b, rtol=1e-9, atol=1e-12):
    np.testing.assert_allclose(np.asarray(torch.as_tensor(a).detach()), np.asarray(torch.as_tensor(b).detach()),
                               rtol=rtol, atol=atol)


# ============================================================================ FitNet


def np_batchnorm_relu(y, gamma, beta, relu=True, eps=1e-5):
    """Training-mode BatchNorm over every axis but the channel axis 1 (biased variance), then ReLU."""
    axes = (0,) + tuple(range(2, y.ndim))
    mean = y.mean(axis=axes, keepdims=True)
    var = ((y - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * (y.ndim - 2)
    out = (y - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)
    return np.maximum(out, 0) if relu else out


def np_conv1d(x, w, b, stride=1, padding=0):
    """Explicit-loop 1-D cross-correlation: x (B, C, L), w (O, C, K)."""
    B, _, L = x.shape
    n_out, _, K = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    n = (L + 2 * padding - K) // stride + 1
    out = np.zeros((B, n_out, n))
    for i in range(n):
        out[:, :, i] = np.einsum("bck,ock->bo", xp[:, :, i * stride:i * stride + K], w)
    return out + b.reshape(1, -1, 1)


def np_conv_transpose1d(x, w, b, stride=2, padding=1):
    """Explicit transposed conv: x (B, C, L), w (C, O, K); out[j] += x[i] w[k] at j = stride*i + k - padding."""
    B, _, L = x.shape
    _, n_out, K = w.shape
    n = (L - 1) * stride - 2 * padding + K
    out = np.zeros((B, n_out, n))
    for i in range(L):
        for k in range(K):
            j = stride * i + k - padding
            if 0 <= j < n:
                out[:, :, j] += np.einsum("bc,co->bo", x[:, :, i], w[:, :, k])
    return out + b.reshape(1, -1, 1)


def torch_fitnet_1x1(x, t, w, b, gamma, beta, eps=1e-5):
    """The reference's ConvReg (kernel 1) + BatchNorm (training) + ReLU + MSE, in plain torch."""
    y = torch.einsum("oc,bc...->bo...", w.reshape(w.shape[0], w.shape[1]), x)
    y = y + b.reshape((1, -1) + (1,) * (x.ndim - 2))
    axes = (0,) + tuple(range(2, x.ndim))
    mean = y.mean(dim=axes, keepdim=True)
    var = ((y - mean) ** 2).mean(dim=axes, keepdim=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = torch.relu((y - mean) / torch.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape))
    return ((y - t) ** 2).mean()


@pytest.mark.parametrize("dims,s_shape,t_shape", [(1, (4, 3, 7), (4, 5, 7)), (2, (3, 2, 5, 4), (3, 6, 5, 4))])
def test_fitnet_matches_convreg_bn_relu_mse(dims, s_shape, t_shape):
    loss = FitNetLoss(s_shape[1], t_shape[1], dims=dims).double()
    # non-trivial BatchNorm affine parameters
    with torch.no_grad():
        loss.regressor[1].weight.uniform_(0.5, 1.5)
        loss.regressor[1].bias.uniform_(-0.2, 0.2)
    conv, bn = loss.regressor[0], loss.regressor[1]
    assert conv.kernel_size == (1,) * dims
    x, t = randn(*s_shape, grad=True), randn(*t_shape).abs()
    value = loss(x, t)
    p = [q.detach().numpy() for q in (conv.weight, conv.bias, bn.weight, bn.bias)]
    w2 = p[0].reshape(p[0].shape[0], p[0].shape[1])
    y = np.einsum("oc,bc...->bo...", w2, x.detach().numpy()) + p[1].reshape((1, -1) + (1,) * dims)
    expected = ((np_batchnorm_relu(y, p[2], p[3]) - t.numpy()) ** 2).mean()
    assert_close(value, expected)
    # gradients: the student features and the regressor weight, against plain torch
    wr = conv.weight.detach().clone().requires_grad_(True)
    ref = torch_fitnet_1x1(x, t, wr, conv.bias.detach(), bn.weight.detach(), bn.bias.detach())
    assert_close(ref, expected)
    g_ref_x, g_ref_w = torch.autograd.grad(ref, (x, wr))
    g_x, g_w = torch.autograd.grad(loss(x, t), (x, conv.weight))
    assert_close(g_x, g_ref_x)
    assert_close(g_w, g_ref_w)


def test_fitnet_bare_regressor_is_a_linear_1x1_conv():
    loss = FitNetLoss(3, 4, dims=2, use_bn=False, use_relu=False).double()
    assert len(loss.regressor) == 1
    x, t = randn(2, 3, 5, 6), randn(2, 4, 5, 6)
    w, b = loss.regressor[0].weight.detach().numpy()[:, :, 0, 0], loss.regressor[0].bias.detach().numpy()
    y = np.einsum("oc,bchw->bohw", w, x.numpy()) + b.reshape(1, -1, 1, 1)
    assert_close(loss(x, t), ((y - t.numpy()) ** 2).mean())


@pytest.mark.parametrize("s_len,t_len,kind", [(10, 5, "stride2"), (9, 5, "valid"), (5, 5, "1x1"), (4, 8, "transpose")])
def test_fitnet_spatial_mismatch_follows_convreg(s_len, t_len, kind):
    loss = FitNetLoss(3, 2, dims=1, student_size=s_len, teacher_size=t_len, use_bn=False, use_relu=False).double()
    conv = loss.regressor[0]
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    x, t = randn(2, 3, s_len, grad=True), randn(2, 2, t_len)
    if kind == "stride2":
        assert (conv.kernel_size, conv.stride, conv.padding) == ((3,), (2,), (1,))
        y = np_conv1d(x.detach().numpy(), w, b, stride=2, padding=1)
    elif kind == "valid":
        assert conv.kernel_size == (1 + s_len - t_len,) and conv.padding == (0,)
        y = np_conv1d(x.detach().numpy(), w, b)
    elif kind == "1x1":
        assert conv.kernel_size == (1,)
        y = np_conv1d(x.detach().numpy(), w, b)
    else:
        assert isinstance(conv, torch.nn.ConvTranspose1d)
        assert (conv.kernel_size, conv.stride, conv.padding) == ((4,), (2,), (1,))
        y = np_conv_transpose1d(x.detach().numpy(), w, b)
    assert y.shape == t.shape
    value = loss(x, t)
    assert_close(value, ((y - t.numpy()) ** 2).mean())
    # gradient of the MSE wrt the student through a linear map: finite differences of the numpy reference
    g = grad_of(value, x).numpy()
    h, (i, j, k) = 1e-6, (1, 2, min(3, s_len - 1))
    xp, xm = x.detach().numpy().copy(), x.detach().numpy().copy()
    xp[i, j, k] += h
    xm[i, j, k] -= h
    f = {"stride2": lambda a: np_conv1d(a, w, b, 2, 1), "transpose": lambda a: np_conv_transpose1d(a, w, b)}.get(
        kind, lambda a: np_conv1d(a, w, b))
    fd = ((((f(xp) - t.numpy()) ** 2).mean()) - ((f(xm) - t.numpy()) ** 2).mean()) / (2 * h)
    assert g[i, j, k] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_fitnet_2d_size_rules_apply_to_both_axes():
    loss = FitNetLoss(2, 3, dims=2, student_size=(8, 6), teacher_size=(4, 3))
    out = loss.regressor(torch.randn(2, 2, 8, 6))
    assert out.shape == (2, 3, 4, 3)
    loss = FitNetLoss(2, 3, dims=2, student_size=(6, 7), teacher_size=(4, 4))
    assert loss.regressor(torch.randn(2, 2, 6, 7)).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="twice or half"):
        FitNetLoss(2, 3, dims=2, student_size=(8, 3), teacher_size=(4, 6))  # one axis halves, one doubles
    with pytest.raises(ValueError, match="twice or half"):
        FitNetLoss(2, 3, dims=1, student_size=5, teacher_size=7)  # smaller, not half


def test_fitnet_owns_trainable_regressor_and_teacher_gets_no_gradient():
    loss = FitNetLoss(3, 4, dims=1)
    names = {n for n, _ in loss.named_parameters()}
    assert names == {"regressor.0.weight", "regressor.0.bias", "regressor.1.weight", "regressor.1.bias"}
    s, t = torch.randn(8, 3, 6, requires_grad=True), torch.randn(8, 4, 6).abs().requires_grad_(True)
    opt = torch.optim.SGD(loss.parameters(), lr=0.5)
    before = loss(s, t)
    before.backward()
    assert t.grad is None and s.grad is not None
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in loss.parameters())
    opt.step()
    assert loss(s, t).item() < before.item()  # the regressor is trained by the student's optimizer


def test_fitnet_sequences_use_the_hint_layer():
    loss = FitNetLoss(3, 4, dims=1, hint_layer=1).double().eval()
    s = [randn(2, 5, 6), randn(2, 3, 6)]
    t = [randn(2, 7, 6), randn(2, 4, 6)]
    assert_close(loss(s, t), loss(s[1], t[1]))
    with pytest.raises(ValueError, match="hint_layer=1 is out of range"):
        loss([s[0]], [t[0]])


def test_fitnet_errors():
    loss = FitNetLoss(3, 4, dims=1)
    with pytest.raises(ValueError, match="student_size=\\(10,\\) and teacher_size=\\(5,\\)"):
        loss(torch.randn(2, 3, 10), torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="must have 3 channels"):
        loss(torch.randn(2, 5, 6), torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match="both be 1-D"):
        loss(torch.randn(2, 3, 6), torch.randn(2, 4, 6, 6))  # a 2-D PI teacher against a 1-D student
    with pytest.raises(ValueError, match="dims=1"):
        loss(torch.randn(2, 3, 6, 6), torch.randn(2, 4, 6, 6))
    with pytest.raises(ValueError, match="more than one value per channel"):
        loss(torch.randn(1, 3, 1), torch.randn(1, 4, 1))
    assert torch.isfinite(loss.eval()(torch.randn(1, 3, 1), torch.randn(1, 4, 1)))  # running stats in eval
    with pytest.raises(ValueError, match="both student_size and teacher_size"):
        FitNetLoss(3, 4, student_size=5)
    with pytest.raises(ValueError, match="dims must be 1"):
        FitNetLoss(3, 4, dims=3)
    with pytest.raises(ValueError, match="student_channels must be a positive int"):
        FitNetLoss(0, 4)


# ============================================================================ RKD


def huber(x):
    x = np.abs(x)
    return np.where(x < 1, 0.5 * x**2, x - 0.5)


def np_rkd(s, t, w_d=25.0, w_a=50.0, squared=False):
    """RKD from its definition: direct pairwise norms, explicit triplet loops."""

    def distances(e):
        d = np.linalg.norm(e[:, None, :] - e[None, :, :], axis=2)
        d = d**2 if squared else d
        off = ~np.eye(len(e), dtype=bool)
        return d / d[off].mean()

    def angles(e):
        n = len(e)
        out = np.zeros((n, n, n))
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    if j == i or k == i:
                        continue
                    u, v = e[j] - e[i], e[k] - e[i]
                    out[i, j, k] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        return out

    loss_d = huber(distances(s) - distances(t)).mean()
    loss_a = huber(angles(s) - angles(t)).mean()
    return w_d * loss_d + w_a * loss_a, loss_d, loss_a


def torch_rkd(s, t, w_d=25.0, w_a=50.0):
    """Plain-torch RKD from its definition (for gradients)."""
    n = s.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)

    def distances(e):
        d = (e[:, None, :] - e[None, :, :]).norm(dim=2)
        return (d / d[off].mean())[off]

    def angles(e):
        rows = []
        for i in range(n):
            others = [j for j in range(n) if j != i]
            u = e[others] - e[i]
            u = u / u.norm(dim=1, keepdim=True)
            rows.append((u @ u.t()).reshape(-1))
        return torch.cat(rows)

    def hub(x):
        a = x.abs()
        return torch.where(a < 1, 0.5 * a**2, a - 0.5)

    # the reference's means run over all B^2 / B^3 entries; the excluded (degenerate) ones contribute 0
    loss_d = hub(distances(s) - distances(t.detach())).sum() / n**2
    loss_a = hub(angles(s) - angles(t.detach())).sum() / n**3
    return w_d * loss_d + w_a * loss_a


@pytest.mark.parametrize("b", [3, 6])
def test_rkd_matches_definition(b):
    s, t = randn(b, 5, grad=True), randn(b, 8, scale=3.0)
    loss = RKDLoss()
    value = loss(s, t)
    expected, ld, la = np_rkd(s.detach().numpy(), t.numpy())
    assert_close(value, expected, rtol=1e-9)
    terms = loss.terms(s, t)
    assert_close(terms["distance"], ld, rtol=1e-9)
    assert_close(terms["angle"], la, rtol=1e-9)
    assert_close(grad_of(value, s), grad_of(torch_rkd(s, t), s), rtol=1e-7, atol=1e-12)


def test_rkd_options():
    s, t = randn(5, 4), randn(5, 6)
    assert_close(RKDLoss(distance_weight=1.0, angle_weight=0.0, squared=True)(s, t),
                 np_rkd(s.numpy(), t.numpy(), 1.0, 0.0, squared=True)[0], rtol=1e-9)
    assert_close(RKDLoss(distance_weight=0.0, angle_weight=2.0)(s, t), np_rkd(s.numpy(), t.numpy(), 0.0, 2.0)[0],
                 rtol=1e-9)
    with pytest.raises(ValueError, match="must not both be zero"):
        RKDLoss(0, 0)


def test_rkd_pools_maps_of_any_dims_and_sums_lists():
    s = randn(4, 3, 7, grad=True)  # 1-D student map
    t = randn(4, 6, 5, 5)  # 2-D (PI) teacher map
    value = RKDLoss()(s, t)
    assert_close(value, np_rkd(s.detach().numpy().mean(axis=2), t.numpy().mean(axis=(2, 3)))[0], rtol=1e-9)
    assert_close(embedding(t), t.mean(dim=(2, 3)))
    s2, t2 = randn(4, 5), randn(4, 2)
    assert_close(RKDLoss()([s, s2], [t, t2]), RKDLoss()(s, t) + RKDLoss()(s2, t2))


def test_rkd_small_batches_and_constant_embeddings():
    with pytest.raises(ValueError, match="at least 3 samples"):
        RKDLoss()(torch.randn(2, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="at least 3 samples"):
        RKDLoss()(torch.randn(1, 4), torch.randn(1, 4))
    assert RKDLoss.min_batch == 3
    s = torch.ones(5, 4, dtype=D, requires_grad=True)
    value = RKDLoss()(s, randn(5, 4))
    g = grad_of(value, s)
    assert torch.isfinite(value) and torch.isfinite(g).all()


# ============================================================================ PKT


def np_pkt(s, t, eps=1e-7):
    def dist(x):
        u = x / (np.sqrt((x**2).sum(axis=1, keepdims=True)) + eps)
        k = (u @ u.T + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    ps, pt = dist(s), dist(t)
    return (pt * np.log((pt + eps) / (ps + eps))).mean()


def torch_pkt(s, t, eps=1e-7):
    def dist(x):
        u = x / (torch.sqrt((x**2).sum(dim=1, keepdim=True)) + eps)
        k = (u @ u.t() + 1) / 2
        return k / k.sum(dim=1, keepdim=True)

    ps, pt = dist(s), dist(t.detach())
    return (pt * torch.log((pt + eps) / (ps + eps))).mean()


@pytest.mark.parametrize("b", [2, 7])
def test_pkt_matches_reference_formula(b):
    s, t = randn(b, 6, grad=True), randn(b, 3)
    value = PKTLoss()(s, t)
    assert_close(value, np_pkt(s.detach().numpy(), t.numpy()))
    assert_close(grad_of(value, s), grad_of(torch_pkt(s, t), s), rtol=1e-9, atol=1e-15)


def test_pkt_pools_maps_and_edge_cases():
    s, t = randn(5, 4, 9, grad=True), randn(5, 2, 6, 6)
    assert_close(PKTLoss()(s, t), np_pkt(s.detach().numpy().mean(axis=2), t.numpy().mean(axis=(2, 3))))
    with pytest.raises(ValueError, match="at least 2 samples"):
        PKTLoss()(torch.randn(1, 4), torch.randn(1, 4))
    assert PKTLoss.min_batch == 2
    # an all-zero student row: same value as the reference, finite (zero) gradient where the reference's is NaN
    z = torch.zeros(4, 3, dtype=D)
    z[1:] = randn(3, 3)
    z.requires_grad_(True)
    t = randn(4, 5)
    value = PKTLoss()(z, t)
    assert_close(value, np_pkt(z.detach().numpy(), t.numpy()))
    assert torch.isfinite(grad_of(value, z)).all()
    assert torch.isnan(grad_of(torch_pkt(z, t), z)).any()  # the reference's sqrt(sum x^2)
    c = torch.ones(4, 3, dtype=D, requires_grad=True)  # constant embeddings
    value = PKTLoss()(c, t)
    assert torch.isfinite(value) and torch.isfinite(grad_of(value, c)).all()


# ============================================================================ DKD


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_dkd(zs, zt, y, alpha=1.0, beta=8.0, T=4.0):
    """Per sample: binary (target / rest) KL and the KL over the non-target classes alone."""
    B, K = zs.shape
    tckd = nckd = 0.0
    for i in range(B):
        ps, pt = np_softmax(zs[i] / T), np_softmax(zt[i] / T)
        rest = [k for k in range(K) if k != y[i]]
        bs = np.array([ps[y[i]], ps[rest].sum()])
        bt = np.array([pt[y[i]], pt[rest].sum()])
        tckd += (bt * (np.log(bt) - np.log(bs))).sum()
        qs, qt = np_softmax(zs[i, rest] / T), np_softmax(zt[i, rest] / T)
        nckd += (qt * (np.log(qt) - np.log(qs))).sum()
    tckd, nckd = tckd * T**2 / B, nckd * T**2 / B
    return alpha * tckd + beta * nckd, tckd, nckd


def torch_dkd(zs, zt, y, alpha=1.0, beta=8.0, T=4.0):
    total = 0.0
    B, K = zs.shape
    for i in range(B):
        ps, pt = torch.softmax(zs[i] / T, 0), torch.softmax(zt[i].detach() / T, 0)
        rest = torch.tensor([k for k in range(K) if k != y[i]])
        bs = torch.stack([ps[y[i]], ps[rest].sum()])
        bt = torch.stack([pt[y[i]], pt[rest].sum()])
        qs, qt = torch.log_softmax(zs[i, rest] / T, 0), torch.softmax(zt[i, rest].detach() / T, 0)
        total = total + alpha * (bt * (bt.log() - bs.log())).sum() + beta * (qt * (qt.log() - qs)).sum()
    return total * T**2 / B


def test_dkd_matches_mdistiller_formula():
    zs, zt = randn(6, 5, grad=True, scale=3.0), randn(6, 5, scale=3.0)
    y = torch.tensor([0, 4, 2, 2, 1, 3])
    loss = DKDLoss(warmup=0)
    value = loss(zs, zt, y)
    expected, tckd, nckd = np_dkd(zs.detach().numpy(), zt.numpy(), y.numpy())
    assert_close(value, expected, rtol=1e-9)
    terms = loss.terms(zs, zt, y)
    assert_close(terms["tckd"], tckd, rtol=1e-9)
    assert_close(terms["nckd"], nckd, rtol=1e-9)
    assert terms["warmup"] == 1.0
    assert_close(grad_of(value, zs), grad_of(torch_dkd(zs, zt, y), zs), rtol=1e-8, atol=1e-14)
    other = DKDLoss(alpha=0.5, beta=2.0, temperature=1.0, warmup=0)(zs, zt, y)
    assert_close(other, np_dkd(zs.detach().numpy(), zt.numpy(), y.numpy(), 0.5, 2.0, 1.0)[0], rtol=1e-9)


def test_dkd_decomposes_kd():
    """The paper's identity (one sample): KD = TCKD + (1 - p_t,target) NCKD."""
    zs, zt, y = randn(1, 6, scale=2.0), randn(1, 6, scale=2.0), torch.tensor([3])
    terms = DKDLoss(warmup=0).terms(zs, zt, y)
    p_target = torch.softmax(zt / 4.0, dim=1)[0, 3]
    assert_close(KDLoss(4.0)(zs, zt), terms["tckd"] + (1 - p_target) * terms["nckd"], rtol=1e-9)


def test_dkd_warmup():
    zs, zt, y = randn(4, 5), randn(4, 5), torch.tensor([0, 1, 2, 3])
    full = DKDLoss(warmup=0)(zs, zt, y)
    loss = DKDLoss()  # warmup=20
    with pytest.raises(ValueError, match="set_epoch"):
        loss(zs, zt, y)
    loss.set_epoch(5)
    assert_close(loss(zs, zt, y), 0.25 * full)
    assert_close(loss(zs, zt, y, epoch=1), full / 20)  # an explicit epoch takes precedence
    assert_close(loss(zs, zt, y, epoch=40), full)
    loss.set_epoch(20)
    assert loss.warmup_factor() == 1.0
    with pytest.raises(ValueError, match="epoch"):
        loss.set_epoch(-1)


def test_dkd_edge_cases():
    loss = DKDLoss(warmup=0)
    zs = torch.zeros(3, 4, dtype=D, requires_grad=True)  # constant logits
    value = loss(zs, randn(3, 4), torch.tensor([0, 1, 2]))
    assert torch.isfinite(value) and torch.isfinite(grad_of(value, zs)).all()
    with pytest.raises(ValueError, match="at least 2 classes"):
        loss(torch.randn(3, 1), torch.randn(3, 1), torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="class indices in \\[0, 4\\)"):
        loss(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0, 1, 2]))


# ============================================================================ DIST


def np_pearson_rows(a, b, eps=1e-8):
    out = []
    for x, y in zip(a, b):
        x, y = x - x.mean(), y - y.mean()
        out.append((x * y).sum() / (np.sqrt((x**2).sum()) * np.sqrt((y**2).sum()) + eps))
    return np.array(out)


def np_dist(zs, zt, beta=1.0, gamma=1.0, tau=1.0):
    ys, yt = np_softmax(zs / tau), np_softmax(zt / tau)
    inter = 1 - np_pearson_rows(ys, yt).mean()
    intra = 1 - np_pearson_rows(ys.T, yt.T).mean()
    return tau**2 * (beta * inter + gamma * intra), tau**2 * inter, tau**2 * intra


def torch_dist(zs, zt, beta=1.0, gamma=1.0, tau=1.0, eps=1e-8):
    ys, yt = torch.softmax(zs / tau, 1), torch.softmax(zt.detach() / tau, 1)

    def rho(a, b):
        a, b = a - a.mean(), b - b.mean()
        return (a * b).sum() / (torch.sqrt((a**2).sum()) * torch.sqrt((b**2).sum()) + eps)

    inter = 1 - sum(rho(ys[i], yt[i]) for i in range(ys.shape[0])) / ys.shape[0]
    intra = 1 - sum(rho(ys[:, j], yt[:, j]) for j in range(ys.shape[1])) / ys.shape[1]
    return tau**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize("tau,beta,gamma", [(1.0, 1.0, 1.0), (4.0, 2.0, 0.5)])
def test_dist_matches_reference_formula(tau, beta, gamma):
    zs, zt = randn(5, 7, grad=True, scale=2.0), randn(5, 7, scale=2.0)
    loss = DISTLoss(beta=beta, gamma=gamma, temperature=tau)
    value = loss(zs, zt)
    expected, inter, intra = np_dist(zs.detach().numpy(), zt.numpy(), beta, gamma, tau)
    assert_close(value, expected, rtol=1e-9)
    terms = loss.terms(zs, zt)
    assert_close(terms["inter"], inter, rtol=1e-9)
    assert_close(terms["intra"], intra, rtol=1e-9)
    assert_close(grad_of(value, zs), grad_of(torch_dist(zs, zt, beta, gamma, tau), zs), rtol=1e-8, atol=1e-14)


def test_dist_relations_are_pearson_correlations():
    zs, zt = randn(6, 4), randn(6, 4)
    ys, yt = torch.softmax(zs, 1).numpy(), torch.softmax(zt, 1).numpy()
    inter = 1 - np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(ys, yt)])
    intra = 1 - np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(ys.T, yt.T)])
    terms = DISTLoss().terms(zs, zt)
    assert terms["inter"].item() == pytest.approx(inter, rel=1e-5)
    assert terms["intra"].item() == pytest.approx(intra, rel=1e-5)
    assert DISTLoss()(zt, zt).item() == pytest.approx(0.0, abs=1e-6)


def test_dist_edge_cases():
    with pytest.raises(ValueError, match="at least 2 samples"):
        DISTLoss()(torch.randn(1, 5), torch.randn(1, 5))
    assert DISTLoss.min_batch == 2
    with pytest.raises(ValueError, match="at least 2 classes"):
        DISTLoss()(torch.randn(4, 1), torch.randn(4, 1))
    zs = torch.zeros(3, 4, dtype=D, requires_grad=True)  # constant student logits: uniform, centred rows zero
    value = DISTLoss()(zs, randn(3, 4))
    assert value.item() == pytest.approx(2.0)  # both correlations are 0 by the eps convention
    assert torch.isfinite(grad_of(value, zs)).all()


# ============================================================================ CE


def test_ce_matches_log_softmax():
    z, y = randn(5, 3, grad=True), torch.tensor([0, 2, 1, 1, 0])
    value = CELoss()(z, y)
    zn = z.detach().numpy()
    logp = zn - zn.max(axis=1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
    assert_close(value, -logp[np.arange(5), y.numpy()].mean())
    ref = -(z - torch.logsumexp(z, dim=1, keepdim=True))[torch.arange(5), y].mean()
    assert_close(grad_of(value, z), grad_of(ref, z))
    assert CELoss(reduction="none")(z, y).shape == (5,)
    smooth = CELoss(label_smoothing=0.1)(z, y)
    assert_close(smooth, 0.9 * value + 0.1 * (-logp.mean(axis=1)).mean())
    with pytest.raises(ValueError, match="reduction"):
        CELoss(reduction="batchmean")


# ============================================================================ all of them


def _cases():
    y = torch.tensor([0, 1, 2, 1])
    return {
        "fitnet": (FitNetLoss(3, 5, dims=1), lambda: (randn(4, 3, 6), randn(4, 5, 6))),
        "rkd": (RKDLoss(), lambda: (randn(4, 3, 6), randn(4, 5, 4, 4))),
        "pkt": (PKTLoss(), lambda: (randn(4, 3, 6), randn(4, 5, 4, 4))),
        "dkd": (DKDLoss(warmup=0), lambda: (randn(4, 3), randn(4, 3), y)),
        "dist": (DISTLoss(), lambda: (randn(4, 3), randn(4, 3))),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_finite_and_only_the_student_gets_gradients(name):
    loss, make = _cases()[name]
    loss = loss.double()
    args = list(make())
    args[0].requires_grad_(True)
    args[1].requires_grad_(True)
    value = loss(*args)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert args[0].grad is not None and torch.isfinite(args[0].grad).all()
    assert args[1].grad is None  # the teacher input is detached inside the loss
    # a student equal to its teacher gives zero, for the parameter-free relations
    if name in ("rkd", "pkt", "dist"):
        same = randn(*args[0].shape)
        assert loss(same, same).item() == pytest.approx(0.0, abs=1e-6)
    if name == "dkd":
        assert loss(args[1], args[1], args[2]).item() == pytest.approx(0.0, abs=1e-12)


def test_docstrings_give_formula_defaults_and_reference():
    for cls, repo in ((FitNetLoss, "RepDistiller"), (RKDLoss, "RepDistiller"), (PKTLoss, "RepDistiller"),
                      (DKDLoss, "mdistiller"), (DISTLoss, "image_classification_sota")):
        doc = cls.__doc__
        assert ".. math::" in doc and "default" in doc.lower() and repo in doc, cls.__name__
    assert math.isclose(RKDLoss().distance_weight, 25) and math.isclose(RKDLoss().angle_weight, 50)
    d = DKDLoss()
    assert (d.alpha, d.beta, d.temperature, d.warmup) == (1.0, 8.0, 4.0, 20.0)
    s = DISTLoss()
    assert (s.beta, s.gamma, s.temperature, s.eps) == (1.0, 1.0, 1.0, 1e-8)
    assert PKTLoss().eps == 1e-7
