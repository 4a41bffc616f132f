"""SurCo-zero and SurCo-hybrid (Ferber et al., ICML 2023, Alg. 1 and Alg. 4).

SurCo-zero optimises a linear surrogate cost c for one instance y by gradient descent on
``f(g_Ω(c), y)``, where ``g_Ω(c) = argmin_{x in Ω} c·x`` is solved exactly every step and
differentiated by a gradient estimator. Every iterate's x is a solver answer and hence
feasible; the best by f is kept. SurCo-hybrid starts SurCo-zero from the cost that a trained
SurCo-prior predicts.

Stopping and keeping what was found: a run ends after ``steps``, on ``patience``,
``target`` or ``time_limit``, when a `surco.budget.BudgetExhausted` is raised by
``problem.evaluate`` or the objective, or on Ctrl-C; `ZeroResult.stopped` says which. The
first four return normally. Ctrl-C raises `KeyboardInterrupt` (within one solve: the
remaining solves of the step are skipped) and an error in the middle of a run (a solver's
`SolverTimeout` / `SolverError`, a non-finite objective or gradient) raises its own typed
error; in both cases the exception carries ``.partial``: what `zero` would have returned
with the steps completed so far (``stopped="interrupted"`` or ``"error"``), or None when no
step had completed.
"""
from __future__ import annotations

import collections
import functools
import math
import threading
import time
import warnings
from concurrent.futures import Executor
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (NO_PROGRESS_STEPS, Metered, NoProgressWarning, RunControl, SolverSlot,
                           as_instances, surrogate_step, batched_objective, build_solver, check_finite,
                           check_estimator_kwargs, check_instances, check_zero_args,
                           check_zero_settings, controlled, initial_theta,
                           is_budget_exhausted, is_interrupt, no_progress_message, resolve_key,
                           stack_instances, tree_signature, init_opt_state, optimizer_key)
from surco.problem import Instance, Problem, ProblemError
from surco.results import ZeroResult
from surco.solvers import Solution, Status

def _attach(exc: BaseException, partial) -> BaseException:
    exc.partial = partial
    return exc


def _partial_on_interrupt(fn):
    """A `KeyboardInterrupt` out of ``fn`` always has ``.partial`` (None when it came before
    the first step, e.g. while solvers were built)."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as exc:
            if not hasattr(exc, "partial"):
                exc.partial = None
            raise
    return wrapped


# -- compiled steps, cached across calls -----------------------------------------------------
class _Program:
    """One compiled SurCo-zero step for given (problem, estimator, optimiser, shapes,
    dtypes): ``step(theta, opt_state, key, ys)`` and ``f_hard(x, ys)``, closing over a
    `Metered` `SolverSlot` that each run loads with its own solvers. A run holds the
    program (``lock``) from its first step until its results are read."""

    def __init__(self, problem, est, opt, members, executor):
        self.solver = Metered(SolverSlot(members, executor=executor))
        self.lock = threading.Lock()
        solver = self.solver
        fvec = batched_objective(problem)
        x_axes = tuple(range(1, 1 + len(members[0].shape)))

        @jax.jit
        def step(theta, opt_state, k, ys):
            return surrogate_step(problem, est, solver, fvec, opt, theta, opt_state, k, ys,
                                  x_axes)

        self.step = step
        self.f_hard = jax.jit(fvec)

    def load(self, members, executor, control) -> "_Program":
        slot = self.solver.inner
        slot.load(members)
        slot.executor = executor
        self.solver.reset(control)
        return self

    def release(self) -> None:
        self.solver.reset(None)
        self.solver.inner.members = self.solver.members = []  # drop the run's models
        self.lock.release()


_PROGRAMS_SIZE = 32
_PROGRAMS: "collections.OrderedDict[tuple, _Program]" = collections.OrderedDict()
_PROGRAMS_LOCK = threading.Lock()
_PROGRAM_STATS = {"hits": 0, "misses": 0}


def program_cache_info() -> dict[str, int]:
    """``{"hits", "misses", "entries"}`` of `zero`'s cache of compiled steps: a hit is a call
    that reused a step compiled by an earlier call (same problem, estimator, optimiser,
    number of instances, shapes and dtypes), and compiled nothing new."""
    with _PROGRAMS_LOCK:
        return dict(_PROGRAM_STATS, entries=len(_PROGRAMS))


def clear_program_cache() -> None:
    """Forget `zero`'s compiled steps and reset the counters."""
    with _PROGRAMS_LOCK:
        _PROGRAMS.clear()
        _PROGRAM_STATS.update(hits=0, misses=0)


