"""The Distiller: a student, its frozen teachers and named, weighted losses.

After mdistiller's ``Distiller`` (one object that returns the losses of a
batch as a dict; the training engine sums them) with torchdistill's
registered losses: every loss of a config is built by name from
:mod:`topokd.distill.losses.registry` and fed according to what it
consumes (its ``inputs`` kind):

``labels`` (``ce``)
    ``loss(student_logits, labels)``; with mixup, ``lam * loss(z, y_a) +
    (1 - lam) * loss(z, y_b)`` per sample.
``logits`` / ``logits+labels`` (``kd``, ``dist``, ``dkd``)
    against every teacher the loss uses, weighted by the teachers' weights:
    ``sum_t w_t loss(z_s, z_t[, y])`` (multi-teacher KD, Jeon et al.).
``features`` (``at``, ``amd``, ``fitnet``, ``ft``)
    per-stage maps of the *same modality*: the student's three stages
    against a signal teacher's, or a fusion teacher's signal branch.  A PI
    teacher's 2-D maps have no correspondence with the time axis of a 1-D
    student, so such a pair is refused (with what to use instead).
``relations`` (``sp``, ``fused_sp``, ``rkd``, ``pkt``)
    batch-level relations, any modality: against a signal teacher's stages,
    a PI teacher's, or a fusion teacher's PI branch (its topological part).
    ``stages: last`` (default; ``fused_sp``: ``all``, as TGD) or ``all``.
    ``fused_sp`` fuses all its teachers' similarity maps into one target.
``views`` (``ddgsd``)
    two differently augmented views of the same batch through the student;
    needs ``train.augment``.
``batch`` (``mixup``, ``partial_mixup``)
    a transform of the batch before the forward passes (at most one).

Options of a loss in the config besides its own parameters: ``weight``
(default 1) and ``teachers`` (the names of the student's teachers it uses;
default all of them).  By default (``view="student"``) teachers see exactly
the batch the student sees: after augmentation and mixup, a PI or fusion
teacher gets the PIs of the transformed windows computed by the exact engine
(:class:`OnlinePIs`); the precomputed PIs are used only when nothing
transforms the batch.  A teacher with ``view="clean"`` sees the
un-augmented windows and their precomputed PIs instead, as the PI teachers
of Jeon et al.'s TPKD code (PIs computed once from the original windows)
did: the right choice for a teacher trained on clean inputs when the
augmentation changes the topology (Mix1's zeroed segment adds a deep
minimum to every window, and a PI teacher trained on clean PIs classifies
such PIs barely above chance).  It cannot be combined with mixup (the clean
window is then not the one the student learns from).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..models import FeatureExtractor
from .losses.registry import create_loss, list_losses, loss_entry
from .trainer import Batch, model_input

#: What a teacher sees: the student's (augmented) batch, or the clean windows.
VIEWS = ("student", "clean")


def clean_view_refusal(teacher: str, mixing: str) -> str:
    """Why teacher ``teacher`` with ``view: clean`` cannot go with ``mixing`` (a mixup)."""
    return (f"teacher {teacher!r} has view 'clean', but {mixing} mixes the student's windows, so the clean window "
            "is not the one the student learns from; use view 'student' with mixup")

#: Distiller-level options of a loss entry (not passed to the loss).
LOSS_OPTIONS = ("weight", "teachers", "stages", "paraphraser_epochs")


@dataclass
class Teacher:
    """A frozen teacher: ``model`` takes ``inputs`` ("signal", "pi" or
    "fusion"); ``weight`` scales its terms in multi-teacher losses."""

    name: str
    model: nn.Module
    inputs: str = "signal"
    weight: float = 1.0
    # "student": the batch the student sees (augmented, with the PIs of the
    # augmented windows); "clean": the un-augmented windows and their
    # precomputed PIs.
    view: str = "student"

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"teacher {self.name!r}: view must be one of {list(VIEWS)}, got {self.view!r}")

    def layers(self, kind: str) -> list[str]:
        """The stages a ``kind`` loss compares: same-modality (1-D) stages
        for ``features``, the topological (PI) stages for ``relations``."""
        layers = list(getattr(self.model, "feature_layers", ()))
        if self.inputs == "fusion":
            branch = "signal_backbone." if kind == "features" else "pi_backbone."
            return [n for n in layers if n.startswith(branch)]
        return [] if (kind == "features" and self.inputs == "pi") else layers

    @property
    def feature_dims(self) -> int:
        return 2 if self.inputs == "pi" else 1


@dataclass
class LossTerm:
    """One configured loss: registry ``name``, ``weight``, the built
    ``module`` (a ModuleList with one loss per teacher for losses that own
    shape-dependent parameters), its input ``kind``, the ``teachers`` it
    uses and its ``stages``."""

    name: str
    weight: float
    kind: str
    module: nn.Module | Callable
    teachers: list[int] = field(default_factory=list)
    stages: str = "last"
    options: dict = field(default_factory=dict)
    # Sized losses (FitNet, FT) take one pair of tensors, not lists of stages.
    single_pair: bool = False


def parse_loss_spec(name: str, spec) -> tuple[float, dict, dict]:
    """``weight`` or ``{weight, teachers, stages, **params}`` -> (weight, options, params)."""
    if isinstance(spec, Mapping):
        params = dict(spec)
        weight = float(params.pop("weight", 1.0))
        options = {k: params.pop(k) for k in LOSS_OPTIONS[1:] if k in params}
        return weight, options, params
    return float(spec), {}, {}


class Distiller(nn.Module):
    """A student, its frozen teachers and named, weighted losses (see the module docstring).

    ``losses``: ``{name: weight | {weight, teachers, stages, **params}}``
    as in a config's ``student.losses``.  ``example``: one :class:`Batch`
    (shapes only) to size the losses that own parameters (FitNet
    regressors, FT translators).  ``augment``: the training augmentation
    (applied here, so views and teachers see the augmented windows);
    ``online_pis``: computes PIs of transformed windows for PI / fusion
    teachers.

    ``forward_train(batch, generator) -> {name: weighted loss}``.  The
    student is ``self.student``; ``self.loss_modules`` holds the losses'
    own trainable parts (train them with the student: :meth:`parameters_to_train`).
    """

    def __init__(self, student: nn.Module, teachers: Sequence[Teacher], losses: Mapping, *, example: Batch,
                 augment=None, online_pis=None):
        super().__init__()
        self.student = student
        self.teachers = list(teachers)
        self.augment, self.online_pis = augment, online_pis
        self.transform = None
        self.terms: list[LossTerm] = []
        self.loss_modules = nn.ModuleDict()
        names = [t.name for t in self.teachers]
        raw_terms = []
        for name, spec in losses.items():
            entry = loss_entry(name)
            weight, options, params = parse_loss_spec(name, spec)
            if weight == 0:
                continue
            if entry.inputs == "batch":
                if self.transform is not None:
                    raise ValueError(f"student.losses: {name!r} and {self.transform[0]!r} both transform the batch; "
                                     "keep one mixup")
                self.transform = (name, create_loss(name, **params))
                continue
            used = options.get("teachers", names if entry.inputs not in ("labels", "views") else [])
            unknown = [t for t in used if t not in names]
            if unknown:
                raise ValueError(f"student.losses.{name}.teachers names {unknown[0]!r}, which is not one of the "
                                 f"student's teachers ({', '.join(names) or 'none'})")
            if entry.inputs not in ("labels", "views") and not used:
                raise ValueError(f"student.losses.{name} needs a teacher: add one under student.teachers")
            index = [names.index(t) for t in used]
            if entry.inputs == "features":
                for i in index:
                    if not self.teachers[i].layers("features"):
                        raise ValueError(
                            f"student.losses.{name}: teacher {names[i]!r} sees persistence images, whose 2-D maps "
                            f"have no correspondence with the student's time axis, so {name} cannot transfer them; "
                            f"use a relations loss ({', '.join(list_losses('relations'))}) for it, or list only "
                            f"same-modality teachers in student.losses.{name}.teachers")
            stages = options.get("stages", "all" if name == "fused_sp" else "last")
            if stages not in ("last", "all"):
                raise ValueError(f"student.losses.{name}.stages must be 'last' or 'all', got {stages!r}")
            if entry.inputs == "views" and augment is None:
                raise ValueError(f"student.losses.{name} compares two distorted views of each window: set "
                                 "student.train.augment (e.g. mix1)")
            raw_terms.append((name, weight, entry.inputs, params, index, stages, options))
        clean = [t.name for t in self.teachers if t.view == "clean"]
        if clean and self.transform is not None:
            raise ValueError(clean_view_refusal(clean[0], self.transform[0]))
        s_layers = [n for n in getattr(student, "feature_layers", ()) if not n.startswith("pi_backbone.")]
        self.student_layers = s_layers
        needs_features = any(term[2] in ("features", "relations", "views") for term in raw_terms)
        self._s_fx = FeatureExtractor(student, s_layers) if needs_features else None
        self._t_fx = []
        for t in self.teachers:
            layers = sorted({n for _, _, kind, _, index, *_ in raw_terms for n in t.layers(kind)
                             if kind in ("features", "relations") and self.teachers.index(t) in index},
                            key=list(getattr(t.model, "feature_layers", ())).index)
            self._t_fx.append(FeatureExtractor(t.model, layers, detach=True) if layers else None)
        shapes = self._probe(example) if any(self._sized(n) for n, *_ in raw_terms) else None
        for name, weight, kind, params, index, stages, options in raw_terms:
            module = self._build(name, kind, params, index, shapes)
            self.terms.append(LossTerm(name, weight, kind, module, index, stages, options, self._sized(name)))
            if isinstance(module, nn.Module) and any(True for _ in module.parameters()):
                self.loss_modules[name] = module

    # -- construction helpers ---------------------------------------------------
    @staticmethod
    def _sized(name: str) -> bool:
        params = loss_entry(name).parameters
        return "student_channels" in params and "teacher_channels" in params

    @torch.no_grad()
    def _probe(self, batch: Batch) -> dict:
        """Feature shapes of the student and every teacher on a 2-sample batch."""
        was = self.student.training
        self.student.eval()
        small = Batch(batch.signal[:2], None if batch.pi is None else batch.pi[:2], batch.y[:2])
        self.student(small.signal)
        shapes = {"student": {n: tuple(self._s_fx.features[n].shape) for n in self.student_layers}}
        for i, (t, fx) in enumerate(zip(self.teachers, self._t_fx)):
            if fx is not None:
                model_input(t.model, t.inputs, small)
                shapes[i] = {n: tuple(fx.features[n].shape) for n in fx.layers}
        self.student.train(was)
        return shapes

    def _build(self, name, kind, params, index, shapes):
        if not self._sized(name):
            if name == "fused_sp" and "weights" not in params:
                params = {**params, "weights": [self.teachers[i].weight for i in index]}
            return create_loss(name, **params)
        # One loss per teacher, sized by the last stage pair (the one these losses use by default).
        s_shape = shapes["student"][self.student_layers[-1]]
        per_teacher = []
        for i in index:
            t_shape = shapes[i][self.teachers[i].layers("features")[-1]]
            sized = {"student_channels": s_shape[1], "teacher_channels": t_shape[1]}
            if "dims" in loss_entry(name).parameters:
                sized["dims"] = len(s_shape) - 2
            per_teacher.append(create_loss(name, **sized, **params))
        return nn.ModuleList(per_teacher)

    @property
    def min_batch(self) -> int:
        """The smallest training batch every loss accepts (2 at least: BatchNorm)."""
        sizes = [2]
        for term in self.terms:
            for module in (term.module if isinstance(term.module, nn.ModuleList) else [term.module]):
                sizes.append(int(getattr(module, "min_batch", 1)))
        return max(sizes)

    def pretrain_paraphrasers(self, train_batches: Callable, *, seed: int = 0) -> dict:
        """FT (Kim et al. 2018) trains each teacher's paraphraser first, as an
        autoencoder of the teacher's last-stage features (the authors' L1
        reconstruction loss), then freezes it.  ``train_batches(generator)``
        yields training :class:`Batch` es; ``paraphraser_epochs`` (a loss
        option, default 5) epochs of Adam (lr 1e-3: our choice; the authors
        tuned theirs per data set).  Returns the last epoch's mean
        reconstruction loss per teacher."""
        report = {}
        for term in self.terms:
            if term.name != "ft":
                continue
            for j, i in enumerate(term.teachers):
                ft, teacher, fx = term.module[j], self.teachers[i], self._t_fx[i]
                layer = teacher.layers("features")[-1]
                params = list(ft.paraphraser.parameters())
                opt = torch.optim.Adam(params, lr=1e-3)
                gen = torch.Generator().manual_seed(seed)
                ft.paraphraser.train()
                for _ in range(int(term.options.get("paraphraser_epochs", 5))):
                    total, seen = 0.0, 0
                    for batch in train_batches(gen):
                        with torch.no_grad():
                            model_input(teacher.model, teacher.inputs, batch)
                        loss = ft.reconstruction_loss(fx.features[layer].float())
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        total, seen = total + loss.item() * len(batch), seen + len(batch)
                    report[teacher.name] = total / max(seen, 1)
                for p in params:
                    p.requires_grad_(False)
                ft.paraphraser.eval()
        return report

    def parameters_to_train(self):
        """The student's trainable parameters and those of the losses (regressors, translators)."""
        yield from (p for p in self.student.parameters() if p.requires_grad)
        yield from (p for p in self.loss_modules.parameters() if p.requires_grad)

    def set_epoch(self, epoch: int) -> None:
        """Forward the 1-based epoch to losses that schedule by it (DKD's warm-up)."""
        for term in self.terms:
            for module in (term.module if isinstance(term.module, nn.ModuleList) else [term.module]):
                if hasattr(module, "set_epoch"):
                    module.set_epoch(epoch)

    def remove_hooks(self) -> None:
        for fx in [self._s_fx, *self._t_fx]:
            if fx is not None:
                fx.remove()

    # -- one batch ----------------------------------------------------------------
    def forward_train(self, batch: Batch, generator: torch.Generator | None = None) -> dict:
        clean = batch.signal
        transformed = False
        if self.augment is not None:
            batch.signal = self.augment(clean, generator=generator)
            transformed = True
        lam = y_a = y_b = None
        if self.transform is not None:
            batch.signal, y_a, y_b, lam = self.transform[1](batch.signal, batch.y, generator=generator)
            transformed = True
        clean_batch = Batch(clean, batch.pi, batch.y)
        if transformed and self.online_pis is not None and any(t.inputs != "signal" and t.view == "student"
                                                                for t in self.teachers):
            batch.pi = self.online_pis(batch.signal)
        logits = self.student(batch.signal).float()
        s_feats = [self._s_fx.features[n] for n in self.student_layers] if self._s_fx is not None else []
        t_logits, t_feats = [], []
        with torch.no_grad():
            for t, fx in zip(self.teachers, self._t_fx):
                t_logits.append(model_input(t.model, t.inputs, clean_batch if t.view == "clean" else batch).float())
                t_feats.append({n: fx.features[n] for n in fx.layers} if fx is not None else {})
        terms = {}
        for term in self.terms:
            value = self._term(term, batch, logits, s_feats, t_logits, t_feats, lam, y_a, y_b, clean, generator)
            terms[term.name] = term.weight * value
        return terms

    def _stages(self, feats: list, stages: str) -> list:
        return list(feats) if stages == "all" else list(feats[-1:])

    def _term(self, term, batch, logits, s_feats, t_logits, t_feats, lam, y_a, y_b, clean, generator):
        kind, module = term.kind, term.module
        if kind == "labels":
            if lam is None:
                return module(logits, batch.y)
            lam = torch.as_tensor(lam, dtype=logits.dtype, device=logits.device)
            per_a = F.cross_entropy(logits, y_a, reduction="none")
            per_b = F.cross_entropy(logits, y_b, reduction="none")
            return (lam * per_a + (1 - lam) * per_b).mean()
        if kind == "views":
            second = self.augment(clean, generator=generator)
            logits2 = self.student(second).float()
            # the views' features: the last stage, global-average-pooled to (B, C)
            f1 = s_feats[-1].float().flatten(2).mean(-1)
            f2 = self._s_fx.features[self.student_layers[-1]].float().flatten(2).mean(-1)
            return module(logits, logits2, f1, f2, batch.y)
        total = torch.zeros((), device=logits.device)
        if term.name == "fused_sp":
            s = self._stages(s_feats, term.stages)
            ts = [self._stages([t_feats[i][n] for n in self.teachers[i].layers("relations")], term.stages)
                  for i in term.teachers]
            if term.stages == "last":
                return module(s[0].float(), [t[0].float() for t in ts])
            return module([f.float() for f in s], [[f.float() for f in t] for t in ts])
        for j, i in enumerate(term.teachers):
            w = self.teachers[i].weight
            if kind == "logits":
                value = module(logits, t_logits[i])
            elif kind == "logits+labels":
                value = module(logits, t_logits[i], batch.y)
            else:
                layers = self.teachers[i].layers(kind)
                mine = module[j] if isinstance(module, nn.ModuleList) else module
                s = self._stages(s_feats, term.stages)
                t = self._stages([t_feats[i][n] for n in layers], term.stages)
                if term.single_pair:
                    value = mine(s[-1].float(), t[-1].float())
                else:
                    value = mine([f.float() for f in s], [f.float() for f in t])
            total = total + w * value
        return total

