"""On-time-arrival routing (SurCo §5.3, LANCER): SurCo against LET, the mean–risk heuristic,
exact SCIP and brute force.

    python -m bench.routing [--quick]

5×5 grids, both regimes (standard: deadline k × LET mean, k ∈ {0.9, 1.0, 1.1}; risk-
sensitive: deadline LET mean + q·LET std, q ∈ {−1, 1, 2}), 25 instances per k or q (8 with
--quick): mean on-time probability and seconds per instance of LET, mean–risk (γ tuned per
instance on a grid), SurCo-zero, SurCo-prior, SurCo-hybrid, SCIP and brute force; the share
of instances where LET is already optimal. Then 10×10 and 15×15 against SCIP with 10 s and
60 s limits. Writes bench/results/routing[-quick].json and a plot beside it.

SurCo runs on the flow polytope (GLOP LP; the blackbox re-solve at c + λ·∂f/∂x may hold
negative costs, which the Dijkstra oracle rejects) with the blackbox estimator (λ = 100),
Adam (lr 0.1), f = −z (see `surco.problems.routing.problem`), at most 30 steps (patience 8).
SurCo-zero starts from three costs (LET, μ + σ², σ²; `routing.zero_multistart`) and keeps
the best; SurCo-hybrid starts from the prior's cost only. The instances of one setting are
solved together (one batched solve per step) and the reported seconds are the batch's wall
time divided by the number of instances, compile time and all starts included.
"""
from __future__ import annotations

import time

import numpy as np

import surco
from bench._report import RESULTS, Report, parse_args
from surco.problems import routing as R

ZERO_KW = dict(estimator="blackbox", lam=100.0, lr=0.1, steps=30, patience=8, key=0,
               backend="glop", select="evaluate")
PARAMS = {"standard": ("k", (0.9, 1.0, 1.1)), "risk": ("q", (-1.0, 1.0, 2.0))}


def _instances(n, regime, value, seeds):
    name = PARAMS[regime][0]
    return [R.generate(n, s, regime=regime, **{name: value}) for s in seeds]


def _zero(problem, ys, init=None):
    """SurCo-zero from the three `routing.STARTS` (init=None), or SurCo-hybrid from init."""
    t0 = time.perf_counter()
    if init is None:
        res = R.zero_multistart(problem, ys, **ZERO_KW)
    else:
        res = surco.zero(problem, ys, init=init, **ZERO_KW)
    secs = (time.perf_counter() - t0) / len(ys)
    return np.array([-r.true_cost for r in res]), secs, res


def _timed(fn, ys):
    out = [fn(y) for y in ys]
    return np.array([o.prob for o in out]), float(np.mean([o.seconds for o in out])), out


