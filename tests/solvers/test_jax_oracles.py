"""JAX-native oracles are exact: they equal Dijkstra, the LP/MILP backends on their `spec`,
and brute-force enumeration, with the documented tie-breaking and failure statuses."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from surco.solvers import ShortestPathOracle, Status, make_solver
from surco.solvers.jax_oracles import OneHot, ShortestPath, TopK, as_jax_oracle
from solvers_fixtures import grid_edges


def _random_digraph(n, p, rng):
    """Random directed graph with cycles (both directions allowed, no self-loops), plus the
    chain 0 -> 1 -> ... -> n-1 so that the sink is reachable."""
    e = {(i, j) for i in range(n) for j in range(n) if i != j and rng.random() < p}
    e |= {(i, i + 1) for i in range(n - 1)}
    return np.array(sorted(e))


def _bigrid(n):
    """The n×n grid with one edge each way between neighbours (cycles everywhere)."""
    e = grid_edges(n, n)
    return np.concatenate([e, e[:, ::-1]])


def _dijkstra_dist(orc: ShortestPath, c):
    g = sp.csr_matrix((np.asarray(c, np.float64), (orc.edges[:, 0], orc.edges[:, 1])),
                      shape=(orc.num_nodes, orc.num_nodes))
    return dijkstra(g, indices=orc.source)[orc.sink]


def _enumerate_flow(orc: ShortestPath) -> np.ndarray:
    """Every 0/1 point of the s–t flow polytope (brute force, E <= 14)."""
    E = orc.n
    pts = np.array(list(itertools.product((0.0, 1.0), repeat=E)))
    spec = orc.spec
    A, b = spec.A_eq.toarray(), spec.b_eq
    return pts[np.all(np.abs(pts @ A.T - b) < 1e-9, axis=1)]


# Costs per batched solve in the Dijkstra test. An oracle's batched solve is compiled once per
# (oracle, batch size) and equal oracles share it, so the other tests on the 4×4 grid solve
# batches of this size too, and reuse that program instead of compiling their own.
BATCH = 40

GRAPHS = {
    "grid4": lambda rng: ShortestPath(16, grid_edges(4, 4), 0, 15),
    "bigrid4": lambda rng: ShortestPath(16, _bigrid(4), 0, 15),
    "digraph10": lambda rng: ShortestPath(10, _random_digraph(10, 0.35, rng), 0, 9),
}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_shortest_path_equals_dijkstra_on_positive_costs(graph):
    rng = np.random.default_rng(1)
    orc = GRAPHS[graph](rng)
    host = orc.host_oracle()
    C = rng.uniform(0.01, 1.0, (BATCH, orc.n)).astype(np.float32)
    X, status = orc.solve_with_status(C)
    assert status.shape == (BATCH,)
    for c, x, st in zip(C, np.asarray(X), np.asarray(status)):
        sol = host.solve(c)
        assert st == Status.OPTIMAL
        np.testing.assert_array_equal(x, sol.x)
        assert float(c.astype(np.float64) @ x) == pytest.approx(sol.objective, rel=1e-6)
        assert float(c.astype(np.float64) @ x) == pytest.approx(_dijkstra_dist(orc, c), rel=1e-6)


def test_shortest_path_equals_lp_backends_for_costs_of_any_sign():
    # negative costs: the optimum of the flow polytope is a path plus negative cycles
    rng = np.random.default_rng(2)
    for orc in (ShortestPath(16, _bigrid(4), 0, 15),
                ShortestPath(9, _random_digraph(9, 0.4, rng), 0, 8)):
        C = rng.normal(0.3, 1.0, (40, orc.n)).astype(np.float32)
        X, status = orc.solve_with_status(C)
        for backend in ("glop", "highs"):
            solver = make_solver(orc.spec, backend=backend)
            for c, x, st in zip(C, np.asarray(X), np.asarray(status)):
                ref = solver.solve(c.astype(np.float64), check=False)
                if ref.status == Status.INFEASIBLE:
                    assert st == Status.INFEASIBLE
                    continue
                assert st == Status.OPTIMAL and (c < 0).any()
                np.testing.assert_array_equal(x, ref.x)
                assert orc.spec.contains(x)


def test_shortest_path_equals_brute_force_with_ties_and_negative_cycles():
    # 5 nodes, 12 edges (enumerable), integer costs in {-2..3}: ties and negative cycles
    edges = np.array([(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1), (1, 3), (3, 1),
                      (2, 3), (3, 4), (4, 3), (2, 4)])
    orc = ShortestPath(5, edges, 0, 4)
    pts = _enumerate_flow(orc)
    rng = np.random.default_rng(3)
    C = rng.integers(-2, 4, (60, orc.n)).astype(np.float32)
    X = np.asarray(orc.solve(C))
    for c, x in zip(C, X):
        best = (pts @ c).min()
        assert c @ x == best                             # exact: integer costs
        assert any(np.array_equal(x, p) for p in pts)    # a 0/1 point of Ω


def test_tie_breaking_fewest_edges_then_smallest_edge_index():
    # two 2-edge paths 0->2->3 (edges 1, 2) and 0->1->3 (edges 0, 3) of equal cost: the sink's
    # predecessor is the tight in-edge of smallest index (edge 2), so 0->2->3 is chosen
    orc = ShortestPath(4, [(0, 1), (0, 2), (2, 3), (1, 3)], 0, 3)
    np.testing.assert_array_equal(orc.solve(jnp.ones(4)), [0, 1, 1, 0])
    # a direct edge of the same cost as a 2-edge path: fewest edges wins
    orc = ShortestPath(3, [(0, 1), (1, 2), (0, 2)], 0, 2)
    np.testing.assert_array_equal(orc.solve(jnp.array([1.0, 1.0, 2.0])), [0, 0, 1])
    # zero-cost cycle next to the path: a simple path (the cycle is not added)
    orc = ShortestPath(4, [(0, 1), (1, 2), (2, 1), (1, 3)], 0, 3)
    np.testing.assert_array_equal(orc.solve(jnp.array([1.0, 0.0, 0.0, 1.0])), [1, 0, 0, 1])
    # all-equal costs on a grid: a shortest path with the fewest edges (2(n-1) = 6)
    grid = ShortestPath(16, grid_edges(4, 4), 0, 15)
    x = np.asarray(grid.solve(jnp.ones(grid.n)))
    assert x.sum() == 6 and grid.spec.contains(x)
    np.testing.assert_array_equal(grid.solve(jnp.ones((BATCH, grid.n))), np.stack([x] * BATCH))


def test_unreachable_sink_and_nonfinite_cost_are_statuses():
    orc = ShortestPath(4, [(0, 1), (1, 0), (2, 3)], 0, 3)       # 3 unreachable from 0
    C = jnp.array([[1.0, 1.0, 1.0], [-1.0, -1.0, 2.0]])
    x, status = orc.solve_with_status(C)
    np.testing.assert_array_equal(status, [Status.INFEASIBLE, Status.INFEASIBLE])
    assert np.all(np.isnan(x))
    ok = ShortestPath(3, [(0, 1), (1, 2)], 0, 2)
    x, status = ok.solve_with_status(jnp.array([[1.0, 2.0], [jnp.nan, 1.0], [1.0, jnp.inf]]))
    np.testing.assert_array_equal(status, [Status.OPTIMAL, Status.ERROR, Status.ERROR])
    np.testing.assert_array_equal(x[0], [1.0, 1.0])
    assert np.all(np.isnan(x[1:]))


def test_jit_vmap_and_leading_dims_agree():
    orc = ShortestPath(16, grid_edges(4, 4), 0, 15)
    # leading dims (2, BATCH // 2): the flattened batch has the Dijkstra test's size
    C = jnp.asarray(np.random.default_rng(4).normal(0.5, 1.0, (2, BATCH // 2, orc.n)),
                    jnp.float32)
    X = orc.solve(C)
    assert X.shape == C.shape and X.dtype == C.dtype
    np.testing.assert_array_equal(jax.jit(orc.solve)(C), X)
    np.testing.assert_array_equal(jax.vmap(jax.vmap(orc.solve))(C), X)
    np.testing.assert_array_equal(orc.solve(C[1, 2]), X[1, 2])
    X64 = orc.solve(np.asarray(C, np.float64))    # numpy input, float64 (float32 under x32)
    np.testing.assert_array_equal(X64, X)


def test_one_hot_and_top_k_equal_brute_force_and_milp():
    rng = np.random.default_rng(5)
    oh, tk = OneHot(3, 4), TopK(6, 3)
    for orc in (oh, tk):
        solver = make_solver(orc.spec, backend="highs")
        pts = np.array([p for p in itertools.product((0.0, 1.0), repeat=orc.n)
                        if orc.spec.contains(np.reshape(p, orc.shape))]).reshape(-1, *orc.shape)
        C = rng.normal(size=(20, *orc.shape)).astype(np.float32)
        X = np.asarray(orc.solve(C))
        for c, x in zip(C, X):
            axes = tuple(range(1, pts.ndim))
            best = (pts * c).sum(axis=axes).min()
            assert (x * c).sum() == pytest.approx(best, abs=1e-6)
            np.testing.assert_array_equal(x, solver.solve(c.astype(np.float64)).x)


def test_one_hot_and_top_k_tie_breaking_and_edges():
    np.testing.assert_array_equal(OneHot(2, 3).solve(jnp.array([[1.0, 0.0, 0.0], [2.0, 2.0, 2.0]])),
                                  [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(TopK(5, 2).solve(jnp.array([1.0, 0.0, 1.0, 0.0, 0.0])),
                                  [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(TopK(3, 0).solve(jnp.array([1.0, 2.0, 3.0])), [0, 0, 0])
    np.testing.assert_array_equal(TopK(3, 3).solve(jnp.array([1.0, 2.0, 3.0])), [1, 1, 1])
    x, st = TopK(3, 1).solve_with_status(jnp.array([1.0, jnp.nan, 3.0]))
    assert int(st) == Status.ERROR and np.all(np.isnan(x))


def test_bad_input_names_the_argument():
    orc = ShortestPath(3, [(0, 1), (1, 2)], 0, 2)
    with pytest.raises(ValueError,
                       match=r"shortest_path: cost c has shape \(3,\), expected \(2,\)"):
        orc.solve(jnp.ones(3))
    with pytest.raises(ValueError, match="floating-point"):
        orc.solve(jnp.ones(2, jnp.int32))
    with pytest.raises(ValueError, match="source and sink are the same node"):
        ShortestPath(3, [(0, 1), (1, 2)], 1, 1)
    with pytest.raises(ValueError, match="parallel edges"):
        ShortestPath(3, [(0, 1), (0, 1)], 0, 1)
    with pytest.raises(ValueError, match=r"top_k: k must be an int in \[0, n=3\], got 4"):
        TopK(3, 4)
    with pytest.raises(ValueError, match="one_hot: n_cols must be an int >= 1, got 0"):
        OneHot(2, 0)


def test_equality_hash_and_conversion():
    host = ShortestPathOracle(16, grid_edges(4, 4), 0, 15)
    a, b = as_jax_oracle(host), ShortestPath(16, grid_edges(4, 4), 0, 15)
    assert isinstance(a, ShortestPath) and a == b and hash(a) == hash(b)
    assert a != ShortestPath(16, grid_edges(4, 4), 0, 14)
    assert as_jax_oracle(a) is a and as_jax_oracle(host.spec) is None
    assert TopK(4, 2) == TopK(4, 2) != TopK(4, 1) and OneHot(2, 3) != TopK(6, 3)
    np.testing.assert_array_equal(a.host_oracle().edges, host.edges)
