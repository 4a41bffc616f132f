"""SurCo-zero and SurCo-hybrid (Ferber et al., ICML 2023, Alg. 1 and Alg. 4).

SurCo-zero optimises a linear surrogate cost c for one instance y by gradient descent on
``f(g_Ω(c), y)``, where ``g_Ω(c) = argmin_{x in Ω} c·x`` is solved exactly every step and
differentiated by a gradient estimator. Every iterate's x is a solver answer and hence
feasible; the best by f is kept. SurCo-hybrid starts SurCo-zero from the cost that a trained
SurCo-prior predicts.
"""
from __future__ import annotations

import time
from concurrent.futures import Executor
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco._engine import (RELAXED_FORWARD, batched_objective, build_solver, check_finite,
                           resolve_key, stack_instances, stack_solvers)
from surco.problem import Instance, Problem
from surco.results import ZeroResult


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False)


def _initial_theta(init, key, shape: tuple[int, ...], dtype, init_scale: float) -> jax.Array:
    if isinstance(init, str):
        if init == "random":
            return init_scale * jax.random.normal(key, shape, dtype)
        if init == "zeros":
            return 1e-3 * init_scale * jax.random.normal(key, shape, dtype)
        raise ValueError(f"zero: init must be 'random', 'zeros' or an array of surrogate "
                         f"parameters, got {init!r}")
    arr = jnp.asarray(init, dtype)
    if arr.shape == shape[1:]:
        arr = jnp.broadcast_to(arr, shape)
    if arr.shape != shape:
        raise ValueError(f"zero: init array has shape {arr.shape}, expected {shape[1:]} "
                         f"(one instance) or {shape} (one per instance)")
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError("zero: init array contains NaN or inf")
    return arr


