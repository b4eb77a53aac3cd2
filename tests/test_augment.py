"""Time-series augmentation: exact behaviour on small hand-made batches."""

import pytest
import torch

from topokd.distill.augment import (
    AUGMENTATIONS,
    Compose,
    GaussianNoise,
    Identity,
    Mix1,
    Mix2,
    Removal,
    Shift,
    get_augmentation,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ramp(batch=16, channels=2, length=20):
    """Distinct, non-zero values: x[b, c, t] = 1000 b + 100 c + t + 1."""
    b, c, t = torch.meshgrid(torch.arange(batch), torch.arange(channels), torch.arange(length), indexing="ij")
    return (1000 * b + 100 * c + t + 1).float()


def test_removal_zero_segment_is_the_sampled_one():
    x = ramp()
    removal = Removal(max_fraction=0.3)
    params = removal.sample(x, gen(1))
    out = removal(x, gen(1))
    torch.testing.assert_close(out, removal.apply(x, params), rtol=0, atol=0)
    for b in range(len(x)):
        start, length = int(params["start"][b]), int(params["length"][b])
        assert 1 <= length <= 6 and 0 <= start <= 20 - length  # floor(0.3 * 20) = 6
        for c in range(2):
            zero = (out[b, c] == 0).nonzero().flatten().tolist()
            assert zero == list(range(start, start + length))  # one contiguous run, the reported one
            kept = torch.ones(20, dtype=torch.bool)
            kept[start:start + length] = False
            assert torch.equal(out[b, c, kept], x[b, c, kept])
    # every sample draws its own segment
    assert len({(int(s), int(n)) for s, n in zip(params["start"], params["length"])}) > 3


def test_removal_drop_closes_the_gap_and_repeats_the_last_kept_value():
    x = torch.tensor([[[1.0, 2, 3, 4, 5, 6]]])
    drop = Removal(max_fraction=0.5, action="drop")
    cases = {(1, 2): [1, 4, 5, 6, 6, 6], (0, 3): [4, 5, 6, 6, 6, 6], (3, 3): [1, 2, 3, 3, 3, 3],
             (4, 2): [1, 2, 3, 4, 4, 4]}
    for (start, length), want in cases.items():
        params = {"start": torch.tensor([start]), "length": torch.tensor([length])}
        assert drop.apply(x, params).flatten().tolist() == want
    # random draws: compare with a list-based reference per sample and channel
    x = ramp(batch=12, length=9)
    drop = Removal(max_fraction=1.0, action="drop")
    params = drop.sample(x, gen(3))
    out = drop(x, gen(3))
    assert int(params["length"].max()) <= 8  # at least one sample is kept
    for b in range(len(x)):
        s, n = int(params["start"][b]), int(params["length"][b])
        for c in range(2):
            row = x[b, c].tolist()
            kept = row[:s] + row[s + n:]
            assert out[b, c].tolist() == kept + [kept[-1]] * n


def test_shift_circular_is_torch_roll_and_pad_repeats_the_edge():
    x = ramp(length=15)
    shift = Shift(max_shift=0.2)
    params = shift.sample(x, gen(2))
    out = shift(x, gen(2))
    amounts = params["shift"].tolist()
    assert all(-3 <= k <= 3 for k in amounts) and min(amounts) < 0 < max(amounts)
    for b, k in enumerate(amounts):
        assert torch.equal(out[b], torch.roll(x[b], k, dims=-1))
    pad = Shift(max_shift=0.5, boundary="pad")
    row = torch.tensor([[[1.0, 2, 3, 4, 5]]])
    assert pad.apply(row, {"shift": torch.tensor([2])}).flatten().tolist() == [1, 1, 1, 2, 3]
    assert pad.apply(row, {"shift": torch.tensor([-2])}).flatten().tolist() == [3, 4, 5, 5, 5]
    assert pad.apply(row, {"shift": torch.tensor([0])}).flatten().tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("relative", [True, False])
def test_noise_has_the_requested_std(relative):
    scale = torch.tensor([1.0, 10.0])[None, :, None]
    x = torch.randn(32, 2, 4000, generator=gen(5)) * scale + 3.0
    noisy = GaussianNoise(std=0.05, relative=relative)(x, gen(6))
    noise = noisy - x
    per_channel = noise.std(dim=(0, 2))
    want = 0.05 * x.std(dim=-1, unbiased=False).mean(0) if relative else torch.full((2,), 0.05)
    torch.testing.assert_close(per_channel, want, rtol=0.02, atol=0)
    assert abs(float(noise.mean())) < 0.01 * float(want.max())
    # constant channels get no relative noise
    flat = torch.full((2, 1, 50), 7.0)
    assert torch.equal(GaussianNoise(relative=True)(flat, gen()), flat)


def test_compose_applies_in_order_and_shares_the_generator():
    x = torch.ones(1, 1, 4)
    add_one = lambda t, generator=None: t + 1  # noqa: E731
    double = lambda t, generator=None: t * 2  # noqa: E731
    assert Compose([add_one, double])(x).flatten().tolist() == [4.0] * 4
    assert Compose([double, add_one])(x).flatten().tolist() == [3.0] * 4
    x = ramp()
    removal, shift = Removal(0.3), Shift(0.2)
    g = gen(7)
    sequential = shift(removal(x, g), g)
    torch.testing.assert_close(Compose([removal, shift])(x, gen(7)), sequential, rtol=0, atol=0)
    torch.testing.assert_close(Compose([removal, shift]).apply(x, Compose([removal, shift]).sample(x, gen(7))),
                               sequential, rtol=0, atol=0)
    assert not torch.equal(Compose([shift, removal])(x, gen(7)), sequential)


def test_presets_and_lookup():
    assert [type(t) for t in Mix1().transforms] == [Removal, Shift]
    assert [type(t) for t in Mix2().transforms] == [Removal, GaussianNoise, Shift]
    assert isinstance(get_augmentation(None), Identity) and isinstance(get_augmentation("none"), Identity)
    for name, cls in [("removal", Removal), ("noise", GaussianNoise), ("shift", Shift), ("mix1", Mix1),
                      ("MIX2", Mix2)]:
        assert type(get_augmentation(name)) is cls
    assert get_augmentation("shift", boundary="pad").boundary == "pad"
    with pytest.warns(DeprecationWarning, match=r"renamed Shift\(boundary=...\)"):
        assert Shift(mode="pad").boundary == "pad"
    assert sorted(AUGMENTATIONS) == ["channel-permutation", "mix1", "mix2", "noise", "none", "removal", "scale",
                                     "shift", "surrogate", "warp", "window-mix"]
    with pytest.raises(ValueError, match="unknown augmentation 'jitter'"):
        get_augmentation("jitter")


@pytest.mark.parametrize("name", ["removal", "noise", "shift", "mix1", "mix2", None])
def test_reproducible_not_in_place_same_shape_dtype(name):
    augment = get_augmentation(name)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(8, 3, 37, generator=gen(9), dtype=dtype)
        before = x.clone()
        a, b = augment(x, generator=gen(11)), augment(x, generator=gen(11))
        assert torch.equal(a, b)
        assert torch.equal(x, before) and a.data_ptr() != x.data_ptr()
        assert a.shape == x.shape and a.dtype == dtype and a.device == x.device
        if name is not None:
            assert not torch.equal(a, augment(x, generator=gen(12)))
    torch.manual_seed(4)
    first = augment(x)
    torch.manual_seed(4)
    assert torch.equal(first, augment(x))  # without a generator: torch's global RNG


def test_short_windows_and_integer_batches():
    one = torch.tensor([[[5.0]], [[6.0]]])  # T = 1: nothing to remove or shift
    for augment in (Removal(), Removal(1.0, action="drop"), Shift(1.0), Shift(1.0, boundary="pad")):
        assert torch.equal(augment(one, gen()), one)
    ints = torch.arange(40).reshape(2, 2, 10)
    assert Removal(0.5)(ints, gen()).dtype == torch.int64
    assert Shift(0.5)(ints, gen()).dtype == torch.int64
    with pytest.raises(TypeError, match="floating-point"):
        GaussianNoise()(ints, gen())


def test_bad_inputs_and_parameters():
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        Removal()(torch.zeros(3, 10))
    with pytest.raises(TypeError, match="torch tensor"):
        Shift()([[[1.0]]])
    with pytest.raises(ValueError, match="max_fraction"):
        Removal(0.0)
    with pytest.raises(ValueError, match="max_shift"):
        Shift(1.5)
    with pytest.raises(ValueError, match=r"action must be one of \['zero', 'drop'\], got 'cut'"):
        Removal(action="cut")
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(std=-1)
    with pytest.raises(TypeError, match="callables"):
        Compose([Removal(), 3])
