"""Baselines for on-time routing: LET path, mean–risk heuristic, exact SCIP, brute force.

* `let_path`: the least-expected-time path (Dijkstra on μ).
* `mean_risk`: Dijkstra on μ + γ·σ² for every γ of a grid, keeping the path with the best
  on-time probability (the parametric mean–risk approach of Nikolova, Brand & Karger, ICAPS
  2006). γ < 0 (risk seeking, right for tight deadlines) is on the grid as long as every edge
  cost stays > 0.
* `scip_exact`: the exact optimum of the nonlinear model by SCIP's spatial branch and bound
  (PySCIPOpt), with a time limit.
* `brute_force`: every simple s–t path of a grid with n <= 5, evaluated at once.

Every function returns a `RouteResult` with the path, its on-time probability and the seconds
it took (wall clock, this process). The harness methods built on them (`let_method`,
`mean_risk_method`, `scip_path`, `exact_path`, `detours`) are at the end; `family` assembles
them with `surco.methods`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any

import numpy as np
from scipy.special import ndtr

from surco.budget import BudgetExhausted, Meter
from surco.solvers import SolverTimeout

from .instances import Instance, check_instance, grid_graph, oracle
from .neighbourhood import PathDetour
from .problem import on_time_probability, path_nodes


@dataclasses.dataclass(frozen=True)
class RouteResult:
    """A path and how good it is.

    Attributes:
      x: (E,) 0/1 edge indicator of the path.
      prob: its on-time probability P(arrival <= T).
      seconds: wall-clock seconds spent.
      status: ``"optimal"`` (proven), ``"feasible"`` (a limit was hit; best found) or
        ``"heuristic"``.
      info: method specific details (γ, SCIP gap, number of paths, ...).
    """

    x: np.ndarray
    prob: float
    seconds: float
    status: str = "heuristic"
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def let_path(instance: Instance) -> RouteResult:
    """The least-expected-time path (Dijkstra on μ).

    Raises:
      ValueError: a malformed instance (see `check_instance`).
    """
    t0 = time.perf_counter()
    n = check_instance(instance)
    x = oracle(n).solve(np.asarray(instance["mu"], np.float64)).x
    return RouteResult(x, on_time_probability(x, instance), time.perf_counter() - t0)


def default_gammas(instance: Instance, num: int = 15) -> np.ndarray:
    """The γ grid of `mean_risk`: 0 and ±logspace(−2, 1.5, num), keeping only the γ for
    which every cost μ_e + γ·σ²_e stays > 0."""
    mu = np.asarray(instance["mu"], np.float64)
    var = np.asarray(instance["var"], np.float64)
    g = np.logspace(-2, 1.5, num)
    gammas = np.concatenate([[0.0], np.stack([g, -g], 1).reshape(-1)])  # by |γ|: ties -> small |γ|
    ok = np.array([np.all(mu + gm * var > 0) for gm in gammas])
    return gammas[ok]


def mean_risk(instance: Instance, gammas=None) -> RouteResult:
    """Best path over Dijkstra on ``μ + γ·σ²`` for γ on a grid (Nikolova et al. 2006).

    Args:
      instance: a routing instance.
      gammas: the grid (default `default_gammas`); every γ must keep all costs > 0.

    Returns:
      the path with the highest on-time probability; ``info["gamma"]`` is the γ that gave it
      (the first one on ties) and ``info["solves"]`` the number of Dijkstra calls.

    Raises:
      ValueError: a malformed instance, an empty grid, or a γ making some cost <= 0.
    """
    t0 = time.perf_counter()
    n = check_instance(instance)
    mu = np.asarray(instance["mu"], np.float64)
    var = np.asarray(instance["var"], np.float64)
    gammas = default_gammas(instance) if gammas is None else np.asarray(gammas, np.float64).reshape(-1)
    if gammas.size == 0:
        raise ValueError("mean_risk: empty γ grid")
    C = mu[None] + gammas[:, None] * var[None]
    if np.any(C <= 0):
        raise ValueError(f"mean_risk: γ = {gammas[np.any(C <= 0, axis=1)][0]:.4g} makes some "
                         "edge cost <= 0 (Dijkstra needs positive costs)")
    X = np.stack([s.x for s in oracle(n).solve_batch(C)])
    P = on_time_probability(X, instance)
    i = int(np.argmax(P))
    return RouteResult(X[i], float(P[i]), time.perf_counter() - t0,
                       info={"gamma": float(gammas[i]), "solves": len(gammas)})


# -- brute force -------------------------------------------------------------------------------

MAX_BRUTE_FORCE_N = 5


@functools.lru_cache(maxsize=None)
def simple_paths(n: int) -> np.ndarray:
    """All simple corner-to-corner paths of the n×n grid as a (P, E) bool matrix (DFS).

    P = 2, 12, 184, 8512 for n = 2..5 (OEIS A007764). Cached per n; read-only.

    Raises:
      ValueError: n > 5 (n = 6 has 1,262,816 paths; use `scip_exact`).
    """
    num_nodes, edges, s, t = grid_graph(n)
    if n > MAX_BRUTE_FORCE_N:
        raise ValueError(f"brute force enumerates simple paths only for n <= {MAX_BRUTE_FORCE_N}, "
                         f"got n = {n}")
    out_edges: list[list[tuple[int, int]]] = [[] for _ in range(num_nodes)]
    for e, (u, v) in enumerate(edges):
        out_edges[int(u)].append((int(v), e))
    paths: list[list[int]] = []
    visited = np.zeros(num_nodes, bool)
    visited[s] = True
    stack_e: list[int] = []

    def dfs(u: int) -> None:
        if u == t:
            paths.append(list(stack_e))
            return
        for v, e in out_edges[u]:
            if not visited[v]:
                visited[v] = True
                stack_e.append(e)
                dfs(v)
                stack_e.pop()
                visited[v] = False

    dfs(s)
    X = np.zeros((len(paths), len(edges)), bool)
    for i, p in enumerate(paths):
        X[i, p] = True
    X.setflags(write=False)
    return X


def brute_force(instance: Instance) -> RouteResult:
    """The exact optimum by evaluating every simple s–t path (n <= 5).

    Returns:
      status ``"optimal"``; ``info["paths"]`` is the number of paths enumerated. The time
      counts the evaluation only once the paths of this n are cached (the first call per n
      also enumerates them; ~0.1 s for n = 5).

    Raises:
      ValueError: a malformed instance or n > 5.
    """
    t0 = time.perf_counter()
    n = check_instance(instance)
    X = simple_paths(n)
    mu = np.asarray(instance["mu"], np.float64)
    var = np.asarray(instance["var"], np.float64)
    Xf = X.astype(np.float64)
    P = ndtr((float(instance["deadline"]) - Xf @ mu) / np.sqrt(Xf @ var))
    i = int(np.argmax(P))
    return RouteResult(Xf[i], float(P[i]), time.perf_counter() - t0, "optimal",
                       {"paths": len(X)})


# -- exact nonlinear model by SCIP -----------------------------------------------------------

def scip_exact(instance: Instance, time_limit: float = 60.0, *, warm_start: bool = True,
               threads: int = 1, seed: int = 0, gap: float = 1e-6) -> RouteResult:
    """Maximise the on-time probability exactly with SCIP (PySCIPOpt), within a time limit.

    Φ is increasing, so maximising P ⇔ maximising z = (T − μ·x)/sqrt(σ²·x). The model:

        max t   s.t.  t·s <= T − μ·x,   s² = σ²·x,   s >= 0,
                      x ∈ {0,1}^E an s–t flow (conservation, in/out degree <= 1),
                      u_head >= u_tail + 1 − |V|·(1 − x_e)   (Miller–Tucker–Zemlin: no cycles)

    a nonconvex MINLP (bilinear t·s and the quadratic equality), solved by spatial branch and
    bound. The bounds of s and t come from the min-variance path and edge sums. With
    ``warm_start`` the LET path is handed to SCIP as a first incumbent.

    Args:
      instance: a routing instance.
      time_limit: seconds for SCIP (> 0).
      warm_start: give SCIP the LET path as a start solution.
      threads, seed: SCIP's LP threads and random seed shift.
      gap: relative gap at which SCIP stops (``limits/gap``).

    Returns:
      status ``"optimal"`` if SCIP proved optimality (within ``gap``), ``"feasible"`` at the time limit (best
      path found); ``info`` has SCIP's ``status``, ``gap``, ``dual_bound_z`` (an upper bound on
      z) and ``nodes``.

    Raises:
      ValueError: malformed instance or time_limit <= 0.
      SolverTimeout: the time limit passed with no path found (impossible with warm_start).
      RuntimeError: SCIP ended with no solution for another reason.
    """
    import pyscipopt

    t0 = time.perf_counter()
    n = check_instance(instance)
    if not time_limit > 0:
        raise ValueError(f"scip_exact: time_limit must be > 0 seconds, got {time_limit}")
    num_nodes, edges, src, snk = grid_graph(n)
    mu = np.asarray(instance["mu"], np.float64)
    var = np.asarray(instance["var"], np.float64)
    T = float(instance["deadline"])
    E = len(edges)

    orc = oracle(n)
    var_min = float(orc.solve(var).objective)
    let = orc.solve(mu).x
    mu_min = float(mu @ let)
    L = num_nodes - 1  # a simple path has at most |V| − 1 edges
    var_max = float(np.sort(var)[::-1][:L].sum())
    mu_max = float(np.sort(mu)[::-1][:L].sum())
    s_lo, s_hi = math.sqrt(var_min), math.sqrt(var_max)
    t_lo, t_hi = min(0.0, (T - mu_max) / s_lo), max(0.0, (T - mu_min) / s_lo)

    m = pyscipopt.Model("on-time-path")
    m.hideOutput()
    x = [m.addVar(f"x{e}", vtype="B") for e in range(E)]
    u = [m.addVar(f"u{v}", lb=0.0, ub=float(L)) for v in range(num_nodes)]
    s = m.addVar("s", lb=s_lo, ub=s_hi)
    tv = m.addVar("t", lb=t_lo, ub=t_hi)
    outs = [[] for _ in range(num_nodes)]
    ins = [[] for _ in range(num_nodes)]
    for e, (a, b) in enumerate(edges):
        outs[int(a)].append(x[e])
        ins[int(b)].append(x[e])
    for v in range(num_nodes):
        rhs = 1.0 if v == src else (-1.0 if v == snk else 0.0)
        m.addCons(pyscipopt.quicksum(outs[v]) - pyscipopt.quicksum(ins[v]) == rhs)
        m.addCons(pyscipopt.quicksum(outs[v]) <= 1)
        m.addCons(pyscipopt.quicksum(ins[v]) <= 1)
    for e, (a, b) in enumerate(edges):
        m.addCons(u[int(b)] >= u[int(a)] + 1 - num_nodes * (1 - x[e]))
    m.addCons(s * s == pyscipopt.quicksum(float(var[e]) * x[e] for e in range(E)))
    m.addCons(tv * s <= T - pyscipopt.quicksum(float(mu[e]) * x[e] for e in range(E)))
    m.setObjective(tv, "maximize")
    m.setParam("limits/time", float(time_limit))
    m.setParam("limits/gap", float(gap))
    m.setParam("lp/threads", int(threads))
    m.setParam("randomization/randomseedshift", int(seed))

    if warm_start:
        sol = m.createSol()
        for e in range(E):
            m.setSolVal(sol, x[e], float(let[e]))
        order = _path_order(let, n)
        for v in range(num_nodes):
            m.setSolVal(sol, u[v], float(order.get(v, 0)))
        sv = math.sqrt(float(var @ let))
        m.setSolVal(sol, s, sv)
        m.setSolVal(sol, tv, (T - mu_min) / sv)
        m.addSol(sol, free=True)

    m.optimize()
    status = m.getStatus()
    if m.getNSols() == 0:
        if status == "timelimit":
            raise SolverTimeout(f"scip_exact: no path within {time_limit} s")
        raise RuntimeError(f"scip_exact: SCIP ended with status {status!r} and no solution")
    best = m.getBestSol()
    xs = np.array([m.getSolVal(best, v) for v in x])
    xs = np.round(xs)
    info = {"status": status, "gap": float(m.getGap()), "dual_bound_z": float(m.getDualbound()),
            "nodes": int(m.getNNodes())}
    return RouteResult(xs, on_time_probability(xs, instance), time.perf_counter() - t0,
                       "optimal" if status in ("optimal", "gaplimit") else "feasible", info)


def _path_order(x: np.ndarray, n: int) -> dict[int, int]:
    return {v: i for i, v in enumerate(path_nodes(x, n))}


# -- the pieces of the family's harness methods ----------------------------------------------

def let_method(instance: Instance) -> np.ndarray:
    """The least-expected-time path (`let_path`; no evaluation)."""
    return let_path(instance).x


def mean_risk_method(instance: Instance, meter: Meter) -> np.ndarray:
    """Best path of Dijkstra on μ + γσ² over `default_gammas` (Nikolova, Brand & Karger,
    ICAPS 2006), the distinct paths scored in one ``meter.batch``; when the budget ends
    before any path could be scored, the best path the meter has, else the LET path (γ = 0).
    """
    n = check_instance(instance)
    mu = np.asarray(instance["mu"], np.float64)
    var = np.asarray(instance["var"], np.float64)
    gammas = default_gammas(instance)           # gammas[0] == 0: the LET path
    X = np.stack([s.x for s in oracle(n).solve_batch(mu[None] + gammas[:, None] * var[None])])
    _, first = np.unique(X, axis=0, return_index=True)
    X = X[np.sort(first)]
    try:
        vals = meter.batch(X)
    except BudgetExhausted:
        return X[0] if meter.best_x is None else meter.best_x
    return X[int(np.argmin(vals))]


def detours(instance: Instance, x0: np.ndarray) -> PathDetour:
    """The search moves of the instance's grid (`PathDetour`: corner flips, detours,
    shortcuts)."""
    return PathDetour(check_instance(instance))


def scip_path(instance: Instance, seconds: float) -> np.ndarray:
    """`scip_exact`'s path within ``seconds`` (warm-started from the LET path, so a path
    comes back even when no time is left)."""
    return scip_exact(instance, time_limit=seconds).x


def exact_path(instance: Instance, seconds: float) -> np.ndarray:
    """The optimum: brute force over all simple paths for n <= `MAX_BRUTE_FORCE_N` (scored
    in one vectorised pass; ``seconds`` unused), `scip_exact` within ``seconds`` beyond
    (optimal only if SCIP proves it within the limit)."""
    if check_instance(instance) <= MAX_BRUTE_FORCE_N:
        return brute_force(instance).x
    return scip_exact(instance, time_limit=seconds).x
