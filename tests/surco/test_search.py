"""Neighbourhoods, local search and simulated annealing (surco.search), checked against
brute-force enumeration of Ω on instances small enough to enumerate."""
import itertools
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from surco.budget import Budget, BudgetExhausted
from surco.outcome import StopReason
from surco.problems import assignment
from surco.search import Cardinality, RowChoice, local_search, simulated_annealing
from surco.solvers import LinearSpec


# -- fixtures: a 6 x 3 one-choice-per-row set with capacities ---------------------------------

def row_spec(R=6, K=3, seed=0, *, forbid=True, extra_eq=False, used=True, slack=1.15):
    """x (R, K) one-hot rows; Σ_r w[r,k] x[r,k] <= cap_k; every column used (Σ_r x[r,k] >= 1);
    optionally a forbidden cell (ub = 0, left out of its row's equality) and a generic
    equality row x[0,0] + x[1,0] = 1."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(1.0, 3.0, (R, K))
    cap = np.full(K, w.mean() * R / K * slack)
    idx = np.arange(R * K).reshape(R, K)
    ub = np.ones((R, K))
    if forbid:
        ub[2, 1] = 0.0
    eq_rows, eq_cols = [], []
    for r in range(R):
        for k in range(K):
            if ub[r, k] > 0:
                eq_rows.append(r)
                eq_cols.append(idx[r, k])
    A_eq = sp.csr_matrix((np.ones(len(eq_cols)), (eq_rows, eq_cols)), shape=(R, R * K))
    b_eq = np.ones(R)
    if extra_eq:
        A_eq = sp.vstack([A_eq, sp.csr_matrix(([1.0, 1.0], ([0, 0], [idx[0, 0], idx[1, 0]])),
                                              shape=(1, R * K))]).tocsr()
        b_eq = np.r_[b_eq, 1.0]
    cols = np.tile(np.arange(K), R)
    mem = sp.csr_matrix((w.reshape(-1), (cols, idx.reshape(-1))), shape=(K, R * K))
    blocks, b = [mem], [cap]
    if used:
        blocks.append(sp.csr_matrix((-np.ones(R * K), (cols, idx.reshape(-1))), shape=(K, R * K)))
        b.append(-np.ones(K))
    return LinearSpec(shape=(R, K), A_ub=sp.vstack(blocks).tocsr(), b_ub=np.concatenate(b),
                      A_eq=A_eq, b_eq=b_eq, lb=0.0, ub=ub.reshape(-1), integer=True,
                      name="toy-rows")


def sharding_like_spec(size, cap):
    """The form of sharding's Ω (spec_for): one device per table, memory, every device used."""
    T, D = len(size), len(cap)
    idx = np.arange(T * D).reshape(T, D)
    A_eq = sp.csr_matrix((np.ones(T * D), (np.repeat(np.arange(T), D), idx.reshape(-1))),
                         shape=(T, T * D))
    cols = np.tile(np.arange(D), T)
    mem = sp.csr_matrix((np.repeat(size, D), (cols, idx.reshape(-1))), shape=(D, T * D))
    used = sp.csr_matrix((-np.ones(T * D), (cols, idx.reshape(-1))), shape=(D, T * D))
    return LinearSpec(shape=(T, D), A_ub=sp.vstack([mem, used]).tocsr(),
                      b_ub=np.r_[cap, -np.ones(D)], A_eq=A_eq, b_eq=np.ones(T), lb=0.0, ub=1.0,
                      integer=True, name=f"sharding-like[{T}x{D}]")


def onehot(a, K):
    x = np.zeros((len(a), K))
    x[np.arange(len(a)), a] = 1.0
    return x


def enumerate_rows(spec):
    """Every x ∈ Ω, as a tuple of columns per row, checked by LinearSpec.violation only."""
    R, K = spec.shape
    return [a for a in itertools.product(range(K), repeat=R) if spec.contains(onehot(a, K))]


