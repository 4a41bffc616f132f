"""SurCo-zero that keeps improving past its plateau: restarts, a trust region on the
surrogate cost, and pools of near-optimal answers, on one meter.

SurCo-zero (Ferber et al., "SurCo: Learning Linear Surrogates for Combinatorial Nonlinear
Optimization Problems", ICML 2023, Alg. 1) descends ``f(g_Ω(c))`` in the linear cost c.
Under an evaluation budget (every distinct x is one evaluation of the true cost) it often
finds its best x early and then wanders: c keeps moving, x keeps changing, none is better.
`plateau_zero` runs the same steps (the same estimator, optimiser and solver, compiled once
and shared with `surco.zero`) with three additions, each optional:

* restarts (``restart=k``): after k steps in a row without a better true cost, θ restarts
  from the best θ so far plus Gaussian noise scaled to its spread, ``θ_best + noise ·
  rms(θ_best) · N(0, I)`` (`surco.prior.model.perturbed`), and the optimiser state is reset;
  the best x is kept (the meter holds it). Random restarts of a local method: Lourenço,
  Martin & Stützle, "Iterated local search", Handbook of Metaheuristics (2003);
* a trust region on θ (``radius=r``): after each update θ is projected onto the ball
  ``‖θ − θ_best‖ <= r · ‖θ_0‖``; the radius grows by ``grow`` when a step's x is better
  than the best or is the best x again (the region is too small to move x), shrinks by
  ``shrink`` when it is a new x that is not better, and stays within
  ``[r/64, 16 r] · ‖θ_0‖`` (the classical rule, Conn, Gould & Toint, *Trust-Region
  Methods*, SIAM 2000, ch. 6, applied to the surrogate's parameters);
* a pool (``pool=m``): with each new x, the m neighbours of x that the surrogate ranks next
  (lowest ``c·(x' − x)``: one row of x moved to another column, or two rows swapped, within
  Ω, `surco.search.RowChoice`) are evaluated too, each one evaluation — the solver's
  nearest alternatives at the same cost, for Ω of one choice per row (assignment, sharding).

Only the true cost, through the meter, decides what is best; of the objective f the run uses
only what a SurCo-zero step uses (the estimator's gradient at the step's x). It never
scores an unevaluated candidate by f's value, which on a family whose f is a smoothed true
cost (sharding) would be an evaluation the meter does not count.

Harness methods: `plateau_method` (``method(instance, meter) -> x``) and `budgeted_method`
(settings chosen per evaluation budget, e.g. on train instances).

Measured on sharding (DLRM-50, 4 devices; mean cost over the best metered search's, i.e.
local search steepest / first / ranked by ∇f or annealing, at equal evaluations). Settings
chosen on 10 train-pool tasks (``python -m bench.plateau_tune``,
`problems.sharding.settings.PLATEAU_CHOICE`): restarts at 30 evaluations (train 0.982,
SurCo-zero 0.989), restarts then annealing on 30 % at 100 (0.984; 0.991), SurCo-zero then
local search on 30 % at 300 (0.990; 0.993). On the 10 quick test tasks
(``S.generate(10, seed=1, split="test")``) the sharding family's "surco-plateau" gave
0.979 / 0.987 / 0.992 at 30 / 100 / 300 evaluations, SurCo-zero 0.974 / 0.987 / 0.996:
the restarts chosen at 30 did not carry over to the test tasks. A trust region on θ stalled
SurCo (fewer new x, worse), and pools of the surrogate's next-best neighbours spent
evaluations on worse plans (`PLATEAU_CHOICE`'s comment has the figures).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from surco._engine import (RunControl, build_solver, controlled, initial_theta, is_interrupt,
                           resolve_key, stack_instances)
from surco.config import ZeroConfig, settings_of
from surco.driver.program import host_program, init_opt_state, optimizer_key
from surco.driver.selection import check_step
from surco.outcome import MeteredResult, StopReason
from surco.budget import BudgetExhausted, Meter
from surco.family import Family, Method
from surco.problem import Instance, Problem
from surco.solvers import check_kwargs

__all__ = ["PlateauResult", "plateau_zero", "plateau_method", "budgeted_method"]

#: `surco.zero` settings that have no meaning for `plateau_zero` (dropped from a family's
#: ``zero_settings`` by `plateau_method`).
_ZERO_ONLY = ("steps", "select", "patience", "target", "time_limit", "progress",
              "no_progress_steps", "executor", "dtype", "oracle", "chunk", "throw")
#: `plateau_zero`'s own keywords (the rest configure SurCo-zero: `ZeroConfig`)
_OWN = ("steps", "restart", "noise", "radius", "grow", "shrink", "pool")
#: why the solver's control stopped a run -> `PlateauResult.stopped`
_STOP = {StopReason.TIME_LIMIT: StopReason.BUDGET,
         StopReason.INTERRUPTED: StopReason.INTERRUPTED}
#: the trust region's radius stays within [r / _RADIUS_RANGE[0], r * _RADIUS_RANGE[1]]
_RADIUS_RANGE = (64.0, 16.0)


@dataclasses.dataclass(repr=False)
class PlateauResult(MeteredResult):
    """Outcome of `plateau_zero`.

    Attributes:
      x: the best x this run evaluated (a solver's answer or a pool neighbour: in Ω).
      value: its true cost (from the meter).
      theta, c: the surrogate parameters and cost of the step whose x, or one of whose pool
        neighbours, is the best x (the trust region's centre and the restarts' base).
      history: per step, ``value`` (true cost of the step's x), ``new`` (whether it was a new
        evaluation), ``pool`` (evaluations the pool made), ``distance`` (‖θ − θ_best‖ of the
        θ the next step uses, after the projection; before a restart's noise), ``radius``
        (the trust region's absolute radius for that projection; inf without one),
        ``restart`` (a restart follows this step), ``evaluations`` (the meter's count). A
        last step cut short by the budget is recorded as far as it got (``value`` nan when
        its x could not be evaluated; ``distance`` and ``radius`` nan).
      steps: steps completed; restarts: restarts made; evaluations: evaluations this run
        made (`MeteredResult`).
      stopped: a `surco.outcome.StopReason`: STEPS or BUDGET (the meter's evaluations or
        deadline); INTERRUPTED on the ``.partial`` of a Ctrl-C.
      seconds: wall time.
    """

    steps: int = 0
    restarts: int = 0


def _positive(name: str, v: Any, none_ok: bool = False) -> float | None:
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(v) or v <= 0:
        raise ValueError(f"plateau_zero: {name} must be a positive finite number"
                         f"{' or None' if none_ok else ''}, got {v!r}")
    return float(v)


def _count(name: str, v: Any, minimum: int, none_ok: bool = False) -> int | None:
    if v is None and none_ok:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"plateau_zero: {name} must be an integer >= {minimum}"
                         f"{' or None' if none_ok else ''}, got {v!r}")
    return int(v)


def _pool_candidates(nbhd, x: np.ndarray, c: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` feasible neighbours of x with the lowest surrogate cost ``c·x'`` (ties in
    the neighbourhood's order), as an array (≤ m, *x.shape)."""
    state = nbhd.start(x)
    X = nbhd.apply(state, nbhd.moves(state))
    if len(X) == 0:
        return X
    dc = (X - x[None]).reshape(len(X), -1) @ c.reshape(-1)
    return X[np.argsort(dc, kind="stable")[:m]]


def plateau_zero(problem: Problem, instance: Instance, meter: Meter,
                 config: ZeroConfig | None = None, /, *, steps: int | None = None,
                 restart: int | None = None, noise: float = 0.1, radius: float | None = None,
                 grow: float = 2.0, shrink: float = 0.5, pool: int = 0,
                 **settings: Any) -> PlateauResult:
    """SurCo-zero with restarts, a trust region on θ and pools (see the module docstring),
    on one instance, every new x evaluated through ``meter``.

    Args:
      problem: the `Problem`.
      instance: one instance.
      meter: the `surco.budget.Meter` of the true cost (every distinct x one evaluation).
      config, **settings: SurCo-zero's `surco.ZeroConfig` and its fields as keywords:
        estimator (and its hyperparameters), optimizer, lr, init (an array, "random",
        "zeros" or a start rule ``instance -> θ0``), init_scale, key, backend,
        solver_options. Its stopping fields (steps, patience, target, time_limit, select)
        do not apply: the meter's budget and ``steps`` here end the run.
      steps: most steps; None: 4 × the meter's evaluation budget (steps whose x repeats cost
        nothing), or 300 without one. The run also ends when the meter's budget is spent.
      restart: None (no restarts) or k >= 1: restart after k steps without a better true
        cost.
      noise: the restart's noise, relative to rms(θ_best) (> 0).
      radius: None (no trust region) or r > 0: the initial radius, relative to ‖θ_0‖ (1
        when θ_0 = 0).
      grow, shrink: the radius's factors on success (>= 1) and on failure (in (0, 1]).
      pool: neighbours of each new x evaluated too (>= 0; needs Ω with one choice per row,
        `surco.search.RowChoice.from_spec`).

    Returns:
      A `PlateauResult`: the best x this run evaluated.

    Raises:
      TypeError: problem or meter of the wrong type; an unknown estimator keyword (named).
      ValueError: bad arguments (naming which); ``pool`` on an Ω that is not one choice per
        row (from `RowChoice.from_spec`).
      BudgetExhausted: the budget was spent before the first x could be evaluated.
      ProblemError, InfeasibleError, SolverError, ...: as `surco.zero` (typed, once).
    """
    from surco.search import RowChoice
    from surco.solvers import LinearSpec

    cfg = settings_of(config, settings, ZeroConfig, "surco.plateau.plateau_zero")
    optimizer, lr, init_scale, key = cfg.optimizer, cfg.lr, cfg.init_scale, cfg.key
    init = cfg.init(instance) if callable(cfg.init) else cfg.init
    if not isinstance(problem, Problem):
        raise TypeError(f"plateau_zero: problem must be a surco.Problem, got "
                        f"{type(problem).__name__}")
    if not (callable(meter) and hasattr(meter, "batch") and hasattr(meter, "budget")):
        raise TypeError(f"plateau_zero: meter must be a surco.budget.Meter "
                        f"(Budget(...).start(f)), got {type(meter).__name__}")
    steps = _count("steps", steps, 1, none_ok=True)
    restart = _count("restart", restart, 1, none_ok=True)
    pool = _count("pool", pool, 0)
    noise = _positive("noise", noise)
    radius = _positive("radius", radius, none_ok=True)
    if not (isinstance(grow, (int, float)) and math.isfinite(grow) and grow >= 1):
        raise ValueError(f"plateau_zero: grow must be a number >= 1, got {grow!r}")
    if not (isinstance(shrink, (int, float)) and 0 < shrink <= 1):
        raise ValueError(f"plateau_zero: shrink must lie in (0, 1], got {shrink!r}")
    if steps is None:
        ev = meter.budget.evaluations
        steps = 4 * int(ev) if ev is not None else 300
    est = cfg.make_estimator()
    opt = optimizer if optimizer is not None else est.default_optimizer(lr)
    opt_key = optimizer_key(optimizer) if optimizer is not None else ("default", lr)
    t_start = time.perf_counter()
    key = resolve_key(key)
    left = meter.remaining_seconds()
    control = RunControl(left if math.isfinite(left) else None, t_start)
    member = build_solver(problem, instance, cfg.backend, cfg.solver_options)
    shape = tuple(member.shape)
    nbhd = None
    if pool:
        space = problem.space_for(instance)
        if not isinstance(space, LinearSpec):
            raise ValueError(f"plateau_zero: pool needs Ω as a LinearSpec of one choice per "
                             f"row; Ω of {problem.name!r} is a {type(space).__name__}")
        nbhd = RowChoice.from_spec(space)
    problem.check_instance(instance, who="plateau_zero")
    ys = stack_instances(problem, [instance])
    key, k0 = jax.random.split(key)
    theta = initial_theta(init, k0, (1, *shape), jnp.float32, init_scale)
    opt_state = init_opt_state(opt, (est, opt_key), theta)
    r0 = None if radius is None else radius * (float(np.linalg.norm(np.asarray(theta))) or 1.0)
    r = r0
    hist: dict[str, list] = {k: [] for k in ("value", "new", "pool", "distance", "radius",
                                             "restart", "evaluations")}
    best_v, best_th, best_c, best_x = math.inf, None, None, None
    e0, stall, n_restarts, stopped = meter.evaluations, 0, 0, StopReason.STEPS
    program = host_program(problem, est, opt, opt_key, [member], None, control, theta,
                           opt_state, ys)
    solver = program.solver

    def result(stop: StopReason) -> PlateauResult | None:
        if best_x is None:
            return None
        return PlateauResult(x=best_x, value=float(best_v), c=best_c, theta=best_th,
                             history=hist, stopped=stop, seconds=time.perf_counter() - t_start,
                             evaluations=meter.evaluations - e0, steps=len(hist["value"]),
                             restarts=n_restarts)

    def fail(exc: BaseException) -> BaseException:
        return exc

    try:
        with controlled(control):
            for t in range(steps):
                key, k = jax.random.split(key)
                try:
                    (new_theta, new_state, fv, x, c, status, c_ok, gx_ok, g_ok,
                     gx) = jax.block_until_ready(program.step(
                         theta, opt_state, k if est.needs_key else None, ys))
                except Exception as exc:
                    if control.reason is not None or is_interrupt(exc):
                        stopped = _STOP.get(control.reason, StopReason.INTERRUPTED)
                        break
                    raise control.error if control.error is not None else exc
                if control.stop_requested():
                    stopped = _STOP.get(control.reason, StopReason.INTERRUPTED)
                    break
                if control.error is not None:
                    raise control.error
                check_step(problem, est, dict(status=np.asarray(status), c_ok=np.asarray(c_ok),
                                              f=np.asarray(fv, np.float64),
                                              gx_ok=np.asarray(gx_ok), g_ok=np.asarray(g_ok),
                                              gx=np.asarray(gx)), t, 1, fail,
                           failure=control.failure, solver_name=lambda b: solver.members[0].name)
                c_np = np.asarray(c, np.float64)[0]
                x_np = (np.asarray(x, np.float64)[0] if est.forward_is_solution
                        else member.solve(c_np).x)
                th_np = np.asarray(theta, np.float64)[0]
                new = meter.cached(x_np) is None
                n_before, improved = meter.evaluations, False
                X = np.zeros((0, *shape))
                try:
                    v = meter(x_np)
                    if new and nbhd is not None:
                        X = _pool_candidates(nbhd, x_np, c_np, pool)
                        if len(X):
                            meter.batch(X)
                except BudgetExhausted:
                    stopped = StopReason.BUDGET
                finally:   # whatever was evaluated, step or pool, competes for the best
                    for cand in (x_np, *X):
                        val = meter.cached(cand)
                        if val is not None and val < best_v:
                            best_v, best_x, improved = val, np.array(cand), True
                            best_th, best_c = th_np, c_np
                if stopped == StopReason.BUDGET:   # the step the budget cut short, as far as it got
                    v = meter.cached(x_np)
                    for name, val in (("value", math.nan if v is None else v),
                                      ("new", new and v is not None),
                                      ("pool", meter.evaluations - n_before
                                       - int(new and v is not None)),
                                      ("distance", math.nan), ("radius", math.nan),
                                      ("restart", False), ("evaluations", meter.evaluations)):
                        hist[name].append(val)
                    break
                if improved:
                    stall = 0
                    if r is not None and t > 0:
                        r = min(r * grow, r0 * _RADIUS_RANGE[1])
                else:
                    stall += 1
                    if r is not None and new:
                        r = max(r * shrink, r0 / _RADIUS_RANGE[0])
                    elif r is not None and np.array_equal(x_np, best_x):
                        r = min(r * grow, r0 * _RADIUS_RANGE[1])   # too small to move x
                th_next = np.asarray(new_theta, np.float64)
                dist = float(np.linalg.norm(th_next[0] - best_th))
                if r is not None and dist > r:
                    th_next[0] = best_th + (th_next[0] - best_th) * (r / dist)
                    dist = r
                again = restart is not None and stall >= restart
                for name, val in (("value", v), ("new", new),
                                  ("pool", meter.evaluations - n_before - int(new)),
                                  ("distance", dist), ("radius", math.inf if r is None else r),
                                  ("restart", again), ("evaluations", meter.evaluations)):
                    hist[name].append(val)
                if again:
                    from surco.prior.model import perturbed
                    key, kr = jax.random.split(key)
                    th_next = perturbed(best_th, 1, noise, kr)
                    new_state = init_opt_state(opt, (est, opt_key), jnp.asarray(th_next,
                                                                               jnp.float32))
                    stall, r = 0, r0
                    n_restarts += 1
                theta = jnp.asarray(th_next, jnp.float32)
                opt_state = new_state
                control.arm()
                if meter.exhausted:
                    stopped = StopReason.BUDGET
                    break
    except KeyboardInterrupt:   # Ctrl-C landed in this loop's own code
        stopped = StopReason.INTERRUPTED
    finally:
        program.release()
    if stopped == StopReason.INTERRUPTED:
        exc = KeyboardInterrupt(f"plateau_zero interrupted after {len(hist['value'])} step(s); "
                                "the best so far is in the exception's .partial")
        exc.partial = result(StopReason.INTERRUPTED)
        raise exc
    if best_x is None:
        raise BudgetExhausted(f"plateau_zero: the budget ({meter.budget.describe()}) was spent "
                              "before the first x could be evaluated")
    return result(stopped)


# ------------------------------------------------------------------------------------------
# Harness methods
# ------------------------------------------------------------------------------------------
def plateau_method(family: Family, **settings: Any) -> Method:
    """`plateau_zero` as a harness `Method` ``(instance, meter) -> x``, with the family's
    ``zero_settings`` (estimator, optimiser, init, backend, ...) updated by ``settings``
    (`plateau_zero`'s keywords; ``init`` may be a function ``instance -> θ0``). SurCo-zero's
    own stopping settings (``steps``, ``select``, ``patience``, ...) of the family are
    dropped; ``steps`` given here is kept.

    Raises:
      TypeError: family is not a `Family`; an unknown setting (named, with the closest).
    """
    if not isinstance(family, Family):
        raise TypeError(f"plateau_method: family must be a surco.Family, got "
                        f"{type(family).__name__}")
    own = {k: settings.pop(k) for k in _OWN if k in settings}
    check_kwargs("surco.plateau.plateau_method", settings,
                 [*ZeroConfig.keywords(settings.get("estimator", family.zero_settings.get(
                     "estimator", "blackbox"))), *_OWN])
    kw0 = {k: v for k, v in dict(family.zero_settings).items() if k not in _ZERO_ONLY}
    config = ZeroConfig.of("surco.plateau.plateau_method", **{**kw0, **settings})

    def method(instance, meter):
        try:
            return plateau_zero(family.problem(instance), instance, meter, config, **own).x
        except BudgetExhausted:
            if meter.best_x is None:
                raise
            return meter.best_x
    method.__doc__ = "SurCo-zero with restarts / trust region / pool (surco.plateau)."
    return method


def budgeted_method(methods: Mapping[int, Method]) -> Method:
    """One `Method` that runs, under an evaluation budget E, the method of ``methods``
    (evaluation budget -> method, e.g. settings chosen on train instances at 30, 100 and
    300 evaluations) whose key is nearest to E on a log scale (the smaller key on a tie);
    without an evaluation budget, the method of the largest key. The returned method's
    ``pick(E)`` says which.

    Raises:
      ValueError: an empty mapping, or keys that are not positive integers.
      TypeError: a value that is not callable.
    """
    if not isinstance(methods, Mapping) or not methods:
        raise ValueError("budgeted_method: methods must be a non-empty mapping "
                         "evaluation budget -> method")
    for k, m in methods.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"budgeted_method: keys must be positive integers (evaluation "
                             f"budgets), got {k!r}")
        if not callable(m):
            raise TypeError(f"budgeted_method: the method for {k} evaluations is not "
                            f"callable: {type(m).__name__}")
    keys = sorted(int(k) for k in methods)

    def pick(evaluations: int | None) -> Method:
        if evaluations is None:
            return methods[keys[-1]]
        return methods[min(keys, key=lambda k: (abs(math.log(k / evaluations)), k))]

    def method(instance, meter):
        return pick(meter.budget.evaluations)(instance, meter)
    method.pick = pick
    method.__doc__ = ("Settings chosen per evaluation budget: "
                      + "; ".join(f"{k}: {(getattr(methods[k], '__doc__', '') or '').strip()}"
                                  for k in keys))
    return method
