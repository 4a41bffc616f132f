"""Sharding at production scale (issue 26): SurCo at scale next to the heuristics, the
searches and TorchRec's own planner, under our analytic cost and under TorchRec's.

    python -m bench.scale --quick   # T/D in {100/8, 200/16, 400/32}, 5 test tasks each
    python -m bench.scale           # `scale.SCALE_GRID`, 10 test tasks each
    python -m bench.scale --grid 100/8 200/16 --store PATH --resume   # some settings only
    python -m bench.scale --replot  # redraw scale.png from scale.json

Tasks: ``sharding.generate(n, seed=1, n_tables=T, n_devices=D)`` (test split; larger T
draw from `tables.extended_pools`, see `tables.blocks_for`), 5 GB devices. For each
setting and each cost model (``analytic``: `cost.AnalyticCostModel`; ``torchrec``:
`torchrec_cost.TorchRecCostModel`, TorchRec's own estimate), through the harness
(`scale.scale_family(model)`):

1. own budget: every heuristic, ``torchrec-planner`` (when torchrec imports; its planning
   time is its run's time) and SurCo-zero (`scale.SCALE_SETTINGS`);
2. equal wall time (SurCo-zero's, task by task): annealing, the local searches and the
   SurCo-family methods (`scale.surco_scale_methods`);
3. 300 evaluations of the true cost: the same searches, SurCo-zero and the SurCo-family.

Every method starts from the cheapest heuristic plan under the model (`scale.start_plan`),
computed once per task before the timed runs (its seconds are reported as
``start_seconds``) and cached, so no method is charged for it; compilation is warmed up on
a train task first. Targets (issue 26, analytic cost): time per SurCo step at 400/32
<= 0.2 s; SurCo-zero improves on its start on every task at 200/16 and 400/32; best
SurCo-family mean <= 1.00 × annealing's at equal wall time and <= 0.97 × at 300
evaluations (200/16 and 400/32); SurCo-zero's plan (start included) in <= 10 s per task
at 400/32; the full run at 800/128 with no failed run. The JSON's ``growth`` holds each
method's time against T with the fitted exponent (`growth_exponents`). Writes
``bench/results/scale[-quick].json`` and ``scale[-quick].png`` (`plot_summary`: mean
cost relative to cost-greedy's, and seconds, per setting, for every method); ``--replot``
only redraws the png from the json.

Resuming (``--store PATH --resume``): each setting that finished is recorded in
``PATH.settings.jsonl`` with what it measured outside the harness (start plans' seconds and
values, seconds per step; `record_setting`) and its number of runs, so a rerun reads it and
the store's runs and computes nothing for it; a setting cut short, or one whose runs were
since dropped from the store, is run again (start plans and warm-up first), its stored runs
skipped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench._report import RESULTS, Report, parse_args
from surco.store import RunStore, append_json_line, read_json_lines

N_TEST, QUICK_TEST, EVALS = 10, 5, 300
#: Largest whole neighbourhood (bytes, `neighbourhood_bytes`) a search may build at once;
#: at 400/32 it is 9 GB, and a quick run that built it was killed for memory.
NEIGHBOURHOOD_BYTES_MAX = 2e9
SEARCH = ("local-search", "local-search-first", "local-search-gradient", "annealing")
TARGET_SETTINGS = ("T=200,D=16", "T=400,D=32")


def _step_seconds(problem, task, init, settings) -> float:
    """Mean seconds per SurCo-zero step over 20 steps after a first (compiling) step."""
    import surco
    kw = {k: v for k, v in settings.items() if k not in ("init", "steps")}
    res = surco.zero(problem, task, init=init(task), steps=20, select="evaluate",
                     no_progress_steps=None, **kw)
    sec = np.asarray(res.history["seconds"])
    return float(np.diff(sec[1:]).mean())


def _warm(family, problem, tasks, settings) -> None:
    """Compile SurCo's step and the batched cost for these shapes on a train task."""
    import surco
    kw = {k: v for k, v in settings.items() if k not in ("init", "steps")}
    surco.zero(problem, tasks[0], init=settings["init"](tasks[0]), steps=2,
               select="evaluate", no_progress_steps=None, **kw)
    x = np.zeros((tasks[0].n_tables, tasks[0].n_devices))
    x[:, 0] = 1
    for b in (1, 17, 33, 65, 129):
        family.evaluate_batch(np.repeat(x[None], b, axis=0), tasks[0])


