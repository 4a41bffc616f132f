"""SurCo-zero and SurCo-hybrid (Ferber et al., ICML 2023, Alg. 1 and Alg. 4): the one driver.

SurCo-zero optimises a linear surrogate cost c for one instance y by gradient descent on
``f(g_Ω(c), y)``, where ``g_Ω(c) = argmin_{x in Ω} c·x`` is solved exactly every step and
differentiated by a gradient estimator. Every iterate's x is a solver answer and hence
feasible; the best by f is kept. SurCo-hybrid starts SurCo-zero from the cost that a trained
SurCo-prior predicts.

One driver, two backends (`ZeroConfig.backend`): host solvers (`make_solver`'s backends and
oracles, reached from the jitted step through a callback) or ``"jax"``: Ω's JAX-native
oracle, the whole run compiled into XLA. Modules: `program` (the compiled steps and their
caches), `loop` (one loop per backend), `selection` (best x, stopping rules, history,
checks, results).

Stopping and keeping what was found: a run ends after ``steps``, on ``patience``,
``target`` or ``time_limit``, when a `surco.budget.BudgetExhausted` is raised by
``problem.evaluate`` or the objective, or on Ctrl-C; `ZeroResult.stopped` says which (a
`surco.outcome.StopReason`). The first five return normally. Ctrl-C raises
`KeyboardInterrupt` and an error in the middle of a run (a solver's `SolverTimeout` /
`SolverError`, a non-finite objective or gradient) raises its own typed error; in both cases
the exception carries ``.partial``: what `zero` would have returned with the steps completed
so far (``stopped`` INTERRUPTED or ERROR), or None when no step had completed. With
``throw=False`` an error is returned instead: that partial result, or one without x, with
``stopped == StopReason.ERROR`` and the exception in ``error``.
"""
from __future__ import annotations

import functools
import time
from typing import Any, Sequence

import numpy as np

from surco._engine import resolve_key
from surco.checks import as_instances, check_instances
from surco.config import ZeroConfig, settings_of
from surco.driver.loop import Start, find_oracle, host_loop, jax_loop
from surco.driver.program import (SUPPORTED, cache_info, clear_cache, clear_program_cache,
                                  compile_seconds, optimizer_key, program_cache_info)
from surco.driver.selection import NoProgressWarning, failed_results
from surco.outcome import StopReason
from surco.problem import Instance, Problem
from surco.results import ZeroResult

__all__ = ["zero", "hybrid", "ZeroConfig", "NoProgressWarning", "program_cache_info",
           "clear_program_cache", "cache_info", "clear_cache", "compile_seconds", "SUPPORTED"]


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


