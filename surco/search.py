"""Non-learned search baselines: local search and simulated annealing over a neighbourhood.

These are what a practitioner tries before a learned surrogate, so every SurCo comparison
puts them next to it. They evaluate the true cost only through a `surco.budget.Meter`
(``meter(x)`` / ``meter.batch(X)``), so they honour the same budgets, in seconds or in
evaluations of f, as every other method.

The neighbourhoods of Ω they move in live in `surco.neighbourhoods` (`RowChoice`: one choice
per row under linear rows; `Cardinality`: a selection of bounded size; the `Neighbourhood`
interface for new ones) and are importable from here too:

    >>> import numpy as np
    >>> from surco.budget import Budget
    >>> nb = Cardinality(4, 2, 2)
    >>> z0 = np.array([1.0, 1.0, 0.0, 0.0])
    >>> nb.neighbours(z0).shape          # 2 selected x 2 unselected swaps
    (4, 4)
    >>> w = np.array([3.0, 1.0, 2.0, 0.5])
    >>> meter = Budget(evaluations=100).start(lambda z: float(w @ z))
    >>> res = local_search(z0, meter, nb, strategy="steepest")
    >>> res.x, res.value, res.local_optimum, res.stopped
    (array([0., 1., 0., 1.]), 1.5, True, <StopReason.LOCAL_OPTIMUM: 'local optimum'>)

The searches: `local_search` (steepest descent or first improvement, to a local optimum,
Papadimitriou & Steiglitz 1982, ch. 19) and `simulated_annealing` (Kirkpatrick, Gelatt &
Vecchi, Science 220, 1983) with geometric cooling spread over the meter's budget.

A search cut off by its budget returns the best x it evaluated (``meter.best_x`` for a meter
it started on); Ctrl-C propagates (``KeyboardInterrupt``) and the meter keeps the best x.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from surco.budget import BudgetExhausted, Meter
from surco.neighbourhoods import Cardinality, Neighbourhood, RowChoice, as_rng
from surco.outcome import StopReason

__all__ = ["Neighbourhood", "RowChoice", "Cardinality", "SearchResult", "local_search",
           "simulated_annealing", "budget_progress"]


@dataclasses.dataclass
class SearchResult:
    """Outcome of `local_search` or `simulated_annealing`.

    Attributes:
      x: the best x the search evaluated (a copy).
      value: its true cost (from the meter).
      local_optimum: True when no feasible neighbour of x is better (local search that ran to
        its end; False when cut off by the budget, and always False for annealing).
      iterations: moves made (local search) or neighbours proposed (annealing).
      stopped: why it stopped, a `surco.outcome.StopReason` (a str): LOCAL_OPTIMUM, BUDGET,
        ITERATIONS (``max_iterations`` moves made), NO_NEIGHBOURS (x has no feasible
        neighbour) or STALLED (annealing saw nothing new).
      accepted: moves accepted (annealing; equals iterations for local search).
    """

    x: np.ndarray
    value: float
    local_optimum: bool
    iterations: int
    stopped: StopReason
    accepted: int = 0


class _Best:
    """The best x this search has evaluated (a meter may hold points from other methods)."""

    def __init__(self, x: np.ndarray, v: float):
        self.x, self.v = np.array(x, copy=True), float(v)

    def offer(self, x: np.ndarray, v: float) -> None:
        if v < self.v:
            self.x, self.v = np.array(x, copy=True), float(v)

    def offer_cached(self, meter: Meter, X: np.ndarray) -> None:
        """After a cut-off batch: the candidates the meter did evaluate."""
        for x in X:
            v = meter.cached(x)
            if v is not None:
                self.offer(x, v)


def _check_meter(meter: Any, where: str) -> None:
    if not (callable(meter) and hasattr(meter, "batch") and hasattr(meter, "budget")):
        raise TypeError(f"{where}: meter must be a surco.budget.Meter (Budget(...).start(f)), "
                        f"got {type(meter).__name__}")


def _check_nbhd(nbhd: Any, where: str) -> None:
    if not isinstance(nbhd, Neighbourhood):
        raise TypeError(f"{where}: nbhd must be a surco.search.Neighbourhood (RowChoice, "
                        f"Cardinality), got {type(nbhd).__name__}")


def local_search(x0: np.ndarray, meter: Meter, nbhd: Neighbourhood, *,
                 strategy: str = "steepest", rng: np.random.Generator | int | None = None,
                 chunk: int = 32, max_iterations: int | None = None,
                 rank: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                 ) -> SearchResult:
    """Descend from x0 to a local optimum of the true cost over ``nbhd``.

    Papadimitriou & Steiglitz, *Combinatorial Optimization: Algorithms and Complexity* (1982),
    ch. 19 (local search, exchange neighbourhoods):

    * ``"steepest"``: score the whole neighbourhood in one ``meter.batch`` call and take the
      best move if it improves (steepest descent);
    * ``"first"``: scan the neighbourhood in a random order, ``chunk`` neighbours per
      ``meter.batch`` call, and take the best move of the first chunk that holds an
      improving one (first improvement; ``chunk=1`` is the textbook one-by-one scan, and
      taking the chunk's best keeps the current x the best evaluated so far). With
      ``rank``, the scan goes in the order of the ranker's predicted values instead of a
      random one, most promising first (e.g. `gradient_rank`).

    A move is taken only when it lowers the value strictly, so the search cannot cycle; it
    stops at a local optimum (no feasible neighbour is better), after ``max_iterations``
    moves, or when the meter's budget is spent.

    Args:
      x0: a feasible start (in Ω of ``nbhd``), e.g. the best greedy solution.
      meter: evaluates the true cost (counts evaluations, enforces the budget).
      nbhd: the neighbourhood (`RowChoice`, `Cardinality`).
      strategy: "steepest" or "first".
      rng: generator or seed for the scan order of "first".
      chunk: neighbours per batch for "first" (>= 1).
      max_iterations: cap on moves (None: none).
      rank: ``(x, X) -> scores`` for strategy "first": a predicted value per neighbour
        ``X[i]`` of the current ``x`` (lower is scanned first; ties keep the neighbourhood's
        order); it costs no evaluation. None: a random order.

    Returns:
      `SearchResult`: the best x evaluated (the local optimum when ``local_optimum``).

    Raises:
      ValueError: x0 outside Ω (from ``nbhd.start``), a bad strategy or chunk.
      BudgetExhausted: only when the budget is spent before x0 itself could be evaluated.
    """
    where = "local_search"
    _check_meter(meter, where)
    _check_nbhd(nbhd, where)
    if strategy not in ("steepest", "first"):
        raise ValueError(f"{where}: strategy must be 'steepest' or 'first', got {strategy!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"{where}: chunk must be an int >= 1, got {chunk!r}")
    if max_iterations is not None and (not isinstance(max_iterations, (int, np.integer))
                                       or max_iterations < 0):
        raise ValueError(f"{where}: max_iterations must be an int >= 0 or None, "
                         f"got {max_iterations!r}")
    gen = as_rng(rng)
    state = nbhd.start(x0)
    cur = meter(nbhd.point(state))
    best = _Best(nbhd.point(state), cur)
    it = 0
    try:
        while max_iterations is None or it < max_iterations:
            mv = nbhd.moves(state)
            if mv.shape[0] == 0:
                return SearchResult(best.x, best.v, True, it, StopReason.NO_NEIGHBOURS, it)
            if strategy == "steepest":
                X = nbhd.apply(state, mv)
                try:
                    vals = meter.batch(X)
                except BudgetExhausted:
                    best.offer_cached(meter, X)
                    raise
                j = int(np.argmin(vals))
                new = float(vals[j])
                if not new < cur:
                    return SearchResult(best.x, best.v, True, it, StopReason.LOCAL_OPTIMUM, it)
            else:
                if rank is None:
                    order = gen.permutation(mv.shape[0])
                else:
                    pred = np.asarray(rank(nbhd.point(state), nbhd.apply(state, mv)),
                                      np.float64)
                    if pred.shape != (mv.shape[0],) or not np.all(np.isfinite(pred)):
                        raise ValueError(f"{where}: rank must return one finite score per "
                                         f"neighbour, shape ({mv.shape[0]},); got shape "
                                         f"{pred.shape}"
                                         + ("" if pred.shape != (mv.shape[0],)
                                            else " with non-finite scores"))
                    order = np.argsort(pred, kind="stable")
                j = -1
                for c in range(0, order.size, chunk):
                    idx = order[c:c + chunk]
                    X = nbhd.apply(state, mv[idx])
                    try:
                        vals = meter.batch(X)
                    except BudgetExhausted:
                        best.offer_cached(meter, X)
                        raise
                    b = int(np.argmin(vals))
                    if vals[b] < cur:
                        j, new = int(idx[b]), float(vals[b])
                        break
                if j < 0:
                    return SearchResult(best.x, best.v, True, it, StopReason.LOCAL_OPTIMUM, it)
            nbhd.commit(state, mv[j])
            cur = new
            best.offer(nbhd.point(state), cur)
            it += 1
        return SearchResult(best.x, best.v, False, it, StopReason.ITERATIONS, it)
    except BudgetExhausted:
        return SearchResult(best.x, best.v, False, it, StopReason.BUDGET, it)


def budget_progress(meter: Meter, e0: int, s0: float) -> float:
    """The fraction, in [0, 1], of what was left of ``meter``'s budget at a start (``e0``
    evaluations counted, ``s0`` seconds elapsed then) that is spent now: the larger of the
    evaluation and the second fractions. It drives the cooling schedules of
    `simulated_annealing` and of `surco.lns.lns` (``accept="anneal"``).
    """
    p = 0.0
    b = meter.budget
    if b.evaluations is not None:
        p = max(p, (meter.evaluations - e0) / max(b.evaluations - e0, 1))
    if b.seconds is not None:
        p = max(p, (meter.elapsed() - s0) / max(b.seconds - s0, 1e-9))
    return min(p, 1.0)


def simulated_annealing(x0: np.ndarray, meter: Meter, nbhd: Neighbourhood, *,
                        rng: np.random.Generator | int | None = None, t0: float | None = None,
                        t_end: float | None = None, probes: int = 32, accept0: float = 0.5,
                        cooling: float = 1e-3, max_stall: int = 2_000) -> SearchResult:
    """Simulated annealing over ``nbhd`` until the meter's budget is spent.

    Kirkpatrick, Gelatt & Vecchi, "Optimization by Simulated Annealing", Science 220 (1983):
    each iteration proposes one uniformly random feasible neighbour x' and accepts it with
    the Metropolis probability ``min(1, exp(-(f(x') - f(x)) / T))``. The temperature cools
    geometrically over the budget, ``T = t0 (t_end / t0)^p`` where p ∈ [0, 1] is the fraction
    of the budget (evaluations or seconds, whichever runs out first) spent since the start.

    Args:
      x0: a feasible start (in Ω of ``nbhd``).
      meter: evaluates the true cost; its budget must be finite (it sets the schedule).
      nbhd: the neighbourhood (`RowChoice`, `Cardinality`).
      rng: generator or seed.
      t0: initial temperature. None: from ``probes`` random neighbours of x0 (evaluated, so
        they count), set so that the median uphill step is accepted with probability
        ``accept0``: ``t0 = median(Δ > 0) / ln(1 / accept0)`` (median |Δ| if no probe went
        uphill, ``1e-6 max(|f(x0)|, 1)`` if none changed f).
      t_end: final temperature; None: ``cooling * t0``.
      probes: neighbours evaluated to set t0 (fewer on a small evaluation budget: at most
        5 % of it).
      accept0: see t0, in (0, 1).
      cooling: see t_end, in (0, 1].
      max_stall: after this many proposals in a row that needed no new evaluation (every
        neighbour of a cold local optimum already cached), reheat: restart the schedule at
        t0 over what is left of the budget; stop ("stalled") if it happens again before any
        new evaluation (the search has seen all it can reach).

    Returns:
      `SearchResult` with the best x evaluated; ``stopped`` is BUDGET, STALLED or
      NO_NEIGHBOURS.

    Raises:
      ValueError: an unlimited budget, x0 outside Ω, temperatures or rates out of range.
      BudgetExhausted: only when the budget is spent before x0 itself could be evaluated.
    """
    where = "simulated_annealing"
    _check_meter(meter, where)
    _check_nbhd(nbhd, where)
    if meter.budget.unlimited:
        raise ValueError(f"{where}: the meter's budget is unlimited; annealing cools over the "
                         "budget, so give it seconds or evaluations (surco.budget.Budget)")
    for name, v in (("t0", t0), ("t_end", t_end)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{where}: {name} must be a positive finite number or None, got {v!r}")
    if not 0 < accept0 < 1:
        raise ValueError(f"{where}: accept0 must lie in (0, 1), got {accept0!r}")
    if not 0 < cooling <= 1:
        raise ValueError(f"{where}: cooling must lie in (0, 1], got {cooling!r}")
    if isinstance(probes, bool) or not isinstance(probes, (int, np.integer)) or probes < 1:
        raise ValueError(f"{where}: probes must be an int >= 1, got {probes!r}")
    if isinstance(max_stall, bool) or not isinstance(max_stall, (int, np.integer)) or max_stall < 1:
        raise ValueError(f"{where}: max_stall must be an int >= 1, got {max_stall!r}")
    gen = as_rng(rng)
    state = nbhd.start(x0)
    cur = meter(nbhd.point(state))
    best = _Best(nbhd.point(state), cur)
    e0, s0 = meter.evaluations, meter.elapsed()
    it = acc = 0
    try:
        if t0 is None:
            k = probes
            if meter.budget.evaluations is not None:
                k = max(1, min(probes, int(0.05 * meter.remaining_evaluations())))
            mv = [nbhd.random_move(state, gen) for _ in range(k)]
            mv = [m for m in mv if m is not None]
            if not mv:
                return SearchResult(best.x, best.v, False, 0, StopReason.NO_NEIGHBOURS, 0)
            X = nbhd.apply(state, np.stack(mv))
            try:
                vals = meter.batch(X)
            except BudgetExhausted:
                best.offer_cached(meter, X)
                raise
            for x, v in zip(X, vals):
                best.offer(x, v)
            d = vals - cur
            up = d[d > 0] if np.any(d > 0) else np.abs(d[d != 0])
            scale = float(np.median(up)) if up.size else 1e-6 * max(abs(cur), 1.0)
            t0 = scale / math.log(1.0 / accept0)
        if t_end is None:
            t_end = cooling * t0
        log_ratio = math.log(t_end / t0)
        stall, stalled_at = 0, -1
        while not meter.exhausted:
            move = nbhd.random_move(state, gen)
            if move is None:
                return SearchResult(best.x, best.v, False, it, StopReason.NO_NEIGHBOURS, acc)
            x = nbhd.apply(state, move[None])[0]
            n_before = meter.evaluations
            v = meter(x)
            stall = stall + 1 if meter.evaluations == n_before else 0
            it += 1
            best.offer(x, v)
            d = v - cur
            if d <= 0 or gen.random() < math.exp(-d / (t0 * math.exp(
                    log_ratio * budget_progress(meter, e0, s0)))):
                nbhd.commit(state, move)
                cur = v
                acc += 1
            if stall >= max_stall:
                if meter.evaluations == stalled_at:   # nothing new since the last reheat
                    return SearchResult(best.x, best.v, False, it, StopReason.STALLED, acc)
                # reheat: restart the schedule over what is left of the budget
                stalled_at, stall = meter.evaluations, 0
                e0, s0 = meter.evaluations, meter.elapsed()
        return SearchResult(best.x, best.v, False, it, StopReason.BUDGET, acc)
    except BudgetExhausted:
        return SearchResult(best.x, best.v, False, it, StopReason.BUDGET, acc)
