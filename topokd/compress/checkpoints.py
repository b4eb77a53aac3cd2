"""Models in and out of files for compression.

Inputs are float topokd checkpoints (``best.safetensors`` of a training
run, written by :func:`topokd.distill.trainer.fit`, whose metadata holds
``{"model": {"model": name, "inputs": "signal", "num_classes",
"in_channels", "pinet", "pi_model"}}``) and the outputs of ``topokd
compress``:

* ``model.safetensors`` -- float results (pruned / fine-tuned): a topokd
  checkpoint whose metadata keeps the source model description and the
  compression history (with the layer shapes after structured pruning), so
  :func:`load_student` resizes the layers before loading the weights;
* ``model.pt2`` -- int8 results: a ``torch.export`` archive (the int8 graph
  with its activation scales is part of the model, see
  :mod:`topokd.compress.quantize`).

:func:`load_compressed` reads either; :func:`save_compressed` writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from ._common import add_history, history, is_quantized

__all__ = ["load", "load_compressed", "load_student", "save_compressed"]

#: What ``topokd compress`` writes into its output directory (one of them).
MODEL_FILES = ("model.pt2", "model.safetensors")


def model_from_description(desc, path) -> nn.Module:
    """An untrained model built from a checkpoint's ``"model"`` description."""
    from ..checkpoint import CheckpointError

    if not isinstance(desc, dict) or "model" not in desc:
        raise CheckpointError(f"{path} has no model description ({{'model': {{'model': name, ...}}}}) in its "
                              "metadata; it was not written by topokd's training loop")
    if desc.get("inputs", "signal") != "signal":
        raise ValueError(f"{path} holds a {desc.get('inputs')!r}-input model; topokd compress handles raw-signal "
                         "models (students and signal teachers)")
    from ..models import build_model

    return build_model(dict(desc))


def _reshape_to(model: nn.Module, tensors: dict) -> None:
    """Resize Conv/Linear/BatchNorm modules to the shapes stored in ``tensors``
    (structurally pruned checkpoints)."""
    import torch

    from .prune import _sync_attributes

    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        w = tensors.get(prefix + "weight")
        if w is None:
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            if tuple(module.weight.shape) == tuple(w.shape):
                continue
            module.out_channels, module.in_channels = int(w.shape[0]), int(w.shape[1]) * module.groups
            module.weight = nn.Parameter(torch.empty_like(w))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(w.shape[0]))
        elif isinstance(module, nn.Linear):
            if tuple(module.weight.shape) == tuple(w.shape):
                continue
            module.out_features, module.in_features = int(w.shape[0]), int(w.shape[1])
            module.weight = nn.Parameter(torch.empty_like(w))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(w.shape[0]))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = int(w.shape[0])
            if n == module.num_features:
                continue
            module.num_features = n
            module.weight = nn.Parameter(torch.empty(n))
            module.bias = nn.Parameter(torch.empty(n))
            module.running_mean = torch.zeros(n)
            module.running_var = torch.ones(n)
    _sync_attributes(model)


def load_student(path) -> tuple[nn.Module, dict]:
    """``(model, metadata)`` of a float topokd checkpoint: a training run's
    ``best.safetensors`` or a ``model.safetensors`` written by ``topokd
    compress`` (structurally pruned layers are resized to the stored shapes,
    and the compression history is restored, so pruning it again is refused)."""
    from ..checkpoint import load_checkpoint

    tensors, meta = load_checkpoint(path)
    model = model_from_description(meta.get("model"), path)
    _reshape_to(model, tensors)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit {meta['model']['model']} ({str(err).splitlines()[0]})") \
            from None
    for record in meta.get("compression", []) or []:
        add_history(model, record)
    return model.eval(), meta


def load_compressed(path):
    """A model written by ``topokd compress``: ``model.safetensors`` (float
    ``nn.Module``) or ``model.pt2`` (int8
    :class:`~topokd.compress.quantize.QuantizedModel`)."""
    path = Path(path)
    if path.suffix == ".pt2":
        from .quantize import load_quantized

        return load_quantized(path)
    return load_student(path)[0]


def load(path) -> nn.Module:
    """Load what ``topokd compress`` wrote, ready for inference: the one
    documented loader for compressed students.

    ``path`` is the ``model.pt2`` / ``model.safetensors`` file or the
    output directory holding one of them.  Returns a callable
    ``nn.Module`` in eval mode that takes raw-signal batches ``(B, C, T)``
    (float32, the layout the student was trained on) and returns logits
    ``(B, num_classes)``:

    * ``model.pt2`` (a ``quantize`` step: int8) -- a
      :class:`~topokd.compress.quantize.QuantizedModel`: the int8
      ``torch.export`` program, lowered for x86/oneDNN when possible
      (inference only, no gradients; ``.metadata`` holds the stored
      description).  torchao is imported first: it registers the
      ``quantized_decomposed`` operators the graph uses, without which a
      plain ``torch.export.load`` fails with a ``SerializeError``; so this
      needs ``pip install 'topokd[compress]'``.
    * ``model.safetensors`` (pruning / fine-tuning only: float) -- the
      student rebuilt from the model registry (structurally pruned layers
      resized to the stored shapes), weights loaded, in eval mode.

    Example::

        import torch
        from topokd.compress import load

        model = load("runs/x/compressed")          # or .../model.pt2
        with torch.no_grad():
            logits = model(torch.randn(8, 3, 128))  # (8, num_classes)

    Raises :class:`~topokd.checkpoint.CheckpointError` /
    :class:`~topokd.compress.CompressionError` (both ``ValueError``) for a
    missing, corrupt or foreign file.
    """
    from ..checkpoint import CheckpointError

    path = Path(path)
    if path.is_dir():
        found = [path / name for name in MODEL_FILES if (path / name).is_file()]
        if not found:
            raise CheckpointError(f"{path} holds no compressed model ({' or '.join(MODEL_FILES)}); "
                                  "is it a topokd compress output directory?")
        path = found[0]
    if not path.is_file():
        raise CheckpointError(f"compressed model {path} does not exist")
    if path.suffix not in (".pt2", ".safetensors"):
        raise CheckpointError(f"{path}: expected a model.pt2 or model.safetensors written by topokd compress")
    return load_compressed(path).eval()


def _jsonable(records):
    return json.loads(json.dumps(records, default=str))


def save_compressed(model: nn.Module, out_dir, source_meta: dict, source) -> Path:
    """Write ``model`` into ``out_dir`` as ``model.pt2`` (int8) or
    ``model.safetensors`` (float); the metadata names the ``source``
    checkpoint and keeps its model description, classes and data plus the
    compression history.  Returns the file's path."""
    from .. import __version__
    from ..checkpoint import save_checkpoint

    out_dir = Path(out_dir)
    record = {"role": "compressed", "model": source_meta["model"], "source": str(source),
              "topokd_version": __version__, "classes": source_meta.get("classes"),
              "data": source_meta.get("data")}
    if is_quantized(model):
        path = out_dir / "model.pt2"
        model.save(path, metadata={**record, "compression": _jsonable(model.info.get("history", []))
                                   + [{"op": "quantize", "method": model.info["method"]}]})
        return path
    path = out_dir / "model.safetensors"
    save_checkpoint(path, dict(model.state_dict()), {**record, "compression": _jsonable(history(model))})
    return path
