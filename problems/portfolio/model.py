"""The portfolio model: its configuration (`PortfolioConfig`), Ω (`omega`) and f.

f is LANCER's objective of the weights x (Zharmagambetov et al., NeurIPS 2023):
``−r·x + α xᵀΣx − β m₃(x) + λ‖x − x₀‖₁``, in JAX (`weights_objective`, `support_objective`
for SurCo) and in float64 numpy (`objective_np`, `objective_batch`, the reported values).
`surco.problems.portfolio.problem` builds the SurCo `Problem` from them and re-exports them.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from surco.solvers import LinearSpec

from .instances import Instance, check_instance

__all__ = ["PortfolioConfig", "omega", "variance", "third_moment", "smooth_objective",
           "weights_objective", "support_objective", "objective_np", "objective_batch"]


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


def support_objective(X: jax.Array, instance: Instance, config: PortfolioConfig) -> jax.Array:
    """f of a plan X (n, 2) whose weights are optimal on its support (a `SupportSolver`'s
    answer), with the sensitivity of the support's optimal value as the gradient in z.

    The value is f(x) (`weights_objective` of column 0), unchanged; the gradient in x is
    ∇f(x). In z it is, by the envelope theorem (the derivative of an optimal value in the
    right-hand side of a constraint is minus its multiplier; Fiacco, Introduction to
    Sensitivity and Stability Analysis in Nonlinear Programming, 1983, §3.4), the derivative
    of F(z) = min {f(w) : Σw = 1, l·z <= w <= u·z} in z_i:

        ∂F/∂z_i = u·min(s_i, 0) + l·max(s_i, 0),   s_i = ∂f/∂x_i + ν,

    with ν the multiplier of Σw = 1, read off the held assets strictly inside (l, u)
    (where s_i = 0; when none is, the largest −∂f/∂x_i of a held asset, which keeps
    s_i <= 0 on the held ones). For an asset not held, u·s_i < 0 is the rate at which
    adding it would lower the optimum; so SurCo's cost over z learns which assets are worth
    holding, where the MILP's own weights say nothing about that.
    """
    x, z = X[..., 0], X[..., 1]
    value, g = jax.value_and_grad(weights_objective)(x, instance, config)
    g = jax.lax.stop_gradient(g)
    held = z > 0.5
    span = config.u - config.l
    inner = held & (x > config.l + 1e-6 * span) & (x < config.u - 1e-6 * span)
    n_inner = jnp.sum(inner)
    nu = jnp.where(n_inner > 0, -jnp.sum(jnp.where(inner, g, 0.0)) / jnp.maximum(n_inner, 1),
                   -jnp.max(jnp.where(held, g, -jnp.inf)))
    s = g + nu
    dz = jax.lax.stop_gradient(config.u * jnp.minimum(s, 0.0) + config.l * jnp.maximum(s, 0.0))
    return value + jnp.sum(dz * (z - jax.lax.stop_gradient(z)))


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


def objective_batch(W: np.ndarray, instance: Instance, config: PortfolioConfig) -> np.ndarray:
    """f of many weight vectors at once, float64 numpy: W (B, n) -> (B,) (`objective_np`
    row by row, in one expression).

    Raises:
      ValueError: W not shaped (B, n).
    """
    n = check_instance(instance)
    W = np.asarray(W, np.float64)
    if W.ndim != 2 or W.shape[1] != n:
        raise ValueError(f"objective_batch: W must have shape (B, {n}), got {W.shape}")
    L = np.asarray(instance["L"], np.float64)
    w = W @ L
    var = np.sum(w * w, 1) + (W * W) @ np.asarray(instance["e_var"], np.float64)
    m3 = (w ** 3) @ np.asarray(instance["f_skew"], np.float64) \
        + (W ** 3) @ np.asarray(instance["e_k3"], np.float64)
    return (-W @ np.asarray(instance["r"], np.float64) + config.alpha * var - config.beta * m3
            + config.lam * np.abs(W - np.asarray(instance["x0"], np.float64)[None]).sum(1))
