"""Oracles keep the solver contract and agree with the MILP/LP backends on their problems."""
import dataclasses
import itertools

import numpy as np
import pytest

from surco.solvers import (AssignmentOracle, InfeasibleError, ShortestPathOracle, Status,
                           make_solver)
from solvers_fixtures import SHORTEST_PATH, SP_EDGES, grid_edges, tol


def _random_dag(n, p, rng):
    """Random DAG on n nodes (edges i -> j for i < j with probability p) plus a 0 -> n-1 chain
    so that the sink is reachable."""
    e = {(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p}
    e |= {(i, i + 1) for i in range(n - 1)}
    return np.array(sorted(e))


def test_shortest_path_fixture():
    orc = ShortestPathOracle(6, SP_EDGES, 0, 5)
    sol = orc.solve(SHORTEST_PATH.c)
    assert sol.status == Status.OPTIMAL and sol.objective == 9.0
    np.testing.assert_array_equal(sol.x, SHORTEST_PATH.x_opt)
    assert orc.spec.contains(sol.x)
    assert sol.stats["wall_time"] >= sol.stats["solve_time"] >= 0


@pytest.mark.parametrize("backend", ["highs", "scip", "glop", "pdlp", "pyscipopt", "cpsat"])
def test_shortest_path_oracle_agrees_with_backends(backend):
    rng = np.random.default_rng(0)
    graphs = [ShortestPathOracle(16, grid_edges(4, 4), 0, 15),
              ShortestPathOracle(12, _random_dag(12, 0.3, rng), 0, 11)]
    for orc in graphs:
        spec = orc.spec
        if backend == "cpsat":  # the flow polytope is integral: same optimum with x integer
            spec = dataclasses.replace(spec, integer=True)
        solver = make_solver(spec, backend=backend)
        for _ in range(5):
            c = rng.uniform(0.0, 1.0, orc.n).round(3)  # rounding may create ties: compare values
            o, m = orc.solve(c), solver.solve(c)
            np.testing.assert_allclose(m.objective, o.objective, **tol(backend))
            assert spec.contains(o.x) and o.objective == pytest.approx(c @ o.x)
            assert set(np.unique(o.x)) <= {0.0, 1.0}


@pytest.mark.parametrize("n, m", [(4, 4), (3, 5), (5, 3)])
@pytest.mark.parametrize("backend", ["highs", "scip", "cpsat", "pyscipopt"])
def test_assignment_oracle_agrees_with_backends(n, m, backend):
    rng = np.random.default_rng(n * 10 + m)
    orc = AssignmentOracle(n, m)
    spec = orc.spec
    solver = make_solver(spec, backend=backend)
    for _ in range(5):
        c = rng.normal(size=(n, m))
        o, s = orc.solve(c), solver.solve(c)
        assert o.x.shape == (n, m) and o.status == Status.OPTIMAL
        assert spec.contains(o.x) and o.objective == pytest.approx(np.sum(c * o.x))
        np.testing.assert_allclose(s.objective, o.objective, rtol=1e-9, atol=1e-7)
        np.testing.assert_allclose(s.x, o.x)  # continuous random costs: unique optimum


def test_assignment_oracle_brute_force():
    rng = np.random.default_rng(7)
    orc = AssignmentOracle(3, 4)
    for _ in range(5):
        c = rng.normal(size=(3, 4))
        best = min(sum(c[i, p[i]] for i in range(3)) for p in itertools.permutations(range(4), 3))
        assert orc.solve(c).objective == pytest.approx(best)


def test_oracle_errors():
    orc = ShortestPathOracle(4, [[0, 1], [1, 2], [2, 3]], 0, 3)
    with pytest.raises(ValueError, match="nonnegative"):
        orc.solve(np.array([1.0, -0.5, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        orc.solve(np.ones(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        orc.solve(np.array([1.0, np.nan, 1.0]))
    cut = ShortestPathOracle(4, [[0, 1], [2, 3]], 0, 3)
    with pytest.raises(InfeasibleError, match="unreachable"):
        cut.solve(np.ones(2))
    assert cut.solve(np.ones(2), check=False).status == Status.INFEASIBLE
    for bad, match in [(dict(edges=[[0, 0]]), "self-loop"), (dict(edges=[[0, 1], [0, 1]]), "parallel"),
                       (dict(edges=[[0, 9]]), "endpoints"), (dict(sink=7), "sink"),
                       (dict(sink=0), "same node"), (dict(edges=np.zeros((0, 2))), "non-empty")]:
        kw = dict(num_nodes=4, edges=[[0, 1], [1, 3]], source=0, sink=3) | bad
        with pytest.raises(ValueError, match=match):
            ShortestPathOracle(**kw)
    with pytest.raises(ValueError, match="n_rows"):
        AssignmentOracle(0, 3)


def test_zero_cost_edges_are_edges():
    """A zero-cost edge is still an edge (scipy's csgraph drops explicit zeros if pruned)."""
    orc = ShortestPathOracle(3, [[0, 1], [1, 2], [0, 2]], 0, 2)
    sol = orc.solve(np.array([0.0, 0.0, 1.0]))
    assert sol.objective == 0.0 and sol.x.tolist() == [1.0, 1.0, 0.0]
