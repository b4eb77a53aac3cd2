"""The torch transform agrees with the numba engine and is differentiable."""

import numpy as np
import pytest
import torch

import topokd
from topokd.tda.images import stack_diagrams

CONFIGS = [
    dict(),
    dict(resolution=(12, 7), birth_range=(-1.0, 2.0), pers_range=(0.0, 1.5), sigma=(0.1, 0.2), normalize="max"),
    dict(layout="legacy", resolution=(30, 20), birth_range=(-1.0, 1.0), pers_range=None, sigma=0.05),
    dict(weight=lambda b, p: p ** 2 + 0.0 * b, resolution=10, sigma=0.1),
]


def _diagrams(rng):
    out = []
    for k in (6, 0, 19, 1):
        b = rng.uniform(-0.3, 1.0, k)
        out.append(np.c_[b, b + rng.uniform(0.0, 1.0, k)])
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_torch_matches_numba_engine(config, rng):
    imager = topokd.PersistenceImage(**config)
    diagrams = _diagrams(rng)
    expected = imager.transform(diagrams)
    pairs, counts = stack_diagrams(diagrams)
    got = imager.to_torch()(torch.tensor(pairs), torch.tensor(counts))
    assert got.dtype == torch.float64 and tuple(got.shape) == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    single = imager.to_torch()(torch.tensor(diagrams[0]))
    np.testing.assert_allclose(single.numpy(), expected[0], rtol=0, atol=1e-12)


def test_gradients_flow_to_points_only_where_real(rng):
    imager = topokd.PersistenceImage(resolution=8, sigma=0.15)
    module = imager.to_torch()
    pairs, counts = stack_diagrams(_diagrams(rng))
    points = torch.tensor(pairs, requires_grad=True)
    module(points, torch.tensor(counts)).square().sum().backward()
    grad = points.grad.numpy()
    assert np.isfinite(grad).all()
    for s, c in enumerate(counts):
        assert np.all(grad[s, c:] == 0)  # padding gets no gradient
        if c:
            assert np.abs(grad[s, :c]).sum() > 0


def test_gradcheck_against_finite_differences():
    imager = topokd.PersistenceImage(resolution=5, sigma=0.2, normalize="max")
    module = imager.to_torch()
    points = torch.tensor([[[0.1, 0.5], [0.3, 0.9], [0.6, 0.7]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: module(x), (points,), eps=1e-6, atol=1e-7)


def test_moving_a_point_moves_the_mass():
    """Optimising the diagram through the PI works: pull a point toward a target image."""
    imager = topokd.PersistenceImage(resolution=10, sigma=0.1)
    module = imager.to_torch()
    target = module(torch.tensor([[0.7, 1.2]], dtype=torch.float64)).detach()
    point = torch.tensor([[0.55, 1.0]], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([point], lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        loss = (module(point) - target).square().sum()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(point.detach().numpy(), [[0.7, 1.2]], atol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(rng):
    imager = topokd.PersistenceImage(resolution=20, sigma=0.05)
    pairs, counts = stack_diagrams(_diagrams(rng))
    cpu = imager.to_torch()(torch.tensor(pairs), torch.tensor(counts))
    gpu = imager.to_torch(device="cuda")(torch.tensor(pairs, device="cuda"), torch.tensor(counts, device="cuda"))
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-12)


def test_module_is_a_snapshot_of_the_current_parameters(rng):
    imager = topokd.PersistenceImage(resolution=6, sigma=0.1)
    old = imager.to_torch()
    imager.set_params(sigma=0.3, resolution=(7, 4), normalize="max")  # after construction
    diagrams = _diagrams(rng)
    pairs, counts = stack_diagrams(diagrams)
    new = imager.to_torch()(torch.tensor(pairs), torch.tensor(counts))
    np.testing.assert_allclose(new.numpy(), imager.transform(diagrams), rtol=0, atol=1e-12)
    kept = old(torch.tensor(pairs), torch.tensor(counts))  # built before the change: unchanged
    np.testing.assert_allclose(kept.numpy(), topokd.PersistenceImage(resolution=6, sigma=0.1).transform(diagrams),
                               rtol=0, atol=1e-12)
    # Built from the public spec alone (no private fields of PersistenceImage).
    from topokd.tda.torch_images import TorchPersistenceImage

    same = TorchPersistenceImage(imager.spec())(torch.tensor(pairs), torch.tensor(counts))
    np.testing.assert_array_equal(same.numpy(), new.numpy())


def test_numpy_engine_does_not_import_torch():
    import ast
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, topokd; topokd.PersistenceImage().transform([[[0.0, 0.5]]]); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    # No import circle: images.py imports torch_images only inside to_torch().
    tree = ast.parse(Path(topokd.tda.images.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("torch" in (getattr(n, "module", None) or "") or any("torch" in a.name for a in n.names)
                   for n in top)
