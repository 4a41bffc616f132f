"""The measured ground truth of sharding: the profiling backend and the cost model learned
from it (DreamShard, Zha et al., NeurIPS 2022; SurCo, Ferber et al., ICML 2023, §5.1).

A plan's real cost is what the accelerator takes to run it: each device's fused
embedding-bag forward and backward is run and timed in JAX, on a CUDA GPU when JAX sees one
and on the CPU otherwise (the same code); the all-to-all between devices is modelled, not
measured (`surco.problems.sharding.comm`). Modules, from the operator up:

* `embedding_bag` — the measured operator: FBGEMM-style fused buffers (`FusedLayout`,
  `pack_lookups`) and the forward / backward / training step;
* `memory` — what a measurement needs and the device allows (`check_fits`,
  `TableTooLargeError` before any allocation), weight buffers kept between measurements;
* `programs` — the default ``"arena"`` engine: shape-stable programs over one weight
  arena, compiled once per size class and reused across table sets and plans;
* `timing` — `ProfilerConfig`, `time_sets` (arena engine: several sets timed in one session)
  and `time_step` (the ``"fused"`` engine: one program per set); compiled ahead of time,
  synchronised, median and spread of timed runs;
* `measure` — table sets and plans (`profile_sets`, `profile_tables`, `profile_plan`,
  `profile_plans`) and the profiler as a cost model, `MeasuredCostModel`;
* `cache` — the SQLite `MeasurementCache` (several writers, crash-safe, never reset; every
  measurement kept, repeated ones as numbered draws);
* `dataset` — measured random subsets of a pool (`build_dataset`, configured by a
  `DatasetConfig`, resumable, with held-out tables; `remeasure`; `bundled_dataset`);
* `learned` — `LearnedCostModel`, the DreamShard-style network `LearnedCostNet` as a
  differentiable cost model; `training` — `train_cost_model` (configured by a
  `CostModelTrainConfig`) and its held-out report.

`MeasuredCostModel` and `LearnedCostModel` implement `sharding.ShardingCostModel`, like the
analytic model, so the one problem constructor takes them::

    from surco.problems import sharding as S
    data = S.measured.bundled_dataset("cpu")
    learned, report = S.measured.train_cost_model(data)
    problem = S.sharding_problem(learned, truth=S.measured.MeasuredCostModel())
"""
from .cache import CacheError, CacheKey, MeasurementCache
from .dataset import (DATA_DIR, DatasetConfig, ProfiledDataset, build_dataset,
                      bundled_dataset, default_cache_path, draw_subset, remeasure)
from .embedding_bag import (FusedLayout, embedding_bag_backward, embedding_bag_forward,
                            embedding_bag_step, pack_lookups, pack_weights, unpack_weights)
from .learned import (HEADS, INPUT_NAMES, LearnedCostModel, LearnedCostNet, table_inputs,
                      task_inputs)
from .measure import (SESSION_SETS, MeasuredCostModel, Measurement, PlanMeasurement,
                      assignment_of, lookup_seed, profile_plan, profile_plans, profile_sets,
                      profile_tables, sample_table_lookups, table_signature, task_pool)
from .memory import (CPU_MEMORY_FRACTION, DTYPES, GPU_MEMORY_FRACTION, TableTooLargeError,
                     check_fits, default_device, device_memory_limit, held_bytes,
                     memory_needed, release_buffers)
from .programs import compile_count
from .timing import (CPU_BATCH_SIZE, CPU_XLA_FLAGS, ENGINES, FUSED_VERSION, GPU_BATCH_SIZE,
                     PROFILER_VERSION, ProfilerConfig, time_sets, time_step)
from .training import (CostModelTrainConfig, TrainReport, dataset_inputs, kendall_tau, mape, split_by_table,
                       split_indices, train_cost_model)

__all__ = [
    "CPU_BATCH_SIZE", "CPU_MEMORY_FRACTION", "CPU_XLA_FLAGS", "CacheError", "CacheKey",
    "CostModelTrainConfig", "DATA_DIR", "DTYPES", "DatasetConfig", "ENGINES", "FUSED_VERSION", "FusedLayout", "GPU_BATCH_SIZE",
    "GPU_MEMORY_FRACTION", "HEADS", "INPUT_NAMES",
    "LearnedCostModel", "LearnedCostNet", "MeasuredCostModel", "Measurement",
    "MeasurementCache", "PROFILER_VERSION", "PlanMeasurement", "ProfiledDataset",
    "ProfilerConfig", "SESSION_SETS", "TableTooLargeError", "TrainReport", "assignment_of",
    "build_dataset", "bundled_dataset", "check_fits", "compile_count", "dataset_inputs",
    "default_cache_path",
    "default_device", "device_memory_limit", "draw_subset", "embedding_bag_backward",
    "embedding_bag_forward", "embedding_bag_step", "held_bytes", "kendall_tau",
    "lookup_seed", "mape", "memory_needed", "pack_lookups", "pack_weights", "profile_plan",
    "profile_plans", "profile_sets", "profile_tables", "release_buffers", "remeasure",
    "sample_table_lookups", "split_by_table", "split_indices", "table_inputs",
    "table_signature", "task_inputs", "task_pool", "time_sets", "time_step",
    "train_cost_model", "unpack_weights",
]
