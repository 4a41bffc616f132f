"""How much room the start plan leaves at scale (issue 26): the searches from the start plan
with long evaluation budgets, next to SurCo-zero, on bench.scale's test tasks and on train
tasks, under the analytic cost.

    python -m bench.scale_room --quick   # 200/16 and 400/32, 5 tasks per split
    python -m bench.scale_room           # 200/16 and 400/32, 10 tasks per split

Every method of bench.scale starts from the cheapest heuristic plan (`scale.start_plan`).
Issue 26 asks the best SurCo-family method for <= 0.97 × annealing's mean cost at 300
evaluations; this bench measures what annealing and first-improvement local search
(`scale.scale_family`'s ``annealing`` and ``local-search-first``) find from that start at 300,
3,000 and 30,000 evaluations, and SurCo-zero at its own budget (`scale.SCALE_SETTINGS`), on
the test tasks (``generate(n, seed=1, ...)``, bench.scale's) and on train tasks
(``generate(n, seed=11, split="train")``, where SurCo's settings were chosen). It also
evaluates the whole neighbourhood of the start plan that the searches walk, every feasible
move of one table and swap of two (`whole_neighbourhood`, row ``budget`` "whole
neighbourhood", method ``best-neighbour``): where no neighbour lowers the cost, the start is
a local optimum of that neighbourhood.

Rows: ``setting`` "T=200,D=16 test" (or "... train"), ``budget``, ``method``, ``value`` (mean
cost, ms), ``rel_start`` (mean over tasks of cost / start plan's cost), ``at_start`` (tasks
whose plan costs what the start plan costs: the method found nothing better), ``n``, and
``seconds`` (mean per task over the runs that did not fail, `bench.scale.seconds_per_task`);
the neighbourhood row has ``improving``, ``improving_moves``, ``moves`` and ``swaps``
per task instead. There is no target of its own: it is context for issue 26's
"0.97 × annealing at 300 evaluations". ``--store``/``--resume`` keep every finished run.
Writes ``bench/results/scale-room[-quick].json``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bench._report import Report, parse_args
from bench.scale import seconds_per_task

QUICK_GRID = ((200, 16), (400, 32))
GRID = ((200, 16), (400, 32))
QUICK_TASKS, TASKS = 5, 10
BUDGETS = (300, 3000, 30000)
SEARCHES = ("annealing", "local-search-first")
SPLITS = {"test": dict(seed=1), "train": dict(seed=11, split="train")}


def relative_to_start(values: Sequence[float], starts: Sequence[float],
                      rtol: float = 1e-9) -> dict[str, Any]:
    """Mean of ``values / starts`` task by task (nan tasks left out), the number of tasks
    that end at their start's cost (within ``rtol``) and the number compared.

    Raises:
      ValueError: values and starts of different lengths."""
    v, s = np.asarray(values, np.float64), np.asarray(starts, np.float64)
    if v.shape != s.shape:
        raise ValueError(f"relative_to_start: {v.size} values for {s.size} start costs")
    ok = np.isfinite(v) & np.isfinite(s)
    r = v[ok] / s[ok]
    return {"rel_start": float(r.mean()) if r.size else float("nan"),
            "at_start": int(np.sum(np.abs(r - 1.0) <= rtol)), "n": int(r.size)}


def whole_neighbourhood(family: Any, task: Any, start: np.ndarray, chunk: int = 2048
                        ) -> dict[str, int | float]:
    """Every plan in the neighbourhood of ``start`` that the searches walk (`RowChoice` of the
    task's Ω: each feasible move of one table and swap of two), costed with
    ``family.evaluate_batch`` in chunks of ``chunk`` plans: the cheapest one's cost
    (``best``), how many cost less than the start (``improving``) and how many moves and
    swaps there are (``moves``, ``swaps``), and how many of the moves alone cost less than
    the start (``improving_moves``).

    Raises:
      ValueError: ``start`` is not a feasible plan of ``task`` (`RowChoice.start`)."""
    from surco.problems.sharding.tasks import spec_for
    from surco.search import RowChoice
    nb = RowChoice.from_spec(spec_for(task))
    state = nb.start(np.asarray(start, np.float64))
    mv = nb.moves(state)
    base = float(family.evaluate(nb.point(state), task))
    best, lower = float("inf"), []
    for k in range(0, len(mv), chunk):
        v = np.asarray(family.evaluate_batch(nb.apply(state, mv[k:k + chunk]), task),
                       np.float64)
        best = min(best, float(v.min()))
        lower.append(v < base * (1 - 1e-9))
    lower = np.concatenate(lower) if lower else np.zeros(0, bool)
    single = mv[:, 2] < 0                            # moves first, then swaps
    return {"best": best, "improving": int(lower.sum()),
            "improving_moves": int(lower[single].sum()), "moves": int(single.sum()),
            "swaps": int((~single).sum())}


def run_room(T: int, D: int, n: int, split: str, budgets: Sequence[int] = BUDGETS,
             store: str | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """The rows of one setting and split (see the module docstring)."""
    import surco
    from surco.problems import sharding as S
    from surco.problems.sharding import scale

    model = S.DEFAULT_COST_MODEL
    fam = scale.scale_family(model)
    tasks = S.generate(n, n_tables=T, n_devices=D, **SPLITS[split])
    starts = [model.evaluate(scale.start_plan(t, model), t) for t in tasks]
    tag = f"T={T},D={D} {split}"
    rows = []
    own = surco.compare(fam, tasks, {"surco-zero": surco.surco_methods(fam)["surco-zero"]},
                        store=store, setting=tag, progress=progress)
    runs = [("own", own)] + [
        (f"{E} evaluations", surco.compare(fam, tasks, {m: fam.baselines[m] for m in SEARCHES},
                                          budget=surco.Budget(evaluations=int(E)),
                                          store=store, setting=tag, progress=progress))
        for E in budgets]
    nbhd = [whole_neighbourhood(fam, t, scale.start_plan(t, model)) for t in tasks]
    best = [min(h["best"], s) for h, s in zip(nbhd, starts)]
    rows.append({"setting": tag, "budget": "whole neighbourhood", "method": "best-neighbour",
                 "value": float(np.mean(best)), **relative_to_start(best, starts),
                 **{k: [h[k] for h in nbhd] for k in ("improving", "improving_moves", "moves",
                                                           "swaps")}})
    for budget, cmp in runs:
        secs = seconds_per_task(cmp)                  # failed runs left out, as in bench.scale
        for m in cmp.methods:
            vals = cmp.values(m)
            rows.append({"setting": tag, "budget": budget, "method": m,
                         "value": float(np.nanmean(vals)), **relative_to_start(vals, starts),
                         "seconds": secs.get(m, float("nan"))})
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv, name="scale-room")
    rep = Report("scale-room", args.quick)
    grid = QUICK_GRID if args.quick else GRID
    n = QUICK_TASKS if args.quick else TASKS
    rep.extra["budgets"] = list(BUDGETS)
    rep.extra["tasks"] = {s: f"generate({n}, n_tables=T, n_devices=D, "
                             + ", ".join(f"{k}={v!r}" for k, v in kw.items()) + ")"
                          for s, kw in SPLITS.items()}
    try:
        for T, D in grid:
            for split in SPLITS:
                for r in run_room(T, D, n, split, store=args.store):
                    rep.row(**r)
                    print(f"{r['setting']:<18} {r['budget']:<18} {r['method']:<20} "
                          f"cost/start {r['rel_start']:.4f}, at start {r['at_start']}/{r['n']}",
                          flush=True)
    except KeyboardInterrupt:
        print("interrupted: writing the settings finished so far", flush=True)
        rep.extra["interrupted"] = True
    rep.finish(table_columns=["setting", "budget", "method", "value", "rel_start",
                              "at_start", "n", "seconds", "improving"])


if __name__ == "__main__":
    main()
