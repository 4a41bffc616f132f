"""Derived neighbourhoods on a mixed integer / continuous Ω (`surco.derive.mixed`): the
integer entries move under the rows over them alone, each neighbour's continuous entries
are the optimum of f with the integers held. Checked against closed forms and brute force:
the neighbours are exactly the integer moves with a non-empty continuous part, every one is
in Ω with its optimal continuous part, and the derived local search reaches the enumerated
optimum through its meter."""
import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.derive import classify_rows, family_for, neighbourhood_for
from surco.derive.mixed import CompletedMoves, ContinuousCompletion, integer_spec
from surco.search import Cardinality
from surco.solvers import LinearSpec

N, K_MIN, K_MAX, L, U = 6, 1, 5, 0.1, 0.4      # feasible sizes: 3, 4, 5 (k·u >= 1 >= k·l)


def selection_spec(n=N, k_min=K_MIN, k_max=K_MAX, l=L, u=U) -> LinearSpec:
    """X (n, 2): weights x and selection z, Σx = 1, l z <= x <= u z, k_min <= Σz <= k_max."""
    ix, iz = 2 * np.arange(n), 2 * np.arange(n) + 1
    A = np.zeros((2 * n + 2, 2 * n))
    A[np.arange(n), ix], A[np.arange(n), iz] = 1.0, -u
    A[n + np.arange(n), ix], A[n + np.arange(n), iz] = -1.0, l
    A[2 * n, iz], A[2 * n + 1, iz] = 1.0, -1.0
    A_eq = np.zeros((1, 2 * n))
    A_eq[0, ix] = 1.0
    ub = np.empty(2 * n)
    ub[ix], ub[iz] = u, 1.0
    return LinearSpec((n, 2), A_ub=A, b_ub=np.r_[np.zeros(2 * n), k_max, -k_min], A_eq=A_eq,
                      b_eq=[1.0], lb=0.0, ub=ub, integer=np.tile([False, True], n),
                      name="selection")


def f_sel(X, y):
    """Σ a_i (x_i − t_i)² + Σ c_i z_i: a target portfolio t and a fee c per held entry."""
    return jnp.sum(y["a"] * (X[:, 0] - y["t"]) ** 2) + jnp.sum(y["c"] * X[:, 1])


def gen_sel(count, seed=0):
    out = []
    for i in range(count):
        r = np.random.default_rng(seed + i)
        out.append({"a": jnp.asarray(r.uniform(0.5, 3.0, N), jnp.float32),
                    "t": jnp.asarray(r.dirichlet(np.ones(N) * 0.7), jnp.float32),
                    "c": jnp.asarray(r.uniform(0.0, 0.02, N), jnp.float32)})
    return out


def support_optimum(z, y) -> tuple[float, np.ndarray]:
    """min f over the weights of support z, exactly: x_i = clip(t_i − ν/(2a_i), l, u) on the
    support, ν by bisection on Σx = 1 (the KKT conditions of the separable QP)."""
    a, t, c = (np.asarray(y[k], np.float64) for k in ("a", "t", "c"))
    S = np.asarray(z) > 0.5
    lo, hi = -1e3, 1e3
    for _ in range(200):
        nu = 0.5 * (lo + hi)
        s = np.clip(t[S] - nu / (2 * a[S]), L, U).sum()
        lo, hi = (nu, hi) if s > 1 else (lo, nu)
    x = np.zeros(N)
    x[S] = np.clip(t[S] - nu / (2 * a[S]), L, U)
    return float(np.sum(a * (x - t) ** 2) + c @ np.asarray(z, np.float64)), x


def feasible_size(k: int) -> bool:
    return K_MIN <= k <= K_MAX and k * U >= 1 - 1e-12 and k * L <= 1 + 1e-12


def test_integer_spec_keeps_only_the_rows_over_integer_entries():
    spec = selection_spec()
    sub = integer_spec(spec)
    assert sub.shape == (N,) and sub.integer.all()
    assert sub.A_ub.shape == (2, N) and sub.A_eq.shape[0] == 0        # the two Σz rows
    assert classify_rows(sub).cardinality_ub == (0, 1)
    np.testing.assert_array_equal(sub.ub, np.ones(N))
    with pytest.raises(ValueError, match="no integer entry"):
        integer_spec(LinearSpec((3,), A_eq=np.ones((1, 3)), b_eq=[1.0], lb=0, ub=1))


def _start_at(z, y, spec):
    return np.stack([support_optimum(z, y)[1], np.asarray(z, float)], 1)


