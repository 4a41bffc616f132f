"""SurCo on the enumerable nonlinear assignment problem (`surco.problems.assignment`) next to
the mean-cost heuristic, local search, annealing and SCIP, through the comparison harness, at
equal wall time and at equal evaluations of f.

    python -m bench.surco [--quick]

Settings: n tasks × m machines, n = 10 and 13 on 3 machines (exact optimum by enumeration)
and, in the full run, 30 tasks on 5 machines (no exact optimum); 20 test instances each
(10 at 30×5), 5 with ``--quick`` (and no 30×5). Test instances come from seed 0; SurCo's
settings (`assignment.ZERO_SETTINGS`) and the prior from seeds >= `assignment.TRAIN_SEED`.

Per setting:

1. own budgets: the mean-cost heuristic, local search (first and steepest improvement,
   multi-start), the exact optimum (enumeration), SurCo-zero, SurCo-prior (a network trained
   on train instances of that size) and SurCo-hybrid;
2. equal wall time: local search (both), annealing and SCIP on the true objective (a convex
   MIQP) given, instance by instance, the wall time each SurCo method spent (SurCo-prior's
   forward pass and solve end before a search has evaluated its start, so the searches
   return their start, the mean-cost plan, computed past that time; SCIP is left out there,
   its time limit would end before its first solution);
3. equal evaluations: local search (both), annealing, SurCo-zero and -hybrid under `EVALS`
   evaluations of f each (one evaluation = f of one distinct plan); SCIP evaluates f inside
   its own search and has no place here; SurCo-prior makes no evaluation and is set against
   the searches at one.

Targets: for every SurCo method and setting, its mean cost / the best search baseline's at
equal wall time and at equal evaluations (<= 1); no failed run; and, from the former version
of this bench, the solver's share of a SurCo-zero step (blackbox, the largest enumerable
size, >= 0.70). Writes bench/results/surco[-quick].json and surco[-quick].png.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from bench._report import RESULTS, Report, compare, parse_args

EVALS = 300
SURCO = ("surco-zero", "surco-prior", "surco-hybrid")
LOCAL = ("local-search-first", "local-search-steepest")
SEARCH = LOCAL + ("annealing",)
AT_TIME = SEARCH + ("scip",)


def _settings(quick: bool) -> list[tuple[int, int, int]]:
    """(n, m, test instances) per setting."""
    if quick:
        return [(10, 3, 5), (13, 3, 5)]
    return [(10, 3, 20), (13, 3, 20), (30, 5, 10)]


def _train_prior(fam, n: int, m: int, quick: bool, rep: Report):
    import surco
    from surco.problems import assignment as A
    count, epochs = (30, 5) if quick else (100, 30)
    train = fam.generate(count, seed=A.TRAIN_SEED + n, n=n, m=m)
    val = fam.generate(5, seed=A.TRAIN_SEED + 1000 + n, n=n, m=m)
    kw = {k: v for k, v in fam.zero_settings.items()
          if k in ("estimator", "projection", "backend", "key")}
    t0 = time.perf_counter()
    prior = surco.prior.train(fam.problem(train[0]), train, val_instances=val, epochs=epochs,
                              batch_size=10, lr=1e-3, patience=None, progress=True, **kw)
    rep.extra.setdefault("prior_train_seconds", {})[f"{n}x{m}"] = round(
        time.perf_counter() - t0, 1)
    prior.predict(train[0])  # compile outside the timed runs
    return prior


def _best(cmp, methods) -> str:
    return min(methods, key=lambda m: np.nanmean(cmp.values(m)))


def _solver_share(n: int, m: int, quick: bool) -> float:
    """Solver seconds / step seconds of SurCo-zero (blackbox λ = 10), steps 2.. (after
    compilation), on test instances solved together."""
    import surco
    from surco.problems import assignment as A
    test = A.FAMILY.generate(5, seed=0, n=n, m=m)
    z = surco.zero(A.make_problem(n, m), test, estimator="blackbox", lam=10.0,
                   steps=30 if quick else 100, lr=0.1, key=0, backend="cpsat",
                   no_progress_steps=None)
    h = z[0].history
    k = len(h["seconds"]) - 1
    step_s = (h["seconds"][-1] - h["seconds"][1]) / max(1, k - 1)
    solver_s = sum(r.history["solver_seconds"][-1] - r.history["solver_seconds"][1]
                   for r in z) / max(1, k - 1)
    return float(solver_s / step_s)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import surco
    from surco.problems import assignment as A

    fam = A.FAMILY
    rep = Report("surco", args.quick)
    rep.extra["budget_evaluations"] = EVALS
    rep.extra["settings_chosen_on"] = fam.zero_settings_note
    rep.extra["failed_runs"] = {}
    plotted = False
    for n, m, per in _settings(args.quick):
        tag = f"n={n},m={m}"
        test = fam.generate(per, seed=0, n=n, m=m)
        print(f"[{tag}] training SurCo-prior", flush=True)
        prior = _train_prior(fam, n, m, args.quick, rep)
        exact = m ** n <= 2e7
        own_methods = ["mean-cost", *LOCAL, *(["exact"] if exact else []), *SURCO]
        print(f"[{tag}] own budgets, {per} instances", flush=True)
        own = compare(fam, test, store=args.store, setting=tag, methods=own_methods, prior=prior)
        for r in own.to_rows(setting=tag, budget="own"):
            rep.row(**r)
        rep.add_map(own, f"{tag}, own")
        rep.extra["failed_runs"][f"{tag}, own"] = sum(r.status == "failed" for r in own.runs)
        print(own.table(), flush=True)
        if exact:
            opt = own.values("exact")
            rep.extra.setdefault("gap_to_optimum_pct", {})[tag] = {
                meth: float(np.nanmean((own.values(meth) - opt) / opt) * 100)
                for meth in own_methods}

        rel = {}
        for meth in SURCO:
            eq = compare(fam, test, store=args.store, setting=tag, methods=list(SEARCH if meth == "surco-prior" else AT_TIME),
                               budget=own.matched_budget(meth))
            for r in eq.to_rows(setting=tag, budget=f"time of {meth}"):
                rep.row(**r)
            rep.extra["failed_runs"][f"{tag}, time of {meth}"] = sum(
                r.status == "failed" for r in eq.runs)
            best = _best(eq, SEARCH)
            rel[(meth, "time")] = (float(np.nanmean(own.values(meth))
                                         / np.nanmean(eq.values(best))), best)
        at_ev = ["surco-zero", "surco-hybrid"]
        ev = compare(fam, test, store=args.store, setting=tag, methods=list(SEARCH) + at_ev,
                           budget=surco.Budget(evaluations=EVALS), prior=prior)
        for r in ev.to_rows(setting=tag, budget=f"{EVALS} evaluations"):
            rep.row(**r)
        rep.add_map(ev, f"{tag}, {EVALS} evaluations")
        rep.extra["failed_runs"][f"{tag}, {EVALS} evaluations"] = sum(
            r.status == "failed" for r in ev.runs)
        print(ev.table(), flush=True)
        best_ev = _best(ev, SEARCH)
        for meth in at_ev:
            rel[(meth, "evals")] = (float(np.nanmean(ev.values(meth))
                                          / np.nanmean(ev.values(best_ev))), best_ev)
        one = compare(fam, test, store=args.store, setting=tag, methods=list(SEARCH), budget=surco.Budget(evaluations=1),
                            progress=False)
        best_one = _best(one, SEARCH)
        rel[("surco-prior", "evals")] = (float(np.nanmean(own.values("surco-prior"))
                                               / np.nanmean(one.values(best_one))), best_one)
        for (meth, kind), (val, best) in rel.items():
            what = ("equal wall time" if kind == "time" else
                    "equal evaluations (1 for surco-prior)" if meth == "surco-prior" else
                    f"equal evaluations ({EVALS})")
            rep.target(f"{tag}: {meth} mean cost / best search baseline's ({best}) at {what}",
                       val, "<=", 1.0)
        if not plotted:
            path = RESULTS / f"surco{'-quick' if args.quick else ''}.png"
            own.merge(ev).plot(path, title=f"assignment {tag}: own budgets and "
                                           f"{EVALS}-evaluation runs")
            rep.extra["plot"] = str(path.relative_to(RESULTS.parent.parent))
            plotted = True

    big = max((s for s in _settings(args.quick) if s[1] ** s[0] <= 2e7), key=lambda s: s[0])
    print(f"[n={big[0]},m={big[1]}] solver share of a SurCo-zero step", flush=True)
    rep.target(f"solver share of a SurCo-zero step at n={big[0]},m={big[1]} (blackbox, CP-SAT)",
               _solver_share(big[0], big[1], args.quick), ">=", 0.70)
    rep.target("runs that failed, all settings and budgets",
               sum(rep.extra["failed_runs"].values()), "<=", 0)
    rep.finish(table_columns=["setting", "budget", "method", "value", "rel_reference", "wins",
                              "ties", "losses", "p_sign", "seconds", "evaluations", "failed"])


if __name__ == "__main__":
    main()
