"""Unbounded models are reported as unbounded by every backend, never as a clamped "optimum";
CP-SAT gets its finite bounds from the rows (`implied_bounds`) or refuses the variables by
name. Unboundedness is certified here without a solver: a feasible integer point plus an
integer ray d with A d <= 0 (= 0 on equalities) and c·d < 0 (Meyer 1974: then the integer
program is unbounded)."""
import itertools

import numpy as np
import pytest

from surco.solvers import InfeasibleError, LinearSpec, Status, UnboundedError, make_solver
from surco.solvers.bounds import entry_names, gcd_infeasible_rows, implied_bounds
from surco.solvers.mathopt_backend import CPSAT_MAX_BOUND

INF = np.inf

# Free integer models found by a random search where the backends disagreed on main: CP-SAT
# returned OPTIMAL with entries at ±1e7 (its mip_max_bound clamp), and MathOpt SCIP raised
# a SolverError about an objective of "-inf" on FREE_EQ. Each comes with its certificate.
FREE_UB = dict(spec=LinearSpec(shape=(4,), A_ub=[[2.0, 2, -2, 1], [0, -3, 3, 2]],
                               b_ub=[-2.0, -5], lb=-INF, ub=INF, integer=True, name="free_ub"),
               c=np.array([-3.0, 2, -2, 0]), x=np.array([0.0, 0, 0, -3]),
               d=np.array([0.0, -1, 0, -2]))
FREE_EQ = dict(spec=LinearSpec(shape=(4,), A_ub=[[-2.0, -1, -3, -3]], b_ub=[-5.0],
                               A_eq=[[-2.0, 2, 1, 2]], b_eq=[0.0], lb=-INF, ub=INF,
                               integer=True, name="free_eq"),
               c=np.array([1.0, 3, 2, 1]), x=np.array([1.0, 0, 0, 1]),
               d=np.array([0.0, -1, 0, 1]))


@pytest.mark.parametrize("case", [FREE_UB, FREE_EQ], ids=["free_ub", "free_eq"])
def test_certificates(case):
    spec, c, x, d = case["spec"], case["c"], case["x"], case["d"]
    assert spec.contains(x)
    assert np.all(spec.A_ub @ d <= 0) and np.all(spec.A_eq @ d == 0) and c @ d < 0
    assert spec.contains(x + 10**6 * d)       # far along the ray, still in Ω


@pytest.mark.parametrize("backend", ["scip", "highs", "pyscipopt"])
@pytest.mark.parametrize("case", [FREE_UB, FREE_EQ], ids=["free_ub", "free_eq"])
def test_mip_backends_report_unbounded(backend, case):
    spec, c = case["spec"], case["c"]
    solver = make_solver(spec, backend=backend)
    with pytest.raises(UnboundedError, match=f"'{spec.name}' is unbounded"):
        solver.solve(c)
    # the solver stays usable: the zero cost is bounded (any feasible point is optimal)
    sol = solver.solve(np.zeros(4))
    assert sol.status == Status.OPTIMAL and spec.contains(sol.x)


@pytest.mark.parametrize("backend", ["scip", "highs", "glop", "pdlp", "pyscipopt"])
@pytest.mark.parametrize("case", [FREE_UB, FREE_EQ], ids=["free_ub", "free_eq"])
def test_lp_relaxations_report_unbounded(backend, case):
    """The same ray certifies the LP relaxation unbounded."""
    with pytest.raises(UnboundedError):
        make_solver(case["spec"], backend=backend, relax=True).solve(case["c"])


@pytest.mark.parametrize("case", [FREE_UB, FREE_EQ], ids=["free_ub", "free_eq"])
def test_cpsat_refuses_variables_without_bounds_by_name(case):
    spec = case["spec"]
    with pytest.raises(ValueError) as info:
        make_solver(spec, backend="cpsat")
    msg = str(info.value)
    assert msg.startswith(f"{spec.name}: backend 'cpsat' needs a finite lower and upper bound")
    assert "neither the spec nor its rows (bound propagation) bound 4 of them: x[0], x[1], " \
           "x[2], x[3]" in msg and "use scip or highs" in msg


def test_cpsat_names_entries_by_multi_index():
    """x shaped (2, 3): entries are named by multi-index and flat index; x[1, :] is bounded
    by the row x[1, 0] + x[1, 1] + x[1, 2] = 1 over nonnegative entries, x[0, 1] by its ub."""
    A = np.zeros((1, 6))
    A[0, 3:] = 1.0
    spec = LinearSpec(shape=(2, 3), A_eq=A, b_eq=[1.0], lb=[-INF, 0, -INF, 0, 0, 0],
                      ub=[INF, 1, INF, INF, INF, INF], integer=True, name="grid")
    with pytest.raises(ValueError, match=r"bound 2 of them: x\[0, 0\] \(flat 0\), "
                                         r"x\[0, 2\] \(flat 2\);"):
        make_solver(spec, backend="cpsat")
    assert entry_names((2, 3), [5, 0]) == "x[1, 2] (flat 5), x[0, 0] (flat 0)"
    assert entry_names((10,), range(10), limit=3) == "x[0], x[1], x[2] and 7 more"


