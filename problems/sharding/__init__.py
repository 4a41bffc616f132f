"""Embedding-table sharding for DLRM-like recommendation models (SurCo §5.1; DreamShard).

    from surco.problems import sharding as S
    pool = S.generate_pool(0); train_pool, test_pool = S.split_pool(pool)
    task = S.generate_tasks(test_pool, n_tables=50, n_devices=4, n_tasks=1)[0]
    problem = S.sharding_problem()                    # Ω = S.spec_for(task), f = cost model
    res = surco.zero(problem, task, init=S.greedy_init(task), estimator="neg_identity")

Modules: `tables` (pool generator, index sampler, features), `tasks` (tasks, Ω, the
infeasible-task error), `cost_model` (`ShardingCostModel`, the one interface of every cost
model), `comm` (the all-to-all communication model they share), `cost` (the embedded
analytic cost model, `AnalyticCostModel`), `baselines` (the heuristics, `HEURISTICS`), `minlp` (SCIP on the cost model as a MINLP), `family` (`FAMILY`, the
contract the comparison harness runs: heuristics, local search, annealing, SCIP), `problem` (the `surco.Problem`:
`sharding_problem(model, truth=...)` for any cost model), `settings` (SurCo's settings,
prior network and shipped checkpoint), `demo` (``make demo``). The subpackage `measured` holds the measured ground truth:
the JAX profiler (`measured.MeasuredCostModel`), its SQLite cache and datasets, and the
DreamShard-style cost model learned from them (`measured.LearnedCostModel`).
"""
from .baselines import HEURISTICS, PROXY_HEURISTICS, BaselineError
from . import measured
from .comm import alltoall_ms, exchange_ms, pooled_bytes
from .cost import DEFAULT_COST_MODEL, AnalyticCostModel, evaluate_plan, standalone_costs
from .cost_model import ShardingCostModel
from .family import BASELINES, FAMILY, generate
from .measured import LearnedCostModel, MeasuredCostModel
from .problem import ZERO_DEFAULTS, PlanResidualNet, greedy_init, plan_features, sharding_problem
from .tables import (DIMS, FEATURE_NAMES, TablePool, access_histogram, generate_pool,
                     sample_lookups, scale_features, split_pool, table_features)
from .tasks import (DEFAULT_CAPACITY, GRID_TABLES, InfeasibleTaskError, ShardingTask,
                    generate_tasks, make_task, plan_violations, spec_for)