def _zero_program(problem, est, opt, opt_key, members, executor, control, theta, opt_state,
                  ys) -> _Program:
    """The cached program for this run's shapes, locked for the run (a fresh, uncached one
    when another run holds it, e.g. in another thread).

    The problem enters the key by what the step traces, its objective and cost transform,
    not by identity: a copy with another ``evaluate`` (the harness counts evaluations
    through one per run, `dataclasses.replace`) reuses the step instead of compiling it
    again inside its time budget."""
    sig = ((problem.objective, problem.cost_transform), est, opt_key, len(members),
           tuple(members[0].shape), tuple(theta.shape),
           str(theta.dtype), tree_signature(ys), tree_signature(opt_state),
           tuple(_rows(m) for m in members))
    try:
        hash(sig)
    except TypeError:  # an unhashable estimator or optimiser: compile for this run only
        sig = None
    with _PROGRAMS_LOCK:
        program = _PROGRAMS.get(sig) if sig is not None else None
        if program is not None and program.lock.acquire(blocking=False):
            _PROGRAMS.move_to_end(sig)
            _PROGRAM_STATS["hits"] += 1
            return program.load(members, executor, control)
        _PROGRAM_STATS["misses"] += 1
    program = _Program(problem, est, opt, members, executor)
    program.lock.acquire()
    if sig is not None:
        with _PROGRAMS_LOCK:
            if sig not in _PROGRAMS:
                _PROGRAMS[sig] = program
                while len(_PROGRAMS) > _PROGRAMS_SIZE:
                    _PROGRAMS.popitem(last=False)
    return program.load(members, executor, control)


def _rows(solver) -> tuple:
    """Constraint row counts of a solver's `LinearSpec` (traced into estimators that read
    the constraints, e.g. ``quadratic``), or its type for a solver without one."""
    spec = getattr(solver, "spec", None)
    if spec is None or not hasattr(spec, "A_ub"):
        return (type(solver).__name__,)
    return tuple(None if a is None else a.shape for a in (spec.A_ub, spec.A_eq))


def _jax_space(problem: Problem, instance: Instance) -> bool:
    """Whether Ω of this instance is a JAX-native oracle (solved inside XLA by default)."""
    from surco.solvers.jax_oracles import JaxOracle
    return isinstance(problem.space_for(instance), JaxOracle)


