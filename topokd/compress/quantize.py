"""Int8 quantisation of Conv1d/Conv2d/Linear students for CPU inference.

Route: PT2E with torchao's X86InductorQuantizer
-----------------------------------------------
``torch.ao.quantization`` (eager mode and FX graph mode) is deprecated, and
from PyTorch 2.10 on its PT2E quantizers live in torchao.  Every function
here uses the maintained flow:

1. ``torch.export.export`` the float model (dynamic batch axis) to an ATen
   graph;
2. ``torchao.quantization.pt2e.quantize_pt2e.prepare_pt2e`` (or
   ``prepare_qat_pt2e``) with torchao's ``X86InductorQuantizer``, which
   inserts observers (fake-quantisers for QAT) following the oneDNN int8
   recipe: weights int8 symmetric per output channel, activations uint8
   affine per tensor (``HistogramObserver`` for static calibration,
   computed per batch for dynamic);
3. calibration batches (static) or training (QAT), then ``convert_pt2e``,
   which folds the weights to int8 and leaves a *reference* graph of
   quantize/dequantize ops around float ops: portable, what
   :meth:`QuantizedModel.save` stores (``.pt2``);
4. for speed, the reference graph is *lowered* for x86 the way torchao's
   ``lower_pt2e_quantized_to_x86`` does it (re-export, Inductor's freezing
   pattern passes and constant folding), but keeping the batch axis
   dynamic: dequant -> conv/linear -> quant patterns become oneDNN
   ``onednn.qconv_pointwise`` / ``onednn.qlinear_pointwise`` kernels with
   prepacked int8 weights, run eagerly (no C++ compilation).

Why this route: torchao's ``quantize_`` configs (``Int8DynamicActivation-
Int8WeightConfig``, ...) only handle ``nn.Linear`` (our students are
convolutional), and the XNNPACK quantizer moved to ExecuTorch, whose int8
kernels only run in the ExecuTorch runtime (and whose wheel pulls in some
thirty packages).  The X86 quantizer targets exactly the x86 CPUs we
deploy on.

Known limits on this machine (torch 2.13.0 CPU, torchao 0.18.0, AVX2 CPU):

* The stock X86InductorQuantizer annotates a Conv1d only when an
  ``nn.ReLU`` module follows it, so WRN's pre-activation blocks would stay
  float.  :func:`x86_quantizer` returns a subclass that also annotates
  standalone ``aten.conv1d`` nodes with the same recipe as conv2d; the
  lowering passes turn them into ``qconv_pointwise`` (they handle 1-D).
* ``torch.compile`` of the converted conv1d graph fails in Inductor
  (``InductorError: RuntimeError: Attempting to broadcast a dimension of
  length 102 at -1! Mismatching argument at index 1 had torch.Size([32,
  16, 102]); but expected shape should be broadcastable to [32, 16,
  106]``), hence the eager oneDNN lowering above instead of Inductor's
  code generation.
* ``prepare_pt2e`` folds every eval-mode BatchNorm into the conv feeding
  it without checking that the conv output has no other consumer; in
  WRN's pre-activation blocks the stem output feeds both ``bn1`` and the
  identity shortcut, so the shortcut got the BatchNorm too and the int8
  student fell from 100 % to 25 % on BasicMotions.  The PTQ functions
  here fold only BatchNorms whose producer has a single user
  (``_single_user_bn_fusion``); QAT's pattern-based fusion is not
  affected.
* Dynamic quantisation: oneDNN has fused dynamic int8 kernels for Linear
  only; dynamically quantised convolutions stay as reference ops
  (``choose_qparams -> quantize -> dequantize -> float conv`` on
  dequantised int8 weights).  They are 4x smaller on disk but *slower*
  than float32 on CPU; use static quantisation or QAT for speed.
* Without VNNI (this AVX2 CPU) uint8 x int8 products can saturate in
  oneDNN's 16-bit intermediate; ``reduce_range=None`` (default) detects
  VNNI from ``/proc/cpuinfo`` and uses 7-bit activations
  (``quant_max=127``) when it is missing, as the quantizer recommends.
* Tiny models gain little speed at batch 1: per-op overheads dominate and
  int8 adds quantize ops at the graph's edges.  Measure with
  :func:`topokd.compress.profile`.

A :class:`QuantizedModel` runs the lowered module (falling back to the
reference graph, with a warning, if lowering fails), counts its parameters
and MACs from the float model it came from, and saves / loads the
``torch.export`` ``.pt2`` format, not safetensors: the activation scales
and zero points are constants inside the quantised graph, so tensors alone
could not rebuild it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from contextlib import contextmanager

import torch
from torch import nn

from ._common import (
    CompressionError,
    QuantizedBase,
    as_input,
    batch_of,
    check_model,
    history,
    iter_batches,
    pruned_tensors,
    require_supported,
)
from .profile import count_flops, count_parameters

METHODS = ("dynamic", "static", "qat")
_DEBUG_META = ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node", "torch_fn", "custom",
               "numeric_debug_handle")
FORMAT = "topokd-quantized"


# ---------------------------------------------------------------------------
# torchao
# ---------------------------------------------------------------------------
@contextmanager
def _quiet_import():
    """torchao logs a warning per CUDA extension it cannot load on a CPU
    build, and torch warns about its Enum registration: silence both."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _torchao():
    try:
        with _quiet_import():
            import torchao  # noqa: F401
            from torchao.quantization.pt2e import quantize_pt2e
            from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ImportError as err:  # pragma: no cover - the compress extra is in dev
        raise ImportError(f"quantisation needs torchao: pip install 'topokd[compress]' ({err})") from None
    return quantize_pt2e, x86_inductor_quantizer


