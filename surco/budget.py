"""Budgets for comparing methods fairly: seconds, evaluations of the objective, or both.

A `Budget` says how much a method may spend on one instance; a `Meter` is the live account a
method draws on. Every method in the comparison harness (`surco.compare`), SurCo included,
evaluates the true cost only through its meter, so that evaluations are counted the same way
for all of them:

* one *evaluation* is the true cost of one distinct solution x (a profiler run, a simulation,
  or the objective itself). The meter caches values by x, so asking again for an x already
  measured is free, as it is with the profiler's on-disk cache;
* asking for a new evaluation past the budget, or after the deadline, raises
  `BudgetExhausted`; the meter keeps the best feasible x it has seen, so a method that is cut
  off still has an answer;
* the meter records the anytime curve (evaluations, seconds, best value so far);
* ``eval_cost=s`` models an *expensive* objective without waiting for one: every distinct
  evaluation is charged s seconds of simulated time on top of the real time, so the meter's
  clock (`Meter.elapsed`, the deadline, the curve's seconds) reads
  ``real seconds + s × evaluations``, the same for every method. "As if f cost 100 ms"
  then runs in the time the methods themselves take. Past the (charged) deadline every
  call raises, cached x included, so a method that repeats x cannot outrun its budget.

    >>> import numpy as np
    >>> m = Budget(evaluations=2).start(lambda x: float(np.sum(x)))
    >>> m(np.array([1.0, 2.0])), m(np.array([0.0, 1.0])), m(np.array([1.0, 2.0]))
    (3.0, 1.0, 3.0)
    >>> m.evaluations, m.best_value
    (2, 1.0)
    >>> m(np.array([5.0, 5.0]))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    surco.budget.BudgetExhausted: evaluation budget of 2 spent

With ``eval_cost`` (here on a clock that stands still, so only the charges count):

    >>> m = Budget(seconds=1.0, eval_cost=0.25).start(lambda x: float(x[0]), clock=lambda: 0.0)
    >>> [m(np.array([float(i)])) for i in range(4)], m.elapsed()
    ([0.0, 1.0, 2.0, 3.0], 1.0)
    >>> m(np.array([9.0]))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    surco.budget.BudgetExhausted: time budget of 1 s spent
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from typing import Callable

import numpy as np

__all__ = ["Budget", "Meter", "BudgetExhausted", "plan_key"]


class BudgetExhausted(Exception):
    """A method asked for an evaluation past its budget (count or deadline).

    Not an error: methods and the harness catch it and keep the meter's best-so-far."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """What one method may spend on one instance.

    Args:
      seconds: seconds on the meter's clock (None: unlimited): wall seconds, compilation and
        set-up included, plus ``eval_cost`` per evaluation.
      evaluations: distinct solutions whose true cost is evaluated (None: unlimited).
      eval_cost: simulated seconds charged for each distinct evaluation (a cache hit is
        free), added to the real time on the meter's clock: the budget behaves as if the
        objective took that long (default 0: real time only).

    Raises:
      ValueError: a limit that is not a positive number, or an eval_cost that is not a
        finite number >= 0 (naming which).
    """

    seconds: float | None = None
    evaluations: int | None = None
    eval_cost: float = 0.0

    def __post_init__(self):
        if self.seconds is not None:
            if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) \
                    or not math.isfinite(self.seconds) or self.seconds <= 0:
                raise ValueError(f"Budget: seconds must be a positive finite number or None, "
                                 f"got {self.seconds!r}")
        if self.evaluations is not None:
            if isinstance(self.evaluations, bool) or not isinstance(self.evaluations, (int, np.integer)) \
                    or self.evaluations < 1:
                raise ValueError(f"Budget: evaluations must be a positive integer or None, "
                                 f"got {self.evaluations!r}")
        c = self.eval_cost
        if isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating)) \
                or not math.isfinite(c) or c < 0:
            raise ValueError(f"Budget: eval_cost must be a finite number of seconds >= 0 per "
                             f"evaluation, got {self.eval_cost!r}")
        object.__setattr__(self, "eval_cost", float(self.eval_cost))

    @property
    def unlimited(self) -> bool:
        return self.seconds is None and self.evaluations is None

    def start(self, evaluate: Callable[[np.ndarray], float],
              feasible: Callable[[np.ndarray], bool] | None = None,
              evaluate_batch: Callable[[np.ndarray], np.ndarray] | None = None,
              clock: Callable[[], float] | None = None) -> "Meter":
        """A fresh `Meter` over ``evaluate`` (x -> true cost), its clock started now (see
        `Meter` for ``clock``)."""
        return Meter(evaluate, self, feasible, evaluate_batch, clock)

    def describe(self) -> str:
        """The budget in words, e.g. "10 s and 300 evaluations, 0.1 s charged per evaluation"."""
        parts = []
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        if self.evaluations is not None:
            parts.append(f"{self.evaluations} evaluations")
        out = " and ".join(parts) or "unlimited"
        if self.eval_cost > 0:
            out += f", {self.eval_cost:g} s charged per evaluation"
        return out


def plan_key(x: np.ndarray) -> bytes:
    """The meter's cache key of x: its shape and a 128-bit BLAKE2b digest of its float64
    bytes (a collision is as likely as guessing a 128-bit key). Not the bytes themselves: a
    plan of 800 tables on 128 devices is 800 KB, and a meter caching tens of thousands of
    them ran a 24 GB machine out of memory."""
    a = np.ascontiguousarray(np.asarray(x, np.float64))
    return a.shape.__repr__().encode() + hashlib.blake2b(a.tobytes(), digest_size=16).digest()


class Meter:
    """The live account of one method on one instance (see the module docstring).

    Call it as ``meter(x) -> float`` to evaluate the true cost of x, or
    ``meter.batch(X) -> values`` for many (one call of ``evaluate_batch`` when given, each
    distinct new x counted once).

    The clock: ``clock()`` (default `time.perf_counter`) gives the real seconds; a meter
    over another meter (``evaluate`` is a `Meter`, e.g. a share of what is left of a
    method's budget) reads its parent's `elapsed` instead, so that the parent's charged
    evaluations count on the child's clock too (and are charged once, by the parent: such a
    child must have ``eval_cost`` 0). `elapsed` adds ``budget.eval_cost`` per evaluation.

    Attributes:
      budget: the `Budget`; evaluations: distinct x evaluated so far; calls: all calls
      (cache hits included); best_x / best_value: the best feasible x evaluated (None / inf
      before the first); curve: ``[(evaluations, seconds, best_value), ...]``, one point per
      improvement, its seconds those of `elapsed`; infeasible: evaluated x that the
      feasibility check rejected.

    Raises:
      TypeError: evaluate or clock is not callable.
      ValueError: a meter over a meter whose budget has an eval_cost (it would be charged
        twice).
    """

    def __init__(self, evaluate: Callable[[np.ndarray], float], budget: Budget,
                 feasible: Callable[[np.ndarray], bool] | None = None,
                 evaluate_batch: Callable[[np.ndarray], np.ndarray] | None = None,
                 clock: Callable[[], float] | None = None):
        if not callable(evaluate):
            raise TypeError(f"Meter: evaluate must be callable x -> float, got {type(evaluate).__name__}")
        if clock is not None and not callable(clock):
            raise TypeError(f"Meter: clock must be callable () -> seconds, got "
                            f"{type(clock).__name__}")
        if clock is None and isinstance(evaluate, Meter):
            if budget.eval_cost > 0:
                raise ValueError(f"Meter: a meter over another meter reads that meter's clock, "
                                 f"which charges its evaluations already; its budget's "
                                 f"eval_cost must be 0, got {budget.eval_cost:g}")
            clock = evaluate.elapsed
        self._clock = clock if clock is not None else time.perf_counter
        self.budget = budget
        self._evaluate = evaluate
        self._feasible = feasible
        self._evaluate_batch = evaluate_batch
        self._cache: dict[bytes, float] = {}
        self.t0 = self._clock()
        self.evaluations = 0
        self.calls = 0
        self.infeasible = 0
        self.best_x: np.ndarray | None = None
        self.best_value = math.inf
        self.curve: list[tuple[int, float, float]] = []

    # -- the clock -------------------------------------------------------------------------
    def real_seconds(self) -> float:
        """Real seconds since the meter started (on its clock, charges not included)."""
        return self._clock() - self.t0

    def times(self) -> tuple[float, float]:
        """``(real seconds, elapsed seconds)`` read at one instant: elapsed is real + the
        budget's ``eval_cost`` × `evaluations`, exactly."""
        real = self.real_seconds()
        return real, real + self.budget.eval_cost * self.evaluations

    def elapsed(self) -> float:
        """Seconds since the meter started, as charged: real seconds + ``eval_cost`` ×
        evaluations. Every deadline of the budget is on this clock."""
        return self.times()[1]

    def remaining_seconds(self) -> float:
        """Charged seconds left (inf without a time limit; may be negative once past the
        deadline). A method handing it to a solver as a time limit gets a limit that is
        never too short; the meter stops it at the charged deadline on its next call."""
        if self.budget.seconds is None:
            return math.inf
        return self.budget.seconds - self.elapsed()

    def remaining_evaluations(self) -> float:
        """Evaluations left (inf without a limit)."""
        if self.budget.evaluations is None:
            return math.inf
        return self.budget.evaluations - self.evaluations

    @property
    def exhausted(self) -> bool:
        """True once no new evaluation may be made."""
        return self.remaining_evaluations() <= 0 or self.remaining_seconds() <= 0

    def check(self) -> None:
        """Raise `BudgetExhausted` if the budget is spent (for methods that poll)."""
        if self.remaining_evaluations() <= 0:
            raise BudgetExhausted(f"evaluation budget of {self.budget.evaluations} spent")
        self._check_time()

    def _check_time(self) -> None:
        if self.remaining_seconds() <= 0:
            raise BudgetExhausted(self._time_spent())

    def _time_spent(self) -> str:
        b = self.budget
        charged = f" ({b.eval_cost:g} s charged per evaluation)" if b.eval_cost > 0 else ""
        return f"time budget of {b.seconds:g} s spent{charged}"

    # -- evaluations -----------------------------------------------------------------------
    def cached(self, x: np.ndarray) -> float | None:
        """The value of x if it was evaluated already (free), else None."""
        return self._cache.get(plan_key(x))

    def __call__(self, x: np.ndarray) -> float:
        """The true cost of x: from the cache (free), or one new evaluation.

        Raises:
          BudgetExhausted: x is new and the budget is spent, or the time budget is spent
            (cached x too: a method past its deadline is stopped however it asks).
          ValueError: the evaluation returned a non-finite value.
        """
        self.calls += 1
        k = plan_key(x)
        v = self._cache.get(k)
        if v is not None:
            self._check_time()
            return v
        self.check()
        v = float(self._evaluate(np.asarray(x)))
        self._record(k, x, v)
        return v

    def batch(self, X: np.ndarray) -> np.ndarray:
        """True costs of the solutions ``X[0], X[1], ...``: cached ones free, the new ones
        in one ``evaluate_batch`` call (or one by one without it), in order.

        Under ``eval_cost`` s and a time limit, the new x taken are those that start before
        the charged deadline, as if evaluated one after another: ceil(remaining seconds / s).

        Raises:
          BudgetExhausted: after evaluating (and recording) as many new x, in order, as the
            budget allowed, if some were left; at once when the time budget is spent.
        """
        X = np.asarray(X)
        self.calls += len(X)
        keys = [plan_key(x) for x in X]
        out = np.array([self._cache.get(k, np.nan) for k in keys], np.float64)
        new, seen = [], set()
        for i, k in enumerate(keys):
            if k not in self._cache and k not in seen:
                seen.add(k)
                new.append(i)
        if not new:
            self._check_time()
            return out
        self.check()
        room = self.remaining_evaluations()
        if self.budget.eval_cost > 0 and self.budget.seconds is not None:
            room = min(room, math.ceil(self.remaining_seconds() / self.budget.eval_cost))
        take = new if room >= len(new) else new[:int(room)]
        if self._evaluate_batch is not None:
            vals = np.asarray(self._evaluate_batch(X[take]), np.float64).reshape(-1)
            if vals.shape != (len(take),):
                raise ValueError(f"Meter: evaluate_batch returned {vals.shape[0]} values for "
                                 f"{len(take)} solutions")
        else:
            vals = [float(self._evaluate(X[i])) for i in take]
        for i, v in zip(take, vals):
            self._record(keys[i], X[i], float(v))
        if len(take) < len(new):
            self.check()
            raise BudgetExhausted(self._time_spent())
        for i, k in enumerate(keys):
            out[i] = self._cache[k]
        return out

    def _record(self, k: bytes, x: np.ndarray, v: float) -> None:
        if not math.isfinite(v):
            raise ValueError(f"Meter: the true cost of a solution is {v} (evaluation "
                             f"{self.evaluations + 1}); evaluate must return a finite number")
        self.evaluations += 1
        self._cache[k] = v
        ok = True if self._feasible is None else bool(self._feasible(np.asarray(x)))
        if not ok:
            self.infeasible += 1
        elif v < self.best_value:
            self.best_value, self.best_x = v, np.array(x, copy=True)
            self.curve.append((self.evaluations, self.elapsed(), v))
