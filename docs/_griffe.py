"""A griffe extension (mkdocs.yml loads it for mkdocstrings): the docstrings' reST habits read
as Markdown on the site.

- ``Example:`` sections (the house's singular) are Google-style ``Examples`` sections, so their
  ``>>>`` sessions render as code instead of running text;
- a doctest session in running text (a ``>>>`` paragraph outside an ``Examples`` section)
  is a code block, not nested quotes;
- a paragraph's closing ``::`` (a reST literal block) becomes ``:`` before its indented code
  (math is plain text in code spans: the conventions of docs/loss_functions.md);
- Sphinx roles (``:func:`name```, ``:class:`~lossopt.Result```) become code spans;
- names a module's ``__all__`` lists but provides lazily (a module ``__getattr__``, as
  ``lossopt.experiment`` does for its runner) are found by importing the module, and documented
  as aliases of the objects they resolve to.

The docstrings themselves stay as they are: ``help()`` and doctests read them unchanged.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const):`~?([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_LITERAL = re.compile(r"(\S)::[ \t]*$", re.M)


def markdown_docstring(text: str) -> str:
    text = _EXAMPLE.sub(r"\1Examples:", text)
    text = _LITERAL.sub(r"\1:", text)
    return _fence_sessions(_ROLE.sub(r"`\1`", text))


def _fence_sessions(text: str) -> str:
    """Fence each unindented paragraph that starts with ``>>>`` (sections, indented, are
    griffe's to parse)."""
    lines, out, i, fenced = text.split("\n"), [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
        starts = line.startswith(">>>") and (i == 0 or not lines[i - 1].strip())
        if fenced or not starts:
            out.append(line)
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        out += ["```pycon", *lines[i:j], "```"]
        i = j
    return "\n".join(out)


class HouseDocstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for module in _modules(pkg):
            exports = [str(name) for name in (module.exports or ())]
            missing = [name for name in exports if name not in module.members]
            if not missing:
                continue
            runtime = importlib.import_module(module.path)
            for name in missing:
                obj = getattr(runtime, name)
                target = f"{obj.__module__}.{obj.__qualname__}"
                module.set_member(name, griffe.Alias(name, target, parent=module))


def _modules(module: griffe.Module) -> list[griffe.Module]:
    found = [module]
    for member in module.members.values():
        if not member.is_alias and member.is_module:
            found.extend(_modules(member))
    return found
