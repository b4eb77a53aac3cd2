"""Checkpoints: tensors in safetensors, metadata as JSON in its header.

Loading never executes pickled code.  Writes are atomic
(:func:`topokd.io.atomic_path`: temporary file in the same directory, then
``os.replace``, with the umask's permissions), so a crash or Ctrl-C leaves
the previous checkpoint intact and no temporary file behind.  The JSON carries ``format`` and ``format_version`` keys
that readers check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

FORMAT = "topokd-checkpoint"
FORMAT_VERSION = 1
_META_KEY = "topokd"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or does not match what is asked."""


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict, *,
                    overwrite: bool = True) -> Path:
    """Atomically write ``tensors`` and JSON ``metadata`` to ``path``."""
    from safetensors.torch import save_file

    from .io import atomic_path

    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"checkpoint directory {path.parent} does not exist")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(clean, str(tmp), metadata={_META_KEY: json.dumps(header, sort_keys=True)})
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata of a checkpoint, without reading its tensors."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({err}); it may be corrupt") from None
    return _parse(raw, path)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, metadata)`` of a checkpoint written by :func:`save_checkpoint`."""
    from safetensors.torch import load_file

    path = _existing(path)
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path), device=str(device))
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read its tensors ({err}); the file may be truncated or corrupt") from None
    return tensors, meta


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def _parse(raw: str | None, path: Path) -> dict:
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a topokd checkpoint (no '{_META_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: its metadata is not valid JSON; the file is corrupt") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a topokd checkpoint (format {meta.get('format')!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer topokd (checkpoint format {meta['format_version']}, this one reads "
            f"up to {FORMAT_VERSION}); upgrade topokd"
        )
    return meta


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (for safetensors) and JSON."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