def test_mixed_omega_gets_completed_moves_exactly_the_feasible_supports():
    spec = selection_spec()
    y = gen_sel(1, seed=4)[0]
    problem = surco.Problem("sel", spec, f_sel)
    z0 = np.array([1, 1, 1, 0, 0, 0], float)
    nb, why = neighbourhood_for(problem, y, _start_at(z0, y, spec))
    assert isinstance(nb, CompletedMoves) and "CompletedMoves" in why and "Cardinality" in why
    assert isinstance(nb.inner, Cardinality) and (nb.inner.k_min, nb.inner.k_max) == (K_MIN, K_MAX)
    rng = np.random.default_rng(0)
    for z in (z0, np.array([0, 1, 1, 1, 1, 1.0]), np.array([1, 0, 1, 0, 1, 1.0])):
        s = nb.start(_start_at(z, y, spec))
        X = nb.apply(s, nb.moves(s))
        got = {tuple(x[:, 1]) for x in X}
        want = set()
        for i, j in itertools.product(range(-1, N), repeat=2):   # drop i / add j / both
            w = z.copy()
            if (i >= 0 and w[i] == 0) or (j >= 0 and w[j] == 1) or (i < 0 and j < 0):
                continue
            if i >= 0:
                w[i] = 0
            if j >= 0:
                w[j] = 1
            if feasible_size(int(w.sum())):
                want.add(tuple(w))
        assert got == want and len(X) == len(want)
        for x in X:
            assert spec.contains(x)
            val, xs = support_optimum(x[:, 1], y)
            np.testing.assert_allclose(x[:, 0], xs, atol=2e-4)
            assert float(f_sel(jnp.asarray(x, jnp.float32), y)) == pytest.approx(val, abs=1e-5)
        for _ in range(10):                       # random moves are moves, commits land there
            m = nb.random_move(s, rng)
            assert tuple(nb.apply(s, m[None])[0][:, 1]) in want
        x1 = nb.apply(s, m[None])[0]
        nb.commit(s, m)
        np.testing.assert_array_equal(nb.point(s), x1)


def test_completion_is_none_for_an_empty_continuous_part():
    spec = selection_spec()
    y = gen_sel(1)[0]
    comp = ContinuousCompletion(surco.Problem("sel", spec, f_sel), y, spec)
    X = np.zeros((N, 2))
    X[:2, 1] = 1.0                                # two held entries: 2·u < 1
    assert comp(X) is None
    X[2, 1] = 1.0
    x = comp(X).reshape(N, 2)
    assert spec.contains(x)
    np.testing.assert_allclose(x[:, 0], support_optimum(X[:, 1], y)[1], atol=2e-4)
    for z in itertools.product([0.0, 1.0], repeat=N):   # emptiness: by the row's range, by LP
        X = np.zeros((N, 2))
        X[:, 1] = z
        want = feasible_size(int(sum(z)))        # Ω's rows over z alone count too
        assert comp.feasible(X) == want
        assert (comp.vertex(X.reshape(-1), np.zeros(N)) is not None) == want
    with pytest.raises(ValueError, match="not mixed"):
        ContinuousCompletion(surco.Problem("p", integer_spec(spec), lambda z, y: z.sum()), y,
                             integer_spec(spec))


def _facility(n=4, m=3):
    """open (m,) binary, flows (n, m) continuous: Σ_j x_ij = 1, x_ij <= open_j."""
    nv = m + n * m
    A = np.zeros((n * m, nv))
    for i in range(n):
        for j in range(m):
            A[i * m + j, m + i * m + j], A[i * m + j, j] = 1.0, -1.0
    E = np.zeros((n, nv))
    for i in range(n):
        E[i, m + i * m: m + (i + 1) * m] = 1.0
    integer = np.r_[np.ones(m, bool), np.zeros(n * m, bool)]
    return LinearSpec((nv,), A_ub=A, b_ub=np.zeros(n * m), A_eq=E, b_eq=np.ones(n), lb=0,
                      ub=1, integer=integer, name="facility")


def test_rows_with_several_continuous_entries_go_through_the_lp():
    """Flows of open facilities: with open set O, min Σ d_ij x_ij² subject to Σ_{j∈O} x_ij = 1
    has x_ij ∝ 1/d_ij, value Σ_i 1 / Σ_{j∈O} 1/d_ij (plus the fixed costs)."""
    n, m = 4, 3
    spec = _facility(n, m)
    r = np.random.default_rng(2)
    y = {"d": jnp.asarray(r.uniform(0.5, 2.0, (n, m)), jnp.float32),
         "fix": jnp.asarray(r.uniform(0.1, 0.3, m), jnp.float32)}

    def f(x, y):
        return jnp.sum(y["d"] * x[m:].reshape(n, m) ** 2) + y["fix"] @ x[:m]
    problem = surco.Problem("facility", spec, f)
    x0 = np.r_[1.0, 0, 0, np.tile([1.0, 0, 0], n)]
    nb, why = neighbourhood_for(problem, y, x0)
    # no row over the open flags alone: any flip / swap of them (Σ unbounded: Cardinality 0..m)
    assert isinstance(nb, CompletedMoves) and isinstance(nb.inner, Cardinality), why
    assert (nb.inner.k_min, nb.inner.k_max) == (0, m)
    s = nb.start(x0)
    X = nb.apply(s, nb.moves(s))
    opens = {tuple(x[:m]) for x in X}
    # unit moves of the open flags with at least one facility open (all closed: no flows)
    want = set()
    for o in itertools.product([0.0, 1.0], repeat=m):
        D = np.array(o) - x0[:m]
        if sum(o) >= 1 and np.any(D) and np.sum(D < 0) <= 1 and np.sum(D > 0) <= 1:
            want.add(o)
    assert opens == want
    d = np.asarray(y["d"], np.float64)
    for x in X:
        assert spec.contains(x)
        O = x[:m] > 0.5
        best = np.sum(1.0 / np.sum(1.0 / d[:, O], 1)) + np.asarray(y["fix"]) @ x[:m]
        assert float(f(jnp.asarray(x, jnp.float32), y)) == pytest.approx(best, rel=1e-4)


