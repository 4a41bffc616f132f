"""The embedded analytic cost model of a sharding plan (differentiable, no GPU needed):
`AnalyticCostModel`, one implementation of `cost_model.ShardingCostModel`.

A plan x (T tables × D devices, x[t, d] = 1 when table t lives on device d; relaxed to [0, 1]
for gradients) costs, per training iteration, ``max_d cost_d(x)`` milliseconds, where device
d runs one fused embedding-bag kernel over its tables forward, one backward, and takes part
in the all-to-all exchange of pooled embeddings, as in table-wise sharding in TorchRec and
DreamShard (Zha et al., NeurIPS 2022). The structure follows TorchRec's sharding-planner
estimator (``torchrec/distributed/planner/shard_estimators.py``: bytes moved over a kernel
bandwidth, a block-usage penalty by dim, backward = 2 × forward compute, communication =
pooled output bytes over the interconnect bandwidth), with two additions that make a
device's cost *not* the sum of its tables' costs: a shared-cache term and per-kernel
overheads.

Per table t (global batch ``B = batch_per_device × D``, rows of ``4·dim`` bytes,
``L_t = B · pooling_t`` lookups per iteration):

* streamed bytes ``S_t = L_t·8 + B·8 + B·dim_t·4``: int64 indices and offsets read
  (TorchRec ``BIGINT_DTYPE = 8``) and the pooled output written, always from/to HBM;
* lookup bytes ``G_t = L_t · 4·dim_t · penalty(dim_t)``, with TorchRec's block-usage
  penalty (1 for dim >= 128, ``HALF_BLOCK_PENALTY = 1.15`` for dim >= 64,
  ``QUARTER_BLOCK_PENALTY = 1.75`` below) times a DRAM-sector factor
  ``max(1, 32 B / (4·dim) B)`` (a 16-byte row of dim 4 still moves one 32-byte sector; CUDA
  C++ Programming Guide, device-memory accesses): the effective bandwidth depends on dim;
* reuse ``r_t = (L_t - U1_t) / L_t`` and hot footprint ``W_t = U2_t · 4·dim_t`` bytes, where
  ``U1_t`` / ``U2_t`` are the expected numbers of rows accessed at least once / twice in an
  iteration under the table's Zipf law (`expected_unique_rows`). Only repeated accesses can
  hit in the cache, and only rows that are reused are worth caching.

Device d, with ``W_d = Σ_t x[t,d] W_t`` (the hot footprints that compete for the L2 cache
of ``C`` bytes), cache hit rate ``h_td = r_t · C / (C + W_d)``, forward compute::

    F_d = KERNEL_OVERHEAD + Σ_t x[t,d] ( TABLE_OVERHEAD + S_t / BW_HBM
                                       + G_t ((1 - h_td) / BW_HBM + h_td / BW_L2) )

Compute of device d (forward plus backward, TorchRec's backward = 2 × forward) is
``(1 + BWD_MULTIPLIER) · F_d``. The all-to-all of pooled embeddings (forward) and of their
gradients (backward) moves, per table, ``P_t = B · dim_t · 4 · (D - 1) / D`` bytes from the
table's device to the others, and each device receives its batch slice ``P_t / (D - 1)`` of
every table it does not hold; over full-duplex links device d needs
``2 · max(send_d, recv_d) / BW_COMM`` with ``send_d = Σ_t x[t,d] P_t`` and
``recv_d = Σ_t (1 - x[t,d]) P_t / (D - 1)`` (`comm.alltoall_ms`, the one communication
model of every cost model). The collective ends when its slowest member does, and every
device waits for it, so (`AnalyticCostModel.device_costs`)::

    cost_d = (1 + BWD_MULTIPLIER) · F_d + max_d' 2 · max(send_d', recv_d') / BW_COMM

and the plan costs ``max_d cost_d`` = max compute + max all-to-all time
(`AnalyticCostModel.plan_cost`).
Two couplings make the plan cost more than a sum of per-table costs: tables with large hot
sets slow each other down through ``W_d``, and the all-to-all is set by the device with
the most (or, receiving, the least) pooled width, so compute and communication have to be
balanced at the same time.

Constants (`AnalyticCostModel` fields) and where they come from. The modelled machine is a node of
NVIDIA H100 PCIe GPUs whose all-to-all goes over PCIe 5.0 (no NVLink), a setting where the
pooled-embedding exchange is a large share of an iteration (about 60 % of the plan cost of
DLRM-50 plans on 4 devices here; DreamShard, too, models and measures communication as a
separate cost next to computation):

* ``hbm_bw = 2.0 TB/s`` — H100 PCIe HBM2e bandwidth (NVIDIA H100 datasheet);
* ``l2_bytes = 50 MiB`` — H100 L2 cache (NVIDIA H100 Tensor Core GPU whitepaper);
* ``l2_bw = 5.75 TB/s`` — 2.87 × HBM: NVIDIA publishes no L2 throughput, so we use the
  L2 / HBM throughput ratio measured on V100 by Jia et al., "Dissecting the NVIDIA Volta GPU
  Architecture via Microbenchmarking" (2018): 2155 GB/s vs 750 GB/s;
* ``comm_bw = 51.2 GB/s`` — PCIe 5.0 x16, 64 GB/s per direction (PCI-SIG: 32 GT/s × 16
  lanes), at 80 % efficiency (a modelling choice for achieved DMA throughput); each device's
  send volume is divided by it (receives overlap on the other direction);
* ``bwd_multiplier = 2`` — TorchRec ``BWD_COMPUTE_MULTIPLIER``;
* block penalties 1.15 / 1.75 — TorchRec ``HALF_BLOCK_PENALTY`` / ``QUARTER_BLOCK_PENALTY``
  (FBGEMM's kernel gives a row 32 threads × 4-float vectors, ``FULL_BLOCK_EMB_DIM = 128``);
* ``sector_bytes = 32`` — the DRAM access granularity of NVIDIA GPUs;
* ``kernel_overhead = 10 µs`` per fused kernel — CUDA launch plus the TBE kernel's
  prologue, the order of magnitude of measured launch latencies (5-10 µs); a modelling
  choice, constant per device because Ω uses every device;
* ``table_overhead = 2 µs`` per table inside a fused kernel — per-table offsets and
  bookkeeping; a modelling choice (DreamShard observes that fused multi-table kernels cost
  less than separate ones, i.e. a per-table cost much below a launch);
* ``index_bytes = 8`` — TorchRec ``BIGINT_DTYPE`` (int64 indices and offsets);
  ``element_bytes = 4`` — fp32 weights;
* ``batch_per_device = 16384`` — samples per device per iteration (global batch 65536 on 4
  devices);
* ``smooth_temperature = 0.01`` — temperature of the training-time smooth maximum, as a
  fraction of the mean device load (evaluation always uses the true maximum).

With NVLink-class bandwidth (600 GB/s) communication becomes a few percent of the cost and
the heuristics' gap to cost-aware placement shrinks; pass another `AnalyticCostModel` to
study that.
"""
from __future__ import annotations

