"""Combinatorial portfolio selection as a SurCo `Problem`: Ω over (x, z) as a MILP.

Ω (the plan is ``X`` of shape (n, 2), column 0 the weights x, column 1 the selection z):

    Σ_i x_i = 1,   l·z_i <= x_i <= u·z_i,   k_min <= Σ_i z_i <= k_max,   z ∈ {0, 1}^n.

What a linear surrogate can reach. ``argmin_{X∈Ω} c·X`` is an extreme point of conv(Ω): for
the selected set every weight but at most one sits at l or u (the LP over x for fixed z is
a bounded-simplex LP, solved greedily). So SurCo's plans are "bang-bang" portfolios, e.g.
five assets at u = 0.2, while the optimum of a risk-averse objective usually spreads weights
strictly inside [l, u]. What makes the surrogate work here is to let it do the
combinatorial part only: SurCo chooses the support (which assets, how many), and `polish`
then re-optimises the weights on that support for the true f (a small continuous problem:
proximal gradient with the exact prox of the turnover term over {Σx = 1, l <= x <= u}).
The polished plan is still in Ω. `bench/portfolio.py` measures both, with and without
polish. A good starting cost is the Frank–Wolfe linearisation c_x = ∇f(x̄) at the equal
weight portfolio x̄, c_z = 0 (`linearised_cost`).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from surco import Problem
from surco.solvers import LinearSpec

from .instances import Instance, check_instance


@dataclasses.dataclass(frozen=True)
class PortfolioConfig:
    """Objective weights and constraints (defaults from LANCER, NeurIPS 2023).

    Attributes:
      alpha: weight α of the variance xᵀΣx.
      beta: weight β of the third moment m₃(x) (subtracted: positive skew is rewarded).
      lam: weight λ of the turnover ‖x − x₀‖₁.
      k_min, k_max: number of assets held.
      l, u: bounds of each held weight.

    Raises:
      ValueError: negative weights, 0 <= l <= u <= 1 violated, k_min > k_max, or bounds that
        admit no portfolio summing to 1 (k_max·u < 1 or k_min·l > 1).
    """

    alpha: float = 0.1
    beta: float = 0.5
    lam: float = 0.01
    k_min: int = 3
    k_max: int = 10
    l: float = 0.01
    u: float = 0.2

    def __post_init__(self):
        for name in ("alpha", "beta", "lam"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"PortfolioConfig.{name} must be finite and >= 0, got {v}")
        if not 0 <= self.l <= self.u <= 1:
            raise ValueError(f"PortfolioConfig: need 0 <= l <= u <= 1, got l={self.l}, u={self.u}")
        if not 1 <= self.k_min <= self.k_max:
            raise ValueError(f"PortfolioConfig: need 1 <= k_min <= k_max, got {self.k_min}, {self.k_max}")
        if self.k_max * self.u < 1 - 1e-12:
            raise ValueError(f"PortfolioConfig: k_max·u = {self.k_max * self.u:.4g} < 1, no "
                             "portfolio can sum to 1")
        if self.k_min * self.l > 1 + 1e-12:
            raise ValueError(f"PortfolioConfig: k_min·l = {self.k_min * self.l:.4g} > 1")

    def sizes(self, n: int) -> tuple[int, int]:
        """The feasible numbers of held assets for n assets: ``(lo, hi)``.

        Raises:
          ValueError: if no size is feasible for this n.
        """
        lo = max(self.k_min, math.ceil(1 / self.u - 1e-9))
        hi = min(self.k_max, n, math.floor(1 / self.l + 1e-9) if self.l > 0 else n)
        if lo > hi:
            raise ValueError(f"no feasible portfolio size for n={n} assets with {self}")
        return lo, hi


def omega(n: int, config: PortfolioConfig = PortfolioConfig()) -> LinearSpec:
    """Ω as a `LinearSpec` of shape (n, 2): columns (x, z), see the module docstring.

    Raises:
      ValueError: n smaller than the smallest feasible portfolio.
    """
    config.sizes(int(n))
    n = int(n)
    ix, iz = 2 * np.arange(n), 2 * np.arange(n) + 1
    rows = np.arange(n)
    A_link = sp.vstack([
        sp.csr_matrix((np.r_[np.ones(n), -config.u * np.ones(n)], (np.r_[rows, rows], np.r_[ix, iz])),
                      shape=(n, 2 * n)),                                  # x - u z <= 0
        sp.csr_matrix((np.r_[-np.ones(n), config.l * np.ones(n)], (np.r_[rows, rows], np.r_[ix, iz])),
                      shape=(n, 2 * n)),                                  # l z - x <= 0
        sp.csr_matrix((np.ones(n), (np.zeros(n, int), iz)), shape=(1, 2 * n)),    # Σz <= k_max
        sp.csr_matrix((-np.ones(n), (np.zeros(n, int), iz)), shape=(1, 2 * n)),   # -Σz <= -k_min
    ])
    b = np.r_[np.zeros(2 * n), config.k_max, -config.k_min]
    A_eq = sp.csr_matrix((np.ones(n), (np.zeros(n, int), ix)), shape=(1, 2 * n))
    ub = np.empty(2 * n)
    ub[ix], ub[iz] = config.u, 1.0
    integer = np.zeros(2 * n, bool)
    integer[iz] = True
    return LinearSpec(shape=(n, 2), A_ub=A_link, b_ub=b, A_eq=A_eq, b_eq=[1.0], lb=0.0, ub=ub,
                      integer=integer, name=f"portfolio-{n}")


# -- the objective ------------------------------------------------------------------------------

def variance(x: jax.Array, instance: Instance) -> jax.Array:
    """xᵀΣx = ‖Lᵀx‖² + Σ v_i x_i² (JAX)."""
    w = jnp.asarray(instance["L"]).T @ x
    return w @ w + jnp.asarray(instance["e_var"]) @ (x * x)


def third_moment(x: jax.Array, instance: Instance) -> jax.Array:
    """m₃(x) = Σ_ijk M_ijk x_i x_j x_k = Σ_k γ_k (Lᵀx)_k³ + Σ_i κ_i x_i³ (JAX)."""
    w = jnp.asarray(instance["L"]).T @ x
    return jnp.asarray(instance["f_skew"]) @ (w ** 3) + jnp.asarray(instance["e_k3"]) @ (x ** 3)


def smooth_objective(x: jax.Array, instance: Instance, config: PortfolioConfig) -> jax.Array:
    """The smooth part of f: ``−r·x + α xᵀΣx − β m₃(x)`` for weights x (n,)."""
    x = jnp.asarray(x)
    return (-jnp.asarray(instance["r"]) @ x + config.alpha * variance(x, instance)
            - config.beta * third_moment(x, instance))


def weights_objective(x: jax.Array, instance: Instance, config: PortfolioConfig) -> jax.Array:
    """LANCER's f(x) = −r·x + α xᵀΣx − β m₃(x) + λ‖x − x₀‖₁ for weights x (n,) (JAX)."""
    x = jnp.asarray(x)
    return (smooth_objective(x, instance, config)
            + config.lam * jnp.sum(jnp.abs(x - jnp.asarray(instance["x0"]))))


