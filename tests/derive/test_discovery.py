"""`surco.problems.FAMILIES` is discovered: a family package dropped next to the others is
listed (and so run by the conformance test) without editing a list."""
import importlib
import sys
import textwrap

import numpy as np

import surco
import surco.problems
from surco.budget import Budget

_FAMILY_PKG = '''
"""A family made in a test: pick 2 of 5 items, f = (v·z - t)^2."""
import jax.numpy as jnp
import numpy as np

import surco
from surco.solvers import LinearSpec

SPEC = LinearSpec((5,), A_eq=np.ones((1, 5)), b_eq=[2], lb=0, ub=1, integer=True)


def generate(count, seed=0):
    r = np.random.default_rng(seed)
    return [{"v": jnp.asarray(r.uniform(0, 1, 5), jnp.float32), "t": jnp.float32(0.7)}
            for _ in range(count)]


PROBLEM = surco.Problem("pick-two", SPEC, lambda z, y: (y["v"] @ z - y["t"]) ** 2,
                        features=lambda y: y["v"][:, None])
FAMILY = surco.family_for(PROBLEM, generate)
'''


def test_the_project_families_are_found():
    assert set(surco.problems.FAMILIES) >= {"assignment", "sharding", "routing", "portfolio",
                                           "photonics"}
    assert surco.problems.discover_families() == surco.problems.FAMILIES


def test_a_dropped_in_family_is_discovered_and_runs(tmp_path, monkeypatch):
    (tmp_path / "pick_two").mkdir()
    (tmp_path / "pick_two" / "__init__.py").write_text(textwrap.dedent(_FAMILY_PKG))
    (tmp_path / "helpers").mkdir()                       # a package without FAMILY
    (tmp_path / "helpers" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "_private").mkdir()
    (tmp_path / "_private" / "__init__.py").write_text("FAMILY = None\n")
    monkeypatch.setattr(surco.problems, "__path__", [*surco.problems.__path__, str(tmp_path)])
    try:
        names = surco.problems.discover_families()
        assert "pick_two" in names and "helpers" not in names and "_private" not in names
        assert set(names) - {"pick_two"} == set(surco.problems.FAMILIES)
        fam = importlib.import_module("surco.problems.pick_two").FAMILY
        assert isinstance(fam, surco.Family)
        ys = fam.generate(1, seed=0)
        cmp = surco.compare(fam, ys, list(fam.baselines), progress=False,
                            budget=Budget(seconds=20.0, evaluations=30))
        best = min(float((ys[0]["v"] @ z - 0.7) ** 2) for z in np.eye(5)[[
            [i, j] for i in range(5) for j in range(i + 1, 5)]].sum(1))
        for r in cmp.runs:
            assert r.ok and r.evaluations <= 30, (r.method, r.error)
            assert r.value >= best - 1e-6
        assert abs(cmp.run("scip", 0).value - best) <= 1e-5
    finally:
        sys.modules.pop("surco.problems.pick_two", None)
