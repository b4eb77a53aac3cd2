"""Griffe extension for the API reference: reST-isms of topokd's docstrings in Markdown.

The docstrings are numpy style (Google style in the losses) with reST
inline markup.  Three rewrites make them render well as Markdown, without
changing any package file:

* reST roles (``:class:`~topokd.PersistenceImage```, ``:func:`fit```) become
  inline code (the last component with ``~``, as Sphinx shows them);
* a paragraph ending in ``::`` ends in ``:`` (the indented block after it is
  a Markdown code block already), and reST simple tables (``=====  ====``
  borders) are shown as preformatted text;
* prose paragraphs inside numpy sections move out of them (below).

Prose inside sections:

A few topokd docstrings (``SignalPersistenceImages``,
``ImagePersistenceImages``, ``PersistenceImage``, ``PINet``) continue a
numpy ``Parameters`` section with ordinary paragraphs ("Every parameter
after ``preset`` is keyword-only ...").  The numpy parser would read each
such paragraph's first words as a parameter name.  This extension moves
those paragraphs out of the section, to just before it, so they render as
text of the description; nothing else of the docstring changes.

A paragraph counts as prose when it starts, after a blank line and at the
section's indentation, with a line that is not a parameter header: its next
line is not more indented (a header is followed by its indented
description), or the paragraph is a single line ending in a full stop.
"""

from __future__ import annotations

import re

import griffe

_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def move_prose(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        # a section: a title line underlined with dashes
        if i + 1 < len(lines) and lines[i].strip() and _UNDERLINE.match(lines[i + 1]):
            base = _indent(lines[i])
            section = [lines[i], lines[i + 1]]
            prose: list[list[str]] = []
            j = i + 2
            while j < len(lines):
                if j + 1 < len(lines) and lines[j].strip() and _UNDERLINE.match(lines[j + 1]):
                    break  # the next section
                line = lines[j]
                starts_paragraph = line.strip() and _indent(line) == base and (j == i + 2 or not lines[j - 1].strip())
                if starts_paragraph:
                    k = j
                    while k < len(lines) and lines[k].strip():
                        k += 1
                    para = lines[j:k]
                    header_like = len(para) > 1 and _indent(para[1]) > base
                    single = len(para) == 1 and para[0].rstrip().endswith(".")
                    if (len(para) > 1 and not header_like) or single:
                        prose.append(para)
                        j = k + 1 if k < len(lines) else k
                        continue
                section.append(line)
                j += 1
            for para in prose:
                out += para + [""]
            while section and not section[-1].strip():
                section.pop()
            out += section + ([""] if j < len(lines) else [])
            i = j
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const|term|ref):`(~?)([^`]+)`")
_TABLE_BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    target = target.strip()
    if "<" in target and target.endswith(">"):  # :ref:`text <target>`
        target = target.split("<")[0].strip()
    elif tilde:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def roles_to_code(text: str) -> str:
    return _ROLE.sub(_role, text)


def literal_blocks(text: str) -> str:
    """``::`` -> ``:`` at the end of a paragraph; reST simple tables fenced as text."""
    lines = text.split("\n")
    out: list[str] = []
    borders = 0
    for line in lines:
        if _TABLE_BORDER.match(line):
            if borders % 3 == 0:
                out += ["", "```text"]
            out.append(line)
            borders += 1
            if borders % 3 == 0:
                out += ["```", ""]
            continue
        if line.rstrip().endswith("::") and not line.strip() == "::" and borders % 3 == 0:
            line = line.rstrip()[:-1]
        elif line.strip() == "::" and borders % 3 == 0:
            continue
        out.append(line)
    return "\n".join(out)


def rewrite(text: str) -> str:
    if "---" in text:
        text = move_prose(text)
    return literal_blocks(roles_to_code(text))


class ReSTToMarkdown(griffe.Extension):
    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        doc = obj.docstring
        if doc is not None:
            doc.value = rewrite(doc.value)