# -- implied bounds ---------------------------------------------------------------------------
def test_implied_bounds_on_known_cases():
    # x0 + x1 + x2 = 5 with x1, x2 in [0, 3]: x0 in [-1, 5]
    s = LinearSpec(shape=(3,), A_eq=[[1.0, 1, 1]], b_eq=[5.0], lb=[-INF, 0, 0], ub=[INF, 3, 3],
                   integer=True)
    lb, ub, empty = implied_bounds(s)
    assert lb.tolist() == [-1.0, 0.0, 0.0] and ub.tolist() == [5.0, 3.0, 3.0] and not empty
    # a chain x0 <= 2, x1 <= x0 + 1, x2 <= x1 + 1 (x >= 0): ub 2, 3, 4, over three rounds
    c = LinearSpec(shape=(3,), A_ub=[[1.0, 0, 0], [-1, 1, 0], [0, -1, 1]], b_ub=[2.0, 1, 1],
                   integer=True)
    assert implied_bounds(c)[1].tolist() == [2.0, 3.0, 4.0]
    assert implied_bounds(c, max_rounds=1)[1].tolist() == [2.0, INF, INF]
    # integer rounding: 2 x0 <= 5 gives x0 <= 2 (integer), 2.5 (continuous, widened by 5e-7)
    k = LinearSpec(shape=(1,), A_ub=[[2.0]], b_ub=[5.0], integer=True)
    assert implied_bounds(k)[1].tolist() == [2.0]
    assert implied_bounds(k.relaxed())[1][0] == pytest.approx(2.5, abs=1e-6)
    assert implied_bounds(k.relaxed())[1][0] >= 2.5
    # two free entries in one row: nothing is implied
    f = LinearSpec(shape=(2,), A_eq=[[1.0, 1.0]], b_eq=[1.0], lb=-INF, integer=True)
    lb, ub, _ = implied_bounds(f)
    assert np.all(np.isinf(lb)) and np.all(np.isinf(ub))
    # x0 >= 4 implied, x0 <= 3 given: empty
    e = LinearSpec(shape=(2,), A_ub=[[-1.0, 1.0]], b_ub=[-4.0], lb=[0, 0], ub=[3, INF],
                   integer=True)
    assert implied_bounds(e)[2]


def _random_spec(rng):
    n = int(rng.integers(2, 4))
    A = rng.integers(-3, 4, (int(rng.integers(1, 4)), n)).astype(float)
    E = rng.integers(-2, 3, (int(rng.integers(0, 2)), n)).astype(float)
    lb = np.where(rng.random(n) < 0.5, -INF, rng.integers(-3, 1, n).astype(float))
    ub = np.where(rng.random(n) < 0.5, INF, rng.integers(1, 4, n).astype(float))
    return LinearSpec(shape=(n,), A_ub=A, b_ub=rng.integers(-4, 7, len(A)).astype(float),
                      A_eq=E if len(E) else None, b_eq=rng.integers(-3, 4, len(E)).astype(float)
                      if len(E) else None, lb=lb, ub=ub, integer=True)


def test_implied_bounds_keep_every_point():
    """Soundness against brute force: on 300 random integer specs, every integer point of
    Ω within [-12, 12]^n lies inside the implied bounds, and the spec's finite bounds are
    kept."""
    rng = np.random.default_rng(0)
    tightened = 0
    for _ in range(300):
        spec = _random_spec(rng)
        lb, ub, empty = implied_bounds(spec)
        fin = np.isfinite(spec.lb)
        assert np.array_equal(lb[fin], spec.lb[fin])
        fin = np.isfinite(spec.ub)
        assert np.array_equal(ub[fin], spec.ub[fin])
        P = np.array(list(itertools.product(range(-12, 13), repeat=spec.n)), float)
        ok = (np.all(P >= spec.lb, axis=1) & np.all(P <= spec.ub, axis=1)
              & np.all(P @ spec.A_ub.T.toarray() <= spec.b_ub, axis=1)
              & np.all(P @ spec.A_eq.T.toarray() == spec.b_eq, axis=1))
        inside = P[ok]
        assert np.all(inside >= lb) and np.all(inside <= ub), (spec, lb, ub)
        if empty:
            assert not len(inside)
        tightened += int(np.sum(np.isfinite(lb) & ~np.isfinite(spec.lb))
                         + np.sum(np.isfinite(ub) & ~np.isfinite(spec.ub)))
    assert tightened > 100      # the rows really bounded many free entries