def objective_np(x, instance: Instance, config: PortfolioConfig) -> float:
    """f(x) in float64 numpy for weights x (n,) (the reported value)."""
    x = np.asarray(x, np.float64).reshape(-1)
    L = np.asarray(instance["L"], np.float64)
    w = L.T @ x
    var = w @ w + np.asarray(instance["e_var"], np.float64) @ (x * x)
    m3 = np.asarray(instance["f_skew"], np.float64) @ w ** 3 + np.asarray(instance["e_k3"]) @ x ** 3
    return float(-np.asarray(instance["r"], np.float64) @ x + config.alpha * var
                 - config.beta * m3
                 + config.lam * np.abs(x - np.asarray(instance["x0"], np.float64)).sum())


def features(instance: Instance, config: PortfolioConfig = PortfolioConfig()) -> jax.Array:
    """Per-asset features for SurCo-prior, (n, 6 + K): r_i, Σ_ii, v_i, κ_i, x₀_i, the
    gradient of the smooth part of f (under ``config``) at the equal-weight portfolio, and
    the loadings L_i."""
    r = jnp.asarray(instance["r"])
    L = jnp.asarray(instance["L"])
    ev = jnp.asarray(instance["e_var"])
    n = r.shape[0]
    xbar = jnp.full((n,), 1.0 / n, r.dtype)
    g = jax.grad(smooth_objective)(xbar, instance, config)
    return jnp.concatenate([jnp.stack([r, jnp.sum(L * L, 1) + ev, ev, jnp.asarray(instance["e_k3"]),
                                       jnp.asarray(instance["x0"]), g], 1), L], axis=1)


def make_problem(n: int, config: PortfolioConfig = PortfolioConfig()) -> Problem:
    """The portfolio problem with n assets for SurCo: Ω = `omega` (a MILP over (x, z)),
    f = LANCER's objective of the weights (column 0), `features` per asset, and ``evaluate``
    = f in float64.

    Raises:
      ValueError: n too small for the config.
    """
    spec = omega(n, config)

    def f(X, y):
        return weights_objective(X[..., 0], y, config)

    def evaluate(X, y):
        return objective_np(np.asarray(X).reshape(-1, 2)[:, 0], y, config)

    return Problem(name=f"portfolio-{n}", space=spec, objective=f,
                   features=lambda y: features(y, config), evaluate=evaluate)


