"""Method combinators: the baselines of every family, built from a few pieces that carry one
budget policy, so that "equal time" and "equal evaluations" mean the same in every family.

A harness method (`surco.family.Method`) is ``method(instance, meter) -> x``: it returns a
feasible x and evaluates the true cost only through its `surco.budget.Meter`. The
combinators build such methods:

* `heuristic(fn)`: ``fn(instance) -> x``, one construction that does not look at the true
  cost (a greedy, a linearisation); ``score=True`` evaluates its x once through the meter;
* `search_from(start, neighbourhood, kind=...)`: local search from ``start``'s x
  (steepest descent or first improvement, Papadimitriou & Steiglitz 1982, ch. 19),
  optionally restarted from ``restart(instance, rng)`` while the budget lasts;
* `annealing_from(start, neighbourhood)`: simulated annealing from ``start``'s x
  (Kirkpatrick, Gelatt & Vecchi, Science 220, 1983), cooled over the meter's budget, or over
  ``evaluations`` when the meter has none;
* `time_limited(solve)`: an exact or anytime solver (SCIP) ``solve(instance, seconds) -> x``
  whose time limit is `solver_time_limit` of the meter: the one rule for every solver that
  is handed the time left.

The one time policy (`solver_time_limit`): a solver started with ``left`` seconds on the
meter's clock gets ``max(SOLVER_SHARE · left − SOLVER_MARGIN, SOLVER_MIN_SECONDS)`` seconds,
so that it stops before the deadline with time to return and score its answer;
``default_seconds`` (`SOLVER_DEFAULT_SECONDS` unless the method says otherwise) when the
meter has no deadline. No family computes a time limit of its own.

The one answer policy: a search or annealing method returns the best x its meter has
evaluated (every evaluation on that meter is the method's own), else its ``fallback``
(default: the start's x) when the budget ended before anything was evaluated.

    >>> import numpy as np
    >>> from surco.budget import Budget
    >>> from surco.search import Cardinality
    >>> w = np.array([3.0, 1.0, 2.0, 0.5])
    >>> first_two = heuristic(lambda y: np.array([1.0, 1.0, 0.0, 0.0]))
    >>> method = search_from(first_two, Cardinality(4, 2, 2), kind="steepest")
    >>> meter = Budget(evaluations=50).start(lambda z: float(w @ z))
    >>> method(None, meter), meter.best_value
    (array([0., 1., 0., 1.]), 1.5)
    >>> solver_time_limit(Budget(seconds=10.0).start(len, clock=lambda: 0.0))
    9.45
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Protocol

import numpy as np

from surco.budget import Budget, BudgetExhausted, Meter
from surco.search import Neighbourhood, local_search, simulated_annealing

__all__ = ["heuristic", "search_from", "annealing_from", "time_limited", "TimeLimited",
           "solver_time_limit", "iterations_for", "bounded", "SearchSpace",
           "SOLVER_DEFAULT_SECONDS", "SOLVER_SHARE", "SOLVER_MARGIN", "SOLVER_MIN_SECONDS",
           "ANNEAL_DEFAULT_EVALUATIONS", "RESTART_IDLE", "SEARCH_KINDS"]

#: A solver's time limit when its meter has no deadline (seconds).
SOLVER_DEFAULT_SECONDS = 60.0
#: Share of the seconds left that a solver gets, ...
SOLVER_SHARE = 0.95
#: ... less this margin (seconds) to return and score its answer, ...
SOLVER_MARGIN = 0.05
#: ... and never less than this (a solver needs a positive limit; past the deadline it
#: returns its start or first incumbent, which the harness scores).
SOLVER_MIN_SECONDS = 0.05
#: Evaluations annealing spends when its meter has no budget (it cools over its budget).
ANNEAL_DEFAULT_EVALUATIONS = 2000
#: Restarts in a row that needed no new evaluation (all their points cached) after which a
#: restarted search stops: it has seen what it can reach.
RESTART_IDLE = 20
#: The local-search strategies of `search_from` (`surco.search.local_search`).
SEARCH_KINDS = ("steepest", "first")

Method = Callable[[Any, Meter], np.ndarray]


def solver_time_limit(meter: Meter, default_seconds: float = SOLVER_DEFAULT_SECONDS) -> float:
    """The time limit (seconds) of a solver started now on ``meter``'s budget: the one rule
    of every time-limited method (see the module docstring).

    ``max(SOLVER_SHARE · left − SOLVER_MARGIN, SOLVER_MIN_SECONDS)`` with ``left =
    meter.remaining_seconds()`` (charged seconds, so a budget with ``eval_cost`` is honoured);
    ``default_seconds`` when the meter has no deadline.

    Raises:
      ValueError: default_seconds is not a positive finite number.
    """
    if isinstance(default_seconds, bool) or not isinstance(default_seconds, (int, float)) \
            or not math.isfinite(default_seconds) or default_seconds <= 0:
        raise ValueError(f"solver_time_limit: default_seconds must be positive finite seconds, "
                         f"got {default_seconds!r}")
    left = meter.remaining_seconds()
    if math.isinf(left):
        return float(default_seconds)
    return max(SOLVER_SHARE * left - SOLVER_MARGIN, SOLVER_MIN_SECONDS)


def iterations_for(meter: Meter, default: int) -> int:
    """Iterations of a method that makes one evaluation per iteration (a gradient method):
    the meter's evaluation budget when it has one, ``default`` when it has no budget at
    all, and no limit (1e9) when only its seconds bound it (the meter stops it)."""
    b = meter.budget
    if b.evaluations is not None:
        return int(b.evaluations)
    return int(default) if b.seconds is None else 10 ** 9


def bounded(meter: Meter, evaluations: int | None) -> Meter:
    """``meter`` itself when its budget is finite (or ``evaluations`` is None); otherwise a
    child meter of ``evaluations`` evaluations whose evaluations go through ``meter`` (so
    they are counted, cached and kept there too). For methods that need a finite budget
    (annealing cools over it)."""
    if evaluations is None or not meter.budget.unlimited:
        return meter
    return Budget(evaluations=int(evaluations)).start(meter, evaluate_batch=meter.batch)


class SearchSpace(Protocol):
    """Where a search runs when it is not x itself (``space=`` of `search_from` and
    `annealing_from`): ``meter(default_evaluations)`` gives the meter the search draws on
    (evaluating a point of the search space through the method's meter, e.g. a portfolio's
    support scored by the plan of its optimised weights), ``default_evaluations`` being the
    budget to use when the method's meter has none (None: unlimited)."""

    def meter(self, default_evaluations: int | None = None) -> Meter: ...


