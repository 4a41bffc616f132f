"""The doctested examples on the public entry points run and pass, each on its own (the
issue asks for examples on ``compare``, ``Problem`` and ``Family`` as well as on ``zero`` and
``prior.train``; tests/test_doctests.py runs every module's examples, this file makes sure
that these objects keep theirs)."""
import doctest
import importlib

import pytest

#: public names whose docstrings must carry ``>>>`` examples
OBJECTS = ["surco.compare", "surco.Problem", "surco.Family"]


def _resolve(name: str):
    mod, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(mod), attr)


@pytest.mark.parametrize("name", OBJECTS)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    obj = _resolve(name)
    tests = [t for t in doctest.DocTestFinder().find(obj, name, globs={}) if t.examples]
    assert tests and sum(len(t.examples) for t in tests) >= 3, (
        f"{name}: its docstring has no '>>>' example")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.failed == 0, f"{name}: {res.failed} of {res.attempted} examples failed (see output)"