def neighbourhood_bytes(T: int, D: int) -> float:
    """Bytes of the whole move + swap neighbourhood of a plan as one float64 array (what
    steepest local search and the gradient ranker build at once): ``T (D - 1)`` moves and
    about ``T (T - 1) / 2 · (1 - 1 / D)`` swaps, ``T D`` entries each."""
    return (T * (D - 1) + T * (T - 1) / 2 * (1 - 1 / D)) * T * D * 8.0


def run_setting(T: int, D: int, n: int, model_name: str, store
                ) -> tuple[list, list, dict, dict]:
    """One setting under one cost model (run in its own process by `main`): the rows, the
    failed runs, the summary entry and the comparisons by budget label (for their maps)."""
    import logging
    logging.disable(logging.WARNING)   # TorchRec's planner warns about every Topology
    import surco
    from surco.problems import sharding as S
    from surco.problems.sharding import scale
    from surco.problems.sharding.torchrec_cost import DEFAULT_TORCHREC_MODEL

    model = {"analytic": S.DEFAULT_COST_MODEL, "torchrec": DEFAULT_TORCHREC_MODEL}[model_name]
    rows, failures, out = [], [], {"T": T, "D": D}
    fam = scale.scale_family(model)
    problem = fam.problem(None)
    tag = f"T={T},D={D}"
    print(f"{tag} [{model_name}]: tasks", flush=True)
    tasks = S.generate(n, seed=1, n_tables=T, n_devices=D)
    train = S.generate(1, seed=11, n_tables=T, n_devices=D, split="train")
    runs_store = None if store is None else RunStore(store)   # read once (355 MB at full size)
    done = finished_setting(store, tag, model_name, n)
    have = None if done is None else stored_runs(runs_store, fam.name, tag)
    if done is not None and have < done.get("runs", 0):
        print(f"{tag} [{model_name}]: the store lacks runs of this finished setting "
              f"({have} of {done['runs']}): running it again", flush=True)
        done = None
    if done is not None:   # every run is in the store: nothing to warm up or time again
        print(f"{tag} [{model_name}]: finished at {str(done.get('commit'))[:10]}; read from "
              f"the store", flush=True)
        measured = {k: done[k] for k in MEASURED if k in done}
    else:
        t0 = time.perf_counter()
        for task in tasks + train:
            scale.start_plan(task, model)
        measured = {"start_seconds": (time.perf_counter() - t0) / len(tasks + train),
                    "starts": [float(model.evaluate(scale.start_plan(t, model), t))
                               for t in tasks]}
        _warm(fam, problem, train, fam.zero_settings)
        if T == 400 and D == 32:
            measured["step_seconds"] = _step_seconds(problem, train[0],
                                                     fam.zero_settings["init"],
                                                     fam.zero_settings)
    starts = np.asarray(measured["starts"], np.float64)
    out["start_seconds"] = measured["start_seconds"]
    out["start_value"] = float(np.mean(starts))
    if "step_seconds" in measured:
        out["step_seconds"] = measured["step_seconds"]
    heur = [m for m in fam.baselines if m not in SEARCH]
    own = surco.compare(fam, tasks, heur + ["surco-zero"], store=runs_store, setting=tag,
                        reference="cost-greedy", progress=False)
    polish = scale.surco_scale_methods(fam)
    search = list(SEARCH)
    if neighbourhood_bytes(T, D) > NEIGHBOURHOOD_BYTES_MAX:
        # steepest descent and the gradient ranker build the whole neighbourhood at once
        search = [m for m in search if m not in ("local-search", "local-search-gradient")]
        del polish["surco-zero+ls-gradient"]
        out["skipped"] = (f"local-search, local-search-gradient, surco-zero+ls-gradient: "
                          f"their neighbourhood array would take "
                          f"{neighbourhood_bytes(T, D) / 1e9:.1f} GB")
    eq = surco.compare(fam, tasks, {**{s: fam.baselines[s] for s in search}, **polish},
                       budget=own.matched_budget("surco-zero"), store=runs_store, setting=tag,
                       reference="annealing", progress=False)
    ev_methods = {**{s: fam.baselines[s] for s in search},
                  "surco-zero": surco.surco_methods(fam)["surco-zero"], **polish}
    ev = surco.compare(fam, tasks, ev_methods, budget=surco.Budget(evaluations=EVALS),
                       store=runs_store, setting=tag, reference="annealing", progress=False)
    for cmp, budget, ref in ((own, "own", "cost-greedy"), (eq, "time of surco-zero", "annealing"),
                             (ev, f"{EVALS} evaluations", "annealing")):
        print(f"-- {tag} [{model_name}], {budget}\n{cmp.table(ref)}", flush=True)
        rows += cmp.to_rows(ref, setting=tag, budget=budget, cost_model=model_name)
        failures += [{"setting": tag, "cost_model": model_name, "budget": budget,
                      "method": r.method, "task": r.instance, "error": r.error}
                     for r in cmp.runs if r.status == "failed"]
    if done is None and store is not None and not any(c.interrupted for c in (own, eq, ev)):
        record_setting(store, tag, model_name, n,
                       {**measured, "runs": len(own.runs) + len(eq.runs) + len(ev.runs)})
    zero = own.values("surco-zero")
    eq_vals = {m: eq.values(m) for m in eq.methods}
    eq_vals["surco-zero"] = zero
    family_names = ["surco-zero"] + list(polish)
    out["means"] = {b: {m: float(np.nanmean(c.values(m))) for m in c.methods}
                    for b, c in (("own", own), ("time", eq), ("evals", ev))}
    out["means"]["time"]["surco-zero"] = float(np.nanmean(zero))
    out["seconds"] = seconds_per_task(own)
    out["zero_improved"] = float(np.mean(zero < starts * (1 - 1e-9)))
    best_t = min(family_names, key=lambda m: np.nanmean(eq_vals[m]))
    best_e = min(family_names, key=lambda m: np.nanmean(ev.values(m)))
    out["time_ratio"] = (best_t, float(np.nanmean(eq_vals[best_t]) /
                                       np.nanmean(eq_vals["annealing"])))
    out["evals_ratio"] = (best_e, float(np.nanmean(ev.values(best_e)) /
                                        np.nanmean(ev.values("annealing"))))
    if "torchrec-planner" in own.methods:
        out["torchrec_vs_best_surco_time"] = float(
            np.nanmean(own.values("torchrec-planner")) / np.nanmean(eq_vals[best_t]))
    return rows, failures, out, {"own": own, "time of surco-zero": eq,
                                 f"{EVALS} evaluations": ev}