@dataclasses.dataclass
class _Direct:
    """The default search space: x itself, on the method's own meter."""

    parent: Meter

    def meter(self, default_evaluations: int | None = None) -> Meter:
        return bounded(self.parent, default_evaluations)


def _check_callable(v: Any, name: str, where: str, form: str) -> None:
    if not callable(v):
        raise TypeError(f"{where}: {name} must be callable {form}, got {type(v).__name__}")


def _neighbourhood_fn(nb: Any, where: str) -> Callable[[Any, np.ndarray], Neighbourhood]:
    if isinstance(nb, Neighbourhood):
        return lambda y, x0: nb
    _check_callable(nb, "neighbourhood", where,
                    "(instance, x0) -> surco.search.Neighbourhood, or a Neighbourhood")
    return nb


def _answer(meter: Meter, fallback: Callable[[Any], np.ndarray] | None, y: Any,
            x0: np.ndarray | None) -> np.ndarray:
    """The one answer policy: the meter's best x, else the fallback's, else the start."""
    if meter.best_x is not None:
        return meter.best_x
    if fallback is not None:
        return fallback(y)
    if x0 is None:
        raise BudgetExhausted("the budget ran out before the start was found")
    return x0


def _start(start: Method, y: Any, meter: Meter) -> np.ndarray | None:
    try:
        return np.asarray(start(y, meter))
    except BudgetExhausted:
        return None


def heuristic(fn: Callable[[Any], np.ndarray], *, score: bool = False,
              name: str | None = None) -> Method:
    """A construction heuristic ``fn(instance) -> x`` as a harness method.

    Args:
      fn: the heuristic; it must return a feasible x and does not see the meter.
      score: evaluate x once through the meter (past the budget it is returned unscored;
        the harness scores it). False: no evaluation (the harness scores x once at the end).
      name: the method's ``__name__`` (default: fn's).

    Raises:
      TypeError: fn is not callable.
    """
    _check_callable(fn, "fn", "heuristic", "instance -> x")

    def method(y: Any, meter: Meter) -> np.ndarray:
        x = fn(y)
        if score:
            try:
                meter(x)
            except BudgetExhausted:
                pass
        return x

    method.__name__ = name or getattr(fn, "__name__", "heuristic")
    method.__doc__ = fn.__doc__
    return method


