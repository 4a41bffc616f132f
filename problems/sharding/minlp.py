"""SCIP on the true sharding objective: the analytic cost model written as a MINLP.

The plan cost of `AnalyticCostModel.plan_cost` (see `cost`'s module docstring for the model),

    max_d [ 3 F_d(x) ] + max_d 2 max(send_d, recv_d) / BW_COMM,
    F_d = k0 + Σ_t x_td (o + S_t / BW + G_t / BW) - Σ_t x_td q_d r_t G_t (1/BW - 1/BW_L2),
    q_d = C / (C + W_d),  W_d = Σ_t W_t x_td,

is linear in x except for the cache factor q_d and its products with x. It is written
exactly for SCIP (Achterberg, "SCIP: solving constraint integer programs", Math. Prog. Comp.
2009; spatial branch and bound for the non-convex part, Vigerske & Gleixner, OMS 2018) with

* ``W_d`` as a linear expression, ``q_d (C + W_d) <= C`` a non-convex bilinear row (q_d may
  be no larger than the true cache factor; the minimisation pushes it up to equality),
* ``y_td <= q_d`` and ``y_td <= x_td`` for the products (exact for binary x: the
  coefficient of y_td in the cost is negative, so y_td = x_td q_d at an optimum),
* epigraph variables for both maxima.

Costs are scaled to milliseconds and memory to GiB for conditioning. The best heuristic plan
is handed to SCIP as a start solution, so the answer is never worse than it. With a time
limit SCIP returns its best plan (status "timelimit"); without one on DLRM-50 it does not
prove optimality in reasonable time (the bilinear rows are weak), which is why it is a
time-limited baseline here and an exact method only for small tasks (`exact_minlp`).
"""
from __future__ import annotations

import numpy as np

from surco.solvers import SolverError

from .cost import DEFAULT_COST_MODEL, AnalyticCostModel
from .tasks import MEMORY_UNIT, ShardingTask

__all__ = ["scip_minlp", "SCIP_MINLP_DEFAULT_SECONDS"]

#: Time limit of `scip_minlp` when the caller gives none (seconds).
SCIP_MINLP_DEFAULT_SECONDS = 30.0


def scip_minlp(task: ShardingTask, *, time_limit: float | None = SCIP_MINLP_DEFAULT_SECONDS,
               start: np.ndarray | None = None, model: AnalyticCostModel = DEFAULT_COST_MODEL,
               gap: float = 1e-6, threads: int = 1) -> tuple[np.ndarray, float, str]:
    """Minimise the plan cost over Ω with SCIP (see the module docstring).

    Args:
      task: the task. time_limit: seconds (None: until optimal). start: a feasible plan
        handed to SCIP as its first incumbent. model: the cost model. gap: relative gap at
        which SCIP stops.

    Returns:
      ``(x, objective in ms, SCIP status)``; x is a plan in Ω, rounded to 0/1.

    Raises:
      SolverError: SCIP found no feasible plan (e.g. the time limit hit before any) or
        failed; the message has SCIP's status.
    """
    import pyscipopt as scip

    T, D = task.n_tables, task.n_devices
    S = np.asarray(task.stream_bytes, np.float64)
    G = np.asarray(task.lookup_bytes, np.float64)
    r = np.asarray(task.reuse, np.float64)
    W = np.asarray(task.footprint, np.float64)
    P = np.asarray(task.comm_bytes, np.float64)
    size = np.asarray(task.size_bytes, np.float64) / MEMORY_UNIT
    cap = np.asarray(task.capacity, np.float64) / MEMORY_UNIT
    C, bw, bl2 = model.l2_bytes, model.hbm_bw, model.l2_bw
    mult = 1e3 * (1.0 + model.bwd_multiplier)       # s -> ms, forward + backward
    lin = mult * (model.table_overhead + S / bw + G / bw)      # per table, no cache hit
    save = mult * r * G * (1.0 / bw - 1.0 / bl2)                # per table at q_d = 1
    Wg = W / C                                                  # footprints in units of C

    m = scip.Model("sharding-minlp")
    m.hideOutput(True)
    m.setParam("misc/catchctrlc", False)
    m.setParam("parallel/maxnthreads", int(threads))
    if time_limit is not None:
        m.setParam("limits/time", max(float(time_limit), 0.01))
    m.setParam("limits/gap", float(gap))
    x = [[m.addVar(vtype="B", name=f"x_{t}_{d}") for d in range(D)] for t in range(T)]
    q = [m.addVar(lb=1.0 / (1.0 + Wg.sum()), ub=1.0, name=f"q_{d}") for d in range(D)]
    y = [[m.addVar(lb=0.0, ub=1.0, name=f"y_{t}_{d}") for d in range(D)] for t in range(T)]
    comp = m.addVar(lb=0.0, name="compute")
    comm = m.addVar(lb=0.0, name="comm")
    for t in range(T):
        m.addCons(scip.quicksum(x[t]) == 1)
    for d in range(D):
        col = [x[t][d] for t in range(T)]
        m.addCons(scip.quicksum(size[t] * col[t] for t in range(T)) <= cap[d])
        m.addCons(scip.quicksum(col) >= 1)
        wd = scip.quicksum(Wg[t] * col[t] for t in range(T))
        m.addCons(q[d] + q[d] * wd <= 1.0)                      # q_d (1 + W_d / C) <= 1
        for t in range(T):
            m.addCons(y[t][d] <= q[d])
            m.addCons(y[t][d] <= col[t])
        m.addCons(comp >= mult * model.kernel_overhead
                  + scip.quicksum(lin[t] * col[t] - save[t] * y[t][d] for t in range(T)))
        send = scip.quicksum(2e3 * P[t] / model.comm_bw * col[t] for t in range(T))
        recv = scip.quicksum(2e3 * P[t] / (D - 1) / model.comm_bw * (1 - col[t])
                             for t in range(T)) if D > 1 else 0.0
        m.addCons(comm >= send)
        if D > 1:
            m.addCons(comm >= recv)
    m.setObjective(comp + comm, "minimize")
    if start is not None:
        _add_start(m, np.asarray(start, np.float64), x, q, y, comp, comm, task, model)
    m.optimize()
    status = m.getStatus()
    if m.getNSols() == 0:
        raise SolverError(f"scip_minlp: SCIP found no feasible plan (status {status!r}, "
                          f"time limit {time_limit})")
    sol = m.getBestSol()
    X = np.array([[m.getSolVal(sol, x[t][d]) for d in range(D)] for t in range(T)])
    X = np.round(X)
    return X, float(m.getSolObjVal(sol)), str(status)


def _add_start(m, plan, x, q, y, comp, comm, task: ShardingTask, model: AnalyticCostModel) -> None:
    """Hand ``plan`` to SCIP as a complete start solution (every variable set)."""
    T, D = plan.shape
    W = np.asarray(task.footprint, np.float64)
    qd = model.l2_bytes / (model.l2_bytes + W @ plan)
    compute, cm = model.stage_costs(plan.astype(np.float32), task)
    sol = m.createSol()
    for t in range(T):
        for d in range(D):
            m.setSolVal(sol, x[t][d], float(plan[t, d]))
            m.setSolVal(sol, y[t][d], float(plan[t, d] * qd[d]))
    for d in range(D):
        m.setSolVal(sol, q[d], float(qd[d]) * (1 - 1e-12))
    m.setSolVal(sol, comp, float(np.max(np.asarray(compute))) * (1 + 1e-9))
    m.setSolVal(sol, comm, float(np.max(np.asarray(cm))) * (1 + 1e-9))
    m.addSol(sol, free=True)
