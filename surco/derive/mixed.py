"""Mixed integer / continuous Ω: search the integer entries, optimise the continuous ones.

When Ω has integer *and* continuous entries (portfolio selection: weights x and a selection
z linked by ``l z <= x <= u z``; facility location: open flags and flows), an extreme point of
Ω puts the continuous entries at a vertex of their polytope, while a nonlinear f is
usually minimised inside it. So the derived neighbourhood for such an Ω splits x:

* the *integer part* moves in the neighbourhood read off the rows over integer entries only
  (`integer_spec`: e.g. a cardinality row on z gives swap / add / drop, otherwise unit
  moves), the rows that touch continuous entries being left to the second part;
* the *continuous part* of every neighbour is completed by `ContinuousCompletion`: with the
  integer entries fixed, ``min f(x)`` over the continuous entries subject to all of Ω's
  rows, solved locally with f's gradient (SLSQP, Kraft, "A software package for sequential
  quadratic programming", DFVLR-FB 88-28, 1988) from the linear-programming vertex of
  ∇f (an LP solved by the toolkit's own solver, `surco.solvers.make_solver`, with the integer
  entries held by `Solver.fixed`). An integer assignment whose continuous polytope is empty
  is not a move.

This is the fix-the-integers, solve-the-NLP step of MINLP heuristics (the NLP subproblem of
outer approximation, Duran & Grossmann, Math. Prog. 36, 1986; SCIP's sub-NLP heuristic), used
as the move evaluation of a local search over the integer part. Completions use f (the
problem's objective), not the true cost: only the neighbours the search evaluates are
charged to its meter.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
from scipy.optimize import minimize

from surco.guidance import DEFAULT_SOLVE_SECONDS
from surco.problem import Instance, Problem
from surco.search import Neighbourhood
from surco.solvers import LinearSpec, SolverError, Status, make_solver

from .gradients import value_and_gradient
from .neighbourhoods import UnitExchange, cardinality_of, classify_rows

__all__ = ["ContinuousCompletion", "CompletedMoves", "integer_spec", "is_mixed"]

#: Feasibility tolerance of the continuous part's rows and bounds (absolute, as
#: `LinearSpec.contains`'s default 1e-6, with room for the solver's rounding).
_TOL = 1e-9


def is_mixed(spec: LinearSpec) -> bool:
    """Whether Ω has both integer and continuous entries."""
    return bool(spec.integer.any() and not spec.integer.all())


def integer_spec(spec: LinearSpec) -> LinearSpec:
    """Ω's integer entries (flat, in order) with the rows of Ω over integer entries only
    (rows touching a continuous entry are dropped: `ContinuousCompletion` checks them).

    Raises:
      ValueError: Ω has no integer entry."""
    I = spec.integer
    if not I.any():
        raise ValueError(f"integer_spec: Ω {spec.name!r} has no integer entry")
    parts = []
    for A, b in ((spec.A_ub, spec.b_ub), (spec.A_eq, spec.b_eq)):
        A = A.tocsc()
        only = np.asarray(abs(A[:, np.flatnonzero(~I)]).sum(1)).reshape(-1) == 0
        nonempty = np.diff(A.tocsr().indptr) > 0
        keep = np.flatnonzero(only & nonempty)
        parts.append((A.tocsr()[keep][:, np.flatnonzero(I)], b[keep]))
    (Au, bu), (Ae, be) = parts
    return LinearSpec((int(I.sum()),), A_ub=Au, b_ub=bu, A_eq=Ae, b_eq=be, lb=spec.lb[I],
                      ub=spec.ub[I], integer=True, name=f"{spec.name}[integer]")


class ContinuousCompletion:
    """``x -> argmin f`` over Ω's continuous entries with its integer entries held (a local
    minimum: SLSQP from the LP vertex of ∇f), or None when no continuous entries complete
    the integer ones in Ω.

    The rows are presolved for the held integers: their part moves to the right-hand side,
    a row with one continuous entry becomes a bound on it, entries whose bounds meet are
    fixed, and Ω's emptiness is decided exactly (from the bounds alone when at most one row
    is left, else by the LP: Ω's model from `surco.solvers.make_solver`, built once, with
    the integer entries held by `Solver.fixed`). The answer is in Ω (checked); when SLSQP
    fails, or ends worse by f than its start, the vertex is returned.

    Args:
      problem, instance: f and its instance (f's value and gradient are jitted once per
        objective, `surco.derive.gradients.value_and_gradient`).
      spec: Ω, mixed (`is_mixed`).
      max_iter: SLSQP's iterations. ftol: its tolerance on f.
      backend: the LP's backend (`surco.solvers.BACKENDS`).
      time_limit: seconds per LP solve (default `surco.guidance.DEFAULT_SOLVE_SECONDS`;
        None: unlimited, under the model-size guard). A solve stopped at the limit with a
        point uses that point; without one it raises.

    Raises:
      ValueError: Ω is not mixed.
      SolverError (when called): the LP solver failed (a time limit without a point, a
        backend error); an empty or unbounded LP is not an error (no completion).
    """

    def __init__(self, problem: Problem, instance: Instance, spec: LinearSpec, *,
                 max_iter: int = 200, ftol: float = 1e-10, backend: str = "highs",
                 time_limit: float | None = DEFAULT_SOLVE_SECONDS):
        if not is_mixed(spec):
            raise ValueError(f"ContinuousCompletion: Ω {spec.name!r} is not mixed (it needs "
                             "integer and continuous entries)")
        self.spec, self.problem, self.instance = spec, problem, instance
        self.max_iter, self.ftol = int(max_iter), float(ftol)
        self.I, self.C = spec.integer.copy(), np.flatnonzero(~spec.integer)
        cols_I = np.flatnonzero(spec.integer)
        self._parts = [(A.tocsr()[:, cols_I], A.tocsr()[:, self.C].tocsr(), b)
                       for A, b in ((spec.A_ub, spec.b_ub), (spec.A_eq, spec.b_eq))]
        self._vg = value_and_gradient(problem, instance)
        self.backend, self.time_limit = backend, time_limit
        self._lp = None           # Ω's solver, built on the first LP

    def f_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """f(x) and ∇f(x) (flat float64) of a flat x (not checked for finiteness)."""
        return self._vg(np.asarray(x).reshape(self.spec.shape))

    def _solver(self):
        if self._lp is None:
            self._lp = make_solver(self.spec, backend=self.backend, time_limit=self.time_limit)
        return self._lp

    def _presolve(self, x: np.ndarray):
        """Bounds and remaining rows of the continuous entries for x's integers; None when
        they admit no point."""
        xi = x[self.I]
        lb, ub = self.spec.lb[self.C].copy(), self.spec.ub[self.C].copy()
        rows = []
        for (AI, AC, b), eq in zip(self._parts, (False, True)):
            rhs = b - AI @ xi
            nnz = np.diff(AC.indptr)
            empty = nnz == 0
            if np.any(np.abs(rhs[empty]) > _TOL if eq else rhs[empty] < -_TOL):
                return None
            for r in np.flatnonzero(nnz == 1):
                j, a = AC.indices[AC.indptr[r]], AC.data[AC.indptr[r]]
                v = rhs[r] / a
                if eq or a > 0:
                    ub[j] = min(ub[j], v)
                if eq or a < 0:
                    lb[j] = max(lb[j], v)
            keep = np.flatnonzero(nnz > 1)
            rows.append((AC[keep], rhs[keep]))
        if np.any(lb > ub + _TOL):
            return None
        ub = np.maximum(ub, lb)
        return lb, ub, rows

    def feasible(self, x: np.ndarray) -> bool:
        """Whether x's integer entries (flat x) have a continuous completion in Ω: from the
        presolved bounds when at most one row is left (its range over the box), by the LP
        otherwise."""
        x = np.asarray(x, np.float64).reshape(-1)
        pre = self._presolve(x)
        if pre is None:
            return False
        lb, ub, ((Au, bu), (Ae, be)) = pre
        if Au.shape[0] + Ae.shape[0] > 1:
            return self.vertex(x, np.zeros(self.C.size)) is not None
        for A, b, eq in ((Au, bu, False), (Ae, be, True)):
            if A.shape[0]:
                a = A.toarray()[0]
                with np.errstate(invalid="ignore"):
                    lo = np.sum(np.where(a > 0, a * lb, np.where(a < 0, a * ub, 0.0)))
                    hi = np.sum(np.where(a > 0, a * ub, np.where(a < 0, a * lb, 0.0)))
                tol = _TOL * max(1.0, abs(b[0]))
                return bool(lo <= b[0] + tol and (not eq or hi >= b[0] - tol))
        return True

    def vertex(self, x: np.ndarray, cost: np.ndarray):
        """The LP vertex minimising ``cost`` (over the continuous entries) for x's integers,
        with the presolved bounds and rows; None when empty."""
        pre = self._presolve(x)
        if pre is None:
            return None
        lb, ub, ((Au, bu), (Ae, be)) = pre
        if Au.shape[0] == 0 and Ae.shape[0] == 0:
            if not (np.all(np.isfinite(lb) | (cost >= 0))
                    and np.all(np.isfinite(ub) | (cost <= 0))):
                return None          # unbounded below: let the caller treat it as no move
            rest = np.where(np.isfinite(lb), lb, np.where(np.isfinite(ub), ub, 0.0))
            return np.where(cost > 0, lb, np.where(cost < 0, ub, rest)), pre
        c = np.zeros(self.spec.n)
        c[self.C] = cost
        solver = self._solver()
        with solver.fixed(self.I, x):
            sol = solver.solve(c, check=False)
        if sol.status in (Status.INFEASIBLE, Status.UNBOUNDED):
            return None
        if sol.status not in (Status.OPTIMAL, Status.FEASIBLE):
            raise SolverError(f"ContinuousCompletion: the LP over the continuous entries of Ω "
                              f"{self.spec.name!r} failed ({sol.status.name}: "
                              f"{sol.stats.get('detail') or 'no detail'})")
        return np.clip(sol.x.reshape(-1)[self.C], lb, ub), pre

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        """x (any shape of Ω) with its continuous entries replaced by a local minimum of f
        (flat float64), or None when its integer entries admit no continuous completion. A
        function of x's integer entries alone (the LP vertex is that of ∇f at the middle of
        the presolved box), so that a revisited assignment gets the same point."""
        x = np.asarray(x, np.float64).reshape(-1).copy()
        x[self.I] = np.round(x[self.I])
        pre = self._presolve(x)
        if pre is None:
            return None
        lo, hi = pre[0], pre[1]          # linearise at the middle of the presolved box
        x[self.C] = 0.5 * (np.where(np.isfinite(lo), lo, np.minimum(hi, 0.0))
                           + np.where(np.isfinite(hi), hi, np.maximum(lo, 0.0)))
        try:
            _, g = self.f_and_grad(x)
        except (ValueError, TypeError, ArithmeticError):
            g = np.full(self.spec.n, np.nan)
        cost = g[self.C] if np.all(np.isfinite(g[self.C])) else np.zeros(self.C.size)
        got = self.vertex(x, cost)
        if got is None:
            return None
        v0, (lb, ub, ((Au, bu), (Ae, be))) = got
        x[self.C] = v0
        if not self.spec.contains(x):
            return None
        free = ub > lb
        if not free.any():
            return x
        base = x.copy()
        F = self.C[free]

        def fun(v):
            base[F] = v
            val, grad = self.f_and_grad(base)
            return val, grad[F]

        fixed = self.C[~free]
        cons = []
        for A, b, kind in ((Ae, be, "eq"), (Au, bu, "ineq")):
            if A.shape[0] == 0:
                continue
            Af = A[:, np.flatnonzero(free)].toarray()
            rest = b - A[:, np.flatnonzero(~free)] @ x[fixed]
            sign = 1.0 if kind == "eq" else -1.0
            cons.append({"type": kind,
                         "fun": (lambda v, Af=Af, rest=rest, s=sign: s * (Af @ v - rest)),
                         "jac": (lambda v, Af=Af, s=sign: s * Af)})
        fv0, _ = fun(v0[free])
        try:
            with np.errstate(all="ignore"):
                res = minimize(fun, v0[free], jac=True, method="SLSQP",
                               bounds=np.c_[lb[free], ub[free]], constraints=cons,
                               options={"ftol": self.ftol, "maxiter": self.max_iter})
        except (ValueError, ArithmeticError):
            res = None
        if res is None or not np.all(np.isfinite(res.x)):
            return x
        y = x.copy()
        y[F] = np.clip(res.x, lb[free], ub[free])
        fy, _ = fun(y[F])
        return y if self.spec.contains(y) and fy <= fv0 else x


@dataclasses.dataclass
class _MixedState:
    x: np.ndarray          # flat, the current completed point
    inner: object          # the integer neighbourhood's state


class CompletedMoves(Neighbourhood):
    """Moves of the integer entries, each neighbour completed by `ContinuousCompletion`
    (module docstring). Moves are the integer neighbourhood's; only those whose integer
    entries have a continuous completion are listed.

    Args:
      spec: Ω, mixed. completion: its `ContinuousCompletion`.
      inner: a neighbourhood over the integer entries (flat, `integer_spec`); default
        `integer_neighbourhood`.
      cache: integer assignments whose completion (or emptiness) is kept (least recently
        used dropped first).

    Raises:
      ValueError: Ω is not mixed.
    """

    def __init__(self, spec: LinearSpec, completion: ContinuousCompletion,
                 inner: Neighbourhood | None = None, cache: int = 8192):
        if not is_mixed(spec):
            raise ValueError(f"CompletedMoves: Ω {spec.name!r} is not mixed")
        self.spec, self.shape, self.completion = spec, tuple(spec.shape), completion
        self.inner = inner if inner is not None else integer_neighbourhood(spec)[0]
        self.I = spec.integer.copy()
        self._done: OrderedDict[bytes, np.ndarray | None] = OrderedDict()
        self._ok: OrderedDict[bytes, bool] = OrderedDict()
        self._size = int(cache)

    def _remember(self, table: OrderedDict, key: bytes, value):
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._size:
            table.popitem(last=False)
        return value

    def start(self, x) -> _MixedState:
        """A state at x (x itself, not re-completed). Raises ValueError if x is not in Ω."""
        x = np.asarray(x, np.float64).reshape(-1)
        if x.size != self.spec.n or not self.spec.contains(x):
            raise ValueError(f"CompletedMoves: x is not in Ω {self.spec.name!r}")
        return _MixedState(x.copy(), self.inner.start(np.round(x[self.I])))

    def point(self, state: _MixedState) -> np.ndarray:
        return state.x.reshape(self.shape)

    def _moved(self, state: _MixedState, move: np.ndarray) -> tuple[np.ndarray, bytes]:
        """x with the move's integer entries (continuous ones as they are) and its key."""
        zi = self.inner.apply(state.inner, np.asarray(move)[None])[0].reshape(-1)
        x = state.x.copy()
        x[self.I] = zi
        return x, np.asarray(zi, np.float64).tobytes()

    def _complete(self, state: _MixedState, move: np.ndarray) -> np.ndarray | None:
        x, key = self._moved(state, move)
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]
        return self._remember(self._done, key, self.completion(x))

    def _feasible(self, state: _MixedState, move: np.ndarray) -> bool:
        x, key = self._moved(state, move)
        if key in self._done:
            return self._done[key] is not None
        if key in self._ok:
            self._ok.move_to_end(key)
            return self._ok[key]
        return self._remember(self._ok, key, self.completion.feasible(x))

    def moves(self, state: _MixedState) -> np.ndarray:
        """The integer moves whose continuous part is not empty (decided exactly; each is
        completed when `apply` asks for it)."""
        mv = np.asarray(self.inner.moves(state.inner))
        keep = [k for k in range(mv.shape[0]) if self._feasible(state, mv[k])]
        return mv[keep] if keep else mv[:0]

    def apply(self, state: _MixedState, moves: np.ndarray) -> np.ndarray:
        mv = np.asarray(moves, np.int64)
        out = []
        for m in mv.reshape(mv.shape[0], -1):
            x = self._complete(state, m)
            if x is None:
                raise ValueError("CompletedMoves.apply: a move whose continuous part is empty "
                                 "(not one of moves())")
            out.append(x)
        return np.stack(out).reshape((len(out),) + self.shape) if out \
            else np.zeros((0,) + self.shape)

    def random_move(self, state: _MixedState, rng: np.random.Generator,
                    tries: int = 32) -> np.ndarray | None:
        """An integer move drawn uniformly, redrawn while its continuous part is empty
        (then one drawn from `moves` after ``tries`` redraws)."""
        for _ in range(tries):
            m = self.inner.random_move(state.inner, rng)
            if m is None:
                return None
            if self._feasible(state, m):
                return np.asarray(m, np.int64)
        mv = self.moves(state)
        return None if mv.shape[0] == 0 else mv[int(rng.integers(mv.shape[0]))]

    def commit(self, state: _MixedState, move: np.ndarray) -> None:
        x = self._complete(state, move)
        if x is None:
            raise ValueError("CompletedMoves.commit: a move whose continuous part is empty")
        self.inner.commit(state.inner, move)
        state.x = x.copy()


