"""The comparison harness: methods × instances under equal budgets, paired results.

    import surco
    from surco.problems import sharding
    cmp = surco.compare(sharding.FAMILY, tasks, budget=surco.Budget(evaluations=300))
    print(cmp.table())                 # mean cost, wins / ties / losses against the reference,
    cmp.plot("cmp.png")                # sign-test p-value, seconds, evaluations; anytime curves
    cmp.write_json("bench.json", bench="sharding", quick=False)   # with the map below
    print(cmp.map())                   # which method wins per (cost of f, time budget)

Every method, SurCo included, is a `surco.family.Method` ``(instance, meter) -> x`` and
evaluates the true cost only through its `surco.budget.Meter`, so evaluations are counted
the same way for all (distinct solutions whose true cost was computed) and a budget in
seconds, in evaluations, or both, is enforced the same way. ``Budget(eval_cost=s)`` charges
s simulated seconds per evaluation on every method's clock, as if f were that expensive
(`Run.seconds` is charged time, `Run.wall_seconds` the real time). Every returned x is checked
against Ω by the family's solver-free check (`Family.violations`). A method that raises is
recorded as failed with its error and the run goes on; one cut off by its budget keeps the
best x its meter saw. Ctrl-C stops the comparison and keeps the runs finished so far
(`Comparison.interrupted`).

Results are paired per instance against a reference method (by default the family's, else
the best non-SurCo method by mean value): wins, ties and losses with a two-sided sign test
(Dixon & Mood, JASA 1946: ties dropped, p from Binomial(wins + losses, 1/2)). From the
anytime traces: `Comparison.map` (`surco.whichmethod`: the winner per cost of one evaluation
and time budget), `Comparison.data_profile` and `Comparison.performance_profile`
(`surco.profiles`: Moré & Wild 2009, Dolan & Moré 2002).
"""
from __future__ import annotations

import dataclasses
import json
import math
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from surco.budget import Budget, BudgetExhausted, Meter
from surco.family import Family, Method
from surco.runs import Job, Run, execute
from surco.store import RunStore
from surco.whichmethod import DEFAULT_BUDGETS, DEFAULT_COSTS, is_surco, trace

__all__ = ["compare", "Comparison", "Run", "surco_methods", "sign_test", "SURCO_METHODS"]

#: The names `surco_methods` gives SurCo's three variants (Ferber et al., ICML 2023).
SURCO_METHODS = ("surco-zero", "surco-prior", "surco-prior-robust", "surco-hybrid")