#: what `run_setting` measures itself, outside the harness's runs (kept by `record_setting`):
#: seconds per task of the start plan, each test task's start value, seconds per SurCo step;
#: and how many runs the setting stored (a record whose runs are no longer all in the store
#: is not trusted: see `run_setting`)
MEASURED = ("start_seconds", "starts", "step_seconds", "runs")


def stored_runs(store, family: str, tag: str) -> int:
    """How many runs of ``family`` at setting ``tag`` ``store`` (a `surco.store.RunStore`)
    holds."""
    return sum(1 for _ in store.records(family=family, setting=tag))


def settings_path(store) -> Path:
    """The file beside a run store that records the finished settings
    (``<store>.settings.jsonl``)."""
    return Path(str(store) + ".settings.jsonl")


def record_setting(store, tag: str, model_name: str, n: int, measured: dict) -> None:
    """Record that setting ``tag`` under ``model_name`` on ``n`` tasks finished: every run is
    in ``store``, and ``measured`` (`MEASURED`) is what a rerun would otherwise have to
    compute again (the start plans take about a minute per task at 800/128). One JSON line
    with the commit it ran at, appended and flushed to disk (a partial last line, left by a
    killed writer, is cut off first: `surco.store.append_json_line`)."""
    from surco.report import commit
    append_json_line(settings_path(store), {
        "setting": tag, "cost_model": model_name, "n": int(n), "commit": commit(),
        **{k: measured[k] for k in MEASURED if k in measured}})


def finished_setting(store, tag: str, model_name: str, n: int) -> dict | None:
    """The record of a finished setting (`record_setting`), or None: no store, no record, or
    a record for another number of tasks. The last record wins; a partial last line (a
    write cut short) is not a record.

    Raises:
      ValueError: a complete line that is not a JSON object (named by file and line)."""
    path = None if store is None else settings_path(store)
    if path is None or not path.exists():
        return None
    hit = None
    for no, r in read_json_lines(path, "setting record"):
        if not isinstance(r, dict):
            raise ValueError(f"{path}, line {no}: not a setting record (not an object)")
        if (r.get("setting"), r.get("cost_model"), r.get("n")) == (tag, model_name, n):
            hit = r
    return hit


def seconds_per_task(cmp: Any) -> dict[str, float]:
    """Mean seconds per task of each method of ``cmp`` (a `surco.Comparison`) over its runs
    that did not fail; a method whose every run failed has no entry. A failed run (TorchRec's
    planner refusing a task in a second) says nothing about how planning time grows."""
    ok = {m: [r.seconds for r in cmp.runs if r.method == m and r.status != "failed"]
          for m in cmp.methods}
    return {m: float(np.mean(v)) for m, v in ok.items() if v}