def integer_neighbourhood(spec: LinearSpec) -> tuple[Neighbourhood, str]:
    """The neighbourhood of the integer entries of a mixed Ω (`integer_spec`): swap / add /
    drop when its rows only bound the number of selected binaries (`Cardinality`), unit
    moves under all its rows otherwise (`UnitExchange`); and a line saying which."""
    sub = integer_spec(spec)
    kinds = classify_rows(sub)
    card = cardinality_of(sub, kinds)
    if card is not None:
        return card, "Cardinality (swap, add, drop)"
    return UnitExchange(sub), f"UnitExchange (unit moves; {kinds.describe()})"


def completed_for(problem: Problem, instance: Instance, spec: LinearSpec,
                  x0: np.ndarray | None = None) -> tuple[CompletedMoves, str] | None:
    """`CompletedMoves` for a mixed Ω and a line saying what it is; None when Ω is not
    mixed or x0 is given and has no move."""
    if not is_mixed(spec):
        return None
    inner, what = integer_neighbourhood(spec)
    nb = CompletedMoves(spec, ContinuousCompletion(problem, instance, spec), inner)
    if x0 is not None:
        try:
            if nb.moves(nb.start(x0)).shape[0] == 0:
                return None
        except ValueError:
            return None
    return nb, (f"{int(spec.integer.sum())} integer entries move ({what}, rows over them "
                f"only), the {int((~spec.integer).sum())} continuous entries are completed "
                "by a local minimum of f (SLSQP) with the integers held")