# -- SurCo-zero -----------------------------------------------------------------------------
@_partial_on_interrupt
def zero(problem: Problem, instance: Instance | Sequence[Instance], *,
         estimator: Any = "blackbox", steps: int = 100, lr: float = 0.1,
         optimizer: optax.GradientTransformation | None = None,
         init: str | np.ndarray | jax.Array = "random", init_scale: float = 1.0,
         patience: int | None = None, target: float | None = None,
         time_limit: float | None = None,
         key: jax.Array | int | None = None,
         progress: bool = False, backend: str | None = None,
         solver_options: dict[str, Any] | None = None, executor: Executor | None = None,
         select: str = "f", no_progress_steps: int | None = NO_PROGRESS_STEPS,
         dtype=jnp.float32, **estimator_kw: Any) -> ZeroResult | list[ZeroResult]:
    """SurCo-zero: optimise a linear surrogate cost for one or many instances.

    Implements Alg. 1 of Ferber et al., "SurCo: Learning Linear Surrogates for Combinatorial
    Nonlinear Optimization Problems", ICML 2023: ``min_c f(g_Ω(c); y)`` by a first-order
    optimiser, with ``∂g/∂c`` supplied by ``estimator``.

    Args:
      problem: the `Problem`.
      instance: one instance, or a `list` (or plain `tuple`) of instances of equal shapes
        solved together: each step is then one batched solve over all of them (a
        `SolverStack`). A NamedTuple is one instance.
      estimator: an `surco.estimators.Estimator` or its name ("blackbox", "perturbed",
        "identity", "neg_identity", "straight_through", "quadratic"); ``estimator_kw`` are its
        hyperparameters (e.g. ``lam=10`` for blackbox). See README "Which estimator when".
      steps: maximum number of gradient steps (an integer >= 0).
      lr: learning rate (a positive number) of the default optimiser, the estimator's
        `default_optimizer` (``optax.adam(lr)`` unless the estimator says otherwise).
      optimizer: any optax transformation (overrides ``lr``).
      init: "random" (``init_scale`` × standard normal), "zeros" (zeros plus 1e-3 noise to
        break ties), or an array of surrogate parameters θ (c = problem.cost_transform(θ)),
        shaped like x or ``(len(instances), *x.shape)`` — e.g. a heuristic's cost or
        SurCo-prior's output (that is SurCo-hybrid).
      patience: stop after this many steps without improvement of the best f (on every
        instance); None runs all steps.
      target: stop as soon as the best f of every instance is ``<= target`` (e.g. 0 for a
        loss whose zero set is the spec); None runs all steps.
      time_limit: stop after this many wall seconds (set-up and compilation included) and
        return the best so far; the first step always completes. After it, a solve still
        running at the deadline is stopped there (every `make_solver` backend; with an
        ``executor``, solves running in its workers finish first) and the step is dropped,
        so the run returns within a few milliseconds of the deadline plus the time to
        read back the best result. None: no limit.
      key: PRNG key (or int seed) for the initial cost and random estimators.
      progress: show a progress bar.
      backend, solver_options: how a `LinearSpec` Ω is solved (see `make_solver`; None:
        `surco.solvers.DEFAULT_BACKEND`). ``"jax"`` runs the whole run inside XLA through
        the JAX-native oracle of Ω (`surco.compiled.zero`, which takes no solver_options
        or executor); that is also what happens by default when Ω is a
        `surco.solvers.jax_oracles.JaxOracle`.
      executor: parallelise each step's solves over instances (see `Solver.solve_batch`).
      select: "f" keeps the best x by f; "evaluate" by ``problem.evaluate`` (called once per
        distinct x), when the problem has one.
      no_progress_steps: warn (`NoProgressWarning`, once) when an instance's x is the same
        for the first this-many steps of a run started from ``init="random"`` or "zeros" (a
        warm start that stays put may already be good); None never warns.
      dtype: float dtype of the surrogate cost.

    The jitted step is compiled once per (problem, estimator, optimiser, number of
    instances, shapes, dtype) and reused by later calls (`program_cache_info`): a second
    call on the same shapes compiles nothing.

    Returns:
      A `ZeroResult` (a list of them when ``instance`` is a list or tuple), whose
      ``stopped`` is "steps", "patience", "target", "time_limit" or "budget" (a
      `surco.budget.BudgetExhausted` raised by ``problem.evaluate`` or the objective).

    Raises:
      ValueError: bad arguments (the message names the argument and the expected form);
        instance data holding NaN or inf (naming the instance, the leaf's path such as
        ``y['w']``, the first bad index and its value).
      TypeError: a keyword that is neither a parameter of `zero` nor a hyperparameter of
        the estimator (with the closest valid name).
      ProblemError: an instance that does not fit Ω; an objective that cannot be traced
        (e.g. written with NumPy: it must use jax.numpy); an objective that is not a finite
        scalar, or whose gradient is not finite, naming the problem and the step.
      InfeasibleError, UnboundedError, SolverTimeout, SolverError: the solver failed on the
        surrogate cost (raised once, with the solver's name).
      KeyboardInterrupt: Ctrl-C.
      Every exception raised after the run has started carries ``.partial`` (see the module
      docstring).
    """
    from surco.estimators import get_estimator

    check_estimator_kwargs("surco.zero", zero, estimator_kw, estimator)
    args = check_zero_args(problem, instance, steps=steps, lr=lr, init_scale=init_scale,
                           patience=patience, no_progress_steps=no_progress_steps, target=target,
                           time_limit=time_limit, optimizer=optimizer, select=select, dtype=dtype)
    instances, many, dtype = args["instances"], args["many"], args["dtype"]
    check_instances(problem, instances, dtype, "surco.zero", trace=False)
    steps, lr, init_scale = args["steps"], args["lr"], args["init_scale"]
    patience, no_progress_steps = args["patience"], args["no_progress_steps"]
    time_limit = args["time_limit"]
    if not isinstance(progress, bool):
        raise ValueError(f"zero: progress must be True or False, got {progress!r}")
    if backend is not None and not isinstance(backend, str):
        raise ValueError(f"zero: backend must be a backend name (str) or None, got {backend!r}")
    if backend == "jax" or (backend is None and _jax_space(problem, instances[0])):
        if solver_options or executor is not None:
            raise ValueError("zero: backend 'jax' (Ω solved inside XLA) takes no "
                             "solver_options or executor")
        from surco import compiled
        return compiled.zero(problem, instance, estimator=estimator, steps=steps, lr=lr,
                             optimizer=optimizer, init=init, init_scale=init_scale,
                             patience=patience, target=target, time_limit=time_limit, key=key,
                             select=select, no_progress_steps=no_progress_steps, dtype=dtype,
                             **estimator_kw)
    est = get_estimator(estimator, **estimator_kw)
    opt = optimizer if optimizer is not None else est.default_optimizer(lr)
    opt_key = optimizer_key(optimizer) if optimizer is not None else ("default", lr)
    key = resolve_key(key)
    t_start = time.perf_counter()
    control = RunControl(time_limit, t_start)

    members = [build_solver(problem, y, backend, solver_options) for y in instances]
    B, shape = len(instances), tuple(members[0].shape)
    check_instances(problem, instances, dtype, "surco.zero", values=False)
    ys = stack_instances(problem, instances)
    relaxed = not est.forward_is_solution
    key, k0 = jax.random.split(key)
    theta = initial_theta(init, k0, (B, *shape), dtype, init_scale)
    opt_state = init_opt_state(opt, (est, opt_key), theta)
    program = _zero_program(problem, est, opt, opt_key, members, executor, control, theta,
                            opt_state, ys)
    solver, step, f_hard = program.solver, program.step, program.f_hard

    best_f = np.full(B, np.inf)
    best_sel = np.full(B, np.inf)
    best: list = [None] * B
    hist = {k: [[] for _ in range(B)]
            for k in ("f", "best_f", "solver_calls", "seconds", "solver_seconds")}
    stall = np.zeros(B, int)
    x_first: list[np.ndarray | None] = [None] * B
    moved = np.zeros(B, bool)
    warned = False
    cold_start = isinstance(init, str)  # a warm start that stays put may already be good
    evaluated: list[dict[bytes, float]] = [{} for _ in range(B)]
    label = f"SurCo-zero[{problem.name}]"

    def results(stopped: str, final: bool = True):
        if any(b is None for b in best):
            return None
        seconds = time.perf_counter() - t_start
        done = min(len(v) for v in hist["best_f"])  # equal unless Ctrl-C cut an update
        out = []
        for b in range(B):
            x_b, c_b, th_b, t_b = best[b]
            true = evaluated[b].get(x_b.tobytes())
            if true is None and final and problem.evaluate is not None:
                try:
                    true = float(problem.evaluate(x_b, instances[b]))
                except Exception as exc:  # the budget ran out: the result has no true cost
                    if not is_budget_exhausted(exc):
                        raise
            out.append(ZeroResult(
                x=x_b, f=float(best_f[b]), true_cost=true, c=c_b, theta=th_b,
                history={k: list(v[b][:done]) for k, v in hist.items()}, best_step=int(t_b),
                seconds=seconds / B, solver_seconds=float(solver.seconds[b]),
                solver_calls=int(solver.calls), problem=problem.name, estimator=est.name,
                stopped=stopped))
        return out if many else out[0]

    def fail(exc: BaseException) -> BaseException:
        return _attach(exc, results("error", final=False))

    def where(t: int, b: int | None = None) -> str:
        inst = f", instance {b}" if b is not None and B > 1 else ""
        return f"Problem {problem.name!r}, step {t}{inst}"

    try:  # the program is this run's until its results are read
        stopped = "steps"
        bar = _progress(steps + 1, progress, label)
        try:
            with controlled(control):
                for t in range(steps + 1):
                    if control.stop_requested():
                        stopped = control.reason
                        break
                    key, k = jax.random.split(key)
                    kk = k if est.needs_key else None
                    control.failure = None
                    # the update computed at the last iterate is not used: that iterate is only
                    # evaluated
                    try:
                        (new_theta, new_state, fv, x, c, status, c_ok, gx_ok, g_ok,
                         gx) = jax.block_until_ready(step(theta, opt_state, kk, ys))
                    except Exception as exc:
                        if control.reason is not None or is_interrupt(exc):
                            stopped = control.reason or "interrupted"
                            break
                        if is_budget_exhausted(exc):
                            stopped = "budget"
                            break
                        if control.error is not None:
                            raise fail(control.error) from None
                        raise fail(exc)
                    if control.stop_requested():  # solves of this step were skipped
                        stopped = control.reason
                        break
                    if control.error is not None:
                        raise fail(control.error) from None
                    _check_step(problem, est, solver, control, np.asarray(status), np.asarray(c_ok),
                                np.asarray(fv, np.float64), np.asarray(gx_ok), np.asarray(g_ok),
                                np.asarray(gx), t, where, fail)
                    if relaxed:  # the feasible point is g(c) itself
                        sol = solver.solve(np.asarray(c, np.float64), check=False)
                        if control.stop_requested():
                            stopped = control.reason
                            break
                        if control.error is not None:
                            raise fail(control.error) from None
                        _check_step(problem, est, solver, control,
                                    np.asarray(sol.stats.get("member_status", [int(sol.status)] * B)),
                                    None, None, None, None, None, t, where, fail)
                        x = jnp.asarray(sol.x, dtype)
                        try:
                            fv = f_hard(x, ys)
                        except Exception as exc:
                            if is_budget_exhausted(exc):
                                stopped = "budget"
                                break
                            raise fail(exc)
                        try:
                            check_finite(problem, np.asarray(fv, np.float64), f"at step {t}")
                        except ProblemError as exc:
                            raise fail(exc) from None
                    fv, x_np = np.asarray(fv, np.float64), np.asarray(x)
                    theta_np, c_np = np.asarray(theta), np.asarray(c)
                    scores = fv.copy()
                    if select == "evaluate":
                        try:
                            for b in range(B):
                                h = x_np[b].tobytes()
                                if h not in evaluated[b]:
                                    evaluated[b][h] = float(problem.evaluate(x_np[b], instances[b]))
                                scores[b] = evaluated[b][h]
                        except Exception as exc:
                            if is_budget_exhausted(exc):
                                stopped = "budget"
                                break
                            raise fail(exc)
                    for b in range(B):
                        if scores[b] < best_sel[b]:
                            best_sel[b], best_f[b] = scores[b], fv[b]
                            best[b] = (x_np[b].copy(), c_np[b].copy(), theta_np[b].copy(), t)
                            stall[b] = 0
                        else:
                            stall[b] += 1
                        if x_first[b] is None:
                            x_first[b] = x_np[b].copy()
                        elif not moved[b] and not np.array_equal(x_np[b], x_first[b]):
                            moved[b] = True
                        hist["f"][b].append(float(fv[b]))
                        hist["best_f"][b].append(float(best_f[b]))
                        hist["solver_calls"][b].append(solver.calls)
                        hist["seconds"][b].append(time.perf_counter() - t_start)
                        hist["solver_seconds"][b].append(float(solver.seconds[b]))
                    control.arm()  # from now on the deadline may cut a step short
                    theta, opt_state = new_theta, new_state
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(best_f=f"{best_f.mean():.5g}")
                    if (no_progress_steps is not None and cold_start and not warned
                            and t == no_progress_steps and not moved.all()):
                        warned = True
                        warnings.warn(NoProgressWarning(no_progress_message(
                            label, est, int((~moved).sum()), B, no_progress_steps, optimizer is None,
                            lr)), stacklevel=3)  # the caller of zero (past the wrapper)
                    if patience is not None and np.all(stall >= patience):
                        stopped = "patience"
                        break
                    if target is not None and np.all(best_f <= target):
                        stopped = "target"
                        break
                    if control.stop_requested():
                        stopped = control.reason
                        break
        except KeyboardInterrupt:  # Ctrl-C landed in this loop's own code
            stopped = "interrupted"
        finally:
            if bar is not None:
                bar.close()
        if stopped == "interrupted":
            done = len(hist["f"][0])
            raise _attach(KeyboardInterrupt(
                f"{label} interrupted after {done} completed step(s); the best so far is in the "
                f"exception's .partial" + ("" if done else " (None: no step had completed)")),
                results("interrupted", final=False)) from None
        return results(stopped)
    finally:
        program.release()


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False)


