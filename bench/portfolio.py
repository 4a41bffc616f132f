"""Combinatorial portfolio selection (LANCER's third-order objective): SurCo against SCIP.

    python -m bench.portfolio [--quick]

100 assets from the seeded factor model (`surco.problems.portfolio.generate`), LANCER's
defaults (α = 0.1, β = 0.5, λ = 0.01, 3–10 assets, weights in [0.01, 0.2]); 8 test
instances (3 with --quick). Per method: mean objective f (lower is better), seconds per
instance, the mean relative gap to the best plan any method found for the instance, the
number of assets held and how many held weights lie strictly inside (l, u).

Methods: the best of 20 random feasible portfolios; the linearisation (one MILP solve at
c = ∇f(x̄)); SCIP's mean–variance MIQP (same cardinality and turnover terms, scored on the
full f); SurCo-zero (blackbox λ = 10, Adam lr 0.1, at most 150 steps, patience 50, started from
the linearisation), -prior and -hybrid, each raw (the MILP's own plan) and polished
(weights re-optimised on SurCo's support, `portfolio.polish`); SCIP on the full MINLP with
the time SurCo-zero+polish took on that instance ("equal time"), and with a long limit.

Then the OR-Library Hang Seng instance (Chang et al. 2000; N = 31, read from
../shared/data/orlib/port1.txt) with their cardinality-constrained mean–variance problem
(exactly K = 10 assets, weights in [0.01, 1]) at three risk weights: SCIP's MIQP against
SurCo-zero+polish.

Writes bench/results/portfolio[-quick].json and a plot beside it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import surco
from bench._report import RESULTS, Report, parse_args
from surco.problems import portfolio as P
from surco.solvers import SolverError, make_solver

N = 100
CFG = P.PortfolioConfig()
ZERO_KW = dict(estimator="blackbox", lam=10.0, lr=0.1, steps=150, patience=50, key=0,
               backend="highs")
PORT1 = Path(__file__).resolve().parents[1].parent / "shared/data/orlib/port1.txt"


def _held(X, cfg):
    x = X[:, 0][X[:, 1] > 0.5]
    interior = np.sum((x > cfg.l + 1e-6) & (x < cfg.u - 1e-6))
    return len(x), int(interior)


def _polish_all(plans, ys, cfg):
    out, secs = [], []
    for X, y in zip(plans, ys):
        t0 = time.perf_counter()
        out.append(P.polish(X, y, cfg))
        secs.append(time.perf_counter() - t0)
    return out, np.array(secs)


def _scip(y, cfg, **kw):
    """`scip_portfolio`, or None (reported as a failure) when SCIP errs."""
    try:
        return P.scip_portfolio(y, cfg, **kw)
    except SolverError as exc:
        print(f"SCIP failed: {exc}", flush=True)
        return None


def _scip_method(runs):
    return ([None if r is None else r.X for r in runs],
            np.array([np.nan if r is None else r.seconds for r in runs]))


def _zero(problem, ys, cfg, init):
    t0 = time.perf_counter()
    res = surco.zero(problem, ys, init=init, **ZERO_KW)
    per = (time.perf_counter() - t0) / len(ys)
    return [r.x for r in res], per


def synthetic(rep: Report, quick: bool) -> dict:
    n_test, n_train, epochs = (3, 12, 5) if quick else (8, 40, 15)
    long_limit = 30.0 if quick else 120.0
    miqp_limit = 20.0 if quick else 60.0
    problem = P.make_problem(N, CFG)
    spec = P.omega(N, CFG)
    test = [P.generate(N, s) for s in range(n_test)]
    train = [P.generate(N, 1000 + s) for s in range(n_train)]
    val = [P.generate(N, 2000 + s) for s in range(3)]
    results: dict[str, tuple[list, np.ndarray]] = {}   # method -> (plans, seconds per instance)

    print(f"[{N} assets] baselines", flush=True)
    rnd = [P.random_feasible(y, CFG, num=20, seed=0) for y in test]
    results["random-best-of-20"] = ([r.X for r in rnd], np.array([r.seconds for r in rnd]))
    lin_solver = make_solver(spec, backend="highs")
    P.linearised_cost(test[0], CFG)   # compile the gradient outside the timing
    lin, lin_s = [], []
    for y in test:
        t0 = time.perf_counter()
        lin.append(lin_solver.solve(P.linearised_cost(y, CFG)).x)
        lin_s.append(time.perf_counter() - t0)
    results["linearisation"] = (lin, np.array(lin_s))
    miqp = [_scip(y, CFG, mode="mv", time_limit=miqp_limit) for y in test]
    results[f"scip-miqp-mv ({miqp_limit:g}s)"] = _scip_method(miqp)

    print(f"[{N} assets] SurCo-zero", flush=True)
    t0 = time.perf_counter()
    theta0 = np.stack([P.linearised_cost(y, CFG) for y in test])
    init_s = (time.perf_counter() - t0) / n_test
    z_plans, z_s = _zero(problem, test, CFG, theta0)
    z_s += init_s
    zp_plans, zp_pol_s = _polish_all(z_plans, test, CFG)
    results["surco-zero"] = (z_plans, np.full(n_test, z_s))
    results["surco-zero+polish"] = (zp_plans, z_s + zp_pol_s)

    print(f"[{N} assets] SurCo-prior: training on {n_train} instances", flush=True)
    t0 = time.perf_counter()
    prior = surco.prior.train(problem, train, val_instances=val, estimator="blackbox", lam=10.0,
                              epochs=epochs, batch_size=8, lr=3e-3, key=0, backend="highs",
                              progress=True)
    rep.row(setting=f"n={N}", method="surco-prior training", seconds=time.perf_counter() - t0,
            instances=n_train, epochs=epochs)
    t0 = time.perf_counter()
    pr = prior.predict(test)
    pr_s = (time.perf_counter() - t0) / n_test
    pp_plans, pp_pol_s = _polish_all([r.x for r in pr], test, CFG)
    results["surco-prior"] = ([r.x for r in pr], np.full(n_test, pr_s))
    results["surco-prior+polish"] = (pp_plans, pr_s + pp_pol_s)
    theta_prior = np.stack([np.asarray(prior.theta(y)) for y in test])
    h_plans, h_s = _zero(problem, test, CFG, theta_prior)
    hp_plans, hp_pol_s = _polish_all(h_plans, test, CFG)
    results["surco-hybrid"] = (h_plans, np.full(n_test, h_s + pr_s))
    results["surco-hybrid+polish"] = (hp_plans, h_s + pr_s + hp_pol_s)

    print(f"[{N} assets] SCIP on the full objective", flush=True)
    eq = [_scip(y, CFG, mode="full", time_limit=float(t))
          for y, t in zip(test, results["surco-zero+polish"][1])]
    results["scip-full (equal time)"] = _scip_method(eq)
    lng = [_scip(y, CFG, mode="full", time_limit=long_limit) for y in test]
    results[f"scip-full ({long_limit:g}s)"] = _scip_method(lng)

    F = {m: np.array([np.nan if X is None else P.objective_np(X[:, 0], y, CFG)
                      for X, y in zip(plans, test)]) for m, (plans, _) in results.items()}
    best = np.nanmin(np.stack(list(F.values())), axis=0)
    for m, (plans, secs) in results.items():
        ok = [X for X in plans if X is not None]
        assert all(spec.contains(X) for X in ok), f"{m}: a plan violates Ω"
        held = np.array([_held(X, CFG) for X in ok]) if ok else np.full((1, 2), np.nan)
        rep.row(setting=f"n={N}", method=m, instances=n_test, failed=len(plans) - len(ok),
                objective=float(np.mean(F[m])), seconds=float(np.nanmean(secs)),
                gap_to_best_pct=float(np.mean((F[m] - best) / np.abs(best)) * 100),
                held=float(held[:, 0].mean()), interior=float(held[:, 1].mean()))
    rep.extra["scip_full_long_gap"] = [None if r is None else float(r.info["gap"]) for r in lng]
    return F


def orlib(rep: Report, quick: bool) -> None:
    if not PORT1.is_file():
        raise FileNotFoundError(f"OR-Library Hang Seng data not found at {PORT1}")
    data = P.load_orlib(PORT1)
    y = P.to_instance(data)
    spec_limit = 30.0 if quick else 60.0
    for rho in (0.2, 0.5, 0.8):
        cfg = P.ccmv_config(rho, K=10)
        problem = P.make_problem(data.n, cfg)
        setting = f"port1 K=10 rho={rho:g}"
        print(f"[{setting}]", flush=True)
        mi = _scip(y, cfg, mode="mv", time_limit=spec_limit)
        t0 = time.perf_counter()
        plans, _ = _zero(problem, [y], cfg, P.linearised_cost(y, cfg)[None])
        zs = time.perf_counter() - t0
        pol = P.polish(plans[0], y, cfg, steps=1000)
        zps = time.perf_counter() - t0
        eq = _scip(y, cfg, mode="mv", time_limit=zps)
        rnd = P.random_feasible(y, cfg, num=20, seed=0)
        spec = P.omega(data.n, cfg)
        for m, res in ((f"scip-miqp ({spec_limit:g}s)", mi), ("scip-miqp (equal time)", eq)):
            if res is None:
                rep.row(setting=setting, method=m, instances=1, failed=1, status="error")
        for m, X, s, extra in (
                *((f"scip-miqp ({spec_limit:g}s)", mi.X, mi.seconds, {"status": mi.status}),) * (mi is not None),
                *(("scip-miqp (equal time)", eq.X, eq.seconds, {"status": eq.status}),) * (eq is not None),
                ("surco-zero", plans[0], zs, {}), ("surco-zero+polish", pol, zps, {}),
                ("random-best-of-20", rnd.X, rnd.seconds, {})):
            assert spec.contains(X), m
            rep.row(setting=setting, method=m, instances=1,
                    objective=P.objective_np(X[:, 0], y, cfg), seconds=s,
                    held=_held(X, cfg)[0], **extra)


def plot(rep: Report, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rep.rows if r["setting"] == f"n={N}" and "objective" in r]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["seconds"], r["gap_to_best_pct"], s=30)
        ax.annotate(r["method"], (r["seconds"], r["gap_to_best_pct"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per instance")
    ax.set_ylabel("gap to best plan found (%)")
    ax.set_title(f"portfolio selection, {N} assets")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(__doc__, argv)
    rep = Report("portfolio", args.quick)
    synthetic(rep, args.quick)
    orlib(rep, args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"portfolio{'-quick' if args.quick else ''}.png"
    plot(rep, png)
    rep.extra["plot"] = png.name
    rep.finish(table_columns=["setting", "method", "instances", "failed", "objective", "seconds",
                              "gap_to_best_pct", "held", "interior", "status"])


if __name__ == "__main__":
    main()
