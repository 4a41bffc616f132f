"""SurCo on the measured ground truth: every evaluation is one profiled plan (issue 25).

    python -m bench.measured [--quick] [--store PATH --resume] [--cache PATH]
                             [--budgets 30,100,300] [--tasks N] [--skip METHOD@E=N ...]

The family is sharding with the profiler as its true cost (`sharding-measured`:
``dataclasses.replace(sharding.FAMILY, evaluate=MeasuredCostModel.plan_cost, ...)``), so a
method's every distinct plan costs one measurement through its `surco.Meter`; a
neighbourhood scored at once is measured in one session. Each (budget, method) measures
with its own draw of the SQLite cache (`search_draw`): it pays for every device set it
measures — none is free because another method measured it — and a resumed run reads its
own measurements back. DLRM-50 test tasks on 4 devices (``--quick``: 3, else 10). Methods:

* SurCo family: SurCo-zero optimising the learned model (``surco-zero-learned``) and the
  analytic model (``surco-zero-analytic``), SurCo-hybrid on the learned model from the
  shipped SurCo-prior (``surco-hybrid-learned``), LANCER-zero (`surco.lancer`) on the
  learned model, declared a free proxy of the profiler (``free_f=True``: LANCER may
  compute it on plans it does not measure) — each judged by measurement only;
* the profiler queried directly: ``annealing`` and ``local-search-first`` (from the
  cheapest heuristic plan, as in `sharding.family`);
* DreamShard's proxy heuristics and the cost-model greedy (no evaluation).

Budgets: 30, 100 and 300 measurements (``surco.Budget(evaluations=E)``), then equal wall
time, measuring included: task by task, the seconds the best SurCo-family method (by its
fresh mean at 100 measurements) spent, given to annealing and local search. Every reported
cost is a *fresh* measurement of the final plan (draws 1-5 of its device sets, stored
apart in the cache, never the values the search saw — the best of many noisy
measurements is biased low): their median, and their spread ((max - min) / median), with
wins / ties / losses and a sign test over tasks; ``searched_value`` is what the search
saw. Settings: the profiler's setting and the learned model come from `bench.profiler`
(train tasks and train-pool tables only);
SurCo's are the sharding family's (chosen on train tasks). The runs go through the result
store (``--store`` / ``--resume``; keyed by the profiler setting too), the measurements
through the cache: a stopped bench resumes. A bench run as several processes on one
store re-measures its final plans in several sessions (each process's cached draws); rerun
it once with ``--fresh-draws 6,7,8,9`` (draws not used before) to measure every final plan of
the report again in one session. ``--skip lancer-learned@E=300`` leaves one
(method, budget) pair out (listed in the report's ``skipped``), for a method too slow at that
budget for the sitting. Writes bench/results/measured[-quick].json.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    # before JAX starts (spin-free CPU times; the value of `measured.CPU_XLA_FLAGS`,
    # recorded in the report): importing the sharding package below builds JAX arrays
    os.environ.setdefault("XLA_FLAGS",
                          "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import zlib  # noqa: E402
from typing import Sequence  # noqa: E402

import numpy as np  # noqa: E402

import surco  # noqa: E402
from bench import profiler as bp  # noqa: E402
from bench._report import RESULTS, Report, compare, parse_args  # noqa: E402
from surco.problems import sharding as S  # noqa: E402
from surco.problems.sharding import measured as prof  # noqa: E402
from surco.problems.sharding.baselines import PROXY_HEURISTICS  # noqa: E402
from surco.problems.sharding.problem import ZERO_DEFAULTS  # noqa: E402
from surco.problems.sharding.settings import load_prior  # noqa: E402

BUDGETS = (30, 100, 300)
FRESH_DRAWS = (1, 2, 3, 4, 5)
SEARCHES = ("annealing", "local-search-first")
SURCO_FAMILY = ("surco-zero-learned", "surco-zero-analytic", "surco-hybrid-learned",
                "lancer-learned")
HEURISTICS = tuple(PROXY_HEURISTICS) + ("cost-greedy",)


def measured_family(model: S.ShardingCostModel, truth: prof.MeasuredCostModel,
                    name: str = "sharding-measured") -> surco.Family:
    """The sharding family judged by the profiler: ``evaluate`` is ``truth.plan_cost`` (one
    evaluation = one profiled plan), ``evaluate_batch`` measures a batch's new device sets
    together (`MeasuredCostModel.plan_costs`), and SurCo's objective f is ``model``'s smooth
    plan cost (learned or analytic). ``name`` is the family's name in the result store's
    keys (`main` appends the profiler setting, so that runs measured with another setting
    are never resumed)."""
    problem = S.sharding_problem(model, temperature=ZERO_DEFAULTS["temperature"], truth=truth)
    return dataclasses.replace(
        S.FAMILY, name=name, problem=lambda task: problem,
        evaluate=lambda x, task: truth.plan_cost(x, task),
        evaluate_batch=lambda X, task: truth.plan_costs(X, task), reference="annealing",
        f_rtol=1.0)


def search_draw(setting: str, method: str) -> int:
    """The measurement draw a method's search uses in one setting (>= 10; fresh draws are
    `FRESH_DRAWS`): each (setting, method) pays for its own measurements — a device set
    another method measured is not free to it — and a resumed run reads back its own."""
    return 10 + zlib.crc32(f"{setting}/{method}".encode()) % 10 ** 8


def compare_each(fam: surco.Family, tasks: Sequence, table: dict, *, setting: str,
                 budget, store, truth: prof.MeasuredCostModel) -> surco.Comparison:
    """`surco.compare` method by method, each evaluating with its own draw
    (`search_draw`), merged into one comparison."""
    out = None
    for name, method in table.items():
        mine = dataclasses.replace(truth, draw=search_draw(setting, name))
        fam_m = dataclasses.replace(fam, evaluate=lambda x, t, m=mine: m.plan_cost(x, t),
                                    evaluate_batch=lambda X, t, m=mine: m.plan_costs(X, t))
        c = compare(fam_m, tasks, {name: method}, setting=setting, budget=budget,
                    store=store, progress=True)
        out = c if out is None else out.merge(c)
    return out


def methods(learned: prof.LearnedCostModel, truth: prof.MeasuredCostModel) -> dict:
    """name -> harness method (see the module docstring)."""
    fam_l = measured_family(learned, truth)
    fam_a = measured_family(S.DEFAULT_COST_MODEL, truth)
    prior = load_prior()
    out = {"surco-zero-learned": surco.surco_methods(fam_l)["surco-zero"],
           "surco-zero-analytic": surco.surco_methods(fam_a)["surco-zero"],
           "surco-hybrid-learned": surco.surco_methods(fam_l, prior=prior)["surco-hybrid"]}
    try:
        from surco.lancer import lancer_method
        # f (the learned cost model) is a free proxy of the profiler, the metered cost
        out["lancer-learned"] = lancer_method(fam_l, free_f=True)
    except ImportError:   # surco.lancer not present in this checkout
        pass
    out.update({m: fam_a.baselines[m] for m in SEARCHES + HEURISTICS})
    return out


def surco_family(name: str) -> bool:
    return name.startswith(("surco", "lancer"))


def fresh(cmps: dict[str, surco.Comparison], tasks: Sequence, cfg: prof.ProfilerConfig,
          cache: prof.MeasurementCache, draws: Sequence[int] = FRESH_DRAWS) -> dict[str, tuple[surco.Comparison, dict]]:
    """Each comparison with its runs' values replaced by a fresh measurement of their plans:
    the median over ``draws`` (default `FRESH_DRAWS`); the final plans of all comparisons on a task are
    measured together, draw by draw (one session, so that the machine's drift hits them
    alike). Per comparison, also ``{(method, task): (spread, searched value)}``."""
    out = {k: ([], {}) for k in cmps}
    for i, task in enumerate(tasks):
        mine = [(k, r) for k, c in cmps.items() for r in c.runs if r.instance == i and r.ok]
        if not mine:
            continue
        X = np.stack([np.asarray(r.x) for _, r in mine])
        costs = np.stack([prof.MeasuredCostModel(cfg, cache=cache, draw=d).plan_costs(X, task)
                          for d in draws])
        for (k, r), c in zip(mine, costs.T):
            v = float(np.median(c))
            out[k][0].append(dataclasses.replace(r, value=v))
            out[k][1][r.method, i] = (float((c.max() - c.min()) / v), r.value)
    return {k: (dataclasses.replace(c, runs=out[k][0] + [r for r in c.runs if not r.ok]),
                out[k][1]) for k, c in cmps.items()}


def rows_of(cmp: surco.Comparison, info: dict, setting: str) -> list[dict]:
    """Summary rows (fresh values; reference annealing where it ran) with each method's
    median fresh spread and its mean searched value (what its meter saw)."""
    ref = "annealing" if "annealing" in cmp.methods else None
    out = []
    for row in cmp.summary(reference=ref):
        m = row["method"]
        sp = [info[k][0] for k in info if k[0] == m]
        seen = [info[k][1] for k in info if k[0] == m]
        out.append({"setting": setting, **row,
                    "fresh_spread": float(np.median(sp)) if sp else None,
                    "searched_value": float(np.mean(seen)) if seen else None})
    return out


def parse_skips(skips: Sequence[str], methods: Sequence[str],
                budgets: Sequence[int]) -> set[tuple[str, int]]:
    """``METHOD@E=N`` strings as (method, N) pairs, each naming a method that runs at
    evaluation budgets and one of ``budgets``; anything else is refused, naming the
    string."""
    out = set()
    for s in skips:
        name, sep, rest = s.partition("@E=")
        if not sep or not rest.isdigit():
            raise ValueError(f"--skip {s!r}: expected METHOD@E=N, e.g. lancer-learned@E=300")
        if name not in methods:
            raise ValueError(f"--skip {s!r}: no method {name!r} in this bench "
                             f"(methods: {', '.join(methods)})")
        if int(rest) not in budgets:
            raise ValueError(f"--skip {s!r}: {rest} is not one of the budgets "
                             f"{', '.join(map(str, budgets))}")
        out.add((name, int(rest)))
    return out


def parse_draws(text: str) -> tuple[int, ...]:
    """``--fresh-draws``: distinct draws from 1 to 9 (0 is the learned model's dataset, 10
    and up the searches' own, `search_draw`), else a ValueError naming the value."""
    try:
        draws = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise ValueError(f"--fresh-draws {text!r}: expected integers such as 1,2,3,4,5") from None
    if not draws or len(set(draws)) != len(draws) or not all(1 <= d <= 9 for d in draws):
        raise ValueError(f"--fresh-draws {text!r}: expected distinct draws from 1 to 9 "
                         f"(0 is the dataset's, 10 and up the searches' own measurements)")
    return draws


def profiler_setting(quick: bool, device) -> tuple[str, dict]:
    """The profiler setting chosen by `bench.profiler` (its JSON), else chosen now."""
    path = RESULTS / f"profiler{'-quick' if quick else ''}.json"
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("chosen_setting") in bp.SETTINGS:
            return data["chosen_setting"], {"from": str(path.name), "targets": data["targets"]}
    rows, chosen = bp.sweep(quick, device)
    return chosen, {"from": "this run", "rows": rows}


def _extra(p):
    p.add_argument("--cache", default=None, help="measurement cache (default "
                   "$SURCO_PROFILER_CACHE or ~/.cache/surco/profiler.sqlite)")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)),
                   help="evaluation budgets, comma-separated")
    p.add_argument("--tasks", type=int, default=None, help="DLRM-50 test tasks")
    p.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    p.add_argument("--fresh-draws", default=",".join(map(str, FRESH_DRAWS)),
                   help="the measurement draws of the fresh re-measurement (1-9), "
                        "comma-separated; new draws re-measure every final plan now")
    p.add_argument("--skip", action="append", default=[], metavar="METHOD@E=N",
                   help="leave one method out at one evaluation budget (repeatable)")


