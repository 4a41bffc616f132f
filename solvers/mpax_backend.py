"""The MPAX backend (``make_solver(spec, backend="mpax")``): LPs by PDHG in JAX, and how
far PDHG's answers are from exact ones.

The solver and the JAX oracle are in `surco.solvers.mpax_lp` (re-exported here: `MpaxLP`,
`MpaxSolver`, `mpax_module`, `METHODS`); see that module for the method, the measurements
and the statuses. Here: `polish`, which turns a PDHG point into the exact vertex of Ω behind
it (an exact HiGHS solve on the face of the bounds PDHG found active), and `exactness`, which
measures against HiGHS how far PDHG's raw points are in objective and feasibility
(bench/mpax.py reports both).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .base import Solver
from .mpax_lp import METHODS, MpaxLP, MpaxSolver, mpax_module
from .registry import make_solver
from .result import Status
from .spec import LinearSpec

__all__ = ["MpaxLP", "MpaxSolver", "polish", "Polished", "exactness", "Exactness",
           "mpax_module", "METHODS"]


@dataclasses.dataclass(frozen=True)
class Polished:
    """A vertex of Ω found from an approximate optimum (`polish`).

    Attributes:
      x: the vertex, shaped like the spec's x (an exact HiGHS simplex solution).
      objective: ``c·x``.
      n_fixed: how many variables were fixed at the bound PDHG had them at.
      fallback: True when the face of those bounds held no feasible point and the vertex
        comes from a solve over all of Ω instead.
    """

    x: np.ndarray
    objective: float
    n_fixed: int
    fallback: bool


def _lp_of(space) -> LinearSpec:
    if isinstance(space, (MpaxLP, MpaxSolver)):
        return space.oracle.spec if isinstance(space, MpaxSolver) else space.spec
    if isinstance(space, LinearSpec):
        return space.relaxed() if space.is_mip else space
    raise TypeError(f"expected an MpaxLP, an MpaxSolver or a LinearSpec, got "
                    f"{type(space).__name__}")


def polish(space: MpaxLP | MpaxSolver | LinearSpec, c, x, *, tol: float = 1e-3,
           exact: Solver | None = None) -> Polished:
    """Round an approximate LP optimum to a vertex of Ω: every variable of ``x`` within
    ``tol`` of one of its bounds is fixed there, and HiGHS (dual simplex: a basic, i.e.
    vertex, solution) minimises c·x over that face of Ω. Fixing variables at bounds keeps a
    face of the polytope, so its optimal vertex is a vertex of Ω; when PDHG's point is
    close to the optimal face, that face holds an optimum of the LP and the vertex is one
    (check with `exactness`). A face without a feasible point (PDHG's point too far off)
    falls back to a HiGHS solve over all of Ω.

    Args:
      space: the LP (an `MpaxLP`, an `MpaxSolver`, or a `LinearSpec`, relaxed if it has
        integer variables).
      c: the cost, shaped like x or flat.
      x: the approximate optimum (e.g. a PDHG answer), shaped like x or flat, finite.
      tol: how close to a bound counts as at it (absolute, > 0).
      exact: a HiGHS solver over the same LP to reuse (``make_solver(lp, "highs")``);
        None builds one.

    Returns:
      A `Polished` vertex.

    Raises:
      ValueError: c or x of the wrong size or not finite, tol <= 0.
      TypeError: space of another type.
      InfeasibleError, UnboundedError, SolverError: HiGHS found no optimum over Ω either.
    """
    lp = _lp_of(space)
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"polish: tol must be a positive float, got {tol!r}")
    x = np.asarray(x, np.float64).reshape(-1)
    if x.shape != (lp.n,) or not np.all(np.isfinite(x)):
        raise ValueError(f"polish: x must be {lp.n} finite numbers (shape {lp.shape}), got "
                         f"shape {np.shape(x)}" + ("" if x.shape != (lp.n,) else
                                                   " with NaN or inf"))
    solver = exact if exact is not None else make_solver(lp, "highs")
    c = solver.check_cost(c)
    at_lb = np.isfinite(lp.lb) & (np.abs(x - lp.lb) <= tol)
    at_ub = np.isfinite(lp.ub) & (np.abs(x - lp.ub) <= tol) & ~at_lb
    mask = at_lb | at_ub
    values = np.where(at_lb, lp.lb, np.where(at_ub, lp.ub, 0.0))
    with solver.fixed(mask, values):
        sol = solver.solve(c, check=False)
    fallback = not sol.ok
    if fallback:
        sol = solver.solve(c)
    return Polished(x=sol.x.reshape(lp.shape), objective=float(sol.objective),
                    n_fixed=int(mask.sum()), fallback=fallback)


@dataclasses.dataclass(frozen=True)
class Exactness:
    """PDHG's answers against HiGHS's exact optima, per cost (`exactness`).

    Attributes:
      optimum: HiGHS's optimal value per cost.
      gap: ``c·x_pdhg − optimum`` (negative when PDHG's point is slightly infeasible).
      rel_gap: ``|gap| / max(1, |optimum|)``.
      violation: largest violation of Ω's rows and bounds by x_pdhg (`LinearSpec.violation`).
      polished_gap: ``c·x_vertex − optimum`` for the vertex of `polish`.
      polished_violation: the same violation for that vertex.
      fallback: per cost, whether `polish` fell back to a solve over all of Ω.
      status: PDHG's `Status` per cost (gaps are NaN where it is not OPTIMAL).
    """

    optimum: np.ndarray
    gap: np.ndarray
    rel_gap: np.ndarray
    violation: np.ndarray
    polished_gap: np.ndarray
    polished_violation: np.ndarray
    fallback: np.ndarray
    status: np.ndarray

    @property
    def max_abs_gap(self) -> float:
        """Largest ``|c·x_pdhg − optimum|`` over the costs."""
        return float(np.max(np.abs(self.gap)))

    @property
    def max_rel_gap(self) -> float:
        return float(np.max(self.rel_gap))

    @property
    def max_violation(self) -> float:
        return float(np.max(self.violation))

    @property
    def max_polished_gap(self) -> float:
        """Largest ``|c·x_vertex − optimum|``: 0 up to HiGHS's tolerances when every polished
        vertex is optimal."""
        return float(np.max(np.abs(self.polished_gap)))


def exactness(solver: MpaxSolver | MpaxLP, C, *, tol: float = 1e-3) -> Exactness:
    """Solve every cost of C with PDHG (one batch) and with HiGHS, polish each PDHG point to a
    vertex (`polish`), and compare objective values and feasibility.

    Args:
      solver: an `MpaxSolver` or an `MpaxLP` (wrapped in an `MpaxSolver`).
      C: costs, ``(B, *shape)`` or ``(B, n)``, finite.
      tol: `polish`'s bound tolerance.

    Returns:
      An `Exactness` record (arrays of length B).

    The maxima (`Exactness.max_abs_gap`, ...) are NaN when a PDHG solve failed; ``status``
    says which.

    Raises:
      ValueError: C empty, of the wrong shape or with NaN/inf.
      InfeasibleError, UnboundedError, SolverError: HiGHS found no optimum for a cost.
    """
    if isinstance(solver, MpaxLP):
        mp = MpaxSolver(solver.spec, method=solver.method, eps_abs=solver.eps_abs,
                        eps_rel=solver.eps_rel, iteration_limit=solver.iteration_limit,
                        sparse=solver.sparse)
    elif isinstance(solver, MpaxSolver):
        mp = solver
    else:
        raise TypeError(f"exactness: solver must be an MpaxSolver or an MpaxLP, got "
                        f"{type(solver).__name__}")
    lp = mp.oracle.spec
    if np.ndim(C) < 1 or len(C) == 0:
        raise ValueError(f"exactness: C must hold at least one cost, shape (B, "
                         f"{', '.join(map(str, lp.shape))}), got shape {np.shape(C)}")
    sols = mp.solve_batch(C, check=False)
    exact = make_solver(lp, "highs")
    rows = []
    for c, s in zip(np.asarray(C, np.float64).reshape(len(sols), -1), sols):
        opt = exact.solve(c).objective
        if s.status != Status.OPTIMAL:
            rows.append((opt, np.nan, np.nan, np.nan, np.nan, np.nan, False, int(s.status)))
            continue
        v = polish(lp, c, s.x, tol=tol, exact=exact)
        gap = float(c @ s.x.reshape(-1)) - opt
        rows.append((opt, gap, abs(gap) / max(1.0, abs(opt)), lp.violation(s.x),
                     v.objective - opt, lp.violation(v.x), v.fallback, int(s.status)))
    cols = list(zip(*rows)) if rows else [()] * 8
    return Exactness(*(np.asarray(col, dtype=dt) for col, dt in
                       zip(cols, [float] * 6 + [bool, np.int32])))