def cpu_has_vnni() -> bool:
    """Whether the CPU has VNNI (AVX512-VNNI / AVX-VNNI / AMX) int8 dot products."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        return "vnni" in text or "amx_int8" in text
    except OSError:
        return "VNNI" in str(torch.backends.cpu.get_cpu_capability()) or "AVX512" in str(
            torch.backends.cpu.get_cpu_capability())


def x86_quantizer(*, is_dynamic: bool = False, is_qat: bool = False, reduce_range: bool | None = None):
    """torchao's ``X86InductorQuantizer`` with the default oneDNN recipe as
    global config, extended to annotate standalone ``aten.conv1d`` nodes
    (the stock quantizer only takes Conv1d followed by ``nn.ReLU``)."""
    _, xiq = _torchao()
    if reduce_range is None:
        reduce_range = not cpu_has_vnni()
    aten = torch.ops.aten

    class X86Conv1dQuantizer(xiq.X86InductorQuantizer):
        def _annotate_conv2d(self, gm, quantization_config, filter_fn=None):
            super()._annotate_conv2d(gm, quantization_config, filter_fn)
            for node in gm.graph.nodes:
                if node.op == "call_function" and node.target == aten.conv1d.default \
                        and not xiq._skip_annotate([node], filter_fn):
                    self._annotate_conv_node_helper(node, True, quantization_config)

    config = xiq.get_default_x86_inductor_quantization_config(is_qat=is_qat, is_dynamic=is_dynamic,
                                                              reduce_range=bool(reduce_range))
    return X86Conv1dQuantizer().set_global(config)


# ---------------------------------------------------------------------------
# export and lowering
# ---------------------------------------------------------------------------
def _batch_dim(min_size: int = 1):
    return torch.export.Dim("batch", min=min_size)


def _export(model: nn.Module, x: torch.Tensor, *, training: bool) -> torch.fx.GraphModule:
    x = batch_of(x[:1], 2)  # a batch of 1 would specialise the batch axis to 1
    was = model.training
    model.train(training)
    try:
        with _quiet_import():
            program = torch.export.export(model, (x,), dynamic_shapes=({0: _batch_dim(2 if training else 1)},),
                                          strict=False)
    except Exception as err:
        raise CompressionError(f"cannot quantise {type(model).__name__}: torch.export could not trace it "
                               f"({_export_error_summary(err)}); quantisation needs a model that "
                               "torch.export can capture (no data-dependent Python control flow)") from None
    finally:
        model.train(was)
    return program.module()


def _export_error_summary(err: Exception) -> str:
    """``Type: first meaningful line`` of a torch.export error, plus the user
    code line it names ("The following call raised this error: File ...")."""
    import re

    text = str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    head = lines[0] if lines else ""
    for ln in lines:
        if ln.startswith(("Could not", "Constraints violated", "Unsupported", "Dynamic control flow")):
            head = ln
            break
    where = re.search(r'raised this error:\s*File "([^"]+)", line (\d+), in (\w+)\s*\n\s*(.+)', text)
    summary = f"{type(err).__name__}: {head[:200]}"
    if where:
        path, line, func, code = where.groups()
        summary += f"; at {os.path.basename(path)}:{line} in {func}: `{code.strip()}`"
    return summary


def _drop_unused_attributes(gm: torch.fx.GraphModule) -> None:
    """convert_pt2e keeps the float parameters it folded into int8 constants
    as unused attributes; drop them so the saved program holds int8 only."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name in used:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = gm.get_submodule(owner_name) if owner_name else gm
        if attr in owner._parameters:
            del owner._parameters[attr]
        elif attr in owner._buffers:
            del owner._buffers[attr]


