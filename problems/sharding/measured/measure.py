"""Measuring table sets and plans on the accelerator: the measured ground truth of
sharding (`profile_tables`, `profile_plan`) and the measured cost model
(`MeasuredCostModel`, a `cost_model.ShardingCostModel`).

A placement's real cost is what the accelerator takes to run it. DreamShard (Zha et al.,
NeurIPS 2022) and SurCo (Ferber et al., ICML 2023, §5.1) measure each device's fused
embedding-bag step and take the maximum over devices. Here the devices' table sets are
measured on the one available accelerator — with the default ``"arena"`` engine all the
new sets of a plan, or of many plans (`profile_plans`, a neighbourhood), in one
session (`timing.time_sets`) — through the optional SQLite cache
(`cache.MeasurementCache`; a set measured before is read back), and the all-to-all is
*modelled, not measured* (`comm.alltoall_ms`: one GPU cannot time an exchange between
devices).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, ClassVar, Sequence

import jax
import numpy as np

from ..comm import alltoall_ms, exchange_ms, pooled_bytes
from ..cost_model import ShardingCostModel
from ..tables import TablePool, sample_lookups
from .cache import CacheKey, MeasurementCache
from .memory import check_fits, default_device, device_memory_limit
from .timing import ProfilerConfig, time_sets, time_step

__all__ = ["MeasuredCostModel", "Measurement", "PlanMeasurement", "SESSION_SETS",
           "assignment_of", "lookup_seed", "profile_plan", "profile_plans", "profile_sets",
           "profile_tables", "sample_table_lookups", "table_signature", "task_pool"]

#: Most table sets timed in one session (`timing.time_sets`).
SESSION_SETS = 16


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

    @property
    def rel_spread(self) -> float:
        """The relative spread of the timed runs: the IQR of forward + backward per run over
        its median (arena engine), else ``(fwd IQR + bwd IQR) / (fwd + bwd)``."""
        c = self.raw.get("compute")
        if c is not None:
            return float(c["iqr_ms"] / c["median_ms"]) if c["median_ms"] > 0 else 0.0
        return float((self.fwd_iqr_ms + self.bwd_iqr_ms) / max(self.compute_ms, 1e-12))

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
                   device: jax.Device | None = None, draw: int = 0) -> Measurement:
    """Measure the fused embedding-bag step of the tables in ``pool`` placed on one device
    (`profile_sets` of one set).

    Raises:
      ValueError: an empty pool; `TableTooLargeError` when the set does not fit the device
        (checked before any allocation).
    """
    return profile_sets([pool], config, cache=cache, device=device, draw=draw)[0]


def profile_sets(pools: Sequence[TablePool], config: ProfilerConfig = ProfilerConfig(), *,
                 cache: MeasurementCache | None = None, device: jax.Device | None = None,
                 draw: int = 0) -> list[Measurement]:
    """Measure several one-device table sets: the profiler's one entry point.

    Each set is put in a canonical order (so its cost does not depend on how it was
    listed) and gets one batch of lookups per table from its access distribution and
    pooling factor, seeded by the set's signature (`lookup_seed`: a set is always measured
    on the same lookups). With a ``cache``, a set stored under (device kind, signature,
    batch size, dtype, `ProfilerConfig.version`, `ProfilerConfig.setting`, ``draw``) is
    read back without measuring; the others are measured — with the arena engine together,
    `SESSION_SETS` per session (`timing.time_sets`), with the fused engine one
    by one (`timing.time_step`) — and stored. A set listed twice is measured once (its
    later copies count as ``cached``).

    Args:
      pools: the table sets. config: how to measure. cache: optional measurement cache.
      device: the accelerator (default `memory.default_device`).
      draw: which measurement: 0 is the one searches read; 1, 2, ... are fresh
        re-measurements of the same sets, each stored apart (`cache.CacheKey.draw`).

    Returns:
      One `Measurement` per set, in order (``cached`` says which were read back).

    Raises:
      ValueError: an empty set; `TableTooLargeError` when a set does not fit the device
        (checked before any allocation).
    """
    if isinstance(draw, bool) or int(draw) != draw or draw < 0:
        raise ValueError(f"draw must be an int >= 0, got {draw!r}")
    device = device or default_device()
    batch = config.batch_for(device)
    limit = config.memory_limit_bytes
    if limit is None:
        limit, source = device_memory_limit(device)
    else:
        source = "ProfilerConfig.memory_limit_bytes"
    out: list[Measurement | None] = [None] * len(pools)
    todo: dict[str, list[int]] = {}
    keys: dict[str, CacheKey] = {}
    for k, pool in enumerate(pools):
        if len(pool) == 0:
            raise ValueError(f"table set {k} is empty: profile_tables needs at least one "
                             "table (an empty device costs 0 and is not measured)")
        sig = table_signature(pool)
        key = CacheKey(device.device_kind, sig, batch, config.dtype, config.version,
                       config.setting(device), int(draw))
        rec = cache.get(key) if cache is not None else None
        if rec is not None:
            out[k] = Measurement.from_record(rec, cached=True)
            continue
        if sig not in todo and not (config.engine == "arena" and config.arena_bytes):
            # refuse on the weights alone before drawing lookups (cheap); a fixed-size
            # arena holds any set (`programs`: larger ones wrap)
            check_fits(pool.rows, pool.dim, [0] * len(pool), 0, config.bytes_per_element,
                       limit, where=f"{device.device_kind} ({source})")
        todo.setdefault(sig, []).append(k)
        keys[sig] = key
    sigs = list(todo)
    step = SESSION_SETS if config.engine == "arena" else 1
    for at in range(0, len(sigs), step):
        part = sigs[at:at + step]
        t_start = time.perf_counter()
        sets = []
        for sig in part:
            ordered = pools[todo[sig][0]].subset(_canonical_order(pools[todo[sig][0]]))
            idx, seg = sample_table_lookups(ordered, batch, lookup_seed(sig))
            sets.append((ordered.rows, ordered.dim, idx, seg))
        seed = lookup_seed(part[0]) % (2 ** 31)
        if config.engine == "arena":
            recs = time_sets(sets, batch_size=batch, config=config, device=device, seed=seed)
        else:
            recs = [time_step(*sets[0], batch_size=batch, config=config, device=device,
                              seed=seed)]
        total = time.perf_counter() - t_start   # sampling + allocation + compile + runs
        for sig, rec in zip(part, recs):
            rec["signature"] = sig
            rec["draw"] = int(draw)
            rec["total_s"] = total / len(part)
            if cache is not None:
                cache.put(keys[sig], rec)
            for j, k in enumerate(todo[sig]):     # later copies: as if from the cache
                out[k] = Measurement.from_record(rec, cached=j > 0)
    return out


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
      rel_spread: per device, the relative spread of its timed runs
        (`Measurement.rel_spread`; 0 for an empty device).
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
    rel_spread: np.ndarray | None = None


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
                 device: jax.Device | None = None, draw: int = 0) -> PlanMeasurement:
    """The measured cost of a placement: its devices' table sets measured on the one
    available accelerator (`profile_sets`: in one session), plus modelled
    all-to-all communication (`comm.alltoall_ms`; every device waits for the slowest
    exchange), maximum over devices.

    Args:
      pool: the task's tables (T of them).
      placement: ``(T, D)`` 0/1 matrix, one device per table.
      config: measurement settings and the communication model's link parameters.
      cache: optional `MeasurementCache`; device table sets measured before are reused.
      device: the accelerator that runs the measurements.
      draw: which measurement of the sets (0: the searches'; >= 1: fresh ones).

    Returns:
      A `PlanMeasurement`.

    Raises:
      ValueError: a malformed placement; `TableTooLargeError` when a device's tables do not
        fit the measuring device.
    """
    return profile_plans(pool, [placement], config, cache=cache, device=device,
                         draw=draw)[0]


def profile_plans(pool: TablePool, placements: Sequence[np.ndarray],
                  config: ProfilerConfig = ProfilerConfig(), *,
                  cache: MeasurementCache | None = None, device: jax.Device | None = None,
                  draw: int = 0) -> list[PlanMeasurement]:
    """`profile_plan` of many placements of one task's tables, their new device sets
    measured together (`profile_sets`: in sessions; a set shared by several plans,
    e.g. the unchanged devices of neighbouring plans, measured once).

    Raises:
      ValueError: a malformed placement (naming which); `TableTooLargeError`.
    """
    device = device or default_device()
    assigns, subsets = [], []
    for p, x in enumerate(placements):
        try:
            assign, n_dev = assignment_of(x, len(pool))
        except ValueError as e:
            raise ValueError(f"placement {p}: {e}") from None
        assigns.append((assign, n_dev))
        subsets += [np.flatnonzero(assign == d) for d in range(n_dev)]
    nonempty = [on for on in subsets if on.size]
    ms = iter(profile_sets([pool.subset(on) for on in nonempty], config, cache=cache,
                           device=device, draw=draw))
    per_set = [next(ms) if on.size else None for on in subsets]
    out, at = [], 0
    for assign, n_dev in assigns:
        out.append(_plan(pool, per_set[at:at + n_dev], subsets[at:at + n_dev], config,
                         device))
        at += n_dev
    return out


def _plan(pool: TablePool, ms: list, subsets: list, config: ProfilerConfig,
          device: jax.Device) -> PlanMeasurement:
    n_dev = len(ms)
    batch = config.batch_for(device)
    fwd, bwd, dim_sum, spread = (np.zeros(n_dev) for _ in range(4))
    cached: list = [None] * n_dev
    for d, (m, on) in enumerate(zip(ms, subsets)):
        if m is not None:
            fwd[d], bwd[d], cached[d], spread[d] = m.fwd_ms, m.bwd_ms, m.cached, m.rel_spread
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
                           alltoall=sides, device_ms=total, measured_on=device.device_kind,
                           batch_size=batch, dtype=config.dtype, cached=cached,
                           comm_note=note, rel_spread=spread)


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
      draw: which measurement of each set (0: the one searches read; a model with
        ``draw=k >= 1`` gives fresh measurements, each stored apart in the cache).
    """

    name: ClassVar[str] = "measured"
    differentiable: ClassVar[bool] = False

    config: ProfilerConfig = ProfilerConfig()
    cache: MeasurementCache | None = None
    device: Any = None
    draw: int = 0

    def measure(self, x: np.ndarray, task) -> PlanMeasurement:
        """`profile_plan` of the binary plan ``x (T, D)`` on ``task``'s tables.

        Raises:
          ValueError: x is not a 0/1 plan with one device per table;
            `memory.TableTooLargeError`: a device's tables do not fit the accelerator.
        """
        return profile_plan(task_pool(task), np.asarray(x), self.config, cache=self.cache,
                            device=self.device, draw=self.draw)

    def measure_many(self, X: np.ndarray, task) -> list[PlanMeasurement]:
        """`profile_plans` of the binary plans ``X (B, T, D)``: their new device sets
        measured together (a neighbourhood scored in one session)."""
        return profile_plans(task_pool(task), list(np.asarray(X)), self.config,
                             cache=self.cache, device=self.device, draw=self.draw)

    def plan_costs(self, X: np.ndarray, task) -> np.ndarray:
        """Profiled costs in ms of the plans ``X (B, T, D)`` (`measure_many`)."""
        return np.array([m.cost_ms for m in self.measure_many(X, task)], np.float64)

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