def growth_exponents(summary: dict) -> dict:
    """Time against size: for each cost model and method, the least-squares slope k of
    log(seconds per task, own budget, failed runs left out) against log T over the settings
    run (seconds ~ T^k; D grows with T on the grid), with its points ``(T, D, seconds)``;
    a setting where every run of a method failed has no point; methods with fewer
    than two distinct T, or a non-positive time, are left out."""
    out: dict = {}
    for model_name, settings in summary.items():
        per: dict = {}
        for s in settings.values():
            for m, sec in s.get("seconds", {}).items():
                per.setdefault(m, []).append((int(s["T"]), int(s["D"]), float(sec)))
        for m, pts in per.items():
            T = np.array([p[0] for p in pts], np.float64)
            sec = np.array([p[2] for p in pts])
            if len(set(T)) < 2 or not np.all(sec > 0):
                continue
            k = float(np.polyfit(np.log(T), np.log(sec), 1)[0])
            out.setdefault(model_name, {})[m] = {"exponent": k, "points": sorted(pts)}
    return out


def _targets(rep: Report, summary: dict, failures: Sequence[dict] = ()) -> None:
    big = "T=800,D=128"
    if any(big in settings for settings in summary.values()):
        rep.target(f"{big}: failed runs (every method, budget and cost model run there)",
                   sum(1 for f in failures if f["setting"] == big), "<=", 0)
    an = summary.get("analytic", {})
    if "T=400,D=32" in an:
        s = an["T=400,D=32"]
        rep.target("T=400,D=32: seconds per SurCo step (mean of 20 steps, train task)",
                   s["step_seconds"], "<=", 0.2)
        zero_s = s["seconds"].get("surco-zero", float("nan"))    # nan: every run failed
        rep.target("T=400,D=32: SurCo-zero's seconds per task, its start (cheapest "
                   "heuristic) included", zero_s + s["start_seconds"], "<=", 10.0)
    for tag in TARGET_SETTINGS:
        if tag not in an:
            continue
        s = an[tag]
        rep.target(f"{tag}: fraction of tasks on which SurCo-zero improves on its start",
                   s["zero_improved"], ">=", 1.0)
        m, v = s["time_ratio"]
        rep.target(f"{tag}: best SurCo-family method ({m}) mean cost / annealing's at "
                   "SurCo-zero's wall time", v, "<=", 1.0)
        m, v = s["evals_ratio"]
        rep.target(f"{tag}: best SurCo-family method ({m}) mean cost / annealing's at "
                   f"{EVALS} evaluations", v, "<=", 0.97)


