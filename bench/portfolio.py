"""Combinatorial portfolio selection: SurCo next to random portfolios, the linearisation,
local search and annealing over the selection, and SCIP on the true objective, through the
comparison harness, at equal wall time and at equal evaluations of f.

    python -m bench.portfolio [--quick]

Settings:

* ``n=100``: 100 assets from the seeded factor model (`portfolio.FAMILY`, LANCER's third-order
  objective: α = 0.1, β = 0.5, λ = 0.01, 3–10 assets, weights in [0.01, 0.2]); 8 test
  instances (3 with ``--quick``) from seed 0; SurCo's settings and the prior come from seeds
  >= `portfolio.TRAIN_SEED`;
* ``port1 rho=…``: the OR-Library Hang Seng instance (Chang et al. 2000, N = 31, found by
  `portfolio.find_orlib`) with their cardinality-constrained mean–variance problem, exactly
  K = 10 assets with weights in [0.01, 1], at risk weights ρ ∈ {0.2, 0.5, 0.8}
  (`ccmv_config`).

SurCo runs on the family's problem, whose solver answers every MILP solve with the chosen
support's optimal weights (`portfolio.SupportSolver`; the exact QP optimum on port1), so its
plans need no polishing. Methods:

* ``surco-zero``: SurCo-zero with the family's settings (`portfolio.ZERO_SETTINGS_NOTE`:
  chosen on train instances for n=100 and on risk weights ρ ∈ {0.35, 0.65, 0.9}, never on
  the reported ones, for port1);
* ``surco-zero+search``: SurCo-zero, then local search over supports from its support
  (`portfolio.surco_search_method`);
* ``surco-zero-milp+polish``: SurCo-zero on the plain MILP (bang-bang plans, scored raw),
  its best plan's weights polished afterwards: last session's method, for comparison;
* on ``n=100``, SurCo-prior and -hybrid.

Per setting:

1. own budgets: random (best of 20), the linearisation (+ its weights polished), the SurCo
   methods; on port1 the exact optimum (SCIP run until it proves optimality,
   `EXACT_SECONDS` at most); on ``n=100`` SCIP on the full (nonconvex) objective with a
   limit of `SCIP_LONG` seconds;
2. equal wall time: local search over the selection (first and steepest improvement),
   annealing and SCIP on the true objective, given instance by instance the wall time of
   each timed SurCo method (SurCo-zero, SurCo-zero+search, SurCo-hybrid; SurCo-prior's
   without SCIP, whose time limit would end before its first solution; a search whose
   time ends before it has scored its start returns the polished linearisation, computed
   past that time);
3. equal evaluations: the searches and the SurCo methods under `EVALS` evaluations each (one
   evaluation = f of one plan; the searches score a support by f of its optimised weights,
   one evaluation per support, as SurCo's plans are). SurCo-prior makes no evaluation and is
   set against the searches at one.

Targets: on port1 every SurCo method's gap to SCIP's proven optimum (op "<=", 1 %); for
every SurCo method and setting, its mean objective relative to SCIP's and to the best
search baseline's at equal wall time, and to the best search's at equal evaluations
(op "<=", 1.0; f is negative here, so the ratio is written as (other − SurCo) / |other|
+ 1, which is <= 1 exactly when SurCo's mean is no larger); no failed run. Writes
bench/results/portfolio[-quick].json and portfolio[-quick].png.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from bench._report import RESULTS, Report, compare, parse_args

EVALS = 300
N = 100
RHOS = (0.2, 0.5, 0.8)
SEARCH = ("local-search-first", "local-search-steepest", "annealing")
AT_TIME = SEARCH + ("scip",)
EXACT_SECONDS = 600.0
#: SCIP's long run on n=100 (seconds; --quick uses 30).
SCIP_LONG = 120.0
#: Gap to SCIP's proven optimum on port1 that SurCo must stay within (percent).
GAP_TARGET_PCT = 1.0


def _milp_polished(config):
    """SurCo-zero on the plain MILP over (x, z) (its bang-bang plans scored raw), then its best
    plan's weights polished (`polish`, one more evaluation)."""
    import surco
    from surco.problems import portfolio as P

    plain = P.portfolio_family(config, reoptimise=False)
    zs = {k: v for k, v in plain.zero_settings.items() if k != "lam"}
    zs.update(estimator="neg_identity", projection="standardize")   # last session's settings
    zero = surco.surco_methods(dataclasses.replace(plain, zero_settings=zs))["surco-zero"]

    def run(y, meter):
        X = P.polish(zero(y, meter), y, config)
        meter(X)
        return X
    return run


