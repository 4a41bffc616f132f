"""Measuring table sets and plans on the accelerator: the measured ground truth of
sharding (`profile_tables`, `profile_plan`) and the measured cost model
(`MeasuredCostModel`, a `cost_model.ShardingCostModel`).

A placement's real cost is what the accelerator takes to run it. DreamShard (Zha et al.,
NeurIPS 2022) and SurCo (Ferber et al., ICML 2023, §5.1) measure each device's fused
embedding-bag step and take the maximum over devices. Here each device's tables are
measured in turn on the one available accelerator (`timing.time_step`), through the
optional SQLite cache (`cache.MeasurementCache`), and the all-to-all is *modelled, not
measured* (`comm.alltoall_ms`: one GPU cannot time an exchange between devices).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, ClassVar

import jax
import numpy as np

from ..comm import alltoall_ms, exchange_ms, pooled_bytes
from ..cost_model import ShardingCostModel
from ..tables import TablePool, sample_lookups
from .cache import CacheKey, MeasurementCache
from .memory import check_fits, default_device, device_memory_limit
from .timing import PROFILER_VERSION, ProfilerConfig, time_step

__all__ = ["MeasuredCostModel", "Measurement", "PlanMeasurement", "assignment_of",
           "lookup_seed", "profile_plan", "profile_tables", "sample_table_lookups",
           "table_signature", "task_pool"]


def table_signature(pool: TablePool) -> str:
    """An order-independent hash of a table set: its (rows, dim, pooling, skew) multiset.

    The same tables in any order give the same signature (the profiler sorts them).
    """
    items = sorted(zip(pool.rows.tolist(), pool.dim.tolist(),
                       [float(p).hex() for p in pool.pooling],
                       [float(s).hex() for s in pool.skew]))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:32]


def _canonical_order(pool: TablePool) -> np.ndarray:
    return np.lexsort((pool.skew, pool.pooling, pool.dim, pool.rows))


@dataclasses.dataclass(frozen=True)
class Measurement:
    """The measured cost of one device's table set.

    Attributes:
      fwd_ms, bwd_ms: median forward and backward times.
      fwd_iqr_ms, bwd_iqr_ms: their interquartile ranges (the spread).
      compile_s: compilation time of the programs (excluded from the times).
      cached: True when read from the measurement cache instead of measured now.
      raw: the full record (`time_step`'s dict plus ``signature`` and ``total_s``, the wall
        time of the whole measurement).
    """

    fwd_ms: float
    bwd_ms: float
    fwd_iqr_ms: float
    bwd_iqr_ms: float
    compile_s: float
    cached: bool
    raw: dict

    @property
    def compute_ms(self) -> float:
        """Forward + backward: the measured compute cost of the device per step."""
        return self.fwd_ms + self.bwd_ms

    @classmethod
    def from_record(cls, rec: dict, cached: bool) -> "Measurement":
        return cls(fwd_ms=rec["fwd"]["median_ms"], bwd_ms=rec["bwd"]["median_ms"],
                   fwd_iqr_ms=rec["fwd"]["iqr_ms"], bwd_iqr_ms=rec["bwd"]["iqr_ms"],
                   compile_s=rec["compile_s"], cached=cached, raw=rec)


def lookup_seed(signature: str) -> int:
    """The seed of a table set's index batches: derived from its signature, so that the same
    set is always measured on the same lookups."""
    return int(signature[:15], 16)


def sample_table_lookups(pool: TablePool, batch_size: int,
                         seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One batch of lookups per table, from each table's own access law and pooling factor
    (`tables.sample_lookups`), drawn from one ``numpy`` generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    idx, seg = [], []
    for t in range(len(pool)):
        i, s = sample_lookups(int(pool.rows[t]), float(pool.pooling[t]), float(pool.skew[t]),
                              batch_size, rng)
        idx.append(i)
        seg.append(s)
    return idx, seg


def profile_tables(pool: TablePool, config: ProfilerConfig = ProfilerConfig(), *,
                   cache: MeasurementCache | None = None,
                   device: jax.Device | None = None) -> Measurement:
    """Measure the fused embedding-bag step of the tables in ``pool`` placed on one device.

    The tables are put in a canonical order (so a set's cost does not depend on how it was
    listed), one batch of lookups per table is drawn from its access distribution and
    pooling factor (seeded by the set's signature, `lookup_seed`), the memory check runs,
    then `time_step`. With a ``cache``, a stored measurement for (device kind, signature,
    batch size, dtype, `PROFILER_VERSION`) is returned without measuring, and a new one is
    stored.

    Raises:
      ValueError: an empty pool; `TableTooLargeError` when the set does not fit the device
        (checked before any allocation).
    """
    if len(pool) == 0:
        raise ValueError("profile_tables needs at least one table (an empty device costs 0 "
                         "and is not measured)")
    device = device or default_device()
    t_start = time.perf_counter()
    batch = config.batch_for(device)
    sig = table_signature(pool)
    key = CacheKey(device.device_kind, sig, batch, config.dtype, PROFILER_VERSION)
    if cache is not None:
        rec = cache.get(key)
        if rec is not None:
            return Measurement.from_record(rec, cached=True)
    ordered = pool.subset(_canonical_order(pool))
    limit = config.memory_limit_bytes
    if limit is None:
        limit, source = device_memory_limit(device)
    else:
        source = "ProfilerConfig.memory_limit_bytes"
    # Refuse on the weights alone before drawing lookups (cheap, and the lookups of a
    # huge table set could be large themselves).
    check_fits(ordered.rows, ordered.dim, [0] * len(ordered), 0, config.bytes_per_element,
               limit, where=f"{device.device_kind} ({source})")
    idx, seg = sample_table_lookups(ordered, batch, lookup_seed(sig))
    rec = time_step(ordered.rows, ordered.dim, idx, seg, batch_size=batch, config=config,
                    device=device, seed=lookup_seed(sig) % (2 ** 31))
    rec["signature"] = sig
    rec["total_s"] = time.perf_counter() - t_start   # sampling + allocation + compile + runs
    if cache is not None:
        cache.put(key, rec)
    return Measurement.from_record(rec, cached=False)


@dataclasses.dataclass(frozen=True)
class PlanMeasurement:
    """The profiled cost of a placement.

    Attributes:
      cost_ms: ``max_d (fwd_d + bwd_d) + max_d comm_d``: the slowest device's compute plus
        the all-to-all, which every device waits for (as
        `cost_model.ShardingCostModel.plan_cost`).
      fwd_ms, bwd_ms: measured per device (0 for a device without tables).
      comm_ms: per device, ``max(send_d, recv_d)`` of ``alltoall``: **modelled, not
        measured**.
      alltoall: ``(2, D)`` send and receive time of each device (`comm.alltoall_ms`).
      device_ms: per device, ``fwd_d + bwd_d + max_e comm_e``.
      measured_on: the device kind that ran the measurements.
      batch_size, dtype: of the measurements.
      cached: per device, whether it came from the cache (None for an empty device).
      comm_note: a sentence stating the communication model and its parameters.
    """

    cost_ms: float
    fwd_ms: np.ndarray
    bwd_ms: np.ndarray
    comm_ms: np.ndarray
    alltoall: np.ndarray
    device_ms: np.ndarray
    measured_on: str
    batch_size: int
    dtype: str
    cached: list
    comm_note: str


def assignment_of(x: np.ndarray, n_tables: int | None = None) -> tuple[np.ndarray, int]:
    """``(device of each table (T,), D)`` from a 0/1 placement matrix ``(T, D)``.

    Raises:
      ValueError: x is not (T, D), not 0/1, or a table is not on exactly one device.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"placement must be a (tables, devices) 0/1 matrix, got shape "
                         f"{x.shape}")
    if n_tables is not None and x.shape[0] != n_tables:
        raise ValueError(f"placement has {x.shape[0]} rows, the task has {n_tables} tables")
    if not np.all((np.abs(x) < 1e-6) | (np.abs(x - 1) < 1e-6)):
        raise ValueError("placement entries must be 0 or 1")
    xi = np.rint(x).astype(np.int64)
    per_table = xi.sum(axis=1)
    if np.any(per_table != 1):
        bad = np.flatnonzero(per_table != 1)[:5].tolist()
        raise ValueError(f"each table must be on exactly one device; tables {bad} are on "
                         f"{per_table[bad].tolist()} devices")
    return xi.argmax(axis=1), x.shape[1]


