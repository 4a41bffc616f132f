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
The polished plan is still in Ω. ``make_problem(..., reoptimise=True)`` builds this into Ω's
solver (`SupportSolver`: every MILP answer comes back with its support's optimal weights,
exact when the support's problem is a convex QP, `support_is_qp`) and gives f a gradient in
z, the sensitivity of the support's optimal value (`support_objective`), so that SurCo's
cost learns which assets to hold; that is the family's SurCo problem. A good starting cost
is the Frank–Wolfe linearisation c_x = ∇f(x̄) at the equal weight portfolio x̄, c_z = 0
(`linearised_cost`).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from surco import Problem
from surco.solvers import LinearSpec, Solver, Status

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


def make_problem(n: int, config: PortfolioConfig = PortfolioConfig(), *,
                 reoptimise: bool = False, backend: str = "highs") -> Problem:
    """The portfolio problem with n assets for SurCo: Ω = `omega` (a MILP over (x, z)),
    f = LANCER's objective of the weights (column 0), `features` per asset, and ``evaluate``
    = f in float64.

    Args:
      n: number of assets.
      config: objective and constraints.
      reoptimise: False: Ω is the `LinearSpec` (SurCo's plans are the MILP's extreme points,
        see the module docstring). True: Ω is solved by a `SupportSolver` per instance, which
        answers the MILP's support with its optimal weights; SurCo's surrogate then chooses
        the support only and f(x) is the true value of that choice.
      backend: the MILP backend of the `SupportSolver` (with ``reoptimise``).

    Raises:
      ValueError: n too small for the config.
    """
    spec = omega(n, config)
    space = spec
    if reoptimise:
        def space(y):
            return SupportSolver(y, config, backend=backend)

    def f(X, y):
        if reoptimise:
            return support_objective(X, y, config)
        return weights_objective(X[..., 0], y, config)

    def evaluate(X, y):
        return objective_np(np.asarray(X).reshape(-1, 2)[:, 0], y, config)

    return Problem(name=f"portfolio-{n}" + ("-support" if reoptimise else ""), space=space,
                   objective=f,
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


def _box_simplex_qp(Q: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    x: np.ndarray, max_iter: int | None = None) -> np.ndarray | None:
    """``argmin ½ xᵀQx + q·x  s.t.  Σx = 1, lo <= x <= hi`` exactly, for Q positive definite,
    by the primal active-set method (Nocedal & Wright, Numerical Optimization, 2nd ed. 2006,
    Alg. 16.3) started from the feasible point ``x``.

    The working set holds bounds only (Σx = 1 is always in it). Each iteration solves the
    equality-constrained QP on the free entries (a (k+1)-square KKT system) and either steps
    to its minimiser, stopping at the first bound hit, or, at a minimiser, releases the bound
    whose multiplier has the wrong sign. When no entry is free, the multiplier of Σx = 1 is
    any value in an interval, and the two bounds that most want to move are released
    together. Returns None when the KKT system is singular (Q not positive definite on the
    free entries) or the iterations run out (cycling), so that the caller can fall back.

    Raises:
      ValueError: the start x is not feasible.
    """
    k = q.size
    x = np.asarray(x, np.float64).copy()
    if abs(x.sum() - 1) > 1e-9 or np.any(x < lo - 1e-12) or np.any(x > hi + 1e-12):
        raise ValueError(f"_box_simplex_qp: the start x must satisfy Σx = 1 and lo <= x <= hi, "
                         f"got Σx = {x.sum():.12g}, min(x − lo) = {np.min(x - lo):.3g}, "
                         f"min(hi − x) = {np.min(hi - x):.3g}")
    at_lo, at_hi = x <= lo, x >= hi
    at_lo &= ~at_hi | (lo < hi)
    scale = 1.0 + np.max(np.abs(q)) + np.max(np.abs(Q))
    tol = 1e-13 * scale
    for _ in range(int(max_iter if max_iter is not None else 50 + 20 * k)):
        free = ~(at_lo | at_hi)
        g = Q @ x + q
        F = np.flatnonzero(free)
        nu = None
        p = np.zeros(k)
        if F.size >= 2:
            K = np.zeros((F.size + 1, F.size + 1))
            K[:-1, :-1] = Q[np.ix_(F, F)]
            K[:-1, -1] = K[-1, :-1] = 1.0
            rhs = np.r_[-g[F], 0.0]
            try:
                sol = np.linalg.solve(K, rhs)
            except np.linalg.LinAlgError:
                return None
            if not np.all(np.isfinite(sol)) or np.max(np.abs(K @ sol - rhs)) > 1e-8 * scale:
                return None
            p[F], nu = sol[:-1], sol[-1]
        elif F.size == 1:
            nu = -g[F[0]]
        if np.max(np.abs(p), initial=0.0) > 1e-15:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(p < 0, (lo - x) / p, np.where(p > 0, (hi - x) / p, np.inf))
            j = int(np.argmin(ratio))
            step = min(1.0, max(float(ratio[j]), 0.0))
            x = x + step * p
            if step < 1.0:
                x[j] = lo[j] if p[j] < 0 else hi[j]
                at_lo[j], at_hi[j] = p[j] < 0, p[j] > 0
            continue
        if nu is None:   # every entry at a bound: ν may be anything in [max(−g_lo), min(−g_hi)]
            lo_i, hi_i = np.flatnonzero(at_lo & (lo < hi)), np.flatnonzero(at_hi & (lo < hi))
            want_up = lo_i[np.argmin(g[lo_i])] if lo_i.size else None
            want_dn = hi_i[np.argmax(g[hi_i])] if hi_i.size else None
            if want_up is None or want_dn is None or g[want_up] >= g[want_dn] - tol:
                return x
            at_lo[want_up] = at_hi[want_dn] = False
            continue
        mult = np.where(at_lo & (lo < hi), g + nu, np.where(at_hi & (lo < hi), -(g + nu), 0.0))
        j = int(np.argmin(mult))
        if mult[j] >= -tol:
            return x
        at_lo[j] = at_hi[j] = False
    return None


def _exact_weights(Z: np.ndarray, W: np.ndarray, instance: Instance,
                   config: PortfolioConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rows of W (feasible weights on the supports Z) replaced by the exact optimum of the
    convex QP ``min −r·x + α xᵀΣx`` on each support (β = λ = 0, α > 0; `_box_simplex_qp`).
    Returns the weights and a bool (B,): False where the QP was singular or cycled (that row
    keeps its weights)."""
    r = np.asarray(instance["r"], np.float64)
    L = np.asarray(instance["L"], np.float64)
    v = np.asarray(instance["e_var"], np.float64)
    out = W.copy()
    ok = np.ones(Z.shape[0], bool)
    for b in range(Z.shape[0]):
        S = np.flatnonzero(Z[b] > 0.5)
        Q = 2 * config.alpha * (L[S] @ L[S].T + np.diag(v[S]))
        x = _box_simplex_qp(Q, -r[S], np.full(S.size, config.l), np.full(S.size, config.u),
                            W[b, S])
        if x is not None:
            full = np.zeros_like(W[b])
            full[S] = _prox_batch(x[None], np.zeros((1, S.size)), 0.0,
                                  np.full((1, S.size), config.l),
                                  np.full((1, S.size), config.u))[0]
            out[b] = full
        else:
            ok[b] = False
    return out, ok


def support_is_qp(config: PortfolioConfig) -> bool:
    """Whether the weights' problem on a fixed support is a convex QP that `polish_weights`
    solves exactly: β = 0 (no third moment), λ = 0 (no turnover) and α > 0 (e.g. the CCMV
    problem of `ccmv_config`)."""
    return config.beta == 0 and config.lam == 0 and config.alpha > 0


def polish_weights(Z: np.ndarray, instance: Instance, config: PortfolioConfig = PortfolioConfig(),
                   *, start: np.ndarray | None = None, steps: int = 300,
                   tol: float = 1e-12) -> np.ndarray:
    """Optimise the weights of many supports at once for the true f.

    For each row z of ``Z`` (B, n), minimises f over {Σx = 1, l <= x_i <= u where z_i = 1,
    x_i = 0 elsewhere}. When that problem is a convex QP (`support_is_qp`: mean–variance
    without turnover) it is solved exactly by a primal active-set method
    (`_box_simplex_qp`, started from ``start`` projected), so f(x) is the support's optimum;
    otherwise by monotone FISTA (Beck & Teboulle, IEEE Trans. Image Process. 18,
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
      steps: at most this many FISTA iterations; stops earlier once no row moves by more
        than ``tol`` (unused when the problem is a QP, solved exactly).

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
    exact = support_is_qp(config)
    W = _fista_weights(Z, k, instance, config, start, 0 if exact else steps, tol)
    if exact:
        W, ok = _exact_weights(Z, W, instance, config)
        if not ok.all():   # a singular QP (or cycling): FISTA on those rows
            W[~ok] = _fista_weights(Z[~ok], k[~ok], instance, config, W[~ok], steps, tol)
    return W


def _fista_weights(Z: np.ndarray, k: np.ndarray, instance: Instance, config: PortfolioConfig,
                   start: np.ndarray | None, steps: int, tol: float) -> np.ndarray:
    """`polish_weights`' FISTA on validated supports Z (B, n) of sizes k (B,); ``steps = 0``
    only projects the start onto each support's feasible set."""
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
            raise ValueError(f"polish_weights: start must have shape {Z.shape}, got "
                             f"{start.shape}")
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


def warm_starts(Z: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Starting weights (B, n) for the supports Z (B, n) near a known plan's weights
    ``anchor`` (n,): the anchor's weights where both hold the asset, and what is left of
    the unit budget shared equally among the assets new to the support (`polish_weights`
    projects them onto each support's feasible set)."""
    Z = np.asarray(Z, np.float64)
    anchor = np.asarray(anchor, np.float64)
    keep = Z * anchor
    new = (Z > 0.5) & ~(anchor > 0)
    rest = np.clip(1.0 - keep.sum(1), 0.0, None) / np.maximum(new.sum(1), 1)
    return keep + new * rest[:, None]


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


# -- Ω answered with the support's optimal weights --------------------------------------------

def _support_solver(instance: Instance, config: PortfolioConfig, backend: str,
                    options: dict) -> "SupportSolver":
    return SupportSolver(instance, config, backend=backend, **options)


class SupportSolver(Solver):
    """``g_Ω(c)``'s support with the optimal weights on it: the MILP ``argmin_{X∈Ω} c·X``
    chooses the selection z, and the weights are replaced by `polish_weights` on that
    support (the exact optimum when `support_is_qp`, a FISTA local optimum otherwise).

    With it, SurCo's surrogate does the combinatorial part only, and f of every plan it
    returns is the value of the support it chose, not of a bang-bang extreme point (every
    weight but one at l or u). The answer is still in Ω. Weights are cached per support
    (``cache`` supports), as consecutive SurCo steps often return the same one. The MILP
    solver is built on the first solve.

    Args:
      instance, config: the problem (the weights depend on the instance).
      backend, **options: `make_solver`'s backend and options for the MILP.
      cache: how many supports' weights to keep.
      steps: FISTA iterations per support (`polish_weights`; unused when `support_is_qp`).

    Raises:
      ValueError: an instance or config without a feasible portfolio.
    """

    def __init__(self, instance: Instance, config: PortfolioConfig = PortfolioConfig(), *,
                 backend: str = "highs", cache: int = 4096, steps: int = 150, **options):
        n = check_instance(instance)
        self._spec = omega(n, config)
        super().__init__(self._spec.shape, f"portfolio-support-{n}")
        self.instance, self.config, self.backend, self.options = instance, config, backend, options
        self._milp = None
        self._weights: collections.OrderedDict[bytes, np.ndarray] = collections.OrderedDict()
        self._cache, self.steps = int(cache), int(steps)
        self._last: np.ndarray | None = None

    @property
    def spec(self) -> LinearSpec:
        """Ω's `LinearSpec`."""
        return self._spec

    def factory(self):
        return functools.partial(_support_solver, self.instance, self.config, self.backend,
                                 dict(self.options, steps=self.steps))

    def weights(self, z: np.ndarray) -> np.ndarray:
        """The optimal weights (n,) of the support z (n,) (cached; FISTA is warm-started
        from the previous answer's weights, `warm_starts`)."""
        z = (np.asarray(z, np.float64) > 0.5).astype(np.float64)
        key = z.tobytes()
        w = self._weights.get(key)
        if w is None:
            start = None if self._last is None else warm_starts(z[None], self._last)
            w = polish_weights(z[None], self.instance, self.config, start=start,
                               steps=self.steps, tol=1e-10)[0]
            self._last = w
            self._weights[key] = w
            while len(self._weights) > self._cache:
                self._weights.popitem(last=False)
        else:
            self._weights.move_to_end(key)
        return w

    def solve_flat(self, c):
        if self._milp is None:
            from surco.solvers import make_solver
            self._milp = make_solver(self._spec, backend=self.backend, **self.options)
        x, obj, status, stats = self._milp.solve_flat(c)
        if status in (Status.OPTIMAL, Status.FEASIBLE):
            z = np.round(np.asarray(x, np.float64).reshape(self.shape)[:, 1])
            x = np.stack([self.weights(z), z], axis=1).reshape(-1)
            stats = dict(stats, milp_objective=float(obj))
            obj = float(c @ x)
        return x, obj, status, stats