def linearised_cost(instance: Instance, config: PortfolioConfig = PortfolioConfig()) -> np.ndarray:
    """A starting surrogate (n, 2): c_x = ∇f at the equal-weight portfolio (Frank–Wolfe's
    linearisation), c_z = 0."""
    n = check_instance(instance)
    xbar = jnp.full((n,), 1.0 / n)
    g = np.asarray(jax.grad(weights_objective)(xbar, instance, config), np.float64)
    return np.stack([g, np.zeros(n)], axis=1)


# -- polishing the weights on a fixed support -------------------------------------------------

def _prox_simplex_box(v: np.ndarray, x0: np.ndarray, t: float, l: float, u: float,
                      iters: int = 100) -> np.ndarray:
    """argmin_x ½‖x − v‖² + t·Σ|x_i − x0_i|  s.t. Σx = 1, l <= x <= u (exact up to the
    bisection on the multiplier τ of Σx = 1: x_i(τ) = clip(x0_i + soft(v_i − τ − x0_i, t), l, u)
    is nonincreasing in τ)."""
    def x_of(tau):
        w = v - tau - x0
        return np.clip(x0 + np.sign(w) * np.maximum(np.abs(w) - t, 0.0), l, u)

    lo, hi = float(np.min(v - x0)) - t - u - 1.0, float(np.max(v)) + t + 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if x_of(mid).sum() > 1.0:
            lo = mid
        else:
            hi = mid
    x = x_of(0.5 * (lo + hi))
    # put the last ~1e-15 of the sum on a weight with room
    gap = 1.0 - x.sum()
    room = (u - x) if gap > 0 else (x - l)
    j = int(np.argmax(room))
    x[j] += np.sign(gap) * min(abs(gap), room[j])
    return x


def polish(X, instance: Instance, config: PortfolioConfig = PortfolioConfig(), *,
           steps: int = 300) -> np.ndarray:
    """Re-optimise the weights of a plan on its support, for the true f.

    Keeps the selection z of ``X`` and minimises f over {Σx = 1, l <= x_i <= u on the
    support, 0 elsewhere} by proximal gradient descent (the turnover term handled exactly by
    its prox, the step 1/L from a bound on the Hessian of the smooth part), keeping the best
    iterate. f is convex on the support when β·m₃ is small; otherwise this is a local search
    that never returns a worse plan than ``X``.

    Args:
      X: a plan (n, 2) in Ω.
      instance, config: the problem.
      steps: proximal gradient steps.

    Returns:
      a plan (n, 2) in Ω with the same z and f no larger than f(X).

    Raises:
      ValueError: X not shaped (n, 2).
    """
    n = check_instance(instance)
    X = np.asarray(X, np.float64)
    if X.shape != (n, 2):
        raise ValueError(f"polish: X must have shape ({n}, 2), got {X.shape}")
    S = X[:, 1] > 0.5
    x = X[S, 0].copy()
    sub = {k: np.asarray(v, np.float64)[S] if k != "f_skew" else np.asarray(v, np.float64)
           for k, v in instance.items()}
    L = sub["L"]
    # Lipschitz bound of the gradient of the smooth part on the box
    Lip = (2 * config.alpha * (np.linalg.norm(L, 2) ** 2 + sub["e_var"].max())
           + 6 * config.beta * (np.sum(np.abs(sub["f_skew"]) * np.abs(L).max(0)
                                       * np.sum(L * L, 0)) + np.abs(sub["e_k3"]).max() * config.u))
    eta = 1.0 / max(Lip, 1e-12)
    grad = _grad_fn(config)
    best_x, best_f = x.copy(), objective_np(x, sub, config)
    for _ in range(int(steps)):
        g = np.asarray(grad(x, sub), np.float64)
        x = _prox_simplex_box(x - eta * g, sub["x0"], eta * config.lam, config.l, config.u)
        f = objective_np(x, sub, config)
        if f < best_f - 1e-15:
            best_x, best_f = x.copy(), f
    out = np.zeros((n, 2))
    # turnover of the assets off the support is constant, so comparing on S is enough
    if best_f < objective_np(X[S, 0], sub, config):
        out[S, 0] = best_x
    else:
        out[S, 0] = X[S, 0]
    out[S, 1] = 1.0
    return out


_GRADS: dict[PortfolioConfig, object] = {}


def _grad_fn(config: PortfolioConfig):
    if config not in _GRADS:
        _GRADS[config] = jax.jit(jax.grad(lambda x, y: smooth_objective(x, y, config)))
    return _GRADS[config]
