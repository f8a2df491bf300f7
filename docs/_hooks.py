"""mkdocs hooks: what the documentation site generates at build time.

- The **loss catalogue** (``loss_catalogue.md``) is a table built from
  ``lossopt.losses.catalog()``: every registered loss with its properties, hyperparameters and
  reference, linked to its entry in the API reference. It cannot go stale: it is the registry.
- The **API reference** has one page per public module (``api/<module>.md``, a ``::: module``
  directive rendered by mkdocstrings from the docstrings). Public modules are found on disk
  (every module and package under ``lossopt/`` whose dotted path has no ``_`` part), so a new
  public module gets its page without editing the nav.
- **Guides others add**: every ``docs/*.md`` page that the nav in ``mkdocs.yml`` does not list
  joins the "Guides" section, in file-name order, with its first heading as its title. A page
  added to ``docs/`` is in the site (and in the strict build's link checks) at once; listing it
  in ``mkdocs.yml`` instead places it by hand.

The test suite builds the site in strict mode (tests/test_docs.py), so a docstring or page
whose cross-reference does not resolve fails the build.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lossopt"
CATALOGUE_PAGE = "loss_catalogue.md"
API_DIR = "api"
GUIDES = "Guides"
API_SECTION = "API reference"


def public_modules() -> list[str]:
    """Dotted names of the public modules of lossopt, the package first, then sorted."""
    found = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        found.append(".".join(parts))
    return sorted(found, key=lambda name: (name != PACKAGE, name))


def api_page(module: str) -> str:
    return f"{API_DIR}/{module}.md"


def _nav_paths(items: Any) -> set[str]:
    """Every page path a nav (nested lists and one-key dicts) mentions."""
    if isinstance(items, str):
        return {items}
    if isinstance(items, dict):
        return set().union(*(_nav_paths(v) for v in items.values()))
    if isinstance(items, list):
        return set().union(*(_nav_paths(v) for v in items)) if items else set()
    return set()


def on_config(config: Any) -> Any:
    nav = config["nav"]
    docs = Path(config["docs_dir"])
    listed = _nav_paths(nav)
    extra = sorted(
        path.relative_to(docs).as_posix()
        for path in docs.glob("*.md")
        if path.relative_to(docs).as_posix() not in listed
    )
    guides = next((item[GUIDES] for item in nav if isinstance(item, dict) and GUIDES in item),
                  None)
    if guides is None:
        guides = []
        nav.append({GUIDES: guides})
    guides.extend(extra)
    nav.append({API_SECTION: [{module: api_page(module)} for module in public_modules()]})
    return config


def on_files(files: Files, config: Any) -> Files:
    generated = {CATALOGUE_PAGE: catalogue_markdown()}
    generated.update({api_page(module): api_markdown(module) for module in public_modules()})
    for path, content in generated.items():
        if files.get_file_from_path(path) is not None:
            raise ValueError(f"docs/{path} exists but is generated at build time: remove it")
        files.append(File.generated(config, path, content=content))
    return files


# --- the API reference ------------------------------------------------------------------------


def _home(name: str, obj: Any, modules: list[str]) -> str | None:
    """The public module (other than the package) that documents ``obj`` under ``name``:
    the deepest one whose ``__all__`` exports the same object."""
    homes = []
    for module in modules[1:]:
        mod = importlib.import_module(module)
        if name in getattr(mod, "__all__", ()) and getattr(mod, name, None) is obj:
            homes.append(module)
    if isinstance(obj, type(importlib)) and obj.__name__ in modules:
        return obj.__name__
    defined = getattr(obj, "__module__", "") or ""
    homes.sort(key=lambda m: (not defined.startswith(m), -m.count(".")))
    return homes[0] if homes else None


def api_markdown(module: str) -> str:
    head = [f"::: {module}", "    options:", "      show_root_heading: true",
            "      show_root_full_path: true", "      heading_level: 1"]
    if module != PACKAGE:
        return "\n".join([*head, ""])
    # The package re-exports names documented in their own modules: its docstring, a table of
    # links, and the names that have no other public home rendered here.
    modules = public_modules()
    package = importlib.import_module(PACKAGE)
    rows, here = [], []
    for name in package.__all__:
        obj = getattr(package, name)
        home = _home(name, obj, modules)
        if home is None:
            here.append(name)
            continue
        target = home if home == getattr(obj, "__name__", None) else f"{home}.{name}"
        rows.append(f"| [`{PACKAGE}.{name}`][{target}] | `{target}` |")
    lines = [*head, "      members: false", "",
             "## Names at the top level", "",
             f"`import {PACKAGE}` gives these names; each is documented in its module.", "",
             "| name | documented as |", "|---|---|", *rows, ""]
    if here:
        lines += ["## Defined here", ""]
        for name in here:
            lines += [f"::: {PACKAGE}.{name}", "    options:", "      show_root_heading: true",
                      "      show_root_full_path: true", "      heading_level: 3", ""]
    return "\n".join(lines)


# --- the loss catalogue -----------------------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def catalogue_markdown() -> str:
    from lossopt import losses

    entries = list(losses.catalog())
    tasks: dict[str, list[Any]] = {}
    for entry in entries:
        tasks.setdefault(entry.task, []).append(entry)
    lines = [
        "# Loss catalogue",
        "",
        f"Every loss registered in `lossopt.losses` ({len(entries)} of them), generated from "
        "`lossopt.losses.catalog()` when this site is built; `lossopt losses` prints the same "
        "table, and `lossopt.losses.get(name, **hyperparameters)` looks one up by name.",
        "",
        "The properties are claims the test suite checks numerically: **convex** in the first "
        "argument (a positive semidefinite Hessian at random points, a negative-curvature "
        "witness for the others), **smooth** (twice continuously differentiable), **robust** "
        "(a bounded gradient as the error grows) and **probabilistic** (a negative "
        "log-likelihood or a divergence). The input is what the first argument holds.",
        "",
    ]
    for task, group in tasks.items():
        lines += [
            f"## {task.replace('_', ' ').capitalize()}",
            "",
            "| loss | input | convex | smooth | robust | probabilistic | hyperparameters "
            "| reference |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in group:
            hyper = ", ".join(f"`{k}={v!r}`" for k, v in e.hyperparameters.items())
            lines.append(
                f"| [`{e.name}`][lossopt.losses.{e.name}] | {_cell(e.input_kind)} "
                f"| {_yes(e.convex)} | {_yes(e.smooth)} | {_yes(e.robust)} "
                f"| {_yes(e.probabilistic)} | {_cell(hyper)} | {_cell(e.reference)} |"
            )
        lines += ["", *(f"- `{e.name}`: {_cell(e.summary)}" for e in group), ""]
    return "\n".join(lines)
