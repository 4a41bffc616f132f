"""Embedding-table sharding benchmark (issue 5; SurCo §5.1 grid).

    python -m bench.sharding            # T in {10, ..., 60}, D = 4, 5 GB, 50 train + 50 test
    python -m bench.sharding --quick    # T = 50 only, 50 train + 10 test tasks

For every setting: tasks from the train and test halves of the generated 856-table pool,
SurCo-prior trained on the train tasks (early stopping on 10 more), then every baseline and
SurCo-zero / -prior / -hybrid on the test tasks, side by side, under the embedded cost
model. Writes ``bench/results/sharding[-quick].json`` and ``sharding[-quick].png``.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from bench._report import RESULTS, Report, parse_args

DEVICES = 4
N_TRAIN, N_VAL, N_TEST = 50, 10, 50
QUICK_TEST = 10


def _plot(per_setting: dict[int, list[dict]], path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    Ts = sorted(per_setting)
    methods = [r["method"] for r in per_setting[Ts[0]]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(Ts) == 1:
        rows = per_setting[Ts[0]]
        ax.bar(range(len(rows)), [r["rel_best_baseline"] for r in rows],
               color=["tab:orange" if r["method"].startswith("surco") else "tab:blue" for r in rows])
        ax.set_xticks(range(len(rows)), methods, rotation=35, ha="right")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_ylim(0.8, max(r["rel_best_baseline"] for r in rows) * 1.05)
        ax.set_title(f"T = {Ts[0]}, D = {DEVICES}: mean cost / best baseline's")
    else:
        for m in methods:
            ys = [next(r["rel_best_baseline"] for r in per_setting[T] if r["method"] == m) for T in Ts]
            ax.plot(Ts, ys, marker="o", lw=2.5 if m.startswith("surco") else 1, label=m)
        ax.set_xlabel("tables T")
        ax.set_title(f"D = {DEVICES}: mean cost / best baseline's")
        ax.legend(fontsize=7, ncol=2)
    ax.set_ylabel("relative cost")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    from surco.problems.sharding.baselines import BASELINES, PROXY_HEURISTICS, cost_greedy
    from surco.problems.sharding.compare import (best_proxy, compare, default_problem,
                                                 summarize, train_prior)
    from surco.problems.sharding.tables import generate_pool, split_pool
    from surco.problems.sharding.tasks import GRID_TABLES, generate_tasks

    rep = Report("sharding", args.quick)
    settings = (50,) if args.quick else GRID_TABLES
    n_test = QUICK_TEST if args.quick else N_TEST
    train_pool, test_pool = split_pool(generate_pool(0), 0.5, seed=0)
    problem = default_problem()
    per_setting: dict[int, list[dict]] = {}
    for T in settings:
        print(f"T={T}, D={DEVICES}: building tasks", flush=True)
        train = generate_tasks(train_pool, T, DEVICES, N_TRAIN, seed=0)
        val = generate_tasks(train_pool, T, DEVICES, N_VAL, seed=7)
        test = generate_tasks(test_pool, T, DEVICES, n_test, seed=1)
        t0 = time.perf_counter()
        prior = train_prior(train, val_tasks=val, progress=True)
        train_s = time.perf_counter() - t0
        prior.predict(train[0])  # compile outside the timed runs
        runs = compare(test, prior=prior, problem=problem, progress=True)
        rows = summarize(runs)
        per_setting[T] = rows
        # memory binds where the cost-model greedy, run without memory limits, overflows
        uncapped = [t.replace(capacity=np.full(DEVICES, np.inf)) for t in test]
        mem_bind = float(np.mean([np.any(np.asarray(t.size_bytes) @ cost_greedy(u) > t.capacity)
                                  for t, u in zip(test, uncapped)]))
        for r in rows:
            rep.row(setting=f"T={T},D={DEVICES}", **r)
        rep.extra.setdefault("prior_train_seconds", {})[f"T={T}"] = round(train_s, 1)
        rep.extra.setdefault("memory_binds_fraction", {})[f"T={T}"] = mem_bind
        if T == 50:
            by = {r["method"]: r for r in rows}
            base = min((by[m] for m in BASELINES), key=lambda r: r["cost_ms"])
            proxy = best_proxy(rows)
            for m in ("surco-zero", "surco-hybrid"):
                rep.target(f"DLRM-50: {m} mean cost / best baseline's ({base['method']})",
                           by[m]["cost_ms"] / base["cost_ms"], "<=", 1.0)
                rep.target(f"DLRM-50: {m} mean cost / best proxy heuristic's ({proxy['method']})",
                           by[m]["cost_ms"] / proxy["cost_ms"], "<=", 0.90)
            rep.target("DLRM-50: surco-zero seconds per task", by["surco-zero"]["seconds"], "<=", 10.0)
            rep.target("DLRM-50: surco-prior inference ms per task",
                       1e3 * by["surco-prior"]["seconds"], "<=", 100.0)
    plot = RESULTS / f"sharding{'-quick' if args.quick else ''}.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    _plot(per_setting, plot)
    rep.extra["plot"] = str(plot.relative_to(RESULTS.parent.parent))
    rep.extra["proxy_heuristics"] = list(PROXY_HEURISTICS)
    print(f"plot written to {plot}")
    rep.finish(table_columns=["setting", "method", "cost_ms", "rel_best_baseline",
                              "rel_per_task_best", "seconds"])


if __name__ == "__main__":
    main()
