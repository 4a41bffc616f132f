"""Sharding tasks (T tables from a pool, D devices, memory per device) and their feasible set Ω.

A `ShardingTask` is a pytree of arrays (one SurCo instance) with static shapes per (T, D):
per-table arrays of length T, the device capacities of length D, and a scalar temperature.
Ω (`spec_for`) is the set of binary plans ``x[t, d]`` with every table on exactly one device,
each device's tables within its memory, and every device holding at least one table.
"""
from __future__ import annotations

import weakref
from typing import Sequence

import flax.struct
import numpy as np
import scipy.sparse as sp

from surco.solvers import InfeasibleError, LinearSpec, make_solver

from .cost import DEFAULT_COST_MODEL, AnalyticCostModel, standalone_costs, table_terms
from .tables import TablePool, scale_features, table_features

#: Memory per device of the SurCo / DreamShard grid: 5 GB (decimal), in bytes.
DEFAULT_CAPACITY = 5e9
#: The paper grid of SurCo §5.1: T in {10, ..., 60} on 4 devices, 50 train + 50 test tasks.
GRID_TABLES = (10, 20, 30, 40, 50, 60)
BYTES_PER_ELEMENT = 4
MEMORY_UNIT = 2.0 ** 30  # memory rows of Ω are written in GiB for solver conditioning
BINARY_TOL = 1e-6

_FEATURES: "weakref.WeakKeyDictionary[TablePool, np.ndarray]" = weakref.WeakKeyDictionary()
_TERMS: "weakref.WeakKeyDictionary[TablePool, dict]" = weakref.WeakKeyDictionary()


class InfeasibleTaskError(ValueError):
    """No placement of the task's tables fits the devices' memory (or T < D).

    Attributes:
      shortfall_bytes: the smallest extra memory per device that would make the task
        feasible (for T < D: ``inf``).
    """

    def __init__(self, message: str, shortfall_bytes: float):
        super().__init__(message)
        self.shortfall_bytes = shortfall_bytes


@flax.struct.dataclass
class ShardingTask:
    """One sharding instance: T tables placed on D devices (a pytree; leaves are arrays).

    Per-table arrays (T,): ``ids`` (index in the source pool), ``dim``, ``rows``,
    ``pooling``, ``skew``, ``size_bytes`` (rows·dim·4), the cost-model terms
    ``stream_bytes``, ``lookup_bytes``, ``reuse``, ``footprint``, ``comm_bytes`` (see
    `surco.problems.sharding.cost`), and ``features`` (T, 22): the scaled DreamShard
    features of `table_features` plus the table's standalone cost relative to the mean
    device load. ``capacity`` (D,) is each device's memory in bytes; ``mean_load_ms`` the
    sum of standalone table costs over D (the scale of the smooth-max temperature).
    """

    ids: np.ndarray
    dim: np.ndarray
    rows: np.ndarray
    pooling: np.ndarray
    skew: np.ndarray
    size_bytes: np.ndarray
    stream_bytes: np.ndarray
    lookup_bytes: np.ndarray
    reuse: np.ndarray
    footprint: np.ndarray
    comm_bytes: np.ndarray
    features: np.ndarray
    capacity: np.ndarray
    mean_load_ms: np.ndarray

    @property
    def n_tables(self) -> int:
        return int(np.shape(self.dim)[-1])

    @property
    def n_devices(self) -> int:
        return int(np.shape(self.capacity)[-1])


def _pool_features(pool: TablePool) -> np.ndarray:
    f = _FEATURES.get(pool)
    if f is None:
        f = scale_features(table_features(pool))
        _FEATURES[pool] = f
    return f


def _pool_terms(pool: TablePool, n_devices: int, model: AnalyticCostModel) -> dict[str, np.ndarray]:
    cache = _TERMS.setdefault(pool, {})
    key = (int(n_devices), model)
    if key not in cache:
        cache[key] = table_terms(pool, n_devices, model)
    return cache[key]