def main(argv=None) -> None:
    args = parse_args(__doc__.split("\n\n")[0], argv, extra=_extra)
    device = prof.default_device()
    cache_path = args.cache or prof.default_cache_path()
    bp.compile_cache(cache_path)
    budgets = [int(b) for b in args.budgets.split(",")]
    try:
        skips = parse_skips(args.skip, SURCO_FAMILY + SEARCHES, budgets)
        draws = parse_draws(args.fresh_draws)
    except ValueError as e:
        raise SystemExit(f"bench.measured: {e}") from None
    rep = Report("measured", args.quick)
    rep.extra["load_avg_start"] = os.getloadavg()[0]
    rep.extra["skipped"] = sorted(f"{m}@E={E}" for m, E in skips)
    label, origin = profiler_setting(args.quick, device)
    cfg = bp.config_of(label, device)
    rep.extra["profiler"] = {"setting": label, "config": dataclasses.asdict(cfg), **origin,
                             "xla_flags": os.environ.get("XLA_FLAGS"),
                             "cache": str(cache_path)}
    for t in origin.get("targets", []):     # the profiler's (the learned model's: below)
        if t["name"].startswith("profiler"):
            rep.target(t["name"], t["value"], t["op"], t["target"])
    tasks = S.FAMILY.generate(args.tasks or (3 if args.quick else 10), seed=1, n_tables=50,
                              n_devices=4)
    with prof.MeasurementCache(cache_path) as cache:
        learned, lm, _ = bp.learned_model(label, args.quick, cache, device)
        rep.extra["learned_model"] = lm
        rep.target("learned model held-out MAPE / profiler repeatability MAPE (same "
                   "subsets)", lm["model_mape"] / lm["repeat_mape"], "<=", 2.0)
        rep.target("learned model held-out Kendall tau", lm["model_tau"], ">=", 0.8)
        truth = prof.MeasuredCostModel(cfg, cache=cache)
        table = methods(learned, truth)
        if args.methods:
            asked = args.methods.split(",")
            unknown = [m for m in asked if m not in table]
            if unknown:
                raise SystemExit(f"bench.measured: --methods: no method {unknown[0]!r} "
                                 f"(methods: {', '.join(table)})")
            table = {k: v for k, v in table.items() if k in asked}
        # the store's key holds the profiler setting: a run measured with another one is
        # not resumed (its values are on another scale)
        fam = measured_family(S.DEFAULT_COST_MODEL, truth, name=f"sharding-measured/{label}")
        run = dict(store=args.store, truth=truth)
        results = {}
        heur = {k: v for k, v in table.items() if k in HEURISTICS}
        if heur:
            results["heuristics"] = compare_each(fam, tasks, heur, setting="heuristics",
                                                 budget=surco.Budget(), **run)
        search = {k: v for k, v in table.items() if k not in HEURISTICS}
        for E in budgets:
            mine = {k: v for k, v in search.items() if (k, E) not in skips}
            if not mine:
                continue
            results[f"E={E}"] = compare_each(fam, tasks, mine, setting=f"E={E}",
                                             budget=surco.Budget(evaluations=E), **run)
        best = None
        if "E=100" in results:   # the best by its fresh measured mean
            c100 = fresh({"E=100": results["E=100"]}, tasks, cfg, cache,
                         draws)["E=100"][0]
            sur = [m for m in c100.methods if surco_family(m)]
            best = min(sur, key=lambda m: np.nanmean(c100.values(m))) if sur else None
        timed = {k: v for k, v in search.items() if k in SEARCHES}
        if best is not None and timed:
            results["equal-time"] = compare_each(
                fam, tasks, timed, setting=f"equal-time({best}@E=100)",
                budget=results["E=100"].matched_budget(best), **run)
        fr = fresh(results, tasks, cfg, cache, draws)
    for k, (c, info) in fr.items():
        for r in rows_of(c, info, k):
            rep.row(**r)
    _targets(rep, fr, best)
    rep.extra["tasks"] = len(tasks)
    rep.extra["fresh_draws"] = list(draws)
    rep.extra["runs"] = {k: [{"method": r.method, "task": r.instance, "fresh": r.value,
                              "spread": fr[k][1].get((r.method, r.instance), (None,))[0],
                              "searched": fr[k][1].get((r.method, r.instance), (0, None))[1],
                              "seconds": r.seconds, "evaluations": r.evaluations,
                              "load_avg": r.load_avg, "status": r.status, "error": r.error}
                             for r in c.runs] for k, (c, _) in fr.items()}
    loads = [r.load_avg for c, _ in fr.values() for r in c.runs if r.load_avg is not None]
    if loads:     # runs may come from the store (--resume): the loads they ran at
        rep.extra["load_avg_of_runs"] = {"min": min(loads), "median": float(np.median(loads)),
                                         "max": max(loads)}
    rep.extra["load_avg_end"] = os.getloadavg()[0]
    prof.release_buffers(device)
    rep.finish(table_columns=["setting", "method", "value", "rel_reference", "wins", "ties",
                              "losses", "p_sign", "fresh_spread", "searched_value",
                              "evaluations", "seconds"])


