"""MkDocs hooks of the documentation site (mkdocs.yml ``hooks:``).

1. The checkout holds three folders that setup.py installs as one package: surco/ -> surco,
   solvers/ -> surco.solvers, problems/ -> surco.problems. griffe (mkdocstrings' reader of
   the source) finds packages by folder, so `on_config` lays out build/docs-python/surco: a
   link to each entry of surco/, plus solvers/ and problems/ linked in under their installed
   names. Nothing is copied; the source read is the checkout's.
2. On the API page a line ``::: surco.NAME`` documents the public name that users import.
   ``surco.zero`` is both a function and a module (the function, re-exported by the package,
   hides the module), and griffe would document the module. `on_page_markdown` rewrites
   each such line to the place where the object is defined (``obj.__module__`` and
   ``obj.__qualname__``, looked up by importing the package) and keeps the public name as the
   heading, so the page follows the code when a definition moves between modules.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import shutil
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "build" / "docs-python"
#: installed name -> folder of the checkout (as setup.py maps them)
PACKAGE_DIRS = {"surco": "surco", "surco/solvers": "solvers", "surco/problems": "problems"}
#: a ``::: surco.x`` line with no options block below it (a line with options is left alone)
_DIRECTIVE = re.compile(r"^::: (surco(?:\.\w+)*)[ \t]*$(?!\n[ \t]+\S)", re.M)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, link.parent), link)


def stage_package(stage: Path = STAGE) -> Path:
    """Lay out ``stage/surco`` as the installed package looks (see the module docstring);
    returns ``stage``. Raises FileNotFoundError when a folder of the checkout is missing."""
    if stage.exists():
        shutil.rmtree(stage)
    for name, folder in PACKAGE_DIRS.items():
        src = ROOT / folder
        if not (src / "__init__.py").is_file():
            raise FileNotFoundError(f"docs/hooks.py: {src} is not a package folder "
                                    f"(expected it to be installed as {name.replace('/', '.')})")
        for entry in sorted(src.iterdir()):
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            if name == "surco" and entry.name in ("solvers", "problems"):
                raise FileExistsError(f"docs/hooks.py: surco/{entry.name} would hide "
                                      f"{entry.name}/, installed as surco.{entry.name}")
            _link(entry, stage / name / entry.name)
    return stage


def defining_path(public: str) -> str:
    """Where the object that ``public`` (``surco.x.y``) names is defined, as a dotted path:
    ``obj.__module__ + "." + obj.__qualname__`` for a class or function, ``public`` itself
    for a module or any other object.

    Raises:
      ImportError / AttributeError: ``public`` names nothing importable (the message says
        which part is missing).
    """
    parts = public.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError as exc:
                raise AttributeError(f"docs/api.md: {public!r}: {'.'.join(parts[:i])} has no "
                                     f"attribute or submodule {part!r}") from exc
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    return public


@event_priority(100)  # before mkdocstrings reads its handler's ``paths``
def on_config(config):
    """Stage the package for griffe before any plugin is configured."""
    stage_package()
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Point each ``::: surco.NAME`` line of the API page at the definition, headed by the
    public name (see the module docstring)."""
    if page.file.src_uri != "api.md":
        return markdown

    def repl(m: re.Match) -> str:
        public = m.group(1)
        where = defining_path(public)
        if where == public:
            return m.group(0)
        return f'::: {where}\n    options:\n      heading: "{public}"\n      toc_label: "{public}"'

    return _DIRECTIVE.sub(repl, markdown)
