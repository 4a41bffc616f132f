"""Estimator values against closed forms and brute force."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from _est_helpers import ArgminOracle, enumerate_points, knapsack_spec, simplex_spec
from surco.estimators import get_estimator
from surco.solvers import make_solver


def _value_and_jacobian(est, solver, c, key) -> tuple[np.ndarray, np.ndarray]:
    """x = est(solver, c, key) and its Jacobian dx/dc from one forward pass: the estimator's
    40 000 sampled solves are made once, not once for x and again inside ``jacrev`` (same
    key, so the same samples and the same numbers as two separate calls)."""
    J, x = jax.jacrev(lambda c: (lambda v: (v, v))(est(solver, c, key)), has_aux=True)(c)
    return np.asarray(x, float), np.asarray(J, float)


# --- perturbed (Berthet et al. 2020) -------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_perturbed_gumbel_argmin_over_simplex_is_softmax(sigma):
    """E[argmin(c - σZ)] = softmax(-c/σ) for Gumbel Z; Jacobian -(diag p - p pᵀ)/σ."""
    n, d = 40_000, 4
    solver = ArgminOracle(d)
    c = jnp.array([0.3, -0.2, 0.5, 0.1])
    est = get_estimator("perturbed", sigma=sigma, n=n, noise="gumbel")
    key = jax.random.key(11)
    p = np.asarray(jax.nn.softmax(-c / sigma), float)
    x, J = _value_and_jacobian(est, solver, c, key)
    tol_x = 5 * np.sqrt(p * (1 - p) / n)                    # 5 standard errors per entry
    assert np.all(np.abs(x - p) <= tol_x), (x, p)
    J_true = -(np.diag(p) - np.outer(p, p)) / sigma
    # each entry is a mean of x_i(1 - e^{-Z_j})/σ, whose second moment is <= 1/σ²
    tol_J = 5 / (sigma * np.sqrt(n))
    assert np.max(np.abs(J - J_true)) <= tol_J, (J, J_true)
    # and it is not trivially small: the closed form has entries of size ~p/σ
    assert np.max(np.abs(J_true)) > 4 * tol_J


def test_perturbed_gaussian_two_point_is_probit():
    """Over {e1, e2} with Gaussian Z: x̄_1 = Φ((c2 - c1)/(σ√2)), derivative by the chain rule."""
    n, sigma = 40_000, 0.7
    solver = ArgminOracle(2)
    c = jnp.array([0.2, 0.5])
    est = get_estimator("perturbed", sigma=sigma, n=n, noise="gaussian")
    key = jax.random.key(2)
    s = sigma * np.sqrt(2.0)
    p1 = norm.cdf((0.5 - 0.2) / s)
    x, J = _value_and_jacobian(est, solver, c, key)
    assert abs(x[0] - p1) <= 5 * np.sqrt(p1 * (1 - p1) / n) and abs(x.sum() - 1) < 1e-6
    dens = norm.pdf((0.5 - 0.2) / s) / s
    J_true = np.array([[-dens, dens], [dens, -dens]])
    assert np.max(np.abs(J - J_true)) <= 5 / (sigma * np.sqrt(n)), (J, J_true)


def test_perturbed_milp_backend_matches_oracle_with_same_key():
    """The same samples through HiGHS on the simplex MILP give the oracle's numbers."""
    c = jnp.array([0.3, -0.2, 0.5, 0.1])
    est = get_estimator("perturbed", sigma=0.5, n=24, noise="gumbel")
    key = jax.random.key(5)
    milp, orc = make_solver(simplex_spec(4), "highs"), ArgminOracle(4)
    np.testing.assert_allclose(est(milp, c, key), est(orc, c, key), atol=1e-6)
    w = jnp.array([1.0, -2.0, 0.5, 3.0])
    g1 = jax.grad(lambda c: est(milp, c, key) @ w)(c)
    g2 = jax.grad(lambda c: est(orc, c, key) @ w)(c)
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)


