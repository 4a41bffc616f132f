"""The portfolio family's harness methods, built from `surco.methods`.

A plan is X (n, 2): weights and selection (see `problem`). The baselines (`baselines_for`):

* ``random``: the best of 20 random feasible portfolios (`random_feasible`);
* ``linearisation``: one MILP solve at the Frank–Wolfe linearisation ∇f(x̄)
  (`linearised_cost`), its weights then optimised on its support (`polish`);
* ``local-search-first`` / ``local-search-steepest`` / ``annealing``: search over the
  *selection* with swap / add / drop moves (`surco.search.Cardinality`), each support scored
  by the true f of its optimised weights (`SupportSpace`: `polish_weights`, warm-started
  from the best plan found so far, a whole neighbourhood in one call); local search starts
  from the linearisation's support and restarts from random supports while the budget
  lasts (`surco.methods.search_from`, `surco.methods.annealing_from`);
* ``scip``: SCIP on the true objective (`scip_portfolio`, mode "full") under the one time
  policy (`surco.methods.time_limited`);
* ``exact``: the same SCIP model run until it proves optimality (raises if it does not).

One evaluation is the true f of one plan; the weight optimisation inside a support's score
uses f's gradient on that support and is not counted (as SurCo's own gradient steps are not).
`surco_search_method` runs SurCo-zero, then the same local search from SurCo's support.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

import surco
from surco.budget import Budget, BudgetExhausted, Meter
from surco.methods import annealing_from, heuristic, search_from, time_limited
from surco.search import Cardinality
from surco.solvers import SolverError, make_solver

from .baselines import random_feasible, scip_portfolio
from .instances import Instance, check_instance
from .problem import (PortfolioConfig, linearised_cost, omega, polish, polish_weights,
                      warm_starts)

__all__ = ["SupportSpace", "baselines_for", "linearisation_plan", "random_support",
           "surco_search_method", "SEARCH_POLISH_STEPS"]

#: Iterations of `polish_weights` per support scored by the searches (warm-started).
SEARCH_POLISH_STEPS = 150


class SupportSpace:
    """Scores selections z (n,) by the true f of their optimised weights, through a meter
    (a `surco.methods.SearchSpace`).

    ``meter()`` is a child `Meter` over z for `surco.search` (limited to what is left of
    the parent's budget); every z it scores is one evaluation of the plan (w(z), z) on the
    parent meter, so the parent counts, caches and keeps the best plan."""

    def __init__(self, instance: Instance, config: PortfolioConfig, parent: Meter,
                 steps: int = SEARCH_POLISH_STEPS, chunk: int = 128):
        self.y, self.cfg, self.parent, self.steps, self.chunk = (instance, config, parent,
                                                                 steps, chunk)
        self.anchor: np.ndarray | None = None   # weights of the best plan so far
        self.anchor_value = math.inf

    def batch(self, Z: np.ndarray) -> np.ndarray:
        """Scores of the supports ``Z`` (B, n), optimised ``chunk`` at a time so that a
        deadline is noticed within a chunk: past it, the chunks done are evaluated on the
        parent and `BudgetExhausted` is raised."""
        Z = np.asarray(Z, np.float64)
        starts = None if self.anchor is None else warm_starts(Z, self.anchor)
        W = np.empty_like(Z)
        for c in range(0, Z.shape[0], self.chunk):
            if c and self.parent.remaining_seconds() <= 0:
                self.parent.batch(np.stack([W[:c], Z[:c]], axis=-1))
                raise BudgetExhausted(f"time budget of {self.parent.budget.seconds:g} s spent")
            sl = slice(c, c + self.chunk)
            W[sl] = polish_weights(Z[sl], self.y, self.cfg,
                                   start=None if starts is None else starts[sl],
                                   steps=self.steps, tol=1e-10)
        X = np.stack([W, Z], axis=-1)
        vals = self.parent.batch(X)
        j = int(np.argmin(vals))
        if vals[j] < self.anchor_value:
            self.anchor, self.anchor_value = W[j].copy(), float(vals[j])
        return vals

    def meter(self, default_evaluations: int | None = None) -> Meter:
        """A meter over supports with what is left of the parent's budget (or
        ``default_evaluations`` when the parent has none)."""
        p = self.parent
        secs = p.remaining_seconds()
        evals = p.remaining_evaluations()
        b = Budget(seconds=max(secs, 1e-3) if math.isfinite(secs) else None,
                   evaluations=max(int(evals), 1) if math.isfinite(evals) else None)
        if b.unlimited and default_evaluations is not None:
            b = Budget(evaluations=int(default_evaluations))
        return b.start(lambda z: float(self.batch(np.asarray(z)[None])[0]),
                       evaluate_batch=self.batch)


@functools.lru_cache(maxsize=16)
def _solver(n: int, config: PortfolioConfig):
    return make_solver(omega(n, config), backend="highs")


def linearisation_plan(y: Instance, config: PortfolioConfig) -> np.ndarray:
    """The MILP's plan at the linearisation ∇f(x̄) (`linearised_cost`), weights unpolished."""
    n = check_instance(y)
    X = np.asarray(_solver(n, config).solve(linearised_cost(y, config)).x, np.float64)
    z = np.round(X[:, 1])
    return np.stack([X[:, 0] * z, z], axis=1)


