"""On-time-arrival routing (SurCo §5.3, LANCER): SurCo next to the mean–risk heuristic, local
search, annealing and SCIP, through the comparison harness, at equal wall time and at equal
evaluations of the cost.

    python -m bench.routing [--quick]

The cost is the late probability P(arrival > T) = 1 − P(on time) (`routing.FAMILY`); one
evaluation is the late probability of one distinct path. Settings: 5×5 grids in the
risk-sensitive regime (deadline LET mean + q·LET std, q ∈ {−1, 1, 2}) and the standard one
(deadline k × LET mean, k ∈ {0.9, 1.0, 1.1}), 25 test instances each; 10×10 (4 instances)
and 15×15 (2 instances) risk grids, q ∈ {−1, 1, 2}. ``--quick``: 3 instances of the 5×5 risk
settings and of the standard k = 0.9 one, 2 of the 10×10 risk q = −1 one; same sizes,
settings and budgets; fewer train instances and epochs for the prior.

Per setting, on test seeds 0, 1, … (SurCo's settings and the prior come from train seeds
>= `routing.TRAIN_SEED`):

1. own budget: LET, mean–risk, local search (steepest, first improvement), the exact optimum
   (brute force over all simple paths, 5×5 only), SurCo-zero, and on 5×5 SurCo-prior, its
   robust variant and SurCo-hybrid. The prior (`routing.train_prior`, one per regime, trained
   on train instances of all its q or k) is a residual over the mean–risk cost
   (`routing.mean_risk_theta`): θ = θ_mean-risk + network, the network's output starting at
   zero, trained end to end through the blackbox estimator plus a distillation term towards
   SurCo-zero's costs on the train instances (`routing.distill_targets`). The robust variant
   scores 4 candidate costs (the prior's, mean–risk's, 2 perturbations) by f in one batched
   solve;
2. equal wall time: local search (both), annealing and SCIP on the true objective given,
   instance by instance, the wall time each SurCo method spent;
3. equal evaluations: mean–risk, the local searches, annealing, SurCo-zero and -hybrid under
   `EVALS` evaluations each (SCIP evaluates its objective inside its own search, so it has no
   place here); SurCo-prior makes no evaluation and is set against the searches at one;
4. (5×5, issue 16) SurCo-zero (the family's settings and start) and SurCo-hybrid (from the
   better of prior and that start, `surco.prior.hybrid_start`, as the harness does) run the
   same `HYBRID_STEPS` steps without early stopping; their mean best-so-far late probability
   per step (Φ(best f), f = −z) gives the ratios at equal steps and hybrid's steps to reach
   zero's final mean.

Targets: for every SurCo method and setting, its mean cost / the best search baseline's at
equal wall time and at equal evaluations (<= 1); on the 5×5 risk regime, the share of
instances where LET is beaten by more than 0.01 in P (>= 1/3), SurCo-zero within 0.01 of the
optimum on the instances where LET is not optimal (>= 0.9 per q), and SurCo-zero's seconds per
instance (<= 1 s; one instance per call through the harness, compilation included); no failed
run. Issue 16, per 5×5 setting: SurCo-prior's (and the robust variant's) mean / mean–risk's
mean (own budget) <= 1, seconds per instance <= 0.05, worst instance ratio <= 1.25; hybrid's
mean / zero's after 1/3 and after all of zero's steps <= 1; hybrid's steps to zero's final
mean <= 1/3 of zero's steps. Writes bench/results/routing[-quick].json and
routing[-quick].png.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from bench._report import RESULTS, Report, compare, parse_args
from bench.prior import prior_targets

EVALS = 300
PARAMS = {"standard": ("k", (0.9, 1.0, 1.1)), "risk": ("q", (-1.0, 1.0, 2.0))}
SURCO = ("surco-zero", "surco-prior", "surco-prior-robust", "surco-hybrid")
PRIORS = ("surco-prior", "surco-prior-robust")
HEURISTICS = ("let", "mean-risk")
LOCAL = ("local-search", "local-search-first")
AT_TIME = LOCAL + ("annealing", "scip")
AT_EVALS = ("mean-risk",) + LOCAL + ("annealing",)
HYBRID_STEPS = 30


def _settings(quick: bool) -> list[tuple[int, str, float, int]]:
    """(n, regime, parameter value, test instances) per setting."""
    if quick:
        return ([(5, "risk", q, 3) for q in PARAMS["risk"][1]] + [(5, "standard", 0.9, 3)]
                + [(10, "risk", -1.0, 2)])
    return ([(5, r, v, 25) for r in ("risk", "standard") for v in PARAMS[r][1]]
            + [(10, "risk", q, 4) for q in PARAMS["risk"][1]]
            + [(15, "risk", q, 2) for q in PARAMS["risk"][1]])


def _train_prior(fam, n: int, regime: str, quick: bool, rep: Report):
    """The residual prior of one regime, trained on train seeds of all its q (or k) values:
    end to end plus distillation towards SurCo-zero's costs on the same train instances."""
    from surco.problems import routing as R
    pname, values = PARAMS[regime]
    per, epochs = (8, 8) if quick else (40, 25)
    train = [y for i, v in enumerate(values) for y in fam.generate(
        per, seed=R.TRAIN_SEED + 100 * i, n=n, regime=regime, **{pname: v})]
    val = [y for i, v in enumerate(values) for y in fam.generate(
        3 if quick else 8, seed=R.TRAIN_SEED + 1000 + 100 * i, n=n, regime=regime,
        **{pname: v})]
    t0 = time.perf_counter()
    targets = R.distill_targets(train)
    t_zero = time.perf_counter() - t0
    t0 = time.perf_counter()
    prior = R.train_prior(train, val_instances=val, epochs=epochs, distill=targets, key=0,
                          progress=True)
    key = f"{n}x{n} {regime}"
    rep.extra.setdefault("prior_train_seconds", {})[key] = {
        "zero_targets": round(t_zero, 1), "prior": round(time.perf_counter() - t0, 1)}
    rep.extra.setdefault("prior_history", {})[key] = {
        "train_instances": len(train), "val_instances": len(val),
        "train_f": prior.history.train_f, "val_f": prior.history.val_f,
        "best_epoch": prior.history.best_epoch,
        "targets_differing_from_mean_risk": int(sum(
            not np.array_equal(t.x, R.mean_risk(y).x) for t, y in zip(targets, train)))}
    prior.predict(train[0])  # compile outside the timed runs
    prior.predict(train[0], candidates=4)
    return prior


