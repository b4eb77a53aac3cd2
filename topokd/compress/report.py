"""The before/after report of a compression run, in Markdown.

:func:`markdown_table` takes two :func:`topokd.compress.profile` results
(with an ``"accuracy"`` key added); :func:`markdown_report` takes the report
dict of :func:`topokd.compress.pipeline.compress_checkpoint` (what
``report.json`` holds).  Pure formatting: no torch.
"""

from __future__ import annotations

__all__ = ["markdown_report", "markdown_table"]


def _ratio(a, b, smaller_is_better: bool = True) -> str:
    if not a or not b:
        return ""
    r = a / b if smaller_is_better else b / a
    return f"{r:.2f}x"


def markdown_table(before: dict, after: dict, split: str = "test") -> str:
    """``| | before | after | before / after |`` rows: accuracy on ``split``,
    parameters, non-zeros, size, tensor bytes, MACs, latency per batch size
    and peak forward memory (when both sides have it)."""
    rows = ["| | before | after | before / after |", "|---|---:|---:|---:|"]
    d = (after["accuracy"] - before["accuracy"]) * 100
    rows.append(f"| accuracy ({split}) | {before['accuracy']:.4f} | {after['accuracy']:.4f} | {d:+.2f} points |")
    for label, key in (("parameters", "total"), ("non-zero parameters", "nonzero")):
        a, b = before["params"][key], after["params"][key]
        rows.append(f"| {label} | {a:,} | {b:,} | {_ratio(a, b)} |")
    rows.append(f"| size (bytes) | {before['size_bytes']:,} | {after['size_bytes']:,} | "
                f"{_ratio(before['size_bytes'], after['size_bytes'])} |")
    rows.append(f"| tensor bytes | {before['tensor_bytes']:,} | {after['tensor_bytes']:,} | "
                f"{_ratio(before['tensor_bytes'], after['tensor_bytes'])} |")
    rows.append(f"| MACs (batch 1) | {before['macs']:,} | {after['macs']:,} | "
                f"{_ratio(before['macs'], after['macs'])} |")
    for bs, lb in before["latency"].items():
        la = after["latency"].get(bs)
        if la is None:
            continue
        rows.append(f"| latency batch {bs} (ms, median ± IQR) | {lb['median_ms']:.3f} ± {lb['iqr_ms']:.3f} | "
                    f"{la['median_ms']:.3f} ± {la['iqr_ms']:.3f} | {_ratio(lb['median_ms'], la['median_ms'])} |")
    mb, ma = before.get("memory", {}).get("peak_bytes"), after.get("memory", {}).get("peak_bytes")
    if mb is not None and ma is not None:
        rows.append(f"| peak forward memory (bytes, batch {before['memory']['batch_size']}) | {mb:,} | {ma:,} | "
                    f"{_ratio(mb, ma)} |")
    return "\n".join(rows) + "\n"


def markdown_report(report: dict) -> str:
    """``report.md``: sources, the steps with the accuracy after each, the
    before/after table and how each number was measured."""
    b, a = report["before"], report["after"]
    config = report.get("config")
    lines = [f"# topokd compress: {report['model'].get('model')}", "",
             f"- checkpoint: `{report['checkpoint']}`",
             f"- config: `{config}`" if config else "- config: (passed in memory)",
             f"- data: {report['data']} (accuracy on the {report['eval_split']} split)",
             f"- output: `{report['output_model']}` ({report['output_bytes']:,} bytes with its metadata; "
             f"{report['output_format']})",
             f"- before: {b['format']}", "", "## Steps", ""]
    for i, step in enumerate(report["steps"], 1):
        opts = ", ".join(f"{k}={v}" for k, v in step.items() if k not in ("step", "accuracy"))
        lines.append(f"{i}. {step['step']} ({opts}): accuracy {step['accuracy']:.4f}")
    first = next(iter(b["latency"].values()))
    lines += ["", "## Before / after", "", markdown_table(b, a, report["eval_split"]),
              f"Latency: CPU, {first['threads']} thread(s), median and interquartile range of "
              f"{first['repeats']} forwards after warm-up. MACs: FlopCounterMode "
              "(conv/linear, 1 multiply-add = 2 FLOPs). Size: the serialized file (safetensors for float, "
              "torch.export .pt2 for int8); tensor bytes: the tensor data in it.", ""]
    return "\n".join(lines)
