"""Baselines for the nonlinear assignment family, each a harness `Method`
``(instance, meter) -> x`` built from the combinators of `surco.methods`:

* `mean_cost`: the field's heuristic, one MILP solve with the cost linearised at the centre
  of Ω (`mean_cost_plan`; it does not evaluate f);
* `local_search_first` / `local_search_steepest`: first- / steepest-improvement descent over
  moves and swaps of tasks (`surco.search.RowChoice`), from the mean-cost plan, restarted
  from random plans while the budget lasts (`surco.methods.search_from`);
* `annealing`: simulated annealing over the same moves (`surco.methods.annealing_from`),
  ``ANNEAL_EVALUATIONS_PER_ENTRY · n · m`` evaluations under an unlimited budget;
* `scip`: SCIP on the true objective, a convex MIQP (`scip_assignment`), with the one time
  policy of `surco.methods.time_limited`;
* `exact`: enumeration (`brute_force`), for n <= 15 with m = 3.

The search baselines score whole neighbourhoods in one ``meter.batch`` call, which the
family's vectorised ``evaluate_batch`` answers in one numpy expression.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from surco.methods import (SOLVER_DEFAULT_SECONDS, annealing_from, heuristic, search_from,
                           time_limited)
from surco.search import RowChoice
from surco.solvers import SolverError, SolverTimeout, make_solver

from .problem import (Instance, brute_force, capacity, mean_cost_heuristic, random_plan,
                      space)

__all__ = ["mean_cost", "mean_cost_plan", "local_search_first", "local_search_steepest",
           "annealing", "scip", "exact", "scip_assignment", "ANNEAL_EVALUATIONS_PER_ENTRY"]

#: Annealing cools over its budget, so under an unlimited meter it gets this many
#: evaluations per entry of x (n·m entries).
ANNEAL_EVALUATIONS_PER_ENTRY = 50


def _shape(y: Instance) -> tuple[int, int]:
    n, m = np.shape(y.a)
    return int(n), int(m)


@functools.lru_cache(maxsize=32)
def _solver(n: int, m: int):
    return make_solver(space(n, m), backend="highs")


@functools.lru_cache(maxsize=32)
def _moves(n: int, m: int) -> RowChoice:
    return RowChoice.from_spec(space(n, m))


def _neighbourhood(y: Instance, x0: np.ndarray) -> RowChoice:
    """Moves and swaps of tasks on Ω of the instance's size."""
    return _moves(*_shape(y))


def _plan(x: np.ndarray) -> np.ndarray:
    """A solver's x as an exact one-hot float64 plan."""
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    out[np.arange(x.shape[0]), np.argmax(x, axis=1)] = 1.0
    return out


def mean_cost_plan(y: Instance) -> np.ndarray:
    """The 'linearise at the centre' heuristic: argmin over Ω of ∇f(x̄)·x with x̄ = 1/m
    (one MILP solve; it does not evaluate f)."""
    return _plan(_solver(*_shape(y)).solve(mean_cost_heuristic(y)).x)


def _anneal_evaluations(y: Instance) -> int:
    n, m = _shape(y)
    return ANNEAL_EVALUATIONS_PER_ENTRY * n * m


def _scip_plan(y: Instance, seconds: float) -> np.ndarray:
    """`scip_assignment`'s plan within ``seconds``."""
    return scip_assignment(y, seconds)[0]


def _exact_plan(y: Instance) -> np.ndarray:
    """The optimum by enumeration (`brute_force`; m^n <= 2e7 candidates)."""
    return brute_force(y)[0]


def scip_assignment(y: Instance, time_limit: float = SOLVER_DEFAULT_SECONDS, *,
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


#: The family's baselines (see the module docstring).
mean_cost = heuristic(mean_cost_plan, name="mean_cost")
local_search_first = search_from(mean_cost, _neighbourhood, kind="first", restart=random_plan)
local_search_steepest = search_from(mean_cost, _neighbourhood, kind="steepest",
                                    restart=random_plan)
annealing = annealing_from(mean_cost, _neighbourhood, evaluations=_anneal_evaluations)
scip = time_limited(_scip_plan, name="scip")
exact = heuristic(_exact_plan, name="exact")