def lower_x86(program: torch.fx.GraphModule, example: torch.Tensor) -> torch.fx.GraphModule:
    """Lower a converted PT2E graph to oneDNN int8 ops (eager), dynamic batch.

    Mirrors ``torchao.quantization.pt2e.lowering.lower_pt2e_quantized_to_x86``
    (re-export with only the CompositeImplicitAutograd decompositions,
    ``aten.t`` -> ``permute``, Inductor's ``freezing_passes`` and
    ``constant_fold``), which exports with a fixed batch size.
    """
    from torch._inductor.constant_folding import constant_fold
    from torch._inductor.fx_passes.freezing_patterns import freezing_passes

    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if not torch._export.utils._is_cia_op(op):
            del table[op]
    with _quiet_import():
        lowered = torch.export.export(program, (example,), dynamic_shapes=({0: _batch_dim(1)},),
                                      strict=False).run_decompositions(table).module()
    graph = lowered.graph
    for node in list(graph.nodes):
        if node.target == torch.ops.aten.t.default:
            with graph.inserting_before(node):
                perm = graph.call_function(torch.ops.aten.permute.default, args=(node.args[0], [1, 0]))
            node.replace_all_uses_with(perm)
            graph.erase_node(node)
    graph.lint()
    lowered.recompile()
    with torch.no_grad():
        freezing_passes(lowered, (example,))
        constant_fold(lowered)
    return lowered


@contextmanager
def _conv_bn_folding(qat: bool):
    """``convert_pt2e`` always runs torchao's QAT conv-BN folding when the
    graph holds a BatchNorm, exporting 96 small pattern graphs (conv1d,
    conv2d, conv_transpose1d/2d x 24 variants; over a minute on 2 cores).
    PTQ graphs never contain the QAT pattern (prepare_pt2e already folded
    conv -> BN in eval mode), so it is skipped for them; for QAT only the
    convolution types present in the graph are searched, and the
    ``num_batches_tracked`` increments of BatchNorm1d are dropped too."""
    from torchao.quantization.pt2e import qat_utils, quantize_pt2e

    original = quantize_pt2e._fold_conv_bn_qat

    def skip(m):
        return m

    def fold_present(m):
        try:
            return _fold_present_convs(m, qat_utils)
        except Exception:  # pragma: no cover - torchao internals changed: use theirs
            return original(m)

    quantize_pt2e._fold_conv_bn_qat = fold_present if qat else skip
    try:
        yield
    finally:
        quantize_pt2e._fold_conv_bn_qat = original