def _late_curve(results) -> np.ndarray:
    """Mean over instances of the best-so-far late probability per step, Φ(best f) with
    f = −z (a run that stopped early keeps its last value)."""
    from scipy.special import ndtr
    n = max(len(r.history["best_f"]) for r in results)
    return np.mean([ndtr(np.pad(np.asarray(r.history["best_f"], np.float64),
                                (0, n - len(r.history["best_f"])), mode="edge"))
                    for r in results], axis=0)


def _hybrid_targets(rep: Report, tag: str, fam, prior, test: list) -> None:
    """Issue 16: SurCo-hybrid against SurCo-zero at equal steps (no early stopping)."""
    import surco
    kw = {k: v for k, v in fam.zero_settings.items() if k not in ("init", "patience")}
    kw.update(steps=HYBRID_STEPS, patience=None)
    start = fam.zero_settings["init"]
    problem = fam.problem(test[0])
    zero_res = surco.zero(problem, list(test), init=np.stack([start(y) for y in test]), **kw)
    t0 = time.perf_counter()
    starts = [surco.prior.hybrid_start(prior, y, heuristic=start) for y in test]
    t_start = time.perf_counter() - t0
    hybrid_res = surco.zero(problem, list(test), init=np.stack([s[0] for s in starts]), **kw)
    zc, hc = _late_curve(zero_res), _late_curve(hybrid_res)
    steps, third = HYBRID_STEPS, HYBRID_STEPS // 3   # curve index t: after t steps
    reach = surco.prior.steps_to_reach(hc, float(zc[-1]))
    rep.target(f"{tag}: hybrid mean late probability / zero's after {third} steps",
               float(hc[min(third, len(hc) - 1)] / zc[min(third, len(zc) - 1)]), "<=", 1.0)
    rep.target(f"{tag}: hybrid mean late probability / zero's after {steps} steps",
               float(hc[-1] / zc[-1]), "<=", 1.0)
    rep.target(f"{tag}: hybrid's steps to zero's final mean ({steps} steps)",
               float(reach if reach is not None else np.inf), "<=", steps / 3)
    rep.extra.setdefault("hybrid_curves", {})[tag] = {
        "zero": zc.tolist(), "hybrid": hc.tolist(), "hybrid_steps_to_zero_final": reach,
        "hybrid_started_from": [s[1] for s in starts],
        "zero_seconds_per_instance": float(np.mean([r.seconds for r in zero_res])),
        "hybrid_seconds_per_instance": float(np.mean([r.seconds for r in hybrid_res])
                                             + t_start / len(test))}


