"""Quadratic relaxation (Wilder et al. 2019), straight-through, Fenchel–Young and SPO+."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _est_helpers import ArgminOracle, enumerate_points, knapsack_spec, simplex_spec
from surco.estimators import fenchel_young_loss, get_estimator, spo_plus_loss
from surco.solvers import AssignmentOracle, LinearSpec, ShortestPathOracle, make_solver
from surco.solvers.qp import QuadraticSolver


def project_simplex(v):
    """Euclidean projection onto the probability simplex (sort-based, Held et al. 1974)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    rho = np.nonzero(u - css / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - css[rho] / (rho + 1.0), 0.0)


@pytest.mark.parametrize("gamma", [0.25, 1.0])
def test_quadratic_over_simplex_is_projection_with_analytic_jacobian(gamma):
    rng = np.random.default_rng(0)
    solver = make_solver(simplex_spec(6), "highs")
    est = get_estimator("quadratic", gamma=gamma)
    for _ in range(3):
        c = rng.normal(size=6) * gamma  # scaled so that x lies on a face (1 < |S| < 6)
        x_true = project_simplex(-c / (2 * gamma))
        with jax.enable_x64(True):
            cj = jnp.asarray(c)
            x = est(solver, cj)
            J = np.asarray(jax.jacrev(lambda c: est(solver, c))(cj))
        np.testing.assert_allclose(x, x_true, atol=1e-7)
        s = (x_true > 1e-9).astype(float)
        assert 1 < s.sum() < 6  # a face that is neither a vertex nor the interior
        J_true = -(np.diag(s) - np.outer(s, s) / s.sum()) / (2 * gamma)
        np.testing.assert_allclose(J, J_true, atol=1e-7)


def test_quadratic_gradient_matches_central_differences_on_a_knapsack():
    spec = knapsack_spec()
    solver = make_solver(spec, "highs")
    est = get_estimator("quadratic", gamma=0.3)
    qp = QuadraticSolver(spec, 0.3)
    rng = np.random.default_rng(1)
    target = rng.uniform(size=5)
    loss_np = lambda c: float(np.sum((qp.solve(c).x - target) ** 2 * np.arange(1, 6)))
    checked = 0
    for _ in range(4):
        c = rng.normal(size=5) * 0.5
        with jax.enable_x64(True):
            g = np.asarray(jax.grad(lambda c: jnp.sum((est(solver, c) - target) ** 2
                                                      * jnp.arange(1, 6)))(jnp.asarray(c)))
        h = 1e-5
        fd = np.array([(loss_np(c + h * e) - loss_np(c - h * e)) / (2 * h) for e in np.eye(5)])
        # smooth here: the active set is the same at c ± h (compare the two solutions' supports)
        np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-6)
        checked += np.abs(fd).max() > 1e-3
    assert checked >= 2  # the gradients are not all trivially zero


def test_quadratic_over_shortest_path_oracle_spec_with_redundant_rows():
    """Flow conservation rows are linearly dependent: the pseudo-inverse must cope."""
    edges = np.array([[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]])
    orc = ShortestPathOracle(4, edges, 0, 3)
    est = get_estimator("quadratic", gamma=0.5)
    c = np.array([1.0, 1.2, 0.1, 1.1, 1.0])
    qp = QuadraticSolver(orc.spec, 0.5)
    with jax.enable_x64(True):
        g = np.asarray(jax.grad(lambda c: est(orc, c) @ jnp.arange(5.0))(jnp.asarray(c)))
    h = 1e-6
    fd = np.array([(qp.solve(c + h * e).x - qp.solve(c - h * e).x) @ np.arange(5.0) / (2 * h)
                   for e in np.eye(5)])
    np.testing.assert_allclose(g, fd, atol=1e-5)
    assert np.abs(fd).max() > 0.1


def test_straight_through_forward_is_integer_backward_is_relaxed():
    spec = knapsack_spec()
    pts = enumerate_points(spec)
    solver = make_solver(spec, "highs")
    st, qd = get_estimator("straight_through", gamma=0.3), get_estimator("quadratic", gamma=0.3)
    c = np.array([0.4, -0.3, 0.2, -0.1, 0.05])
    w = jnp.array([1.0, -1.0, 2.0, 0.5, -0.5])
    with jax.enable_x64(True):
        x = np.asarray(st(solver, jnp.asarray(c)))
        np.testing.assert_array_equal(x, pts[np.argmin(pts @ c)])
        g_st = jax.grad(lambda c: st(solver, c) @ w)(jnp.asarray(c))
        g_qd = jax.grad(lambda c: qd(solver, c) @ w)(jnp.asarray(c))
    np.testing.assert_allclose(g_st, g_qd, atol=1e-10)
    assert np.abs(np.asarray(g_st)).max() > 1e-3