@_partial_on_interrupt
def zero(problem: Problem, instance: Instance | Sequence[Instance],
         config: ZeroConfig | None = None, /, **settings: Any) -> ZeroResult | list[ZeroResult]:
    """SurCo-zero (Ferber et al., ICML 2023, Alg. 1): ``min_c f(g_Ω(c); y)`` by a first-order
    optimiser, ``∂g/∂c`` supplied by the configuration's estimator.

    Args:
      problem: the `Problem`.
      instance: one instance, or a `list` (or plain `tuple`) of instances of equal shapes
        solved together (each step is one batched solve). A NamedTuple is one instance.
      config: a `surco.ZeroConfig` (a family's ``zero_settings``), or None.
      **settings: its fields as keywords (``steps=50``, ``estimator="perturbed"``, the
        estimator's hyperparameters such as ``lam=10``), replacing ``config``'s.

    The step is compiled once per (problem, estimator, optimiser, number of instances,
    shapes, dtype) and reused by later calls (`program_cache_info`, `cache_info`).

    Returns:
      A `ZeroResult` (a list for a list of instances); ``stopped`` is a `StopReason`.

    Raises:
      ValueError / TypeError: a bad setting (naming it; an unknown keyword with the closest
        valid name), no instances, NaN or inf in instance data (naming the instance, the
        leaf such as ``y['w']``, the first bad index and its value), ``select="evaluate"``
        without ``problem.evaluate``, an estimator or Ω that backend "jax" cannot run.
      ProblemError: an instance that does not fit Ω; an objective that cannot be traced;
        a non-finite objective or gradient (naming the problem and the step).
      InfeasibleError, UnboundedError, SolverTimeout, SolverError: a solve failed.
      KeyboardInterrupt: Ctrl-C. Every exception raised after the run started carries
        ``.partial``; with ``throw=False`` these failures are returned instead.

    >>> import surco
    >>> from surco.problems import assignment as A
    >>> y = A.generate(1, seed=0, n=4, m=2)[0]
    >>> res = surco.zero(A.make_problem(4, 2), y, steps=20, lam=10.0, key=0)
    >>> res.x.shape, res.stopped, res.history["best_f"][-1] == res.f
    ((4, 2), <StopReason.STEPS: 'steps'>, True)
    >>> cfg = surco.ZeroConfig(steps=5, key=0)   # a configuration; keywords replace its fields
    >>> surco.zero(A.make_problem(4, 2), y, cfg, lam=10.0).stopped
    <StopReason.STEPS: 'steps'>
    """
    cfg = settings_of(config, settings, ZeroConfig, "surco.zero")
    instances, many = as_instances(instance)
    if not instances:
        raise ValueError("zero: no instances given (instance is an empty list)")
    if not isinstance(problem, Problem):
        raise TypeError(f"zero: problem must be a surco.Problem, got {type(problem).__name__}")
    if cfg.select == "evaluate" and problem.evaluate is None:
        raise ValueError(f"zero: select='evaluate' but problem {problem.name!r} has no evaluate")
    check_instances(problem, instances, cfg.dtype, "surco.zero", trace=False)
    est = cfg.make_estimator()
    oracle = _jax_oracle(problem, instances, cfg, est)
    t_start, init = time.perf_counter(), cfg.init
    if callable(init):  # a start rule: instance -> θ0
        init = [init(y) for y in instances] if many else init(instances[0])
    opt, opt_key = ((est.default_optimizer(cfg.lr), ("default", cfg.lr))
                    if cfg.optimizer is None else (cfg.optimizer, optimizer_key(cfg.optimizer)))
    start = Start(problem, instances, many, cfg, est, opt, opt_key, init, resolve_key(cfg.key),
                  t_start, f"SurCo-zero[{problem.name}"
                  + (", compiled]" if oracle is not None else "]"))
    try:
        return host_loop(start) if oracle is None else jax_loop(start, oracle)
    except Exception as exc:
        if cfg.throw:
            raise
        partial = getattr(exc, "partial", None)
        out = ([partial] if not many else partial) if partial is not None else failed_results(
            problem, est.name, len(instances), time.perf_counter() - start.t_start, exc)
        for r in out:
            r.stopped, r.error = StopReason.ERROR, exc
        return out if many else out[0]


def _jax_oracle(problem: Problem, instances: list, cfg: ZeroConfig, est):
    """Ω's JAX oracle when the run is compiled (backend "jax", or None with an ``oracle``
    or a `JaxOracle` Ω), else None; ValueError for what backend "jax" cannot run."""
    from surco.solvers.jax_oracles import JaxOracle
    if cfg.backend != "jax" and not (cfg.backend is None and (cfg.oracle is not None or isinstance(
            problem.space_for(instances[0]), JaxOracle))):
        return None
    if cfg.solver_options or cfg.executor is not None:
        raise ValueError("zero: backend 'jax' (Ω solved inside XLA) takes no "
                         "solver_options or executor")
    if type(est) not in SUPPORTED:
        raise ValueError(f"zero: estimator {est.name!r} does not run on a JAX oracle; use one "
                         f"of {[cls.name for cls in SUPPORTED]} (or a host backend)")
    return find_oracle(problem, instances, cfg.oracle)


@_partial_on_interrupt
def hybrid(problem: Problem, instance: Instance | Sequence[Instance], prior_model,
           config: ZeroConfig | None = None, /, **settings: Any
           ) -> ZeroResult | list[ZeroResult]:
    """SurCo-hybrid (Ferber et al. 2023, Alg. 4): SurCo-zero started from the surrogate
    cost that a trained SurCo-prior predicts for the instance.

    Args:
      problem: the `Problem` (the one the prior was trained on).
      instance: one instance or a list (or plain tuple) of them.
      prior_model: a trained `surco.prior.PriorModel`.
      config, **settings: as `zero`; ``init`` comes from the prior (ValueError if given).

    Returns, Raises: as `zero` (Ctrl-C and mid-run errors carry ``.partial``).
    """
    if "init" in settings:
        raise ValueError("hybrid: init comes from the prior; do not pass init")
    cfg = settings_of(config, settings, ZeroConfig, "surco.hybrid")
    if not hasattr(prior_model, "theta"):
        raise TypeError(f"hybrid: prior_model must be a trained surco.prior.PriorModel, got "
                        f"{type(prior_model).__name__}")
    instances, many = as_instances(instance)
    if not instances:
        raise ValueError("hybrid: no instances given (instance is an empty list)")
    theta0 = np.stack([np.asarray(prior_model.theta(y)) for y in instances])
    return zero(problem, instances if many else instances[0],
                cfg.replace(init=theta0 if many else theta0[0]))