def make_task(pool: TablePool, table_ids: Sequence[int], n_devices: int,
              capacity: float | Sequence[float] = DEFAULT_CAPACITY, *,
              model: AnalyticCostModel = DEFAULT_COST_MODEL, check: bool = True) -> ShardingTask:
    """The task of placing ``pool``'s tables ``table_ids`` on ``n_devices`` devices.

    Args:
      pool: source pool (features and cost terms are computed once per pool and cached).
      table_ids: indices of the T tables in ``pool`` (distinct).
      n_devices: D >= 1.
      capacity: memory per device in bytes, one number or D numbers.
      model: the cost model whose per-table terms the task carries.
      check: raise `InfeasibleTaskError` when no placement fits (see `check_feasible`).

    Raises:
      ValueError: bad ids, D or capacities. InfeasibleTaskError: no placement fits.
    """
    ids = np.asarray(table_ids, dtype=np.int64).reshape(-1)
    D = int(n_devices)
    if D < 1:
        raise ValueError(f"n_devices must be >= 1, got {n_devices}")
    if ids.size == 0:
        raise ValueError("table_ids is empty")
    if ids.min() < 0 or ids.max() >= len(pool):
        raise ValueError(f"table_ids must lie in [0, {len(pool)}), got [{ids.min()}, {ids.max()}]")
    if np.unique(ids).size != ids.size:
        raise ValueError("table_ids contains repeated tables")
    cap = np.broadcast_to(np.asarray(capacity, dtype=np.float64), (D,)).copy() \
        if np.ndim(capacity) == 0 else np.asarray(capacity, dtype=np.float64).reshape(-1)
    if cap.shape != (D,):
        raise ValueError(f"capacity must be one number or {D} numbers, got {cap.shape[0]}")
    if not np.all(np.isfinite(cap)) or np.any(cap <= 0):
        raise ValueError(f"capacity must be positive finite bytes, got {cap}")
    sub = pool.subset(ids)
    terms = {k: v[ids] for k, v in _pool_terms(pool, D, model).items()}
    feats = _pool_features(pool)[ids]
    task = ShardingTask(
        ids=ids, dim=sub.dim.astype(np.float64), rows=sub.rows.astype(np.float64),
        pooling=sub.pooling.copy(), skew=sub.skew.copy(),
        size_bytes=sub.size_bytes(BYTES_PER_ELEMENT).astype(np.float64),
        features=np.zeros((ids.size, feats.shape[1] + 1)), capacity=cap,
        mean_load_ms=np.asarray(1.0), **terms)
    alone = standalone_costs(task, model).astype(np.float64)
    mean_load = alone.sum() / D
    task = task.replace(features=np.concatenate([feats, (alone / mean_load)[:, None]], axis=1),
                        mean_load_ms=np.asarray(mean_load))
    if check:
        check_feasible(task)
    return task


def spec_for(task: ShardingTask) -> LinearSpec:
    """Ω of a task as a `LinearSpec` over x of shape (T, D), binary.

    Rows: ``Σ_d x[t,d] = 1`` (each table on exactly one device); ``Σ_t size_t x[t,d] <=
    capacity_d`` (memory, written in GiB); ``Σ_t x[t,d] >= 1`` (every device used).
    """
    T, D = task.n_tables, task.n_devices
    size = np.asarray(task.size_bytes, np.float64) / MEMORY_UNIT
    cap = np.asarray(task.capacity, np.float64) / MEMORY_UNIT
    idx = np.arange(T * D).reshape(T, D)
    A_eq = sp.csr_matrix((np.ones(T * D), (np.repeat(np.arange(T), D), idx.reshape(-1))),
                         shape=(T, T * D))
    mem = sp.csr_matrix((np.repeat(size, D), (np.tile(np.arange(D), T), idx.reshape(-1))),
                        shape=(D, T * D))
    used = sp.csr_matrix((-np.ones(T * D), (np.tile(np.arange(D), T), idx.reshape(-1))),
                         shape=(D, T * D))
    return LinearSpec(shape=(T, D), A_ub=sp.vstack([mem, used]).tocsr(),
                      b_ub=np.concatenate([cap, -np.ones(D)]), A_eq=A_eq, b_eq=np.ones(T),
                      lb=0.0, ub=1.0, integer=True, name=f"sharding[T={T},D={D}]")


