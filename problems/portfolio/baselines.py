"""Baselines for combinatorial portfolio selection.

* `scip_portfolio`: SCIP (PySCIPOpt) on the cardinality-constrained model with the full
  nonlinear objective (``mode="full"``, a nonconvex MINLP because of the cubic term), or
  the mean–variance MIQP (``mode="mv"``: β = 0, convex), with a time limit.
* `brute_force_mv`: the mean–variance problem exactly for small n: every support of a
  feasible size, each a convex QP solved by SLSQP.
* `random_feasible`: the best of a few random feasible portfolios.

The harness methods built on them (and on local search over supports) are in `family`.

All return a `PortfolioResult` whose plan ``X`` (n, 2) lies in Ω (`problem.omega`) and whose
``objective`` is the full f of LANCER (also for the MIQP, whose own objective omits m₃).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any, Literal

import numpy as np

from surco.solvers import SolverError, SolverTimeout

from .instances import Instance, check_instance
from .problem import PortfolioConfig, objective_np, polish, prox_simplex_box


@dataclasses.dataclass(frozen=True)
class PortfolioResult:
    """A plan and its value.

    Attributes:
      X: (n, 2) plan: weights and 0/1 selection.
      objective: LANCER's full f(x) (lower is better).
      seconds: wall-clock seconds.
      status: ``"optimal"`` (proven for the model solved), ``"feasible"`` (limit reached) or
        ``"heuristic"``.
      info: method specific details.
    """

    X: np.ndarray
    objective: float
    seconds: float
    status: str = "heuristic"
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def _plan(x: np.ndarray, config: PortfolioConfig) -> np.ndarray:
    """(n, 2) plan from weights; z_i = 1 where x_i > 0 (weights below l/2 must be zero)."""
    x = np.asarray(x, np.float64)
    z = (x > 0.5 * config.l).astype(np.float64) if config.l > 0 else (x > 1e-9).astype(np.float64)
    return np.stack([np.where(z > 0, x, 0.0), z], axis=1)


class NumericalTroubleError(SolverError):
    """SCIP stopped on numerical trouble in every formulation and setting tried."""


#: SCIP settings tried in turn when a solve fails on numerical trouble: the defaults, then
#: SCIP's numerics emphasis (tighter LP tolerances, more careful cut handling) with another
#: random seed.
_SCIP_TRIES = ({}, {"emphasis": "numerics", "seed_shift": 1})


def _scip_model(instance: Instance, config: PortfolioConfig, beta: float, time_limit: float,
                threads: int, seed: int, gap: float, emphasis: str | None):
    """The PySCIPOpt model of `scip_portfolio` (see there for the formulation)."""
    import pyscipopt

    n = check_instance(instance)
    r = np.asarray(instance["r"], np.float64)
    L = np.asarray(instance["L"], np.float64)
    gam = np.asarray(instance["f_skew"], np.float64)
    v = np.asarray(instance["e_var"], np.float64)
    k3 = np.asarray(instance["e_k3"], np.float64)
    x0 = np.asarray(instance["x0"], np.float64)
    norms = np.linalg.norm(L, axis=0)
    factors = np.flatnonzero(norms > 0)
    qs = pyscipopt.quicksum
    single_m3 = np.abs((L ** 3) @ gam + k3)
    scale = max(np.abs(r).max(), config.alpha * (np.sum(L * L, 1) + v).max(),
                beta * single_m3.max(), config.lam)
    scale = float(scale) if scale > 0 else 1.0

    m = pyscipopt.Model("portfolio")
    m.hideOutput()
    if emphasis == "numerics":
        m.setEmphasis(pyscipopt.SCIP_PARAMEMPHASIS.NUMERICS)
    x = [m.addVar(f"x{i}", lb=0.0, ub=config.u) for i in range(n)]
    z = [m.addVar(f"z{i}", vtype="B") for i in range(n)]
    m.addCons(qs(x) == 1)
    m.addCons(qs(z) <= config.k_max)
    m.addCons(qs(z) >= config.k_min)
    for i in range(n):
        m.addCons(x[i] <= config.u * z[i])
        m.addCons(x[i] >= config.l * z[i])
    obj = [(-float(r[i]) / scale, x[i]) for i in range(n)]
    if config.lam > 0:
        d = [m.addVar(f"d{i}", lb=0.0) for i in range(n)]
        for i in range(n):
            m.addCons(d[i] >= x[i] - x0[i])
            m.addCons(d[i] >= x0[i] - x[i])
        obj += [(config.lam / scale, d[i]) for i in range(n)]
    # normalised factor exposures u_k = (L_k / |L_k|)·x, so that every row has unit norm,
    # and one epigraph t_k >= u_k² per factor: the variance is Σ_k |L_k|² t_k + Σ_i v_i s_i
    u = {k: m.addVar(f"u{k}", lb=-1.0, ub=1.0) for k in factors}
    for k in factors:
        m.addCons(u[k] == qs(float(L[i, k] / norms[k]) * x[i] for i in range(n) if L[i, k] != 0))
        if config.alpha > 0:
            t = m.addVar(f"t{k}", lb=0.0)
            m.addCons(t >= u[k] * u[k])
            obj.append((config.alpha * float(norms[k]) ** 2 / scale, t))
    if config.alpha > 0:
        for i in np.flatnonzero(v > 0):
            s = m.addVar(f"s{i}", lb=0.0)
            m.addCons(s >= x[i] * x[i])
            obj.append((config.alpha * float(v[i]) / scale, s))
    if beta:
        cub = m.addVar("m3", lb=None)
        m.addCons(cub >= (-beta / scale) * (
            qs(float(gam[k] * norms[k] ** 3) * u[k] * u[k] * u[k] for k in factors if gam[k])
            + qs(float(k3[i]) * x[i] * x[i] * x[i] for i in range(n) if k3[i])))
        obj.append((1.0, cub))
    m.setObjective(qs(c * var for c, var in obj), "minimize")
    m.setParam("limits/time", float(time_limit))
    m.setParam("limits/gap", float(gap))
    m.setParam("lp/threads", int(threads))
    m.setParam("randomization/randomseedshift", int(seed))
    return m, x, z, scale


def scip_portfolio(instance: Instance, config: PortfolioConfig = PortfolioConfig(), *,
                   mode: Literal["full", "mv"] = "full", time_limit: float = 60.0,
                   threads: int = 1, seed: int = 0, gap: float = 1e-6,
                   refine: bool = True) -> PortfolioResult:
    """SCIP on the cardinality-constrained portfolio model.

    Variables x ∈ [0, u]^n, z ∈ {0,1}^n, turnover d >= |x − x₀| (when λ > 0); constraints
    Σx = 1, l z <= x <= u z, k_min <= Σz <= k_max; objective

        −r·x + α(Σ_k w_k² + Σ_i v_i x_i²) − β(Σ_k γ_k w_k³ + Σ_i κ_i x_i³) + λ Σ_i d_i,
        w = Lᵀx,

    with β set to 0 for ``mode="mv"`` (the mean–variance MIQP with the same cardinality and
    turnover terms; Markowitz with cardinality constraints as in Chang et al. 2000).

    Formulation, chosen for SCIP's numerics (issue 13: a single epigraph ``obj >= f(x)``
    over w = Lᵀx stopped with "unresolved numerical troubles in LP" on OR-Library port1,
    K = 10, ρ = 0.95, whose covariance factor has columns of norm ~1e-5): each factor
    exposure is normalised, u_k = (L_k/‖L_k‖)·x ∈ [−1, 1], and each square gets its own
    epigraph t_k >= u_k² (likewise s_i >= x_i²), so the objective is linear in (x, d, t, s)
    with coefficients α‖L_k‖², and SCIP separates well-scaled one-dimensional gradient cuts.
    The cubic term, when present, is one nonlinear epigraph. The objective is divided by the
    largest single-asset magnitude of its terms (max |r_i|, α·Σ_ii, β·|m₃(e_i)|, λ) so that
    SCIP's tolerances are relative to f's scale. If SCIP still fails on numerical trouble it
    is retried with its numerics emphasis and another seed before giving up.

    Args:
      instance, config: the problem.
      mode: ``"full"`` (LANCER's objective) or ``"mv"`` (mean–variance).
      time_limit: seconds (> 0), for all tries together.
      threads, seed, gap: SCIP's LP threads, random seed shift and relative gap limit.
      refine: re-optimise the weights on SCIP's support for the objective SCIP solved
        (`polish`, never worse for it; β = 0 in mode "mv"). SCIP meets
        the squares' epigraphs only to its feasibility tolerance, so its weights are optimal
        to about 1e-5 relative (e.g. 0.00865640 against 0.00865633 on port1 at ρ = 0.95);
        for β = 0 the support's problem is a convex QP and this makes them exact.

    Returns:
      the best plan found; ``objective`` is always the full f (of the refined plan). ``info``:
      SCIP ``status``, ``gap``, ``model_objective`` (the value of the objective SCIP
      solved), ``unrefined_objective`` (f of SCIP's own weights), ``nodes`` and ``tries``
      (1 when the first setting worked).

    Raises:
      ValueError: bad instance, mode or time_limit.
      SolverTimeout: no feasible plan within the time limit.
      NumericalTroubleError: SCIP failed with an error in every setting tried.
      SolverError: SCIP stopped without a plan for another reason.
    """
    t0 = time.perf_counter()
    n = check_instance(instance)
    config.sizes(n)
    if mode not in ("full", "mv"):
        raise ValueError(f"scip_portfolio: mode must be 'full' or 'mv', got {mode!r}")
    if not time_limit > 0:
        raise ValueError(f"scip_portfolio: time_limit must be > 0, got {time_limit}")
    beta = config.beta if mode == "full" else 0.0
    errors, solved = [], False
    for k, trial in enumerate(_SCIP_TRIES):
        left = time_limit - (time.perf_counter() - t0)
        if k and left <= 0:
            break
        m, x, z, scale = _scip_model(instance, config, beta, max(left, 1e-3), threads,
                                     seed + trial.get("seed_shift", 0), gap,
                                     trial.get("emphasis"))
        try:
            m.optimize()
        except Exception as exc:  # PySCIPOpt raises a bare Exception on SCIP errors
            errors.append(f"{trial or 'defaults'}: {exc}")
            continue
        solved = True
        break
    if not solved:
        raise NumericalTroubleError(
            f"scip_portfolio ({mode}): SCIP failed in {len(errors)} of {len(_SCIP_TRIES)} "
            "settings" + (f" (the time limit of {time_limit:g} s left no time for the rest)"
                          if len(errors) < len(_SCIP_TRIES) else "")
            + f": {'; '.join(errors)}")
    status = m.getStatus()
    if m.getNSols() == 0:
        if status == "timelimit":
            raise SolverTimeout(f"scip_portfolio: no feasible plan within {time_limit} s")
        raise SolverError(f"scip_portfolio: SCIP ended with status {status!r} and no plan")
    sol = m.getBestSol()
    xraw = np.array([m.getSolVal(sol, xi) for xi in x])
    zs = np.round([m.getSolVal(sol, zi) for zi in z])
    # remove SCIP's tolerance noise (~1e-6): project the held weights onto {Σx = 1, l <= x <= u}
    held = zs > 0.5
    xs = np.zeros(n)
    xs[held] = prox_simplex_box(xraw[held], np.zeros(int(held.sum())), 0.0, config.l, config.u)
    X = np.stack([xs, zs], axis=1)
    info = {"status": status, "gap": float(m.getGap()),
            "model_objective": float(m.getObjVal()) * scale,
            "unrefined_objective": objective_np(xs, instance, config),
            "nodes": int(m.getNNodes()), "tries": k + 1}
    if refine:   # for the model SCIP solved (β = 0 in mode "mv")
        X = polish(X, instance, dataclasses.replace(config, beta=beta), steps=1000)
    return PortfolioResult(X, objective_np(X[:, 0], instance, config), time.perf_counter() - t0,
                           "optimal" if status in ("optimal", "gaplimit") else "feasible", info)


def _mv_value(x, instance, config):
    return objective_np(x, instance, dataclasses.replace(config, beta=0.0))


def brute_force_mv(instance: Instance, config: PortfolioConfig = PortfolioConfig(),
                   max_n: int = 12) -> PortfolioResult:
    """The mean–variance problem (β = 0) exactly, by enumerating every support.

    For each support S of a feasible size, ``min −r·x + α xᵀΣx + λ‖x − x₀‖₁`` over
    {Σx = 1, l <= x_i <= u on S} is a convex QP once the turnover is split as
    d_i >= ±(x_i − x₀_i); it is solved by SLSQP (scipy) to 1e-12. The best support wins.

    Returns:
      status ``"optimal"``; ``objective`` is the full f (with β); ``info["mv_objective"]`` is
      the mean–variance value and ``info["supports"]`` how many supports were solved.

    Raises:
      ValueError: n > max_n (the enumeration is exponential).
    """
    from scipy.optimize import minimize

    t0 = time.perf_counter()
    n = check_instance(instance)
    if n > max_n:
        raise ValueError(f"brute_force_mv: n = {n} > max_n = {max_n} (2^n supports)")
    lo, hi = config.sizes(n)
    r = np.asarray(instance["r"], np.float64)
    L = np.asarray(instance["L"], np.float64)
    Sig = L @ L.T + np.diag(np.asarray(instance["e_var"], np.float64))
    x0 = np.asarray(instance["x0"], np.float64)
    best_val, best_x, count = math.inf, None, 0
    for k in range(lo, hi + 1):
        for S in itertools.combinations(range(n), k):
            S = list(S)
            rs, Ss, x0s = r[S], Sig[np.ix_(S, S)], x0[S]

            def fun(y):
                xx, dd = y[:k], y[k:]
                return -rs @ xx + config.alpha * xx @ Ss @ xx + config.lam * dd.sum()

            def jac(y):
                xx = y[:k]
                return np.r_[-rs + 2 * config.alpha * Ss @ xx, config.lam * np.ones(k)]

            A = np.zeros((2 * k, 2 * k))
            A[:k, :k], A[:k, k:] = -np.eye(k), np.eye(k)     # d - x + x0 >= 0
            A[k:, :k], A[k:, k:] = np.eye(k), np.eye(k)      # d + x - x0 >= 0
            b = np.r_[x0s, -x0s]
            cons = [{"type": "eq", "fun": lambda y: y[:k].sum() - 1.0,
                     "jac": lambda y: np.r_[np.ones(k), np.zeros(k)]},
                    {"type": "ineq", "fun": lambda y, A=A, b=b: A @ y + b, "jac": lambda y, A=A: A}]
            xs0 = prox_simplex_box(np.full(k, 1.0 / k), x0s, 0.0, config.l, config.u)
            y0 = np.r_[xs0, np.abs(xs0 - x0s) + 1e-3]
            res = minimize(fun, y0, jac=jac, method="SLSQP", constraints=cons,
                           bounds=[(config.l, config.u)] * k + [(0, None)] * k,
                           options={"ftol": 1e-14, "maxiter": 500})
            count += 1
            xx = np.clip(res.x[:k], config.l, config.u)
            xx = prox_simplex_box(xx, x0s, 0.0, config.l, config.u)   # exact Σx = 1
            full = np.zeros(n)
            full[S] = xx
            val = _mv_value(full, instance, config)
            if val < best_val:
                best_val, best_x = val, full
    X = _plan(best_x, config)
    return PortfolioResult(X, objective_np(best_x, instance, config), time.perf_counter() - t0,
                           "optimal", {"mv_objective": best_val, "supports": count})


def random_feasible(instance: Instance, config: PortfolioConfig = PortfolioConfig(), *,
                    num: int = 20, seed: int = 0) -> PortfolioResult:
    """The best (by f) of ``num`` random feasible portfolios: a size drawn uniformly from the
    feasible sizes, a support drawn uniformly, and Dirichlet(1) weights projected onto
    {Σx = 1, l <= x <= u}.

    Raises:
      ValueError: num < 1, or a config with no feasible portfolio for this n.
    """
    t0 = time.perf_counter()
    n = check_instance(instance)
    if int(num) < 1:
        raise ValueError(f"random_feasible: num must be >= 1, got {num}")
    lo, hi = config.sizes(n)
    rng = np.random.default_rng(seed)
    best_val, best_x = math.inf, None
    for _ in range(int(num)):
        k = int(rng.integers(lo, hi + 1))
        S = rng.choice(n, k, replace=False)
        xs = prox_simplex_box(rng.dirichlet(np.ones(k)), np.zeros(k), 0.0, config.l, config.u)
        x = np.zeros(n)
        x[S] = xs
        val = objective_np(x, instance, config)
        if val < best_val:
            best_val, best_x = val, x
    return PortfolioResult(_plan(best_x, config), best_val, time.perf_counter() - t0,
                           info={"num": int(num)})
