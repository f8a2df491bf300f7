"""Every registered loss documents itself the same way (issue 18).

Each docstring carries the sections of the robust losses and the solvers: ``Args:`` (naming
every parameter of the signature), ``Returns:``, ``Raises:`` and ``References:``. An
elementary loss may say ``References: none (...)``, with the reason in the parentheses; any
other loss must name a source.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

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


# --- one math notation (issue 18) -------------------------------------------------------------
#
# Docstring math is plain text in ``code spans`` (docs/loss_functions.md, "Conventions"): powers
# are ``r^2`` and ``(1 - p)^gamma``, never Python's ``**``; no LaTeX and no Unicode math
# symbols. Doctest lines (``>>>`` and ``...``) are Python and are not read, and ``**`` that
# unpacks keyword arguments (``f(z, **shape)``) is not a power.

ROOT = Path(__file__).resolve().parents[1]
NOTATION_FILES = sorted(path.relative_to(ROOT).as_posix() for path in ROOT.glob("lossopt/**/*.py"))
_SPAN = re.compile(r"``(.+?)``", re.S)
_POWER = re.compile(r"[\w)\]]\s*\*\*\s*[\w(\-.]")  # an operand on each side: not **kwargs
_LATEX = re.compile(r"\\[A-Za-z]+|\.\. math::")
# Superscripts and subscripts, math operators, the middle dot and times sign, Greek letters,
# vulgar fractions and arrows.
_UNICODE_MATH = re.compile(
    "[\u00b2\u00b3\u00b9\u2070-\u209f\u2200-\u22ff\u00b7\u00d7\u0370-\u03ff\u00bc-\u00be"
    "\u2190-\u21ff]"
)


def notation_errors(doc: str) -> list[str]:
    """What in ``doc`` breaks the notation: ``**`` powers and LaTeX in code spans, Unicode
    math anywhere; doctest sessions (a ``>>>`` line and what follows it up to a blank line:
    the code and its expected output) are skipped."""
    kept, in_session = [], False
    for line in doc.splitlines():
        in_session = line.lstrip().startswith(">>>") or (in_session and bool(line.strip()))
        if not in_session:
            kept.append(line)
    return _errors("\n".join(kept), _SPAN, _LATEX, "``")


def _errors(prose: str, span: re.Pattern[str], latex: re.Pattern[str], tick: str) -> list[str]:
    """The notation errors of ``prose``: ``**`` powers in its code spans (``span``), LaTeX
    (``latex``) and Unicode math anywhere; ``tick`` quotes a span in the message."""
    errors = [f"{tick}{s}{tick}: power written '**' (write '^')" for s in span.findall(prose)
              if _POWER.search(s)]
    errors += [f"LaTeX {m.group()!r}: plain text in {tick}code spans{tick} instead"
               for m in latex.finditer(prose)]
    errors += [f"Unicode math {m.group()!r}: plain ASCII instead"
               for m in _UNICODE_MATH.finditer(prose)]
    return errors


def _docstrings(path: str) -> list[tuple[str, str]]:
    tree = ast.parse((ROOT / path).read_text())
    return [(getattr(node, "name", "<module>"), ast.get_docstring(node) or "")
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)]


def test_the_notation_check_rejects_the_other_notation_and_reads_no_doctest():
    assert notation_errors("Half squared error ``l = (p - t)^2 / 2``.") == []
    assert notation_errors("Call ``rho_hat(z, **shape)``; ``f(**kwargs)``.") == []
    assert notation_errors("Example:\n    >>> float(jnp.sum(w ** 2))\n    ...     x**2\n") == []
    assert notation_errors("Example:\n    >>> print(s)\n    'a\\n'\n") == []  # expected output
    assert len(notation_errors("Example:\n    >>> f()\n\n    After it: ``x**2``.")) == 1
    assert len(notation_errors("Mean squared error ``l = r**2``.")) == 1
    assert len(notation_errors("Error ``O(h ** 4)`` and ``(1 - p)**(gamma - 2)``.")) == 2
    assert len(notation_errors("Spans lines: ``a +\n    b**2``.")) == 1
    assert len(notation_errors(".. math::  \\sum_i x_i")) == 2
    assert len(notation_errors("Squared ``x\u00b2``, summed ``\u03a3 x``, ``a \u2264 b``.")) == 3
    assert len(notation_errors("At ``x*(\u03b8)``, ``\u00bd ||r||^2``, ``\u2207\u2093f``.")) == 4


def test_the_notation_files_are_found():
    assert "lossopt/losses/_regression.py" in NOTATION_FILES
    assert "lossopt/gradcheck/_finite_diff.py" in NOTATION_FILES and len(NOTATION_FILES) > 30
    assert {"lossopt/solvers/_lbfgs.py", "lossopt/solvers/_implicit.py",
            "lossopt/solvers/_driver.py"} <= set(NOTATION_FILES)


@pytest.mark.parametrize("name", NAMES)
def test_loss_docstring_math_is_in_one_notation(name):
    errors = notation_errors(inspect.getdoc(losses.info(name).fn) or "")
    assert not errors, f"{name}: {errors}"


@pytest.mark.parametrize("path", NOTATION_FILES)
def test_every_docstring_of_the_module_is_in_one_notation(path):
    errors = {name: e for name, doc in _docstrings(path) if (e := notation_errors(doc))}
    assert not errors, f"{path}: {errors}"


# --- the guides ---------------------------------------------------------------------------------
#
# The guides (docs/*.md) write their prose and math in the same notation. Markdown code spans are
# single backticks; fenced blocks (```python) are code and are not read (``w ** 2`` is Python
# there), and neither is a ``$`` that is not LaTeX (``$.losses[1].delta``, ``$LOSSOPT_CACHE_DIR``).

# The README and every page of the site.
GUIDES = ["README.md", *sorted(path.relative_to(ROOT).as_posix()
                              for path in (ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```[^\n]*$", re.M | re.S)
_MD_SPAN = re.compile(r"`([^`\n]+)`")
_MD_LATEX = re.compile(r"\$\$|\\[A-Za-z]{2,}|\\[()\[\]]")


def guide_errors(text: str) -> list[str]:
    """What in a guide's Markdown breaks the notation, outside its fenced code blocks."""
    return _errors(_FENCE.sub("", text), _MD_SPAN, _MD_LATEX, "`")


def test_the_guide_check_reads_prose_and_math_but_not_code():
    assert guide_errors("A power `r^2`, **bold**, `f(**kwargs)`, `$.losses[0]`.") == []
    assert guide_errors("Code:\n\n```python\nloss = jnp.sum(w ** 2)  # \u03b8\n```\n") == []
    assert len(guide_errors("Focal `(1 - p)**gamma` and `2**-38`.")) == 2
    assert len(guide_errors("$$F(x) = \\tfrac12 \\|r(x)\\|^2$$")) == 3
    assert len(guide_errors("At `x*(\u03b8)`:\n\n    dx*/d\u03b8 = -H\u207b\u00b9 g\n")) == 4


def test_the_guides_are_found():
    assert {"docs/differentiating.md", "docs/losses_torch_keras.md",
            "docs/newton_and_line_searches.md", "docs/loss_functions.md"} <= set(GUIDES)


@pytest.mark.parametrize("path", GUIDES)
def test_every_guide_is_in_one_notation(path):
    errors = guide_errors((ROOT / path).read_text())
    assert not errors, f"{path}: {errors}"
