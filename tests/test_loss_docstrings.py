"""Every registered loss documents itself the same way (issue 18).

Each docstring carries the sections of the robust losses and the solvers: ``Args:`` (naming
every parameter of the signature), ``Returns:``, ``Raises:`` and ``References:``. An
elementary loss may say ``References: none (...)``, with the reason in the parentheses; any
other loss must name a source.
"""

from __future__ import annotations

import inspect
import re

import pytest

from lossopt import losses

SECTIONS = ("Args", "Returns", "Raises", "References")
NAMES = losses.names()


def _sections(doc: str) -> dict[str, str]:
    """Google-style sections of a docstring: ``{title: body}`` for lines ``Title:`` at the
    docstring's own indentation (``inspect.getdoc`` removes it)."""
    out: dict[str, str] = {}
    title = None
    for line in doc.splitlines():
        m = re.fullmatch(r"([A-Z][A-Za-z ]*?)(?: \(.*\))?:", line)
        if m:
            title = m.group(1)
            out[title] = ""
        elif title is not None:
            if line and not line.startswith(" "):
                title = None  # back to prose at column 0
            else:
                out[title] += line + "\n"
    return out


def test_the_catalogue_is_not_empty():
    assert len(NAMES) > 50  # guards the parametrization below against an empty registry


def test_the_section_parser_sees_sections_and_ends_them_at_prose():
    doc = "Summary.\n\nArgs:\n    x: one.\n\nProse again.\n\nExample (two):\n    >>> 1\n"
    assert _sections(doc) == {"Args": "    x: one.\n\n", "Example": "    >>> 1\n"}


@pytest.mark.parametrize("name", NAMES)
def test_loss_docstring_has_every_section(name):
    doc = inspect.getdoc(losses.info(name).fn) or ""
    sections = _sections(doc)
    missing = [s for s in SECTIONS if not sections.get(s, "").strip()]
    assert not missing, f"{name}: docstring lacks {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_loss_args_name_every_parameter(name):
    fn = losses.info(name).fn
    args = _sections(inspect.getdoc(fn) or "").get("Args", "")
    documented = set(re.findall(r"\b(\w+)\b(?=[,:])", args))
    missing = [p for p in inspect.signature(fn).parameters if p not in documented]
    assert not missing, f"{name}: Args does not describe {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_references_name_a_source_or_say_none_with_a_reason(name):
    refs = _sections(inspect.getdoc(losses.info(name).fn) or "").get("References", "").strip()
    if refs.lower().startswith("none"):
        assert re.match(r"none \(.{10,}\)", refs, re.I), f"{name}: 'none' without a reason"
    else:
        # A source: an author and year, or a library's documented function.
        assert re.search(r"\(\d{4}\)|\d{4}\b|torch|optax|keras|Keras|PyTorch", refs), (name, refs)