def _check_step(problem: Problem, est, solver, control: RunControl, status, c_ok, fv, gx_ok,
                g_ok, gx, t: int, where, fail) -> None:
    """Raise the first problem of a step, once and typed: a failed solve, a non-finite cost,
    a non-finite objective value, a non-finite gradient of the objective, a non-finite
    estimator gradient."""
    def solver_failed(b: int, code: int, extra: str = "") -> None:
        member = solver.members[b] if b < len(solver.members) else solver
        stats = dict(control.failure or {})
        info = {k: stats[k] for k in ("timeout", "time_limit") if k in stats}
        info["detail"] = f"{where(t, b)}{extra}"
        try:
            Solution(x=np.zeros(0), objective=math.nan, status=Status(code),
                     stats=info).raise_for_status(member.name)
        except Exception as exc:
            raise fail(exc) from None

    status = np.atleast_1d(status)
    bad = np.flatnonzero(status > Status.FEASIBLE)
    if bad.size:
        n_bad = f"; {bad.size} of {status.size} instances failed" if status.size > 1 else ""
        solver_failed(int(bad[0]), int(status[bad[0]]), n_bad)
    if c_ok is not None and not np.all(c_ok):
        b = int(np.flatnonzero(~np.asarray(c_ok))[0])
        raise fail(ProblemError(
            f"{where(t, b)}: the surrogate cost c = cost_transform(θ) is not finite; "
            "check the problem's cost_transform (and lr: θ may have diverged)")) from None
    if fv is not None:
        try:
            check_finite(problem, fv, f"at step {t}")
        except ProblemError as exc:
            raise fail(exc) from None
    if gx_ok is not None and not np.all(gx_ok):
        b = int(np.flatnonzero(~np.asarray(gx_ok))[0])
        g = np.asarray(gx[b]).reshape(-1)
        i = int(np.flatnonzero(~np.isfinite(g))[0])
        raise fail(ProblemError(
            f"{where(t, b)}: the gradient of the objective with respect to x is not finite "
            f"({g[i]} at flat index {i} of x) at the solver's answer x, although f(x) is; "
            "the estimator needs a finite df/dx. Typical causes: sqrt, log or a division at 0 "
            "in f (e.g. jnp.sqrt(x) at x = 0: use jnp.sqrt(x + eps))")) from None
    if g_ok is not None and not np.all(g_ok):
        b = int(np.flatnonzero(~np.asarray(g_ok))[0])
        if control.failure is not None:  # a solve of the backward pass failed
            member = _failed_member(control.failure.get("detail", ""), b)
            solver_failed(member, control.failure["status"], " (a solve of the backward pass)")
        raise fail(ProblemError(
            f"{where(t, b)}: the gradient from estimator {est.name!r} (dL/dθ) is not finite "
            "although df/dx is; check the estimator's hyperparameters and the problem's "
            "cost_transform")) from None


