"""Baselines for the nonlinear assignment family, each a harness `Method`
``(instance, meter) -> x`` (see `surco.family`):

* `mean_cost`: the field's heuristic, one MILP solve with the cost linearised at the centre
  of Ω (`mean_cost_heuristic`);
* `local_search_first` / `local_search_steepest`: first- / steepest-improvement descent over
  moves and swaps of tasks (`surco.search.RowChoice`), from the mean-cost plan, restarted
  from random plans while the budget lasts (multi-start local search);
* `annealing`: simulated annealing over the same moves (`surco.search.simulated_annealing`);
* `scip`: SCIP on the true objective, a convex MIQP, with the meter's time limit
  (`scip_assignment`);
* `exact`: enumeration (`brute_force`), for n <= 15 with m = 3.

The search baselines score whole neighbourhoods in one ``meter.batch`` call, which the
family's vectorised ``evaluate_batch`` answers in one numpy expression.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from surco.budget import Budget, BudgetExhausted, Meter
from surco.search import RowChoice, local_search, simulated_annealing
from surco.solvers import SolverError, SolverTimeout, make_solver

from .problem import (Instance, brute_force, capacity, mean_cost_heuristic, random_plan,
                      space)

__all__ = ["mean_cost", "local_search_first", "local_search_steepest", "annealing", "scip",
           "exact", "scip_assignment", "SCIP_DEFAULT_SECONDS", "ANNEAL_DEFAULT_EVALUATIONS"]

#: SCIP's time limit when the meter has no deadline.
SCIP_DEFAULT_SECONDS = 60.0
#: Annealing cools over its budget, so under an unlimited meter it gets this many
#: evaluations per entry of x (n·m entries).
ANNEAL_DEFAULT_EVALUATIONS = 50


def _shape(y: Instance) -> tuple[int, int]:
    n, m = np.shape(y.a)
    return int(n), int(m)


@functools.lru_cache(maxsize=32)
def _solver(n: int, m: int):
    return make_solver(space(n, m), backend="highs")


@functools.lru_cache(maxsize=32)
def _neighbourhood(n: int, m: int) -> RowChoice:
    return RowChoice.from_spec(space(n, m))


def _plan(x: np.ndarray) -> np.ndarray:
    """A solver's x as an exact one-hot float64 plan."""
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    out[np.arange(x.shape[0]), np.argmax(x, axis=1)] = 1.0
    return out


def mean_cost(y: Instance, meter: Meter | None = None) -> np.ndarray:
    """The 'linearise at the centre' heuristic: argmin over Ω of ∇f(x̄)·x with x̄ = 1/m
    (one MILP solve; it does not evaluate f)."""
    return _plan(_solver(*_shape(y)).solve(mean_cost_heuristic(y)).x)


def _multistart(y: Instance, meter: Meter, strategy: str, seed: int = 0) -> np.ndarray:
    """Local search from the mean-cost plan, then from random plans (`random_plan`) until
    the budget is spent; a single descent under an unlimited budget. Stops as well after 20
    restarts in a row that needed no new evaluation (all their points cached)."""
    nb = _neighbourhood(*_shape(y))
    rng = np.random.default_rng(seed)
    x0, best, idle = mean_cost(y), None, 0
    while True:
        n_before = meter.evaluations
        try:
            res = local_search(x0, meter, nb, strategy=strategy, rng=rng)
        except BudgetExhausted:
            break
        if best is None or res.value < best.value:
            best = res
        idle = idle + 1 if meter.evaluations == n_before else 0
        if res.stopped == "budget" or meter.budget.unlimited or meter.exhausted or idle >= 20:
            break
        x0 = random_plan(y, rng)
    if best is not None:
        return best.x
    # the budget ended before the start could be evaluated: the start is still a plan
    return meter.best_x if meter.best_x is not None else mean_cost(y)


def local_search_first(y: Instance, meter: Meter) -> np.ndarray:
    """First-improvement local search over task moves and swaps, multi-start (see the module
    docstring; Papadimitriou & Steiglitz 1982, ch. 19)."""
    return _multistart(y, meter, "first")


def local_search_steepest(y: Instance, meter: Meter) -> np.ndarray:
    """Steepest-descent local search over task moves and swaps, multi-start (see the module
    docstring; Papadimitriou & Steiglitz 1982, ch. 19)."""
    return _multistart(y, meter, "steepest")


def _bounded(meter: Meter, evaluations: int) -> Meter:
    """``meter`` itself when its budget is finite; otherwise a child meter limited to
    ``evaluations`` whose evaluations go through ``meter`` (so they are counted there too).
    For methods that need a finite budget (annealing cools over it)."""
    if not meter.budget.unlimited:
        return meter
    return Budget(evaluations=int(evaluations)).start(meter, evaluate_batch=meter.batch)