def test_the_lp_goes_through_the_toolkits_solver_and_its_failure_is_named():
    """The LP vertex is solved on Ω's own model (`make_solver`, integers held by
    `Solver.fixed`): the same vertex and objective on HiGHS and SCIP, the time limit of the
    model is the documented default, and a failed solve raises instead of passing as empty."""
    from surco.guidance import DEFAULT_SOLVE_SECONDS
    from surco.solvers import Solution, SolverError, Status
    n, m = 4, 3
    spec = _facility(n, m)
    r = np.random.default_rng(5)
    y = {"d": jnp.asarray(r.uniform(0.5, 2.0, (n, m)), jnp.float32)}
    problem = surco.Problem("facility", spec,
                            lambda x, y: jnp.sum(y["d"] * x[m:].reshape(n, m) ** 2))
    x = np.r_[1.0, 0.0, 1.0, np.zeros(n * m)]
    cost = r.uniform(-1.0, 1.0, n * m)
    got = {}
    for backend in ("highs", "scip"):
        comp = ContinuousCompletion(problem, y, spec, backend=backend)
        v, _ = comp.vertex(x, cost)
        full = x.copy()
        full[m:] = v
        assert spec.contains(full)
        assert comp._solver().time_limit == DEFAULT_SOLVE_SECONDS
        got[backend] = float(cost @ v)
    # by hand: each client's flow goes to its cheapest open facility (columns 0 and 2)
    want = sum(min(cost[i * m + 0], cost[i * m + 2]) for i in range(n))
    assert got["highs"] == pytest.approx(want, abs=1e-9)
    assert got["scip"] == pytest.approx(want, abs=1e-9)
    x[:m] = 0.0                                   # nothing open: the flows have no point
    assert ContinuousCompletion(problem, y, spec).vertex(x, cost) is None

    class Broken:                                 # a solver that fails without a point
        time_limit = 1.0

        def fixed(self, mask, values):
            import contextlib
            return contextlib.nullcontext(self)

        def solve(self, c, check=True):
            return Solution(x=np.full(spec.n, np.nan), objective=float("nan"),
                            status=Status.ERROR, stats={"detail": "backend crashed"})
    comp = ContinuousCompletion(problem, y, spec)
    comp._lp = Broken()
    with pytest.raises(SolverError, match="facility.*ERROR: backend crashed"):
        comp.vertex(np.r_[1.0, 0.0, 1.0, np.zeros(n * m)], cost)


def test_derived_search_reaches_the_enumerated_optimum_through_its_meter():
    spec = selection_spec()
    calls = {"n": 0}

    def evaluate(X, y):
        calls["n"] += 1
        return float(f_sel(jnp.asarray(X, jnp.float32), y))

    def evaluate_batch(Xs, y):
        calls["n"] += len(Xs)
        return np.array([float(f_sel(jnp.asarray(X, jnp.float32), y)) for X in Xs])

    problem = surco.Problem("sel", spec, f_sel)
    fam = family_for(problem, gen_sel, evaluate=evaluate, evaluate_batch=evaluate_batch,
                     scip=False)
    assert "CompletedMoves" in fam.notes["neighbourhood"]
    ys = gen_sel(2, seed=7)
    supports = [np.array(z, float) for z in itertools.product([0, 1], repeat=N)
                if feasible_size(sum(z))]
    budget = 120
    for y in ys:
        opt = min(support_optimum(z, y)[0] for z in supports)
        start = fam.baselines["start"](y, surco.Budget(evaluations=5).start(
            lambda x: evaluate(x, y)))
        assert spec.contains(start)               # the start's weights are its support's best
        np.testing.assert_allclose(start[:, 0], support_optimum(start[:, 1], y)[1], atol=2e-4)
        for name in ("local-search-steepest", "local-search-first", "annealing"):
            calls["n"] = 0
            meter = surco.Budget(evaluations=budget).start(lambda x: evaluate(x, y),
                                                           evaluate_batch=lambda X: evaluate_batch(X, y))
            x = fam.baselines[name](y, meter)
            assert spec.contains(x)
            assert calls["n"] <= budget and meter.evaluations <= budget
            assert evaluate(x, y) >= opt - 1e-5
            if name != "annealing":
                assert evaluate(x, y) == pytest.approx(opt, abs=1e-5), name
