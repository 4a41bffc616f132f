"""SurCo over supports (issue 17, item 3): the exact support QP, the solver that answers with
a support's optimal weights, the z sensitivity of its value, and SurCo + local search."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surco
from surco.budget import Budget
from surco.problems import portfolio as P
from surco.problems.portfolio.weights import _box_simplex_qp, prox_batch as _prox_batch
from surco.solvers import make_solver

CFG = P.PortfolioConfig()


def _mv_instance(n, seed):
    """A factor-model instance with the mean–variance parts only (m₃ = 0)."""
    y = P.make_instance(seed, n=n)
    return dict(y, f_skew=np.zeros_like(y["f_skew"]), e_k3=np.zeros_like(y["e_k3"]))


# -- the exact QP on a support -----------------------------------------------------------------

def test_box_simplex_qp_three_assets_by_hand():
    """min −r·x + α Σ s_i x_i² s.t. Σx = 1: x_i = (r_i − μ)/(2α s_i) with μ from Σx = 1.
    r = (1, 2, 3), s = (1, 2, 4), α = 1: 1/(2s) = (1/2, 1/4, 1/8), Σ r/(2s) = 0.5 + 0.5 +
    0.375 = 1.375, Σ 1/(2s) = 0.875, μ = (1.375 − 1)/0.875 = 3/7, so
    x = ((1 − 3/7)/2, (2 − 3/7)/4, (3 − 3/7)/8) = (2/7, 11/28, 9/28)."""
    Q, q = 2 * np.diag([1.0, 2.0, 4.0]), -np.array([1.0, 2.0, 3.0])
    x = _box_simplex_qp(Q, q, np.zeros(3), np.ones(3), np.full(3, 1 / 3))
    np.testing.assert_allclose(x, [2 / 7, 11 / 28, 9 / 28], atol=1e-14)
    # an upper bound of 0.3 binds on asset 1: x_1 = 0.3 and the others share 0.7 with
    # μ = (0.5 + 0.375 − 0.7)/(0.5 + 0.125) = 0.28: x = (0.36, 0.3, 0.34)
    x = _box_simplex_qp(Q, q, np.zeros(3), np.full(3, 0.3 + 0.1 * np.array([1, 0, 1])),
                        np.array([0.35, 0.3, 0.35]))
    np.testing.assert_allclose(x, [0.36, 0.3, 0.34], atol=1e-14)
    with pytest.raises(ValueError, match=r"start x must satisfy Σx = 1 and lo <= x <= hi"):
        _box_simplex_qp(Q, q, np.zeros(3), np.full(3, 0.3), np.full(3, 1 / 3))
    # bounds that allow one point only: every weight at its bound
    x = _box_simplex_qp(Q, q, np.full(3, 0.2), np.array([0.2, 0.6, 0.6]),
                        np.array([0.2, 0.4, 0.4]))
    assert x.sum() == pytest.approx(1.0) and np.all(x >= 0.2 - 1e-15)


def test_box_simplex_qp_matches_brute_force_over_active_sets():
    """Enumerate which entries sit at l, at u or inside; the KKT point of the right pattern
    is the optimum. Against the active-set answer on random PD problems."""
    rng = np.random.default_rng(0)
    k, l, u = 5, 0.05, 0.35
    for _ in range(30):
        A = rng.normal(size=(k, k))
        Q, q = A @ A.T + 0.1 * np.eye(k), rng.normal(size=k)
        best = np.inf
        for pattern in itertools.product((0, 1, 2), repeat=k):   # 0: at l, 1: inside, 2: at u
            p = np.array(pattern)
            x = np.where(p == 0, l, u).astype(float)
            F = np.flatnonzero(p == 1)
            if F.size:
                K = np.zeros((F.size + 1, F.size + 1))
                K[:-1, :-1], K[:-1, -1], K[-1, :-1] = Q[np.ix_(F, F)], 1, 1
                rest = np.setdiff1d(np.arange(k), F)
                rhs = np.r_[-q[F] - Q[np.ix_(F, rest)] @ x[rest], 1 - x[rest].sum()]
                x[F] = np.linalg.solve(K, rhs)[:-1]
            if abs(x.sum() - 1) < 1e-12 and np.all(x >= l - 1e-12) and np.all(x <= u + 1e-12):
                best = min(best, 0.5 * x @ Q @ x + q @ x)
        x = _box_simplex_qp(Q, q, np.full(k, l), np.full(k, u), np.full(k, 0.2))
        assert abs(x.sum() - 1) < 1e-12 and x.min() >= l - 1e-15 and x.max() <= u + 1e-15
        assert 0.5 * x @ Q @ x + q @ x == pytest.approx(best, abs=1e-12)


def test_polish_weights_is_exact_for_ccmv_on_every_support():
    """β = λ = 0: the weights of each support equal brute force's (SLSQP to 1e-12, support by
    support), and the best support is brute force's optimum."""
    y = _mv_instance(7, 2)
    cfg = P.PortfolioConfig(beta=0.0, lam=0.0, k_min=3, k_max=3, l=0.05, u=0.6)
    assert P.support_is_qp(cfg)
    Z = np.array([[1.0 if i in S else 0.0 for i in range(7)]
                  for S in itertools.combinations(range(7), 3)])
    W = P.polish_weights(Z, y, cfg)
    vals = P.objective_batch(W, y, cfg)
    assert np.all(np.abs(W.sum(1) - 1) < 1e-12)
    assert np.all((W == 0) | ((W >= 0.05 - 1e-15) & (W <= 0.6 + 1e-15)))
    ref = P.brute_force_mv(y, cfg)
    assert vals.min() == pytest.approx(ref.objective, abs=1e-10)
    # the FISTA path with many steps agrees support by support
    slow = P.polish_weights(Z, y, P.PortfolioConfig(beta=0.0, lam=1e-300, k_min=3, k_max=3,
                                                    l=0.05, u=0.6), steps=20000, tol=0)
    assert np.all(vals <= P.objective_batch(slow, y, cfg) + 1e-12)


