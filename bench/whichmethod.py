"""Which method when: the map of the best method per (cost of one evaluation, time budget),
for sharding and assignment, from anytime traces recorded once at equal evaluations.

    python -m bench.whichmethod [--quick] [--store PATH | --resume]

For each family, on its test instances, every method runs under ``Budget(evaluations=E)``
(each distinct solution whose true cost is computed is one evaluation, for every method),
with the real wall time of every improvement recorded. `surco.Comparison.map` then re-prices
each trace at c seconds per evaluation (effective time = real seconds + c x evaluations) and
names the method with the best mean at every (c, total budget T) cell that every method
covers. Where a cut-off run leaves a cell open, `surco_or_search` still decides whether a
SurCo-family method or a search has the lowest mean (a cut-off run's value is an upper
bound past its end). The README's "SurCo pays off when one evaluation costs more than X"
sentences come from here (``surco_or_search[family]["sentence"]``).

The searches also run under `LONG_EVALS` evaluations (methods "NAME@10000"), so that the
cells of cheap evaluations are decided too (a run cut off by its budget covers no budget
past its end; a local search that reaches a local optimum ends by itself and covers all).

Methods: SurCo-zero, every other SurCo-family method registered for the family (sharding's
"surco-plateau"), LANCER on sharding, and the strongest non-learned searches (local search,
annealing). Settings are the families' own, chosen on train instances. LANCER is left out
on assignment: it computes the problem's objective f outside the meter for every solution
it proposes, and there f *is* the true cost, so its runs would not be at equal evaluations
(`bench.families_evals` measures this; on sharding f is a smooth maximum of the device
costs, not the true cost).

Writes ``bench/results/whichmethod[-quick].json`` and one heat map per family.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bench._report import RESULTS, Report, parse_args

#: evaluations per run (the map covers T <= real time + c * EVALS for cut-off runs)
EVALS = 300
#: the searches run a second time under this many evaluations, as methods "NAME@LONG_EVALS":
#: a search cut off at EVALS covers no budget past its end, so without these the cells of
#: cheap evaluations (where a search spends its EVALS in well under a second) stay undecided
LONG_EVALS = 10_000
SETTINGS = {
    # family module, generate keywords, test seed, (quick, full) instance counts, searches,
    # LANCER in the map; assignment's instances are those of bench.families_evals (one store
    # serves both)
    "sharding": (dict(n_tables=50, n_devices=4, split="test"), 1, (5, 10),
                 ("local-search", "local-search-first", "annealing"), True),
    "assignment": (dict(n=20, m=5), 0, (5, 20),
                   ("local-search-first", "local-search-steepest", "annealing"), False),
}


def _methods(fam, searches: Sequence[str], lancer: bool) -> list[str]:
    """SurCo-zero, LANCER (where ``lancer``), the family's own SurCo-family baselines
    (sharding's "surco-plateau"), then the searches."""
    from surco.whichmethod import is_surco
    own = [m for m in fam.baselines if is_surco(m)]
    return ["surco-zero", *(["lancer"] if lancer else []), *own, *searches]


def surco_or_search(cmp: Any, costs: Sequence[float] | None = None,
                    budgets: Sequence[float] | None = None) -> dict[str, Any]:
    """SurCo family or search, per (cost per evaluation, budget) cell, deciding also cells
    that `surco.Comparison.map` leaves open.

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
    from surco.whichmethod import DEFAULT_BUDGETS, DEFAULT_COSTS, is_surco, trace, value_at
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


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import importlib

    import surco
    rep = Report("whichmethod", args.quick)   # the issue states no target: crossovers are
    # reported as measured (rep.extra["crossover"])
    for name, (size, seed, counts, searches, lancer) in SETTINGS.items():
        fam = importlib.import_module(f"surco.problems.{name}").FAMILY
        n = counts[0] if args.quick else counts[1]
        insts = fam.generate(n, seed=seed, **size)
        tag = ",".join(f"{k}={v}" for k, v in size.items())
        methods = _methods(fam, searches, lancer)
        print(f"{name} ({tag}): {methods} at {EVALS} evaluations", flush=True)
        cmp = surco.compare(fam, insts, methods, budget=surco.Budget(evaluations=EVALS),
                            store=args.store, setting=tag)
        long = surco.compare(fam, insts, {f"{s}@{LONG_EVALS}": fam.baselines[s]
                                          for s in searches},
                             budget=surco.Budget(evaluations=LONG_EVALS), store=args.store,
                             setting=tag)
        cmp = cmp.merge(long)
        print(cmp.table(), flush=True)
        for r in cmp.to_rows(setting=f"{name} {tag}"):
            rep.row(**r, budget=f"{LONG_EVALS if '@' in r['method'] else EVALS} evaluations")
        m = cmp.map()
        print(m, flush=True)
        rep.add_map(cmp, name)
        m.plot(RESULTS / f"whichmethod{'-quick' if args.quick else ''}-{name}.png",
               title=f"{name} ({tag}): best mean per cost of f and budget")
        sides = surco_or_search(cmp)
        print(sides["sentence"], flush=True)
        rep.extra.setdefault("surco_or_search", {})[name] = sides
        rep.extra.setdefault("crossover", {})[name] = {
            "cost_s": m.crossover.get("cost"), "from_budget_s": m.crossover.get("from_budget"),
            "sentence": m.crossover["sentence"],
            # cells decided per cost (of len(budgets)): runs cut off at EVALS evaluations
            # leave the large budgets of cheap costs undecided
            "decided_cells": {f"{c:g}": sum(w is not None for w in row)
                              for c, row in zip(m.costs, m.winner)}}
    rep.finish()


if __name__ == "__main__":
    main()
