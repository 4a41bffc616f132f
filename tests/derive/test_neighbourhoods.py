"""Neighbourhoods read off Ω's rows (`surco.derive.neighbourhood_for`): which one each kind
of Ω gets, and that each one's neighbour set is exactly the enumerated set it promises."""
import dataclasses
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.derive import SolverRepair, UnitExchange, classify_rows, neighbourhood_for
from surco.search import Cardinality, RowChoice, local_search
from surco.solvers import LinearSpec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cases import (assignment_spec, cardinality_spec, enumerate_spec, integer_spec,  # noqa: E402
                    knapsack_spec)


def _problem(spec, f=None):
    return surco.Problem("p", spec, f or (lambda x, y: jnp.sum(x * y["c"]) ** 2),
                         relax=not spec.integer.any())


def _flow_spec() -> LinearSpec:
    """s–t paths of the 3×3 grid as a binary flow polytope."""
    from surco.problems.routing import oracle
    return dataclasses.replace(oracle(3).spec, integer=True)


def test_classify_rows():
    w = np.array([[0.5, 0.7], [0.4, 0.9], [0.6, 0.3]])
    k = classify_rows(assignment_spec(3, 2, w, np.array([1.0, 1.5])))
    assert (k.choice, k.capacity, k.other_ub, k.binary) == ((0, 1, 2), (0, 1), (), True)
    k = classify_rows(cardinality_spec(5, 2))
    assert k.cardinality_eq == (0,) and not k.choice
    k = classify_rows(knapsack_spec(np.array([0.3, 0.5, 0.9]), 1.0))
    assert k.capacity == (0,) and k.binary
    k = classify_rows(_flow_spec())
    assert len(k.other_eq) == 9 and k.binary
    k = classify_rows(integer_spec(3, 3, 5))
    assert k.integer and not k.binary and k.capacity == (0,)
    assert "mixed" in classify_rows(dataclasses.replace(integer_spec(3, 3, 5),
                                                        integer=False)).describe()


@pytest.mark.parametrize("spec, kind", [
    (assignment_spec(4, 3), RowChoice),
    (cardinality_spec(6, 2), Cardinality),
    (dataclasses.replace(cardinality_spec(6, 2), shape=(2, 3)), Cardinality),
    (knapsack_spec(np.array([0.3, 0.5, 0.9, 0.4]), 1.0), UnitExchange),
    (integer_spec(3, 3, 5), UnitExchange),
    (dataclasses.replace(integer_spec(3, 3, 5), integer=False), SolverRepair),
])
def test_which_neighbourhood(spec, kind):
    x0 = enumerate_spec(spec)[0] if spec.integer.all() else np.zeros(spec.shape)
    nb, why = neighbourhood_for(_problem(spec), {"c": jnp.ones(spec.shape)}, x0)
    inner = getattr(nb, "inner", nb)
    assert isinstance(inner, kind), why
    assert nb.shape == spec.shape
    X = nb.neighbours(x0)
    assert len(X) and all(spec.contains(x) for x in X)


def test_flow_rows_fall_back_to_the_solver_repair():
    spec = _flow_spec()
    from surco.problems.routing import oracle
    x0 = oracle(3).solve(np.ones(spec.n)).x
    c = jnp.asarray(np.random.default_rng(0).normal(size=spec.n), jnp.float32)
    nb, why = neighbourhood_for(_problem(spec, lambda x, y: jnp.sum(x * y["c"])), {"c": c}, x0)
    assert isinstance(nb, SolverRepair) and "no unit move" in why
    X = nb.neighbours(x0)
    assert len(X) >= 1
    for x in X:
        assert spec.contains(x) and not np.array_equal(x, x0)
        assert np.sum(x != x0) <= spec.n   # a path again (the spec holds)


def _unit_distance(P, x):
    """Points of P reached by lowering at most one entry by 1 and raising at most one."""
    D = (P - x).reshape(len(P), -1)
    ok = (np.sum(D == -1, 1) <= 1) & (np.sum(D == 1, 1) <= 1) & (np.sum(D != 0, 1) >= 1)
    ok &= np.all(np.isin(D, (-1, 0, 1)), 1)
    return {p.tobytes() for p in P[ok]}


@pytest.mark.parametrize("spec", [knapsack_spec(np.array([0.3, 0.5, 0.9, 0.4, 0.2]), 1.1),
                                  integer_spec(3, 2, 4), cardinality_spec(5, 2)])
def test_unit_exchange_is_exactly_the_unit_moves(spec):
    nb = UnitExchange(spec)
    P = enumerate_spec(spec)
    rng = np.random.default_rng(0)
    for x in P[rng.choice(len(P), min(6, len(P)), replace=False)]:
        got = {z.tobytes() for z in nb.neighbours(x)}
        assert got == _unit_distance(P, x)
        s = nb.start(x)
        for _ in range(5):
            mv = nb.random_move(s, rng)
            z = nb.apply(s, mv[None])[0]
            assert z.tobytes() in got
        nb.commit(s, mv)
        assert np.array_equal(nb.point(s), z)
        np.testing.assert_allclose(s.ub, spec.A_ub @ z)


def test_unit_exchange_local_search_ends_at_a_local_optimum():
    spec = knapsack_spec(np.array([0.3, 0.5, 0.9, 0.4, 0.2, 0.6]), 1.3)
    v = np.array([2.0, 1.0, 3.0, 1.5, 0.5, 2.5])

    def f(x):
        return -float(np.sqrt(v @ x)) + 0.3 * float(np.max(x * v))
    nb = UnitExchange(spec)
    res = local_search(np.zeros(6), Budget().start(f), nb)
    assert res.local_optimum
    assert all(f(z) >= res.value - 1e-12 for z in nb.neighbours(res.x))


def test_solver_repair_with_everything_free_is_the_linear_optimum():
    """free = 1: the repair is argmin ∇f·x over Ω; for f = (c·x)², ∇f = 2(c·x)c."""
    spec = knapsack_spec(np.array([0.3, 0.5, 0.9, 0.4]), 1.0)
    c = np.array([1.0, -2.0, -3.0, 0.5])
    from surco.derive import gradient_cost
    from surco.solvers import make_solver
    prob = _problem(spec)
    y = {"c": jnp.asarray(c, jnp.float32)}
    x0 = np.array([0.0, 1.0, 0.0, 0.0])
    nb = SolverRepair(spec, make_solver(spec, backend="highs"), gradient_cost(prob, y),
                      free=1.0, candidates=1)
    X = nb.neighbours(x0)
    g = 2 * (c @ x0) * c
    P = enumerate_spec(spec)
    assert len(X) == 1 and np.isclose(g @ X[0], np.min(P @ g))


def test_solver_repair_frees_at_most_k_entries():
    spec = assignment_spec(6, 3)
    from surco.derive import gradient_cost
    from surco.solvers import make_solver
    prob = _problem(spec)
    y = {"c": jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)), jnp.float32)}
    x0 = np.eye(3)[[0, 1, 2, 2, 1, 0]]
    nb = SolverRepair(spec, make_solver(spec, backend="highs"), gradient_cost(prob, y),
                      free=0.3, candidates=6, seed=2)
    X = nb.neighbours(x0)
    assert len(X) >= 1
    for x in X:
        assert spec.contains(x) and 0 < np.sum(x != x0) <= nb.k
    with pytest.raises(ValueError, match="free"):
        SolverRepair(spec, make_solver(spec, backend="highs"), gradient_cost(prob, y), free=0)