def _best(cmp, methods) -> str:
    return min(methods, key=lambda m: np.nanmean(cmp.values(m)))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import surco
    from surco.problems import routing as R

    fam = R.FAMILY
    rep = Report("routing", args.quick)
    rep.extra["budget_evaluations"] = EVALS
    rep.extra["prior_settings"] = {k: (list(v) if isinstance(v, tuple) else v)
                                   for k, v in R.PRIOR_SETTINGS.items()}
    rep.extra["settings_chosen_on"] = fam.zero_settings_note
    rep.extra["failed_runs"] = {}
    priors: dict = {}
    risk5: list = []
    plotted = False
    for n, regime, v, per in _settings(args.quick):
        pname = PARAMS[regime][0]
        tag = f"{n}x{n} {regime} {pname}={v:g}"
        test = fam.generate(per, seed=0, n=n, regime=regime, **{pname: v})
        prior = None
        if n == 5:
            if (n, regime) not in priors:
                print(f"[{n}x{n} {regime}] training SurCo-prior", flush=True)
                priors[(n, regime)] = _train_prior(fam, n, regime, args.quick, rep)
            prior = priors[(n, regime)]
        surco_here = [m for m in SURCO if prior is not None or m == "surco-zero"]
        own_methods = list(HEURISTICS) + list(LOCAL) + (["exact"] if n <= 5 else []) + surco_here
        print(f"[{tag}] own budgets, {per} instances", flush=True)
        own = compare(fam, test, store=args.store, setting=tag, methods=own_methods, prior=prior)
        for r in own.to_rows(setting=tag, budget="own"):
            rep.row(**r)
        rep.add_map(own, f"{tag}, own")
        rep.extra["failed_runs"][f"{tag}, own"] = sum(r.status == "failed" for r in own.runs)
        print(own.table(), flush=True)
        if prior is not None:
            prior_targets(rep, tag, own, "mean-risk")
            _hybrid_targets(rep, tag, fam, prior, test)

        rel = {}
        for m in surco_here:
            eq = compare(fam, test, store=args.store, setting=tag, methods=list(AT_TIME), budget=own.matched_budget(m))
            for r in eq.to_rows(setting=tag, budget=f"time of {m}"):
                rep.row(**r)
            rep.extra["failed_runs"][f"{tag}, time of {m}"] = sum(
                r.status == "failed" for r in eq.runs)
            best = _best(eq, AT_TIME)
            rel[(m, "time")] = (float(np.nanmean(own.values(m)) / np.nanmean(eq.values(best))),
                                best)
        at_ev = [m for m in ("surco-zero", "surco-hybrid") if m in surco_here]
        ev = compare(fam, test, store=args.store, setting=tag, methods=list(AT_EVALS) + at_ev,
                           budget=surco.Budget(evaluations=EVALS), prior=prior)
        for r in ev.to_rows(setting=tag, budget=f"{EVALS} evaluations"):
            rep.row(**r)
        rep.add_map(ev, f"{tag}, {EVALS} evaluations")
        rep.extra["failed_runs"][f"{tag}, {EVALS} evaluations"] = sum(
            r.status == "failed" for r in ev.runs)
        print(ev.table(), flush=True)
        best_ev = _best(ev, AT_EVALS)
        for m in at_ev:
            rel[(m, "evals")] = (float(np.nanmean(ev.values(m)) / np.nanmean(ev.values(best_ev))),
                                 best_ev)
        if "surco-prior" in surco_here:
            one = compare(fam, test, store=args.store, setting=tag, methods=list(AT_EVALS), budget=surco.Budget(evaluations=1),
                                progress=False)
            best_one = _best(one, AT_EVALS)
            for m in PRIORS:
                rel[(m, "evals")] = (float(np.nanmean(own.values(m))
                                           / np.nanmean(one.values(best_one))), best_one)
        for (m, kind), (val, best) in rel.items():
            what = "equal wall time" if kind == "time" else "equal evaluations"
            rep.target(f"{tag}: {m} mean cost / best search baseline's ({best}) at {what}",
                       val, "<=", 1.0)
        if n == 5 and regime == "risk":
            risk5.append((v, own))
        if not plotted:
            path = RESULTS / f"routing{'-quick' if args.quick else ''}.png"
            own.merge(ev).plot(path, title=f"routing {tag}: own budgets and {EVALS}-evaluation runs")
            rep.extra["plot"] = str(path.relative_to(RESULTS.parent.parent))
            plotted = True

    if risk5:
        beaten, secs = [], []
        for q, own in risk5:
            opt, let, z = (1 - own.values(m) for m in ("exact", "let", "surco-zero"))
            beaten.append(opt - let > 0.01)
            non_let = opt - let > 1e-9
            share = float(np.mean(z[non_let] >= opt[non_let] - 0.01)) if non_let.any() else 1.0
            rep.target(f"5x5 risk q={q:g}: surco-zero within 0.01 of the optimum, share of the "
                       f"{int(non_let.sum())} instances where LET is not optimal", share, ">=", 0.9)
            secs.append(float(np.mean([r.seconds for r in own.runs if r.method == "surco-zero"])))
        rep.target("5x5 risk: share of instances where LET is beaten by > 0.01",
                   float(np.mean(np.concatenate(beaten))), ">=", 1 / 3)
        rep.target("5x5 risk: surco-zero seconds per instance (worst q; one instance per call, "
                   "compilation included)", max(secs), "<=", 1.0)
    rep.target("runs that failed, all settings and budgets",
               sum(rep.extra["failed_runs"].values()), "<=", 0)
    rep.finish(table_columns=["setting", "budget", "method", "value", "rel_reference", "wins",
                              "ties", "losses", "p_sign", "seconds", "evaluations", "failed"])


if __name__ == "__main__":
    main()