def _relative(surco_mean: float, other_mean: float) -> float:
    """1 + (SurCo − other) / |other|: <= 1 exactly when SurCo's mean is no larger (f may be
    negative, where a plain ratio would flip)."""
    return float(1.0 + (surco_mean - other_mean) / abs(other_mean))


def _best(cmp, methods) -> str:
    return min(methods, key=lambda m: np.nanmean(cmp.values(m)))


def _failed(cmp) -> int:
    return sum(r.status == "failed" for r in cmp.runs)


def _setting(rep: Report, tag: str, fam, config, test, prior, quick: bool, exact: bool,
             plot_path=None, store: str | None = None) -> None:
    import surco
    from surco.problems import portfolio as P

    zm = surco.surco_methods(fam, prior)
    methods = {"surco-zero": zm["surco-zero"],
               "surco-zero+search": P.surco_search_method(fam, config)}
    if prior is not None:
        methods["surco-prior"] = zm["surco-prior"]
        methods["surco-hybrid"] = zm["surco-hybrid"]
    own_methods = {"random": fam.baselines["random"],
                   "linearisation": fam.baselines["linearisation"], **methods,
                   "surco-zero-milp+polish": _milp_polished(config)}
    if exact:
        own_methods["exact"] = fam.exact
    print(f"[{tag}] own budgets, {len(test)} instances", flush=True)
    budget = surco.Budget(seconds=EXACT_SECONDS) if exact else surco.Budget()
    own = compare(fam, test, own_methods, budget=lambda m, i: (
        budget if m == "exact" else surco.Budget()), store=store, setting=tag)
    for r in own.to_rows(setting=tag, budget="own"):
        rep.row(**r)
    rep.add_map(own, f"{tag}, own")
    rep.extra["failed_runs"][f"{tag}, own"] = _failed(own)
    print(own.table(), flush=True)
    if not exact:
        long = 30.0 if quick else SCIP_LONG
        sc = compare(fam, test, ["scip"], budget=surco.Budget(seconds=long),
                           store=store, setting=tag)
        for r in sc.to_rows(setting=tag, budget=f"{long:g} s"):
            rep.row(**r)
        rep.extra["failed_runs"][f"{tag}, scip {long:g} s"] = _failed(sc)
    else:
        opt = own.values("exact")
        statuses = [r.status for r in own.runs if r.method == "exact"]
        gaps = {m: float(np.nanmean((own.values(m) - opt) / np.abs(opt)) * 100)
                for m in own_methods if m != "exact"}
        rep.extra.setdefault("gap_to_scip_optimum_pct", {})[tag] = gaps
        rep.extra.setdefault("scip_optimum", {})[tag] = {
            "value": float(np.nanmean(opt)), "proved": all(s == "ok" for s in statuses)}
        print(f"[{tag}] gap to SCIP's optimum (%):", gaps, flush=True)
        for m in methods:
            rep.target(f"{tag}: {m} gap to SCIP's proven optimum (%)", gaps[m], "<=",
                       GAP_TARGET_PCT)

    rel = {}
    timed = ["surco-zero", "surco-zero+search"] + (
        ["surco-hybrid", "surco-prior"] if prior is not None else [])
    for ref in timed:
        at = SEARCH if ref == "surco-prior" else AT_TIME
        eq = compare(fam, test, {m: fam.baselines[m] for m in at},
                           budget=own.matched_budget(ref), store=store, setting=tag)
        for r in eq.to_rows(setting=tag, budget=f"time of {ref}"):
            rep.row(**r)
        rep.extra["failed_runs"][f"{tag}, time of {ref}"] = _failed(eq)
        print(eq.table(), flush=True)
        mine = np.nanmean(own.values(ref))
        best = _best(eq, SEARCH)
        rel[(ref, "time", "the best search baseline's")] = (
            _relative(mine, np.nanmean(eq.values(best))), best)
        if "scip" in at:
            rel[(ref, "time", "SCIP's")] = (_relative(mine, np.nanmean(eq.values("scip"))),
                                            "scip")
    at_ev = {m: methods[m] for m in methods if m != "surco-prior"}
    ev = compare(fam, test, {**{m: fam.baselines[m] for m in SEARCH}, **at_ev},
                       budget=surco.Budget(evaluations=EVALS), store=store, setting=tag)
    for r in ev.to_rows(setting=tag, budget=f"{EVALS} evaluations"):
        rep.row(**r)
    rep.add_map(ev, f"{tag}, {EVALS} evaluations")
    rep.extra["failed_runs"][f"{tag}, {EVALS} evaluations"] = _failed(ev)
    print(ev.table(), flush=True)
    best_ev = _best(ev, SEARCH)
    for v in at_ev:
        rel[(v, "evals", "the best search baseline's")] = (
            _relative(np.nanmean(ev.values(v)), np.nanmean(ev.values(best_ev))), best_ev)
    if prior is not None:
        one = compare(fam, test, {m: fam.baselines[m] for m in SEARCH},
                            budget=surco.Budget(evaluations=1), progress=False,
                            store=store, setting=tag)
        best_one = _best(one, SEARCH)
        rel[("surco-prior", "evals", "the best search baseline's")] = (
            _relative(np.nanmean(own.values("surco-prior")), np.nanmean(one.values(best_one))),
            best_one)
    for (v, kind, other), (val, best) in rel.items():
        what = ("equal wall time" if kind == "time" else
                "equal evaluations (1)" if v == "surco-prior" else
                f"equal evaluations ({EVALS})")
        name = other if best == "scip" else f"{other[:-2]} ({best})'s"
        rep.target(f"{tag}: {v} mean f relative to {name} at {what}", val, "<=", 1.0)
    if plot_path is not None:
        own.merge(ev).plot(plot_path, title=f"portfolio {tag}: own budgets and "
                                            f"{EVALS}-evaluation runs")
        rep.extra["plot"] = str(plot_path.relative_to(RESULTS.parent.parent))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import surco
    from surco.problems import portfolio as P

    rep = Report("portfolio", args.quick)
    rep.extra["budget_evaluations"] = EVALS
    rep.extra["failed_runs"] = {}
    fam = P.FAMILY
    rep.extra["settings_chosen_on"] = fam.zero_settings_note
    config = P.PortfolioConfig()

    n_test, n_train, epochs = (3, 12, 3) if args.quick else (8, 40, 15)
    test = fam.generate(n_test, seed=0, n=N)
    train = fam.generate(n_train, seed=P.TRAIN_SEED, n=N)
    val = fam.generate(3, seed=P.TRAIN_SEED + 1, n=N)
    print(f"[n={N}] training SurCo-prior on {n_train} instances", flush=True)
    kw = {k: v for k, v in fam.zero_settings.items()
          if k in ("estimator", "projection", "lam", "backend", "key")}
    t0 = time.perf_counter()
    prior = surco.prior.train(fam.problem(train[0]), train, val_instances=val, epochs=epochs,
                              batch_size=4, lr=3e-3, patience=None, progress=True, **kw)
    rep.extra["prior_train_seconds"] = round(time.perf_counter() - t0, 1)
    prior.predict(train[0])
    png = RESULTS / f"portfolio{'-quick' if args.quick else ''}.png"
    _setting(rep, f"n={N}", fam, config, test, prior, args.quick, exact=False, plot_path=png,
             store=args.store)

    y = P.to_instance(P.load_orlib(P.find_orlib("port1")))
    for rho in RHOS:
        cfg = P.ccmv_config(rho, K=10)
        f_rho = P.portfolio_family(cfg, name=f"portfolio-port1-rho{rho:g}")
        _setting(rep, f"port1 K=10 rho={rho:g}", f_rho, cfg, [y], None, args.quick, exact=True,
                 store=args.store)

    rep.target("runs that failed, all settings and budgets",
               sum(rep.extra["failed_runs"].values()), "<=", 0)
    rep.finish(table_columns=["setting", "budget", "method", "value", "rel_reference", "wins",
                              "ties", "losses", "p_sign", "seconds", "evaluations", "failed"])


if __name__ == "__main__":
    main()
