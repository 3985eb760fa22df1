"""A griffe extension for the API reference: the docstrings are reST (``:param:`` lines, ``::``
literal blocks, ``>>>`` doctests, which the test suite runs), rendered here as Markdown, which
knows neither doctest blocks nor ``::``. Doctests become fenced ``pycon`` blocks (or their
output, ``['noop']``, would be taken for a Markdown link) and ``::`` becomes ``:`` before the
indented block that Markdown shows as code anyway."""

from __future__ import annotations

import re
from typing import Any

import griffe

_PROMPT = re.compile(r"^(\s*)>>> ")


def markdown(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        prompt = _PROMPT.match(lines[i])
        if not prompt:
            out.append(re.sub(r"(\S)::$", r"\1:", lines[i]).replace(" ::", ":"))
            i += 1
            continue
        indent, block = prompt.group(1), []
        while i < len(lines) and lines[i].strip():  # a doctest block ends at a blank line
            block.append(lines[i].removeprefix(indent))
            i += 1
        out += [f"{indent}```pycon", *(indent + line for line in block), f"{indent}```"]
    return "\n".join(out)


class RestDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
