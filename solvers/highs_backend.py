"""HiGHS (LP and MIP) through highspy, HiGHS's own Python API.

The model is passed once (``passModel``); each `solve` changes the objective
(``changeColsCost``) and re-runs, so LPs warm-start from the previous basis, and a MIP gets
the previous answer as its start solution (``warm_start``, on by default; measured in
bench/solvers.py ``--part backends``: the 30 x 30 grid LP takes 38 instead of 473 simplex
iterations per solve, MILPs 1.1-1.4 x less time per solve on SurCo-like cost sequences).
HiGHS's feasibility-jump heuristic is off by default for MIPs: it cost ~15 ms per solve,
which made small MIPs 10 x slower than with SCIP (8 x 3 assignment: 18 ms -> 1.3 ms).

Why highspy and not OR-Tools MathOpt's HiGHS wrapper (which this backend replaced): MathOpt
9.15 ignores a ``SolveInterrupter`` for HiGHS, so a HiGHS solve could not be stopped by
Ctrl-C before its time limit. highspy exposes HiGHS's interrupt callbacks
(``kCallbackSimplexInterrupt``, ``kCallbackIpmInterrupt``, ``kCallbackMipInterrupt``), which
`solve_flat` uses through `surco.solvers.blocking.blocking_call`. Both libraries carry the
same HiGHS release (1.12; pinned together in pyproject.toml). ``run`` releases the GIL, so
`solve_batch` with a ``ThreadPoolExecutor`` solves in parallel.

Time limits: HiGHS 1.12 reads neither its clock nor its interrupt callbacks inside parts of
its MIP presolve (``HPresolve::detectParallelRowsAndCols`` ran for seconds on a 300 x 300
assignment: 6-30 s with ``time_limit=2`` at 600 x 600), so `Solver.solve` stops the run
from outside and, if it does not return, abandons it (`surco.solvers.blocking`).

Options keep the MathOpt ``SolveParameters`` names that `make_solver` documents; the ones
HiGHS has an equivalent for are translated: ``node_limit`` (``mip_max_nodes``),
``relative_gap_tolerance`` (``mip_rel_gap``), ``absolute_gap_tolerance`` (``mip_abs_gap``),
``iteration_limit`` (``simplex_iteration_limit`` and ``ipm_iteration_limit``),
``solution_limit`` (``mip_max_improving_sols``), ``cutoff_limit`` (``objective_bound``),
and ``highs=HighsOptionsProto(...)`` whose maps are HiGHS option names. Others raise
`ValueError`.
"""
from __future__ import annotations

import functools
import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._kwargs import check_kwargs
from .base import Solver
from .blocking import blocking_call
from .output import filter_noise
from .result import SolverError, Status
from .spec import LinearSpec

_TRANSLATED = {"node_limit": ("mip_max_nodes",),
               "relative_gap_tolerance": ("mip_rel_gap",),
               "absolute_gap_tolerance": ("mip_abs_gap",),
               "iteration_limit": ("simplex_iteration_limit", "ipm_iteration_limit"),
               "solution_limit": ("mip_max_improving_sols",),
               "cutoff_limit": ("objective_bound",)}


def highspy_module():
    """``import highspy``, with a message that says which release to install."""
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if "undefined symbol" in str(exc):
            raise ImportError(
                "highspy's libhighs.so.1 clashes with the HiGHS library bundled in ortools (both "
                "use that name, and the first one loaded wins): install the highspy release "
                "equal to ortools' HiGHS (highspy==1.12.0 for ortools 9.15)") from exc
        raise ImportError("the highs backend needs HiGHS's Python API: pip install "
                          "highspy==1.12.0 (the HiGHS release bundled in ortools 9.15)") from exc
    return highspy


def highs_lp(spec: LinearSpec, integer: np.ndarray | None):
    """The ``HighsLp`` of Ω with a zero cost (integrality from ``integer``, None: an LP)."""
    hs = highspy_module()
    n = spec.n
    A = sp.vstack([spec.A_eq, spec.A_ub]).tocsc()
    A.sort_indices()
    inf = hs.kHighsInf
    lp = hs.HighsLp()
    lp.num_col_, lp.num_row_ = n, A.shape[0]
    lp.col_cost_ = np.zeros(n)
    lp.col_lower_ = np.where(np.isfinite(spec.lb), spec.lb, -inf)
    lp.col_upper_ = np.where(np.isfinite(spec.ub), spec.ub, inf)
    lp.row_lower_ = np.concatenate([spec.b_eq, np.full(spec.A_ub.shape[0], -inf)])
    lp.row_upper_ = np.concatenate([spec.b_eq, spec.b_ub])
    lp.a_matrix_.format_ = hs.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, A.shape[0]
    lp.a_matrix_.start_, lp.a_matrix_.index_ = A.indptr, A.indices
    lp.a_matrix_.value_ = A.data
    if integer is not None and integer.any():
        lp.integrality_ = [hs.HighsVarType.kInteger if i else hs.HighsVarType.kContinuous
                           for i in integer]
    return lp


