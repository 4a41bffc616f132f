"""SurCo-based variants on sharding (issue 17): SurCo-zero + polish, multi-chain SurCo-zero,
SurCo-guided large-neighbourhood search, next to local search and annealing, through the
comparison harness.

    python -m bench.lns --quick    # 5 test tasks
    python -m bench.lns            # 50 test tasks (without the two LNS variants)

Tasks: DLRM-50 on 4 devices of 5 GB, ``sharding.generate(n, seed=1, n_tables=50,
split="test")``. Variants' settings (`variants`) were chosen on train-pool tasks only
(``split="train"``, seeds 11 and up; see `TUNING`). Two budgets:

1. 300 evaluations of the true cost (each distinct plan whose cost is computed is one, for
   every method): the SurCo variants, SurCo-zero, ``local-search`` (steepest),
   ``local-search-first`` and ``annealing`` from the family;
2. equal wall time: task by task, the seconds SurCo-zero spent in (1)
   (`Comparison.matched_budget`), given to the searches and to the SurCo-based variants
   (no evaluation limit).

Targets (issue 17, met or not): (1) best SurCo method's mean cost <= 0.97 × the best of
the searches'; (2) best SurCo-based mean cost <= 1.00 × annealing's, and that method beats
``local-search`` on >= 80 % of the tasks.

Writes ``bench/results/lns[-quick].json``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench._report import Report, compare, parse_args

DEVICES, TABLES, EVALS = 4, 50, 300
N_TEST, QUICK_TEST = 50, 5
SEARCH = ("local-search", "local-search-first", "local-search-gradient", "annealing")

#: How the variants' settings were chosen: 3 train-pool DLRM-50 tasks
#: (``generate(3, seed=11, n_tables=50, split="train")``), mean cost relative to
#: annealing's under the same budget (300 evaluations: annealing 6.463 ms; annealing with
#: 20 000 evaluations reaches 6.274, i.e. 0.971, which is what the 0.97 target asks for at
#: 300). "screened": a new x is evaluated only when SurCo's own objective f (computed every
#: step, no evaluation) says it improves on the current x (`surco.lns.lns`, ``screen=0``).
TUNING = {
    "300 evaluations": {
        "surco-zero (family settings)": 0.990,
        "polish: local search (first) after SurCo-zero on 50 % of the budget": 0.986,
        "polish: local search (first) after SurCo-zero on 30 %": 0.992,
        "polish: annealing after SurCo-zero on 50 %": 0.997,
        "multi-chain SurCo-zero, 4 chains, spread 0.5": 1.001,
        "LNS, 10 random rows free, every new x evaluated": 1.000,
        "LNS, 10 rows free drawn by |dL/dθ|, every new x evaluated": 0.997,
        "LNS, 10 random rows, screened (1200 iterations)": 0.993,
        "LNS, 10 rows by |dL/dθ|, screened (1200 iterations)": 0.994,
        "LNS, all rows free (SurCo-zero screened, 1200 iterations)": 0.990,
        "LNS, 5 random rows, screened (1200 or 3000 iterations: stuck by 1200)": 0.987,
        "LNS, 3 random rows, screened (3000 iterations)": 0.999,
        "LNS, 5 random rows, screened, grow after 50 stuck iterations (measured while an "
        "unchanged x still reset the stall count; not re-measured)": 0.993,
        "LNS (5 rows, screened, 1500 iterations) on 60 %, then local search (first)": 0.985,
        "the same with grow=50 (same caveat)": 0.992,
        # measured after local-search-gradient joined the family (3 train tasks, relative
        # to annealing's 6.463 ms at 300 evaluations)
        "local-search-gradient (search baseline, no SurCo; chunk 4)": 0.992,
        "polish: local search (first) after SurCo-zero on 50 %, random order": 0.986,
        "polish: the same, moves ranked by the gradient of f (chunk 1 or 4)": 0.990,
        "polish: ranked, SurCo-zero on 30 % (chunk 1 / 4)": "0.991 / 0.992",
    },
    "15 s each": {
        "local-search (steepest, stops at its local optimum)": 1.010,
        "polish: annealing after SurCo-zero on 50 % of the time": 1.001,
        "polish: annealing after SurCo-zero on 20 % of the time": 1.000,
    },
}


def variants(family, equal_time: bool = False, lns_variants: bool = True) -> dict:
    """The SurCo-based methods measured here, with the settings chosen on train tasks
    (`TUNING`).

    ``equal_time``: for a budget in seconds only (LNS then runs until its deadline, and the
    multi-chain variant, the weakest at 300 evaluations, is left out to keep the bench
    short). ``lns_variants=False`` leaves out the two LNS variants (the full run: each of
    their tasks takes ~30 s of solves, and on the quick run and the train tasks they did not
    pay off; see the module docstring of `surco.lns`)."""
    from surco.lns import lns_method, multichain_method, polish_method
    iters = 10 ** 6 if equal_time else 3000
    lns = lns_method(family, free=5, screen=0.0, iterations=iters, backend="highs")
    lns_first = lns_method(family, free=5, screen=0.0, iterations=iters // 2, backend="highs")
    out = {
        "surco-polish": polish_method(family, share=0.5, strategy="first"),
        "surco-polish-anneal": polish_method(family, share=0.2, strategy="annealing"),
        "surco-multichain": multichain_method(family, chains=4, spread=0.5),
        "surco-lns": lns,
        "surco-lns-polish": polish_method(family, share=0.6, strategy="first", first=lns_first),
    }
    if equal_time:
        del out["surco-multichain"]
    if not lns_variants:
        del out["surco-lns"], out["surco-lns-polish"]
    return out


def _means(cmp, names) -> dict:
    return {m: float(np.nanmean(cmp.values(m))) for m in names}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import surco
    from surco.problems import sharding as S

    fam = S.FAMILY
    n = QUICK_TEST if args.quick else N_TEST
    tasks = S.generate(n, seed=1, n_tables=TABLES, n_devices=DEVICES, split="test")
    rep = Report("lns", args.quick)
    tag = f"T={TABLES},D={DEVICES}"

    zero = surco.surco_methods(fam)["surco-zero"]
    methods = {**{s: fam.baselines[s] for s in SEARCH}, "surco-zero": zero,
               **variants(fam, lns_variants=args.quick)}
    ev = compare(fam, tasks, store=args.store, setting=tag, methods=methods, budget=surco.Budget(evaluations=EVALS),
                       reference="annealing")
    print(ev.table("annealing"), flush=True)
    for r in ev.to_rows("annealing", setting=tag, budget=f"{EVALS} evaluations"):
        rep.row(**r)
    rep.add_map(ev, f"{tag}, {EVALS} evaluations")
    surco_names = [m for m in ev.methods if m.startswith("surco")]
    m_ev = _means(ev, ev.methods)
    best_s = min(surco_names, key=m_ev.get)
    best_b = min(SEARCH, key=m_ev.get)
    rep.target(f"{tag}, {EVALS} evaluations: best SurCo method ({best_s}) mean cost / best "
               f"search's ({best_b})", m_ev[best_s] / m_ev[best_b], "<=", 0.97)

    matched = ev.matched_budget("surco-zero")
    eq_methods = {**{s: fam.baselines[s] for s in SEARCH}, **variants(fam, equal_time=True,
                                                                   lns_variants=args.quick)}
    eq = compare(fam, tasks, store=args.store, setting=tag, methods=eq_methods, budget=matched, reference="annealing")
    print(eq.table("annealing"), flush=True)
    for r in eq.to_rows("annealing", setting=tag, budget="wall time of surco-zero"):
        rep.row(**r)
    rep.add_map(eq, f"{tag}, wall time of surco-zero")
    # SurCo-zero itself ran at exactly this time in the first comparison
    vals = {m: eq.values(m) for m in eq.methods}
    vals["surco-zero"] = ev.values("surco-zero")
    means = {m: float(np.nanmean(v)) for m, v in vals.items()}
    best_t = min((m for m in vals if m.startswith("surco")), key=means.get)
    ls = vals["local-search"]
    beats = float(np.mean(vals[best_t] < ls - 1e-12 * np.abs(ls)))
    rep.target(f"{tag}, wall time of surco-zero: best SurCo-based method ({best_t}) mean "
               "cost / annealing's", means[best_t] / means["annealing"], "<=", 1.0)
    rep.target(f"{tag}, wall time of surco-zero: fraction of tasks where {best_t} beats "
               "local-search", beats, ">=", 0.8)
    failed = sum(r.status == "failed" for r in ev.runs + eq.runs)
    rep.target("runs that failed", failed, "<=", 0)
    rep.extra["tuning_on_train_tasks"] = TUNING
    rep.extra["equal_time_means"] = means
    rep.extra["settings_chosen_on"] = ("train-pool tasks, generate(3, seed=11, n_tables=50, "
                                       "split='train'); family SurCo settings: "
                                       + fam.zero_settings_note)
    rep.finish(table_columns=["setting", "budget", "method", "value", "rel_reference", "wins",
                              "ties", "losses", "p_sign", "seconds", "evaluations", "failed"])


if __name__ == "__main__":
    main()