def search_from(start: Method, neighbourhood: Any, *, kind: str = "steepest",
                restart: Callable[[Any, np.random.Generator], np.ndarray] | None = None,
                space: Callable[[Any, Meter], SearchSpace] | None = None,
                fallback: Callable[[Any], np.ndarray] | None = None, seed: int = 0,
                chunk: int = 32, rank: Callable[[Any], Callable] | None = None,
                max_idle: int = RESTART_IDLE) -> Method:
    """Local search from a start, as a harness method (`surco.search.local_search`).

    Steepest descent (``kind="steepest"``: the whole neighbourhood scored in one
    ``meter.batch`` call, the best improving move taken) or first improvement (``"first"``:
    ``chunk`` neighbours per batch in a random order, or in the order of ``rank``), to a
    local optimum (Papadimitriou & Steiglitz, *Combinatorial Optimization*, 1982, ch. 19).
    With ``restart``, the search starts again from ``restart(instance, rng)`` after each
    local optimum while the budget lasts (multi-start local search; one descent under an
    unlimited budget), and stops after ``max_idle`` restarts in a row that found nothing new.

    Args:
      start: a method ``(instance, meter) -> x0`` (e.g. `heuristic(fn)`), called with the
        method's meter (a start that scores candidates spends from it).
      neighbourhood: a `surco.search.Neighbourhood`, or ``(instance, x0) ->
        Neighbourhood`` (called once per run, with the start's x).
      kind: "steepest" or "first".
      restart: ``(instance, rng) -> x`` a random start, or None (one descent).
      space: ``(instance, meter) -> SearchSpace`` when the search runs over another space
        than x (see `SearchSpace`); its ``meter()`` is taken afresh for every descent.
      fallback: ``instance -> x`` returned when the budget ends before anything was
        evaluated (default: the start's x).
      seed: seed of the generator shared by the scan order and the restarts.
      chunk: neighbours per batch for "first".
      rank: ``instance -> ranker`` for "first" (`local_search` ``rank``), or None.
      max_idle: see above.

    Returns:
      the method: it returns the best x its meter evaluated (the one answer policy).

    Raises:
      TypeError: start, restart, space, fallback or rank not callable; a neighbourhood
        that is neither. ValueError: an unknown kind (naming the kinds).
    """
    where = "search_from"
    _check_callable(start, "start", where, "(instance, meter) -> x")
    if kind not in SEARCH_KINDS:
        raise ValueError(f"{where}: kind must be one of {SEARCH_KINDS}, got {kind!r}")
    for v, nm in ((restart, "restart"), (space, "space"), (fallback, "fallback"),
                  (rank, "rank")):
        if v is not None:
            _check_callable(v, nm, where, "or None")
    nb_of = _neighbourhood_fn(neighbourhood, where)

    def method(y: Any, meter: Meter) -> np.ndarray:
        x0 = _start(start, y, meter)
        if x0 is None:
            return _answer(meter, fallback, y, None)
        nb = nb_of(y, x0)
        sp = _Direct(meter) if space is None else space(y, meter)
        rng = np.random.default_rng(seed)
        opts: dict[str, Any] = {"strategy": kind, "rng": rng, "chunk": chunk}
        if rank is not None:
            opts["rank"] = rank(y)
        first, idle = x0, 0
        while True:
            n_before = meter.evaluations
            try:
                res = local_search(x0, sp.meter(None), nb, **opts)
            except BudgetExhausted:
                break
            idle = idle + 1 if meter.evaluations == n_before else 0
            if restart is None or res.stopped == "budget" or meter.budget.unlimited \
                    or meter.exhausted or idle >= max_idle:
                break
            x0 = restart(y, rng)
        return _answer(meter, fallback, y, first)

    method.__name__ = f"local_search_{kind}"
    origin = getattr(start, "__name__", "a start")
    method.__doc__ = (f"Local search ({kind} improvement) from {origin}"
                      + (", restarted while the budget lasts" if restart is not None else "")
                      + " (surco.methods.search_from).")
    return method