@contextmanager
def _single_user_bn_fusion():
    """``prepare_pt2e`` folds every eval-mode BatchNorm into the conv (or
    linear) that feeds it, without checking that the conv output has no other
    consumer.  In a pre-activation residual network (WRN: ``stem -> bn1`` and
    ``stem -> identity shortcut``) that silently applies the BatchNorm to the
    shortcut too, and the quantised model's accuracy collapses (torchao
    0.18.0: BasicMotions WRN-16-1 from 100 % to 25 %).  Within this context
    only BatchNorms whose producer has a single user are folded."""
    from torchao.quantization.pt2e import quantize_pt2e
    from torchao.quantization.pt2e import utils as pt2e_utils

    conv_original, linear_original = quantize_pt2e._fuse_conv_bn_, quantize_pt2e._fuse_linear_bn_
    bn_targets = (torch.ops.aten._native_batch_norm_legit_no_training.default, torch.ops.aten.batch_norm.default)

    def shared_inputs(m, is_producer):
        return [n for n in m.graph.nodes if n.op == "call_function" and n.target in bn_targets
                and is_producer(n.args[0]) and len(n.args[0].users) > 1]

    def fuse_conv_bn(m):
        if not shared_inputs(m, pt2e_utils._is_conv_or_conv_transpose_node):
            return conv_original(m)
        fused = set()
        for bn in list(m.graph.nodes):
            if bn.op != "call_function" or bn.target not in bn_targets:
                continue
            conv = bn.args[0]
            if not pt2e_utils._is_conv_or_conv_transpose_node(conv) or len(conv.users) > 1:
                continue
            weight, bias = conv.args[1], (conv.args[2] if len(conv.args) > 2 else None)
            pt2e_utils.fold_bn_weights_into_conv_node(conv, weight, bias, bn, m, weight in fused)
            fused.add(weight)
        m.graph.eliminate_dead_code()
        m.recompile()

    def fuse_linear_bn(m):
        if not shared_inputs(m, pt2e_utils._is_linear_node):
            return linear_original(m)

    quantize_pt2e._fuse_conv_bn_, quantize_pt2e._fuse_linear_bn_ = fuse_conv_bn, fuse_linear_bn
    try:
        yield
    finally:
        quantize_pt2e._fuse_conv_bn_, quantize_pt2e._fuse_linear_bn_ = conv_original, linear_original


def _fold_present_convs(m, qat_utils):
    import torch.nn.functional as F

    if not any(qat_utils._is_bn_node(n) for n in m.graph.nodes):
        return m
    targets = {n.target for n in m.graph.nodes if n.op == "call_function"}
    aten = torch.ops.aten
    one_d = (torch.randn(1, 1, 3), torch.randn(1, 1, 1), torch.randn(1), torch.randn(1), torch.randn(1),
             torch.randn(1))
    two_d = (torch.randn(1, 1, 3, 3), torch.randn(1, 1, 1, 1), torch.randn(1), torch.randn(1), torch.randn(1),
             torch.randn(1))
    if aten.conv1d.default in targets:
        m = qat_utils._fold_conv_bn_qat_helper(m, F.conv1d, one_d, is_cuda=False)
    if aten.conv2d.default in targets:
        m = qat_utils._fold_conv_bn_qat_helper(m, F.conv2d, two_d, is_cuda=False)
    for node in list(m.graph.nodes):
        if node.target == aten.add_.Tensor and node.args[0].op == "get_attr" and node.args[1] == 1 \
                and any("BatchNorm" in str(v[1]) for v in node.meta.get("nn_module_stack", {}).values()):
            m.graph.erase_node(node)
    m.graph.eliminate_dead_code()
    m.recompile()
    return m


def _op_counts(gm: torch.fx.GraphModule) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_function":
            key = str(node.target)
            counts[key] = counts.get(key, 0) + 1
    return counts