def random_support(n: int, config: PortfolioConfig, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random support of a uniformly random feasible size."""
    lo, hi = config.sizes(n)
    z = np.zeros(n)
    z[rng.choice(n, int(rng.integers(lo, hi + 1)), replace=False)] = 1.0
    return z


def _support_search(config: PortfolioConfig, kind: str, start=None):
    """Local search over supports from ``start`` (default: the linearisation's support),
    restarted from random supports; the meter's best plan (`surco.methods.search_from`)."""
    return search_from(
        start or heuristic(lambda y: linearisation_plan(y, config)[:, 1], name="linearisation"),
        lambda y, z0: Cardinality(check_instance(y), *config.sizes(check_instance(y))),
        kind=kind, restart=lambda y, rng: random_support(check_instance(y), config, rng),
        space=lambda y, meter: SupportSpace(y, config, meter),
        fallback=lambda y: polish(linearisation_plan(y, config), y, config))


def baselines_for(config: PortfolioConfig) -> tuple[dict, surco.family.Method]:
    """The baselines and the exact method for one config, as harness methods (see the
    module docstring)."""
    support = heuristic(lambda y: linearisation_plan(y, config)[:, 1], name="linearisation")

    def scip_plan(y: Instance, seconds: float) -> np.ndarray:
        return scip_portfolio(y, config, mode="full", time_limit=seconds).X

    def exact_plan(y: Instance, seconds: float) -> np.ndarray:
        res = scip_portfolio(y, config, mode="full", time_limit=seconds)
        if res.status != "optimal":
            raise SolverError(f"portfolio exact: SCIP did not prove optimality within "
                              f"{res.seconds:.3g} s (status {res.info['status']!r}, gap "
                              f"{res.info['gap']:.3g})")
        return res.X

    baselines = {
        "random": heuristic(lambda y: random_feasible(y, config, num=20, seed=0).X,
                            name="random"),
        "linearisation": heuristic(lambda y: polish(linearisation_plan(y, config), y, config),
                                   name="linearisation"),
        "local-search-first": _support_search(config, "first", support),
        "local-search-steepest": _support_search(config, "steepest", support),
        "annealing": annealing_from(
            support, lambda y, z0: Cardinality(check_instance(y), *config.sizes(check_instance(y))),
            space=lambda y, meter: SupportSpace(y, config, meter),
            fallback=lambda y: polish(linearisation_plan(y, config), y, config)),
        "scip": time_limited(scip_plan, name="scip")}
    return baselines, time_limited(exact_plan, score=False, name="exact")


def surco_search_method(family: surco.Family, config: PortfolioConfig, *, share: float = 0.5,
                        strategy: str = "first") -> surco.family.Method:
    """SurCo-zero on ``share`` of the meter's budget, then local search over supports
    (swap / add / drop, each support scored by its optimised weights, as the family's
    ``local-search-*`` baselines) started from SurCo's best support, on the rest, with the
    same restarts. Under an unlimited budget SurCo-zero runs its own steps and one local
    search follows to a local optimum.

    Args:
      family: a portfolio family (its SurCo-zero settings and problem).
      config: the family's config.
      share: fraction in (0, 1) of the seconds and evaluations left for SurCo-zero.
      strategy: "first" or "steepest" improvement.

    Returns:
      a harness `surco.family.Method` ``(instance, meter) -> plan``.

    Raises:
      ValueError: share outside (0, 1) or an unknown strategy.
    """
    if not (isinstance(share, (int, float)) and 0 < share < 1):
        raise ValueError(f"surco_search_method: share must lie in (0, 1), got {share!r}")
    if strategy not in ("first", "steepest"):
        raise ValueError(f"surco_search_method: strategy must be 'first' or 'steepest', got "
                         f"{strategy!r}")

    def surco_support(y: Instance, meter: Meter) -> np.ndarray:
        if meter.best_x is None:
            return linearisation_plan(y, config)[:, 1]
        return np.asarray(meter.best_x)[:, 1]

    search = _support_search(config, strategy, surco_support)

    def method(y, meter):
        ev, sec = meter.remaining_evaluations(), meter.remaining_seconds()
        child = Budget(evaluations=max(1, int(share * ev)) if math.isfinite(ev) else None,
                       seconds=max(1e-3, share * sec) if math.isfinite(sec) else None
                       ).start(meter, evaluate_batch=meter.batch)
        kw = dict(family.zero_settings)
        init = kw.pop("init", "random")
        kw["select"] = "evaluate"   # each new plan is one evaluation, through the meter
        if child.budget.evaluations is not None:
            kw["steps"] = max(int(kw.get("steps", 100)), 4 * child.budget.evaluations)
        if child.budget.seconds is not None:
            kw["time_limit"] = child.budget.seconds
        problem = dataclasses.replace(family.problem(y), evaluate=lambda x, _y: child(x))
        try:
            surco.zero(problem, y, init=init(y) if callable(init) else init, **kw)
        except BudgetExhausted:
            pass
        return search(y, meter)
    method.__doc__ = f"SurCo-zero on {share:g} of the budget, then local search ({strategy})."
    return method