# --- blackbox (Vlastelica et al. 2020) ------------------------------------------------------
@pytest.mark.parametrize("lam", [0.5, 3.0, 20.0])
def test_blackbox_gradient_equals_brute_force_interpolation(lam):
    spec = knapsack_spec()
    pts = enumerate_points(spec)
    assert len(pts) >= 4
    solver = make_solver(spec, "highs")
    est = get_estimator("blackbox", lam=lam)
    rng = np.random.default_rng(0)
    for _ in range(3):
        c = rng.normal(size=5)
        target = rng.uniform(size=5)
        loss = lambda x: jnp.sum((x - target) ** 2)
        x_bf = pts[np.argmin(pts @ c)]
        g_x = 2 * (x_bf - target)
        x_prime = pts[np.argmin(pts @ (c + lam * g_x))]
        expected = (x_prime - x_bf) / lam                      # = -(x - x')/λ, their Eq. 6
        with jax.enable_x64(True):
            grad = jax.grad(lambda c: loss(est(solver, c)))(jnp.asarray(c))
        np.testing.assert_allclose(grad, expected, atol=1e-9)
        if not np.array_equal(x_prime, x_bf):
            assert np.abs(np.asarray(grad)).max() > 0


@pytest.mark.parametrize("lam", [0.05, 0.3])
def test_blackbox_norm_projection_equals_brute_force(lam):
    """With ``projection="norm"``: x = argmin at c/‖c‖, re-solve at c/‖c‖ + λ g_x, and the
    interpolation gradient goes back through J = (I - ĉĉᵀ)/‖c‖ (closed form)."""
    spec = knapsack_spec()
    pts = enumerate_points(spec)
    solver = make_solver(spec, "highs")
    est = get_estimator("blackbox", lam=lam, projection="norm")
    rng = np.random.default_rng(1)
    changed = 0
    for _ in range(4):
        c = 3.0 * rng.normal(size=5)
        target = rng.uniform(size=5)
        loss = lambda x: jnp.sum((x - target) ** 2)
        n = np.linalg.norm(c)
        chat = c / n
        x_bf = pts[np.argmin(pts @ chat)]
        x_prime = pts[np.argmin(pts @ (chat + lam * 2 * (x_bf - target)))]
        d = (x_prime - x_bf) / lam
        expected = (d - chat * (chat @ d)) / n
        with jax.enable_x64(True):
            grad = jax.grad(lambda c: loss(est(solver, c)))(jnp.asarray(c))
            np.testing.assert_array_equal(est(solver, jnp.asarray(c)), x_bf)
        np.testing.assert_allclose(grad, expected, atol=1e-9)
        changed += not np.array_equal(x_prime, x_bf)
    assert changed >= 1          # the fixture exercises a nonzero gradient


def test_blackbox_descent_step_reaches_the_better_solution():
    """A step c - λ·∇ along the blackbox gradient lands on x' and lowers a linear loss."""
    solver = ArgminOracle(5)
    c = jnp.array([0.0, 0.4, 0.8, 1.2, 1.6])
    w = jnp.array([3.0, 2.0, -1.0, 0.5, 0.0])
    lam = 1.0
    est = get_estimator("blackbox", lam=lam)
    x = est(solver, c)
    grad = jax.grad(lambda c: est(solver, c) @ w)(c)
    x_new = est(solver, c - lam * grad)
    assert float(x_new @ w) < float(x @ w)


# --- identity / negative identity (Sahoo et al. 2023) ---------------------------------------
def test_identity_backward_values_and_projection_jacobians():
    solver = ArgminOracle(4)
    c = jnp.array([1.0, -0.5, 2.0, 0.3])
    g = jnp.array([0.2, -1.0, 0.5, 4.0])
    for name, sign in (("identity", 1.0), ("neg_identity", -1.0)):
        est = get_estimator(name)
        _, vjp = jax.vjp(lambda c: est(solver, c), c)
        np.testing.assert_allclose(vjp(g)[0], sign * g)
        # "mean": J = I - 11ᵀ/d, so the gradient has zero mean
        est = get_estimator(name, projection="mean")
        _, vjp = jax.vjp(lambda c: est(solver, c), c)
        np.testing.assert_allclose(vjp(g)[0], sign * (g - g.mean()), atol=1e-6)
        # "norm": J = (I - ĉĉᵀ)/‖c‖, so the gradient is orthogonal to c
        est = get_estimator(name, projection="norm")
        _, vjp = jax.vjp(lambda c: est(solver, c), c)
        ch = c / jnp.linalg.norm(c)
        expect = sign * (g - ch * (ch @ g)) / jnp.linalg.norm(c)
        np.testing.assert_allclose(vjp(g)[0], expect, rtol=1e-5, atol=1e-6)
        # norm and standardize do not change an argmin over the simplex
        for proj in ("norm", "standardize"):
            np.testing.assert_array_equal(get_estimator(name, projection=proj)(solver, c),
                                          solver.solve(np.asarray(c)).x)
