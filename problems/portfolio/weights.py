"""Polishing the weights on a fixed support: the continuous half of portfolio selection.

SurCo's plans are extreme points of conv(Ω) ("bang-bang" weights at l or u, see
`surco.problems.portfolio.problem`); here the weights of a chosen support are re-optimised
for the true f: monotone FISTA (Beck & Teboulle, SIAM J. Imaging Sci. 2009) with the exact
prox of the turnover term over {Σx = 1, l <= x <= u} (`prox_batch`), or, when the support's
problem is a convex QP (`support_is_qp`), the exact optimum by a primal active-set method
(`_box_simplex_qp`). `polish_weights` does it for many supports at once; `polish` for one
plan. Re-exported by `surco.problems.portfolio.problem`.
"""
from __future__ import annotations

import math

import numpy as np

from .instances import Instance, check_instance
from .model import PortfolioConfig, objective_np

__all__ = ["prox_batch", "prox_simplex_box", "support_is_qp", "polish_weights", "warm_starts",
           "polish"]


def prox_batch(V: np.ndarray, X0: np.ndarray, t: float | np.ndarray, lo: np.ndarray,
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


def prox_simplex_box(v: np.ndarray, x0: np.ndarray, t: float, l: float, u: float) -> np.ndarray:
    """`prox_batch` for one vector with the same bounds [l, u] on every entry."""
    v = np.asarray(v, np.float64)
    return prox_batch(v[None], np.asarray(x0, np.float64)[None], t, np.full((1, v.size), l),
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
            full[S] = prox_batch(x[None], np.zeros((1, S.size)), 0.0,
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
    The turnover term is handled exactly by its prox (`prox_batch`), the step is 1/L with L
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
    x = prox_batch(x, x0, 0.0, lo, hi)
    fx = full(x)
    y, tk = x.copy(), 1.0
    for _ in range(int(steps)):
        zz = prox_batch(y - eta[:, None] * grad(y), x0, eta * lam, lo, hi)
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
