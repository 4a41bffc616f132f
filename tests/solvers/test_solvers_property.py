"""Property test: on random small MILPs and LPs every backend agrees with brute force.

Problems (hypothesis): 1-4 variables, integer or continuous, with small integer bounds; 0-3
inequality and 0-2 equality rows with small integer coefficients, whose right-hand sides go
through an integer point of the box half of the time (else they are arbitrary); about half
come out optimal, a quarter infeasible and a sixth unbounded. Brute force: every integer point of the integer variables and, for each,
every vertex of the polytope left for the continuous ones (a bounded polytope that is not
empty has a vertex, and a linear objective is least at one).

Unbounded problems: a variable may be left without its upper (or lower) bound. To keep the
brute force exact, such a variable only meets the rows in a way that moving it in its free
direction never violates them: if moving it lowers the cost, its coefficients in the
inequality rows only help and it is absent from the equality rows (the problem is then
unbounded exactly when it is feasible, and the rows it helps can always be met); otherwise
it appears in no row (it sits at its finite bound). The theory behind "feasible + improving
ray ⇒ unbounded" for integer variables is Meyer (1974): with rational data the integer
hull is a polyhedron with the same recession cone. CP-SAT, which needs finite bounds, must
refuse every problem with such a variable, naming them (no row bounds them).
"""
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surco.solvers import InfeasibleError, LinearSpec, UnboundedError, make_solver

MIP_BACKENDS = ("scip", "highs", "pyscipopt")   # mixed integer/continuous
INT_BACKENDS = ("cpsat",)                       # every variable integer, finite bounds
LP_BACKENDS = ("scip", "highs", "glop", "pdlp", "pyscipopt")
TOL = 1e-9


@st.composite
def problems(draw, kind: str):
    """A random small problem: dict of LinearSpec arguments plus the cost ``c``.

    kind: "mip" (integer and continuous variables), "int" (all integer) or "lp" (all
    continuous).
    """
    n = draw(st.integers(1, 4))
    if kind == "mip":
        integer = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    else:
        integer = np.full(n, kind == "int")
    lb = np.array(draw(st.lists(st.integers(-2, 1), min_size=n, max_size=n)), float)
    ub = lb + np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
    m_ub, m_eq = draw(st.integers(0, 3)), draw(st.integers(0, 2))
    A_ub = np.array(draw(st.lists(st.integers(-3, 3), min_size=m_ub * n, max_size=m_ub * n)),
                    float).reshape(m_ub, n)
    A_eq = np.array(draw(st.lists(st.integers(-2, 2), min_size=m_eq * n, max_size=m_eq * n)),
                    float).reshape(m_eq, n)
    c = np.array(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), float)
    # free directions: 0 (both bounds finite), +1 (no upper bound), -1 (no lower bound)
    free = np.array(draw(st.lists(st.sampled_from([0, 0, 0, 1, -1]), min_size=n, max_size=n)))
    for j in np.flatnonzero(free):
        d = free[j]
        if c[j] * d < 0:        # moving x_j its free way lowers the cost: rows it may only help
            A_ub[:, j] = -np.abs(A_ub[:, j]) * d
            A_eq[:, j] = 0.0
        else:                   # cost-neutral or worse: x_j sits at its finite bound
            A_ub[:, j] = 0.0
            A_eq[:, j] = 0.0
    if draw(st.booleans()):     # right-hand sides through an integer point of the box
        x0 = np.array([draw(st.integers(int(lo), int(hi))) for lo, hi in zip(lb, ub)], float)
        b_eq = A_eq @ x0
        b_ub = A_ub @ x0 + np.array(draw(st.lists(st.integers(0, 3), min_size=m_ub,
                                                  max_size=m_ub)), float)
    else:                       # arbitrary ones: often infeasible
        b_ub = np.array(draw(st.lists(st.integers(-4, 6), min_size=m_ub, max_size=m_ub)), float)
        b_eq = np.array(draw(st.lists(st.integers(-3, 3), min_size=m_eq, max_size=m_eq)), float)
    ub = np.where(free > 0, np.inf, ub)
    lb = np.where(free < 0, -np.inf, lb)
    return dict(A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, lb=lb, ub=ub, integer=integer,
                c=c, free=free)


def _lp_vertices_min(c, G, h, E, f):
    """min c·y over {G y <= h, E y = f} (bounded: G holds both bounds of every y) by vertex
    enumeration; None if empty."""
    k = len(c)
    if k == 0:
        ok = np.all(h >= -TOL) and np.all(np.abs(f) <= TOL)
        return 0.0 if ok else None
    best = None
    for size in range(k + 1):
        for S in itertools.combinations(range(len(G)), size):
            M = np.vstack([E, G[list(S)]])
            r = np.concatenate([f, h[list(S)]])
            if len(M) < k or np.linalg.matrix_rank(M) < k:
                continue
            y = np.linalg.lstsq(M, r, rcond=None)[0]
            if np.abs(M @ y - r).max() > 1e-7:
                continue
            if np.all(G @ y <= h + 1e-7) and np.all(np.abs(E @ y - f) <= 1e-7):
                v = float(c @ y)
                best = v if best is None else min(best, v)
    return best


