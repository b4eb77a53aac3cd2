"""The Distiller: every registered loss from a config, cross-modal refusal, PIs of the augmented window."""

import copy
import json
import math

import numpy as np
import pytest
import torch

import topokd
from topokd.distill.config import parse_config
from topokd.distill.distiller import Distiller, Teacher
from topokd.distill.experiment import distill, load_teacher, online_pis, prepare_data, train_teacher
from topokd.distill.losses.registry import list_losses
from topokd.distill.trainer import batches
from topokd.models import create_model

TINY = {"epochs": 1, "batch_size": 16, "progress": False}
EVERY_LOSS = {
    "ce": 0.5,
    "kd": {"weight": 0.5, "temperature": 4, "reduction": "mean", "standardize": True},
    "dkd": 0.1, "dist": 0.1,
    "at": {"weight": 1.0, "teachers": ["signal", "fused"]}, "amd": {"weight": 1.0, "teachers": ["signal"]},
    "fitnet": {"weight": 0.1, "teachers": ["signal"]}, "ft": {"weight": 0.1, "teachers": ["signal"]},
    "sp": {"weight": 1.0, "stages": "all"}, "fused_sp": {"weight": 1.0, "teachers": ["signal", "pi"]},
    "rkd": 0.1, "pkt": 0.1, "ddgsd": 0.1,
    "partial_mixup": {"alpha": 0.4, "fraction": 0.5},
}


