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
import math
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from surco.budget import Budget, BudgetExhausted, Meter
from surco.comparison import Comparison, sign_test
from surco.config import ZeroConfig
from surco.driver import zero
from surco.family import Family, Method
from surco.prior.start import hybrid_start
from surco.runs import Job, Run, execute
from surco.store import RunStore

__all__ = ["compare", "Comparison", "Run", "surco_methods", "sign_test", "SURCO_METHODS"]

#: The names `surco_methods` gives SurCo's three variants (Ferber et al., ICML 2023).
SURCO_METHODS = ("surco-zero", "surco-prior", "surco-prior-robust", "surco-hybrid")


def _zero_call(family: Family, instance, meter: Meter, settings: Mapping[str, Any],
               prior=None):
    """SurCo-zero (or -hybrid, given a prior) on ``instance`` through ``meter``: the family's
    configuration ``settings`` (a `ZeroConfig` or its keywords) with the harness's rules:
    best x by the metered true cost, steps and time limit from the budget."""
    cfg = settings if isinstance(settings, ZeroConfig) else ZeroConfig.of("surco_methods",
                                                                          **settings)
    problem = family.problem(instance)
    counted = dataclasses.replace(problem, evaluate=lambda x, y: meter(x))
    init, steps, time_limit = cfg.init, cfg.steps, cfg.time_limit
    if prior is None and callable(init):
        init = init(instance)
    if meter.budget.evaluations is not None:
        # steps whose x repeats cost no evaluation: let the evaluation budget be the limit,
        # up to 4 steps per evaluation
        steps = max(steps, 4 * int(meter.budget.evaluations))
    if prior is not None:
        # SurCo-hybrid (Alg. 4) from the better, by the prior's f, of the prior's cost and
        # the family's own start (`surco.prior.hybrid_start`)
        init, _ = hybrid_start(prior, instance, heuristic=init if callable(init) else None)
    if math.isfinite(meter.remaining_seconds()):
        # charged seconds left: never too short a wall limit; under eval_cost the meter
        # stops the run at the charged deadline (every call past it raises). Read last, as
        # zero counts its limit from its own start; zero stops a solve in flight there.
        time_limit = max(meter.remaining_seconds(), 1e-3)
    return zero(counted, instance, cfg.replace(init=init, select="evaluate", steps=steps,
                                               time_limit=time_limit))


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
    # checked once, here: TypeError naming a misspelt override, ValueError a bad value
    settings = ZeroConfig.of("surco_methods", **{**dict(family.zero_settings), **overrides})

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

    Example: pick 2 of 4 items (items 0 and 1 together cost 1 more); a heuristic against an
    exact method that tries every pair through its meter, 10 evaluations each:

    >>> import itertools
    >>> import jax.numpy as jnp, numpy as np, surco
    >>> from surco.solvers import LinearSpec
    >>> spec = LinearSpec(shape=(4,), A_eq=[[1, 1, 1, 1]], b_eq=[2], lb=0, ub=1, integer=True)
    >>> def f(x, y):
    ...     return jnp.dot(y, x) + x[0] * x[1]
    >>> pairs = [np.isin(np.arange(4), p).astype(float)
    ...          for p in itertools.combinations(range(4), 2)]
    >>> family = surco.Family(
    ...     "pick-two", problem=lambda y: surco.Problem("pick-two", spec, f),
    ...     evaluate=lambda x, y: float(f(jnp.asarray(x, jnp.float32), y)),
    ...     baselines={"first-two": lambda y, meter: np.array([1.0, 1.0, 0.0, 0.0])},
    ...     exact=lambda y, meter: min(pairs, key=meter))
    >>> cmp = surco.compare(family, [jnp.array([0.0, 0.1, 0.5, 0.6])], ["first-two", "exact"],
    ...                     budget=surco.Budget(evaluations=10), progress=False)
    >>> run = cmp.run("exact", 0)
    >>> run.x, run.value, run.evaluations, run.ok
    (array([1., 0., 1., 0.]), 0.5, 6, True)
    >>> cmp.values("first-two").round(4)
    array([1.1])
    """
    if not isinstance(family, Family):
        raise TypeError(f"compare: family must be a surco.Family, got {type(family).__name__}")
    if isinstance(instances, (list, tuple)):
        instances = list(instances)
    else:
        raise TypeError(f"compare: instances must be a list or tuple, got {type(instances).__name__}")
    if not instances:
        raise ValueError("compare: no instances given")
    from surco.checks import check_instance_values
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
            key = None if store is None else store.find(family.name, name, i, inst, b, setting)
            jobs.append(Job(name, i, inst, b, key))
    runs: list[Run] = []
    cmp = Comparison(family.name, runs, names, len(instances), reference or family.reference,
                     sense=family.sense)
    stored = [j for j in jobs if j.key is not None and j.key in store]
    runs.extend(store.get(j.key) for j in stored)
    todo = [j for j in jobs if j.key is None or j.key not in store]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), initial=len(stored), desc=f"compare[{family.name}]",
                   unit="run")
    from surco.report import commit, machine
    here = commit()
    meta = {}
    if store is not None:
        meta = {"family": family.name, "setting": setting, "commit": here,
                "machine": machine()}

    def done(job: Job, run: Run) -> None:
        if run.commit is None:
            run.commit = here
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
