"""The documentation site: it builds in strict mode, its API reference holds every public name,
its generated loss catalogue is the registry, and the guides' Python examples run."""

from __future__ import annotations

import html
import importlib
import importlib.util
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lossopt

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_MISSING = [name for name in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python")
            if importlib.util.find_spec(name.split(".")[0]) is None
            or importlib.util.find_spec(name) is None]
needs_toolchain = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the docs toolchain is not installed ({', '.join(_MISSING)}): "
           'pip install -e ".[test]" installs mkdocs and mkdocstrings[python]',
)


def _public_modules() -> list[str]:
    """Found by import (the hooks find them on disk): lossopt and every module or package
    below it whose dotted name has no ``_`` part."""
    names = ["lossopt"]
    for info in pkgutil.walk_packages(lossopt.__path__, "lossopt."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = _public_modules()


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_module_defines_all(module):
    mod = importlib.import_module(module)
    assert isinstance(getattr(mod, "__all__", None), list | tuple), f"{module} has no __all__"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"
    assert len(set(mod.__all__)) == len(mod.__all__), f"{module}.__all__ repeats a name"


# --- the built site ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(across_workers):
    """``mkdocs build --strict`` of this checkout, once per test session (pytest-xdist workers
    share it): any warning -- a cross-reference that does not resolve, a docstring section
    that does not parse, a link to a missing page or anchor -- fails it."""
    with across_workers("docs-site") as folder:
        out, log = folder / "site", folder / "build-failed.txt"
        if not (out / "index.html").exists() and not log.exists():
            proc = subprocess.run(
                [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f",
                 str(ROOT / "mkdocs.yml"), "-d", str(out)],
                cwd=ROOT, capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0:
                log.write_text(f"{proc.stdout}\n{proc.stderr}")
        if log.exists():
            pytest.fail(f"mkdocs build --strict failed:\n{log.read_text()}")
    return out


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text()


_HREF = re.compile(r'<a\b[^>]*\bhref="([^"#]*)#([^"]+)"[^>]*>(?:<code>)?([^<]+)(?:</code>)?</a>')


def _anchor_exists(site: Path, page_dir: Path, href: str, anchor: str) -> bool:
    target = (page_dir / href / "index.html") if href else page_dir / "index.html"
    return target.resolve().exists() and f'id="{anchor}"' in target.read_text()


@needs_toolchain
@pytest.mark.slow(25)
def test_site_builds_in_strict_mode(site):
    assert (site / "index.html").exists()
    for page in ("getting_started", "loss_catalogue", "verifying_gradients", "coming_from"):
        assert (site / page / "index.html").exists(), page


@needs_toolchain
@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_in_the_reference(site, module):
    """Each name in a public module's ``__all__`` has an entry (an anchor ``module.name``) on
    that module's API page, or -- for names the module re-exports from another public module
    -- a link from that page to the entry where it is documented."""
    page_dir = site / "api" / module
    text = _page(site, f"api/{module}")
    assert f'id="{module}"' in text, f"the page of {module} does not document the module"
    links = {label.strip(): (href, anchor) for href, anchor, label in _HREF.findall(text)}
    missing = []
    for name in importlib.import_module(module).__all__:
        if f'id="{module}.{name}"' in text or f"{module}.{name}" in PUBLIC_MODULES:
            continue  # documented here, or a public submodule with a page of its own
        link = links.get(f"{module}.{name}")
        if link is None or not _anchor_exists(site, page_dir, *link):
            missing.append(name)
    assert not missing, f"not in the API reference of {module}: {missing}"


@needs_toolchain
def test_loss_catalogue_is_the_registry(site):
    from lossopt import losses

    text = html.unescape(_page(site, "loss_catalogue"))
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", text, flags=re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row,
                                                                        flags=re.S)]
        if cells:
            rows[cells[0]] = cells
    assert sorted(rows) == losses.names()
    # Properties stated by the design and the loss docstrings, not read from the registry:
    # (convex, smooth, robust) for a few well-known losses.
    known = {"mse": ("yes", "yes", ""), "huber": ("yes", "", "yes"), "mae": ("yes", "", "yes"),
             "log_cosh": ("yes", "yes", "yes"), "tukey": ("", "yes", "yes")}
    for name, (convex, smooth, robust) in known.items():
        assert tuple(rows[name][2:5]) == (convex, smooth, robust), (name, rows[name])
    assert "delta=1.0" in rows["huber"][6]
    # Every loss name links to its entry in the API reference.
    for name in losses.names():
        assert f'href="../api/lossopt.losses/#lossopt.losses.{name}"' in text, name


def test_guides_others_add_to_docs_join_the_nav(tmp_path):
    """A docs/*.md page the nav does not list is added to "Guides"; listed ones stay put, and
    the API reference gets one page per public module."""
    spec = importlib.util.spec_from_file_location("lossopt_docs_hooks", DOCS / "_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    for name in ("index.md", "mine.md", "zeta_new.md", "alpha_new.md"):
        (tmp_path / name).write_text(f"# {name}\n")
    config = {"docs_dir": str(tmp_path),
              "nav": [{"Home": "index.md"}, {"Guides": [{"Mine": "mine.md"}]}]}
    nav = hooks.on_config(config)["nav"]
    assert nav[1] == {"Guides": [{"Mine": "mine.md"}, "alpha_new.md", "zeta_new.md"]}
    assert nav[2] == {"API reference": [{m: f"api/{m}.md"} for m in PUBLIC_MODULES]}


# --- the guides' examples ---------------------------------------------------------------------

def _nav_pages() -> list[str]:
    """The pages mkdocs.yml's nav lists (this project's guides; pages other work adds to docs/
    test their own examples)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:"):]
    return sorted(set(re.findall(r":\s*([\w/]+\.md)\s*$", nav, flags=re.M))
                  - {"loss_catalogue.md"})


GUIDE_BLOCKS = {page: re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)
                for page in _nav_pages() if (DOCS / page).exists()}


@pytest.mark.slow(30)
@pytest.mark.parametrize("page", [p for p, blocks in GUIDE_BLOCKS.items() if blocks])
def test_guide_python_blocks_run(page, tmp_path, monkeypatch):
    """Each guide's ```python blocks run top to bottom in one namespace per page (``py``
    blocks are shown, not run: multi-host sketches, placeholders)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{Path(page).stem}"}
    for block in GUIDE_BLOCKS[page]:
        exec(compile(block, str(DOCS / page), "exec"), namespace)  # our own docs
