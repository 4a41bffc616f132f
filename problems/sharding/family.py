"""Sharding as a `surco.Family`: the contract the comparison harness runs.

Baselines (each ``method(task, meter) -> plan``):

* DreamShard's and TorchRec's heuristics and SurCo's cost-model greedy (`baselines`): they
  use the cost model internally as their own proxy and never call the meter;
* ``local-search`` (steepest descent) and ``local-search-first`` (first improvement) over
  "move one table to another device" and "swap two tables between devices"
  (`surco.search.RowChoice` on Ω), started from the cheapest heuristic plan; every scored
  neighbour is one evaluation;
* ``local-search-gradient``: first improvement over the same moves, scanned in the order
  of the cost model's first-order estimate ∇f(x)·(x' − x) (`surco.lns.gradient_rank`; the
  gradient of the smooth cost f costs no evaluation), 4 neighbours per batch (chosen on 3
  train-pool DLRM-50 tasks at 300 evaluations: chunk 1 6.411 ms, 4 6.414, 16 6.459, random
  order 6.504); a practitioner's search when the cost model is differentiable;
* ``annealing``: simulated annealing over the same moves from the same start, its
  temperature cooled over the budget (default `ANNEALING_DEFAULT_EVALUATIONS` evaluations
  when the budget is unlimited);
* ``scip-minlp``: SCIP on the true cost model written as a MINLP (`minlp`), started from the
  cheapest heuristic plan, with the meter's remaining time (default
  `minlp.SCIP_MINLP_DEFAULT_SECONDS`).

Exact: enumeration of Ω for tasks with at most `EXACT_MAX_PLANS` plans.

One SurCo variant runs by name with the baselines (named "surco-…", so the harness treats
it as SurCo's, never as the reference): ``surco-plateau``, SurCo past its plateau
(`surco.plateau`) with the settings `settings.PLATEAU_CHOICE` chose on train tasks for the
evaluation budget nearest to the meter's.
"""
from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

import surco
from surco.budget import Budget, BudgetExhausted, Meter
from surco.search import RowChoice, local_search, simulated_annealing

from .baselines import BASELINES, best_heuristic_plan
from .cost import DEFAULT_COST_MODEL, evaluate_plan
from .minlp import SCIP_MINLP_DEFAULT_SECONDS, scip_minlp
from .problem import greedy_init
from .settings import default_problem, zero_kwargs
from .tables import blocks_for, extended_pools
from .tasks import DEFAULT_CAPACITY, ShardingTask, generate_tasks, plan_violations, spec_for

__all__ = ["FAMILY", "generate", "pools", "ANNEALING_DEFAULT_EVALUATIONS", "EXACT_MAX_PLANS",
           "evaluate_batch"]

#: Evaluations annealing spends when its budget is unlimited.
ANNEALING_DEFAULT_EVALUATIONS = 2000
#: Largest number of plans (D^T) `exact` enumerates.
EXACT_MAX_PLANS = 300_000


@functools.lru_cache(maxsize=4)
def pools(blocks: int = 1):
    """``(train_pool, test_pool)``: the two halves of the generated 856-table pool that
    every bench and notebook uses (`tables.generate_pool(0)`, `split_pool(…, 0.5, seed=0)`);
    with ``blocks > 1``, `tables.extended_pools`: that pool followed by more blocks drawn
    from the same distributions."""
    return extended_pools(int(blocks), 0, 0.5, split_seed=0)


def generate(count: int, seed: int = 0, *, n_tables: int = 20, n_devices: int = 4,
             split: str = "test", capacity: float = DEFAULT_CAPACITY,
             pool_blocks: int | None = None) -> list[ShardingTask]:
    """``count`` tasks of ``n_tables`` tables from the ``split`` ("train" or "test") half of
    the pool on ``n_devices`` devices of ``capacity`` bytes (5 GB; `tasks.generate_tasks`).
    The pool has ``pool_blocks`` blocks of 856 tables (default `tables.blocks_for`: one,
    today's pool, up to T = 214; more for larger T, so that a task takes at most half of
    its split)."""
    if split not in ("train", "test"):
        raise ValueError(f"generate: split must be 'train' or 'test', got {split!r}")
    blocks = blocks_for(int(n_tables)) if pool_blocks is None else int(pool_blocks)
    train, test = pools(blocks)
    return generate_tasks(train if split == "train" else test, int(n_tables), int(n_devices),
                          int(count), capacity=float(capacity), seed=int(seed))


@functools.lru_cache(maxsize=1)
def _batch_cost():
    return jax.jit(jax.vmap(DEFAULT_COST_MODEL.plan_cost,
                            in_axes=(0, None)))


def evaluate_batch(X: np.ndarray, task: ShardingTask) -> np.ndarray:
    """`evaluate_plan` of many plans ``X (B, T, D)`` in one jitted call (ms). Batches are
    padded to the next power of two (at least 16) so that neighbourhoods of varying size
    reuse a few compiled programs instead of compiling one per size."""
    X = np.asarray(X, np.float32)
    B = X.shape[0]
    if B == 0:
        return np.zeros(0)
    size = max(16, 1 << (B - 1).bit_length())
    if size > B:
        X = np.concatenate([X, np.repeat(X[:1], size - B, axis=0)])
    return np.asarray(_batch_cost()(jnp.asarray(X), task), np.float64)[:B]


