"""TorchRec's own sharding planner as a baseline, and sharding plans written as TorchRec's.

Needs the optional extra ``torchrec`` (``pip install -e ".[torchrec]"``: torch, the CPU
build of FBGEMM and torchrec, pinned together); every function imports it lazily and
raises `TorchRecMissingError` with the install line when it is absent.

A task (`tasks.ShardingTask`) becomes what TorchRec plans (`embedding_configs`,
`topology`, `constraints`): one ``EmbeddingBagConfig`` per table (its rows, dim, fp32)
in an ``EmbeddingBagCollection`` on the meta device (no memory is allocated), a
``Topology`` of D CUDA devices with the task's memory per device and the bandwidths of a
`torchrec_cost.TorchRecCostModel` (by default those of the analytic model: HBM 2 TB/s,
all-to-all 51.2 GB/s), and one ``ParameterConstraints`` per table: table-wise sharding
only, the fused kernel, the table's pooling factor. The planner runs with its default
enumerator, proposers and partitioner, ``batch_size`` = the model's per-device batch and
no storage reservation (`plan_with_torchrec`); its plan is read back as our (T, D)
assignment. `to_torchrec_plan` goes the other way: any plan of ours as TorchRec's
``EmbeddingModuleShardingPlan`` (``construct_module_sharding_plan`` with
``table_wise(rank=d)``). `torchrec_estimates` returns TorchRec's own per-table perf
estimate (``EmbeddingPerfEstimator``), against which `TorchRecCostModel` is tested.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .tasks import ShardingTask, assignment_to_plan

__all__ = ["TorchRecMissingError", "embedding_configs", "topology", "constraints",
           "plan_with_torchrec", "to_torchrec_plan", "plan_ranks", "torchrec_estimates",
           "torchrec_planner_method", "available"]

#: The pins of the ``torchrec`` extra (a mismatched torch / fbgemm pair fails to load).
INSTALL = 'pip install -e ".[torchrec]"  (torch==2.13.0+cpu, fbgemm-gpu-cpu==1.8.0, torchrec==1.8.0)'


class TorchRecMissingError(ImportError):
    """TorchRec (or torch) is not installed: the message gives the install line."""


def available() -> bool:
    """Whether torchrec imports in this environment."""
    try:
        _modules()
    except TorchRecMissingError:
        return False
    return True


def _modules() -> dict[str, Any]:
    try:
        import torch
        from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
        from torchrec.distributed.planner import (EmbeddingShardingPlanner,
                                                  ParameterConstraints, Topology)
        from torchrec.distributed.planner.enumerators import EmbeddingEnumerator
        from torchrec.distributed.planner.shard_estimators import EmbeddingPerfEstimator
        from torchrec.distributed.planner.storage_reservations import (
            FixedPercentageStorageReservation)
        from torchrec.distributed.sharding_plan import (construct_module_sharding_plan,
                                                        table_wise)
        from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
        from torchrec.modules.embedding_modules import EmbeddingBagCollection
    except ImportError as exc:  # torch, fbgemm or torchrec missing or mismatched
        raise TorchRecMissingError(f"TorchRec is not available ({exc}); install the "
                                   f"optional extra: {INSTALL}") from exc
    return dict(torch=torch, Sharder=EmbeddingBagCollectionSharder,
                Planner=EmbeddingShardingPlanner, Constraints=ParameterConstraints,
                Topology=Topology, Enumerator=EmbeddingEnumerator,
                PerfEstimator=EmbeddingPerfEstimator,
                Reservation=FixedPercentageStorageReservation,
                construct=construct_module_sharding_plan, table_wise=table_wise,
                Config=EmbeddingBagConfig, Pooling=PoolingType, EBC=EmbeddingBagCollection)


def _name(t: int) -> str:
    return f"table_{t}"


def _cost_model(model):
    from .torchrec_cost import DEFAULT_TORCHREC_MODEL, TorchRecCostModel
    model = DEFAULT_TORCHREC_MODEL if model is None else model
    if not isinstance(model, TorchRecCostModel):
        raise TypeError(f"model must be a TorchRecCostModel, got {type(model).__name__}")
    return model


def embedding_configs(task: ShardingTask) -> list:
    """One ``EmbeddingBagConfig`` per table of ``task`` (name ``table_t``, feature
    ``feature_t``, its rows and dim, fp32, sum pooling)."""
    m = _modules()
    return [m["Config"](name=_name(t), feature_names=[f"feature_{t}"],
                        num_embeddings=int(task.rows[t]), embedding_dim=int(task.dim[t]),
                        pooling=m["Pooling"].SUM)
            for t in range(task.n_tables)]


def _collection(task: ShardingTask):
    m = _modules()
    return m["EBC"](tables=embedding_configs(task), device=m["torch"].device("meta"))


def topology(task: ShardingTask, model=None):
    """TorchRec's ``Topology`` of the task: D CUDA devices of the task's memory (one
    common capacity: TorchRec's Topology takes one ``hbm_cap``), HBM bandwidth and
    all-to-all bandwidth of ``model`` (a `TorchRecCostModel`; intra- and inter-host the
    same, as in our model), one host of D devices.

    Raises:
      ValueError: devices of different capacities.
    """
    m, model = _modules(), _cost_model(model)
    cap = np.asarray(task.capacity, np.float64)
    if np.ptp(cap) > 0:
        raise ValueError(f"topology: TorchRec's Topology has one hbm_cap; the task's "
                         f"capacities differ ({cap.min():.0f}-{cap.max():.0f} bytes)")
    return m["Topology"](world_size=task.n_devices, compute_device="cuda",
                         hbm_cap=int(cap[0]), local_world_size=task.n_devices,
                         hbm_mem_bw=model.hbm_bw / 1e3, intra_host_bw=model.comm_bw / 1e3,
                         inter_host_bw=model.comm_bw / 1e3,
                         bwd_compute_multiplier=model.bwd_multiplier)


def constraints(task: ShardingTask) -> dict:
    """Per table: table-wise sharding only, the fused kernel, the table's pooling factor."""
    m = _modules()
    return {_name(t): m["Constraints"](sharding_types=["table_wise"], compute_kernels=["fused"],
                                       pooling_factors=[float(task.pooling[t])])
            for t in range(task.n_tables)}


def plan_ranks(task: ShardingTask, module_plan) -> np.ndarray:
    """Our (T, D) plan from a TorchRec ``EmbeddingModuleShardingPlan`` of the task's
    collection (``{table name: ParameterSharding}``).

    Raises:
      ValueError: a table missing, not table-wise, or on a rank outside [0, D).
    """
    assign = np.full(task.n_tables, -1)
    for t in range(task.n_tables):
        ps = module_plan.get(_name(t)) if hasattr(module_plan, "get") else None
        if ps is None:
            raise ValueError(f"plan_ranks: {_name(t)} is not in the TorchRec plan")
        if ps.sharding_type != "table_wise" or ps.ranks is None or len(ps.ranks) != 1:
            raise ValueError(f"plan_ranks: {_name(t)} is sharded {ps.sharding_type!r} on ranks "
                             f"{ps.ranks}, expected table_wise on one rank")
        r = int(ps.ranks[0])
        if not 0 <= r < task.n_devices:
            raise ValueError(f"plan_ranks: {_name(t)} on rank {r}, outside [0, {task.n_devices})")
        assign[t] = r
    return assignment_to_plan(assign, task.n_devices)


def plan_with_torchrec(task: ShardingTask, model=None) -> tuple[np.ndarray, float]:
    """TorchRec's ``EmbeddingShardingPlanner`` on the task: table-wise, fused kernel, its
    default proposers and partitioner, ``batch_size`` = ``model.batch_per_device``, no
    storage reservation (`FixedPercentageStorageReservation(0.0)`: the task's memory is
    the tables' memory), the `topology` and `constraints` above.

    Returns:
      ``(x, seconds)``: the plan as our (T, D) one-hot array and the planner's wall time.

    Raises:
      TorchRecMissingError: torchrec is not installed.
      RuntimeError: TorchRec found no plan (its ``PlannerError``, with its message).
    """
    m, model = _modules(), _cost_model(model)
    ebc = _collection(task)
    planner = m["Planner"](topology=topology(task, model), batch_size=model.batch_per_device,
                           constraints=constraints(task),
                           storage_reservation=m["Reservation"](0.0), debug=False)
    t0 = time.perf_counter()
    try:
        plan = planner.plan(ebc, [m["Sharder"]()])
    except Exception as exc:  # PlannerError and its kin: no plan
        raise RuntimeError(f"TorchRec's planner found no plan for T={task.n_tables}, "
                           f"D={task.n_devices}: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - t0
    return plan_ranks(task, plan.plan[""]), seconds


def to_torchrec_plan(task: ShardingTask, plan: np.ndarray):
    """Our plan as TorchRec's ``EmbeddingModuleShardingPlan`` for the task's
    ``EmbeddingBagCollection`` (`embedding_configs`): table t table-wise on the rank of its
    device, fused kernel (``construct_module_sharding_plan``, ``table_wise(rank=d)``).

    Raises:
      ValueError: a plan that is not one-hot of shape (T, D).
    """
    x = np.asarray(plan, np.float64)
    T, D = task.n_tables, task.n_devices
    if x.shape != (T, D) or not np.all((x == 0) | (x == 1)) or np.any(x.sum(1) != 1):
        raise ValueError(f"to_torchrec_plan: plan must be one-hot of shape ({T}, {D}), one "
                         f"device per table; got shape {x.shape}")
    m = _modules()
    ranks = np.argmax(x, axis=1)
    per_param = {_name(t): m["table_wise"](rank=int(ranks[t]), compute_kernel="fused")
                 for t in range(T)}
    return m["construct"](_collection(task), per_param, local_size=D, world_size=D,
                          device_type="cuda")


def torchrec_estimates(task: ShardingTask, model=None) -> dict[str, np.ndarray]:
    """TorchRec's own per-table estimates for table-wise, fused placement (its
    ``EmbeddingEnumerator`` with ``EmbeddingPerfEstimator`` and the storage estimator),
    in ms and bytes, each of shape (T,): ``fwd_compute``, ``bwd_compute``, ``fwd_comms``,
    ``bwd_comms``, ``prefetch_compute``, ``total`` (TorchRec's ``Perf.total``) and
    ``hbm`` (its storage estimate)."""
    m, model = _modules(), _cost_model(model)
    topo = topology(task, model)
    enum = m["Enumerator"](topology=topo, batch_size=model.batch_per_device,
                           constraints=constraints(task))
    options = enum.enumerate(_collection(task), [m["Sharder"]()])
    keys = ("fwd_compute", "bwd_compute", "fwd_comms", "bwd_comms", "prefetch_compute",
            "total", "hbm")
    out = {k: np.full(task.n_tables, np.nan) for k in keys}
    for opt in options:
        t = int(opt.name.split("_")[-1])
        if opt.sharding_type != "table_wise" or len(opt.shards) != 1:
            raise ValueError(f"torchrec_estimates: unexpected option {opt.sharding_type} with "
                             f"{len(opt.shards)} shards for {opt.name}")
        perf, storage = opt.shards[0].perf, opt.shards[0].storage
        for k in keys[:5]:
            out[k][t] = float(getattr(perf, k))
        out["total"][t] = float(perf.total)
        out["hbm"][t] = float(storage.hbm)
    return out


def torchrec_planner_method(model=None):
    """The harness method ``torchrec-planner`` (`surco.family.Method`): TorchRec's planner
    (`plan_with_torchrec`); it never evaluates through its meter. Its planning time is the
    run's time."""
    def method(task, meter):
        return plan_with_torchrec(task, model)[0]
    method.__doc__ = "TorchRec's EmbeddingShardingPlanner (table-wise, fused)."
    return method