def profile_plan(pool: TablePool, placement: np.ndarray,
                 config: ProfilerConfig = ProfilerConfig(), *,
                 cache: MeasurementCache | None = None,
                 device: jax.Device | None = None) -> PlanMeasurement:
    """The measured cost of a placement: each device's tables measured in turn on the one
    available accelerator, plus modelled all-to-all communication (`comm.alltoall_ms`;
    every device waits for the slowest exchange), maximum over devices.

    Args:
      pool: the task's tables (T of them).
      placement: ``(T, D)`` 0/1 matrix, one device per table.
      config: measurement settings and the communication model's link parameters.
      cache: optional `MeasurementCache`; device table sets measured before are reused.
      device: the accelerator that runs the measurements.

    Returns:
      A `PlanMeasurement`.

    Raises:
      ValueError: a malformed placement; `TableTooLargeError` when a device's tables do not
        fit the measuring device.
    """
    device = device or default_device()
    assign, n_dev = assignment_of(placement, len(pool))
    batch = config.batch_for(device)
    fwd = np.zeros(n_dev)
    bwd = np.zeros(n_dev)
    dim_sum = np.zeros(n_dev)
    cached: list = [None] * n_dev
    for d in range(n_dev):
        on = np.flatnonzero(assign == d)
        if on.size == 0:
            continue
        m = profile_tables(pool.subset(on), config, cache=cache, device=device)
        fwd[d], bwd[d], cached[d] = m.fwd_ms, m.bwd_ms, m.cached
        dim_sum[d] = float(pool.dim[on].sum())
    send = exchange_ms(pooled_bytes(dim_sum, batch, n_dev, config.bytes_per_element),
                       config.link_gbps * 1e9)
    sides = alltoall_ms(send, latency_us=config.link_latency_us)
    comm = sides.max(axis=0)
    total = fwd + bwd + comm.max()
    note = (f"communication is modelled, not measured: all-to-all of pooled outputs, "
            f"batch {batch}, {n_dev} devices, {config.link_gbps:g} GB/s per device link, "
            f"{config.link_latency_us:g} us latency, forward and backward; every device "
            f"waits for the slowest send or receive")
    return PlanMeasurement(cost_ms=float(total.max()), fwd_ms=fwd, bwd_ms=bwd, comm_ms=comm,
                           alltoall=sides, device_ms=total, measured_on=device.device_kind, batch_size=batch,
                           dtype=config.dtype, cached=cached, comm_note=note)


