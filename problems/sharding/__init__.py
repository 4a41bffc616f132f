"""Embedding-table sharding for DLRM-like recommendation models (SurCo §5.1; DreamShard).

    from surco.problems import sharding as S
    pool = S.generate_pool(0); train_pool, test_pool = S.split_pool(pool)
    task = S.generate_tasks(test_pool, n_tables=50, n_devices=4, n_tasks=1)[0]
    problem = S.sharding_problem()                    # Ω = S.spec_for(task), f = cost model
    res = surco.zero(problem, task, init=S.greedy_init(task), estimator="neg_identity")

Modules: `tables` (pool generator, index sampler, features), `tasks` (tasks, Ω, the
infeasible-task error), `cost` (the embedded analytic cost model), `baselines`, `problem`
(the `surco.Problem`), `compare` (all methods side by side), `demo` (``make demo``).
"""
from .baselines import BASELINES, PROXY_HEURISTICS, BaselineError
from .cost import (DEFAULT_COST_MODEL, CostModel, device_costs, plan_cost, smooth_plan_cost,
                   stage_costs)
from .problem import (ZERO_DEFAULTS, PlanResidualNet, evaluate_plan, greedy_init,
                      plan_features, sharding_problem)
from .tables import (DIMS, FEATURE_NAMES, TablePool, access_histogram, generate_pool,
                     sample_lookups, scale_features, split_pool, table_features)
from .tasks import (DEFAULT_CAPACITY, GRID_TABLES, InfeasibleTaskError, ShardingTask,
                    generate_tasks, make_task, plan_violations, spec_for)
