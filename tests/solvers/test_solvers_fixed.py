"""`Solver.fixed`: solves with some variables fixed, on the incremental model, and the model's
bounds restored afterwards (checked against brute-force enumeration and fresh models)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from surco.solvers import make_solver

from solvers_fixtures import ASSIGNMENT, KNAPSACK, MIP_BACKENDS


def _points(spec):
    """Every binary point of a small spec (brute force)."""
    pts = [np.array(p, float) for p in itertools.product((0.0, 1.0), repeat=spec.n)]
    return np.stack([p for p in pts if spec.violation(p) <= 1e-9])


@pytest.mark.parametrize("backend", MIP_BACKENDS)
@pytest.mark.parametrize("fx", [KNAPSACK, ASSIGNMENT], ids=lambda f: f.name)
def test_fixed_matches_brute_force_and_restores(backend, fx):
    spec = fx.spec
    pts = _points(spec)
    rng = np.random.default_rng(0)
    solver = make_solver(spec, backend=backend)
    for trial in range(4):
        c = rng.normal(size=spec.n)
        ref = pts[rng.integers(len(pts))]              # a feasible point: the fixed set is not empty
        mask = rng.random(spec.n) < 0.5
        with solver.fixed(mask.reshape(spec.shape), ref.reshape(spec.shape)) as s:
            assert s is solver
            sol = solver.solve(c.reshape(spec.shape))
        x = sol.x.reshape(-1)
        np.testing.assert_allclose(x[mask], ref[mask], atol=1e-6)   # exactly the fixed ones
        inside = pts[np.all(pts[:, mask] == ref[mask], axis=1)]
        assert sol.objective == pytest.approx(float(np.min(inside @ c)), abs=1e-6)
        # afterwards: the next full solve equals a fresh model's, for a new cost
        c2 = rng.normal(size=spec.n)
        after = solver.solve(c2.reshape(spec.shape))
        fresh = make_solver(spec, backend=backend).solve(c2.reshape(spec.shape))
        assert after.objective == pytest.approx(fresh.objective, abs=1e-6)
        assert after.objective == pytest.approx(float(np.min(pts @ c2)), abs=1e-6)


@pytest.mark.parametrize("backend", ["scip", "highs", "pyscipopt"])
def test_fixed_restores_after_an_exception(backend):
    spec = KNAPSACK.spec
    solver = make_solver(spec, backend=backend)
    with pytest.raises(KeyError):
        with solver.fixed(np.ones(6, bool), np.zeros(6)):
            assert solver.solve(KNAPSACK.c).objective == 0.0
            raise KeyError("boom")
    assert solver.solve(KNAPSACK.c).objective == pytest.approx(KNAPSACK.opt)
    np.testing.assert_allclose(solver.solve(KNAPSACK.c).x, KNAPSACK.x_opt)


def test_fixed_relaxation_accepts_fractional_values():
    spec = KNAPSACK.spec
    solver = make_solver(spec, backend="highs", relax=True)
    mask = np.array([False, True, False, False, False, False])
    with solver.fixed(mask, np.full(6, 0.25)):
        x = solver.solve(KNAPSACK.c).x
    assert x[1] == pytest.approx(0.25)
    assert solver.solve(KNAPSACK.c).objective == pytest.approx(KNAPSACK.lp_opt)


def test_fixed_rejects_bad_input():
    solver = make_solver(KNAPSACK.spec, backend="highs")
    with pytest.raises(ValueError, match=r"fixed: mask must be a bool array of shape \(6,\)"):
        with solver.fixed(np.ones(6), np.zeros(6)):
            pass
    with pytest.raises(ValueError, match=r"fixed: values must have shape \(6,\)"):
        with solver.fixed(np.ones(6, bool), np.zeros(5)):
            pass
    with pytest.raises(ValueError, match=r"value 0.5 at flat index 2 is not integral"):
        with solver.fixed(np.eye(6, dtype=bool)[2], np.full(6, 0.5)):
            pass
    with pytest.raises(ValueError, match=r"value 2.0 at flat index 0 is outside Ω's bounds"):
        with solver.fixed(np.eye(6, dtype=bool)[0], np.full(6, 2.0)):
            pass
    with pytest.raises(RuntimeError, match="cannot be nested"):
        with solver.fixed(np.zeros(6, bool), np.zeros(6)):
            with solver.fixed(np.zeros(6, bool), np.zeros(6)):
                pass
    assert solver.solve(KNAPSACK.c).objective == pytest.approx(KNAPSACK.opt)


def test_fixed_needs_a_linear_spec():
    from surco.solvers.oracles import ShortestPathOracle
    o = ShortestPathOracle(3, [[0, 1], [1, 2]], 0, 2)
    with pytest.raises(TypeError, match=r"ShortestPathOracle cannot change variable bounds"):
        with o.fixed(np.zeros(2, bool), np.zeros(2)):
            pass