def task_pool(task) -> TablePool:
    """The tables of a `tasks.ShardingTask` as a `TablePool` (what the profiler measures)."""
    return TablePool(rows=np.rint(np.asarray(task.rows)).astype(np.int64),
                     dim=np.rint(np.asarray(task.dim)).astype(np.int64),
                     pooling=np.asarray(task.pooling, np.float64),
                     skew=np.asarray(task.skew, np.float64))


@dataclasses.dataclass(frozen=True, eq=False)
class MeasuredCostModel(ShardingCostModel):
    """The profiler as a `cost_model.ShardingCostModel`: a plan's devices measured on the
    accelerator (`profile_plan`), the all-to-all modelled. Costs binary plans only and is
    not differentiable: use it as the truth of a problem
    (``sharding_problem(learned, truth=MeasuredCostModel(cache=...))``) or to judge plans.

    Attributes:
      config: measurement settings (batch, dtype, runs, link of the communication model).
      cache: optional `MeasurementCache`: device table sets measured before are reused.
      device: the accelerator (default `memory.default_device`).
    """

    name: ClassVar[str] = "measured"
    differentiable: ClassVar[bool] = False

    config: ProfilerConfig = ProfilerConfig()
    cache: MeasurementCache | None = None
    device: Any = None

    def measure(self, x: np.ndarray, task) -> PlanMeasurement:
        """`profile_plan` of the binary plan ``x (T, D)`` on ``task``'s tables.

        Raises:
          ValueError: x is not a 0/1 plan with one device per table;
            `memory.TableTooLargeError`: a device's tables do not fit the accelerator.
        """
        return profile_plan(task_pool(task), np.asarray(x), self.config, cache=self.cache,
                            device=self.device)

    def stage_costs(self, x: np.ndarray, task) -> tuple[np.ndarray, np.ndarray]:
        """Measured ``compute (D,)`` (forward + backward) and modelled ``comm (2, D)`` in ms
        of the binary plan ``x`` (numpy arrays; see `measure`)."""
        m = self.measure(x, task)
        return m.fwd_ms + m.bwd_ms, m.alltoall

    def device_costs(self, x: np.ndarray, task) -> np.ndarray:
        """Per-device cost in ms, `PlanMeasurement.device_ms` (numpy)."""
        return self.measure(x, task).device_ms

    def plan_cost(self, x: np.ndarray, task) -> float:
        """The profiled plan cost in ms, `PlanMeasurement.cost_ms`."""
        return self.measure(x, task).cost_ms
