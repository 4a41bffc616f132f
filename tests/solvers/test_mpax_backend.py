"""The MPAX backend (PDHG in JAX): LP optima of small fixtures with known answers, shortest
paths against Dijkstra, a vmapped batch against one-by-one solves, the vertex polish and the
exactness report against HiGHS, the estimators through the JAX oracle without a host
callback, failure statuses and argument errors.

mpax is in the ``dev`` extra: without it these tests fail with the install hint (each new
LP or batch size compiles for several seconds, so solvers are shared per module).
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surco.estimators import get_estimator
from surco.solvers import (InfeasibleError, LinearSpec, ShortestPathOracle, Status,
                           UnboundedError, make_solver)
from surco.solvers.mpax_backend import (MpaxLP, MpaxSolver, exactness, mpax_module, polish)
from solvers_fixtures import (ASSIGNMENT, BOUNDED_INT, SHORTEST_PATH, UNBOUNDED_LP,
                               grid_edges)

mpax_module()   # fails (with the pip command) when the dev extra is not installed

PDHG_TOL = dict(atol=1e-3, rtol=1e-4)   # PDHG at eps 1e-4 in float32


@pytest.fixture(scope="module")
def assignment():
    return make_solver(ASSIGNMENT.spec, "mpax", relax=True)


@pytest.fixture(scope="module")
def bounded():
    return make_solver(BOUNDED_INT.spec, "mpax", relax=True)


@pytest.fixture(scope="module")
def grid():
    """The 5 x 5 grid's s–t flow LP (40 edges, node 0 to node 24), its Dijkstra oracle, and
    16 random positive costs (continuous: the shortest path is unique almost surely)."""
    oracle = ShortestPathOracle(25, grid_edges(5, 5), 0, 24)
    C = np.random.default_rng(3).uniform(0.1, 1.0, (16, oracle.n))
    return make_solver(oracle.spec, "mpax"), oracle, C


@pytest.fixture(scope="module")
def grid_batch(grid):
    solver, _, C = grid
    return solver.solve_batch(C)


def test_assignment_lp_optimum_and_vertex(assignment):
    sol = assignment.solve(ASSIGNMENT.c)
    assert sol.status == Status.OPTIMAL
    np.testing.assert_allclose(sol.objective, ASSIGNMENT.lp_opt, **PDHG_TOL)    # 5
    np.testing.assert_allclose(sol.x, ASSIGNMENT.lp_x, atol=1e-3)
    assert sol.stats["iterations"] > 0
    v = polish(assignment, ASSIGNMENT.c, sol.x)
    np.testing.assert_array_equal(v.x, ASSIGNMENT.lp_x)                         # exact vertex
    assert v.objective == 5.0 and not v.fallback and v.n_fixed == 9


def test_bounded_lp_optimum_and_vertex(bounded):
    # LP relaxation of BOUNDED_INT: x in [-2, 4]^3, 3 rows; optimum -14.2 (HiGHS's vertex)
    sol = bounded.solve(BOUNDED_INT.c)
    np.testing.assert_allclose(sol.objective, BOUNDED_INT.lp_opt, **PDHG_TOL)
    exact = make_solver(BOUNDED_INT.spec, "highs", relax=True).solve(BOUNDED_INT.c)
    np.testing.assert_allclose(sol.x, exact.x, atol=1e-3)
    v = polish(bounded, BOUNDED_INT.c, sol.x)
    np.testing.assert_allclose(v.x, exact.x, atol=1e-9)
    np.testing.assert_allclose(v.objective, -14.2, rtol=1e-12)
    assert BOUNDED_INT.spec.relaxed().violation(v.x) <= 1e-9


def test_sparse_constraint_matrix():
    # the 6-node DAG flow LP, matrix handed to MPAX as a BCOO (as for large LPs): unique
    # shortest path 0-1-2-4-3-5 of cost 9
    solver = make_solver(SHORTEST_PATH.spec, "mpax", sparse=True)
    assert solver.oracle.sparse
    sol = solver.solve(SHORTEST_PATH.c)
    np.testing.assert_allclose(sol.objective, 9.0, **PDHG_TOL)
    np.testing.assert_allclose(sol.x, SHORTEST_PATH.lp_x, atol=1e-3)
    np.testing.assert_array_equal(polish(solver, SHORTEST_PATH.c, sol.x).x, SHORTEST_PATH.lp_x)


def test_fixed_bounds_infeasible_then_restored(bounded):
    # fixing x = (4, 4, 4) breaks 2x0 + 3x1 + x2 <= 5: PDHG's infeasibility certificate;
    # the bounds are arguments of the compiled program, so nothing recompiles
    with bounded.fixed(np.ones(3, bool), np.full(3, 4.0)):
        failed = bounded.solve(BOUNDED_INT.c, check=False)
        with pytest.raises(InfeasibleError, match="certificate of primal infeasibility"):
            bounded.solve(BOUNDED_INT.c)
    assert failed.status == Status.INFEASIBLE and np.isnan(failed.x).all()
    with bounded.fixed(np.array([True, False, False]), np.array([1.0, 0, 0])):
        x = bounded.solve(BOUNDED_INT.c).x
    assert abs(x[0] - 1.0) <= 1e-6
    np.testing.assert_allclose(bounded.solve(BOUNDED_INT.c).objective, -14.2, **PDHG_TOL)


def test_shortest_path_equals_dijkstra(grid, grid_batch):
    _, oracle, C = grid
    dij = [oracle.solve(c) for c in C]
    assert all(s.status == Status.OPTIMAL for s in grid_batch)
    np.testing.assert_allclose([s.objective for s in grid_batch],
                               [d.objective for d in dij], **PDHG_TOL)
    spec = oracle.spec
    for c, s, d in zip(C, grid_batch, dij):
        np.testing.assert_array_equal(polish(spec, c, s.x).x, d.x)   # the same path, exactly


def test_vmapped_batch_equals_per_instance_solves(grid, grid_batch):
    """The same solutions, to PDHG's tolerance: XLA vectorises a batch and a single
    instance differently (sums in another order, depending on the CPU and its threads), so
    the float32 iterates, and where the stopping test lands, may differ slightly."""
    solver, _, C = grid
    for c, b in zip(C[:4], grid_batch[:4]):
        one = solver.solve(c)
        np.testing.assert_allclose(one.x, b.x, **PDHG_TOL)
        np.testing.assert_allclose(one.objective, b.objective, **PDHG_TOL)
    pair = solver.solve_batch(C[2:4])
    np.testing.assert_allclose(np.stack([s.x for s in pair]),
                               np.stack([s.x for s in grid_batch[2:4]]), **PDHG_TOL)


def test_exactness_report_against_highs(grid):
    solver, oracle, C = grid
    rep = exactness(solver, C)
    dij = np.array([oracle.solve(c).objective for c in C])
    np.testing.assert_allclose(rep.optimum, dij, rtol=1e-9)
    assert rep.max_polished_gap <= 1e-9 and not rep.fallback.any()
    assert rep.max_rel_gap <= 1e-3 and rep.max_violation <= 1e-3
    assert (rep.status == Status.OPTIMAL).all()
    np.testing.assert_allclose(rep.gap, [s.objective for s in solver.solve_batch(C)] - dij,
                               atol=1e-9)


def _blackbox_loss(solver):
    est = get_estimator("blackbox", lam=2.0)
    return lambda c: jnp.sum((est(solver, c) - jnp.eye(3)) ** 2)


def test_estimator_through_oracle_without_callback(assignment):
    """The JAX oracle goes into an estimator as `jax_oracles` do: no host callback in the
    traced forward and backward pass, and the same x as through HiGHS (the gradient is
    compared in the slow sibling below, which compiles the whole program)."""
    oracle = assignment.oracle
    assert isinstance(oracle, MpaxLP)
    c = jnp.asarray(ASSIGNMENT.c, jnp.float32)
    assert "callback" not in str(jax.make_jaxpr(jax.value_and_grad(_blackbox_loss(oracle)))(c))
    est = get_estimator("blackbox", lam=2.0)
    x = est(oracle, c)
    np.testing.assert_allclose(x, est(make_solver(ASSIGNMENT.spec, "highs", relax=True), c),
                               atol=1e-3)
    x2, status = oracle.solve_with_status(c)
    assert int(status) == Status.OPTIMAL
    np.testing.assert_array_equal(x2, x)


@pytest.mark.slow
def test_estimator_through_oracle_jitted(assignment):
    """Slow sibling (compiles the whole program, ~35 s on 2 cores): under jit, the same loss
    and blackbox gradient as through HiGHS."""
    c = jnp.asarray(ASSIGNMENT.c, jnp.float32)
    vg = jax.value_and_grad(_blackbox_loss(assignment.oracle))
    v, g = jax.jit(vg)(c)
    v_ref, g_ref = jax.value_and_grad(
        _blackbox_loss(make_solver(ASSIGNMENT.spec, "highs", relax=True)))(c)
    np.testing.assert_allclose(v, v_ref, atol=1e-4)          # 4: x is two swaps from eye
    np.testing.assert_allclose(g, g_ref, atol=1e-4)
    assert np.abs(np.asarray(g_ref)).max() == 0.5


def test_unbounded_lp():
    solver = make_solver(UNBOUNDED_LP, "mpax")
    sol = solver.solve([-1.0, -1.0], check=False)
    assert sol.status == Status.UNBOUNDED and np.isnan(sol.x).all()
    with pytest.raises(UnboundedError, match="certificate of dual infeasibility"):
        solver.solve([-1.0, -1.0])
    # in a batch (one vmapped call), the first failing item is named and every item is kept
    C = np.array([[1.0, 1.0], [2.0, 1.0], [-1.0, -1.0], [1.0, 3.0]])
    with pytest.raises(UnboundedError, match=r"^item 2 of 4: 'unbounded_lp' is unbounded") as e:
        solver.solve_batch(C)
    assert e.value.item == 2 and len(e.value.partial) == 4
    assert [p.status for p in e.value.partial] == [Status.OPTIMAL, Status.OPTIMAL,
                                                   Status.UNBOUNDED, Status.OPTIMAL]


def test_integer_variables_refused_by_name():
    with pytest.raises(ValueError) as e:
        make_solver(ASSIGNMENT.spec, "mpax")
    assert str(e.value) == ("assignment: MPAX solves LPs only, and this spec has 9 integer "
                            "variables (flat indices 0, 1, 2, 3, 4, 5, 6, 7, ...); pass "
                            "relax=True to solve its LP relaxation")
    mixed = LinearSpec(shape=(3,), A_ub=[[1.0, 1, 1]], b_ub=[2.0], ub=1, integer=[2],
                       name="mixed")
    with pytest.raises(ValueError, match=r"has 1 integer variables \(flat indices 2\)"):
        MpaxLP(mixed)


def test_box_without_rows_refused():
    with pytest.raises(ValueError, match=r"box: MPAX needs at least one constraint row with a "
                                         r"nonzero entry .* use backend 'highs'"):
        make_solver(LinearSpec(shape=(2, 3), lb=-1.0, ub=2.0, name="box"), "mpax")


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(time_limit=1.0), ValueError, "backend 'mpax' has no time limit"),
    (dict(threads=2), ValueError, "threads must be 1"),
    (dict(warm_start=True), ValueError, "does not warm-start"),
    (dict(tolerance=1e-3), TypeError, r"make_solver\(backend='mpax'\): unknown keyword "
                                      r"'tolerance'; valid: .*eps_abs, eps_rel, "
                                      r"iteration_limit, max_size, method"),
    (dict(eps_ab=1e-3), TypeError, r"unknown keyword 'eps_ab' \(did you mean 'eps_abs'\?\)"),
    (dict(eps_abs=0.0), ValueError, "eps_abs must be a positive float, got 0.0"),
    (dict(method="simplex"), ValueError, r"method must be one of \['r2hpdhg', 'rapdhg'\]"),
    (dict(iteration_limit=0), ValueError, "iteration_limit must be an int >= 1, got 0"),
])
def test_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        make_solver(ASSIGNMENT.spec, "mpax", relax=True, **kwargs)


def test_bad_costs(assignment):
    with pytest.raises(ValueError, match=r"cost c has shape \(4,\), expected \(3, 3\)"):
        assignment.solve(np.ones(4))
    with pytest.raises(ValueError, match="cost c contains NaN or inf"):
        assignment.solve_batch(np.full((2, 3, 3), np.nan))
    with pytest.raises(ValueError, match=r"batch of costs has shape \(2, 4\)"):
        assignment.solve_batch(np.ones((2, 4)))
    with pytest.raises(ValueError, match="cost c must be a floating-point array"):
        assignment.oracle.solve(jnp.ones((3, 3), jnp.int32))
    with pytest.raises(ValueError, match="polish: x must be 9 finite numbers"):
        polish(assignment, ASSIGNMENT.c, np.full(9, np.nan))
    with pytest.raises(ValueError, match=r"exactness: C must hold at least one cost"):
        exactness(assignment, np.zeros((0, 3, 3)))


def test_the_solver_gives_its_jax_oracle_to_compiled_code(assignment):
    from surco.solvers.jax_oracles import as_jax_oracle
    assert as_jax_oracle(assignment) is assignment.oracle
    assert as_jax_oracle(make_solver(ASSIGNMENT.spec, "highs", relax=True)) is None


def test_factory_rebuilds_the_same_lp(assignment):
    again = assignment.factory()()
    assert isinstance(again, MpaxSolver) and again.oracle == assignment.oracle
    assert hash(again.oracle) == hash(assignment.oracle)
    assert MpaxLP(ASSIGNMENT.spec, relax=True, eps_abs=1e-5) != assignment.oracle


def test_missing_mpax_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpax", None)
    with pytest.raises(ImportError, match=r"pip install 'surco\[mpax\]'"):
        make_solver(ASSIGNMENT.spec, "mpax", relax=True)


@pytest.mark.slow
def test_compiled_zero_over_the_mpax_oracle():
    """SurCo-zero compiled into one XLA program over the PDHG LP (~30 s on 2 cores) follows
    the same trajectory as over the exact shortest-path oracle on the same flow polytope."""
    import surco
    from surco.problems import routing as R
    from surco.solvers.jax_oracles import ShortestPath

    # no patience: a stop decided by float32 noise in f (PDHG's x is exact to ~1e-6, not
    # bit for bit) would make the two histories differ in length on some CPUs
    kw = dict(R.ZERO_SETTINGS, steps=10, patience=None)
    init = kw.pop("init")
    kw.pop("backend")
    problem = R.make_problem(5, omega="spec")
    y = R.make_instance(0, n=5, regime="risk", q=1.0)
    exact = ShortestPath.from_oracle(R.oracle(5))
    a = surco.zero(problem, y, init=init(y), oracle=exact, **kw)
    b = surco.zero(problem, y, init=init(y), oracle=MpaxLP(exact.spec), **kw)
    np.testing.assert_allclose(b.x, a.x, atol=1e-6)
    np.testing.assert_allclose(b.f, a.f, rtol=1e-6)
    assert len(a.history["f"]) == len(b.history["f"]) == 11      # the start and 10 steps
    np.testing.assert_allclose(b.history["f"], a.history["f"], rtol=1e-5)
