"""SurCo-zero, -prior and -hybrid on the enumerable nonlinear assignment problem.

    python -m bench.surco [--quick]

At three sizes (n tasks × 3 machines), per gradient estimator: the mean optimality gap to
the enumerated optimum and seconds per instance of SurCo-zero, SurCo-prior (train + predict)
and SurCo-hybrid, and the split of a SurCo-zero step into solver time and the rest
(target: solver time >= 70% of a step at the largest size).
"""
from __future__ import annotations

import time

import numpy as np

import surco
from bench._report import Report, parse_args
from surco.problems import assignment as A

ESTIMATORS = {"blackbox": {"lam": 10.0}, "perturbed": {"sigma": 0.5, "n": 8},
              "neg_identity": {"projection": "standardize"}}


def gap(fs, opts) -> float:
    return float(np.mean((np.asarray(fs) - opts) / opts) * 100)


def main(argv=None) -> None:
    args = parse_args(__doc__, argv)
    quick = args.quick
    sizes = [(6, 3), (8, 3), (10, 3)]
    n_test, n_train, steps, epochs = (5, 30, 60, 8) if quick else (20, 100, 150, 30)
    backend = "cpsat"
    rep = Report("surco", quick)
    split = {}
    for n, m in sizes:
        prob = A.make_problem(n, m)
        test = A.generate(n, m, n_test, seed=100)
        train = A.generate(n, m, n_train, seed=200)
        val = A.generate(n, m, max(5, n_test), seed=300)
        opts = np.array([A.brute_force(y)[1] for y in test])
        setting = f"n={n},m={m}"
        for est, kw in ESTIMATORS.items():
            print(f"[{setting}] {est}: zero", flush=True)
            t0 = time.perf_counter()
            z = surco.zero(prob, test, estimator=est, steps=steps, lr=0.1, key=0,
                           backend=backend, progress=True, **kw)
            secs = (time.perf_counter() - t0) / n_test
            rep.row(setting=setting, method="surco-zero", estimator=est, gap_pct=gap([r.f for r in z], opts),
                    optimal_share=float(np.mean(np.isclose([r.f for r in z], opts, atol=1e-5))),
                    seconds=secs)
            h = z[0].history
            k = len(h["seconds"]) - 1
            step_s = (h["seconds"][-1] - h["seconds"][1]) / max(1, k - 1)
            solver_s = sum(r.history["solver_seconds"][-1] - r.history["solver_seconds"][1] for r in z) / max(1, k - 1)
            split[(setting, est)] = solver_s / step_s
            rep.row(setting=setting, method="zero step split", estimator=est,
                    step_ms=step_s * 1e3, solver_ms=solver_s * 1e3, solver_share=solver_s / step_s)
            print(f"[{setting}] {est}: prior", flush=True)
            t0 = time.perf_counter()
            pm = surco.prior.train(prob, train, val_instances=val, estimator=est, epochs=epochs,
                                   batch_size=10, lr=1e-3, key=0, backend=backend, patience=None,
                                   **kw)
            train_s = time.perf_counter() - t0
            pr = pm.predict(test)
            rep.row(setting=setting, method="surco-prior", estimator=est,
                    gap_pct=gap([r.f for r in pr], opts), seconds=float(np.mean([r.seconds for r in pr])),
                    train_seconds=train_s)
            t0 = time.perf_counter()
            hy = surco.hybrid(prob, test, pm, estimator=est, steps=steps // 2, lr=0.1,
                              backend=backend, **kw)
            rep.row(setting=setting, method="surco-hybrid", estimator=est,
                    gap_pct=gap([r.f for r in hy], opts),
                    seconds=(time.perf_counter() - t0) / n_test)
        solver = surco.solvers.make_solver(prob.space, backend=backend)
        import jax.numpy as jnp
        heur = [float(A.objective(jnp.asarray(solver.solve(A.mean_cost_heuristic(y)).x, jnp.float32), y))
                for y in test]
        rep.row(setting=setting, method="mean-cost heuristic", estimator="-", gap_pct=gap(heur, opts))
    largest = f"n={sizes[-1][0]},m={sizes[-1][1]}"
    rep.target("solver share of a SurCo-zero step at the largest size (blackbox)",
               split[(largest, "blackbox")], ">=", 0.70)
    rep.finish(["setting", "method", "estimator", "gap_pct", "optimal_share", "seconds",
                "train_seconds", "step_ms", "solver_ms", "solver_share"])


if __name__ == "__main__":
    main()