def brute_force(p) -> tuple[str, float | None]:
    """("optimal", value), ("infeasible", None) or ("unbounded", None)."""
    c, free, integer = p["c"], p["free"], p["integer"]
    improving = (free != 0) & (c * free < 0)
    # rows helped by an improving free variable can always be met: drop them
    keep = ~np.any(p["A_ub"][:, improving] != 0, axis=1)
    A_ub, b_ub = p["A_ub"][keep], p["b_ub"][keep]
    A_eq, b_eq = p["A_eq"], p["b_eq"]
    fixed = free != 0                     # free variables: out of every kept row
    const = float(sum(c[j] * (p["lb"][j] if free[j] > 0 else p["ub"][j])
                      for j in np.flatnonzero(fixed & ~improving)))
    rest = np.flatnonzero(~fixed)
    I = [j for j in rest if integer[j]]
    C = [j for j in rest if not integer[j]]
    lb, ub = p["lb"], p["ub"]
    best = None
    for xi in itertools.product(*[range(int(lb[j]), int(ub[j]) + 1) for j in I]):
        xi = np.array(xi, float)
        G = np.vstack([A_ub[:, C], np.eye(len(C)), -np.eye(len(C))])
        h = np.concatenate([b_ub - A_ub[:, I] @ xi, ub[C], -lb[C]])
        v = _lp_vertices_min(c[C], G, h, A_eq[:, C], b_eq - A_eq[:, I] @ xi)
        if v is not None:
            v += float(c[I] @ xi)
            best = v if best is None else min(best, v)
    if best is None:
        return "infeasible", None
    if improving.any():
        return "unbounded", None
    return "optimal", best + const


def _check_backend(p, backend: str, relax: bool = False):
    spec = LinearSpec(shape=(len(p["c"]),), A_ub=p["A_ub"], b_ub=p["b_ub"], A_eq=p["A_eq"],
                      b_eq=p["b_eq"], lb=p["lb"], ub=p["ub"], integer=p["integer"],
                      name="random")
    if backend == "cpsat" and np.any(p["free"] != 0):
        # CP-SAT needs finite bounds; no row bounds a free variable here (it meets the rows
        # only in its free direction), so each is refused by name
        free = np.flatnonzero(p["free"])
        with pytest.raises(ValueError) as info:
            make_solver(spec, backend=backend)
        assert (f"bound {free.size} of them: " + ", ".join(f"x[{j}]" for j in free) + ";"
                in str(info.value))
        return
    q = dict(p, integer=np.zeros_like(p["integer"])) if relax else p
    status, value = brute_force(q)
    solver = make_solver(spec, backend=backend, relax=relax)
    tol = 1e-4 if backend == "pdlp" else 1e-6
    if status == "infeasible":
        with pytest.raises(InfeasibleError, match="'random' is infeasible"):
            solver.solve(p["c"])
    elif status == "unbounded":
        with pytest.raises(UnboundedError, match="'random' is unbounded"):
            solver.solve(p["c"])
    else:
        sol = solver.solve(p["c"])
        assert sol.objective == pytest.approx(value, abs=tol * (1 + abs(value))), backend
        assert spec.relaxed().violation(sol.x) <= (1e-4 if backend == "pdlp" else 1e-6)
        if not relax:
            assert spec.violation(sol.x) <= 1e-6
        assert float(p["c"] @ sol.x) == pytest.approx(value, abs=tol * (1 + abs(value)))


def _run_all(mip, integer_only, lp):
    for backend in MIP_BACKENDS:
        _check_backend(mip, backend)
    for backend in INT_BACKENDS:
        _check_backend(integer_only, backend)
    for backend in LP_BACKENDS:
        _check_backend(lp, backend, relax=True)


_COMMON = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=100, **_COMMON)
@given(problems("mip"), problems("int"), problems("lp"))
def test_backends_agree_with_brute_force(mip, integer_only, lp):
    """100 random problems of each kind; every backend that takes the kind."""
    _run_all(mip, integer_only, lp)


@pytest.mark.slow
@settings(max_examples=500, **_COMMON)
@given(problems("mip"), problems("int"), problems("lp"))
def test_backends_agree_with_brute_force_500(mip, integer_only, lp):
    """The same with 500 random problems of each kind (``make test-all``)."""
    _run_all(mip, integer_only, lp)


def test_brute_force_on_known_cases():
    """The reference itself, on problems solved by hand."""
    base = dict(A_ub=np.zeros((0, 2)), b_ub=np.zeros(0), A_eq=np.zeros((0, 2)),
                b_eq=np.zeros(0), lb=np.zeros(2), ub=np.full(2, 3.0), free=np.zeros(2, int))
    # max x0 + x1 s.t. 2 x0 + 2 x1 <= 5: integer 2, continuous 2.5
    p = dict(base, A_ub=np.array([[2.0, 2.0]]), b_ub=np.array([5.0]), c=np.array([-1.0, -1.0]))
    assert brute_force(dict(p, integer=np.array([True, True]))) == ("optimal", -2.0)
    assert brute_force(dict(p, integer=np.array([False, False]))) == ("optimal", -2.5)
    # x0 + x1 = 1.5 has no integer point in the box, a continuous one
    q = dict(base, A_eq=np.array([[1.0, 1.0]]), b_eq=np.array([1.5]), c=np.array([1.0, 0.0]))
    assert brute_force(dict(q, integer=np.array([True, True]))) == ("infeasible", None)
    status, value = brute_force(dict(q, integer=np.array([False, False])))
    assert status == "optimal" and value == pytest.approx(0.0, abs=1e-12)
    # x1 without upper bound and cost -1, helping the only row: unbounded
    r = dict(base, A_ub=np.array([[1.0, -1.0]]), b_ub=np.array([0.0]), c=np.array([0.0, -1.0]),
             ub=np.array([3.0, np.inf]), free=np.array([0, 1]), integer=np.array([True, True]))
    assert brute_force(r) == ("unbounded", None)
    # the same with an empty rest (x0 >= 4 in a box of [0, 3]): infeasible, not unbounded
    s = dict(r, A_ub=np.array([[1.0, -1.0], [-1.0, 0.0]]), b_ub=np.array([0.0, -4.0]))
    assert brute_force(s) == ("infeasible", None)