def annealing(y: Instance, meter: Meter) -> np.ndarray:
    """Simulated annealing over task moves and swaps from the mean-cost plan, cooling over
    the meter's budget (Kirkpatrick, Gelatt & Vecchi 1983); under an unlimited budget it
    gets ``ANNEAL_DEFAULT_EVALUATIONS · n · m`` evaluations."""
    n, m = _shape(y)
    sub = _bounded(meter, ANNEAL_DEFAULT_EVALUATIONS * n * m)
    x0 = mean_cost(y)
    try:
        return simulated_annealing(x0, sub, _neighbourhood(n, m), rng=0).x
    except BudgetExhausted:   # spent before the start was evaluated: the start is a plan
        return x0


def scip_assignment(y: Instance, time_limit: float = SCIP_DEFAULT_SECONDS, *,
                    gap: float = 1e-9, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """SCIP (PySCIPOpt) on the true objective, a convex MIQP:

        min Σ_ij a_ij x_ij + ρ Σ_j t_j   s.t.  t_j >= load_j²,  load_j = Σ_i w_ij x_ij,
            Σ_j x_ij = 1,  Σ_i x_ij <= cap,  x ∈ {0,1}^{n×m}.

    Returns:
      (x, info): the best plan (n, m) and ``info`` with SCIP's ``status``, ``gap``,
      ``objective`` and ``optimal`` (True when SCIP proved optimality within ``gap``).

    Raises:
      ValueError: time_limit not positive.
      SolverTimeout: no plan within the time limit.
      SolverError: SCIP failed or ended without a plan.
    """
    import pyscipopt

    if not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise ValueError(f"scip_assignment: time_limit must be positive seconds, "
                         f"got {time_limit!r}")
    a = np.asarray(y.a, np.float64)
    w = np.asarray(y.w, np.float64)
    rho = float(y.rho)
    n, m = a.shape
    qs = pyscipopt.quicksum
    model = pyscipopt.Model(f"assignment-{n}x{m}")
    model.hideOutput()
    x = [[model.addVar(f"x{i}_{j}", vtype="B") for j in range(m)] for i in range(n)]
    load = [model.addVar(f"load{j}", lb=0.0) for j in range(m)]
    t = [model.addVar(f"t{j}", lb=0.0) for j in range(m)]
    cap = capacity(n, m)
    for i in range(n):
        model.addCons(qs(x[i]) == 1)
    for j in range(m):
        model.addCons(qs(x[i][j] for i in range(n)) <= cap)
        model.addCons(load[j] == qs(float(w[i, j]) * x[i][j] for i in range(n)))
        model.addCons(t[j] >= load[j] * load[j])
    model.setObjective(qs(float(a[i, j]) * x[i][j] for i in range(n) for j in range(m))
                       + rho * qs(t), "minimize")
    model.setParam("limits/time", float(time_limit))
    model.setParam("limits/gap", float(gap))
    model.setParam("randomization/randomseedshift", int(seed))
    try:
        model.optimize()
    except Exception as exc:  # PySCIPOpt raises a bare Exception on SCIP errors
        raise SolverError(f"scip_assignment: SCIP failed: {exc}") from exc
    status = model.getStatus()
    if model.getNSols() == 0:
        if status == "timelimit":
            raise SolverTimeout(f"scip_assignment: no plan within {time_limit:g} s")
        raise SolverError(f"scip_assignment: SCIP ended with status {status!r} and no plan")
    sol = model.getBestSol()
    X = _plan(np.array([[model.getSolVal(sol, v) for v in row] for row in x]))
    return X, {"status": status, "gap": float(model.getGap()),
               "objective": float(model.getObjVal()),
               "optimal": status in ("optimal", "gaplimit")}


def _time_limit(meter: Meter) -> float:
    left = meter.remaining_seconds()
    if math.isinf(left):
        return SCIP_DEFAULT_SECONDS
    return max(0.95 * left - 0.05, 0.05)


def scip(y: Instance, meter: Meter) -> np.ndarray:
    """SCIP on the true objective (`scip_assignment`) with the meter's remaining seconds as
    its time limit (``SCIP_DEFAULT_SECONDS`` without a deadline); its plan is evaluated once
    through the meter."""
    x, _ = scip_assignment(y, _time_limit(meter))
    try:
        meter(x)
    except BudgetExhausted:   # SCIP used all the time: its plan is still its answer
        pass
    return x


def exact(y: Instance, meter: Meter | None = None) -> np.ndarray:
    """The optimum by enumeration (`brute_force`; m^n <= 2e7 candidates)."""
    return brute_force(y)[0]
