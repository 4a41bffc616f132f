"""Quadratically regularised LP relaxation: ``argmin_{x in relax(Ω)} c·x + γ‖x‖²``.

This is the smoothed solver of Wilder, Dilkina and Tambe ("Melding the Data-Decisions
Pipeline: Decision-Focused Learning for Combinatorial Optimization", AAAI 2019): over the LP
relaxation of Ω, adding ``γ‖x‖²`` makes the argmin unique and piecewise-smooth in c. It is
solved by HiGHS's QP solver (active-set, through ``highspy``), behind the same `Solver`
contract as every backend: the model is built once and each solve only changes the linear
cost.

Ctrl-C: HiGHS 1.12's QP solver has no interrupt hook (its interrupt callbacks serve the
simplex, IPM and MIP solvers only, and it reads its limits once at the start), so a
KeyboardInterrupt reaches the caller after `surco.solvers.blocking.INTERRUPT_GRACE` (1 s)
while the QP solve finishes in the background; the solver's next call waits for it. Give a
``time_limit`` to bound that: the solve returns within 0.5 s of it (`Solver.solve`
abandons a run that does not stop).
"""
from __future__ import annotations

import functools
import math
import time
from typing import Any

import numpy as np

from .base import Solver
from .highs_backend import InterruptibleHighs, highs_lp
from .result import SolverError, Status
from .spec import LinearSpec


class QuadraticSolver(Solver):
    """``x = argmin c·x + γ‖x‖²`` over the LP relaxation of a `LinearSpec` (HiGHS QP).

    Args:
      spec: Ω; integrality is dropped.
      gamma: γ > 0, the weight of ``‖x‖²`` (Wilder et al. 2019).
      time_limit: seconds per solve, or None.
      verbose: let HiGHS print its log (default: silent).

    The reported ``objective`` is ``c·x + γ‖x‖²``. The solution is the Euclidean projection of
    ``-c/(2γ)`` onto the relaxed polytope.

    Raises:
      ValueError: ``gamma <= 0`` or a bad time limit; at solve time, bad costs as every solver.
    """

    def __init__(self, spec: LinearSpec, gamma: float, time_limit: float | None = None,
                 verbose: bool = False):
        if not isinstance(spec, LinearSpec):
            raise TypeError(f"QuadraticSolver: spec must be a LinearSpec, got {type(spec).__name__}")
        if not (isinstance(gamma, (int, float, np.floating, np.integer)) and math.isfinite(gamma)
                and gamma > 0):
            raise ValueError(f"QuadraticSolver: gamma (γ) must be a finite number > 0, got {gamma!r}")
        if time_limit is not None and not time_limit > 0:
            raise ValueError(f"QuadraticSolver: time_limit must be positive seconds, got {time_limit}")
        super().__init__(spec.shape, spec.name + f"[qp γ={gamma:g}]")
        self.spec, self.gamma, self.time_limit = spec, float(gamma), time_limit
        self.verbose = verbose
        n = spec.n
        self._run = run = InterruptibleHighs(self.name, verbose)
        hs, h = run.hs, run.h
        hess = hs.HighsHessian()
        hess.dim_, hess.format_ = n, hs.HessianFormat.kTriangular
        hess.start_, hess.index_ = np.arange(n + 1), np.arange(n)
        hess.value_ = np.full(n, 2.0 * self.gamma)             # ½ xᵀ(2γI)x = γ‖x‖²
        model = hs.HighsModel()
        model.lp_, model.hessian_ = highs_lp(spec, None), hess
        run.set_option("threads", 1)
        if time_limit is not None:
            run.set_option("time_limit", float(time_limit))
        status = h.passModel(model)
        if status != hs.HighsStatus.kOk:
            raise SolverError(f"{self.name}: HiGHS rejected the QP model ({status})")
        self._h, self._hs = h, hs
        self._idx = np.arange(n, dtype=np.int32)

    def factory(self):
        return functools.partial(QuadraticSolver, self.spec, self.gamma, self.time_limit,
                                 self.verbose)

    def solve_flat(self, c: np.ndarray) -> tuple[Any, float, Status, dict]:
        hs, h = self._hs, self._h
        h.changeColsCost(len(c), self._idx, c)
        t0 = time.perf_counter()
        run = self._run.run(quiet_stdout=True, owner=self)
        solve_time = time.perf_counter() - t0
        ms = h.getModelStatus()
        info = h.getInfo()
        stats = {"solve_time": solve_time, "termination": str(ms),
                 "iterations": int(info.qp_iteration_count)}
        M = hs.HighsModelStatus
        if ms == M.kOptimal:
            x = np.asarray(h.getSolution().col_value, dtype=np.float64)
            return x, float(c @ x + self.gamma * x @ x), Status.OPTIMAL, stats
        if ms == M.kInfeasible:
            return None, math.nan, Status.INFEASIBLE, stats
        if ms == M.kUnbounded:
            return None, math.nan, Status.UNBOUNDED, stats
        if ms == M.kTimeLimit:
            stats.update(timeout=True, time_limit=self.time_limit, limit="time")
        elif ms in (M.kInterrupt, M.kHighsInterrupt):
            stats["detail"] = "interrupted"
            return None, math.nan, Status.ERROR, stats
        stats["detail"] = f"HiGHS returned {ms} (run status {run})"
        return None, math.nan, Status.ERROR, stats