def _targets(rep: Report, fr: dict, best: str | None) -> None:
    """The issue's comparison targets (met or not), from the fresh values."""
    if best is None or "E=100" not in fr:
        return
    c100 = fr["E=100"][0]
    sur = float(np.nanmean(c100.values(best)))
    rep.extra["best_surco_family_at_100"] = best
    if "annealing" in c100.methods:
        rep.target(f"E=100: best SurCo-family ({best}) mean / annealing's",
                   sur / float(np.nanmean(c100.values("annealing"))), "<=", 0.95)
    if "heuristics" in fr:
        ch = fr["heuristics"][0]
        proxies = [m for m in PROXY_HEURISTICS if m in ch.methods]
        if proxies:
            bestp = min(proxies, key=lambda m: np.nanmean(ch.values(m)))
            rep.target(f"E=100: best SurCo-family ({best}) mean / best DreamShard proxy's "
                       f"({bestp})", sur / float(np.nanmean(ch.values(bestp))), "<=", 0.90)
    if "equal-time" in fr and "annealing" in fr["equal-time"][0].methods:
        ann = float(np.nanmean(fr["equal-time"][0].values("annealing")))
        rep.target(f"equal wall time: best SurCo-family ({best}, E=100) mean / annealing's",
                   sur / ann, "<=", 1.00)


if __name__ == "__main__":
    main()
