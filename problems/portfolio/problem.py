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
monotone FISTA with the exact prox of the turnover term over {Σx = 1, l <= x <= u};
`polish_weights` does it for many supports at once, which is how the family's local search
scores a whole neighbourhood of supports in one call).
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


def _prox_batch(V: np.ndarray, X0: np.ndarray, t: float | np.ndarray, lo: np.ndarray,
                hi: np.ndarray) -> np.ndarray:
    """Row by row, argmin_x ½‖x − v‖² + t·Σ|x_i − x0_i| s.t. Σx = 1, lo <= x <= hi, exactly.

    With τ the multiplier of Σx = 1, x_i(τ) = clip(x0_i + soft(v_i − τ − x0_i, t), lo_i, hi_i)
    is piecewise linear and nonincreasing in τ, with kinks at v − x0 ∓ t, v − t − {lo, hi}
    and v + t − {lo, hi}; Σx(τ) is evaluated at every kink and the root of Σx(τ) = 1 is
    interpolated between the two kinks that bracket it. Entries with lo = hi = 0 stay 0
    (padding). V, X0, lo, hi: (B, k); t: scalar or (B,). Returns (B, k).
    """
    V, X0 = np.asarray(V, np.float64), np.asarray(X0, np.float64)
    t = np.broadcast_to(np.asarray(t, np.float64), V.shape[:1])[:, None]

    def x_of(tau):   # tau (B, P) -> (B, P, k)
        w = V[:, None, :] - tau[..., None] - X0[:, None, :]
        x = X0[:, None, :] + np.sign(w) * np.maximum(np.abs(w) - t[..., None], 0.0)
        return np.clip(x, lo[:, None, :], hi[:, None, :])

    P = np.concatenate([V - X0 - t, V - X0 + t, V - t - hi, V - t - lo, V + t - lo,
                        V + t - hi], axis=1)
    P.sort(axis=1)
    S = x_of(P).sum(-1)                                   # nonincreasing along P
    j = np.clip(np.sum(S >= 1.0, axis=1) - 1, 0, P.shape[1] - 2)
    rows = np.arange(P.shape[0])
    p0, p1, s0, s1 = P[rows, j], P[rows, j + 1], S[rows, j], S[rows, j + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(s0 > s1, p0 + (s0 - 1.0) * (p1 - p0) / (s0 - s1), p0)
    x = x_of(tau[:, None])[:, 0]
    # put the last ~1e-15 of the sum on the entry with the most room
    gap = 1.0 - x.sum(1)
    room = np.where(gap[:, None] > 0, hi - x, x - lo)
    jj = np.argmax(room, 1)
    x[rows, jj] += np.sign(gap) * np.minimum(np.abs(gap), room[rows, jj])
    return x


def _prox_simplex_box(v: np.ndarray, x0: np.ndarray, t: float, l: float, u: float) -> np.ndarray:
    """`_prox_batch` for one vector with the same bounds [l, u] on every entry."""
    v = np.asarray(v, np.float64)
    return _prox_batch(v[None], np.asarray(x0, np.float64)[None], t, np.full((1, v.size), l),
                       np.full((1, v.size), u))[0]


def polish_weights(Z: np.ndarray, instance: Instance, config: PortfolioConfig = PortfolioConfig(),
                   *, start: np.ndarray | None = None, steps: int = 300,
                   tol: float = 1e-12) -> np.ndarray:
    """Optimise the weights of many supports at once for the true f.

    For each row z of ``Z`` (B, n), minimises f over {Σx = 1, l <= x_i <= u where z_i = 1,
    x_i = 0 elsewhere} by monotone FISTA (Beck & Teboulle, IEEE Trans. Image Process. 18,
    2009: accelerated proximal gradient that keeps an iterate only when f does not rise).
    The turnover term is handled exactly by its prox (`_prox_batch`), the step is 1/L with L
    a bound on the Hessian of the smooth part on the support. The work is done on the
    selected entries only, (B, max Σz), so a neighbourhood of supports is one call.

    Args:
      Z: selections (B, n) in {0, 1}; every row must hold a feasible number of assets
        (k·l <= 1 <= k·u).
      instance, config: the problem.
      start: weights (B, n) to start from (projected onto each row's set); default equal
        weights on the support.
      steps: at most this many iterations; stops earlier once no row moves by more than
        ``tol``.

    Returns:
      weights (B, n): in the feasible set of each row, with f no larger than at the start.

    Raises:
      ValueError: Z not (B, n) binary, or a row whose size admits no weights.
    """
    n = check_instance(instance)
    Z = np.asarray(Z, np.float64)
    if Z.ndim != 2 or Z.shape[1] != n or not np.all((Z == 0) | (Z == 1)):
        raise ValueError(f"polish_weights: Z must be a binary array (B, {n}), got shape {Z.shape}")
    k = Z.sum(1).astype(int)
    bad = (k * config.l > 1 + 1e-12) | (k * config.u < 1 - 1e-12)
    if bad.any():
        raise ValueError(f"polish_weights: row {int(np.flatnonzero(bad)[0])} selects "
                         f"{int(k[bad][0])} assets; weights in [{config.l}, {config.u}] cannot "
                         "sum to 1")
    B, K = Z.shape[0], int(k.max()) if Z.size else 0
    if B == 0 or K == 0:
        return np.zeros_like(Z)
    order = np.argsort(-Z, axis=1, kind="stable")[:, :K]     # selected entries first
    mask = np.take_along_axis(Z, order, 1) > 0.5
    g = lambda key: np.where(mask, np.asarray(instance[key], np.float64)[order], 0.0)  # noqa: E731
    r, v, k3, x0 = g("r"), g("e_var"), g("e_k3"), g("x0")
    Ls = np.asarray(instance["L"], np.float64)[order] * mask[..., None]   # (B, K, F)
    gam = np.asarray(instance["f_skew"], np.float64)
    lo, hi = np.where(mask, config.l, 0.0), np.where(mask, config.u, 0.0)
    a, b, lam = config.alpha, config.beta, config.lam

    def smooth(x):
        w = np.einsum("bkf,bk->bf", Ls, x)
        return (-np.sum(r * x, 1) + a * (np.sum(w * w, 1) + np.sum(v * x * x, 1))
                - b * ((w ** 3) @ gam + np.sum(k3 * x ** 3, 1)))

    def full(x):
        return smooth(x) + lam * np.sum(np.abs(x - x0) * mask, 1)

    def grad(x):
        w = np.einsum("bkf,bk->bf", Ls, x)
        return (-r + 2 * a * (np.einsum("bkf,bf->bk", Ls, w) + v * x)
                - 3 * b * (np.einsum("bkf,bf->bk", Ls, gam * w * w) + k3 * x * x))

    sig = np.linalg.norm(Ls, 2, axis=(1, 2)) if Ls.shape[2] else np.zeros(B)
    lip = (2 * a * (sig ** 2 + np.max(v, 1))
           + 6 * b * (np.sum(np.abs(gam)[None] * np.abs(Ls).max(1) * np.sum(Ls * Ls, 1), 1)
                      + np.max(np.abs(k3), 1) * config.u))
    eta = 1.0 / np.maximum(lip, 1e-12)
    if start is None:
        x = np.where(mask, 1.0 / np.maximum(k, 1)[:, None], 0.0)
    else:
        start = np.asarray(start, np.float64)
        if start.shape != Z.shape:
            raise ValueError(f"polish_weights: start must have shape {Z.shape}, got {start.shape}")
        x = np.where(mask, np.take_along_axis(start, order, 1), 0.0)
    x = _prox_batch(x, x0, 0.0, lo, hi)
    fx = full(x)
    y, tk = x.copy(), 1.0
    for _ in range(int(steps)):
        zz = _prox_batch(y - eta[:, None] * grad(y), x0, eta * lam, lo, hi)
        fz = full(zz)
        keep = fz <= fx
        x_new = np.where(keep[:, None], zz, x)
        t_new = 0.5 * (1 + math.sqrt(1 + 4 * tk * tk))
        y_next = x_new + (tk / t_new) * (zz - x_new) + ((tk - 1) / t_new) * (x_new - x)
        moved = np.max(np.abs(x_new - x)) if x.size else 0.0
        done = moved <= tol and np.max(np.abs(zz - y)) <= tol
        x, fx, y, tk = x_new, np.where(keep, fz, fx), y_next, t_new
        if done:
            break
    out = np.zeros_like(Z)
    np.put_along_axis(out, order, np.where(mask, x, 0.0), 1)
    return out


def polish(X, instance: Instance, config: PortfolioConfig = PortfolioConfig(), *,
           steps: int = 300) -> np.ndarray:
    """Re-optimise the weights of a plan on its support, for the true f (`polish_weights`
    started from the plan's own weights).

    Keeps the selection z of ``X``; f is convex on the support when β·m₃ is small,
    otherwise this is a local descent. Never returns a worse plan than ``X``.

    Args:
      X: a plan (n, 2) in Ω.
      instance, config: the problem.
      steps: iterations of `polish_weights`.

    Returns:
      a plan (n, 2) in Ω with the same z and f no larger than f(X).

    Raises:
      ValueError: X not shaped (n, 2).
    """
    n = check_instance(instance)
    X = np.asarray(X, np.float64)
    if X.shape != (n, 2):
        raise ValueError(f"polish: X must have shape ({n}, 2), got {X.shape}")
    z = (X[:, 1] > 0.5).astype(np.float64)
    x = polish_weights(z[None], instance, config, start=X[None, :, 0], steps=steps)[0]
    if objective_np(x, instance, config) >= objective_np(X[:, 0] * z, instance, config):
        x = X[:, 0] * z
    return np.stack([x, z], axis=1)