class InterruptibleHighs:
    """A ``highspy.Highs`` whose ``run`` stops on Ctrl-C (through HiGHS's interrupt callbacks).

    Shared by `HighsSolver` and the quadratic relaxation (`surco.solvers.qp`).
    """

    def __init__(self, name: str, verbose: bool):
        hs = highspy_module()
        self.hs, self.name, self.verbose = hs, name, verbose
        self.h = h = hs.Highs()
        h.setOptionValue("output_flag", bool(verbose))
        stop = self._stop = [False]   # a list, not self: the callback must not keep self alive

        def interrupt(kind, message, data_out, data_in, user_data):
            # set both ways: HiGHS keeps data_in between runs, so an interrupt that landed
            # once (a cancelled batch, a time limit) would stop every later run at once
            data_in.user_interrupt = bool(stop[0])

        h.setCallback(interrupt, None)
        cbt = hs.cb.HighsCallbackType
        for kind in (cbt.kCallbackSimplexInterrupt, cbt.kCallbackIpmInterrupt,
                     cbt.kCallbackMipInterrupt):
            h.startCallback(kind)

    def set_option(self, key: str, value) -> None:
        status = self.h.setOptionValue(key, value)
        if status != self.hs.HighsStatus.kOk:
            raise ValueError(f"{self.name}: HiGHS rejected option {key}={value!r} ({status})")

    def stop(self) -> None:
        self._stop[0] = True

    def run(self, quiet_stdout: bool, owner=None):
        """``Highs.run()``, interruptible; returns the run status. ``owner``: the solver this
        object serves (`blocking_call`'s owner, so that its ``solve`` can `settle` it)."""
        def call():
            if quiet_stdout and not self.verbose:
                with filter_noise(1):
                    return self.h.run()
            return self.h.run()

        self._stop[0] = False
        return blocking_call(call, self.stop, self if owner is None else owner)