def test_polish_weights_falls_back_to_fista_where_the_qp_fails(monkeypatch):
    """A support whose QP the active set cannot solve (singular, cycling) gets FISTA's
    weights, not its unoptimised start."""
    from surco.problems.portfolio import weights as PW
    y = _mv_instance(7, 2)
    cfg = P.PortfolioConfig(beta=0.0, lam=0.0, k_min=3, k_max=3, l=0.05, u=0.6)
    Z = np.zeros((2, 7))
    Z[0, :3] = Z[1, 2:5] = 1
    exact = P.polish_weights(Z, y, cfg)
    monkeypatch.setattr(PW, "_box_simplex_qp", lambda *a, **k: None)
    fallback = P.polish_weights(Z, y, cfg, steps=5000, tol=0)
    np.testing.assert_allclose(P.objective_batch(fallback, y, cfg),
                               P.objective_batch(exact, y, cfg), atol=1e-10)


def test_polish_never_worsens_on_port1():
    y = P.to_instance(P.load_orlib(P.find_orlib("port1")))
    cfg = P.ccmv_config(0.8)
    for seed in range(5):
        X = P.random_feasible(y, cfg, num=1, seed=seed).X
        pol = P.polish(X, y, cfg)
        assert P.omega(31, cfg).contains(pol)
        assert P.objective_np(pol[:, 0], y, cfg) <= P.objective_np(X[:, 0], y, cfg)


# -- the solver that answers with a support's optimal weights ----------------------------------

def test_support_solver_answers_the_milp_support_with_its_optimal_weights():
    n = 20
    y = P.make_instance(3, n=n)
    spec = P.omega(n, CFG)
    sup, milp = P.SupportSolver(y, CFG), make_solver(spec, backend="highs")
    rng = np.random.default_rng(0)
    for _ in range(5):
        c = P.linearised_cost(y, CFG) + rng.normal(0, 0.3, (n, 2))
        X, Xm = sup.solve(c).x, milp.solve(c).x
        assert spec.contains(X)
        np.testing.assert_array_equal(X[:, 1], np.round(Xm[:, 1]))
        assert P.objective_np(X[:, 0], y, CFG) <= P.objective_np(Xm[:, 0], y, CFG) + 1e-12
        again = P.polish(X, y, CFG, steps=1000)   # little left to gain on the support
        assert P.objective_np(again[:, 0], y, CFG) >= P.objective_np(X[:, 0], y, CFG) - 1e-6
    # a fresh solver (no warm start) finds the same support and, to FISTA's tolerance, value
    Xf, X = sup.factory()().solve(c).x, sup.solve(c).x
    np.testing.assert_array_equal(Xf[:, 1], X[:, 1])
    assert P.objective_np(Xf[:, 0], y, CFG) == pytest.approx(P.objective_np(X[:, 0], y, CFG),
                                                             abs=1e-7)
    assert sup.spec is not None and sup.spec.shape == (n, 2)