def _failed_member(detail: str, default: int) -> int:
    """The member index in a `SolverStack` failure detail ("member 3 (name): ...")."""
    import re
    m = re.match(r"member (\d+) ", detail)
    return int(m.group(1)) if m else default


@_partial_on_interrupt
def hybrid(problem: Problem, instance: Instance | Sequence[Instance], prior_model,
           **zero_kwargs: Any) -> ZeroResult | list[ZeroResult]:
    """SurCo-hybrid (Ferber et al. 2023, Alg. 4): SurCo-zero started from the surrogate
    cost that a trained SurCo-prior predicts for the instance.

    Args:
      problem: the `Problem` (the one the prior was trained on).
      instance: one instance or a list (or plain tuple) of them.
      prior_model: a trained `surco.prior.PriorModel`.
      **zero_kwargs: passed to `zero` (``init`` is set from the prior): its parameters and
        the estimator's hyperparameters; anything else raises TypeError naming the keyword.

    Returns, Raises: as `zero` (Ctrl-C and mid-run errors carry ``.partial``).
    """
    if "init" in zero_kwargs:
        raise ValueError("hybrid: init comes from the prior; do not pass init")
    check_zero_settings("surco.hybrid", zero_kwargs, drop=("init",))
    if not hasattr(prior_model, "theta"):
        raise TypeError(f"hybrid: prior_model must be a trained surco.prior.PriorModel, got "
                        f"{type(prior_model).__name__}")
    instances, many = as_instances(instance)
    if not instances:
        raise ValueError("hybrid: no instances given (instance is an empty list)")
    theta0 = np.stack([np.asarray(prior_model.theta(y)) for y in instances])
    return zero(problem, instances if many else instances[0],
                init=theta0 if many else theta0[0], **zero_kwargs)