def test_cpsat_with_implied_bounds_agrees_with_highs():
    """Free integer entries that rows bound (x_j <= 4 and -x_j <= 4 written as rows): CP-SAT
    solves them and agrees with HiGHS on 60 random models."""
    rng = np.random.default_rng(3)
    compared = 0
    for t in range(60):
        n = int(rng.integers(2, 5))
        box = rng.random(n) < 0.6
        A = np.vstack([rng.integers(-3, 4, (2, n)), np.eye(n)[box], -np.eye(n)[box]])
        b = np.concatenate([rng.integers(-5, 6, 2), np.full(2 * int(box.sum()), 4)])
        spec = LinearSpec(shape=(n,), A_ub=A, b_ub=b, lb=np.where(box, -INF, -4),
                          ub=np.where(box, INF, 4), integer=True, name=f"boxed{t}")
        c = rng.integers(-3, 4, n).astype(float)
        ref = make_solver(spec, backend="highs").solve(c, check=False)
        got = make_solver(spec, backend="cpsat").solve(c, check=False)
        assert got.status == ref.status
        if ref.ok:
            compared += 1
            assert got.objective == pytest.approx(ref.objective, abs=1e-9)
            assert spec.contains(got.x)
    assert compared > 30


def test_cpsat_does_not_clamp_large_bounds():
    """Bounds above CP-SAT's default mip_max_bound (1e7) are no longer clamped: on main this
    returned x = (1e7, 1e7) as OPTIMAL."""
    spec = LinearSpec(shape=(2,), A_ub=[[1.0, 1.0]], b_ub=[1e8], ub=1e8, integer=True,
                      name="big")
    sol = make_solver(spec, backend="cpsat").solve([-1.0, -2.0])
    assert sol.status == Status.OPTIMAL and sol.x.tolist() == [0.0, 1e8]
    with pytest.raises(ValueError, match=r"big: backend 'cpsat' takes bounds up to 1e\+12 .* "
                                         r"1 variables have larger ones .*: x\[1\]"):
        make_solver(LinearSpec(shape=(2,), ub=[1, CPSAT_MAX_BOUND * 10], integer=True,
                               name="big"), backend="cpsat")
    from ortools.sat import sat_parameters_pb2
    with pytest.raises(ValueError, match=r"cp_sat.mip_max_bound=1000 is below the bounds of 2 "
                                         r"variables \(x\[0\], x\[1\]; largest 1e\+08\)"):
        make_solver(spec, backend="cpsat",
                    cp_sat=sat_parameters_pb2.SatParameters(mip_max_bound=1000))


def test_cpsat_parity_infeasible_rows():
    """-2 x0 + 2 x2 + 2 x3 = -1 has no integer point (gcd 2 does not divide 1): CP-SAT
    reported the model invalid (a SolverError); now InfeasibleError, like HiGHS."""
    spec = LinearSpec(shape=(4,), A_eq=[[-2.0, 0, 2, 2]], b_eq=[-1.0], lb=-4, ub=4,
                      integer=True, name="parity")
    assert gcd_infeasible_rows(spec).tolist() == [0]
    assert gcd_infeasible_rows(spec.relaxed()).tolist() == []
    for backend in ("cpsat", "highs"):
        with pytest.raises(InfeasibleError, match="'parity' is infeasible"):
            make_solver(spec, backend=backend).solve(np.ones(4))


def test_cpsat_fixed_keeps_implied_bounds():
    """fixed() on a CP-SAT model whose bounds were implied: inside and after the block the
    answers are the brute-force optima (x0 = 5 - x1 - x2 with x1, x2 in [0, 3])."""
    spec = LinearSpec(shape=(3,), A_eq=[[1.0, 1, 1]], b_eq=[5.0], lb=[-INF, 0, 0],
                      ub=[INF, 3, 3], integer=True, name="sum5")
    s = make_solver(spec, backend="cpsat")
    c = np.array([-1.0, 0.5, 0.0])     # x0 as large as possible: x = (5, 0, 0), value -5
    assert s.solve(c).objective == pytest.approx(-5.0)
    with s.fixed(np.array([False, True, False]), np.array([0.0, 2.0, 0.0])):
        assert s.solve(c).x.tolist() == [3.0, 2.0, 0.0]
    assert s.solve(c).x.tolist() == [5.0, 0.0, 0.0]
