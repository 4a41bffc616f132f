"""Do the estimators' defaults make progress? SurCo-zero on the toy assignment problem.

    python -m bench.estimator_defaults [--quick]

On the nonlinear assignment problem (`surco.problems.assignment`, 8 tasks × 3 machines,
every instance enumerated for its optimum), every estimator runs SurCo-zero with the
settings a user gets by naming it (``surco.zero(problem, y, estimator=name)``: its default
hyperparameters, its `default_optimizer` at lr=0.1, random init) and with the alternatives
the progress warning suggests. Per setting: the mean optimality gap (%), the share of
instances solved to the optimum, the share whose best x is the initial one (no progress),
and the largest step at which x first changed (what `surco.zero`'s ``no_progress_steps``
default is chosen from: it must exceed this for every setting that makes progress).
These numbers are the README's "Which estimator when" table.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import optax

import surco
from bench._report import Report, parse_args
from surco.problems import assignment as A

#: (estimator, hyperparameters, optimiser name or None for the estimator's default)
SETTINGS = [
    ("blackbox", {}, None),
    ("blackbox", {"projection": "norm", "lam": 1.0}, None),
    ("neg_identity", {}, None),
    ("neg_identity", {}, "adam"),
    ("neg_identity", {"projection": "standardize"}, None),
    ("identity", {}, None),
    ("identity", {}, "sgd"),
    ("straight_through", {}, None),
    ("quadratic", {}, None),
    ("perturbed", {}, None),
    ("perturbed", {}, "adam"),
]
LR = 0.1


def optimizer_kind(opt) -> str:
    """"sgd" or "adam": told apart by the first update of the gradient (1, 2), which SGD
    keeps in proportion and Adam normalises per entry."""
    import jax.numpy as jnp
    u, _ = opt.update(jnp.array([1.0, 2.0]), opt.init(jnp.zeros(2)), jnp.zeros(2))
    return "sgd" if abs(float(u[1] / u[0]) - 2.0) < 1e-3 else "adam"


def first_change(fs: list[float]) -> int | None:
    """The first step whose objective differs from step 0's (None: never)."""
    return next((t for t in range(1, len(fs)) if fs[t] != fs[0]), None)


def main(argv=None) -> None:
    args = parse_args(__doc__, argv)
    n, m = 8, 3
    count, steps = (3, 40) if args.quick else (6, 100)
    prob = A.make_problem(n, m)
    ys = A.generate(count, seed=3, n=n, m=m)
    opts = np.array([A.brute_force(y)[1] for y in ys])
    rep = Report("estimator_defaults", args.quick)
    rep.extra["setup"] = {"problem": f"assignment {n}x{m}", "instances": count, "steps": steps,
                          "lr": LR, "backend": "highs", "init": "random", "key": 0}
    for name, kw, opt_name in SETTINGS:
        est = surco.estimators.get_estimator(name, **kw)
        opt = est.default_optimizer(LR) if opt_name is None else getattr(optax, opt_name)(LR)
        label = f"{opt_name or 'default: ' + optimizer_kind(opt)}({LR})"
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = surco.zero(prob, ys, estimator=est, optimizer=opt, steps=steps, key=0,
                             backend="highs")
        secs = time.perf_counter() - t0
        f = np.array([r.f for r in res])
        gaps = (f - opts) / opts * 100
        firsts = [first_change(r.history["f"]) for r in res]
        moved = [t for t in firsts if t is not None]
        warned = any(issubclass(w.category, surco.NoProgressWarning) for w in caught)
        rep.row(estimator=name, hyperparameters=", ".join(f"{k}={v}" for k, v in kw.items())
                or "defaults", optimizer=label,
                gap_pct=float(gaps.mean()), optimal_share=float(np.mean(gaps < 1e-4)),
                stuck_share=float(np.mean([r.best_step == 0 for r in res])),
                never_moved=int(sum(t is None for t in firsts)),
                max_first_change=max(moved) if moved else None,
                warned=warned, seconds=round(secs, 1))
        print(f"{name} {kw} {opt_name}: gap {gaps.mean():.2f}%  ({secs:.0f} s)", flush=True)
    rep.finish(["estimator", "hyperparameters", "optimizer", "gap_pct", "optimal_share",
                "stuck_share", "never_moved", "max_first_change", "warned", "seconds"])


if __name__ == "__main__":
    main()
