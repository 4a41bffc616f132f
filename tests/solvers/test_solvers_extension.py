"""The public extension points of the solver layer, and failures raised once, typed."""
import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from surco.solvers import (AssignmentOracle, InfeasibleError, LinearSpec, ShortestPathOracle,
                           Solver, SolverStack, SolverTimeout, Status,
                           UnboundedError, make_solver)
from surco.solvers.qp import QuadraticSolver
from solvers_fixtures import (ALL_BACKENDS, INFEASIBLE_INT, INFEASIBLE_LP, KNAPSACK, SP_EDGES,
                              UNBOUNDED_LP, market_split, takes)


class TopOne(Solver):
    """An oracle written outside the package: x = e_i for the cheapest i among those with
    c_i >= 0 (it rejects negative costs, to exercise `check_cost_values`)."""

    def __init__(self, n: int):
        super().__init__((n,), f"top-one{n}")

    def factory(self):
        return functools.partial(TopOne, self.n)

    def check_cost_values(self, c):
        if np.any(c < 0):
            raise ValueError(f"{self.name}: costs must be >= 0")

    def solve_flat(self, c):
        x = np.zeros(self.n)
        x[int(np.argmin(c))] = 1.0
        return x, float(c.min()), Status.OPTIMAL, {}

    @property
    def spec(self) -> LinearSpec:
        return LinearSpec(shape=(self.n,), A_eq=np.ones((1, self.n)), b_eq=[1.0], ub=1,
                          integer=True, name=self.name + "-milp")


def test_an_external_solver_gets_solve_batch_stack_and_checks():
    s = TopOne(4)
    C = np.array([[3.0, 1.0, 2.0, 5.0], [0.5, 4.0, 4.0, 0.7]])
    sols = s.solve_batch(C)
    assert [int(np.argmax(x.x)) for x in sols] == [1, 0]
    with ThreadPoolExecutor(2) as ex:
        assert [x.objective for x in s.solve_batch(C, executor=ex)] == [1.0, 0.5]
        stack = SolverStack([TopOne(4), TopOne(4)], executor=ex)
        assert stack.solve(C).objective == 1.5
    with pytest.raises(ValueError, match="top-one4: costs must be >= 0"):
        s.solve([1.0, -1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="top-one4: costs must be >= 0"):
        SolverStack([TopOne(4), TopOne(4)]).solve(np.stack([C[0], -C[1]]))
    # its spec property feeds the MILP backends and the quadratic relaxation
    assert make_solver(s.spec, backend="highs").solve(C[0]).objective == 1.0
    assert QuadraticSolver(s.spec, 1.0).solve(np.zeros(4)).x == pytest.approx(np.full(4, 0.25))


def test_hooks_are_public_and_spec_is_a_property_everywhere():
    assert not hasattr(Solver, "_solve_flat") and not hasattr(Solver, "_check_cost_values")
    solvers = [make_solver(KNAPSACK.spec if takes(b, KNAPSACK.spec) else UNBOUNDED_LP,
                           backend=b) for b in ALL_BACKENDS]
    solvers += [ShortestPathOracle(6, SP_EDGES, 0, 5), AssignmentOracle(2, 3),
                QuadraticSolver(KNAPSACK.spec, 1.0), TopOne(3)]
    for s in solvers:
        assert isinstance(s.spec, LinearSpec), type(s).__name__
        assert not callable(s.spec)
    assert ShortestPathOracle(6, SP_EDGES, 0, 5).spec.shape == (len(SP_EDGES),)
    assert AssignmentOracle(2, 3).spec.shape == (2, 3)


def _one_typed_error(call, kind, message):
    """``call`` raises exactly ``kind`` (not a subclass) whose text starts with ``message``
    (backends append their own detail), chained to nothing."""
    with pytest.raises(kind) as info:
        call()
    assert type(info.value) is kind and str(info.value).startswith(message)
    assert info.value.__context__ is None and info.value.__cause__ is None


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_failures_raise_once_typed_and_unchained(backend):
    cpsat = backend == "cpsat"
    infeasible = INFEASIBLE_INT if cpsat else INFEASIBLE_LP
    s = make_solver(infeasible, backend=backend)
    _one_typed_error(lambda: s.solve([1.0, 2.0]), InfeasibleError,
                     f"'{infeasible.name}' is infeasible")
    if not cpsat:   # CP-SAT refuses unbounded variables (test_solvers_unbounded.py)
        u = make_solver(UNBOUNDED_LP, backend=backend)
        _one_typed_error(lambda: u.solve([-1.0, -1.0]), UnboundedError,
                         f"'{UNBOUNDED_LP.name}' is unbounded")
    with ThreadPoolExecutor(2) as ex:
        _one_typed_error(lambda: s.solve_batch(np.ones((3, 2)), executor=ex), InfeasibleError,
                         f"item 0 of 3: '{infeasible.name}' is infeasible")
    stack = SolverStack([make_solver(infeasible, backend=backend)])
    _one_typed_error(lambda: stack.solve(np.ones((1, 2))), InfeasibleError,
                     f"'{infeasible.name}' is infeasible: member 0 ({infeasible.name}): "
                     "infeasible")


@pytest.mark.parametrize("backend", ["scip", "highs", "cpsat", "pyscipopt"])
def test_time_limit_raises_one_solver_timeout(backend):
    spec = market_split()
    s = make_solver(spec, backend=backend, time_limit=0.1)
    with pytest.raises(SolverTimeout) as info:
        s.solve(np.zeros(spec.n))
    assert str(info.value).startswith("'market_split': time limit of 0.1 s reached without a "
                                      "feasible point")
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_stack_names_itself_after_its_members():
    one = SolverStack([make_solver(KNAPSACK.spec)])
    three = SolverStack([make_solver(KNAPSACK.spec) for _ in range(3)])
    assert one.name == "knapsack" and three.name == "knapsack and 2 more instances"
    with pytest.raises(ValueError, match=r"^knapsack: cost c contains NaN or inf"):
        one.solve(np.full((1, 6), np.nan))


def test_highs_option_without_an_equivalent_is_named():
    with pytest.raises(ValueError, match="option 'presolve' has no HiGHS equivalent"):
        make_solver(KNAPSACK.spec, backend="highs", presolve=False)
    with pytest.raises(ValueError, match="HiGHS rejected option mip_rel_gap=-1.0"):
        make_solver(KNAPSACK.spec, backend="highs", relative_gap_tolerance=-1.0)
    with pytest.raises(TypeError, match="no_such"):
        make_solver(KNAPSACK.spec, backend="highs", no_such=1)