def test_family_surco_zero_plans_are_optimal_on_their_supports():
    y = P.to_instance(P.load_orlib(P.find_orlib("port1")))
    cfg = P.ccmv_config(0.35)
    fam = P.portfolio_family(cfg)
    kw = dict(fam.zero_settings)
    init = kw.pop("init")(y)
    res = surco.zero(fam.problem(y), y, init=init, **dict(kw, steps=5))
    assert fam.violations(res.x, y) == []
    pol = P.polish(res.x, y, cfg)
    assert P.objective_np(pol[:, 0], y, cfg) == pytest.approx(res.true_cost, abs=1e-15)


# -- the sensitivity of the support's value in z -----------------------------------------------

def test_support_objective_z_gradient_is_the_envelope_derivative():
    """F(z) = min {f(w) : Σw = 1, l z <= w <= u z} for continuous z; its one-sided
    derivative in z_i (by finite differences of the exact QP) against the gradient of
    `support_objective` at the support's optimal plan."""
    n = 8
    y = _mv_instance(n, 5)
    cfg = P.PortfolioConfig(alpha=0.3, beta=0.0, lam=0.0, k_min=4, k_max=4, l=0.05, u=0.5)
    z = np.zeros(n)
    z[[0, 2, 3, 6]] = 1
    w = P.polish_weights(z[None], y, cfg)[0]
    X = jnp.asarray(np.stack([w, z], 1))
    value, grad = jax.value_and_grad(P.support_objective)(X, y, cfg)
    assert float(value) == pytest.approx(P.objective_np(w, y, cfg), rel=1e-6)
    np.testing.assert_allclose(np.asarray(grad)[:, 0],
                               np.asarray(jax.grad(P.weights_objective)(X[:, 0], y, cfg)),
                               rtol=1e-6)
    L, v, r = (np.asarray(y[k], np.float64) for k in ("L", "e_var", "r"))
    Q, q = 2 * cfg.alpha * (L @ L.T + np.diag(v)), -r

    def F(zz):
        lo, hi = cfg.l * zz, cfg.u * zz
        start = _prox_batch(w[None], np.zeros((1, n)), 0.0, lo[None], hi[None])[0]
        x = _box_simplex_qp(Q, q, lo, hi, start)
        return 0.5 * x @ Q @ x + q @ x

    eps = 1e-6
    for i in range(n):
        d = np.zeros(n)
        d[i] = eps
        fd = (F(z + d) - F(z)) / eps
        assert float(grad[i, 1]) == pytest.approx(fd, abs=2e-5), i


# -- SurCo then local search ---------------------------------------------------------------------

def test_surco_search_method_is_feasible_within_budget_and_no_worse_than_its_start():
    y = P.make_instance(7, n=20)
    fam = P.FAMILY
    method = P.surco_search_method(fam, CFG, share=0.5)
    zero_only = surco.compare(fam, [y], {"z": surco.surco_methods(fam)["surco-zero"]},
                              budget=Budget(evaluations=15), progress=False)
    cmp = surco.compare(fam, [y], {"zs": method}, budget=Budget(evaluations=30),
                        progress=False)
    run = cmp.runs[0]
    assert run.ok and fam.violations(run.x, y) == []
    assert run.evaluations <= 30
    # its SurCo stage is SurCo-zero on 15 evaluations; local search only improves on it
    assert run.value <= zero_only.runs[0].value + 1e-12
    assert run.value == pytest.approx(fam.evaluate(run.x, y), abs=1e-12)


def test_surco_search_method_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"share must lie in \(0, 1\), got 1"):
        P.surco_search_method(P.FAMILY, CFG, share=1)
    with pytest.raises(ValueError, match="strategy must be 'first' or 'steepest', got 'x'"):
        P.surco_search_method(P.FAMILY, CFG, strategy="x")