# ---------------------------------------------------------------------------
# the quantised model
# ---------------------------------------------------------------------------
class QuantizedModel(QuantizedBase):
    """An int8 model from :func:`quantize_dynamic`, :func:`quantize_static`
    or :func:`convert_qat`.

    ``program`` is the converted PT2E reference graph (int8 weights,
    quantize/dequantize ops); ``forward`` runs its oneDNN lowering
    (:func:`lower_x86`) when available.  Inference only: ``train()`` is a
    no-op.  ``info`` holds the method, quantizer settings and the float
    model's parameter and MAC counts.  :meth:`save` / :meth:`load` use the
    ``torch.export`` ``.pt2`` archive.
    """

    def __init__(self, program: torch.fx.GraphModule, example_input: torch.Tensor, info: dict, *,
                 lower: bool = True):
        super().__init__()
        self.program = program
        self.info = dict(info)
        object.__setattr__(self, "_example", as_input(example_input)[:1].detach().clone())
        object.__setattr__(self, "_lowered", None)
        object.__setattr__(self, "lowering_error", None)
        if lower:
            self.lower()

    # -- running -----------------------------------------------------------
    def lower(self) -> bool:
        """(Re)build the oneDNN lowering; on failure keep the reference graph,
        store the error in ``lowering_error`` and warn."""
        try:
            lowered = lower_x86(self.program, batch_of(self._example, 2))
            object.__setattr__(self, "_lowered", lowered)
            object.__setattr__(self, "lowering_error", None)
            return True
        except Exception as err:  # pragma: no cover - depends on torch internals
            object.__setattr__(self, "_lowered", None)
            object.__setattr__(self, "lowering_error", f"{type(err).__name__}: {err}")
            warnings.warn(f"oneDNN lowering failed ({type(err).__name__}: {err}); running the reference int8 "
                          "graph (quantize/dequantize around float ops), which is slow", RuntimeWarning,
                          stacklevel=2)
            return False

    @property
    def lowered(self) -> bool:
        return self._lowered is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (self._lowered if self._lowered is not None else self.program)(x)

    def train(self, mode: bool = True) -> "QuantizedModel":
        """Quantised models are inference-only: stays in eval mode."""
        object.__setattr__(self, "training", False)
        return self

    def __deepcopy__(self, memo):
        with _quiet_import():
            program = copy.deepcopy(self.program, memo)
        clone = QuantizedModel(program, self._example, copy.deepcopy(self.info), lower=self._lowered is not None)
        return clone

    # -- counts ------------------------------------------------------------
    def int8_weights(self) -> dict[str, torch.Tensor]:
        return {n: b for n, b in self.program.named_buffers() if b.dtype == torch.int8}

    def parameter_counts(self) -> dict:
        """The float model's ``total`` / ``trainable`` counts; ``nonzero``
        with the conv/linear weights counted after int8 rounding; ``int8``
        and ``int8_nonzero`` for the int8 weights alone."""
        weights = self.int8_weights().values()
        int8_total = sum(w.numel() for w in weights)
        int8_nonzero = sum(int(torch.count_nonzero(w)) for w in weights)
        counts = dict(self.info.get("float_params", {}))
        if "nonzero" in counts:
            counts["nonzero"] = counts["nonzero"] - self.info.get("float_weight_nonzero", 0) + int8_nonzero
        counts["int8"] = int8_total
        counts["int8_nonzero"] = int8_nonzero
        return counts

    def flop_counts(self) -> dict:
        f = self.info.get("float_flops", {"flops": 0, "macs": 0, "by_op": {}})
        return {"flops": f["flops"], "macs": f["macs"], "by_op": dict(f.get("by_op", {}))}

    def tensor_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in list(self.program.parameters()) + list(self.program.buffers()))

    def op_counts(self, lowered: bool = True) -> dict[str, int]:
        return _op_counts(self._lowered if lowered and self._lowered is not None else self.program)

    # -- files ---------------------------------------------------------------
    def exported_program(self):
        """The reference program re-exported for saving, without the
        per-node debugging metadata (stack traces, module stacks, source
        function stacks), which is most of a ``.pt2`` file's size and not
        needed to run it."""
        with _quiet_import():
            program = torch.export.export(self.program, (batch_of(self._example, 2),),
                                          dynamic_shapes=({0: _batch_dim(1)},), strict=False)
        for node in program.graph.nodes:
            for key in _DEBUG_META:
                node.meta.pop(key, None)
        return program

    def save(self, f, *, metadata: dict | None = None) -> None:
        """Write the reference program with ``torch.export.save`` (a ``.pt2``
        zip archive; ``f`` is a path or a binary file object).  ``info``,
        the example shape and ``metadata`` go in ``extra_files['topokd.json']``.
        Paths are written atomically (:func:`topokd.io.atomic_path`)."""
        extra = {"topokd.json": json.dumps({"format": FORMAT, "format_version": 1, "info": self.info,
                                            "example_shape": list(self._example.shape),
                                            "metadata": metadata or {}}, sort_keys=True, default=str)}
        program = self.exported_program()
        if isinstance(f, (str, os.PathLike)):
            from ..io import atomic_path

            # torch.export wants an archive name ending in .pt2 (else it logs a warning)
            with atomic_path(f, suffix=".tmp.pt2") as tmp:
                torch.export.save(program, str(tmp), extra_files=extra)
        else:
            torch.export.save(program, f, extra_files=extra)

    @classmethod
    def load(cls, f, *, lower: bool = True) -> "QuantizedModel":
        """Read a ``.pt2`` written by :meth:`save` (and lower it)."""
        extra = {"topokd.json": ""}
        with _quiet_import():
            _torchao()  # registers the quantized_decomposed ops the graph uses
            try:
                program = torch.export.load(f, extra_files=extra)
            except Exception as err:  # a corrupt or foreign file: torch raises many types
                first = (str(err).strip().splitlines() or [""])[0]
                raise CompressionError(f"{f} is not a readable torch.export .pt2 archive ({type(err).__name__}: "
                                       f"{first[:200]}); it may be truncated or corrupt") from None
        try:
            meta = json.loads(extra["topokd.json"])
        except json.JSONDecodeError:
            raise CompressionError(f"{f} is a torch.export archive but not a topokd quantised model") from None
        if meta.get("format") != FORMAT:
            raise CompressionError(f"{f} is not a topokd quantised model (format {meta.get('format')!r})")
        example = torch.zeros(meta["example_shape"])
        model = cls(program.module(), example, meta["info"], lower=lower)
        model.metadata = meta.get("metadata", {})
        return model


