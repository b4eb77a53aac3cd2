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
* :mod:`.cli` -- ``topokd compress CHECKPOINT CONFIG``.

The quantisation module imports torchao only when called, and structured
pruning imports torch-pruning only when called (``pip install
'topokd[compress]'``).
"""

from ._common import CompressionError
from .cli import load_compressed
from .dynamic import DynamicPruning
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

__all__ = [
    "CompressionError",
    "DynamicPruning",
    "PSG",
    "QuantizedModel",
    "accuracy",
    "convert_qat",
    "count_flops",
    "count_parameters",
    "finalize",
    "is_pruned",
    "iterative_prune",
    "kd_finetune",
    "load_compressed",
    "load_quantized",
    "make_fine_tune",
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
    "serialize",
    "sparsity",
]