def config(tmp_path, **student):
    raw = {
        "output": str(tmp_path / "run"), "seed": 2,
        "data": {"name": "synthetic", "synthetic_windows": 80, "synthetic_length": 40,
                 "pi_params": {"resolution": 10}},
        "teachers": {"signal": {"model": "resnet8", "train": TINY},
                     "pi": {"model": "resnet8", "inputs": "pi", "train": TINY},
                     "fused": {"model": "resnet8", "inputs": "fusion", "pi_model": "resnet8", "train": TINY}},
        "student": {"model": "resnet8", "teachers": ["signal", "pi", "fused"],
                    "losses": {"ce": 1.0}, "train": {**TINY, "augment": "mix1"}, **student},
    }
    return copy.deepcopy(raw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distiller")
    cfg = parse_config(config(tmp))
    splits = prepare_data(cfg)
    for name in cfg.teachers:
        train_teacher(cfg, name, splits)
    return tmp, splits


def test_the_config_reaches_every_registered_loss(trained):
    tmp, splits = trained
    assert set(EVERY_LOSS) | {"mixup"} == set(list_losses())  # a new loss must join this test
    cfg = parse_config(config(tmp, losses=EVERY_LOSS))
    summary = distill(cfg, splits, force=True)
    history = json.loads((cfg.output / "student" / "metrics.json").read_text())
    trained_terms = {k[len("train_"):] for k in history[0] if k.startswith("train_")} - {"loss"}
    assert trained_terms == set(EVERY_LOSS) - {"partial_mixup"}
    assert all(math.isfinite(v) for k, v in history[0].items() if k.startswith("train_"))
    total = sum(history[0][f"train_{k}"] for k in trained_terms)
    assert history[0]["train_loss"] == pytest.approx(total, rel=1e-5)  # the engine sums the named terms
    assert summary["online_pi_seconds"] > 0  # augmented batches: PI teachers got PIs computed on the fly


def test_cross_modal_feature_losses_are_refused_where_the_distiller_is_built(trained):
    tmp, splits = trained
    cfg = parse_config(config(tmp))
    teacher = Teacher("pi", load_teacher(cfg, "pi", "best", splits), "pi")
    student = create_model("resnet8", dims=1, num_classes=len(splits.classes), in_channels=3)
    example = next(batches(splits.train, 4, "cpu", shuffle=False))
    for name in ("at", "amd", "fitnet", "ft"):
        with pytest.raises(ValueError, match="teacher 'pi' sees persistence images.*use a relations loss"):
            Distiller(student, [teacher], {name: 1.0}, example=example)
    for name in ("sp", "rkd", "pkt"):  # batch-level relations cross modalities
        Distiller(student, [teacher], {name: 1.0}, example=example).remove_hooks()


def test_pi_teachers_see_the_pis_of_the_augmented_window(trained):
    tmp, splits = trained
    cfg = parse_config(config(tmp))
    teacher = Teacher("pi", load_teacher(cfg, "pi", "best", splits), "pi")
    seen = []
    teacher.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    student = create_model("resnet8", dims=1, num_classes=len(splits.classes), in_channels=3)
    from topokd.distill.augment import get_augmentation

    batch = next(batches(splits.train, 8, "cpu", shuffle=False))
    clean = batch.signal.clone()
    distiller = Distiller(student, [teacher], {"ce": 0.5, "kd": 0.5}, example=batch,
                          augment=get_augmentation("mix1"), online_pis=online_pis(cfg))
    distiller.forward_train(batch, torch.Generator().manual_seed(0))
    assert not torch.equal(batch.signal, clean)  # augmented
    windows = batch.signal.transpose(1, 2).numpy().astype(np.float64)
    expected = topokd.signal_pis(windows, resolution=10)
    np.testing.assert_array_equal(seen[-1].numpy(), expected)
    # without augmentation the precomputed PIs are used and they are the same numbers
    plain = next(batches(splits.train, 8, "cpu", shuffle=False))
    np.testing.assert_array_equal(online_pis(cfg)(plain.signal).numpy(), plain.pi.numpy())


def test_online_pis_use_no_more_numba_threads_than_torch_and_restore_them():
    import numba

    from topokd.distill.trainer import OnlinePIs

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here: nothing to limit")
    engine = topokd.SignalPersistenceImages("standard-signal", resolution=8)
    during = []

    class Recording:  # the real transformer, recording numba's threads while it runs
        def transform(self, windows):
            during.append(numba.get_num_threads())
            return engine.transform(windows)

    signal = torch.randn(4, 3, 32)
    torch_before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    try:
        torch.set_num_threads(1)
        numba.set_num_threads(2)
        pis = OnlinePIs(Recording())(signal)
        assert during == [1] and numba.get_num_threads() == 2
        torch.set_num_threads(2)
        numba.set_num_threads(1)  # never more than numba's own setting
        OnlinePIs(Recording())(signal)
        assert during == [1, 1] and numba.get_num_threads() == 1
        np.testing.assert_array_equal(pis.numpy(), topokd.signal_pis(signal.transpose(1, 2).numpy().astype(np.float64),
                                                                     "standard-signal", resolution=8))
    finally:
        torch.set_num_threads(torch_before)
        numba.set_num_threads(numba_before)


def test_a_clean_view_teacher_sees_the_unaugmented_window_and_its_precomputed_pis(trained):
    tmp, splits = trained
    cfg = parse_config(config(tmp))
    pi = Teacher("pi", load_teacher(cfg, "pi", "best", splits), "pi", view="clean")
    signal = Teacher("signal", load_teacher(cfg, "signal", "best", splits), "signal")
    seen = {"pi": [], "signal": []}
    for t in (pi, signal):
        t.model.register_forward_pre_hook(lambda m, args, name=t.name: seen[name].append(args[0].clone()))
    student = create_model("resnet8", dims=1, num_classes=len(splits.classes), in_channels=3)
    from topokd.distill.augment import get_augmentation

    batch = next(batches(splits.train, 8, "cpu", shuffle=False))
    clean, clean_pis = batch.signal.clone(), batch.pi.clone()
    calls = []
    distiller = Distiller(student, [pi, signal], {"ce": 0.5, "kd": 0.5}, example=batch,
                          augment=get_augmentation("mix1"), online_pis=lambda x: calls.append(x))
    distiller.forward_train(batch, torch.Generator().manual_seed(0))
    assert not torch.equal(batch.signal, clean)
    torch.testing.assert_close(seen["pi"][-1], clean_pis, rtol=0, atol=0)  # the clean PIs, not recomputed
    np.testing.assert_array_equal(clean_pis.numpy(), topokd.signal_pis(
        clean.transpose(1, 2).numpy().astype(np.float64), resolution=10))
    torch.testing.assert_close(seen["signal"][-1], batch.signal, rtol=0, atol=0)  # view "student": augmented
    assert calls == []  # no teacher needed the PIs of the augmented windows
    with pytest.raises(ValueError, match="view must be one of"):
        Teacher("pi", pi.model, "pi", view="raw")
    with pytest.raises(ValueError, match="teacher 'pi' has view 'clean', but partial_mixup mixes"):
        Distiller(student, [pi], {"ce": 1.0, "partial_mixup": {"alpha": 0.4}}, example=batch)


def test_loss_options_are_checked_at_parse_time(tmp_path):
    from topokd.config import ConfigError

    with pytest.raises(ConfigError, match=r"student.losses.ddgsd compares two distorted views.*set "
                                          r"student.train.augment"):
        parse_config(config(tmp_path, losses={"ddgsd": 1.0}, train=TINY))
    with pytest.raises(ConfigError, match="'mixup' and 'partial_mixup' both transform the batch"):
        parse_config(config(tmp_path, losses={"ce": 1, "mixup": {"alpha": 1}, "partial_mixup": {"alpha": 1}}))
    with pytest.raises(ConfigError, match=r"student.losses.sp.stages must be 'last' or 'all', got 'first'"):
        parse_config(config(tmp_path, losses={"sp": {"stages": "first"}}))
    clean_pi = ["signal", {"name": "pi", "view": "clean"}]
    parse_config(config(tmp_path, teachers=clean_pi, losses={"ce": 0.5, "kd": 0.5}))
    with pytest.raises(ConfigError, match="teacher 'pi' has view 'clean', but mixup mixes"):
        parse_config(config(tmp_path, teachers=clean_pi, losses={"ce": 1, "mixup": {"alpha": 1}}))
    with pytest.raises(ConfigError, match="teacher 'pi' has view 'clean', but train.mixup_alpha mixes"):
        parse_config(config(tmp_path, teachers=clean_pi, train={**TINY, "mixup_alpha": 0.4}))
    with pytest.raises(ConfigError, match=r"view"):
        parse_config(config(tmp_path, teachers=[{"name": "pi", "view": "raw"}]))


def test_ft_pretrains_and_freezes_its_paraphraser(trained):
    tmp, splits = trained
    cfg = parse_config(config(tmp))
    teacher = Teacher("signal", load_teacher(cfg, "signal", "best", splits), "signal")
    student = create_model("resnet8", dims=1, num_classes=len(splits.classes), in_channels=3)
    example = next(batches(splits.train, 4, "cpu", shuffle=False))
    distiller = Distiller(student, [teacher], {"ft": {"weight": 1.0, "paraphraser_epochs": 1}}, example=example)
    ft = distiller.terms[0].module[0]
    loader = lambda g: batches(splits.train, 16, "cpu", shuffle=True, generator=g, min_batch=2)  # noqa: E731
    first = distiller.pretrain_paraphrasers(loader)["signal"]
    distiller.terms[0].options["paraphraser_epochs"] = 3
    for p in ft.paraphraser.parameters():
        p.requires_grad_(True)
    later = distiller.pretrain_paraphrasers(loader)["signal"]
    assert later < first  # the autoencoder learns the teacher's features
    assert not any(p.requires_grad for p in ft.paraphraser.parameters())
    assert all(p.requires_grad for p in ft.translator.parameters())  # the translator trains with the student
    trained_params = {id(p) for p in distiller.parameters_to_train()}
    assert all(id(p) in trained_params for p in ft.translator.parameters())
    distiller.remove_hooks()
