"""SurCo-guided large-neighbourhood search, and SurCo variants that share one meter.

Large-neighbourhood search (Shaw, "Using constraint programming and local search methods to
solve vehicle routing problems", CP 1998; Pisinger & Ropke, "Large neighborhood search",
Handbook of Metaheuristics 2010) keeps a current solution, frees a part of it, re-optimises
that part exactly with the rest fixed, and accepts the result if it is better. Here the part
is re-optimised for SurCo's *linear surrogate cost* c (Ferber et al., "SurCo: Learning
Linear Surrogates for Combinatorial Nonlinear Optimization Problems", ICML 2023), and c keeps
being trained by SurCo steps through the restricted solver, so the surrogate that proposes
moves learns from every one of them:

    x_cur = g_Ω(c_0)                                         (iteration 0: a full solve)
    repeat:  N   = rows to free (at random, or by |dL/dθ| of the last step)
             x   = argmin { c·x : x ∈ Ω, x[rows ∉ N] = x_cur[rows ∉ N] }   (exact, `Solver.fixed`)
             θ  ← θ - update(d f(x) / dθ)                    (the estimator, as in `surco.zero`)
             accept x if meter(x) <= meter(x_cur)            (or by a Metropolis rule)

It is generic over any `LinearSpec` Ω: a "row" is an index of x's first axis (a table of a
sharding plan, an item of a 1-D x); freeing rows frees all their entries. With every row
free each iteration *is* a SurCo-zero step (same cost, same x, same update; tested).

This module is the search itself (`lns`, configured by an `LNSConfig` for LNS's own settings
and a `surco.ZeroConfig` for SurCo's step inside it, and `LNSResult`); `surco.lns` holds it
as harness methods (`lns_method`, `polish_method`, `multichain_method`) and re-exports the
three names.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (RunControl, batched_objective, build_solver, controlled,
                           initial_theta, is_interrupt, resolve_key,
                           stack_instances, stack_solvers)
from surco.budget import BudgetExhausted, Meter
from surco.checks import check_int, is_number
from surco.config import Config, ZeroConfig, settings_of, split_settings
from surco.estimators import raise_for_status
from surco.outcome import MeteredResult, stop_reason
from surco.problem import Instance, Problem, ProblemError
from surco.search import budget_progress
from surco.solvers import LinearSpec

__all__ = ["LNSConfig", "LNSResult", "lns", "lns_configs", "LNS_FIELDS", "LNS_ZERO",
           "ZERO_UNUSED"]


@dataclasses.dataclass(repr=False)
class LNSResult(MeteredResult):
    """Outcome of `lns`.

    Attributes:
      x: the best x evaluated (feasible: every x is a solver answer over Ω).
      value: its true cost (from the meter).
      c, theta: the surrogate cost and its parameters after the last update.
      history: per iteration, ``f`` (the objective at that iteration's x), ``value`` (its
        true cost), ``accepted`` (bool), ``free`` (rows freed; all rows at iteration 0),
        ``evaluations`` (the meter's count after it).
      iterations: iterations completed; accepted: how many moved the current x.
      evaluations: evaluations this run made (`MeteredResult`).
      stopped: a `surco.outcome.StopReason`: ITERATIONS, BUDGET (the meter's evaluations or
        seconds ran out) or TIME_LIMIT (the meter's deadline cut a solve short); INTERRUPTED
        on the ``.partial`` result of a Ctrl-C.
      seconds: wall time.
    """

    iterations: int = 0
    accepted: int = 0


@dataclasses.dataclass(frozen=True)
class LNSConfig(Config):
    """LNS's own settings, checked once, here. SurCo's part (the estimator and its
    hyperparameters, optimiser, ``lr``, start ``init``, ``init_scale``, ``key``, ``backend``,
    ``solver_options``, ``dtype``) is a `surco.ZeroConfig` passed beside it, as LANCER's
    (`surco.lancer.LancerConfig`): ``lns(problem, y, meter, config, zero)``; the keyword form
    ``lns(problem, y, meter, iterations=50, lam=10)`` takes the fields of both.

    Attributes:
      iterations: most solves (iteration 0, the full solve, included); an iteration whose x
        was already evaluated costs no evaluation.
      free: rows of x (its first axis) freed per iteration: a fraction in (0, 1] of them or
        a count >= 1; all rows make every iteration a SurCo-zero step.
      choose: "random" (uniform rows) or "gradient" (rows drawn with probability
        proportional to the sum of |dL/dθ| over the row at the last step, plus a uniform
        floor of 10 %).
      accept: "better" (keep x when its true cost is <= the current one) or "anneal"
        (Metropolis, Kirkpatrick et al. 1983, at temperature ``temperature · |v0|`` cooled
        geometrically to 1 % of it over the budget, v0 the first x's cost).
      temperature: see ``accept``, a positive number.
      screen: None evaluates every new x; a number r >= 0 evaluates x only when its
        objective f (free: SurCo computes it every step) is <= ``f(x_cur) + r·|f(x_cur)|``,
        and rejects it unevaluated otherwise (for an expensive true cost with a faithful f).
      grow: None keeps the neighbourhood size; an integer g >= 1 doubles the rows freed
        after g iterations in a row without an accepted move (up to all rows) and returns
        to ``free`` on the next accepted one (adaptive LNS, Ropke & Pisinger, Transp. Sci.
        40, 2006, in its simplest form).
      seed: seed of the neighbourhood choices (an integer >= 0).

    Raises:
      ValueError: naming the field and the expected form.
    """

    iterations: int = 300
    free: float | int = 0.2
    choose: str = "random"
    accept: str = "better"
    temperature: float = 0.01
    screen: float | None = None
    grow: int | None = None
    seed: int = 0
    _given: frozenset = dataclasses.field(default=frozenset(), init=False, repr=False,
                                          compare=False)

    _who = "surco.lns.lns"

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, (int, np.integer)) \
                or self.iterations < 1:
            raise ValueError(f"lns: iterations must be an integer >= 1, got {self.iterations!r}")
        put("iterations", int(self.iterations))
        _free_count(self.free, 1)   # the form; the count is taken against x's rows
        if self.choose not in ("random", "gradient"):
            raise ValueError(f"lns: choose must be 'random' or 'gradient', got {self.choose!r}")
        if self.accept not in ("better", "anneal"):
            raise ValueError(f"lns: accept must be 'better' or 'anneal', got {self.accept!r}")
        g = self.grow
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1):
            raise ValueError(f"lns: grow must be an integer >= 1 or None, got {g!r}")
        r = self.screen
        if r is not None and not (is_number(r) and math.isfinite(r) and r >= 0):
            raise ValueError(f"lns: screen must be a number >= 0 or None, got {r!r}")
        t = self.temperature
        if not (is_number(t) and math.isfinite(t) and t > 0):
            raise ValueError(f"lns: temperature must be a positive number, got {t!r}")
        put("seed", check_int("seed", self.seed, 0, who="lns"))


#: the keywords of the keyword form that are `LNSConfig` fields (the rest are SurCo-zero's)
LNS_FIELDS = tuple(f.name for f in dataclasses.fields(LNSConfig) if f.init)

#: SurCo-zero's part when none is given: `surco.ZeroConfig` with the SCIP backend (LNS's
#: solver since it was written; SurCo-zero's default backend is HiGHS)
LNS_ZERO = ZeroConfig.of(backend="scip")

#: `surco.ZeroConfig` fields with no meaning for LNS (its own loop, meter and selection):
#: not keywords of `lns`, and ignored in a ``zero`` configuration
ZERO_UNUSED = ("steps", "select", "patience", "target", "time_limit", "progress",
               "no_progress_steps", "executor", "oracle", "chunk", "throw")


def _zero_part(zero: ZeroConfig | None, settings: Mapping[str, Any], who: str) -> ZeroConfig:
    """SurCo-zero's part of an LNS run: ``zero`` (None: `LNS_ZERO`) with ``settings``
    (`surco.ZeroConfig` fields and estimator hyperparameters) replacing its fields.

    Raises:
      TypeError: ``zero`` is not a `surco.ZeroConfig`.
      ValueError: backend "jax" or an oracle (LNS fixes variables through a host MILP
        solver's bounds), or a bad field (named)."""
    if zero is not None and not isinstance(zero, ZeroConfig):
        raise TypeError(f"{who}: zero must be a surco.ZeroConfig (SurCo's estimator, "
                        f"optimiser, start and solver) or None, got {type(zero).__name__}")
    zcfg = settings_of(LNS_ZERO if zero is None else zero, settings, ZeroConfig, who)
    if zcfg.backend == "jax" or zcfg.oracle is not None:
        raise ValueError(f"{who}: backend 'jax' (Ω solved inside XLA) cannot fix variables; "
                         "LNS needs a host MILP backend (e.g. 'scip', 'highs')")
    return zcfg


def _free_count(free: float | int, rows: int) -> int:
    if isinstance(free, bool) or not isinstance(free, (int, float, np.integer, np.floating)):
        raise ValueError(f"lns: free must be a fraction in (0, 1] or a row count >= 1, got {free!r}")
    if isinstance(free, (int, np.integer)):
        if free < 1:
            raise ValueError(f"lns: free must be a fraction in (0, 1] or a row count >= 1, got {free!r}")
        return min(int(free), rows)
    if not 0 < free <= 1:
        raise ValueError(f"lns: free must be a fraction in (0, 1] or a row count >= 1, got {free!r}")
    return max(1, min(rows, int(round(free * rows))))


def lns_configs(config: LNSConfig | None, zero: ZeroConfig | None, settings: Mapping[str, Any],
            who: str, base: ZeroConfig | None = None) -> tuple[LNSConfig, ZeroConfig]:
    """``(LNSConfig, ZeroConfig)`` of an LNS call: the keyword form ``settings`` split
    between ``config`` and ``zero`` (None: ``base``, or `LNS_ZERO`), each checked once.

    Raises:
      TypeError: a configuration of the wrong type, or an unknown keyword (named, with the
        closest valid one); ValueError: a bad value (naming the field)."""
    if isinstance(config, ZeroConfig):
        raise TypeError(f"{who}: config must be a LNSConfig; SurCo-zero's ZeroConfig goes in "
                        "the next argument, zero")
    own, rest = split_settings(who, settings, LNS_FIELDS, drop=ZERO_UNUSED)
    cfg = settings_of(config, own, LNSConfig, who)
    return cfg, _zero_part(zero if zero is not None else base, rest, who)


def lns(problem: Problem, instance: Instance, meter: Meter, config: LNSConfig | None = None,
        zero: ZeroConfig | None = None, /, **settings: Any) -> LNSResult:
    """SurCo-guided large-neighbourhood search on one instance (see the module docstring).

    Args:
      problem: the `Problem`; its Ω for ``instance`` must be a `LinearSpec` (variables are
        fixed through the solver's bounds, `Solver.fixed`).
      instance: one instance.
      meter: evaluates the true cost (`surco.budget.Meter`); every new x is one evaluation.
      config: an `LNSConfig` (iterations, free, choose, accept, temperature, screen, grow,
        seed), or None.
      zero: SurCo's part, a `surco.ZeroConfig`: the estimator and its hyperparameters, the
        optimiser (or ``lr``), the start ``init`` ("random", "zeros", an array or a start
        rule ``instance -> θ0``), init_scale, key, backend (a host MILP backend),
        solver_options and dtype; its stopping fields (steps, patience, target, ...) do not
        apply. None: `LNS_ZERO` (the SCIP backend; in a ZeroConfig given here, backend None
        is `make_solver`'s default, HiGHS).
      **settings: fields of either configuration as keywords (``iterations=50``,
        ``estimator="perturbed"``, the estimator's hyperparameters such as ``lam=10``),
        replacing theirs.

    Returns:
      `LNSResult` with the best x evaluated.

    Raises:
      TypeError: Ω is not a `LinearSpec`, meter is not a Meter, a configuration of the
        wrong type, or a keyword that is neither a field of `LNSConfig` nor one of
        `surco.ZeroConfig` that LNS takes nor a hyperparameter of the estimator (named,
        with the closest).
      ValueError: bad settings (naming which).
      ProblemError: a non-finite objective or gradient.
      BudgetExhausted: the budget was spent before the first x could be evaluated.
      InfeasibleError, SolverError, ...: the solver failed (raised once, typed).
      KeyboardInterrupt: Ctrl-C; it carries ``.partial`` (the `LNSResult` so far, or None).
    """
    who = "surco.lns.lns"
    cfg, zcfg = lns_configs(config, zero, settings, who)
    if not isinstance(problem, Problem):
        raise TypeError(f"lns: problem must be a surco.Problem, got {type(problem).__name__}")
    if not (callable(meter) and hasattr(meter, "budget") and hasattr(meter, "remaining_seconds")):
        raise TypeError(f"lns: meter must be a surco.budget.Meter (Budget(...).start(f)), got "
                        f"{type(meter).__name__}")
    space = problem.space_for(instance)
    if not isinstance(space, LinearSpec):
        raise TypeError(f"lns: Ω of problem {problem.name!r} is a {type(space).__name__}; LNS "
                        "fixes variables through a MILP solver's bounds and needs a LinearSpec")
    iterations, choose, accept, screen, grow = (cfg.iterations, cfg.choose, cfg.accept,
                                                cfg.screen, cfg.grow)
    temperature, dtype = cfg.temperature, zcfg.dtype
    init = zcfg.init(instance) if callable(zcfg.init) else zcfg.init
    shape = tuple(space.shape)
    rows = shape[0]
    k_free = _free_count(cfg.free, rows)
    est = zcfg.make_estimator()
    opt = zcfg.optimizer if zcfg.optimizer is not None else est.default_optimizer(zcfg.lr)
    key = resolve_key(zcfg.key)
    gen = np.random.default_rng(cfg.seed)
    t_start = time.perf_counter()
    left = meter.remaining_seconds()
    control = RunControl(left if math.isfinite(left) else None, t_start)
    member = build_solver(problem, instance, zcfg.backend, zcfg.solver_options)
    solver = stack_solvers([member], None, control)
    problem.check_instance(instance, dtype=dtype, who="lns")
    ys = stack_instances(problem, [instance])
    fvec = batched_objective(problem)

    @jax.jit
    def step(theta, opt_state, k):     # SurCo-zero's step (surco.zero), one instance
        c, vjp_cost = jax.vjp(problem.to_cost, theta)
        x, vjp_est, status = jax.vjp(lambda cc: est(solver, cc, k, return_status=True), c,
                                     has_aux=True)
        fv, vjp_f = jax.vjp(lambda xx: fvec(xx, ys), x)
        gx = vjp_f(jnp.ones_like(fv))[0]
        g = vjp_cost(vjp_est(gx)[0])[0]
        updates, new_state = opt.update(jnp.where(jnp.isfinite(g), g, 0.0), opt_state, theta)
        return optax.apply_updates(theta, updates), new_state, fv, x, c, status, g

    key, k0 = jax.random.split(key)
    theta = initial_theta(init, k0, (1, *shape), dtype, zcfg.init_scale)
    opt_state = opt.init(theta)
    hist: dict[str, list] = {k: [] for k in ("f", "value", "accepted", "free", "moved",
                                             "evaluations")}
    best_x, best_v = None, math.inf
    cur_x, cur_v, cur_f, v0 = None, math.inf, math.inf, None
    row_score = np.ones(rows)
    n_acc, stopped = 0, "iterations"
    e0, s0 = meter.evaluations, meter.elapsed()
    c_last = np.asarray(problem.to_cost(theta))[0]

    def result(stop: str) -> LNSResult | None:
        if best_x is None:
            return None
        return LNSResult(x=best_x, value=best_v, c=c_last, theta=np.asarray(theta)[0],
                         history=hist, stopped=stop_reason(stop),
                         seconds=time.perf_counter() - t_start,
                         evaluations=meter.evaluations - e0, iterations=len(hist["f"]),
                         accepted=n_acc)

    k_base, stall = k_free, 0

    def neighbourhood() -> np.ndarray | None:
        """Mask of the fixed entries (None: every row free)."""
        if k_free >= rows:
            return None
        if choose == "gradient" and row_score.sum() > 0:
            p = 0.9 * row_score / row_score.sum() + 0.1 / rows
            free_rows = gen.choice(rows, size=k_free, replace=False, p=p / p.sum())
        else:
            free_rows = gen.choice(rows, size=k_free, replace=False)
        fixed_rows = np.ones(rows, bool)
        fixed_rows[free_rows] = False
        return np.broadcast_to(fixed_rows.reshape((rows,) + (1,) * (len(shape) - 1)), shape)

    try:
        with controlled(control):
            for t in range(iterations):
                if control.stop_requested():
                    stopped = control.reason
                    break
                if meter.remaining_seconds() <= 0 or meter.remaining_evaluations() <= 0:
                    stopped = "budget"
                    break
                key, k = jax.random.split(key)
                kk = k if est.needs_key else None
                mask = None if cur_x is None else neighbourhood()
                try:
                    if mask is None:
                        out = jax.block_until_ready(step(theta, opt_state, kk))
                    else:
                        with member.fixed(mask, cur_x):
                            out = jax.block_until_ready(step(theta, opt_state, kk))
                except Exception as exc:
                    if control.reason is not None or is_interrupt(exc):
                        stopped = control.reason or "interrupted"
                        break
                    if control.error is not None:
                        raise control.error from None
                    raise
                new_theta, new_state, fv, x, c, status, g = out
                if control.stop_requested():
                    stopped = control.reason
                    break
                if control.error is not None:
                    raise control.error from None
                raise_for_status(np.asarray(status), member)
                fv = float(np.asarray(fv)[0])
                if not math.isfinite(fv):
                    raise ProblemError(f"lns: problem {problem.name!r}: the objective is {fv} "
                                       f"at iteration {t}")
                g_np = np.asarray(g, np.float64)[0]
                if not np.all(np.isfinite(g_np)):
                    raise ProblemError(f"lns: problem {problem.name!r}: the gradient dL/dθ is "
                                       f"not finite at iteration {t}")
                x_np = np.asarray(x, np.float64)[0]
                if not est.forward_is_solution:   # the feasible point is g(c) itself
                    c_np = np.asarray(c, np.float64)[0]
                    if mask is None:
                        x_np = member.solve(c_np).x
                    else:
                        with member.fixed(mask, cur_x):
                            x_np = member.solve(c_np).x
                skip = (screen is not None and cur_x is not None
                        and fv > cur_f + screen * abs(cur_f) and meter.cached(x_np) is None)
                try:
                    v = math.inf if skip else meter(x_np)
                except BudgetExhausted:
                    stopped = "budget"
                    break
                took, prev = False, cur_x
                if cur_x is None:
                    took, v0 = True, v
                elif np.array_equal(x_np, cur_x):   # no move: nothing to accept
                    took = False
                elif v <= cur_v:
                    took = True
                elif accept == "anneal":
                    temp = (temperature * max(abs(v0), 1e-12)
                            * 0.01 ** budget_progress(meter, e0, s0))
                    took = bool(gen.random() < math.exp(-(v - cur_v) / temp))
                if took:
                    n_acc += t > 0
                    cur_x, cur_v, cur_f = x_np.copy(), v, fv
                    stall, k_free = 0, k_base
                elif grow is not None:
                    stall += 1
                    if stall >= grow:
                        stall, k_free = 0, min(rows, 2 * k_free)
                if v < best_v:
                    best_x, best_v = x_np.copy(), v
                hist["f"].append(fv)
                hist["value"].append(v)
                hist["accepted"].append(took)
                hist["free"].append(rows if mask is None else int(
                    (~mask.reshape(rows, -1)[:, 0]).sum()))
                hist["moved"].append(rows if prev is None else int(
                    np.any((x_np != prev).reshape(rows, -1), axis=1).sum()))
                hist["evaluations"].append(meter.evaluations)
                row_score = np.abs(g_np).reshape(rows, -1).sum(1)
                theta, opt_state = new_theta, new_state
                c_last = np.asarray(c, np.float64)[0]
                control.arm()
    except KeyboardInterrupt:
        stopped = "interrupted"
    if stopped == "interrupted":
        exc = KeyboardInterrupt(f"lns interrupted after {len(hist['f'])} iteration(s); the "
                                "best so far is in the exception's .partial")
        exc.partial = result("interrupted")
        raise exc
    if best_x is None:
        raise BudgetExhausted(f"lns: the budget ({meter.budget.describe()}) was spent before "
                              "the first x could be evaluated")
    return result(stopped)
