"""Sharding as a `surco.Family`: the contract the comparison harness runs.

Baselines (each a harness method ``(task, meter) -> plan`` built with `surco.methods`):

* DreamShard's and TorchRec's heuristics and SurCo's cost-model greedy (`baselines`): they
  use the cost model internally as their own proxy and never call the meter;
* ``local-search`` (steepest descent) and ``local-search-first`` (first improvement) over
  "move one table to another device" and "swap two tables between devices"
  (`baselines.row_moves`), started from the cheapest heuristic plan; every scored
  neighbour is one evaluation;
* ``local-search-gradient``: first improvement over the same moves, scanned in the order
  of the cost model's first-order estimate ∇f(x)·(x' − x) (`surco.lns.gradient_rank`; the
  gradient of the smooth cost f costs no evaluation), 4 neighbours per batch (chosen on 3
  train-pool DLRM-50 tasks at 300 evaluations: chunk 1 6.411 ms, 4 6.414, 16 6.459, random
  order 6.504); a practitioner's search when the cost model is differentiable;
* ``annealing``: simulated annealing over the same moves from the same start, its
  temperature cooled over the budget (`surco.methods.ANNEAL_DEFAULT_EVALUATIONS` when the
  budget is unlimited);
* ``scip-minlp``: SCIP on the true cost model written as a MINLP (`minlp`), started from the
  cheapest heuristic plan, under the one time policy (`surco.methods.time_limited`; default
  `minlp.SCIP_MINLP_DEFAULT_SECONDS`), its plan scored once.

Exact: enumeration of Ω for tasks with at most `baselines.EXACT_MAX_PLANS` plans.

One SurCo variant runs by name with the baselines (named "surco-…", so the harness treats
it as SurCo's, never as the reference): ``surco-plateau``, SurCo past its plateau
(`surco.plateau`) with the settings `settings.PLATEAU_CHOICE` chose on train tasks for the
evaluation budget nearest to the meter's.
"""
from __future__ import annotations

import functools

import numpy as np

import surco
from surco.budget import Meter
from surco.checks import check_int, check_number
from surco.methods import annealing_from, heuristic, search_from, time_limited

from .baselines import (HEURISTICS, evaluate_batch, exact, row_moves, scip_plan, start_plan)
from .cost import evaluate_plan
from .minlp import SCIP_MINLP_DEFAULT_SECONDS
from .problem import greedy_init
from .settings import default_problem, zero_kwargs
from .tables import blocks_for, extended_pools
from .tasks import DEFAULT_CAPACITY, ShardingTask, generate_tasks, plan_violations

__all__ = ["FAMILY", "BASELINES", "generate", "pools", "evaluate_batch", "exact"]


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
    its split). Tasks are drawn in turn from one stream seeded by ``seed`` (and the sizes):
    deterministic, and ``generate(j, seed)`` is the first j of ``generate(count, seed)``.

    Raises:
      ValueError: naming the argument: count, n_tables, n_devices or pool_blocks < 1, seed
        < 0, capacity not a finite number > 0, or split not "train" or "test"."""
    who = "sharding.generate"
    count, seed = check_int("count", count, 1, who=who), check_int("seed", seed, 0, who=who)
    T = check_int("n_tables", n_tables, 1, who=who)
    D = check_int("n_devices", n_devices, 1, who=who)
    capacity = check_number("capacity", capacity, who=who)
    if split not in ("train", "test"):
        raise ValueError(f"{who}: split must be 'train' or 'test', got {split!r}")
    blocks = (blocks_for(T) if pool_blocks is None
              else check_int("pool_blocks", pool_blocks, 1, who=who))
    train, test = pools(blocks)
    return generate_tasks(train if split == "train" else test, T, D, count, capacity=capacity,
                          seed=seed)


def _surco_plateau(task: ShardingTask, meter: Meter) -> np.ndarray:
    """SurCo past its plateau (`surco.plateau`; `settings.plateau_methods`)."""
    from .settings import plateau_methods
    return plateau_methods(FAMILY)["surco-plateau"](task, meter)


def _zero_init(task: ShardingTask) -> np.ndarray:
    return greedy_init(task, start_plan(task))


def _gradient_rank(task: ShardingTask):
    from surco.lns import gradient_rank
    return gradient_rank(_PROBLEM, task)


_PROBLEM = default_problem()
_START = heuristic(start_plan, name="cheapest-heuristic")
#: name -> harness method (see the module docstring).
BASELINES = {**{name: heuristic(fn, name=name) for name, fn in HEURISTICS.items()},
             "local-search": search_from(_START, row_moves, kind="steepest"),
             "local-search-first": search_from(_START, row_moves, kind="first"),
             "local-search-gradient": search_from(_START, row_moves, kind="first", chunk=4,
                                                  rank=_gradient_rank),
             "annealing": annealing_from(_START, row_moves),
             "scip-minlp": time_limited(scip_plan, name="scip-minlp",
                                        default_seconds=SCIP_MINLP_DEFAULT_SECONDS),
             "surco-plateau": _surco_plateau}

FAMILY = surco.Family(
    name="sharding",
    generate=generate,
    problem=lambda task: _PROBLEM,
    evaluate=lambda x, task: evaluate_plan(x, task),
    evaluate_batch=evaluate_batch,
    violations_fn=plan_violations,
    baselines=BASELINES,
    exact=exact,
    # f is the smooth maximum at τ = 0.1 × mean device load: above the true maximum by at
    # most τ (log D + log 2D) (`ShardingCostModel.smooth_plan_cost`), i.e. 35 % of the mean load at D = 4
    f_rtol=0.35,
    zero_settings=surco.ZeroConfig.of(**{k: v for k, v in zero_kwargs().items()
                                         if k != "select"}, init=_zero_init),
    zero_settings_note=("negative identity with SGD (lr 0.05) from the cheapest heuristic "
                        "plan with margins 0.1·a_t^2 (`problem.ZERO_DEFAULTS`), selected on 8 "
                        "train-pool DLRM-50 tasks by bench/sharding_tune.py"),
    reference="local-search",
)
