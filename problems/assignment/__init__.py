"""Nonlinear assignment: the toy problem family with enumerable optima.

n tasks go to m machines, each task to exactly one machine and each machine taking at most
``cap`` tasks; f(x; y) = Σ a·x + ρ Σ_j load_j² (see `problem`). ``FAMILY`` is its
`surco.Family` for the comparison harness:

    >>> import surco
    >>> from surco.problems import assignment as A
    >>> ys = A.FAMILY.generate(2, seed=0, n=6)
    >>> cmp = surco.compare(A.FAMILY, ys, ["mean-cost", "exact"], progress=False)
    >>> [r.ok for r in cmp.runs]
    [True, True, True, True]
"""
from .baselines import (ANNEAL_EVALUATIONS_PER_ENTRY, annealing, exact, local_search_first,
                        local_search_steepest, mean_cost, mean_cost_plan, scip,
                        scip_assignment)
from .family import BASELINES, FAMILY, TRAIN_SEED, ZERO_SETTINGS, ZERO_SETTINGS_NOTE
from .problem import (Instance, brute_force, capacity, evaluate, evaluate_batch, features,
                      generate, make_problem, mean_cost_heuristic, objective, random_plan,
                      space)

__all__ = [
    "Instance", "capacity", "space", "objective", "evaluate", "evaluate_batch", "features",
    "make_problem", "generate", "brute_force", "mean_cost_heuristic", "random_plan",
    "mean_cost", "mean_cost_plan", "local_search_first", "local_search_steepest", "annealing",
    "scip", "exact", "scip_assignment", "ANNEAL_EVALUATIONS_PER_ENTRY", "BASELINES",
    "FAMILY", "ZERO_SETTINGS", "ZERO_SETTINGS_NOTE", "TRAIN_SEED",
]