def annealing_from(start: Method, neighbourhood: Any, *,
                   evaluations: int | Callable[[Any], int] = ANNEAL_DEFAULT_EVALUATIONS,
                   space: Callable[[Any, Meter], SearchSpace] | None = None,
                   fallback: Callable[[Any], np.ndarray] | None = None, seed: int = 0,
                   **options: Any) -> Method:
    """Simulated annealing from a start, as a harness method
    (`surco.search.simulated_annealing`: Kirkpatrick, Gelatt & Vecchi, Science 220, 1983;
    Metropolis acceptance, geometric cooling over the meter's budget).

    Args:
      start, neighbourhood, space, fallback, seed: as in `search_from`.
      evaluations: the budget annealing cools over when the meter has none (an int, or
        ``instance -> int``); the evaluations go through the method's meter.
      **options: further keywords of `simulated_annealing` (``t0``, ``max_stall``, ...).

    Returns:
      the method (the one answer policy: the best x its meter evaluated).

    Raises:
      TypeError: as in `search_from`; ValueError: evaluations not a positive int.
    """
    where = "annealing_from"
    _check_callable(start, "start", where, "(instance, meter) -> x")
    for v, nm in ((space, "space"), (fallback, "fallback")):
        if v is not None:
            _check_callable(v, nm, where, "or None")
    if not callable(evaluations) and (isinstance(evaluations, bool) or not isinstance(
            evaluations, (int, np.integer)) or evaluations < 1):
        raise ValueError(f"{where}: evaluations must be an int >= 1 or instance -> int, "
                         f"got {evaluations!r}")
    nb_of = _neighbourhood_fn(neighbourhood, where)

    def method(y: Any, meter: Meter) -> np.ndarray:
        x0 = _start(start, y, meter)
        if x0 is None:
            return _answer(meter, fallback, y, None)
        sp = _Direct(meter) if space is None else space(y, meter)
        n = int(evaluations(y) if callable(evaluations) else evaluations)
        try:
            simulated_annealing(x0, sp.meter(n), nb_of(y, x0), rng=seed, **options)
        except BudgetExhausted:   # spent before the start was evaluated
            pass
        return _answer(meter, fallback, y, x0)

    method.__name__ = "annealing"
    method.__doc__ = (f"Simulated annealing from {getattr(start, '__name__', 'a start')}, "
                      "cooled over the budget (surco.methods.annealing_from).")
    return method


@dataclasses.dataclass(frozen=True)
class TimeLimited:
    """A solver run with the time the meter has left (made by `time_limited`).

    Attributes:
      solve: ``(instance, seconds) -> x``; seconds from `solver_time_limit`.
      default_seconds: the limit when the meter has no deadline.
      score: evaluate the answer once through the meter (past the budget it is returned
        unscored).
      name: the method's name.
    """

    solve: Callable[[Any, float], np.ndarray]
    default_seconds: float = SOLVER_DEFAULT_SECONDS
    score: bool = True
    name: str = "time_limited"

    def __call__(self, instance: Any, meter: Meter) -> np.ndarray:
        x = self.solve(instance, solver_time_limit(meter, self.default_seconds))
        if self.score:
            try:
                meter(x)
            except BudgetExhausted:   # the solver used all the time: x is still its answer
                pass
        return x

    @property
    def __name__(self) -> str:   # noqa: A003 (methods are named in reports)
        return self.name


def time_limited(solve: Callable[[Any, float], np.ndarray], *,
                 default_seconds: float = SOLVER_DEFAULT_SECONDS, score: bool = True,
                 name: str | None = None) -> TimeLimited:
    """A solver with a time limit (SCIP on the true objective, an exact method) as a harness
    method: ``solve(instance, seconds) -> x`` is called with `solver_time_limit` of the meter
    (``default_seconds`` without a deadline), the one time policy of every family.

    A solver evaluates the objective inside its own search (algebraically): only the x it
    returns is evaluated through the meter, once (``score``; an exact method that is the
    reference, not a competitor, may pass ``score=False``).

    Raises:
      TypeError: solve not callable. ValueError: default_seconds not positive.
    """
    _check_callable(solve, "solve", "time_limited", "(instance, seconds) -> x")
    if isinstance(default_seconds, bool) or not isinstance(default_seconds, (int, float)) \
            or not math.isfinite(default_seconds) or default_seconds <= 0:
        raise ValueError(f"time_limited: default_seconds must be positive finite seconds, "
                         f"got {default_seconds!r}")
    return TimeLimited(solve, float(default_seconds), bool(score),
                       name or getattr(solve, "__name__", "time_limited"))
