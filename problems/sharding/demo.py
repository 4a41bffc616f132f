"""`make demo`: DLRM-50 on 4 devices of 5 GB, 5 test tasks, every baseline and SurCo.

    python -m surco.problems.sharding.demo [--tasks 5] [--steps 300] [--out out/sharding_demo.png]

Prints a table of mean plan cost (ms) under the embedded cost model, cost relative to the
best baseline, and seconds per task, for every baseline and SurCo-zero / -prior / -hybrid
(the prior is loaded from the small checkpoint shipped in ``problems/sharding/data``; if it
cannot be loaded it is trained briefly instead, and the demo says so). Writes a bar plot and
names the file. A method that fails is reported as failed in the table; the demo goes on.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

DEFAULT_PLOT = Path("out") / "sharding_demo.png"


def _prior(n_devices, train_pool):
    from .compare import load_prior, train_prior
    from .tasks import generate_tasks
    try:
        return load_prior(n_devices=n_devices), "shipped checkpoint"
    except Exception as exc:  # missing or unreadable checkpoint: train one briefly
        print(f"note: shipped SurCo-prior not usable ({exc}); training one briefly", flush=True)
        train = generate_tasks(train_pool, 50, n_devices, 20, seed=0)
        return train_prior(train, epochs=3, progress=True), "trained briefly"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=5, help="test tasks (default 5)")
    p.add_argument("--steps", type=int, default=None, help="SurCo-zero / -hybrid steps")
    p.add_argument("--out", type=Path, default=DEFAULT_PLOT, help="where to write the plot")
    args = p.parse_args(argv)
    t_start = time.perf_counter()

    from . import baselines as bl
    from .compare import (SURCO_METHODS, compare, default_problem, format_table,
                          plot_summary, summarize)
    from .tables import generate_pool, split_pool
    from .tasks import generate_tasks

    T, D = 50, 4
    print(f"SurCo on embedding-table sharding: DLRM-{T} on {D} devices of 5 GB, "
          f"{args.tasks} test tasks (embedded analytic cost model, CPU)", flush=True)
    train_pool, test_pool = split_pool(generate_pool(0), 0.5, seed=0)
    tasks = generate_tasks(test_pool, T, D, args.tasks, seed=1)
    problem = default_problem()
    prior, how = _prior(D, train_pool)
    prior.predict(tasks[0])  # compile once, outside the timings
    print(f"SurCo-prior: {how}", flush=True)

    methods = list(bl.BASELINES) + list(SURCO_METHODS)
    runs, failed = [], {}
    from tqdm.auto import tqdm
    with tqdm(total=len(methods), desc="methods", unit="method") as bar:
        for m in methods:
            bar.set_postfix_str(m)
            try:
                runs += compare(tasks, methods=[m], prior=prior, problem=problem,
                                zero_steps=args.steps, progress=False)
            except Exception as exc:  # report, and go on with the other methods
                failed[m] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(limit=2)
            bar.update(1)
    rows = summarize(runs)
    print()
    print(format_table(rows))
    for m, why in failed.items():
        print(f"{m:<20} FAILED: {why}")
    by = {r["method"]: r for r in rows}
    base = [r for r in rows if r["method"] in bl.BASELINES]
    if base and "surco-zero" in by:
        best = min(base, key=lambda r: r["cost_ms"])
        proxy = min((r for r in base if r["method"] in bl.PROXY_HEURISTICS),
                    key=lambda r: r["cost_ms"])
        for m in ("surco-zero", "surco-hybrid"):
            if m in by:
                print(f"{m}: {100 * (1 - by[m]['cost_ms'] / best['cost_ms']):+.1f}% vs best "
                      f"baseline ({best['method']}), {100 * (1 - by[m]['cost_ms'] / proxy['cost_ms']):+.1f}% "
                      f"vs best DreamShard proxy ({proxy['method']}) (positive = SurCo cheaper)")
    try:
        path = plot_summary(rows, args.out, title=f"DLRM-{T}, {D} devices: mean plan cost")
        print(f"plot written to {path.resolve()}")
    except Exception as exc:
        print(f"plot not written: {type(exc).__name__}: {exc}")
    print(f"demo took {time.perf_counter() - t_start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
