"""How SurCo past its plateau (`surco.plateau`) is set up on sharding: on TRAIN tasks only.

    python -m bench.plateau_tune [--quick]

Candidates (`CANDIDATES`: SurCo-zero, SurCo-zero with restarts, and SurCo then local
search or annealing on the rest of the budget, `surco.lns.polish_method`, at two shares)
run through the harness on DLRM-50 / 4-device tasks from the train half of the table pool
(`S.generate(n, seed=0, split="train")`; the benches' test tasks come from the other
half), under 30, 100 and 300 evaluations of the true cost. Per budget the
candidate with the lowest mean cost is chosen; `problems.sharding.settings.PLATEAU_CHOICE`
must equal the choice (printed), and is what the "surco-plateau" method runs. The searches
(local search, first improvement, ranked by ∇f, annealing) run on the same tasks for the
ratios. Writes ``bench/results/plateau_tune[-quick].json``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench._report import Report, compare, parse_args

BUDGETS = (30, 100, 300)
SEARCHES = ("local-search", "local-search-first", "local-search-gradient", "annealing")
#: name -> settings of `problems.sharding.settings.plateau_from` (kind "zero": SurCo-zero
#: via `surco.plateau.plateau_method`; kind "polish": SurCo (with ``first``'s settings)
#: on ``share`` of the budget, then ``strategy`` on the rest)
CANDIDATES: dict[str, dict] = {
    "surco-zero": {"kind": "zero"},
    "restarts k=10": {"kind": "zero", "restart": 10, "noise": 0.03},
    **{f"restarts k=10, then {s} on {1 - sh:.0%}": {
        "kind": "polish", "share": sh, "strategy": s, "restart": 10, "noise": 0.03}
       for s in ("first", "annealing") for sh in (0.5, 0.7)},
    **{f"surco-zero, then {s} on 30%": {"kind": "polish", "share": 0.7, "strategy": s}
       for s in ("first", "annealing")},
}
QUICK_CANDIDATES = ("surco-zero", "restarts k=10", "restarts k=10, then first on 30%")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import surco
    from surco.problems import sharding as S
    from surco.problems.sharding.settings import PLATEAU_CHOICE, plateau_from

    n = 4 if args.quick else 10
    tasks = S.generate(n, seed=0, n_tables=50, n_devices=4, split="train")
    names = list(QUICK_CANDIDATES if args.quick else CANDIDATES)
    rep = Report("plateau_tune", args.quick)
    chosen = {}
    for E in BUDGETS:
        budget = surco.Budget(evaluations=E)
        methods = {name: plateau_from(S.FAMILY, CANDIDATES[name]) for name in names}
        cmp = compare(S.FAMILY, tasks, methods, budget=budget, progress=False)
        base = compare(S.FAMILY, tasks, list(SEARCHES), budget=budget, progress=False)
        means = {m: float(np.mean(cmp.values(m))) for m in names}
        search = {m: float(np.mean(base.values(m))) for m in SEARCHES}
        best_search = min(search, key=search.get)
        for m in names:
            rep.row(budget=E, method=m, settings=CANDIDATES[m], mean=means[m],
                    rel_best_search=means[m] / search[best_search], best_search=best_search,
                    seconds=float(np.mean([r.seconds for r in cmp.runs if r.method == m])))
        for m in SEARCHES:
            rep.row(budget=E, method=m, mean=search[m],
                    rel_best_search=search[m] / search[best_search], best_search=best_search)
        pick = min(names, key=means.get)
        chosen[E] = {"method": pick, "settings": CANDIDATES[pick], "mean": means[pick],
                     "rel_best_search": means[pick] / search[best_search]}
        print(f"{E} evaluations: chose {pick!r} ({means[pick]:.4f}, "
              f"{means[pick] / search[best_search]:.3f} x {best_search})", flush=True)
    rep.extra["chosen"] = chosen
    rep.extra["tasks"] = f"{n} DLRM-50 / 4-device tasks, train pool, seed 0"
    shipped = {E: PLATEAU_CHOICE.get(E) for E in BUDGETS}
    rep.extra["shipped"] = shipped
    same = all(shipped[E] == chosen[E]["settings"] for E in BUDGETS)
    print("settings.PLATEAU_CHOICE " + ("equals the choice" if same else
                                        f"differs from the choice: {shipped}"))
    rep.finish(["budget", "method", "mean", "rel_best_search", "best_search", "seconds"])


if __name__ == "__main__":
    main()
