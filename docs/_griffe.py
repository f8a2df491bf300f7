"""A griffe extension (mkdocs.yml loads it for mkdocstrings): the docstrings' reST habits read
as Markdown on the site.

- ``Example:`` sections (the house's singular) are Google-style ``Examples`` sections, so their
  ``>>>`` sessions render as code instead of running text;
- Sphinx roles (``:func:`name```, ``:class:`~lossopt.Result```) become code spans.

The docstrings themselves stay as they are: ``help()`` and doctests read them unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const):`~?([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


def markdown_docstring(text: str) -> str:
    text = _EXAMPLE.sub(r"\1Examples:", text)
    return _ROLE.sub(r"`\1`", text)


class HouseDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
