"""Harness methods built on SurCo-guided large-neighbourhood search (`surco.lns_core`: the
algorithm, with its references) and SurCo variants that share one meter.

Here, as harness methods (``method(instance, meter) -> x``, `surco.family.Method`):

* `lns_method`: the LNS of `surco.lns_core`;
* `polish_method`: SurCo-zero on a share of the budget, then local search
  (`surco.search.local_search`) from SurCo's best x on the rest, on the same meter;
* `multichain_method`: several SurCo-zero chains solved together (one batched solve per
  step), started from the family's initial cost and noisy copies of it.

Measured on sharding (DLRM-50, 4 devices; ``python -m bench.lns --quick``: 5 test tasks,
settings chosen on 3 train-pool tasks with seeds 11+, `bench.lns.TUNING`), mean cost
relative to annealing's under the same budget:

* kept, at equal wall time (SurCo-zero's, ~12 s): `polish_method` with
  ``strategy="annealing", share=0.2`` (SurCo-zero on 20 % of the time, annealing from its
  best plan on the rest): 0.998, better than annealing on 5 of 5 tasks and than local
  search on 5 of 5;
* kept, at 300 evaluations: `polish_method` with local search (first improvement) after
  SurCo-zero on half the budget: 0.992 (SurCo-zero alone 0.995; local search 1.011-1.022).
  The issue's 0.97 is not reached: annealing itself needs ~20 000 evaluations to get 0.971
  below its 300-evaluation cost on train tasks;
* did not pay off: LNS with every new x evaluated (1.000 on train tasks, rows at random or
  by |dL/dθ|); LNS screened by f (``screen=0``): 0.998 at 300 evaluations with only ~50 of
  them spent, since the neighbourhood solves stop proposing f-improving moves after ~1000
  iterations (3000 gave nothing more), and 1.016 at equal wall time (an LNS iteration is
  a solve plus a step, ~10 ms, against ~0.2 ms per annealing move); LNS followed by
  local search (0.996; 1.010 at equal time); growing the neighbourhood when stuck
  (``grow``); multi-chain SurCo-zero with 4 noisy starts (1.000: four chains share the
  300 evaluations, each gets a quarter).

`lns`, `LNSConfig` and `LNSResult` are defined in `surco.lns_core` and re-exported here.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from surco._engine import build_solver
from surco.budget import Budget, BudgetExhausted, Meter
from surco.config import ZeroConfig, check_zero_settings
from surco.driver import zero
from surco.family import Family, Method
from surco.harness import surco_methods
from surco.lns_core import LNS_ZERO, ZERO_UNUSED, LNSConfig, LNSResult, lns, lns_configs
from surco.problem import Instance, Problem, ProblemError
from surco.search import RowChoice, local_search, simulated_annealing
from surco.solvers import LinearSpec

__all__ = ["LNSConfig", "LNSResult", "lns", "lns_method", "polish_method", "multichain_method",
           "gradient_rank"]


def lns_method(family_or_problem: Family | Problem, config: LNSConfig | None = None,
               zero: ZeroConfig | None = None, /, **settings: Any) -> Method:
    """`lns` as a harness `Method` ``(instance, meter) -> x``.

    Args:
      family_or_problem: a `Family` (its ``problem``, and its ``zero_settings`` as SurCo's
        part: estimator, optimiser, init, ...; SurCo-zero's own stopping settings dropped,
        over `surco.lns_core.LNS_ZERO`) or a `Problem`.
      config, zero, **settings: as in `lns`: an `LNSConfig`, a `surco.ZeroConfig` (replacing
        the family's settings) and the fields of either as keywords; ``init`` may be a
        function ``instance -> θ0``. Without ``iterations``, LNS runs ``4 ×`` the meter's
        evaluation budget (most iterations repeat an x and cost nothing) or 300 iterations,
        until the meter's budget or deadline.

    Raises:
      TypeError: family_or_problem is neither, a configuration of the wrong type, or an
        unknown setting (named).
      ValueError: a bad setting (named).
    """
    who = "surco.lns.lns_method"
    if isinstance(family_or_problem, Family):
        fam = family_or_problem
        problem_of = fam.problem
        base = ZeroConfig.of(who, **{**LNS_ZERO, **{k: v for k, v in fam.zero_settings.items()
                                                    if k not in ZERO_UNUSED}})
    elif isinstance(family_or_problem, Problem):
        prob, base = family_or_problem, None
        problem_of = lambda _inst: prob   # noqa: E731
    else:
        raise TypeError(f"{who}: expected a surco.Family or a surco.Problem, got "
                        f"{type(family_or_problem).__name__}")
    cfg, zcfg = lns_configs(config, zero, settings, who, base)   # checked once, here
    fixed_iterations = "iterations" in set(cfg)   # given (the mapping view: given fields)

    def method(instance, meter):
        run = cfg
        if not fixed_iterations and meter.budget.evaluations is not None:
            run = cfg.replace(iterations=4 * int(meter.budget.evaluations))
        return lns(problem_of(instance), instance, meter, run, zcfg).x
    method.__doc__ = "SurCo-guided large-neighbourhood search (surco.lns.lns)."
    return method


def _child(meter: Meter, share: float) -> Meter:
    """A meter on ``share`` of what is left of ``meter``'s budget, evaluating through it."""
    ev = meter.remaining_evaluations()
    sec = meter.remaining_seconds()
    b = Budget(evaluations=max(1, int(share * ev)) if math.isfinite(ev) else None,
               seconds=max(1e-3, share * sec) if math.isfinite(sec) else None)
    return b.start(meter, evaluate_batch=meter.batch)


def _first_solution(problem: Problem, instance: Instance, settings: Mapping[str, Any]) -> np.ndarray:
    """``g_Ω(c0)``: the solver's answer at SurCo's initial cost (``init`` of ``settings``;
    zeros for "random" / "zeros"), the x SurCo-zero's first step would return."""
    init = settings.get("init", "zeros")
    if callable(init):
        init = init(instance)
    space = problem.space_for(instance)
    theta = np.zeros(space.shape) if isinstance(init, str) else np.asarray(init, np.float64)
    c = np.asarray(problem.to_cost(jnp.asarray(theta[None], jnp.float32)), np.float64)[0]
    solver = build_solver(problem, instance, settings.get("backend", "scip"),
                          settings.get("solver_options"))
    return solver.solve(c).x


_GRADIENTS: dict = {}


def gradient_rank(problem: Problem, instance: Instance
                  ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A neighbour ranker for `surco.search.local_search` (``rank=``) from the problem's
    differentiable objective f: ``score(x') = ∇f(x) · (x' − x)``, the first-order estimate
    of ``f(x') − f(x)``, the same gradient SurCo-zero's steps follow. Ranking discrete
    moves by this Taylor estimate is the proposal of Gibbs-with-gradients (Grathwohl et
    al., "Oops I took a gradient", ICML 2021); here it orders a first-improvement scan, so
    that an evaluation budget goes to the moves f predicts to improve most.

    The gradient costs no evaluation of the true cost (it is f's, at an x already
    evaluated). ``f`` is jitted once per problem (cached).

    Returns:
      ``rank(x, X) -> (M,)`` scores for the neighbours ``X`` (M, *x_shape) of ``x``.
    """
    grad = _GRADIENTS.get(problem)
    if grad is None:
        grad = _GRADIENTS[problem] = jax.jit(jax.grad(lambda x, y: problem.f(x, y)))

    def rank(x: np.ndarray, X: np.ndarray) -> np.ndarray:
        g = np.asarray(grad(jnp.asarray(x, jnp.float32), instance), np.float64).ravel()
        if not np.all(np.isfinite(g)):
            raise ProblemError(f"Problem {problem.name!r}: the gradient of f at the current "
                               "x is not finite; gradient_rank needs a finite df/dx")
        D = np.asarray(X, np.float64).reshape(len(X), -1) - np.asarray(x, np.float64).ravel()
        return D @ g
    return rank


def polish_method(family: Family, *, share: float = 0.5, strategy: str = "first",
                  chunk: int = 32, neighbourhood: Callable[[LinearSpec], Any] | None = None,
                  first: Method | None = None, rank: str | None = None,
                  **overrides: Any) -> Method:
    """SurCo-zero on ``share`` of the meter's budget, then a search from its best x on
    the rest, on the same meter: local search (Papadimitriou & Steiglitz 1982, ch. 19) or,
    with ``strategy="annealing"``, simulated annealing (Kirkpatrick et al. 1983) cooled
    over what is left of the budget.

    Args:
      family: the `Family` (its ``zero_settings``, updated with ``overrides``).
      share: fraction in (0, 1) of the evaluations and seconds left that SurCo-zero may
        spend (an unlimited budget: SurCo-zero runs its own steps, local search to a local
        optimum).
      strategy: "first" or "steepest" (`surco.search.local_search`, with ``chunk``) or
        "annealing" (`surco.search.simulated_annealing`; needs a finite budget).
      neighbourhood: ``spec -> surco.search.Neighbourhood`` (default
        `surco.search.RowChoice.from_spec`).
      first: the first stage as a `Method` (e.g. `lns_method`); default SurCo-zero with
        the family's settings and ``overrides``. It runs on a meter holding ``share`` of
        the budget; what it leaves unspent goes to the search.
      rank: None (strategy "first" scans in a random order) or "gradient": scan the
        neighbours by f's first-order estimate (`gradient_rank`).

    Raises:
      ValueError: share outside (0, 1), an unknown strategy or rank, or a rank with a
        strategy other than "first".
      TypeError: an override that `surco.zero` and its estimator do not take (named).
    """
    if strategy not in ("first", "steepest", "annealing"):
        raise ValueError(f"polish_method: strategy must be 'first', 'steepest' or 'annealing', "
                         f"got {strategy!r}")
    if not (isinstance(share, (int, float)) and 0 < share < 1):
        raise ValueError(f"polish_method: share must lie in (0, 1), got {share!r}")
    if rank not in (None, "gradient"):
        raise ValueError(f"polish_method: rank must be None or 'gradient', got {rank!r}")
    if rank is not None and strategy != "first":
        raise ValueError(f"polish_method: rank={rank!r} orders a first-improvement scan; it "
                         f"needs strategy='first', got {strategy!r}")
    settings = {**dict(family.zero_settings), **overrides}
    check_zero_settings("surco.lns.polish_method", settings)
    make_nb = neighbourhood or RowChoice.from_spec
    stage = first if first is not None else surco_methods(family, **overrides)["surco-zero"]

    def method(instance, meter):
        out = None
        try:
            out = stage(instance, _child(meter, share))
        except BudgetExhausted:
            pass
        x0 = meter.best_x
        problem = family.problem(instance)
        if x0 is None:   # the first stage's share ran out before its first evaluation
            x0 = getattr(out, "x", out)
            if x0 is None:
                x0 = _first_solution(problem, instance, settings)
            x0 = np.asarray(x0, np.float64)
            meter(x0)
        spec = problem.space_for(instance)
        if strategy == "annealing":
            if meter.budget.unlimited:
                raise ValueError("polish_method: strategy 'annealing' needs a finite budget "
                                 "(seconds or evaluations)")
            return simulated_annealing(x0, meter, make_nb(spec), rng=0).x
        ranker = None if rank is None else gradient_rank(problem, instance)
        return local_search(x0, meter, make_nb(spec), strategy=strategy, rng=0,
                            chunk=chunk, rank=ranker).x
    method.__doc__ = (f"SurCo-zero on {share:g} of the budget, then local search ({strategy}"
                      + (", moves ranked by ∇f" if rank else "") + ").")
    return method


def multichain_method(family: Family, *, chains: int = 4, spread: float = 0.5, seed: int = 0,
                      **overrides: Any) -> Method:
    """SurCo-zero with ``chains`` chains solved together (`surco.zero` on the instance
    repeated: one batched solve per step), on the meter's budget.

    Chain 0 starts from the family's ``init`` (a function ``instance -> θ0`` or an array);
    chain k > 0 from θ0 plus Gaussian noise whose scale, per row of θ0, is ``spread`` times
    that row's largest |θ0| (its margin). With ``init="random"`` every chain draws its own
    random start. The answer is the best x the meter evaluated.

    Raises:
      ValueError: chains < 1 or spread < 0.
      TypeError: an override that `surco.zero` and its estimator do not take (named).
    """
    if isinstance(chains, bool) or not isinstance(chains, int) or chains < 1:
        raise ValueError(f"multichain_method: chains must be an integer >= 1, got {chains!r}")
    if not (isinstance(spread, (int, float)) and spread >= 0):
        raise ValueError(f"multichain_method: spread must be a number >= 0, got {spread!r}")
    settings = {**dict(family.zero_settings), **overrides}
    check_zero_settings("surco.lns.multichain_method", settings)

    def method(instance, meter):
        problem = family.problem(instance)
        counted = dataclasses.replace(problem, evaluate=lambda x, y: meter(x))
        kw = dict(settings)
        init = kw.pop("init", "random")
        if callable(init):
            init = init(instance)
        if not isinstance(init, str):
            th = np.asarray(init, np.float64)
            rng = np.random.default_rng(seed)
            scale = spread * np.abs(th).reshape(th.shape[0], -1).max(1)
            scale = np.where(scale > 0, scale, spread * max(float(np.abs(th).max()), 1e-3))
            scale = scale.reshape((-1,) + (1,) * (th.ndim - 1))
            init = np.stack([th] + [th + scale * rng.normal(size=th.shape)
                                    for _ in range(chains - 1)])
        kw["select"] = "evaluate"
        if meter.budget.evaluations is not None:
            kw["steps"] = max(int(kw.get("steps", 100)), 4 * int(meter.budget.evaluations))
        if math.isfinite(meter.remaining_seconds()):
            kw["time_limit"] = max(meter.remaining_seconds(), 1e-3)
        try:
            zero(counted, [instance] * chains, init=init, **kw)
        except BudgetExhausted:
            pass
        if meter.best_x is None:
            raise BudgetExhausted("multichain: the budget was spent before any x was evaluated")
        return meter.best_x
    method.__doc__ = f"SurCo-zero with {chains} chains solved together."
    return method