def load_quantized(path, *, lower: bool = True) -> QuantizedModel:
    """:meth:`QuantizedModel.load`."""
    return QuantizedModel.load(path, lower=lower)


# ---------------------------------------------------------------------------
# checks and info
# ---------------------------------------------------------------------------
def _check_quantizable(model) -> None:
    check_model(model)
    if isinstance(model, QuantizedModel):
        raise CompressionError("the model is already quantised")
    if isinstance(model, torch.fx.GraphModule):
        raise CompressionError("pass the float nn.Module, not an exported / prepared GraphModule "
                               "(for QAT use convert_qat on the prepared model)")
    masked = pruned_tensors(model)
    if masked:
        raise CompressionError(f"layer {masked[0][0]!r} still carries a pruning mask; call "
                               "topokd.compress.finalize(model) before quantising")
    require_supported(model, "int8 quantisation")
    if not any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) for m in model.modules()):
        raise CompressionError(f"{type(model).__name__} has no Conv1d, Conv2d or Linear layer to quantise")


def _float_info(model: nn.Module, x: torch.Tensor, method: str, reduce_range: bool) -> dict:
    import torchao

    return {"method": method, "backend": "torchao PT2E X86InductorQuantizer (+conv1d) -> oneDNN",
            "reduce_range": bool(reduce_range), "weights": "int8 symmetric per output channel",
            "activations": ("uint8 affine per tensor, scales computed per batch" if method == "dynamic"
                            else "uint8 affine per tensor, static scales")
            + (" (7-bit range: no VNNI)" if reduce_range else ""),
            "float_params": count_parameters(model), "float_flops": count_flops(model, x),
            "float_weight_nonzero": sum(int(torch.count_nonzero(m.weight)) for m in model.modules()
                                        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))),
            "torch": torch.__version__, "torchao": torchao.__version__, "history": history(model)}