def plot_summary(summary: dict, path) -> None:
    """Draw ``summary`` (`main`'s, also stored as ``summary`` in scale.json) to ``path``: per
    cost model, (1) every method at its own budget, (2) the searches and the SurCo family at
    SurCo-zero's wall time (dashed) and at `EVALS` evaluations (dotted), both as mean cost /
    cost-greedy's, and (3) seconds per task at the own budget. The settings are categories
    ordered by (T, D), as two settings share T."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(summary), 3, figsize=(17, 4.6 * len(summary)),
                             squeeze=False)
    for row, (model_name, settings) in zip(axes, summary.items()):
        tags = sorted(settings, key=lambda t: (settings[t]["T"], settings[t]["D"]))
        pos = np.arange(len(tags))
        labels = [f"{settings[t]['T']}/{settings[t]['D']}" for t in tags]
        ref = np.array([settings[t]["means"]["own"]["cost-greedy"] for t in tags])
        for ax, budgets in ((row[0], (("own", "-"),)),
                            (row[1], (("time", "--"), ("evals", ":")))):
            names = dict.fromkeys(m for t in tags for b, _ in budgets
                                  for m in settings[t]["means"][b])
            for k, m in enumerate(names):
                for b, style in budgets:
                    ys = np.array([settings[t]["means"][b].get(m, np.nan) for t in tags]) / ref
                    if np.all(np.isnan(ys)):
                        continue
                    kind = {"own": "", "time": " (equal time)", "evals": f" ({EVALS} evals)"}[b]
                    lab = m + kind
                    ax.plot(pos, ys, style, marker="o", ms=3, color=f"C{k % 10}", label=lab,
                            lw=2.2 if m.startswith("surco") else 1.0)
            ax.axhline(1.0, color="k", lw=0.5)
            ax.set(xticks=pos, xticklabels=labels, xlabel="tables / devices",
                   ylabel="mean cost / cost-greedy's")
            ax.legend(fontsize=6, ncol=2)
        row[0].set_title(f"{model_name} cost: every method at its own budget")
        row[1].set_title(f"{model_name} cost: searches and SurCo at equal time / {EVALS} evals")
        for k, m in enumerate(settings[tags[0]].get("seconds", {})):
            row[2].plot(pos, [settings[t]["seconds"].get(m, np.nan) for t in tags],
                        marker="o", ms=3, color=f"C{k % 10}", label=m)
        row[2].set(yscale="log", xticks=pos, xticklabels=labels, xlabel="tables / devices",
                   ylabel="seconds per task (own budget)", title=f"{model_name}: time")
        row[2].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def select_grid(grid: Sequence[tuple[int, int]], asked: Sequence[str]) -> list:
    """The settings of ``grid`` named in ``asked`` ("T/D" each), in the grid's order.

    Raises:
      ValueError: a malformed item or a setting not in ``grid`` (named, with the grid)."""
    want = set()
    for item in asked:
        try:
            T, D = (int(v) for v in item.split("/"))
        except ValueError:
            raise ValueError(f"bench.scale --grid: {item!r} is not T/D (e.g. 200/16)") from None
        if (T, D) not in grid:
            raise ValueError(f"bench.scale --grid: {item} is not a setting of the grid "
                             f"{' '.join(f'{a}/{b}' for a, b in grid)}")
        want.add((T, D))
    return [g for g in grid if g in want]


def main(argv: Sequence[str] | None = None) -> None:
    def options(p) -> None:
        p.add_argument("--grid", nargs="+", default=None, metavar="T/D",
                       help="only these settings of the grid (e.g. 100/8 200/16)")
        p.add_argument("--replot", action="store_true",
                       help="only redraw scale[-quick].png from the summary in "
                            "scale[-quick].json; runs nothing")
    args = parse_args(__doc__, argv, extra=options)
    if args.replot:
        import json
        name = f"scale{'-quick' if args.quick else ''}"
        data = json.loads((RESULTS / f"{name}.json").read_text())
        if not data.get("summary"):
            raise ValueError(f"bench.scale --replot: {RESULTS / name}.json has no summary of "
                             "finished settings to draw")
        plot_summary(data["summary"], RESULTS / f"{name}.png")
        print(f"drew {RESULTS / name}.png", flush=True)
        return
    from surco.problems.sharding import scale, torchrec_planner

    rep = Report("scale", args.quick)
    grid = scale.QUICK_GRID if args.quick else scale.SCALE_GRID
    if args.grid is not None:
        grid = select_grid(grid, args.grid)
        rep.extra["grid_subset"] = [f"{T}/{D}" for T, D in grid]
    n = QUICK_TEST if args.quick else N_TEST
    summary: dict = {}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    try:
        for T, D in grid:
            for name in ("analytic", "torchrec"):
                # one fresh process per setting: memory freed, caches bounded
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
                    rows, failures, out, cmps = ex.submit(run_setting, T, D, n, name,
                                                          args.store).result()
                for r in rows:
                    rep.row(**r)
                for budget, cmp in cmps.items():
                    rep.add_map(cmp, f"T={T},D={D} [{name}], {budget}")
                rep.extra.setdefault("failures", []).extend(failures)
                summary.setdefault(name, {})[f"T={T},D={D}"] = out
    except KeyboardInterrupt:
        print("interrupted: writing the settings finished so far", flush=True)
        rep.extra["interrupted"] = True
    _targets(rep, summary, rep.extra.get("failures", []))
    rep.extra["summary"] = summary
    rep.extra["growth"] = growth_exponents(summary)
    for model_name, per in rep.extra["growth"].items():
        print(f"time ~ T^k [{model_name}]: " + ", ".join(
            f"{m} {g['exponent']:.2f}" for m, g in sorted(per.items())), flush=True)
    rep.extra["torchrec_available"] = torchrec_planner.available()
    rep.extra["scale_settings"] = {k: v for k, v in scale.SCALE_SETTINGS.items()}
    rep.extra["settings_chosen_on"] = scale.TUNING_NOTE
    rep.extra["tuning"] = scale.TUNING
    if summary:
        plot = RESULTS / f"scale{'-quick' if args.quick else ''}.png"
        plot_summary(summary, plot)
        rep.extra["plot"] = str(plot.relative_to(RESULTS.parent.parent))
    rep.finish(table_columns=["setting", "cost_model", "budget", "method", "value",
                              "rel_reference", "wins", "ties", "losses", "seconds",
                              "evaluations", "failed"])


if __name__ == "__main__":
    main()
