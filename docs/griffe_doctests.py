"""A griffe extension (mkdocs.yml, mkdocstrings' ``extensions``): show the ``>>>`` examples of
the docstrings as Python console code.

The docstrings follow the Google style with doctest examples written as plain paragraphs
(doctest runs them; tests/test_doctests.py). Markdown would read such a paragraph as nested
block quotes and its ``x[0][-1]`` as links, so each run of ``>>>`` / ``...`` lines and the
output lines after them, up to a blank line, is put in a ```` ```pycon ```` fence. Examples
indented by four spaces or more are code blocks in Markdown already and stay as they are.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_PROMPT = re.compile(r"^( {0,3})>>>( |$)")


def fence_examples(text: str) -> str:
    """``text`` with each doctest example (prompt lines and their output, up to a blank
    line) inside a ```` ```pycon ```` fence at the example's indentation; text already
    inside a fence is left alone."""
    out: list[str] = []
    lines = text.split("\n")
    i, in_fence = 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        m = None if in_fence else _PROMPT.match(line)
        if m is None:
            out.append(line)
            i += 1
            continue
        indent = m.group(1)
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest examples of every docstring griffe loads (`fence_examples`)."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_examples(obj.docstring.value)