def _resolve_reduce_range(reduce_range):
    return (not cpu_has_vnni()) if reduce_range is None else bool(reduce_range)


def _finish(converted: torch.fx.GraphModule, x: torch.Tensor, info: dict) -> QuantizedModel:
    _drop_unused_attributes(converted)
    info["reference_ops"] = {k: v for k, v in _op_counts(converted).items() if "quant" in k}
    model = QuantizedModel(converted, x, info)
    model.info["lowered"] = model.lowered
    model.info["lowered_int8_ops"] = {k: v for k, v in model.op_counts().items() if k.startswith("onednn.")}
    return model


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def quantize_dynamic(model: nn.Module, example_input, *, reduce_range: bool | None = None) -> QuantizedModel:
    """Post-training *dynamic* int8: int8 weights (per output channel),
    activations quantised on the fly with per-batch scales; no calibration.

    PT2E + X86 quantizer with ``is_dynamic=True``.  Linear layers run fused
    oneDNN dynamic int8 kernels; convolutions keep reference ops (see the
    module docstring: smaller, not faster).  The model is not modified.
    """
    _check_quantizable(model)
    quantize_pt2e, _ = _torchao()
    x = as_input(example_input)
    rr = _resolve_reduce_range(reduce_range)
    info = _float_info(model, x, "dynamic", rr)
    gm = _export(copy.deepcopy(model), x, training=False)
    with _quiet_import():
        with _single_user_bn_fusion():
            prepared = quantize_pt2e.prepare_pt2e(gm, x86_quantizer(is_dynamic=True, reduce_range=rr))
        with torch.no_grad():
            prepared(x)
        with _conv_bn_folding(qat=False):
            converted = quantize_pt2e.convert_pt2e(prepared)
    return _finish(converted, x, info)


def quantize_static(model: nn.Module, calibration, example_input=None, *, num_batches: int | None = None,
                    batch_size: int = 32, reduce_range: bool | None = None) -> QuantizedModel:
    """Post-training *static* int8: activation scales fixed from calibration.

    ``calibration``: a tensor of inputs (split into ``batch_size`` batches),
    a DataLoader, or any iterable of input tensors / ``(x, y)`` tuples;
    at most ``num_batches`` batches are used (default: all).
    ``example_input`` defaults to the first calibration batch.  PT2E + X86
    quantizer (``HistogramObserver`` on activations), lowered to oneDNN
    ``qconv_pointwise`` / ``qlinear_pointwise``.  The model is not modified.
    """
    _check_quantizable(model)
    quantize_pt2e, _ = _torchao()
    batches = iter_batches(calibration, batch_size)
    first = next(batches, None)
    if first is None:
        raise CompressionError("calibration data is empty: static quantisation needs at least one batch")
    x = as_input(example_input) if example_input is not None else first
    rr = _resolve_reduce_range(reduce_range)
    info = _float_info(model, x, "static", rr)
    gm = _export(copy.deepcopy(model), x, training=False)
    seen = 0
    with _quiet_import():
        with _single_user_bn_fusion():
            prepared = quantize_pt2e.prepare_pt2e(gm, x86_quantizer(is_dynamic=False, reduce_range=rr))
        with torch.no_grad():
            for batch in [first] if num_batches == 1 else _chain(first, batches):
                prepared(batch.float())
                seen += 1
                if num_batches is not None and seen >= num_batches:
                    break
        with _conv_bn_folding(qat=False):
            converted = quantize_pt2e.convert_pt2e(prepared)
    info["calibration_batches"] = seen
    return _finish(converted, x, info)


