"""Which method when: the map of the best method per (cost of one evaluation, time budget),
for sharding and assignment, from anytime traces recorded once at equal evaluations.

    python -m bench.whichmethod [--quick] [--store PATH | --resume]

For each family, on its test instances, every method runs under ``Budget(evaluations=E)``
(each distinct solution whose true cost is computed is one evaluation, for every method),
with the real wall time of every improvement recorded. `surco.Comparison.map` then re-prices
each trace at c seconds per evaluation (effective time = real seconds + c x evaluations) and
names the method with the best mean at every (c, total budget T) cell that every method
covers. Where a cut-off run leaves a cell open, `surco.whichmethod.surco_or_search` still
decides whether a SurCo-family method or a search has the lowest mean (a cut-off run's
value is an upper bound past its end). The README's "SurCo pays off when one evaluation costs more than X"
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

from typing import Sequence

from bench._report import RESULTS, Report, compare, parse_args

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


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import importlib

    import surco
    from surco.whichmethod import surco_or_search
    rep = Report("whichmethod", args.quick)   # the issue states no target: crossovers are
    # reported as measured (rep.extra["crossover"])
    for name, (size, seed, counts, searches, lancer) in SETTINGS.items():
        fam = importlib.import_module(f"surco.problems.{name}").FAMILY
        n = counts[0] if args.quick else counts[1]
        insts = fam.generate(n, seed=seed, **size)
        tag = ",".join(f"{k}={v}" for k, v in size.items())
        methods = _methods(fam, searches, lancer)
        print(f"{name} ({tag}): {methods} at {EVALS} evaluations", flush=True)
        cmp = compare(fam, insts, methods, budget=surco.Budget(evaluations=EVALS),
                            store=args.store, setting=tag)
        long = compare(fam, insts, {f"{s}@{LONG_EVALS}": fam.baselines[s]
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
