"""Bounds that the rows of a `LinearSpec` imply, and names of its entries for messages.

`implied_bounds` is activity-based bound propagation (Brearley, Mitra & Williams, "Analysis
of mathematical programming problems prior to applying the simplex algorithm", Math.
Programming 1975; Savelsbergh, "Preprocessing and probing techniques for mixed integer
programming problems", ORSA J. Computing 1994): a row ``Σ_j a_j x_j <= b`` whose other
entries have finite bounds gives ``a_k x_k <= b - min Σ_{j≠k} a_j x_j``, a bound on x_k that
every point of Ω meets. CP-SAT needs a finite domain for every variable and clamps an
infinite one silently (to ``mip_max_bound``, 1e7), so its backend fills the missing bounds
from here and refuses variables for which the rows imply none.

    >>> import numpy as np
    >>> from surco.solvers import LinearSpec
    >>> spec = LinearSpec(shape=(3,), A_eq=[[1.0, 1.0, 1.0]], b_eq=[5.0], lb=[-np.inf, 0, 0],
    ...                   ub=[np.inf, 3, 3], integer=True)
    >>> lb, ub, empty = implied_bounds(spec)
    >>> lb.tolist(), ub.tolist(), empty
    ([-1.0, 0.0, 0.0], [5.0, 3.0, 3.0], False)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from .spec import LinearSpec

#: a row may be violated by this much at a point that a solver accepts as feasible (the
#: usual primal feasibility tolerance); derived bounds are widened by it, so that they never
#: cut off such a point
FEASIBILITY_TOL = 1e-6


def entry_names(shape: Sequence[int], flat: Sequence[int] | np.ndarray, limit: int = 8) -> str:
    """Entries of x named for a message: ``x[1, 2] (flat 5)`` (``x[5]`` for a 1-d x), the
    first ``limit`` of them, then how many more.

    >>> entry_names((2, 3), [5, 0])
    'x[1, 2] (flat 5), x[0, 0] (flat 0)'
    >>> entry_names((10,), range(10), limit=3)
    'x[0], x[1], x[2] and 7 more'
    """
    flat = [int(i) for i in flat]
    shape = tuple(int(s) for s in shape)
    names = []
    for i in flat[:limit]:
        if len(shape) > 1:
            idx = ", ".join(str(int(k)) for k in np.unravel_index(i, shape))
            names.append(f"x[{idx}] (flat {i})")
        else:
            names.append(f"x[{i}]")
    more = len(flat) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def implied_bounds(spec: LinearSpec, max_rounds: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Fill the infinite bounds of Ω's variables with bounds its rows imply.

    Each round derives, from every row and every entry k of it, a bound on x_k from the
    current bounds of the row's other entries (equalities count as two inequalities);
    an infinite bound of x_k is replaced by the tightest bound derived for it. Finite
    bounds of the spec are kept as they are. Rounds repeat while some infinite bound
    becomes finite (at most ``max_rounds``, default 2n + 1). Integer entries get
    ``floor`` / ``ceil`` of the derived value. Every derived bound is widened by
    `FEASIBILITY_TOL` / |a_k| plus 1e-9 of the row's magnitude (rounding errors), so a
    point of Ω, or one that violates a row by up to that tolerance, stays inside: the set
    is unchanged.

    Args:
      spec: Ω.
      max_rounds: most propagation rounds (None: 2n + 1, enough for every bound that a
        chain of rows can imply).

    Returns:
      ``(lb, ub, empty)``: float64 arrays of length n, equal to the spec's bounds where
      those are finite, and whether the derived bounds cross (``lb > ub`` somewhere: Ω is
      empty).
    """
    lb = spec.lb.astype(np.float64)
    ub = spec.ub.astype(np.float64)
    if np.all(np.isfinite(lb)) and np.all(np.isfinite(ub)):
        return lb, ub, False
    G = sp.vstack([spec.A_ub, spec.A_eq, -spec.A_eq]).tocoo()
    h = np.concatenate([spec.b_ub, spec.b_eq, -spec.b_eq])
    rows, cols, a = G.row, G.col, G.data
    m, n = G.shape[0], spec.n
    integer = spec.integer
    pos = a > 0
    rounds = 2 * n + 1 if max_rounds is None else int(max_rounds)
    for _ in range(rounds):
        if not len(a):
            break
        # least value of a_j x_j over the bounds of x_j (-inf where unbounded that way)
        with np.errstate(invalid="ignore"):
            least = np.where(pos, a * lb[cols], a * ub[cols])
        inf = ~np.isfinite(least)
        fin = np.where(inf, 0.0, least)
        n_inf = np.bincount(rows, weights=inf, minlength=m)
        total = np.bincount(rows, weights=fin, minlength=m)
        scale = np.bincount(rows, weights=np.abs(fin), minlength=m) + np.abs(h)
        # least value of the row's other entries: finite only if none of them is unbounded
        others = np.where(inf, np.where(n_inf[rows] == 1, total[rows], -np.inf),
                          np.where(n_inf[rows] == 0, total[rows] - fin, -np.inf))
        ok = np.isfinite(others)
        if not ok.any():
            break
        r, k, ak = rows[ok], cols[ok], a[ok]
        val = (h[r] - others[ok]) / ak       # a_k x_k <= h - others
        slack = (FEASIBILITY_TOL + 1e-9 * scale[r]) / np.abs(ak)
        is_ub = ak > 0                       # a_k > 0: an upper bound; a_k < 0: a lower one
        new_ub = np.full(n, np.inf)
        new_lb = np.full(n, -np.inf)
        up = val[is_ub] + slack[is_ub]
        down = val[~is_ub] - slack[~is_ub]
        up = np.where(integer[k[is_ub]], np.floor(up), up)
        down = np.where(integer[k[~is_ub]], np.ceil(down), down)
        np.minimum.at(new_ub, k[is_ub], up)
        np.maximum.at(new_lb, k[~is_ub], down)
        fill_ub = ~np.isfinite(ub) & np.isfinite(new_ub)
        fill_lb = ~np.isfinite(lb) & np.isfinite(new_lb)
        if not (fill_ub.any() or fill_lb.any()):
            break
        ub[fill_ub] = new_ub[fill_ub]
        lb[fill_lb] = new_lb[fill_lb]
    return lb, ub, bool(np.any(lb > ub))


def gcd_infeasible_rows(spec: LinearSpec) -> np.ndarray:
    """Equality rows that no integer point meets: every entry integer with an integral
    coefficient, and the gcd of the coefficients does not divide the right-hand side
    (e.g. ``2 x0 - 2 x1 = 3``). A row with such a gcd ends the search for Ω's points at
    once; CP-SAT reports some of these models as invalid instead of infeasible.

    Returns:
      The indices of those rows in ``A_eq`` (empty when there are none).
    """
    A = spec.A_eq.tocsr()
    bad = []
    for r in range(A.shape[0]):
        lo, hi = A.indptr[r], A.indptr[r + 1]
        cols, vals = A.indices[lo:hi], A.data[lo:hi]
        if not len(vals) or not spec.integer[cols].all():
            continue
        if np.any(vals != np.round(vals)) or np.abs(vals).max() >= 2.0 ** 53:
            continue
        g = int(np.gcd.reduce(np.abs(vals).astype(np.int64)))
        b = spec.b_eq[r]
        if b != np.round(b) or (abs(b) < 2.0 ** 53 and int(b) % g):
            bad.append(r)
    return np.asarray(bad, dtype=np.int64)