def _chain(first, rest):
    yield first
    yield from rest


def prepare_qat(model: nn.Module, example_input, *, reduce_range: bool | None = None) -> torch.fx.GraphModule:
    """Quantisation-aware training, step 1: an exported training graph with
    fake-quantisers (``prepare_qat_pt2e``, X86 QAT recipe).  Train it like a
    module (``.train()`` / ``.eval()`` work; e.g. with
    :func:`topokd.compress.kd_finetune`), then :func:`convert_qat`.  Needs
    batches of at least 2 samples (BatchNorm in training mode)."""
    _check_quantizable(model)
    quantize_pt2e, _ = _torchao()
    from torchao.quantization.pt2e import allow_exported_model_train_eval

    x = as_input(example_input)
    if x.shape[0] < 2:
        x = batch_of(x, 2)
    rr = _resolve_reduce_range(reduce_range)
    info = _float_info(model, x, "qat", rr)
    gm = _export(copy.deepcopy(model), x, training=True)
    with _quiet_import():
        prepared = quantize_pt2e.prepare_qat_pt2e(gm, x86_quantizer(is_qat=True, reduce_range=rr))
    allow_exported_model_train_eval(prepared)
    prepared.topokd_qat_info = info
    prepared.topokd_example = x[:1].detach().clone()
    return prepared


def convert_qat(prepared: torch.fx.GraphModule) -> QuantizedModel:
    """Quantisation-aware training, step 2: the trained fake-quantised graph
    from :func:`prepare_qat` -> an int8 :class:`QuantizedModel`."""
    info = getattr(prepared, "topokd_qat_info", None)
    if not isinstance(prepared, torch.fx.GraphModule) or info is None:
        raise CompressionError("convert_qat takes the model returned by prepare_qat")
    quantize_pt2e, _ = _torchao()
    from torchao.quantization.pt2e import move_exported_model_to_eval

    with _quiet_import():
        work = copy.deepcopy(prepared)
    move_exported_model_to_eval(work)
    with _quiet_import(), _conv_bn_folding(qat=True):
        converted = quantize_pt2e.convert_pt2e(work)
    return _finish(converted, prepared.topokd_example, dict(info))


def quantize_qat(model: nn.Module, example_input, fine_tune, *, reduce_range: bool | None = None) -> QuantizedModel:
    """:func:`prepare_qat`, ``fine_tune(prepared)`` (train it in place, e.g.
    :func:`topokd.compress.make_fine_tune`), :func:`convert_qat`."""
    if not callable(fine_tune):
        raise TypeError("fine_tune must be a callable training the prepared model in place")
    prepared = prepare_qat(model, example_input, reduce_range=reduce_range)
    fine_tune(prepared)
    return convert_qat(prepared)


def quantize(model: nn.Module, method: str, example_input, *, calibration=None, fine_tune=None,
             reduce_range: bool | None = None, num_batches: int | None = None) -> QuantizedModel:
    """One entry point: ``method`` in ``"dynamic"``, ``"static"`` (needs
    ``calibration``), ``"qat"`` (needs ``fine_tune``)."""
    if method == "dynamic":
        return quantize_dynamic(model, example_input, reduce_range=reduce_range)
    if method == "static":
        if calibration is None:
            raise ValueError("static quantisation needs calibration data")
        return quantize_static(model, calibration, example_input, num_batches=num_batches,
                               reduce_range=reduce_range)
    if method == "qat":
        if fine_tune is None:
            raise ValueError("QAT needs a fine_tune(prepared_model) callback")
        return quantize_qat(model, example_input, fine_tune, reduce_range=reduce_range)
    raise ValueError(f"quantisation method must be one of {list(METHODS)}, got {method!r}")


__all__ = ["METHODS", "QuantizedModel", "convert_qat", "cpu_has_vnni", "load_quantized", "lower_x86",
           "prepare_qat", "quantize", "quantize_dynamic", "quantize_qat", "quantize_static", "x86_quantizer"]