def plan_violations(x: np.ndarray, task: ShardingTask) -> list[str]:
    """Every way ``x`` breaks Ω, checked in exact integer bytes without any solver.

    Entries within ``BINARY_TOL = 1e-6`` of 0 or 1 count as binary (MILP solvers return
    integers up to their feasibility tolerance). Returns an empty list for a valid plan;
    otherwise readable messages (wrong shape, a non-binary entry, a table not on exactly one device, a device over memory, an unused
    device).
    """
    x = np.asarray(x, dtype=np.float64)
    T, D = task.n_tables, task.n_devices
    if x.shape != (T, D):
        return [f"plan has shape {x.shape}, expected ({T}, {D})"]
    out = []
    dev = np.abs(x - np.round(x)).max(initial=0.0)
    if dev > BINARY_TOL or not np.all((np.round(x) == 0) | (np.round(x) == 1)):
        out.append("plan has entries other than 0 and 1")
        return out
    x = np.round(x)
    per_table = x.sum(1)
    for t in np.flatnonzero(per_table != 1):
        out.append(f"table {t} is on {int(per_table[t])} devices, expected exactly 1")
    size = np.asarray(task.size_bytes).astype(np.int64)
    load = size @ x.astype(np.int64)
    cap = np.asarray(task.capacity, np.float64)
    for d in np.flatnonzero(load > cap):
        out.append(f"device {d} holds {load[d]} bytes > capacity {cap[d]:.0f}")
    for d in np.flatnonzero(x.sum(0) < 1):
        out.append(f"device {d} holds no table")
    return out


def assignment_to_plan(assign: Sequence[int], n_devices: int) -> np.ndarray:
    """One-hot plan (T, D) float64 from a device index per table."""
    a = np.asarray(assign, dtype=np.int64).reshape(-1)
    if a.size and (a.min() < 0 or a.max() >= n_devices):
        raise ValueError(f"device indices must lie in [0, {n_devices}), got [{a.min()}, {a.max()}]")
    x = np.zeros((a.size, int(n_devices)))
    x[np.arange(a.size), a] = 1.0
    return x


def _first_fit_decreasing(size: np.ndarray, cap: np.ndarray) -> np.ndarray | None:
    """A packing that also uses every device, or None when FFD finds none."""
    T, D = size.size, cap.size
    order = np.argsort(-size, kind="stable")
    load = np.zeros(D)
    assign = np.full(T, -1)
    for i, t in enumerate(order):
        remaining = T - i
        empty = np.flatnonzero(load == 0)
        cands = empty if remaining <= empty.size else np.arange(D)
        fits = [d for d in cands if load[d] + size[t] <= cap[d]]
        if not fits:
            return None
        d = min(fits, key=lambda d: load[d])
        assign[t] = d
        load[d] += size[t]
    return assign