import dataclasses
import weakref
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .comm import alltoall_ms, exchange_ms, pooled_bytes
from .cost_model import ShardingCostModel
from .tables import TablePool


@dataclasses.dataclass(frozen=True)
class AnalyticCostModel(ShardingCostModel):
    """The analytic cost model: hardware and workload constants (see module docstring) and
    the `ShardingCostModel` methods (`stage_costs`, `plan_cost`, `smooth_plan_cost`,
    `device_costs`, `evaluate`), pure JAX in x.

    Raises:
      ValueError: a constant that is not a positive finite number (names the field).
    """

    name: ClassVar[str] = "analytic"
    differentiable: ClassVar[bool] = True

    batch_per_device: int = 16384
    hbm_bw: float = 2.0e12             # bytes/s, H100 PCIe HBM2e (datasheet)
    l2_bw: float = 5.75e12             # bytes/s, 2.87 x HBM (L2/HBM ratio, Jia et al. 2018)
    l2_bytes: float = 50 * 2 ** 20     # bytes, H100 L2 (whitepaper)
    comm_bw: float = 51.2e9            # bytes/s, PCIe 5.0 x16 per direction at 80 %
    bwd_multiplier: float = 2.0        # TorchRec BWD_COMPUTE_MULTIPLIER
    half_block_penalty: float = 1.15   # TorchRec HALF_BLOCK_PENALTY (64 <= dim < 128)
    quarter_block_penalty: float = 1.75  # TorchRec QUARTER_BLOCK_PENALTY (dim < 64)
    sector_bytes: int = 32             # DRAM sector (CUDA programming guide)
    kernel_overhead: float = 10e-6     # s per fused kernel (modelling choice)
    table_overhead: float = 2e-6       # s per table in a fused kernel (modelling choice)
    index_bytes: int = 8               # TorchRec BIGINT_DTYPE
    element_bytes: int = 4             # fp32 weights
    smooth_temperature: float = 0.01   # smooth max temperature / mean device load

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"AnalyticCostModel.{f.name} must be a positive finite "
                                 f"number, got {v}")

    def dim_penalty(self, dim: np.ndarray) -> np.ndarray:
        """Effective-bandwidth penalty by embedding dim (TorchRec block usage × sector)."""
        dim = np.asarray(dim, dtype=np.float64)
        block = np.where(dim >= 128, 1.0, np.where(dim >= 64, self.half_block_penalty,
                                                   self.quarter_block_penalty))
        sector = np.maximum(1.0, self.sector_bytes / (self.element_bytes * dim))
        return block * sector

    def stage_costs(self, x: jax.Array, task) -> tuple[jax.Array, jax.Array]:
        """Per-device compute and communication times in ms of a plan ``x`` (T, D), binary
        or relaxed to [0, 1]: ``compute (D,)`` (forward + backward fused lookups) and
        ``comm (2, D)`` (forward + backward all-to-all time of each device's send and
        receive volume). ``task`` is a `ShardingTask` (or anything with its per-table
        arrays). Pure JAX.
        """
        x = jnp.asarray(x)
        dt = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        x = x.astype(dt)
        S, G = jnp.asarray(task.stream_bytes, dt), jnp.asarray(task.lookup_bytes, dt)
        r, W = jnp.asarray(task.reuse, dt), jnp.asarray(task.footprint, dt)
        P = jnp.asarray(task.comm_bytes, dt)
        C = self.l2_bytes
        Wd = W @ x                                     # (D,) hot bytes competing for L2
        hit = r[:, None] * (C / (C + Wd))[None, :]     # (T, D)
        per_lookup = (1.0 - hit) / self.hbm_bw + hit / self.l2_bw
        fwd = (self.kernel_overhead
               + jnp.sum(x * (self.table_overhead + S[:, None] / self.hbm_bw
                              + G[:, None] * per_lookup), axis=0))
        # pooled outputs of d's tables to the others; d receives its slice of the rest
        comm = alltoall_ms(exchange_ms(P @ x, self.comm_bw),
                           total_ms=exchange_ms(jnp.sum(P), self.comm_bw))
        return 1e3 * (1.0 + self.bwd_multiplier) * fwd, comm

    def load_scale(self, task) -> jax.Array:
        """The task's mean device load, ``task.mean_load_ms`` (standalone table costs / D)."""
        return jnp.asarray(task.mean_load_ms)


