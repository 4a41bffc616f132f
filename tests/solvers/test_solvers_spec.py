"""LinearSpec validation, make_solver arguments and cost checking."""
import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from surco.solvers import LinearSpec, Status, make_solver
from solvers_fixtures import ASSIGNMENT, BOUNDED_INT, FEASIBLE, KNAPSACK, multi_knapsack


# -- the fixtures' constants are right (enumeration / independent LP solver) ------------------
@pytest.mark.parametrize("fx", FEASIBLE, ids=lambda f: f.name)
def test_fixture_constants(fx):
    spec, c = fx.spec, np.asarray(fx.c, float).reshape(-1)
    lb, ub = spec.lb.astype(int), spec.ub.astype(int)
    if spec.is_mip:
        pts = [np.array(p, float) for p in itertools.product(*[range(a, b + 1) for a, b in zip(lb, ub)])]
        feas = [p for p in pts if spec.contains(p)]
        vals = np.array([c @ p for p in feas])
        assert vals.min() == pytest.approx(fx.opt)
        assert np.sum(np.isclose(vals, fx.opt)) == 1  # unique minimiser
        np.testing.assert_array_equal(feas[int(np.argmin(vals))], fx.x_opt.reshape(-1))
    r = linprog(c, A_ub=spec.A_ub.toarray() if spec.A_ub.shape[0] else None,
                b_ub=spec.b_ub if spec.A_ub.shape[0] else None,
                A_eq=spec.A_eq.toarray() if spec.A_eq.shape[0] else None,
                b_eq=spec.b_eq if spec.A_eq.shape[0] else None,
                bounds=list(zip(spec.lb, spec.ub)), method="highs")
    assert r.status == 0
    assert r.fun == pytest.approx(fx.lp_opt, abs=1e-9)
    if fx.lp_x is not None:
        np.testing.assert_allclose(r.x, fx.lp_x.reshape(-1), atol=1e-9)


def test_knapsack_lp_relaxation_closed_form():
    """Dantzig (1957): the LP optimum takes items by value/weight and a fraction of one."""
    v, w, cap = -KNAPSACK.c, KNAPSACK.spec.A_ub.toarray()[0], KNAPSACK.spec.b_ub[0]
    total, left = 0.0, cap
    for i in np.argsort(-v / w):
        take = min(1.0, left / w[i])
        total, left = total + take * v[i], left - take * w[i]
        if left <= 0:
            break
    assert -total == pytest.approx(KNAPSACK.lp_opt)


# -- LinearSpec validation ------------------------------------------------------------------
def test_spec_normalises_and_is_immutable():
    s = LinearSpec(shape=(2, 3), A_ub=np.ones((1, 6)), b_ub=4, ub=[1, 2, 3, 4, 5, 6],
                   integer=[0, 5])
    assert s.shape == (2, 3) and s.n == 6
    assert sp.issparse(s.A_ub) and s.b_ub.tolist() == [4.0]
    assert s.A_eq.shape == (0, 6) and s.b_eq.shape == (0,)
    assert s.lb.tolist() == [0.0] * 6 and s.ub.tolist() == [1, 2, 3, 4, 5, 6]
    assert s.integer.tolist() == [True, False, False, False, False, True]
    with pytest.raises(Exception):
        s.shape = (6,)
    with pytest.raises(ValueError):
        s.ub[0] = 7.0
    r = s.relaxed()
    assert not r.is_mip and s.is_mip and r.shape == s.shape
    assert LinearSpec(shape=4).shape == (4,)