def brute_row_neighbours(a, omega):
    """The points of Ω one move or one swap away from a."""
    out = set()
    for b in omega:
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            out.add(b)
        elif len(diff) == 2:
            r, s = diff
            if b[r] == a[s] and b[s] == a[r]:
                out.add(b)
    return out


def brute_local(spec, a):
    """Ω's points one move or one swap from a, by trying every candidate against the spec."""
    R, K = spec.shape
    out = set()
    for r in range(R):
        for k in range(K):
            if k != a[r]:
                b = list(a)
                b[r] = k
                out.add(tuple(b))
        for s in range(r + 1, R):
            if a[r] != a[s]:
                b = list(a)
                b[r], b[s] = a[s], a[r]
                out.add(tuple(b))
    return {b for b in out if spec.contains(onehot(b, K))}


def as_tuples(X):
    return [tuple(int(v) for v in np.argmax(x, 1)) for x in X]


def nonlinear_rows(R=6, K=3, seed=3):
    """f(x) = Σ c·x + Σ_k load_k^2: the assignment family's kind of objective."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, 1, (R, K))
    w = rng.uniform(0.5, 1.5, (R, K))

    def f(x):
        x = np.asarray(x)
        return float(np.sum(c * x) + np.sum(np.sum(w * x, 0) ** 2))

    def fb(X):
        X = np.asarray(X)
        return np.sum(c * X, (1, 2)) + np.sum(np.sum(w * X, 1) ** 2, 1)

    return f, fb


@pytest.fixture(scope="module",
                params=[dict(), dict(extra_eq=True), dict(forbid=False, used=False)],
                ids=["capacities+used+forbidden", "extra-equality", "capacities-only"])
def rows_case(request):
    spec = row_spec(**request.param)
    omega = enumerate_rows(spec)
    return spec, omega


# -- RowChoice ------------------------------------------------------------------------------

def test_rowchoice_neighbourhood_equals_brute_force(rows_case):
    spec, omega = rows_case
    assert 20 < len(omega) < 3 ** 6, "fixture should cut Ω but leave it non-trivial"
    nb = RowChoice.from_spec(spec)
    total = 0
    for a in omega:
        X = nb.neighbours(onehot(a, 3))
        got = as_tuples(X)
        assert len(got) == len(set(got)), "a neighbour generated twice"
        for x in X:
            assert spec.contains(x)
        assert set(got) == brute_row_neighbours(a, omega), a
        total += len(got)
    assert total > len(omega)   # neighbourhoods are not empty in general


def test_rowchoice_rejects_points_outside_omega(rows_case):
    spec, omega = rows_case
    nb = RowChoice.from_spec(spec)
    feasible = set(omega)
    for a in itertools.product(range(3), repeat=6):
        assert nb.contains(onehot(a, 3)) == (a in feasible)
    with pytest.raises(ValueError, match=r"row 0 of x is \[1.0, 1.0, 0.0\], expected one 1"):
        nb.start(np.array([[1, 1, 0]] + [[1, 0, 0]] * 5, float))
    with pytest.raises(ValueError, match=r"x has shape \(5, 3\), expected \(6, 3\)"):
        nb.start(np.zeros((5, 3)))


def test_rowchoice_capacity_violation_message():
    spec = row_spec()
    nb = RowChoice.from_spec(spec)
    a = (0, 0, 0, 0, 0, 0)
    assert not spec.contains(onehot(a, 3))
    with pytest.raises(ValueError, match=r"toy-rows: x violates inequality row 0 \(A_ub x = "):
        nb.start(onehot(a, 3))


@pytest.mark.parametrize("tries", [64, 0], ids=["rejection", "enumeration"])
def test_rowchoice_random_neighbour_is_uniform(tries):
    spec = row_spec()
    omega = enumerate_rows(spec)
    nb = RowChoice.from_spec(spec)
    # a point whose neighbourhood is cut by the capacities (so rejection happens)
    a = max(omega, key=lambda a: len(brute_row_neighbours(a, omega)) - 0.01 * sum(a))
    full = {b for b in itertools.product(range(3), repeat=6)
            if sum(u != v for u, v in zip(a, b)) in (1, 2)}
    nbrs = brute_row_neighbours(a, omega)
    assert len(nbrs) >= 5
    rng = np.random.default_rng(0)
    state = nb.start(onehot(a, 3))
    n = 300 * len(nbrs)
    counts = {}
    for _ in range(n):
        mv = nb.random_move(state, rng, tries=tries)
        b = as_tuples(nb.apply(state, mv[None]))[0]
        counts[b] = counts.get(b, 0) + 1
    assert set(counts) == nbrs
    assert len(full) > len(nbrs)
    # each of the M neighbours drawn with probability 1/M: counts ~ Binomial(n, 1/M)
    p = 1 / len(nbrs)
    sd = math.sqrt(n * p * (1 - p))
    for b, c in counts.items():
        assert abs(c - n * p) < 4.5 * sd, (b, c, n * p)


def test_rowchoice_random_neighbour_none_without_neighbours():
    # one row, one column: x has no neighbour
    nb = RowChoice(1, 1)
    assert nb.neighbours(np.ones((1, 1))).shape == (0, 1, 1)
    assert nb.random_neighbour(np.ones((1, 1)), 0) is None


def test_rowchoice_incremental_lhs_stays_exact():
    spec = row_spec(R=12, K=4, seed=5, slack=1.3, forbid=False)
    nb = RowChoice.from_spec(spec)
    a0 = np.arange(12) % 4
    state = nb.start(onehot(a0, 4))
    rng = np.random.default_rng(1)
    for _ in range(3000):
        mv = nb.random_move(state, rng)
        nb.commit(state, mv)
        assert spec.contains(state.x)
    np.testing.assert_allclose(state.lhs, nb.A_ub @ state.x.reshape(-1), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(state.assign, np.argmax(state.x, 1))


def test_rowchoice_from_sharding_and_assignment_specs():
    from surco.problems.sharding.tasks import spec_for
    T, D = 9, 3
    size = np.arange(1, T + 1, dtype=np.float64) * 2 ** 30
    task = SimpleNamespace(n_tables=T, n_devices=D, size_bytes=size,
                           capacity=np.full(D, size.sum() / D * 1.2))
    spec = spec_for(task)
    nb = RowChoice.from_spec(spec)
    assert nb.shape == (T, D) and nb.allowed.all()
    assert nb.A_ub.shape == (2 * D, T * D)   # memory and "every device used", no extra rows
    x = onehot(np.arange(T) % D, D)
    assert spec.contains(x)
    got = as_tuples(nb.neighbours(x))
    assert len(got) == len(set(got))
    assert set(got) == brute_local(spec, tuple(np.arange(T) % D))
    # memory cuts some of the 27 cross-device swaps (device loads 12, 15, 18 GiB of 18)
    assert 0 < len(got) < 9 * 2 + 27
    nb2 = RowChoice.from_spec(assignment.space(6, 3))
    assert nb2.A_ub.shape == (3, 18) and nb2.b_ub.tolist() == [3.0, 3.0, 3.0]


def test_from_spec_rejects_other_forms():
    good = row_spec()
    kw = dict(shape=good.shape, A_ub=good.A_ub, b_ub=good.b_ub, A_eq=good.A_eq, b_eq=good.b_eq,
              lb=good.lb, ub=good.ub, integer=True, name="bad")
    with pytest.raises(ValueError, match=r"Ω 'bad' has x of shape \(18,\); expected a 2-D x"):
        RowChoice.from_spec(LinearSpec(**{**kw, "shape": (18,)}))
    with pytest.raises(ValueError, match=r"Ω 'bad' has 18 continuous entries; expected every "
                                          r"entry binary"):
        RowChoice.from_spec(LinearSpec(**{**kw, "integer": False}))
    with pytest.raises(ValueError, match=r"lower bound -2.0 at flat index 0; expected binary"):
        RowChoice.from_spec(LinearSpec(**{**kw, "lb": np.r_[-2.0, np.zeros(17)]}))
    with pytest.raises(ValueError, match=r"row 0 of x has no equality row Σ_k x\[0,k\] = 1 in "
                                          r"A_eq \(6 of 6 rows lack one\)"):
        RowChoice.from_spec(LinearSpec(**{**kw, "A_eq": None, "b_eq": None}))
    # a weighted row is not a choice row
    E = good.A_eq.tolil()
    E[3, 3 * 3 + 1] = 2.0
    with pytest.raises(ValueError, match=r"row 3 of x has no equality row Σ_k x\[3,k\] = 1 in "
                                          r"A_eq \(1 of 6 rows lack one\)"):
        RowChoice.from_spec(LinearSpec(**{**kw, "A_eq": E.tocsr()}))
    # a choice row that leaves out an allowed column (that column would be free)
    E = good.A_eq.tolil()
    E[4, 4 * 3 + 2] = 0.0
    with pytest.raises(ValueError, match=r"row 4 of x has no equality row"):
        RowChoice.from_spec(LinearSpec(**{**kw, "A_eq": E.tocsr()}))
    lb = np.zeros(18)
    lb[[0, 1]] = 1.0
    with pytest.raises(ValueError, match=r"row 0 of x has 2 entries fixed to 1 by lb"):
        RowChoice.from_spec(LinearSpec(**{**kw, "lb": lb}))
    with pytest.raises(TypeError, match=r"expected a surco.solvers.LinearSpec, got ndarray"):
        RowChoice.from_spec(np.zeros((3, 3)))


def test_from_spec_reads_fixed_entries():
    spec = row_spec(forbid=False, used=False)
    lb = np.zeros(18)
    lb[0 * 3 + 2] = 1.0    # row 0 fixed to column 2
    spec = LinearSpec(shape=spec.shape, A_ub=spec.A_ub, b_ub=spec.b_ub, A_eq=spec.A_eq,
                      b_eq=spec.b_eq, lb=lb, ub=1.0, integer=True, name="fixed")
    nb = RowChoice.from_spec(spec)
    assert nb.allowed[0].tolist() == [False, False, True]
    omega = enumerate_rows(spec)
    a = omega[0]
    assert set(as_tuples(nb.neighbours(onehot(a, 3)))) == brute_row_neighbours(a, omega)


def test_rowchoice_constructor_errors():
    with pytest.raises(ValueError, match=r"RowChoice: A_ub must have 6 columns"):
        RowChoice(2, 3, np.ones((1, 5)), [1.0])
    with pytest.raises(ValueError, match=r"RowChoice: b_ub must have 1 entries"):
        RowChoice(2, 3, np.ones((1, 6)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"row 1 of x may take no column"):
        RowChoice(2, 2, allowed=np.array([[True, False], [False, False]]))


# -- Cardinality ------------------------------------------------------------------------------

def card_brute(n, k_min, k_max, fin, fout):
    return [z for z in itertools.product((0, 1), repeat=n)
            if k_min <= sum(z) <= k_max
            and all(z[i] == 1 for i in np.flatnonzero(fin))
            and all(z[i] == 0 for i in np.flatnonzero(fout))]


def card_brute_neighbours(z, omega):
    out = set()
    for y in omega:
        d = [i for i in range(len(z)) if z[i] != y[i]]
        if len(d) == 1 or (len(d) == 2 and z[d[0]] != z[d[1]]):
            out.add(y)
    return out


@pytest.mark.parametrize("k_min,k_max,fixed", [(3, 3, False), (2, 4, False), (2, 4, True),
                                               (0, 8, False)])
def test_cardinality_neighbourhood_equals_brute_force(k_min, k_max, fixed):
    n = 8
    fin, fout = np.zeros(n, bool), np.zeros(n, bool)
    if fixed:
        fin[1], fout[[5, 6]] = True, True
    nb = Cardinality(n, k_min, k_max, fixed_in=fin, fixed_out=fout)
    omega = card_brute(n, k_min, k_max, fin, fout)
    members = set(omega)
    for z in itertools.product((0, 1), repeat=n):
        assert nb.contains(np.array(z, float)) == (z in members)
    for z in omega:
        Z = nb.neighbours(np.array(z, float))
        got = [tuple(int(v) for v in y) for y in Z]
        assert len(got) == len(set(got))
        assert set(got) == card_brute_neighbours(z, omega)
    if (k_min, k_max) == (3, 3) and not fixed:
        assert len(nb.neighbours(np.array(omega[0], float))) == 15   # 3 in x 5 out


def test_cardinality_random_neighbour_is_uniform():
    nb = Cardinality(8, 2, 4)
    z = np.array([1, 1, 1, 0, 0, 0, 0, 0], float)
    nbrs = {tuple(int(v) for v in y) for y in nb.neighbours(z)}
    assert len(nbrs) == 15 + 5 + 3
    rng = np.random.default_rng(0)
    n = 300 * len(nbrs)
    counts = {}
    for _ in range(n):
        y = tuple(int(v) for v in nb.random_neighbour(z, rng))
        counts[y] = counts.get(y, 0) + 1
    assert set(counts) == nbrs
    p = 1 / len(nbrs)
    sd = math.sqrt(n * p * (1 - p))
    assert all(abs(c - n * p) < 4.5 * sd for c in counts.values()), counts


def test_cardinality_errors():
    with pytest.raises(ValueError, match=r"need 0 <= k_min <= k_max <= n, got k_min=4, k_max=3"):
        Cardinality(8, 4, 3)
    with pytest.raises(ValueError, match=r"entry 2 is both fixed_in and fixed_out"):
        m = np.zeros(5, bool)
        m[2] = True
        Cardinality(5, 1, 2, fixed_in=m, fixed_out=m)
    with pytest.raises(ValueError, match=r"3 fixed-in and 0 fixed-out entries leave no size in "
                                          r"\[1, 2\]"):
        Cardinality(5, 1, 2, fixed_in=np.array([1, 1, 1, 0, 0], bool))
    nb = Cardinality(5, 2, 3)
    with pytest.raises(ValueError, match=r"z selects 1 entries, expected between 2 and 3"):
        nb.start(np.array([1, 0, 0, 0, 0.0]))
    with pytest.raises(ValueError, match=r"z must be binary"):
        nb.start(np.array([1, 0.5, 1, 0, 0]))


# -- local search ---------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["steepest", "first"])
def test_local_search_ends_at_exhaustively_checked_local_optimum(rows_case, strategy):
    spec, omega = rows_case
    nb = RowChoice.from_spec(spec)
    f, fb = nonlinear_rows()
    values = {a: f(onehot(a, 3)) for a in omega}
    worst_first = sorted(omega, key=values.get, reverse=True)
    for i, a0 in enumerate(worst_first[:8]):
        meter = Budget(evaluations=10_000).start(f, evaluate_batch=fb)
        res = local_search(onehot(a0, 3), meter, nb, strategy=strategy, rng=i)
        a = as_tuples([res.x])[0]
        assert res.local_optimum and res.stopped in ("local optimum", "no neighbours")
        assert spec.contains(res.x)
        assert res.value == pytest.approx(values[a], abs=1e-12)
        assert res.value <= values[a0] and res.iterations >= 1
        assert all(values[b] >= res.value - 1e-12 for b in brute_row_neighbours(a, omega)), a
        assert res.value == meter.best_value


def test_local_search_steepest_takes_the_best_move():
    spec = row_spec()
    omega = enumerate_rows(spec)
    nb = RowChoice.from_spec(spec)
    f, fb = nonlinear_rows()
    a0 = max(omega, key=lambda a: f(onehot(a, 3)))
    meter = Budget(evaluations=10_000).start(f, evaluate_batch=fb)
    res = local_search(onehot(a0, 3), meter, nb, strategy="steepest", max_iterations=1)
    best = min(brute_row_neighbours(a0, omega), key=lambda b: f(onehot(b, 3)))
    assert as_tuples([res.x])[0] == best and res.stopped is StopReason.ITERATIONS
    assert meter.evaluations == 1 + len(brute_row_neighbours(a0, omega))


@pytest.mark.parametrize("strategy", ["steepest", "first"])
def test_local_search_cardinality_local_optimum(strategy):
    n, rng = 8, np.random.default_rng(2)
    mu, L = rng.normal(size=n), rng.normal(size=(n, n)) / 3

    def f(z):
        return float(-mu @ z + (z @ L) @ (L.T @ z))

    nb = Cardinality(n, 3, 3)
    omega = card_brute(n, 3, 3, np.zeros(n, bool), np.zeros(n, bool))
    for s in range(5):
        z0 = np.array(omega[rng.integers(len(omega))], float)
        meter = Budget(evaluations=1000).start(f)
        res = local_search(z0, meter, nb, strategy=strategy, rng=s)
        z = tuple(int(v) for v in res.x)
        assert res.local_optimum and sum(z) == 3
        assert all(f(np.array(y, float)) >= res.value - 1e-12
                   for y in card_brute_neighbours(z, omega))


@pytest.mark.parametrize("strategy", ["steepest", "first"])
def test_local_search_cut_off_returns_the_meters_best(strategy):
    spec = row_spec(R=8, K=3, seed=4, slack=1.3, forbid=False)
    nb = RowChoice.from_spec(spec)
    f, fb = nonlinear_rows(R=8, K=3)
    omega = enumerate_rows(spec)
    a0 = max(omega, key=lambda a: f(onehot(a, 3)))
    meter = Budget(evaluations=25).start(f, evaluate_batch=fb)
    res = local_search(onehot(a0, 3), meter, nb, strategy=strategy, rng=0)
    assert res.stopped == "budget" and not res.local_optimum
    assert meter.evaluations == 25
    assert res.value == meter.best_value < f(onehot(a0, 3))
    np.testing.assert_array_equal(res.x, meter.best_x)
    assert spec.contains(res.x)


def test_ranked_first_improvement_with_an_exact_ranker_takes_steepest_moves():
    # a ranker that predicts the true values exactly: chunk=1 first improvement evaluates
    # the best neighbour first, so it walks steepest descent's path with fewer evaluations
    spec = row_spec()
    omega = enumerate_rows(spec)
    nb = RowChoice.from_spec(spec)
    f, fb = nonlinear_rows()
    exact = lambda x, X: np.asarray(fb(X)) - f(x)                       # noqa: E731
    for a0 in sorted(omega, key=lambda a: f(onehot(a, 3)), reverse=True)[:5]:
        m_st = Budget(evaluations=10_000).start(f, evaluate_batch=fb)
        st = local_search(onehot(a0, 3), m_st, nb, strategy="steepest")
        m_rk = Budget(evaluations=10_000).start(f, evaluate_batch=fb)
        rk = local_search(onehot(a0, 3), m_rk, nb, strategy="first", chunk=1, rank=exact)
        np.testing.assert_array_equal(rk.x, st.x)
        assert rk.iterations == st.iterations and rk.local_optimum
        # one evaluation per move, plus the start and the last (non-improving) full scan
        n_last = len(brute_row_neighbours(as_tuples([rk.x])[0], omega))
        assert m_rk.evaluations <= 1 + rk.iterations + n_last < m_st.evaluations


def test_rank_must_score_every_neighbour():
    nb = Cardinality(4, 2, 2)
    z = np.array([1.0, 1, 0, 0])
    meter = Budget(evaluations=10).start(lambda v: float(v @ np.arange(4)))
    with pytest.raises(ValueError, match=r"rank must return one finite score per neighbour, "
                                         r"shape \(4,\); got shape \(3,\)"):
        local_search(z, meter, nb, strategy="first", rank=lambda x, X: np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(4,\); got shape \(4,\) with non-finite"):
        local_search(z, meter, nb, strategy="first", rank=lambda x, X: np.full(4, np.nan))


def test_local_search_raises_when_x0_cannot_be_evaluated():
    nb = Cardinality(4, 2, 2)
    meter = Budget(evaluations=1).start(lambda z: float(z[0]))
    meter(np.array([1.0, 0, 0, 0]))
    with pytest.raises(BudgetExhausted):
        local_search(np.array([0.0, 1, 1, 0]), meter, nb)


def test_local_search_argument_errors():
    nb = Cardinality(4, 2, 2)
    meter = Budget(evaluations=10).start(lambda z: 0.0)
    z = np.array([1.0, 1, 0, 0])
    with pytest.raises(ValueError, match=r"strategy must be 'steepest' or 'first', got 'best'"):
        local_search(z, meter, nb, strategy="best")
    with pytest.raises(TypeError, match=r"nbhd must be a surco.search.Neighbourhood"):
        local_search(z, meter, "rows")
    with pytest.raises(TypeError, match=r"meter must be a surco.budget.Meter"):
        local_search(z, lambda x: 0.0, nb)
    with pytest.raises(ValueError, match=r"z selects 3 entries"):
        local_search(np.array([1.0, 1, 1, 0]), meter, nb)


# -- simulated annealing ----------------------------------------------------------------------

def test_annealing_respects_an_evaluation_budget():
    spec = row_spec(R=8, K=3, seed=4, slack=1.3, forbid=False)
    nb = RowChoice.from_spec(spec)
    f, fb = nonlinear_rows(R=8, K=3)
    a0 = tuple(np.arange(8) % 3)
    for N in (1, 5, 60):
        meter = Budget(evaluations=N).start(f, evaluate_batch=fb)
        res = simulated_annealing(onehot(a0, 3), meter, nb, rng=0)
        assert meter.evaluations == N and res.stopped == "budget"
        assert res.value == meter.best_value
        np.testing.assert_array_equal(res.x, meter.best_x)
        assert spec.contains(res.x)


def test_annealing_respects_a_time_budget():
    spec = row_spec(R=8, K=3, seed=4, slack=1.3, forbid=False)
    nb = RowChoice.from_spec(spec)
    f, fb = nonlinear_rows(R=8, K=3)
    meter = Budget(seconds=0.3).start(f, evaluate_batch=fb)
    t = time.perf_counter()
    res = simulated_annealing(onehot(np.arange(8) % 3, 3), meter, nb, rng=0)
    took = time.perf_counter() - t
    # stops at the deadline, within one iteration (its mean length, whatever the machine's
    # speed) and a scheduling allowance; it does not stop early
    per_iteration = took / max(res.iterations, 1)
    assert 0.3 <= took < 0.3 * 1.02 + 3 * per_iteration + 0.25, (took, res.iterations)
    assert res.stopped in ("budget", "stalled") and res.iterations > 10


def test_annealing_finds_the_enumerated_optimum():
    spec = row_spec(R=8, K=3, seed=4, slack=1.3, forbid=False)
    nb = RowChoice.from_spec(spec)
    f, fb = nonlinear_rows(R=8, K=3)
    omega = enumerate_rows(spec)
    values = {a: f(onehot(a, 3)) for a in omega}
    opt = min(values.values())
    worst = max(omega, key=values.get)
    assert len(omega) > 1000
    for seed in range(3):
        meter = Budget(evaluations=300).start(f, evaluate_batch=fb)
        res = simulated_annealing(onehot(worst, 3), meter, nb, rng=seed)
        assert res.value == pytest.approx(opt, abs=1e-12), seed
        assert 0 < res.accepted < res.iterations


def test_annealing_cardinality_finds_the_enumerated_optimum():
    n, rng = 10, np.random.default_rng(7)
    mu, L = rng.normal(size=n), rng.normal(size=(n, n)) / 3

    def f(z):
        return float(-mu @ z + (z @ L) @ (L.T @ z))

    omega = card_brute(n, 2, 5, np.zeros(n, bool), np.zeros(n, bool))
    opt = min(f(np.array(z, float)) for z in omega)
    assert len(omega) == 45 + 120 + 210 + 252
    nb = Cardinality(n, 2, 5)
    for seed in (1, 3):
        meter = Budget(evaluations=150).start(f)
        res = simulated_annealing(np.r_[np.ones(2), np.zeros(n - 2)], meter, nb, rng=seed)
        assert res.value == pytest.approx(opt, abs=1e-12)
        assert meter.evaluations == 150


def test_annealing_stalls_when_it_has_seen_everything():
    nb = Cardinality(5, 2, 2)          # 10 points in all
    meter = Budget(evaluations=1000).start(lambda z: float(np.arange(5) @ z))
    res = simulated_annealing(np.array([0, 0, 0, 1, 1.0]), meter, nb, rng=0, max_stall=500)
    assert res.stopped == "stalled" and meter.evaluations == 10 and res.value == 1.0


def test_annealing_argument_errors():
    nb = Cardinality(4, 2, 2)
    z = np.array([1.0, 1, 0, 0])
    with pytest.raises(ValueError, match=r"the meter's budget is unlimited; annealing cools over"):
        simulated_annealing(z, Budget().start(lambda z: 0.0), nb)
    meter = Budget(evaluations=10).start(lambda z: 0.0)
    with pytest.raises(ValueError, match=r"t0 must be a positive finite number or None, got -1"):
        simulated_annealing(z, meter, nb, t0=-1.0)
    with pytest.raises(ValueError, match=r"accept0 must lie in \(0, 1\), got 1.5"):
        simulated_annealing(z, meter, nb, accept0=1.5)


# -- speed on the target size -----------------------------------------------------------------

def test_steepest_iteration_on_50x4_is_one_batch_call():
    """One steepest iteration on 50 tables x 4 devices (150 moves + ~940 swaps) with a
    vectorised objective: enumeration, feasibility, neighbours and *one* batch evaluation.
    What makes it fast is checked by counting, not timing (no machine speed is assumed): the
    whole neighbourhood goes to the batch objective in a single call, never plan by plan."""
    T, D = 50, 4
    rng = np.random.default_rng(0)
    size = rng.uniform(0.1, 1.0, T)
    spec = sharding_like_spec(size, np.full(D, size.sum() / D * 1.3))
    nb = RowChoice.from_spec(spec)
    w = rng.uniform(0.5, 2, (T, D))
    calls = []

    def fb(X):
        calls.append(np.shape(X))
        load = np.einsum("btd,td->bd", np.asarray(X), w)
        return np.max(load ** 1.5 + 0.1 * load ** 2, axis=1)

    def f(x):
        raise AssertionError("a plan was evaluated one by one")

    x0 = onehot(np.arange(T) % D, D)
    state = nb.start(x0)
    mv = nb.moves(state)
    X = nb.apply(state, mv)
    meter = Budget(seconds=60).start(f, evaluate_batch=fb)
    vals = meter.batch(X)
    swaps = int(np.sum(mv[:, 2] >= 0))
    a = np.arange(T) % D
    assert swaps == sum(a[r] != a[s] for r in range(T) for s in range(r + 1, T)) == 937
    assert mv.shape[0] - swaps == sum(spec.contains(y) for y in X if np.abs(y - x0).sum() == 2)
    assert calls == [(mv.shape[0], T, D)]
    np.testing.assert_allclose(vals, fb(X))
    assert meter.evaluations == mv.shape[0]