def _start(task: ShardingTask) -> np.ndarray:
    return best_heuristic_plan(task)[1]


def _heuristic(fn):
    def method(task, meter):
        return fn(task)
    method.__doc__ = fn.__doc__
    return method


def _local_search(strategy: str):
    def method(task: ShardingTask, meter: Meter) -> np.ndarray:
        x0 = _start(task)
        try:
            return local_search(x0, meter, RowChoice.from_spec(spec_for(task)),
                                strategy=strategy, rng=0).x
        except BudgetExhausted:  # spent before the start was evaluated: the start it is
            return x0
    method.__doc__ = (f"Local search ({strategy}) from the cheapest heuristic plan (that plan "
                      "when the budget ends before it is evaluated).")
    return method


def _gradient_search(task: ShardingTask, meter: Meter) -> np.ndarray:
    """First-improvement local search from the cheapest heuristic plan, neighbours scanned
    by the cost model's first-order estimate (`surco.lns.gradient_rank`), 4 per batch
    (that plan when the budget ends before it is evaluated)."""
    from surco.lns import gradient_rank
    x0 = _start(task)
    try:
        return local_search(x0, meter, RowChoice.from_spec(spec_for(task)), strategy="first",
                            chunk=4, rank=gradient_rank(_PROBLEM, task)).x
    except BudgetExhausted:
        return x0


def _annealing(task: ShardingTask, meter: Meter) -> np.ndarray:
    """Simulated annealing from the cheapest heuristic plan, over the meter's budget (that
    plan when the budget ends before it is evaluated)."""
    if meter.budget.unlimited:
        meter = Budget(evaluations=ANNEALING_DEFAULT_EVALUATIONS).start(meter, evaluate_batch=meter.batch)
    x0 = _start(task)
    try:
        return simulated_annealing(x0, meter, RowChoice.from_spec(spec_for(task)), rng=0).x
    except BudgetExhausted:
        return x0


def _scip(task: ShardingTask, meter: Meter) -> np.ndarray:
    """SCIP on the MINLP of the cost model, with the meter's remaining time."""
    left = meter.remaining_seconds()
    limit = SCIP_MINLP_DEFAULT_SECONDS if not np.isfinite(left) else max(left, 0.05)
    return scip_minlp(task, time_limit=limit, start=_start(task))[0]


def exact(task: ShardingTask, meter: Meter) -> np.ndarray:
    """The optimal plan by enumerating Ω (D^T plans, at most `EXACT_MAX_PLANS`), scored in
    batches through the meter (each plan one evaluation).

    Raises:
      ValueError: the task has more than `EXACT_MAX_PLANS` plans.
    """
    T, D = task.n_tables, task.n_devices
    if D ** T > EXACT_MAX_PLANS:
        raise ValueError(f"exact: {D}^{T} plans exceed EXACT_MAX_PLANS = {EXACT_MAX_PLANS}")
    plans = []
    rows = np.arange(T)
    for a in itertools.product(range(D), repeat=T):
        x = np.zeros((T, D))
        x[rows, a] = 1.0
        if not plan_violations(x, task):
            plans.append(x)
    plans = np.stack(plans)
    best, best_v = None, np.inf
    for i in range(0, len(plans), 4096):
        v = meter.batch(plans[i:i + 4096])
        j = int(np.argmin(v))
        if v[j] < best_v:
            best, best_v = plans[i + j], float(v[j])
    return best


def _surco_plateau(task: ShardingTask, meter: Meter) -> np.ndarray:
    """SurCo past its plateau (`surco.plateau`; `settings.plateau_methods`)."""
    from .settings import plateau_methods
    return plateau_methods(FAMILY)["surco-plateau"](task, meter)


def _zero_init(task: ShardingTask) -> np.ndarray:
    return greedy_init(task, _start(task))


_PROBLEM = default_problem()

FAMILY = surco.Family(
    name="sharding",
    generate=generate,
    problem=lambda task: _PROBLEM,
    evaluate=lambda x, task: evaluate_plan(x, task),
    evaluate_batch=evaluate_batch,
    violations_fn=plan_violations,
    baselines={**{name: _heuristic(fn) for name, fn in BASELINES.items()},
               "local-search": _local_search("steepest"),
               "local-search-first": _local_search("first"),
               "local-search-gradient": _gradient_search,
               "annealing": _annealing,
               "scip-minlp": _scip,
               "surco-plateau": _surco_plateau},
    exact=exact,
    # f is the smooth maximum at τ = 0.1 × mean device load: above the true maximum by at
    # most τ (log D + log 2D) (`ShardingCostModel.smooth_plan_cost`), i.e. 35 % of the mean load at D = 4
    f_rtol=0.35,
    zero_settings={**{k: v for k, v in zero_kwargs().items() if k != "select"},
                   "init": _zero_init},
    zero_settings_note=("negative identity with SGD (lr 0.05) from the cheapest heuristic "
                        "plan with margins 0.1·a_t^2 (`problem.ZERO_DEFAULTS`), selected on 8 "
                        "train-pool DLRM-50 tasks by bench/sharding_tune.py"),
    reference="local-search",
)
