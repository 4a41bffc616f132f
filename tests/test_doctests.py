"""The ``>>>`` examples in the docstrings of every module of the package run and pass.

Modules are imported by their installed names (``surco.problems.sharding``, not the
checkout's ``problems/sharding``), so each example runs against the code users import.
"""
import doctest
import importlib
import pkgutil

import pytest

import surco


def _modules() -> list[str]:
    """Every module of surco, surco.solvers and surco.problems (three folders of the checkout
    mapped into one package, so each is walked from its own path)."""
    names = set()
    for root in ("surco", "surco.solvers", "surco.problems"):
        pkg = importlib.import_module(root)
        names.add(root)
        for info in pkgutil.walk_packages(pkg.__path__, root + ".", onerror=lambda _: None):
            names.add(info.name)
    return sorted(names)


def _with_examples(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return False
    with open(spec.origin, encoding="utf-8") as fh:
        return ">>>" in fh.read()


MODULES = [m for m in _modules() if _with_examples(m)]


def test_some_modules_have_examples():
    assert len(MODULES) >= 5, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name}: has '>>>' in its source but no doctest was found"
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.failed == 0, f"{name}: {res.failed} of {res.attempted} examples failed (see output)"