def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign-test p-value of ``wins`` against ``losses`` (ties already dropped);
    1.0 when there is no untied pair (Dixon & Mood 1946)."""
    n = int(wins) + int(losses)
    if n == 0:
        return 1.0
    from scipy.stats import binomtest
    return float(binomtest(int(wins), n, 0.5).pvalue)


def _ties(a: np.ndarray, b: np.ndarray, rtol: float) -> np.ndarray:
    return np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + 1e-12


@dataclasses.dataclass
class Comparison:
    """Runs of methods × instances, with paired summaries, a table, a plot and a JSON.

    Attributes:
      family: the family's name; runs: every `Run`; methods: names in order;
      n_instances: how many instances; interrupted: True when Ctrl-C stopped the comparison
        (the runs finished before it are kept); reference: the default reference method.
    """

    family: str
    runs: list[Run]
    methods: list[str]
    n_instances: int
    reference: str | None = None
    interrupted: bool = False

    def __repr__(self) -> str:
        return (f"Comparison({self.family!r}, methods={self.methods}, "
                f"instances={self.n_instances}, runs={len(self.runs)}"
                f"{', interrupted' if self.interrupted else ''})")

    @classmethod
    def from_store(cls, store: "str | Path | RunStore", *, family: str,
                   setting: str | None = None, budget: Budget | None = None,
                   methods: Sequence[str] | None = None,
                   reference: str | None = None) -> "Comparison":
        """The comparison held by a `surco.store.RunStore` (``compare(..., store=)``): the
        runs of ``family`` with this ``setting`` (and ``budget``, when several budgets were
        stored under one setting), for tables, plots and maps without running anything.

        Raises:
          ValueError: no such runs, or two runs of one method on one instance (naming them:
            give ``setting`` or ``budget`` to tell them apart)."""
        store = store if isinstance(store, RunStore) else RunStore(store)
        runs = [RunStore.to_run(rec) for rec in store.records(family=family, setting=setting)]
        if budget is not None:
            runs = [r for r in runs if r.budget == budget]
        if methods is not None:
            runs = [r for r in runs if r.method in methods]
        if not runs:
            raise ValueError(f"from_store: {store.path} holds no runs of family {family!r} "
                             f"with setting {setting!r}"
                             + (f" and budget {budget.describe()}" if budget else ""))
        seen: dict[tuple, Run] = {}
        for r in runs:
            if (r.method, r.instance) in seen:
                first = seen[r.method, r.instance].budget.describe()
                raise ValueError(f"from_store: {store.path} holds two runs of {r.method!r} on "
                                 f"instance {r.instance} ({first} and {r.budget.describe()}): "
                                 f"give setting= or budget=")
            seen[r.method, r.instance] = r
        names = list(methods) if methods is not None else list(dict.fromkeys(r.method for r in runs))
        runs.sort(key=lambda r: (names.index(r.method), r.instance))
        return cls(family, runs, names, max(r.instance for r in runs) + 1, reference)

    # -- access ------------------------------------------------------------------------------
    def run(self, method: str, instance: int) -> Run:
        """The run of ``method`` on instance ``instance``.

        Raises:
          KeyError: no such run (naming the methods and instances there are)."""
        for r in self.runs:
            if r.method == method and r.instance == instance:
                return r
        raise KeyError(f"no run of {method!r} on instance {instance}; methods "
                       f"{self.methods}, instances 0..{self.n_instances - 1}")

    def values(self, method: str) -> np.ndarray:
        """True cost per instance (nan where the method failed or did not run)."""
        out = np.full(self.n_instances, np.nan)
        for r in self.runs:
            if r.method == method:
                out[r.instance] = r.value
        return out

    def merge(self, other: "Comparison") -> "Comparison":
        """Both comparisons' runs (same family and instances; ``other``'s methods after
        this one's; a method in both keeps this one's runs)."""
        if other.family != self.family or other.n_instances != self.n_instances:
            raise ValueError(f"merge: comparisons of {self.family!r} on {self.n_instances} "
                             f"instances and {other.family!r} on {other.n_instances} differ")
        extra = [m for m in other.methods if m not in self.methods]
        return Comparison(self.family, self.runs + [r for r in other.runs if r.method in extra],
                          self.methods + extra, self.n_instances, self.reference,
                          self.interrupted or other.interrupted)

    def matched_budget(self, method: str, *, seconds: bool = True,
                       evaluations: bool = False) -> Callable[[str, int], Budget]:
        """Per-instance budgets equal to what ``method`` spent on each instance (its seconds
        as charged and/or its evaluations), each with the ``eval_cost`` that ``method`` ran
        under, for a second `compare` at equal budget."""
        if method not in self.methods:
            raise KeyError(f"matched_budget: {method!r} did not run; methods {self.methods}")

        def budget(_name: str, i: int) -> Budget:
            r = self.run(method, i)
            return Budget(seconds=max(r.seconds, 1e-3) if seconds else None,
                          evaluations=max(r.evaluations, 1) if evaluations else None,
                          eval_cost=r.budget.eval_cost)
        return budget

    def default_reference(self) -> str:
        """The family's reference if it ran, else the non-SurCo method with the lowest mean
        value over the instances where every such method succeeded."""
        if self.reference in self.methods:
            return self.reference
        cands = [m for m in self.methods if not is_surco(m)] or list(self.methods)
        means = {m: np.nanmean(self.values(m)) if np.isfinite(self.values(m)).any() else np.inf
                 for m in cands}
        return min(cands, key=lambda m: means[m])

    # -- summaries -----------------------------------------------------------------------
    def summary(self, reference: str | None = None, rtol: float = 1e-6) -> list[dict]:
        """One row per method, paired with ``reference`` on the instances both solved.

        Row keys: method, n (instances run), failed, value (mean true cost over its
        successful runs), rel_gap ((mean − reference's mean) / |reference's mean| over the
        paired instances, for costs of either sign: −0.04 is 4 % better; None when the
        reference's mean is 0 or nothing is paired), rel_reference (mean / reference's mean,
        a ratio only for positive costs: None when the reference's mean is not positive),
        gap (mean paired difference, method − reference), wins / ties / losses (lower is
        better; ties within ``rtol``), p_sign (two-sided sign test), seconds (charged),
        wall_seconds and evaluations (means)."""
        ref = reference or self.default_reference()
        if ref not in self.methods:
            raise KeyError(f"summary: reference {ref!r} did not run; methods {self.methods}")
        rv = self.values(ref)
        rows = []
        for m in self.methods:
            runs = [r for r in self.runs if r.method == m]
            v = self.values(m)
            both = np.isfinite(v) & np.isfinite(rv)
            a, b = v[both], rv[both]
            tie = _ties(a, b, rtol)
            wins, losses = int(np.sum((a < b) & ~tie)), int(np.sum((a > b) & ~tie))
            ok = [r for r in runs if r.ok]
            rows.append({
                "method": m, "n": len(runs), "failed": len(runs) - len(ok),
                "value": float(np.mean([r.value for r in ok])) if ok else math.nan,
                "rel_gap": (float((a.mean() - b.mean()) / abs(b.mean()))
                            if both.any() and b.mean() != 0 else None),
                "rel_reference": (float(a.mean() / b.mean()) if both.any() and b.mean() > 0
                                  else None),
                "gap": float(np.mean(a - b)) if both.any() else math.nan,
                "wins": wins, "ties": int(tie.sum()), "losses": losses,
                "p_sign": sign_test(wins, losses),
                "seconds": float(np.mean([r.seconds for r in runs])) if runs else math.nan,
                "wall_seconds": (float(np.mean([trace(r).end_real_seconds for r in runs]))
                                 if runs else math.nan),
                "evaluations": float(np.mean([r.evaluations for r in runs])) if runs else math.nan,
                "reference": ref,
            })
        return rows

    def table(self, reference: str | None = None) -> str:
        """`summary` as a plain-text table: mean cost, its relative gap to the reference's
        ("vs ref", ``rel_gap`` in %: negative is better, for costs of either sign),
        wins/ties/losses against the reference, p, seconds per instance (charged),
        evaluations, failures."""
        rows = self.summary(reference)
        ref = rows[0]["reference"] if rows else reference
        head = (f"{'method':<22}{'mean cost':>12}{'vs ref':>9}{'W/T/L vs ' + str(ref):>28}"
                f"{'p':>8}{'s/inst':>9}{'evals':>8}{'failed':>7}")
        lines = [head, "-" * len(head)]
        for r in rows:
            rel = "" if r["rel_gap"] is None else f"{100 * r['rel_gap']:+.2f}%"
            wtl = f"{r['wins']}/{r['ties']}/{r['losses']}"
            lines.append(f"{r['method']:<22}{r['value']:>12.5g}{rel:>9}{wtl:>28}"
                         f"{r['p_sign']:>8.3g}{r['seconds']:>9.3g}{r['evaluations']:>8.0f}"
                         f"{r['failed']:>7}")
        if self.interrupted:
            lines.append("(interrupted: runs finished before Ctrl-C only)")
        failed = [r for r in self.runs if r.status == "failed"]
        for r in failed[:5]:
            lines.append(f"failed: {r.method} on instance {r.instance}: {r.error}")
        if len(failed) > 5:
            lines.append(f"... {len(failed) - 5} more failed runs")
        return "\n".join(lines)

    def anytime(self, method: str, axis: str = "evaluations",
                grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean best-so-far value of ``method`` over instances, on a grid of evaluations or
        seconds (``axis``): nan at grid points before every run has its first value, so the
        mean is always over the same runs (`surco.whichmethod.anytime`)."""
        from surco.whichmethod import anytime
        return anytime(self, method, axis, grid)

    def plot(self, path: str | Path | None = None, reference: str | None = None,
             title: str = ""):
        """The mean cost of each method against the reference's (relative gap in %, bars
        from 0; SurCo in orange), and the anytime curves (mean best-so-far against
        evaluations and against seconds) of the methods that evaluate through their meter
        (`surco.plots.plot_comparison`). Writes ``path`` when given; returns the figure
        (needs matplotlib)."""
        from surco.plots import plot_comparison
        return plot_comparison(self, path, reference, title)

    # -- which method when, profiles ------------------------------------------------------
    def map(self, costs: Sequence[float] = DEFAULT_COSTS,
            budgets: Sequence[float] = DEFAULT_BUDGETS, *, partial: bool = False):
        """Which method wins at each (seconds per evaluation, total time budget) cell, from
        the runs' anytime traces: `surco.whichmethod.method_map` (a `MethodMap` with
        winners, means, margins, reasons for undecided cells and the crossover sentence;
        ``.plot(path)`` draws the heat map)."""
        from surco.whichmethod import method_map
        return method_map(self, costs, budgets, partial=partial)

    def data_profile(self, tol: float = 1e-3, kappa: Sequence[float] | None = None,
                     axis: str = "evaluations", eval_cost: float | None = None):
        """Moré–Wild data profile of the runs (`surco.profiles.data_profile`; ``.plot``)."""
        from surco.profiles import data_profile
        return data_profile(self, tol, kappa, axis, eval_cost)

    def performance_profile(self, tol: float = 1e-3, taus: Sequence[float] | None = None,
                            axis: str = "evaluations", eval_cost: float | None = None):
        """Dolan–Moré performance profile of the runs (`surco.profiles.performance_profile`;
        ``.plot``)."""
        from surco.profiles import performance_profile
        return performance_profile(self, tol, taus, axis, eval_cost)

    def to_rows(self, reference: str | None = None, **extra: Any) -> list[dict]:
        """`summary` rows with ``extra`` keys (e.g. a setting) added to each, for BENCH JSON."""
        return [{**extra, **r} for r in self.summary(reference)]

    def write_json(self, path: str | Path, *, bench: str, quick: bool,
                   targets: Sequence[dict] = (), reference: str | None = None,
                   **extra: Any) -> Path:
        """The JSON of the project's BENCH.md: bench, quick, machine, commit, started,
        rows (`summary`), targets (each ``{"name", "value", "op", "target"}``), plus
        ``extra`` keys, the per-run records and "map": the which-method map on the default
        grid (`map`, `surco.whichmethod.MethodMap.to_json`: costs, budgets, winners,
        margins, means, reasons of undecided cells, the crossover sentence)."""
        from surco.report import Report
        rep = Report(bench, quick, path=path)
        for r in self.to_rows(reference):
            rep.row(**r)
        for t in targets:
            rep.target(t["name"], t["value"], t["op"], t["target"])
        rep.extra.update(extra)
        rep.extra["runs"] = [{"method": r.method, "instance": r.instance, "value": r.value,
                              "seconds": r.seconds, "wall_seconds": r.wall_seconds,
                              "evaluations": r.evaluations, "eval_cost": r.budget.eval_cost,
                              "status": r.status, "cut_off": r.cut_off, "error": r.error}
                             for r in self.runs]
        rep.extra["map"] = self.map().to_json()
        return rep.finish(quiet=True)


# ------------------------------------------------------------------------------------------
# SurCo as methods of the harness
# ------------------------------------------------------------------------------------------
def _zero_call(family: Family, instance, meter: Meter, settings: Mapping[str, Any],
               prior=None):
    import surco
    problem = family.problem(instance)
    counted = dataclasses.replace(problem, evaluate=lambda x, y: meter(x))
    kw = dict(settings)
    init = kw.pop("init", "random")
    if prior is None and callable(init):
        init = init(instance)
    kw["select"] = "evaluate"
    if meter.budget.evaluations is not None:
        # steps whose x repeats cost no evaluation: let the evaluation budget be the limit,
        # up to 4 steps per evaluation
        kw["steps"] = max(int(kw.get("steps", 100)), 4 * int(meter.budget.evaluations))
    if prior is not None:
        # SurCo-hybrid (Alg. 4) from the better, by the prior's f, of the prior's cost and
        # the family's own start (`surco.prior.hybrid_start`)
        init, _ = surco.prior.hybrid_start(prior, instance,
                                           heuristic=init if callable(init) else None)
    if math.isfinite(meter.remaining_seconds()):
        # charged seconds left: never too short a wall limit; under eval_cost the meter
        # stops the run at the charged deadline (every call past it raises). Read last, as
        # zero counts its limit from its own start; zero stops a solve in flight there.
        kw["time_limit"] = max(meter.remaining_seconds(), 1e-3)
    return surco.zero(counted, instance, init=init, **kw)


def _answer(result) -> np.ndarray:
    """SurCo-zero's x; a run that the budget stopped before its first step has none, which
    is the budget's doing (`BudgetExhausted`: the harness keeps the meter's best x, if any)."""
    if result is None:
        raise BudgetExhausted("the budget ran out before SurCo-zero's first step")
    return np.asarray(result.x)


def surco_methods(family: Family, prior=None, **overrides: Any) -> dict[str, Method]:
    """SurCo-zero (and, given a trained prior, SurCo-prior and SurCo-hybrid) as harness
    methods, with the family's ``zero_settings`` (``overrides`` replace entries).

    SurCo-zero and -hybrid select their answer by the true cost through the meter (each new
    x of a step is one evaluation; a step whose x repeats is free), stop at the meter's
    deadline, and under an evaluation budget run until it is spent. SurCo-hybrid starts from
    the better of the prior's cost and the family's own start (``zero_settings["init"]``).
    SurCo-prior is one forward pass and one solve: no evaluation; "surco-prior-robust"
    scores 4 candidate costs (the prior's, its heuristic base's and perturbations) in one
    batched solve by the prior's f and keeps the best (`PriorModel.predict` ``candidates``).

    Raises:
      TypeError: an override (or a ``zero_settings`` key) that is neither a parameter of
        `surco.zero` nor a hyperparameter of the estimator (with the closest valid name).
    """
    settings = {**dict(family.zero_settings), **overrides}
    from surco._engine import check_zero_settings
    check_zero_settings("surco_methods", settings)   # TypeError naming a misspelt override

    def zero_method(instance, meter):
        return _answer(_zero_call(family, instance, meter, settings))

    methods: dict[str, Method] = {"surco-zero": zero_method}
    if prior is not None:
        def prior_method(instance, meter):
            return np.asarray(prior.predict(instance).x)

        def hybrid_method(instance, meter):
            return _answer(_zero_call(family, instance, meter, settings, prior=prior))

        def robust_method(instance, meter):
            return np.asarray(prior.predict(instance, candidates=4).x)

        methods["surco-prior"] = prior_method
        methods["surco-prior-robust"] = robust_method
        methods["surco-hybrid"] = hybrid_method
    return methods


# ------------------------------------------------------------------------------------------
# The harness
# ------------------------------------------------------------------------------------------
def _lancer(family: Family) -> Method:
    """LANCER-zero with the family's settings (`surco.lancer.lancer_method`), as "lancer"."""
    def lancer(instance, meter):
        from surco.lancer import lancer_method
        return lancer_method(family)(instance, meter)
    return lancer


def _resolve_methods(family: Family, methods, prior) -> dict[str, Method]:
    known: dict[str, Method] = dict(family.baselines)
    if family.exact is not None:
        known["exact"] = family.exact
    known.update(surco_methods(family, prior))
    if methods is None:
        return known
    known["lancer"] = _lancer(family)   # by name only: LANCER runs until its budget is spent
    if isinstance(methods, Mapping):
        bad = [k for k, v in methods.items() if not isinstance(k, str) or not callable(v)]
        if bad:
            raise TypeError(f"compare: methods must map names to callables "
                            f"method(instance, meter) -> x; bad entries {bad}")
        return dict(methods)
    if isinstance(methods, str):
        raise TypeError("compare: methods must be a list of names or a mapping, not a string")
    out = {}
    for m in methods:
        if m not in known:
            hint = (" (surco-prior / surco-hybrid need prior=...)"
                    if m in SURCO_METHODS and prior is None else "")
            raise ValueError(f"compare: unknown method {m!r}{hint}; choose from {sorted(known)}")
        out[m] = known[m]
    return out


def compare(family: Family, instances: Sequence[Any], methods: Sequence[str] | Mapping[str, Method] | None = None,
            *, budget: Budget | Callable[[str, int], Budget] = Budget(), prior=None,
            reference: str | None = None, progress: bool = True,
            store: "str | Path | RunStore | None" = None, setting: str | None = None,
            executor: Executor | None = None) -> Comparison:
    """Run methods × instances under a budget and pair the results per instance.

    Args:
      family: the problem `Family` (evaluate, Ω check, baselines, SurCo settings).
      instances: the instances (a list or tuple).
      methods: names among the family's baselines, "exact" and `SURCO_METHODS`, or a
        mapping name -> `Method`; default: every baseline and SurCo (prior-based variants
        only when ``prior`` is given). Methods run in this order, each over all instances.
      budget: one `Budget` for every (method, instance), or a function
        ``(method, instance index) -> Budget`` (e.g. `Comparison.matched_budget`).
      prior: a trained SurCo-prior for "surco-prior" / "surco-hybrid".
      reference: the default reference of the summaries (default: the family's, else the
        best non-SurCo method).
      progress: a progress bar over (method, instance) pairs.
      store: a `surco.store.RunStore` or its path (JSON Lines): every finished run is
        appended as it completes, and a run already there (same family, setting, method,
        instance index and content, budget) is taken from it, not run again; so a stopped
        or crashed comparison, run again with the same store, does only what is missing.
      setting: a label of this comparison in the store (e.g. "T=50,D=4"), part of the key.
      executor: a `concurrent.futures.Executor` to which the (method, instance) runs are
        submitted (Dask: ``Client.get_executor()``; Ray: `surco.solvers.RayExecutor`); the
        runs come back to this process, which stores them. Under a wall-time budget give
        each worker one job at a time (e.g. Dask workers with ``nthreads=1``) so that
        equal time stays equal; each `Run` records its ``host`` and ``load_avg``.

    Returns:
      A `Comparison` (runs in method order, then instance order, whatever order they
      finished in). Failed methods are recorded, never raised; Ctrl-C returns the runs so
      far with ``interrupted=True`` (with a store, they are in it too).

    Raises:
      TypeError, ValueError: bad arguments (naming which), e.g. an instance holding NaN or
        inf (naming ``instances[i]``, the leaf's path, the first bad index and its value).
    """
    if not isinstance(family, Family):
        raise TypeError(f"compare: family must be a surco.Family, got {type(family).__name__}")
    if isinstance(instances, (list, tuple)):
        instances = list(instances)
    else:
        raise TypeError(f"compare: instances must be a list or tuple, got {type(instances).__name__}")
    if not instances:
        raise ValueError("compare: no instances given")
    from surco._engine import check_instance_values
    for i, inst in enumerate(instances):   # NaN / inf in instance data, named (ValueError)
        check_instance_values(inst, "surco.compare", f"instances[{i}]")
    if not (isinstance(budget, Budget) or callable(budget)):
        raise TypeError(f"compare: budget must be a surco.Budget or a function (method, "
                        f"instance index) -> Budget, got {type(budget).__name__}")
    table = _resolve_methods(family, methods, prior)
    names = list(table)
    if store is not None and not isinstance(store, RunStore):
        store = RunStore(store)
    jobs: list[Job] = []
    for name in names:
        for i, inst in enumerate(instances):
            b = budget if isinstance(budget, Budget) else budget(name, i)
            if not isinstance(b, Budget):
                raise TypeError(f"compare: budget({name!r}, {i}) returned "
                                f"{type(b).__name__}, expected a surco.Budget")
            key = None if store is None else store.key(family.name, name, i, inst, b, setting)
            jobs.append(Job(name, i, inst, b, key))
    runs: list[Run] = []
    cmp = Comparison(family.name, runs, names, len(instances), reference or family.reference)
    stored = [j for j in jobs if j.key is not None and j.key in store]
    runs.extend(store.get(j.key) for j in stored)
    todo = [j for j in jobs if j.key is None or j.key not in store]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), initial=len(stored), desc=f"compare[{family.name}]",
                   unit="run")
    meta = {}
    if store is not None:
        from surco.report import commit, machine
        meta = {"family": family.name, "setting": setting, "commit": commit(),
                "machine": machine()}

    def done(job: Job, run: Run) -> None:
        if store is not None:
            store.put(job.key, run, **meta)
        runs.append(run)
        if bar is not None:
            bar.set_postfix_str(job.name)
            bar.update(1)

    try:
        execute(family, table, todo, done, executor=executor)
    except KeyboardInterrupt:
        cmp.interrupted = True
    finally:
        if bar is not None:
            bar.close()
    order = {(j.name, j.index): k for k, j in enumerate(jobs)}
    runs.sort(key=lambda r: order[(r.method, r.instance)])
    return cmp