def small_grids(rep: Report, quick: bool, summary: dict) -> None:
    n = 5
    per = 8 if quick else 25
    n_train, epochs = (30, 8) if quick else (120, 25)
    problem = R.make_problem(n, omega="spec")
    for regime, (pname, values) in PARAMS.items():
        train = [y for i, v in enumerate(values) for y in _instances(n, regime, v, range(1000 + 100 * i, 1000 + 100 * i + n_train // 3))]
        val = [y for i, v in enumerate(values) for y in _instances(n, regime, v, range(2000 + 100 * i, 2000 + 100 * i + 4))]
        print(f"[5x5 {regime}] training SurCo-prior on {len(train)} instances", flush=True)
        t0 = time.perf_counter()
        prior = surco.prior.train(problem, train, val_instances=val, estimator="blackbox",
                                  lam=100.0, epochs=epochs, batch_size=16, lr=3e-3, key=0,
                                  backend="glop", progress=True)
        train_s = time.perf_counter() - t0
        rep.row(setting=f"5x5 {regime}", method="surco-prior training", seconds=train_s,
                instances=len(train), epochs=epochs)
        for v in values:
            setting = f"5x5 {regime} {pname}={v:g}"
            ys = _instances(n, regime, v, range(per))
            print(f"[{setting}] {per} instances", flush=True)
            bf_p, bf_s, _ = _timed(R.brute_force, ys)
            let_p, let_s, _ = _timed(R.let_path, ys)
            mr_p, mr_s, _ = _timed(R.mean_risk, ys)
            sc_p, sc_s, sc = _timed(lambda y: R.scip_exact(y, time_limit=60.0), ys)
            z_p, z_s, _ = _zero(problem, ys)
            t0 = time.perf_counter()
            pr = prior.predict(ys)
            pr_p, pr_s = np.array([-r.true_cost for r in pr]), (time.perf_counter() - t0) / len(ys)
            theta_prior = np.stack([np.asarray(prior.theta(y)) for y in ys])
            h_p, h_s, _ = _zero(problem, ys, init=theta_prior)
            h_s += pr_s
            let_opt = bf_p - let_p <= 1e-9
            let_beaten = bf_p - let_p > 0.01
            summary.setdefault(regime, []).append((v, bf_p, let_p, z_p, z_s))
            for method, p, s in (("LET", let_p, let_s), ("mean-risk", mr_p, mr_s),
                                 ("surco-zero", z_p, z_s), ("surco-prior", pr_p, pr_s),
                                 ("surco-hybrid", h_p, h_s), ("scip", sc_p, sc_s),
                                 ("brute-force", bf_p, bf_s)):
                row = dict(setting=setting, method=method, instances=len(ys),
                           prob_mean=float(p.mean()), seconds=s,
                           within_001_of_opt=float(np.mean(p >= bf_p - 0.01)))
                if method == "LET":
                    row.update(let_optimal_share=float(let_opt.mean()),
                               let_beaten_by_001_share=float(let_beaten.mean()))
                if method == "scip":
                    row.update(proven_optimal=float(np.mean([o.status == "optimal" for o in sc])))
                if not let_opt.all() and method.startswith("surco"):
                    row.update(within_001_on_non_let=float(np.mean(p[~let_opt] >= bf_p[~let_opt] - 0.01)))
                rep.row(**row)


def large_grids(rep: Report, quick: bool) -> None:
    cases = [(10, 2 if quick else 4), (15, 1 if quick else 3)]
    for n, per in cases:
        problem = R.make_problem(n, omega="spec")
        for regime, (pname, values) in PARAMS.items():
            vals = values[::2] if quick else values
            for v in vals:
                setting = f"{n}x{n} {regime} {pname}={v:g}"
                ys = _instances(n, regime, v, range(per))
                print(f"[{setting}] {per} instances", flush=True)
                let_p, let_s, _ = _timed(R.let_path, ys)
                mr_p, mr_s, _ = _timed(R.mean_risk, ys)
                z_p, z_s, _ = _zero(problem, ys)
                s10_p, s10_s, s10 = _timed(lambda y: R.scip_exact(y, time_limit=10.0), ys)
                s60_p, s60_s, s60 = _timed(lambda y: R.scip_exact(y, time_limit=60.0), ys)
                for method, p, s, extra in (
                        ("LET", let_p, let_s, {}), ("mean-risk", mr_p, mr_s, {}),
                        ("surco-zero", z_p, z_s, {}),
                        ("scip-10s", s10_p, s10_s, {"proven_optimal": float(np.mean([o.status == "optimal" for o in s10]))}),
                        ("scip-60s", s60_p, s60_s, {"proven_optimal": float(np.mean([o.status == "optimal" for o in s60]))})):
                    rep.row(setting=setting, method=method, instances=len(ys), prob_mean=float(p.mean()),
                            seconds=s, minus_scip60=float(np.mean(p - s60_p)), **extra)


def plot(rows: list[dict], path) -> None:
    """Mean gap to the brute-force optimum (P_opt − P) per method and 5×5 setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in rows if r["setting"].startswith("5x5")
                                  and "prob_mean" in r))
    methods = ["LET", "mean-risk", "surco-zero", "surco-prior", "surco-hybrid", "scip"]
    opt = {r["setting"]: r["prob_mean"] for r in rows if r["method"] == "brute-force"}
    fig, ax = plt.subplots(figsize=(11, 4))
    w = 0.8 / len(methods)
    for j, m in enumerate(methods):
        vals = [opt[s] - next((r["prob_mean"] for r in rows if r["setting"] == s and r["method"] == m),
                              np.nan) for s in settings]
        ax.bar(np.arange(len(settings)) + j * w, np.maximum(vals, 1e-6), w, label=m)
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1)
    ax.set_xticks(np.arange(len(settings)) + 0.4 - w / 2, settings, rotation=20, fontsize=8)
    ax.set_ylabel("mean P(optimum) − P(method)  (1e-6 = none)")
    ax.set_title("5×5 on-time routing: gap to the brute-force optimum")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(__doc__, argv)
    rep = Report("routing", args.quick)
    summary: dict = {}
    small_grids(rep, args.quick, summary)
    risk = summary["risk"]
    beaten = np.concatenate([bf - let > 0.01 for _, bf, let, _, _ in risk])
    rep.target("risk regime 5x5: share of instances where LET is beaten by > 0.01",
               float(beaten.mean()), ">=", 1 / 3)
    secs = []
    for q, bf, let, z, s in risk:
        non_let = bf - let > 1e-9
        share = float(np.mean(z[non_let] >= bf[non_let] - 0.01)) if non_let.any() else float("nan")
        rep.target(f"risk q={q:g}: surco-zero within 0.01 of brute force, share of non-LET-optimal "
                   f"instances ({int(non_let.sum())})", share, ">=", 0.9)
        secs.append(s)
    rep.target("risk regime 5x5: surco-zero seconds per instance (worst q)", max(secs), "<=", 1.0)
    std = summary["standard"]
    rep.extra["let_optimal_share"] = {
        "standard": float(np.mean(np.concatenate([bf - let <= 1e-9 for _, bf, let, _, _ in std]))),
        "risk": float(np.mean(np.concatenate([bf - let <= 1e-9 for _, bf, let, _, _ in risk])))}
    large_grids(rep, args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"routing{'-quick' if args.quick else ''}.png"
    plot(rep.rows, png)
    rep.extra["plot"] = png.name
    rep.finish(table_columns=["setting", "method", "instances", "prob_mean", "seconds",
                              "within_001_of_opt", "within_001_on_non_let", "let_optimal_share",
                              "let_beaten_by_001_share", "proven_optimal", "minus_scip60"])


if __name__ == "__main__":
    main()
