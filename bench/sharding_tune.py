"""How SurCo-zero's sharding settings are chosen: on TRAIN-pool tasks only.

    python -m bench.sharding_tune [--quick]

A grid of SurCo-zero settings (negative-identity estimator with SGD; learning rate, the
`greedy_init` margin scale, steps) on DLRM-50 / 4-device tasks drawn from the train half of
the table pool (seed 11, never used by a bench's test tasks), each scored as its mean cost
relative to the cheapest heuristic plan it starts from. The chosen setting is the one with
the lowest mean; `surco.problems.sharding.family.FAMILY.zero_settings` must equal it (the
bench prints both). Writes ``bench/results/sharding_tune[-quick].json``.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from bench._report import Report, parse_args

LRS = (0.02, 0.05, 0.1)
SCALES = (0.1, 0.3, 1.0)
STEPS = 300


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    import optax

    import surco
    from surco.problems import sharding as S
    from surco.problems.sharding.baselines import best_heuristic_plan

    n = 3 if args.quick else 8
    tasks = S.generate(n, seed=11, n_tables=50, n_devices=4, split="train")
    starts = [best_heuristic_plan(t)[1] for t in tasks]
    base = np.array([S.FAMILY.evaluate(x, t) for x, t in zip(starts, tasks)])
    problem = S.FAMILY.problem(tasks[0])
    rep = Report("sharding_tune", args.quick)
    results = {}
    for lr, scale in itertools.product(LRS, SCALES):
        costs, secs = [], []
        for t, x0 in zip(tasks, starts):
            r = surco.zero(problem, t, estimator="neg_identity", steps=STEPS,
                           optimizer=optax.sgd(lr), init=S.greedy_init(t, x0, scale=scale),
                           select="evaluate")
            costs.append(r.true_cost)
            secs.append(r.seconds)
        rel = float(np.mean(np.asarray(costs) / base))
        results[(lr, scale)] = rel
        rep.row(lr=lr, init_scale=scale, steps=STEPS, rel_start=rel,
                seconds=float(np.mean(secs)))
        print(f"lr={lr} scale={scale}: {rel:.4f}", flush=True)
    (lr, scale), best = min(results.items(), key=lambda kv: kv[1])
    rep.extra["chosen"] = {"lr": lr, "init_scale": scale, "steps": STEPS, "rel_start": best}
    rep.extra["tasks"] = f"{n} DLRM-50 / 4-device tasks, train pool, seed 11"
    fam = S.FAMILY.zero_settings
    rep.extra["family_settings"] = {"steps": fam.get("steps"), "note": S.FAMILY.zero_settings_note}
    print(f"chosen on train tasks: lr={lr}, init_scale={scale} ({best:.4f} of the start)")
    rep.finish(["lr", "init_scale", "steps", "rel_start", "seconds"])


if __name__ == "__main__":
    main()