def test_quadratic_needs_a_linear_spec_and_positive_gamma():
    with pytest.raises(ValueError, match="exposes no LinearSpec"):
        get_estimator("quadratic")(ArgminOracle(3), jnp.ones(3))
    for name in ("quadratic", "straight_through"):
        with pytest.raises(ValueError, match=r"gamma \(γ\) must be a finite number > 0"):
            get_estimator(name, gamma=0.0)
    with pytest.raises(ValueError, match="gamma"):
        QuadraticSolver(simplex_spec(3), -1.0)


# --- losses -------------------------------------------------------------------------------
def test_spo_plus_value_and_gradient_against_brute_force():
    spec = knapsack_spec()
    pts = enumerate_points(spec)
    solver = make_solver(spec, "highs")
    rng = np.random.default_rng(3)
    C_hat, C_true = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    X_true = np.stack([pts[np.argmin(pts @ c)] for c in C_true])
    with jax.enable_x64(True):
        loss = spo_plus_loss(solver, jnp.asarray(C_hat), jnp.asarray(C_true), jnp.asarray(X_true))
        grad = jax.grad(lambda ch: spo_plus_loss(solver, ch, jnp.asarray(C_true),
                                                 jnp.asarray(X_true)).sum())(jnp.asarray(C_hat))
    for i in range(4):
        q = 2 * C_hat[i] - C_true[i]
        xq = pts[np.argmin(pts @ q)]
        z = C_true[i] @ X_true[i]
        expected = -(q @ xq) + 2 * C_hat[i] @ X_true[i] - z
        np.testing.assert_allclose(loss[i], expected, atol=1e-9)
        np.testing.assert_allclose(grad[i], 2 * (X_true[i] - xq), atol=1e-9)
        # SPO+ upper-bounds the regret c·x*(ĉ) - c·x*(c)
        regret = C_true[i] @ pts[np.argmin(pts @ C_hat[i])] - z
        assert float(loss[i]) >= regret - 1e-9
    # a perfect prediction has zero loss
    with jax.enable_x64(True):
        assert abs(float(spo_plus_loss(solver, jnp.asarray(C_true[0]), jnp.asarray(C_true[0]),
                                       jnp.asarray(X_true[0])))) < 1e-9


def test_fenchel_young_gradient_is_target_minus_perturbed_mean():
    solver = ArgminOracle(4)
    c = jnp.array([0.3, -0.2, 0.5, 0.1])
    y = jnp.array([0.0, 0.0, 1.0, 0.0])
    key = jax.random.key(4)
    est = get_estimator("perturbed", sigma=0.5, n=2000, noise="gumbel")
    g = jax.grad(lambda c: fenchel_young_loss(solver, c, y, key, sigma=0.5, n=2000,
                                              noise="gumbel"))(c)
    np.testing.assert_allclose(g, y - est(solver, c, key), atol=1e-6)
    # ... whose expectation is y - softmax(-c/σ) (Berthet et al. Prop. 4.1)
    p = jax.nn.softmax(-c / 0.5)
    assert np.all(np.abs(np.asarray(g - (y - p))) < 5 * np.sqrt(p * (1 - p) / 2000))
    # the loss is convex in c: it decreases along -g
    l0 = fenchel_young_loss(solver, c, y, key, sigma=0.5, n=2000, noise="gumbel")
    l1 = fenchel_young_loss(solver, c - 0.5 * g, y, key, sigma=0.5, n=2000, noise="gumbel")
    assert float(l1) < float(l0)


def test_losses_bad_input():
    solver = AssignmentOracle(2, 2)
    c = jnp.ones((2, 2))
    with pytest.raises(ValueError, match="x_true has shape"):
        spo_plus_loss(solver, c, c, jnp.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        spo_plus_loss(solver, c, c.at[0, 0].set(jnp.nan), c)
    with pytest.raises(ValueError, match="sigma"):
        fenchel_young_loss(solver, c, c, jax.random.key(0), sigma=0.0)
    with pytest.raises(ValueError, match="n "):
        fenchel_young_loss(solver, c, c, jax.random.key(0), n=0)
    with pytest.raises(ValueError, match="key"):
        fenchel_young_loss(solver, c, c, None)