class HighsSolver(Solver):
    """``argmin c·x over Ω`` with HiGHS via highspy (see `make_solver` for the arguments).

    Raises:
      ValueError: at construction, ``threads != 1`` (HiGHS sets its thread count for the
        whole process; parallelise with ``solve_batch``), an option HiGHS has no equivalent
        for, or a value HiGHS rejects.
      TypeError: an option name that is not a MathOpt ``SolveParameters`` field (with the
        valid names and the closest one).
      SolverError: HiGHS rejected the model.
    """

    def __init__(self, spec: LinearSpec, relax: bool = False, time_limit: float | None = None,
                 threads: int = 1, seed: int = 0, verbose: bool = False,
                 warm_start: bool = True, **options: Any):
        from ortools.math_opt.python import mathopt

        super().__init__(spec.shape, spec.name)
        self.warm_start = bool(warm_start)
        self._x_prev: np.ndarray | None = None
        self.spec, self.relax, self.time_limit = spec, relax, time_limit
        self.threads, self.seed, self.verbose, self.options = threads, seed, verbose, options
        if threads != 1:
            raise ValueError("backend 'highs': threads must be 1 (HiGHS sets its thread "
                             "count globally); parallelise with solve_batch instead")
        from .mathopt_backend import solve_parameter_names
        check_kwargs(f"{spec.name}: backend 'highs'", options, solve_parameter_names())
        params = mathopt.SolveParameters(**options)
        self._integer = spec.integer & (not relax)
        self._mip = bool(self._integer.any())
        self._run = InterruptibleHighs(spec.name, verbose)
        run, h = self._run, self._run.h
        run.set_option("threads", 1)
        run.set_option("random_seed", int(seed))
        if self._mip:
            # HiGHS 1.12 runs its feasibility-jump heuristic before every MIP solve: ~15 ms
            # of fixed cost that dominated small MIPs (8 x 3 assignment: 16 ms -> 1.3 ms per
            # solve, same optima; bench/solvers.py). Turn it back on with
            # highs=HighsOptionsProto(bool_options={"mip_heuristic_run_feasibility_jump": True}).
            run.set_option("mip_heuristic_run_feasibility_jump", False)
        if time_limit is not None:
            run.set_option("time_limit", float(time_limit))
        for key in options:
            if key == "highs":
                hp = params.highs
                for table in (hp.bool_options, hp.int_options, hp.double_options,
                              hp.string_options):
                    for k, v in table.items():
                        run.set_option(k, v)
            elif key in _TRANSLATED:
                for target in _TRANSLATED[key]:
                    run.set_option(target, options[key])
            elif key == "enable_output":
                run.set_option("output_flag", bool(options[key]))
            else:
                raise ValueError(f"{spec.name}: option {key!r} has no HiGHS equivalent in the "
                                 f"highs backend; supported: {sorted(_TRANSLATED) + ['highs']}")
        status = h.passModel(highs_lp(spec, self._integer))
        if status != run.hs.HighsStatus.kOk:
            raise SolverError(f"{spec.name}: HiGHS rejected the model ({status})")
        self._idx = np.arange(spec.n, dtype=np.int32)
        self._c = None

    def factory(self):
        return functools.partial(HighsSolver, self.spec, self.relax, self.time_limit,
                                 self.threads, self.seed, self.verbose, self.warm_start,
                                 **self.options)

    def _set_cost(self, c: np.ndarray) -> None:
        if self._c is None or not np.array_equal(c, self._c):
            self._run.h.changeColsCost(len(c), self._idx, c)
            self._c = c.copy()

    def set_bounds_flat(self, lb: np.ndarray, ub: np.ndarray) -> None:
        """New variable bounds in place (``changeColsBounds``; see `Solver.fixed`)."""
        inf = self._run.hs.kHighsInf
        self._run.h.changeColsBounds(len(lb), self._idx, np.where(np.isfinite(lb), lb, -inf),
                                     np.where(np.isfinite(ub), ub, inf))

    def _warm(self) -> None:
        """Warm start (``warm_start``): a MIP gets the previous answer as its start solution
        (``setSolution``; HiGHS checks it and drops it if it is not feasible); an LP keeps
        its basis, which HiGHS does by itself. Cold (``warm_start=False``): the solver
        forgets its basis and solution before every run."""
        h = self._run.h
        if not self.warm_start:
            h.clearSolver()
        elif self._mip and self._x_prev is not None:
            sol = self._run.hs.HighsSolution()
            sol.col_value = self._x_prev
            sol.value_valid = True
            h.setSolution(sol)

    def _solve(self, c: np.ndarray):
        self._set_cost(c)
        self._warm()
        t0 = time.perf_counter()
        run_status = self._run.run(quiet_stdout=self._mip, owner=self)
        self._seconds = time.perf_counter() - t0
        h = self._run.h
        return h.getModelStatus(), h.getInfo(), run_status

    def solve_flat(self, c):
        M = self._run.hs.HighsModelStatus
        ms, info, run_status = self._solve(c)
        stats: dict[str, Any] = {"solve_time": self._seconds, "termination": ms.name}
        limit = self._limit_name(ms)
        if limit:
            stats["limit"] = limit
        if ms == M.kUnboundedOrInfeasible:
            ms = self._disambiguate()
            stats["solve_time"] += self._seconds
        has_point = info.primal_solution_status == 2   # kSolutionStatusFeasible
        if ms == M.kOptimal or (has_point and ms not in (M.kInfeasible, M.kUnbounded,
                                                         M.kUnboundedOrInfeasible)):
            x = np.asarray(self._run.h.getSolution().col_value, dtype=np.float64) + 0.0
            self._x_prev = x
            return x, info.objective_function_value, Status.OPTIMAL if ms == M.kOptimal else Status.FEASIBLE, stats
        if ms == M.kInfeasible:
            return None, math.nan, Status.INFEASIBLE, stats
        if ms == M.kUnbounded:
            return None, math.nan, Status.UNBOUNDED, stats
        if ms == M.kTimeLimit:
            stats.update(timeout=True, time_limit=self.time_limit)
        elif ms == M.kUnboundedOrInfeasible:
            stats["detail"] = "infeasible or unbounded; the zero-objective re-solve could not tell"
        elif ms in (M.kInterrupt, M.kHighsInterrupt):
            stats["detail"] = "interrupted"
        else:
            stats["detail"] = f"HiGHS returned {ms.name} without a feasible point (run {run_status})"
        return None, math.nan, Status.ERROR, stats

    def _limit_name(self, ms) -> str | None:
        """Which limit a HiGHS model status reports (`Solution` ``stats["limit"]``), if any.
        HiGHS reports a node limit as ``kSolutionLimit``, like a solution limit."""
        M = self._run.hs.HighsModelStatus
        if ms == M.kSolutionLimit:
            node, sols = "node_limit" in self.options, "solution_limit" in self.options
            return "node" if node and not sols else "solution" if sols and not node \
                else "node or solution"
        return {M.kTimeLimit: "time", M.kIterationLimit: "iteration",
                M.kObjectiveBound: "cutoff", M.kObjectiveTarget: "objective",
                M.kMemoryLimit: "memory", M.kInterrupt: "interrupted",
                M.kHighsInterrupt: "interrupted"}.get(ms)

    def _disambiguate(self):
        """Infeasible-or-unbounded: solve the feasibility problem (zero cost) once."""
        M = self._run.hs.HighsModelStatus
        ms, info, _ = self._solve(np.zeros(self.spec.n))
        if ms == M.kOptimal or info.primal_solution_status == 2:
            return M.kUnbounded
        return M.kInfeasible if ms == M.kInfeasible else M.kUnboundedOrInfeasible
