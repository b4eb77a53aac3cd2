"""Compression utilities: measure, prune and quantise students.

* :mod:`.profile` -- :func:`profile` (parameters, MACs/FLOPs, serialized
  size, CPU latency median/IQR, peak memory) and its pieces;
* :mod:`.prune` -- unstructured (per layer / global) and structured
  (channel removal, torch-pruning) pruning, iterative prune -> fine-tune
  schedules, :func:`finalize`, KD fine-tuning helpers;
* :mod:`.quantize` -- int8 dynamic / static PTQ and QAT through torchao's
  PT2E flow with the X86 (oneDNN) quantizer: :class:`QuantizedModel`;
* :mod:`.dynamic` -- DPF / DCIL dynamic pruning during training;
* :mod:`.psg` -- position-based scaled gradients (optimizer wrapper);
* :mod:`.config` -- the typed ``topokd compress`` config
  (:class:`CompressionConfig`; :func:`topokd.compress.config.load_config`);
* :mod:`.pipeline` -- :func:`compress_checkpoint`, the whole ``topokd
  compress CHECKPOINT CONFIG`` run as a function;
* :mod:`.checkpoints` -- :func:`load` (the documented loader of what
  ``topokd compress`` writes, ready for inference), :func:`load_compressed` /
  :func:`load_student` / :func:`save_compressed`; :mod:`.report` -- the
  Markdown report.

The quantisation module imports torchao only when called, and structured
pruning imports torch-pruning only when called (``pip install
'topokd[compress]'``).
"""

from ._common import CompressionError
from .checkpoints import load, load_compressed, load_student, save_compressed
from .config import CompressionConfig
from .dynamic import DynamicPruning
from .pipeline import compress_checkpoint
from .profile import count_flops, count_parameters, measure_latency, peak_memory, profile, serialize, sparsity
from .prune import (
    accuracy,
    finalize,
    is_pruned,
    iterative_prune,
    kd_finetune,
    make_fine_tune,
    prune_structured,
    prune_unstructured,
)
from .psg import PSG, nearest_grid_point, psg_scale
from .quantize import (
    QuantizedModel,
    convert_qat,
    load_quantized,
    prepare_qat,
    quantize,
    quantize_dynamic,
    quantize_qat,
    quantize_static,
)
from .report import markdown_report, markdown_table

__all__ = [
    "CompressionConfig",
    "CompressionError",
    "DynamicPruning",
    "PSG",
    "QuantizedModel",
    "accuracy",
    "compress_checkpoint",
    "convert_qat",
    "count_flops",
    "count_parameters",
    "finalize",
    "is_pruned",
    "iterative_prune",
    "kd_finetune",
    "load",
    "load_compressed",
    "load_quantized",
    "load_student",
    "make_fine_tune",
    "markdown_report",
    "markdown_table",
    "measure_latency",
    "nearest_grid_point",
    "peak_memory",
    "prepare_qat",
    "profile",
    "prune_structured",
    "prune_unstructured",
    "psg_scale",
    "quantize",
    "quantize_dynamic",
    "quantize_qat",
    "quantize_static",
    "save_compressed",
    "serialize",
    "sparsity",
]