def zero(problem: Problem, instance: Instance | Sequence[Instance], *,
         estimator: Any = "blackbox", steps: int = 100, lr: float = 0.1,
         optimizer: optax.GradientTransformation | None = None,
         init: str | np.ndarray | jax.Array = "random", init_scale: float = 1.0,
         patience: int | None = None, target: float | None = None,
         key: jax.Array | int | None = None,
         progress: bool = False, backend: str = "scip",
         solver_options: dict[str, Any] | None = None, executor: Executor | None = None,
         select: str = "f", dtype=jnp.float32, **estimator_kw: Any
         ) -> ZeroResult | list[ZeroResult]:
    """SurCo-zero: optimise a linear surrogate cost for one or many instances.

    Implements Alg. 1 of Ferber et al., "SurCo: Learning Linear Surrogates for Combinatorial
    Nonlinear Optimization Problems", ICML 2023: ``min_c f(g_Ω(c); y)`` by a first-order
    optimiser, with ``∂g/∂c`` supplied by ``estimator``.

    Args:
      problem: the `Problem`.
      instance: one instance, or a `list` of instances of equal shapes solved together: each
        step is then one batched solve over all of them (a `SolverStack`).
      estimator: an `surco.estimators.Estimator` or its name ("blackbox", "perturbed",
        "identity", "neg_identity", "straight_through", "quadratic"); ``estimator_kw`` are its
        hyperparameters (e.g. ``lam=10`` for blackbox).
      steps: maximum number of gradient steps.
      lr: learning rate of the default optimiser ``optax.adam(lr)``.
      optimizer: any optax transformation (overrides ``lr``).
      init: "random" (``init_scale`` × standard normal), "zeros" (zeros plus 1e-3 noise to
        break ties), or an array of surrogate parameters θ (c = problem.cost_transform(θ)),
        shaped like x or ``(len(instances), *x.shape)`` — e.g. a heuristic's cost or
        SurCo-prior's output (that is SurCo-hybrid).
      patience: stop after this many steps without improvement of the best f (on every
        instance); None runs all steps.
      target: stop as soon as the best f of every instance is ``<= target`` (e.g. 0 for a
        loss whose zero set is the spec); None runs all steps.
      key: PRNG key (or int seed) for the initial cost and random estimators.
      progress: show a progress bar.
      backend, solver_options: how a `LinearSpec` Ω is solved (see `make_solver`).
      executor: parallelise each step's solves over instances (see `Solver.solve_batch`).
      select: "f" keeps the best x by f; "evaluate" by ``problem.evaluate`` (called once per
        distinct x), when the problem has one.
      dtype: float dtype of the surrogate cost.

    Returns:
      A `ZeroResult` (a list of them when ``instance`` is a list).

    Raises:
      ValueError: bad arguments. ProblemError: the objective is not a finite scalar.
      SolverError (and subclasses): the solver failed on the surrogate cost.
    """
    from surco.estimators import get_estimator

    many = isinstance(instance, list)
    instances = list(instance) if many else [instance]
    if not instances:
        raise ValueError("zero: no instances given")
    if int(steps) < 0:
        raise ValueError(f"zero: steps must be >= 0, got {steps}")
    if patience is not None and int(patience) < 1:
        raise ValueError(f"zero: patience must be >= 1 or None, got {patience}")
    if target is not None and not np.isfinite(float(target)):
        raise ValueError(f"zero: target must be finite or None, got {target}")
    if select not in ("f", "evaluate"):
        raise ValueError(f"zero: select must be 'f' or 'evaluate', got {select!r}")
    if select == "evaluate" and problem.evaluate is None:
        raise ValueError(f"zero: select='evaluate' but problem {problem.name!r} has no evaluate")
    est = get_estimator(estimator, **estimator_kw)
    opt = optimizer if optimizer is not None else optax.adam(lr)
    key = resolve_key(key)
    t_start = time.perf_counter()

    solver = stack_solvers([build_solver(problem, y, backend, solver_options) for y in instances],
                           executor)
    ys = stack_instances(problem, instances)
    B, shape = len(instances), solver.shape[1:]
    fvec = batched_objective(problem)
    relaxed = est.name in RELAXED_FORWARD

    def loss(theta, k):
        c = problem.to_cost(theta)
        x = est(solver, c, k)
        fv = fvec(x, ys)
        return fv.sum(), (fv, x, c)

    @jax.jit
    def step(theta, opt_state, k):
        (_, (fv, x, c)), g = jax.value_and_grad(loss, has_aux=True)(theta, k)
        updates, opt_state = opt.update(g, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, fv, x, c

    f_hard = jax.jit(lambda x: fvec(x, ys))
    key, k0 = jax.random.split(key)
    theta = _initial_theta(init, k0, (B, *shape), dtype, init_scale)
    opt_state = opt.init(theta)

    best_f = np.full(B, np.inf)
    best_sel = np.full(B, np.inf)
    best = [None] * B
    hist = {k: [[] for _ in range(B)]
            for k in ("f", "best_f", "solver_calls", "seconds", "solver_seconds")}
    stall = np.zeros(B, int)
    evaluated: list[dict[bytes, float]] = [{} for _ in range(B)]
    bar = _progress(steps + 1, progress, f"SurCo-zero[{problem.name}]")
    for t in range(steps + 1):
        key, k = jax.random.split(key)
        kk = k if est.needs_key else None
        # the update computed at the last iterate is not used: that iterate is only evaluated
        try:
            new_theta, new_state, fv, x, c = step(theta, opt_state, kk)
        except Exception:
            _diagnose(problem, solver, f_hard, theta, t)
            raise
        if relaxed:  # the feasible point is g(c) itself
            sol = solver.solve(np.asarray(c, np.float64))
            x = jnp.asarray(sol.x, dtype)
            fv = f_hard(x)
        fv, x_np = np.asarray(fv, np.float64), np.asarray(x)
        check_finite(problem, fv, f"at step {t}")
        theta_np, c_np = np.asarray(theta), np.asarray(c)
        for b in range(B):
            score = fv[b]
            if select == "evaluate":
                h = x_np[b].tobytes()
                if h not in evaluated[b]:
                    evaluated[b][h] = float(problem.evaluate(x_np[b], instances[b]))
                score = evaluated[b][h]
            if score < best_sel[b]:
                best_sel[b], best_f[b] = score, fv[b]
                best[b] = (x_np[b].copy(), c_np[b].copy(), theta_np[b].copy(), t)
                stall[b] = 0
            else:
                stall[b] += 1
            hist["f"][b].append(float(fv[b]))
            hist["best_f"][b].append(float(best_f[b]))
            hist["solver_calls"][b].append(solver.calls)
            hist["seconds"][b].append(time.perf_counter() - t_start)
            hist["solver_seconds"][b].append(float(solver.seconds[b]))
        theta, opt_state = new_theta, new_state
        if bar is not None:
            bar.update(1)
            bar.set_postfix(best_f=f"{best_f.mean():.5g}")
        if patience is not None and np.all(stall >= patience):
            break
        if target is not None and np.all(best_f <= target):
            break
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t_start
    results = []
    for b in range(B):
        x_b, c_b, th_b, t_b = best[b]
        true = None
        if problem.evaluate is not None:
            true = evaluated[b].get(x_b.tobytes())
            if true is None:
                true = float(problem.evaluate(x_b, instances[b]))
        results.append(ZeroResult(
            x=x_b, f=float(best_f[b]), true_cost=true, c=c_b, theta=th_b,
            history={k: v[b] for k, v in hist.items()}, best_step=int(t_b),
            seconds=seconds / B, solver_seconds=float(solver.seconds[b]),
            solver_calls=int(solver.calls), problem=problem.name, estimator=est.name))
    return results if many else results[0]


def _diagnose(problem: Problem, solver, f_hard, theta, t: int) -> None:
    """After a failed step: if the objective itself is not finite at the step's solution,
    say so (a NaN objective otherwise surfaces as a NaN cost inside the estimator)."""
    c = np.asarray(problem.to_cost(theta), np.float64)
    if not np.all(np.isfinite(c)):
        return
    x = solver.solve(c).x
    check_finite(problem, np.asarray(f_hard(jnp.asarray(x, theta.dtype)), np.float64),
                 f"at step {t}")


def hybrid(problem: Problem, instance: Instance | Sequence[Instance], prior_model,
           **zero_kwargs: Any) -> ZeroResult | list[ZeroResult]:
    """SurCo-hybrid (Ferber et al. 2023, Alg. 4): SurCo-zero started from the surrogate
    cost that a trained SurCo-prior predicts for the instance.

    Args:
      problem: the `Problem` (the one the prior was trained on).
      instance: one instance or a list of them.
      prior_model: a trained `surco.prior.PriorModel`.
      **zero_kwargs: passed to `zero` (``init`` is set from the prior).
    """
    if "init" in zero_kwargs:
        raise ValueError("hybrid: init comes from the prior; do not pass init")
    many = isinstance(instance, list)
    instances = list(instance) if many else [instance]
    theta0 = np.stack([np.asarray(prior_model.theta(y)) for y in instances])
    return zero(problem, instance if many else instances[0],
                init=theta0 if many else theta0[0], **zero_kwargs)