@pytest.mark.parametrize("kwargs, field", [
    (dict(shape=(0,)), "shape"),
    (dict(shape=(2, -1)), "shape"),
    (dict(shape="ab"), "shape"),
    (dict(shape=(2.5,)), "shape"),
    (dict(shape=None), "shape"),
    (dict(shape=(3,), A_ub=np.ones((1, 4)), b_ub=[1.0]), "A_ub"),
    (dict(shape=(3,), A_eq=np.ones((2, 2)), b_eq=[1.0, 1.0]), "A_eq"),
    (dict(shape=(3,), A_ub=np.ones((2, 3)), b_ub=[1.0]), "b_ub"),
    (dict(shape=(3,), A_eq=np.ones((1, 3)), b_eq=[1.0, 2.0]), "b_eq"),
    (dict(shape=(3,), A_ub=[[1.0, np.nan, 0]], b_ub=[1.0]), "A_ub"),
    (dict(shape=(3,), A_eq=[[1.0, np.inf, 0]], b_eq=[1.0]), "A_eq"),
    (dict(shape=(3,), A_ub=np.ones((1, 3)), b_ub=[np.inf]), "b_ub"),
    (dict(shape=(3,), A_eq=np.ones((1, 3)), b_eq=[np.nan]), "b_eq"),
    (dict(shape=(3,), lb=[0, 0]), "lb"),
    (dict(shape=(3,), ub=[1, 1, 1, 1]), "ub"),
    (dict(shape=(3,), lb=[0, np.nan, 0]), "lb"),
    (dict(shape=(3,), ub=np.nan), "ub"),
    (dict(shape=(3,), lb=[0, 2, 0], ub=[1, 1, 1]), "lb/ub"),
    (dict(shape=(3,), lb=math.inf), "lb"),
    (dict(shape=(3,), ub=-math.inf, lb=-math.inf), "ub"),
    (dict(shape=(3,), integer=np.array([True, False])), "integer"),
    (dict(shape=(3,), integer=[0, 3]), "integer"),
    (dict(shape=(3,), integer=[0.5]), "integer"),
    (dict(shape=(3,), integer=[-1]), "integer"),
])
def test_spec_rejects_bad_input_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"LinearSpec.{field}"):
        LinearSpec(**kwargs)


def test_spec_violation():
    s = BOUNDED_INT.spec
    assert s.violation(BOUNDED_INT.x_opt) == 0.0
    assert s.violation([3.0, 0.0, -1.5]) == pytest.approx(0.5)      # integrality
    assert s.violation([3.0, 0.0, -3.0]) == pytest.approx(1.0)      # bound
    assert s.violation([4.0, 0.0, 0.0]) == pytest.approx(5.0)       # 4*4 > 11
    assert not s.contains([4.0, 0.0, 0.0]) and s.contains(BOUNDED_INT.x_opt)
    assert ASSIGNMENT.spec.violation(np.eye(3)[[0, 0, 1]]) == pytest.approx(1.0)  # column 0 twice
    with pytest.raises(ValueError, match="entries"):
        s.violation([1.0, 2.0])


# -- make_solver arguments and costs --------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(backend="gurobi"), "unknown backend"),
    (dict(backend="highs", time_limit=0), "time_limit"),
    (dict(backend="scip", time_limit=-1.0), "time_limit"),
    (dict(backend="scip", threads=0), "threads"),
    (dict(backend="highs", threads=2), "threads"),
])
def test_make_solver_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_solver(KNAPSACK.spec, **kwargs)


def test_make_solver_needs_a_spec():
    with pytest.raises(TypeError, match="LinearSpec"):
        make_solver(np.eye(3), backend="highs")


@pytest.mark.parametrize("backend", ["scip", "highs", "cpsat", "pyscipopt"])
def test_bad_costs_raise_value_error(backend):
    s = make_solver(ASSIGNMENT.spec, backend=backend)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        s.solve(np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        s.solve(np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        s.solve(np.where(np.eye(3) > 0, np.nan, 1.0))
    with pytest.raises(ValueError, match="NaN or inf"):
        s.solve(np.full(9, np.inf))
    with pytest.raises(ValueError, match="batch"):
        s.solve_batch(np.ones((2, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        s.solve_batch(np.stack([ASSIGNMENT.c, ASSIGNMENT.c * np.nan]))
    # the flat form of a well-shaped cost is accepted and gives x shaped like the spec
    sol = s.solve(ASSIGNMENT.c.reshape(-1))
    assert sol.x.shape == (3, 3) and sol.objective == pytest.approx(5.0)


def test_unknown_option_is_an_error():
    with pytest.raises(TypeError, match="no_such_option"):
        make_solver(KNAPSACK.spec, backend="highs", no_such_option=1)
    with pytest.raises(ValueError, match="no/such/param"):
        make_solver(KNAPSACK.spec, backend="pyscipopt", **{"no/such/param": 1})
    with pytest.raises(ValueError, match="limits/time"):
        make_solver(KNAPSACK.spec, backend="pyscipopt", **{"limits/time": "soon"})


@pytest.mark.parametrize("backend, options", [
    ("scip", {"node_limit": 1}), ("highs", {"node_limit": 1}),
    ("pyscipopt", {"limits/nodes": 1}),
])
def test_options_reach_the_solver(backend, options):
    """A node limit of 1 (MathOpt ``SolveParameters`` field / SCIP parameter name) stops a
    hard MILP at the root with its incumbent: status FEASIBLE, a feasible x."""
    spec, c = multi_knapsack()
    sol = make_solver(spec, backend=backend, **options).solve(c)
    assert sol.status == Status.FEASIBLE
    assert spec.contains(sol.x) and sol.objective == pytest.approx(c @ sol.x)
