"""Which method when: the best method per (cost of one evaluation, total time budget), read
off the anytime traces that `surco.compare` records.

SurCo (a learned linear surrogate solved by a MILP solver) spends solver time to save
evaluations of the objective; annealing spends evaluations to save solver time. Which one
wins depends on what one evaluation costs (microseconds for a formula, 100 ms for a GPU
measurement, seconds for an FDFD simulation) and on the time there is. Runs recorded once
(best at ``eval_cost=0``, with budgets that cover the largest budget of the grid) answer it
for every cost c: a trace point reached after ``real`` seconds and ``k`` evaluations would
have been reached at the *effective* time ``real + c·k`` had each evaluation cost c.

For a cell (c, T), a run's value is the best value it reached by effective time T
(`value_at`): inf before its first evaluation, the value it returned from the end of the run
on when it finished by itself, and *not covered* (None) after the end of a run that its
budget cut off (what it would have reached with more time is unknown). A cell is decided
when every method covers it; the winner has the lowest mean over the instances.

The map assumes that a method's trajectory does not depend on the clock: exact for methods
driven by evaluation counts; for methods that schedule by time (annealing's cooling under a
seconds budget, a solver's time limit) it is the trajectory of the recorded run re-priced.

    >>> import numpy as np, surco
    >>> b = surco.Budget(seconds=100.0)
    >>> runs = [surco.Run("anneal", 0, np.zeros(1), 1.0, 0.5, 1000, "ok", None,
    ...                   [(1, 0.0, 9.0), (1000, 0.5, 1.0)], b),
    ...         surco.Run("surco-zero", 0, np.zeros(1), 2.0, 20.0, 10, "ok", None,
    ...                   [(1, 2.0, 5.0), (10, 20.0, 2.0)], b)]
    >>> m = method_map(surco.Comparison("toy", runs, ["anneal", "surco-zero"], 1),
    ...                costs=(0.0, 0.01, 1.0), budgets=(3.0, 30.0))
    >>> m.winner
    [['anneal', 'anneal'], ['surco-zero', 'anneal'], ['surco-zero', 'surco-zero']]
    >>> print(m.crossover["sentence"])  # doctest: +NORMALIZE_WHITESPACE
    SurCo pays off when one evaluation costs more than 0.01 s
    (at 1 s per evaluation, from a budget of 3 s on)
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from surco.naming import is_surco

__all__ = ["Trace", "trace", "value_at", "anytime", "MethodMap", "method_map", "surco_or_search",
           "is_surco", "DEFAULT_COSTS", "DEFAULT_BUDGETS", "CUT_OFF_FRACTION"]

#: seconds per evaluation of the default grid (a formula ... an FDFD simulation).
DEFAULT_COSTS = (0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0)
#: total time budgets of the default grid, log-spaced from 1 s to 1 h.
DEFAULT_BUDGETS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3600.0)
#: a run under a time limit that returns after this fraction of it counts as cut off by its
#: budget (methods that hand the remaining time to a solver return a little before it).
CUT_OFF_FRACTION = 0.9

@dataclasses.dataclass(frozen=True)
class Trace:
    """One run's anytime record, its time split into real seconds and evaluations.

    Attributes:
      evaluations, real_seconds, best: per improvement (the meter's curve), the evaluations
        made, the real seconds (recorded seconds less the run's ``eval_cost`` × evaluations)
        and the best value so far.
      end_evaluations, end_real_seconds: the same at the end of the run.
      final: the value the run returned (inf for a failed run: it has no answer).
      cut_off: the run ended because of its budget (see `trace`).
    """

    evaluations: np.ndarray
    real_seconds: np.ndarray
    best: np.ndarray
    end_evaluations: int
    end_real_seconds: float
    final: float
    cut_off: bool

    def effective(self, cost: float) -> tuple[np.ndarray, float]:
        """Effective times ``real + cost × evaluations`` of the points and of the end."""
        return (self.real_seconds + cost * self.evaluations,
                self.end_real_seconds + cost * self.end_evaluations)


def trace(run: Any) -> Trace:
    """The `Trace` of a `surco.Run`.

    A run is *cut off* when ``run.cut_off`` says so (recorded by `surco.compare`: stopped by
    `BudgetExhausted`, its meter exhausted when it returned, or, under a time limit, it
    returned after `CUT_OFF_FRACTION` of it); for runs without that record, when its status
    is "budget"."""
    e0 = float(run.budget.eval_cost)
    pts = np.asarray(run.curve, np.float64).reshape(-1, 3)
    ev = pts[:, 0]
    wall = getattr(run, "wall_seconds", None)
    end_real = float(wall) if wall is not None else float(run.seconds) - e0 * run.evaluations
    cut = getattr(run, "cut_off", None)
    ok = run.status in ("ok", "budget") and math.isfinite(run.value)
    return Trace(ev, pts[:, 1] - e0 * ev, pts[:, 2], int(run.evaluations), end_real,
                 float(run.value) if ok else math.inf,
                 bool(cut) if cut is not None else run.status == "budget")


def value_at(tr: Trace, cost: float, budget: float) -> float | None:
    """The best value the run reached by effective time ``budget`` had each evaluation cost
    ``cost`` seconds: inf before its first evaluation (and for a failed run), its returned
    value from its end on if it finished by itself, None (not covered) if its budget cut it
    off before ``budget``."""
    eff, end = tr.effective(cost)
    if end <= budget:
        if tr.cut_off and end < budget:
            return None
        return tr.final
    if not math.isfinite(tr.final):
        return math.inf
    hit = np.nonzero(eff <= budget)[0]
    return float(tr.best[hit].min()) if hit.size else math.inf


@dataclasses.dataclass
class MethodMap:
    """The winner per (cost per evaluation, total budget) cell; arrays are indexed
    ``[cost index, budget index]``.

    Attributes:
      costs, budgets: the grid (seconds per evaluation; seconds).
      methods: the methods mapped (those with a run on every instance).
      winner: the method with the lowest mean value ("a = b" for a tie), None when the cell
        is not decided; runner_up: the next one (None without one).
      means: method -> (costs, budgets) mean value over the instances (inf: some instance
        has no value yet; nan: the method's runs do not cover the cell).
      margin: runner-up's mean − winner's mean (nan when undecided or without a runner-up).
      reason: why a cell is not decided (or which methods were left out, with partial).
      crossover: from which cost a SurCo-family method wins: ``{"cost", "below",
        "from_budget", "sentence"}`` (see `method_map`).
      excluded: method -> why it is not in the map.
    """

    costs: tuple[float, ...]
    budgets: tuple[float, ...]
    methods: list[str]
    winner: list[list[str | None]]
    runner_up: list[list[str | None]]
    means: dict[str, np.ndarray]
    margin: np.ndarray
    reason: list[list[str | None]]
    crossover: dict[str, Any]
    excluded: dict[str, str]

    def cell(self, cost: float, budget: float) -> dict[str, Any]:
        """The cell at grid point (``cost``, ``budget``): winner, runner_up, margin, means
        and reason. Raises KeyError for a point off the grid."""
        if cost not in self.costs or budget not in self.budgets:
            raise KeyError(f"MethodMap.cell: ({cost}, {budget}) is off the grid "
                           f"costs={self.costs}, budgets={self.budgets}")
        i, j = self.costs.index(cost), self.budgets.index(budget)
        return {"cost": cost, "budget": budget, "winner": self.winner[i][j],
                "runner_up": self.runner_up[i][j], "margin": float(self.margin[i, j]),
                "means": {m: float(v[i, j]) for m, v in self.means.items()},
                "reason": self.reason[i][j]}

    def to_json(self) -> dict[str, Any]:
        """A compact JSON-able summary (non-finite numbers as None): grid, winners, margins,
        means (6 significant digits), reasons of undecided cells, crossover sentence."""
        def num(a):
            return [[float(f"{v:.6g}") if math.isfinite(v) else None for v in row] for row in a]
        reasons = {f"{self.costs[i]:g}s/eval,T={self.budgets[j]:g}s": self.reason[i][j]
                   for i in range(len(self.costs)) for j in range(len(self.budgets))
                   if self.reason[i][j]}
        return {"costs": list(self.costs), "budgets": list(self.budgets),
                "winners": self.winner, "margins": num(self.margin),
                "means": {m: num(v) for m, v in self.means.items()}, "reasons": reasons,
                "excluded": self.excluded, "crossover": self.crossover["sentence"]}

    def __str__(self) -> str:
        w = max([len(str(v)) for row in self.winner for v in row] + [9])
        head = "s/eval \\ T" .ljust(11) + "".join(f"{b:>{w + 1}g}" for b in self.budgets)
        lines = [head] + [f"{c:<11g}" + "".join(f"{(v or '?'):>{w + 1}}" for v in row)
                          for c, row in zip(self.costs, self.winner)]
        return "\n".join(lines + [self.crossover["sentence"]])

    def plot(self, path: str | Path | None = None, title: str = ""):
        """Heat map of the winners (method names in the cells; grey: not decided). Writes
        ``path`` when given; returns the figure (needs matplotlib)."""
        from surco.plots import plot_map
        return plot_map(self, path, title)


def _grid(values: Sequence[float], what: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not out or any(not math.isfinite(v) or v < 0 for v in out) or list(out) != sorted(set(out)):
        raise ValueError(f"method_map: {what} must be increasing finite numbers >= 0, got "
                         f"{list(values)!r}")
    return out


def method_map(cmp: Any, costs: Sequence[float] = DEFAULT_COSTS,
               budgets: Sequence[float] = DEFAULT_BUDGETS, *, partial: bool = False,
               rtol: float = 1e-9) -> MethodMap:
    """Which method wins at each (cost per evaluation, total budget) cell of a comparison.

    Args:
      cmp: a `surco.Comparison` (its runs' curves, ends, statuses and budgets).
      costs: seconds per evaluation (increasing, >= 0).
      budgets: total time budgets in seconds (increasing, > 0).
      partial: decide a cell that some methods do not cover among those that do (its
        reason names the ones left out) instead of leaving it undecided.
      rtol: means within this relative difference are a tie.

    Returns:
      A `MethodMap`. Its crossover: for each cost, the smallest budget T0 from which a
      SurCo-family method (`is_surco`) wins every decided cell of the row; ``cost`` is the
      smallest grid cost from which this holds at every larger grid cost too, ``below`` the
      grid cost under it, and the sentence says "SurCo pays off when one evaluation costs
      more than X s" (or that it does at every cost, or at none).

    Raises:
      ValueError: a bad grid (naming which).
    """
    costs, budgets = _grid(costs, "costs"), _grid(budgets, "budgets")
    if budgets[0] <= 0:
        raise ValueError(f"method_map: budgets must be > 0, got {list(budgets)!r}")
    excluded: dict[str, str] = {}
    traces: dict[str, list[Trace]] = {}
    for m in cmp.methods:
        rs = {r.instance: r for r in cmp.runs if r.method == m}
        if len(rs) < cmp.n_instances:
            excluded[m] = f"ran on {len(rs)} of {cmp.n_instances} instances"
        else:
            traces[m] = [trace(rs[i]) for i in range(cmp.n_instances)]
    methods = list(traces)
    shape = (len(costs), len(budgets))
    means = {m: np.full(shape, np.nan) for m in methods}
    winner = [[None] * shape[1] for _ in costs]
    runner = [[None] * shape[1] for _ in costs]
    reason: list[list[str | None]] = [[None] * shape[1] for _ in costs]
    margin = np.full(shape, np.nan)
    for i, c in enumerate(costs):
        for j, T in enumerate(budgets):
            uncovered = []
            for m in methods:
                vals = [value_at(t, c, T) for t in traces[m]]
                if any(v is None for v in vals):
                    uncovered.append(m)
                else:
                    means[m][i, j] = float(np.mean(vals))
            live = [m for m in methods if m not in uncovered]
            note = (f"runs of {', '.join(uncovered)} end before T={T:g} s (cut off by their "
                    f"budget)" if uncovered else None)
            if uncovered and not partial:
                reason[i][j] = f"not decided: {note}"
                continue
            finite = sorted((means[m][i, j], k, m) for k, m in enumerate(live)
                            if math.isfinite(means[m][i, j]))
            if not finite:
                reason[i][j] = ("not decided: no method has a value by T" +
                                (f"; {note}" if note else ""))
                continue
            best = finite[0][0]
            tol = rtol * max(abs(best), 1e-300)
            tied = [m for v, _, m in finite if v - best <= tol]
            rest = [(v, m) for v, _, m in finite if v - best > tol]
            winner[i][j] = " = ".join(tied)
            if rest:
                runner[i][j], margin[i, j] = rest[0][1], rest[0][0] - best
            elif len(tied) > 1:
                margin[i, j] = 0.0
            if note:
                reason[i][j] = f"decided among the methods covering it; {note}"
    return MethodMap(costs, budgets, methods, winner, runner, means, margin, reason,
                     _crossover(costs, budgets, winner, methods), excluded)


def _surco_wins(w: str | None) -> bool:
    return w is not None and all(is_surco(m) for m in w.split(" = "))


def _crossover(costs, budgets, winner, methods) -> dict[str, Any]:
    """See `method_map` (Returns)."""
    t0: dict[float, float | None] = {}
    for i, c in enumerate(costs):
        start = None
        for j in reversed(range(len(budgets))):
            w = winner[i][j]
            if w is None:
                continue          # undecided: neither confirms nor breaks the streak
            if not _surco_wins(w):
                break
            start = budgets[j]
        t0[c] = start
    idx = None
    for i in reversed(range(len(costs))):
        if t0[costs[i]] is None:
            break
        idx = i
    out: dict[str, Any] = {"cost": None, "below": None,
                           "from_budget": {f"{c:g}": t for c, t in t0.items()}}
    if not any(is_surco(m) for m in methods):
        out["sentence"] = "no SurCo-family method (surco*, lancer*) in the comparison"
    elif idx is None:
        out["sentence"] = (f"SurCo does not pay off at any cost per evaluation up to "
                           f"{costs[-1]:g} s on these runs (no SurCo-family method wins every "
                           f"decided budget from some budget on)")
    else:
        c = costs[idx]
        out["cost"] = c
        where = f"at {c:g} s per evaluation, from a budget of {t0[c]:g} s on"
        if idx == 0:
            out["sentence"] = f"SurCo pays off at every cost per evaluation of the grid ({where})"
        elif all(w is None for w in winner[idx - 1]):
            # the next cheaper cost is undecided: no run covers it, so it is not a SurCo loss
            out["sentence"] = (f"SurCo pays off from {c:g} s per evaluation on ({where}); at "
                               f"{costs[idx - 1]:g} s per evaluation no budget is decided by "
                               f"these runs")
        else:
            out["below"] = costs[idx - 1]
            out["sentence"] = (f"SurCo pays off when one evaluation costs more than "
                               f"{costs[idx - 1]:g} s ({where})")
    return out


def surco_or_search(cmp: Any, costs: Sequence[float] | None = None,
                    budgets: Sequence[float] | None = None) -> dict[str, Any]:
    """SurCo family or search, per (cost per evaluation, budget) cell, deciding also cells
    that `method_map` leaves open. The "SurCo pays off when one evaluation costs more than
    X s" sentences of the README's "which method when" section come from here.

    A run cut off by its budget before the effective time T would have had, at T, a value no
    higher than the best it reached (its returned value): an upper bound, where the map,
    which names a single winner, needs the value itself. A side (the SurCo-family methods,
    `surco.whichmethod.is_surco`, or the others) surely has the lower best mean at a cell
    when every method of the other side covers the cell (its mean is exact) and the lowest
    mean of its own side, with cut-off runs at their bound, is below the other side's lowest
    mean.

    Returns:
      ``{"costs", "budgets", "side"}`` (side[i][j]: "surco", "search" or None: not decided),
      ``"search_up_to"`` (the largest cost at which a search wins some cell, None if none),
      ``"surco_from"`` (the smallest larger cost with a decided cell: a SurCo-family method
      wins every decided cell from there on) and ``"sentence"``.
    """
    costs = tuple(DEFAULT_COSTS if costs is None else costs)
    budgets = tuple(DEFAULT_BUDGETS if budgets is None else budgets)
    traces = {m: [trace(cmp.run(m, i)) for i in range(cmp.n_instances)] for m in cmp.methods}
    side: list[list[str | None]] = []
    for c in costs:
        row = []
        for T in budgets:
            mean, exact = {}, {}
            for m, trs in traces.items():
                vals = [value_at(t, c, T) for t in trs]
                exact[m] = all(v is not None for v in vals)
                mean[m] = float(np.mean([t.final if v is None else v
                                         for v, t in zip(vals, trs)]))
            won = None
            for me, other in (("surco", "search"), ("search", "surco")):
                mine = [m for m in traces if (is_surco(m) == (me == "surco"))]
                theirs = [m for m in traces if m not in mine]
                if mine and theirs and all(exact[m] for m in theirs) and \
                        min(mean[m] for m in mine) < min(mean[m] for m in theirs):
                    won = me
            row.append(won)
        side.append(row)
    lost = [c for c, row in zip(costs, side) if "search" in row]
    up_to = max(lost) if lost else None
    above = [c for c, row in zip(costs, side)
             if (up_to is None or c > up_to) and any(v is not None for v in row)]
    surco_from = min(above) if above else None
    if surco_from is None:
        sentence = (f"SurCo does not pay off at any cost per evaluation up to {costs[-1]:g} s "
                    f"on these runs: a search wins at every cost with a decided cell")
    elif up_to is None:
        sentence = ("SurCo pays off at every cost per evaluation with a decided cell (from "
                    f"{surco_from:g} s)")
    else:
        at = [f"{T:g} s" for T, v in zip(budgets, side[costs.index(up_to)]) if v == "search"]
        sentence = (f"SurCo pays off when one evaluation costs more than {up_to:g} s (at "
                    f"{up_to:g} s a search wins at a budget of {', '.join(at)}; from "
                    f"{surco_from:g} s per evaluation on, a SurCo-family method wins every "
                    f"decided cell)")
    return {"costs": list(costs), "budgets": list(budgets), "side": side,
            "search_up_to": up_to, "surco_from": surco_from, "sentence": sentence}


def anytime(cmp: Any, method: str, axis: str = "evaluations",
            grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean best-so-far value of ``method`` over the instances of ``cmp`` (a
    `surco.Comparison`), on a grid of evaluations or seconds (``axis``; seconds as
    recorded, i.e. charged): nan at grid points before every run has its first value, so
    the mean is always over the same runs. Default grid: 100 points from 0 to the longest
    run.

    Raises:
      ValueError: an unknown axis.
    """
    if axis not in ("evaluations", "seconds"):
        raise ValueError(f"anytime: axis must be 'evaluations' or 'seconds', got {axis!r}")
    col = 0 if axis == "evaluations" else 1
    runs = [r for r in cmp.runs if r.method == method and r.ok and r.curve]
    if grid is None:
        top = max((max(r.curve[-1][col], r.evaluations if col == 0 else r.seconds)
                   for r in runs), default=1.0)
        grid = np.linspace(0, top, 100)
    grid = np.asarray(grid, np.float64)
    vals = np.full((len(runs), len(grid)), np.nan)
    for i, r in enumerate(runs):
        pts = np.array([p[col] for p in r.curve])
        best = np.array([p[2] for p in r.curve])
        idx = np.searchsorted(pts, grid, side="right") - 1
        vals[i] = np.where(idx >= 0, best[np.clip(idx, 0, None)], np.nan)
    return grid, vals.mean(axis=0) if runs else np.full(len(grid), np.nan)
