"""The documentation site's own checks that need no mkdocs build (`make docs` runs the build).

* The CLI reference hook (docs/_hooks/cli_reference.py) renders every command
  and sub-command of ``topokd.cli.build_parser()``.
* Every relative link in docs/**/*.md and README.md points to a file that exists.
* Every page under docs/ is in mkdocs.yml's nav (and every nav entry exists).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hook():
    spec = importlib.util.spec_from_file_location("cli_reference_hook", DOCS / "_hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _all_commands(parser: argparse.ArgumentParser, path=()):
    """Independent walk of the parser: every command path below ``topokd``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,)
                yield from _all_commands(sub, path + (name,))


def test_cli_reference_renders_every_command():
    from topokd.cli import build_parser

    hook = _hook()
    parser = build_parser()
    expected = list(dict.fromkeys(_all_commands(parser)))
    assert ("pi",) in expected and ("pinet", "train") in expected and ("compress",) in expected
    text = hook.render(parser)
    for path in expected:
        name = " ".join(("topokd",) + path)
        assert re.search(rf"^#+ `{re.escape(name)}` ", text, re.M), f"no section for {name}"
        assert f"usage: {name}" in text, f"no --help of {name}"
    # every option of every command appears in its help
    for path in expected:
        sub = parser
        for part in path:
            sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[part]
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, f"{' '.join(path)} {flag} missing from the CLI reference"


def test_cli_reference_hook_replaces_the_marker():
    hook = _hook()
    page_text = (DOCS / hook.PAGE).read_text()
    assert hook.MARKER in page_text

    class Page:
        class file:
            src_uri = hook.PAGE

    out = hook.on_page_markdown(page_text, Page, None, None)
    assert hook.MARKER not in out and "usage: topokd pi" in out


_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files():
    return [ROOT / "README.md"] + sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)


def _relative_links(path: Path):
    text = _INLINE_CODE.sub("", _FENCE.sub("", path.read_text()))
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, mailto:, ... and anchors within the page
        yield target


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    broken = []
    for target in _relative_links(page):
        file_part = target.split("#", 1)[0]
        if not file_part:
            continue
        if not (page.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_link_checker_sees_links():
    # guard against a regex that silently matches nothing
    assert "docs/tda.md" in list(_relative_links(ROOT / "README.md"))


def test_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use python tags (e.g. !!python/name); none are needed to read the nav
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                yield from pages(value)
            else:
                yield value

    in_nav = set(pages(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_hooks" not in p.parts}
    assert in_nav == on_disk, f"not in nav: {sorted(on_disk - in_nav)}; missing files: {sorted(in_nav - on_disk)}"
