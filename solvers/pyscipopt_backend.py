"""SCIP through PySCIPOpt directly.

The model is built once; each `solve` returns SCIP to the problem stage (``freeTransform``),
changes the objective coefficients (``chgVarObj``) and re-optimises. ``optimizeNogil`` is
used when available so that threads can solve in parallel.

Ctrl-C: SCIP's own SIGINT handler (``misc/catchctrlc``, on by default) would take the signal
from Python and count presses ("5 times for forcing termination"); it is switched off, and
the solve runs through `surco.solvers.blocking.blocking_call`, which stops it with
``SCIPinterruptSolve`` on a SIGINT. Output: SCIP's messages are hidden unless ``verbose``.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ._kwargs import check_kwargs, suggest
from .base import Solver
from .blocking import blocking_call
from .result import Status
from .spec import LinearSpec

#: SCIP status -> the limit it reports (`Solution` ``stats["limit"]``)
_LIMITS = {"timelimit": "time", "nodelimit": "node", "totalnodelimit": "node",
           "stallnodelimit": "node", "gaplimit": "gap", "memlimit": "memory",
           "sollimit": "solution", "bestsollimit": "solution", "restartlimit": "restart",
           "primallimit": "objective", "duallimit": "objective", "userinterrupt": "interrupted"}


class PySCIPOptSolver(Solver):
    """``argmin c·x over Ω`` with SCIP via PySCIPOpt (see `make_solver` for the arguments).

    Options are SCIP parameter names (``"limits/gap"``: every one has a ``/``).

    Raises:
      TypeError: an option name without ``/`` (not a SCIP parameter; with the closest
        keyword of this constructor).
      ValueError: a SCIP parameter that SCIP does not know (with the closest name) or a
        value it rejects.
    """

    def __init__(self, spec: LinearSpec, relax: bool = False, time_limit: float | None = None,
                 threads: int = 1, seed: int = 0, verbose: bool = False,
                 warm_start: bool = True, **options: Any):
        import pyscipopt

        check_kwargs(f"{spec.name}: backend 'pyscipopt' (options are SCIP parameter names "
                     "such as 'limits/gap')", {k: v for k, v in options.items() if "/" not in k},
                     ("relax", "time_limit", "threads", "seed", "verbose", "warm_start"))
        super().__init__(spec.shape, spec.name)
        self.warm_start = bool(warm_start)
        self._x_prev: np.ndarray | None = None
        self.spec, self.relax, self.time_limit = spec, relax, time_limit
        self.threads, self.seed, self.verbose, self.options = threads, seed, verbose, options
        m = pyscipopt.Model(spec.name)
        m.hideOutput(not verbose)
        integer = spec.integer & (not relax)
        inf = m.infinity()
        self._vars = [m.addVar(lb=None if spec.lb[i] == -np.inf else spec.lb[i],
                               ub=None if spec.ub[i] == np.inf else spec.ub[i],
                               vtype="I" if integer[i] else "C", obj=0.0)
                      for i in range(spec.n)]
        for A, b, eq in ((spec.A_ub, spec.b_ub, False), (spec.A_eq, spec.b_eq, True)):
            for r in range(A.shape[0]):
                lo, hi = A.indptr[r], A.indptr[r + 1]
                expr = pyscipopt.quicksum(float(a) * self._vars[j]
                                          for j, a in zip(A.indices[lo:hi], A.data[lo:hi]))
                m.addCons(expr == b[r] if eq else expr <= b[r])
        if time_limit is not None:
            m.setParam("limits/time", float(time_limit))
        m.setParam("randomization/randomseedshift", int(seed))
        m.setParam("lp/threads", int(threads))
        m.setParam("misc/catchctrlc", False)
        for k, v in options.items():
            try:
                m.setParam(k, v)
            except (KeyError, ValueError, TypeError) as exc:  # PySCIPOpt's KeyError names nothing
                hint = "" if k in m.getParams() else suggest(k, m.getParams())
                raise ValueError(f"{spec.name}: pyscipopt option {k!r}={v!r} rejected by SCIP "
                                 f"({type(exc).__name__}: {exc}){hint}; options are SCIP "
                                 "parameter names such as 'limits/gap'") from None
        self._inf = inf
        self._terms = [pyscipopt.scip.Term(v) for v in self._vars]
        self._m = m
        self._nogil = hasattr(m, "optimizeNogil")

    def factory(self):
        return functools.partial(PySCIPOptSolver, self.spec, self.relax, self.time_limit,
                                 self.threads, self.seed, self.verbose, self.warm_start,
                                 **self.options)

    def _expr(self, c: np.ndarray):
        import pyscipopt
        # Term objects are built once (building 200 of them per solve cost ~0.3 ms).
        return pyscipopt.Expr({t: cj for t, cj in zip(self._terms, c.tolist()) if cj != 0.0})

    def set_bounds_flat(self, lb: np.ndarray, ub: np.ndarray) -> None:
        """New variable bounds in place (problem stage: ``chgVarLb`` / ``chgVarUb`` on the
        entries that change; see `Solver.fixed`)."""
        m = self._m
        m.freeTransform()
        cur_lb = np.array([v.getLbOriginal() for v in self._vars])
        cur_ub = np.array([v.getUbOriginal() for v in self._vars])
        for i in np.flatnonzero((lb != cur_lb) | (ub != cur_ub)):
            lo = None if lb[i] == -np.inf else float(lb[i])
            hi = None if ub[i] == np.inf else float(ub[i])
            if lb[i] > cur_ub[i]:   # keep lb <= ub after each change
                m.chgVarUb(self._vars[i], hi)
                m.chgVarLb(self._vars[i], lo)
            else:
                m.chgVarLb(self._vars[i], lo)
                m.chgVarUb(self._vars[i], hi)

    def _optimize(self) -> None:
        m = self._m
        solving = [False]

        def call():
            solving[0] = True
            try:
                m.optimizeNogil() if self._nogil else m.optimize()
            finally:
                solving[0] = False

        def stop():
            if solving[0]:
                try:
                    m.interruptSolve()
                except Exception:  # SCIP left the solving stages meanwhile: nothing to stop
                    pass

        blocking_call(call, stop, self)

    def solve_flat(self, c):
        m = self._m
        m.freeTransform()
        m.setObjective(self._expr(c), "minimize", clear=True)
        if self.warm_start and self._x_prev is not None:
            # the previous answer as a start solution (SCIP checks it; Ω is unchanged
            # unless bounds were fixed, when an infeasible one is dropped)
            sol = m.createSol()
            for v, xv in zip(self._vars, self._x_prev.tolist()):
                if xv != 0.0:
                    m.setSolVal(sol, v, xv)
            m.addSol(sol, free=True)
        self._optimize()
        st = m.getStatus()
        stats: dict[str, Any] = {"solve_time": m.getSolvingTime(), "termination": st}
        if st in _LIMITS:
            stats["limit"] = _LIMITS[st]
        if st == "inforunbd":
            st = self._disambiguate()
        has_sol = m.getNSols() > 0
        if has_sol and st not in ("infeasible", "unbounded"):
            sol = m.getBestSol()
            x = np.fromiter((sol[v] for v in self._vars), dtype=np.float64, count=len(self._vars)) + 0.0
            self._x_prev = x
            status = Status.OPTIMAL if st == "optimal" else Status.FEASIBLE
            return x, m.getObjVal(), status, stats
        if st == "infeasible":
            return None, np.nan, Status.INFEASIBLE, stats
        if st == "unbounded":
            return None, np.nan, Status.UNBOUNDED, stats
        if st == "timelimit":
            stats.update(timeout=True, time_limit=self.time_limit)
            stats["detail"] = st
        elif st == "inforunbd":
            stats["detail"] = "infeasible or unbounded; the zero-objective re-solve could not tell"
        elif st == "userinterrupt":
            stats["detail"] = "interrupted"
        else:  # another limit (nodes, gap, solutions, memory, ...) or an interrupt
            stats["detail"] = f"SCIP status {st!r} without a feasible point"
        return None, np.nan, Status.ERROR, stats

    def _disambiguate(self) -> str:
        m = self._m
        m.freeTransform()
        m.setObjective(self._expr(np.zeros(len(self._vars))), "minimize", clear=True)
        self._optimize()
        if m.getNSols() > 0:
            return "unbounded"
        # "infeasible", or still undecided (a limit hit): reported as an error
        return "infeasible" if m.getStatus() == "infeasible" else "inforunbd"