def check_feasible(task: ShardingTask) -> None:
    """Raise `InfeasibleTaskError` when no plan satisfies Ω, saying by how much memory is short.

    The shortfall is the smallest extra memory δ that, added to every device, lets all
    tables fit: ``max(0, (Σ size - Σ capacity) / D)`` when the total does not fit, and in
    general the optimum of the MILP ``min δ s.t. the tables pack into capacity_d + δ``
    (solved with `surco.solvers`). A first-fit-decreasing packing proves feasibility
    quickly in the common case.

    Raises:
      InfeasibleTaskError: T < D, or no packing fits.
    """
    T, D = task.n_tables, task.n_devices
    size = np.asarray(task.size_bytes, np.float64)
    cap = np.asarray(task.capacity, np.float64)
    if T < D:
        raise InfeasibleTaskError(f"{T} tables cannot use all {D} devices (every device must "
                                  "hold at least one table)", float("inf"))
    if _first_fit_decreasing(size, cap) is not None:
        return
    # min δ  s.t.  Σ_t size_t x[t,d] - δ <= cap_d, Σ_d x[t,d] = 1, Σ_t x[t,d] >= 1
    base = spec_for(task)
    n = T * D
    A_ub = sp.hstack([base.A_ub, sp.csr_matrix(
        np.concatenate([-np.ones(D), np.zeros(D)])[:, None])]).tocsr()
    A_eq = sp.hstack([base.A_eq, sp.csr_matrix((T, 1))]).tocsr()
    integer = np.concatenate([np.ones(n, bool), [False]])
    spec = LinearSpec(shape=(n + 1,), A_ub=A_ub, b_ub=base.b_ub, A_eq=A_eq, b_eq=base.b_eq,
                      lb=0.0, ub=np.concatenate([np.ones(n), [np.inf]]), integer=integer,
                      name="sharding-shortfall")
    c = np.zeros(n + 1)
    c[-1] = 1.0
    try:
        sol = make_solver(spec, backend="highs", time_limit=60.0).solve(c)
    except InfeasibleError as exc:  # cannot happen for T >= D; report rather than hide
        raise InfeasibleTaskError(f"sharding task has no feasible plan ({exc})",
                                  float("inf")) from exc
    delta = max(0.0, float(sol.x[-1]) * MEMORY_UNIT)
    if delta <= 1.0:  # FFD missed a packing that exists
        return
    total, total_cap = size.sum(), cap.sum()
    raise InfeasibleTaskError(
        f"no placement of {T} tables on {D} devices fits in memory: the tables need "
        f"{total / 1e9:.3f} GB in total against {total_cap / 1e9:.3f} GB of capacity "
        f"(largest table {size.max() / 1e9:.3f} GB); memory is short by "
        f"{delta / 1e9:.3f} GB per device ({delta * D / 1e9:.3f} GB in all)", delta)


def generate_tasks(pool: TablePool, n_tables: int, n_devices: int = 4, n_tasks: int = 50,
                   capacity: float = DEFAULT_CAPACITY, seed: int = 0, *,
                   model: AnalyticCostModel = DEFAULT_COST_MODEL,
                   max_redraws: int = 100) -> list[ShardingTask]:
    """``n_tasks`` tasks of ``n_tables`` tables drawn uniformly without replacement from
    ``pool``, on ``n_devices`` devices of ``capacity`` bytes each (DreamShard/SurCo protocol).

    A draw that no placement can fit is redrawn, so tasks are uniform over *feasible* table
    sets; more than ``max_redraws`` failed draws in a row raise `InfeasibleTaskError` (the
    setting itself is infeasible).

    Raises:
      ValueError: ``n_tables`` larger than the pool, or non-positive sizes.
    """
    T, D = int(n_tables), int(n_devices)
    if T < 1 or T > len(pool):
        raise ValueError(f"n_tables must be in [1, {len(pool)}], got {n_tables}")
    if int(n_tasks) < 0:
        raise ValueError(f"n_tasks must be >= 0, got {n_tasks}")
    rng = np.random.default_rng([int(seed), T, D])
    tasks: list[ShardingTask] = []
    fails = 0
    while len(tasks) < int(n_tasks):
        ids = np.sort(rng.choice(len(pool), size=T, replace=False))
        try:
            tasks.append(make_task(pool, ids, D, capacity, model=model))
            fails = 0
        except InfeasibleTaskError as exc:
            fails += 1
            if fails > max_redraws:
                raise InfeasibleTaskError(
                    f"{max_redraws} draws of {T} tables in a row fit no placement on {D} "
                    f"devices of {capacity / 1e9:.3g} GB; last: {exc}", exc.shortfall_bytes) from exc
    return tasks
