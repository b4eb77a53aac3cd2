"""MkDocs hook: the CLI reference page, rendered from ``topokd.cli.build_parser()``.

``docs/cli.md`` holds the marker ``<!-- topokd-cli-reference -->``; at build
time it is replaced by the ``--help`` of ``topokd`` and of every command and
sub-command (argparse sub-parsers walked recursively), so the page can never
disagree with the installed command.  Building the parser imports no torch.

:func:`render` is also used by ``tests/test_docs.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path

MARKER = "<!-- topokd-cli-reference -->"
PAGE = "cli.md"
#: Help is wrapped at this width, whatever the terminal running the build.
WIDTH = 100

_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from topokd.cli import build_parser

    return build_parser()


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command path, parser, one-line help)`` for ``parser`` and every
    sub-parser below it, depth first, in the order they were added (aliases
    of a sub-command are listed once)."""
    yield path, parser, None
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        seen = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            for sub_path, sub_parser, sub_help in walk(sub, path + (name,)):
                yield sub_path, sub_parser, helps.get(name) if sub_path == path + (name,) else sub_help


@contextmanager
def _fixed_width(width: int):
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _anchor(path: tuple[str, ...]) -> str:
    return "-".join(("topokd",) + path)


def commands(parser: argparse.ArgumentParser | None = None) -> list[tuple[str, ...]]:
    """Every command path below ``topokd``, e.g. ``("pinet", "train")``."""
    return [path for path, _, _ in walk(parser or _parser()) if path]


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown of the CLI reference: an index of the commands, then one
    section per command with its ``--help``."""
    parser = parser or _parser()
    entries = list(walk(parser))
    lines = ["| command | what it does |", "|---|---|"]
    for path, _, help_text in entries:
        if path:
            name = " ".join(("topokd",) + path)
            lines.append(f"| [`{name}`](#{_anchor(path)}) | {(help_text or '').replace('|', '&#124;')} |")
    lines.append("")
    with _fixed_width(WIDTH):
        for path, sub, _ in entries:
            name = " ".join(("topokd",) + path)
            level = "#" * min(2 + max(len(path) - 1, 0), 4)
            lines += [f"{level} `{name}` {{ #{_anchor(path)} }}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri == PAGE:
        if MARKER not in markdown:
            raise ValueError(f"{PAGE} lost its marker {MARKER}; the CLI reference cannot be inserted")
        markdown = markdown.replace(MARKER, render())
    return markdown
