"""OR-Tools MathOpt backends: SCIP, HiGHS, CP-SAT, GLOP, PDLP.

The model is built once; each `solve` changes only the objective coefficients and re-solves
through ``mathopt.IncrementalSolver``, which sends the solver just the model update.
"""
from __future__ import annotations

import datetime
import functools
from typing import Any

import numpy as np

from .base import Solver
from .result import SolverError, Status
from .spec import LinearSpec

_LP_ONLY = {"glop", "pdlp"}


def _solver_type(backend: str):
    from ortools.math_opt.python import mathopt
    return {"scip": mathopt.SolverType.GSCIP, "highs": mathopt.SolverType.HIGHS,
            "cpsat": mathopt.SolverType.CP_SAT, "glop": mathopt.SolverType.GLOP,
            "pdlp": mathopt.SolverType.PDLP}[backend]


class MathOptSolver(Solver):
    """``argmin c·x over Ω`` through OR-Tools MathOpt (see `make_solver` for the arguments)."""

    def __init__(self, spec: LinearSpec, backend: str, relax: bool = False,
                 time_limit: float | None = None, threads: int = 1, seed: int = 0,
                 **options: Any):
        from ortools.math_opt.python import mathopt

        super().__init__(spec.shape, spec.name)
        self.spec, self.backend, self.relax = spec, backend, relax
        self.time_limit, self.threads, self.seed, self.options = time_limit, threads, seed, options
        integer = spec.integer & (not relax)
        if backend in _LP_ONLY and integer.any():
            raise ValueError(f"{spec.name}: backend {backend!r} solves LPs only and the spec has "
                             f"{int(integer.sum())} integer variables; pass relax=True or use a "
                             "MIP backend (scip, highs, cpsat, pyscipopt)")
        if backend == "cpsat" and not integer.all():
            raise ValueError(f"{spec.name}: backend 'cpsat' needs every variable integer "
                             f"({int((~integer).sum())} are continuous"
                             + (", relax=True was asked" if relax else "") + "); use scip or highs")
        model = mathopt.Model(name=spec.name)
        lb, ub = spec.lb, spec.ub
        self._vars = [model.add_variable(lb=lb[i], ub=ub[i], is_integer=bool(integer[i]))
                      for i in range(spec.n)]
        for A, b, kind in ((spec.A_ub, spec.b_ub, "ub"), (spec.A_eq, spec.b_eq, "eq")):
            for r in range(A.shape[0]):
                lo, hi = A.indptr[r], A.indptr[r + 1]
                con = model.add_linear_constraint(lb=b[r] if kind == "eq" else -np.inf, ub=b[r])
                for j, a in zip(A.indices[lo:hi], A.data[lo:hi]):
                    con.set_coefficient(self._vars[j], float(a))
        self._model = model
        self._objective = model.objective
        self._c = np.zeros(spec.n)
        self._inc = mathopt.IncrementalSolver(model, _solver_type(backend))
        kw: dict[str, Any] = dict(threads=threads, random_seed=seed)
        if backend == "highs":
            # MathOpt's HiGHS wrapper takes no per-solve thread count (HiGHS sets it globally).
            if threads != 1:
                raise ValueError("backend 'highs': threads must be 1 (HiGHS sets its thread "
                                 "count globally); parallelise with solve_batch instead")
            kw.pop("threads")
        if backend == "pdlp":
            kw.pop("random_seed")  # PDLP is deterministic and rejects a seed
        if time_limit is not None:
            kw["time_limit"] = datetime.timedelta(seconds=float(time_limit))
        kw.update(options)
        self._params = mathopt.SolveParameters(**kw)

    def factory(self):
        return functools.partial(MathOptSolver, self.spec, self.backend, self.relax,
                                 self.time_limit, self.threads, self.seed, **self.options)

    def _set_objective(self, c: np.ndarray) -> None:
        changed = np.flatnonzero(c != self._c)
        obj, vars_ = self._objective, self._vars
        for j in changed:
            obj.set_linear_coefficient(vars_[j], float(c[j]))
        self._c = c.copy()

    def _solve_flat(self, c):
        from ortools.math_opt.python import mathopt
        TR = mathopt.TerminationReason
        self._set_objective(c)
        res = self._call()
        reason = res.termination.reason
        stats: dict[str, Any] = {"solve_time": res.solve_time().total_seconds(),
                                 "termination": reason.name, "detail": res.termination.detail}
        if reason == TR.INFEASIBLE_OR_UNBOUNDED:
            reason = self._disambiguate()
        if res.has_primal_feasible_solution() and reason in (TR.OPTIMAL, TR.FEASIBLE):
            vals = res.variable_values(self._vars)
            x = np.fromiter(vals, dtype=np.float64, count=len(self._vars)) + 0.0  # no -0.0
            status = Status.OPTIMAL if reason == TR.OPTIMAL else Status.FEASIBLE
            return x, res.objective_value(), status, stats
        if reason == TR.INFEASIBLE:
            return None, np.nan, Status.INFEASIBLE, stats
        if reason == TR.UNBOUNDED:
            return None, np.nan, Status.UNBOUNDED, stats
        if reason == TR.NO_SOLUTION_FOUND and res.termination.limit is not None:
            stats.update(timeout=True, time_limit=self.time_limit)
        return None, np.nan, Status.ERROR, stats

    def _call(self):
        try:
            return self._inc.solve(params=self._params)
        except Exception as exc:  # MathOpt raises on invalid parameters / internal errors
            # Some ortools builds lose the message while converting it; keep the original.
            cause = exc.__context__ if isinstance(exc, AttributeError) and exc.__context__ else exc
            raise SolverError(f"{self.name}: {self.backend} failed: {cause}") from exc

    def _disambiguate(self):
        """Infeasible-or-unbounded: solve the feasibility problem (zero objective) once."""
        from ortools.math_opt.python import mathopt
        TR = mathopt.TerminationReason
        saved = self._c.copy()
        self._set_objective(np.zeros_like(saved))
        res = self._call()
        self._set_objective(saved)
        return TR.UNBOUNDED if res.has_primal_feasible_solution() else TR.INFEASIBLE