DEFAULT_COST_MODEL = AnalyticCostModel()


def evaluate_plan(x: np.ndarray, task, model: ShardingCostModel = DEFAULT_COST_MODEL) -> float:
    """The family's true cost of a plan in Ω: ``model.evaluate(x, task)`` in ms (max over
    devices, no smoothing), by default under the embedded analytic model.

    Raises:
      ValueError: x does not have the task's shape (T, D).
    """
    return model.evaluate(x, task)


def _zipf_cdf(x: np.ndarray, rows: int, skew: float) -> np.ndarray:
    """CDF of the continuous bounded power law on [1, rows + 1) that `sample_lookups`
    inverts: the probability that a lookup's rank is below x."""
    top = rows + 1.0
    if abs(skew - 1.0) < 1e-9:
        return np.log(x) / np.log(top)
    e = 1.0 - skew
    return (x ** e - 1.0) / (top ** e - 1.0)


def expected_unique_rows(rows: int, skew: float, lookups: float,
                         exact_ranks: int = 4096, ratio: float = 1.01) -> tuple[float, float]:
    """Expected numbers of rows accessed at least once (U1) and at least twice (U2) by
    ``lookups`` independent draws of `sample_lookups`' rank law.

    With Poisson counts per row (λ_r = lookups · p_r), ``U1 = Σ_r 1 - e^{-λ_r}`` and
    ``U2 = Σ_r 1 - e^{-λ_r}(1 + λ_r)``. Ranks up to ``exact_ranks`` are summed exactly; the
    tail in geometric buckets of ratio ``ratio`` with p spread evenly inside a bucket
    (p varies by less than ``ratio^skew`` there).
    """
    rows, lookups = int(rows), float(lookups)
    k = min(rows, exact_ranks)
    edges = np.arange(1, k + 2, dtype=np.float64)
    if rows > k:
        tail = [float(k + 1)]
        while tail[-1] < rows + 1:
            tail.append(min(float(rows + 1), np.ceil(tail[-1] * ratio)))
        edges = np.concatenate([edges, np.asarray(tail[1:])])
    F = _zipf_cdf(edges, rows, skew)
    mass, count = np.diff(F), np.diff(edges)
    lam = lookups * mass / count
    e = np.exp(-lam)
    u1 = float(np.sum(count * -np.expm1(-lam)))
    u2 = float(np.sum(count * (1.0 - e * (1.0 + lam))))
    return u1, u2


def table_terms(pool: TablePool, n_devices: int,
                model: AnalyticCostModel = DEFAULT_COST_MODEL) -> dict[str, np.ndarray]:
    """Per-table quantities of the cost model for tables placed on ``n_devices`` devices.

    Returns float64 arrays of length ``len(pool)``: ``stream_bytes`` (S), ``lookup_bytes``
    (G), ``reuse`` (r), ``footprint`` (W, bytes) and ``comm_bytes`` (P), as defined in the
    module docstring.
    """
    D = int(n_devices)
    if D < 1:
        raise ValueError(f"n_devices must be >= 1, got {n_devices}")
    B = float(model.batch_per_device * D)
    dim = pool.dim.astype(np.float64)
    L = B * pool.pooling
    row_bytes = model.element_bytes * dim
    u = np.array([expected_unique_rows(int(r), float(s), float(l))
                  for r, s, l in zip(pool.rows, pool.skew, L)]).reshape(-1, 2)
    return {
        "stream_bytes": L * model.index_bytes + B * model.index_bytes + B * row_bytes,
        "lookup_bytes": L * row_bytes * model.dim_penalty(dim),
        "reuse": np.clip((L - u[:, 0]) / L, 0.0, 1.0),
        "footprint": u[:, 1] * row_bytes,
        "comm_bytes": pooled_bytes(dim, B, D, model.element_bytes),
    }


_STANDALONE: dict[int, tuple[weakref.ref, AnalyticCostModel, np.ndarray]] = {}


def standalone_costs(task, model: AnalyticCostModel = DEFAULT_COST_MODEL) -> np.ndarray:
    """Cost in ms of each table alone on a device, ``(T,)``: its compute (kernel overhead
    included) plus the time to send its pooled outputs to the task's other devices.

    Remembered per task object and model while the task lives (a task is immutable): the
    features, cost-greedy and `greedy_init` of one task all need it."""
    hit = _STANDALONE.get(id(task))
    if hit is not None and hit[0]() is task and hit[1] is model:
        return hit[2].copy()
    out = _standalone_costs(task, model)
    try:
        ref = weakref.ref(task, lambda _, k=id(task): _STANDALONE.pop(k, None))
    except TypeError:  # not weak-referenceable: not remembered
        return out
    _STANDALONE[id(task)] = (ref, model, out)
    return out.copy()


def _standalone_costs(task, model: AnalyticCostModel) -> np.ndarray:
    T = int(task.stream_bytes.shape[0])
    # the plan "table t alone on device t": one call, no vmap (3-7x faster eagerly), and
    # bit-identical to costing each table alone, since its sums over tables add exact zeros
    compute = model.stage_costs(jnp.eye(T, dtype=jnp.float32), task)[0]
    return np.asarray(compute + exchange_ms(jnp.asarray(task.comm_bytes, jnp.float32),
                                            model.comm_bw))
