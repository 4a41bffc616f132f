"""The profiling backend: the measured cost of embedding tables on a device, in JAX.

A placement's real cost is what the accelerator takes to run it. DreamShard (Zha et al.,
NeurIPS 2022), NeuroShard (Zha et al., MLSys 2023) and AutoShard (Zha et al., KDD 2022)
measure the fused embedding-bag operator of the tables placed on one GPU and learn a cost
model from those measurements; SurCo (Ferber et al., ICML 2023, §5.1) evaluates its
placements the same way. This module does it in JAX, on a CUDA GPU when JAX sees one and on
the CPU otherwise (the same code).

The measured operator, for the tables ``W_1 .. W_k`` placed on one device and a batch of B
samples (per table ``t``: ``L_t`` lookups ``idx_t`` with sorted sample ids ``seg_t``):

* forward: ``out_t[b] = sum_{j: seg_t[j] = b} W_t[idx_t[j]]`` (gather the rows, sum-pool
  each sample's lookups with a segment sum, accumulated in float32), and the pooled outputs
  concatenated to ``(B, sum_t dim_t)``;
* backward: given the gradient ``G`` of the loss with respect to that output, the gradient
  with respect to the gathered rows (by JAX autodiff: the transpose of the pooling) and the
  SGD update ``W_t <- W_t - lr * scatter_add(idx_t, grad_rows_t)`` applied in place (the
  weights are donated to the jitted program, as a training step updates its weights).

As in FBGEMM's table-batched embeddings, the tables of one device are not separate arrays:
tables of equal dim share one weight buffer and one lookup list (`FusedLayout`,
`pack_lookups`), so the fused operator is a handful of gathers and scatters (one per
distinct dim) whatever the number of tables.

`embedding_bag_step` is the fused training step (forward, backward and update in one
jitted function); the profiler compiles the forward (`embedding_bag_forward`) and the
backward (`embedding_bag_backward`) as two programs as well, to time them separately.
Timings synchronise the device (``block_until_ready``), exclude compilation (reported
separately: the programs are compiled ahead of time with ``lower().compile()``), and report
the median and the spread of several runs after warm-up runs. The clock is the wall clock
on an accelerator; on a CPU it is the process's CPU time (``time.process_time``), because
there the measured program shares the cores with every other process and the wall clock
times them too (on a loaded 2-core machine, repeated wall-clock medians of one table set
varied by ~20 %, CPU-time medians by ~5 %).

Communication is *modelled, not measured* (one GPU cannot time an all-to-all between
devices); see `alltoall_ms`. Tables that do not fit the device are refused, with their
sizes, before anything is allocated (`check_fits`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .cache import CacheKey, MeasurementCache
from .cost import DEFAULT_COST_MODEL
from .tables import TablePool, sample_lookups

# Bump when the measured operator or the timing protocol changes: old cache rows then no
# longer match (the version is part of the cache key).
PROFILER_VERSION = 2

GPU_BATCH_SIZE = 65536
CPU_BATCH_SIZE = 2048
DTYPES = {"float32": jnp.float32, "float16": jnp.float16}
# Share of the CPU's available RAM that tables and workspace may use by default.
CPU_MEMORY_FRACTION = 0.5
# Share of the GPU's free memory that tables and workspace may use (XLA needs headroom).
GPU_MEMORY_FRACTION = 0.9


class TableTooLargeError(ValueError):
    """The tables (plus the step's workspace) do not fit the device's memory."""


# ---------------------------------------------------------------------------------------
# The operator (pure JAX on arrays)
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FusedLayout:
    """How one device's tables sit in the fused operator's buffers (hashable, static).

    Like FBGEMM's table-batched embeddings, tables are not separate arrays: the tables of
    one embedding dim share one weight buffer ``(R_g, dim_g)`` (group g, dims ascending),
    table t occupying rows ``[row_offset_t, row_offset_t + rows_t)``. A group's lookups are
    one index array (row indices already offset) and one sorted segment-id array, sample
    major: the lookups of sample b for the group's k-th table have segment id
    ``b * n_g + k``, so the group's pooled output ``(B * n_g, dim_g)`` is, reshaped, its
    ``(B, n_g * dim_g)`` block of the concatenated output with no transpose.

    Attributes:
      batch_size: B.
      group_dims, group_slots, group_rows: per group: dim, number of tables, total rows.
      table_rows, table_group, table_slot, table_row_offset: per table (in the order given
        to `pack_lookups`): its rows, group, slot in the group, first row in the buffer.
    """

    batch_size: int
    group_dims: tuple[int, ...]
    group_slots: tuple[int, ...]
    group_rows: tuple[int, ...]
    table_rows: tuple[int, ...]
    table_group: tuple[int, ...]
    table_slot: tuple[int, ...]
    table_row_offset: tuple[int, ...]

    @property
    def n_tables(self) -> int:
        return len(self.table_group)

    @property
    def output_dim(self) -> int:
        """Columns of the concatenated pooled output, ``sum_t dim_t``."""
        return int(sum(d * n for d, n in zip(self.group_dims, self.group_slots)))

    def columns(self, t: int) -> slice:
        """The columns of table t in the concatenated output ``(B, output_dim)``."""
        g, k = self.table_group[t], self.table_slot[t]
        start = sum(d * n for d, n in zip(self.group_dims[:g], self.group_slots[:g]))
        start += k * self.group_dims[g]
        return slice(start, start + self.group_dims[g])


def pack_lookups(rows: Sequence[int], dims: Sequence[int], indices: Sequence[np.ndarray],
                 segment_ids: Sequence[np.ndarray],
                 batch_size: int) -> tuple[FusedLayout, list[np.ndarray], list[np.ndarray]]:
    """Group tables by dim into fused buffers and rewrite their lookups accordingly.

    Args:
      rows, dims: per table.
      indices: per table, int row indices in ``[0, rows_t)``.
      segment_ids: per table, sorted sample ids in ``[0, batch_size)``.
      batch_size: B.

    Returns:
      ``(layout, group_indices, group_segment_ids)``: the `FusedLayout` and, per group,
      int32 arrays of the group's lookups (offset row indices, sample-major segment ids,
      sorted).

    Raises:
      ValueError: mismatched lengths, indices or segment ids out of range, unsorted
        segment ids.
    """
    rows = [int(r) for r in rows]
    dims = [int(d) for d in dims]
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not rows:
        raise ValueError("pack_lookups needs at least one table")
    if not (len(rows) == len(dims) == len(indices) == len(segment_ids)):
        raise ValueError(f"{len(rows)} rows, {len(dims)} dims, {len(indices)} index arrays and "
                         f"{len(segment_ids)} segment-id arrays: one of each per table")
    for t, (n, d, idx, seg) in enumerate(zip(rows, dims, indices, segment_ids)):
        idx, seg = np.asarray(idx), np.asarray(seg)
        if n < 1 or d < 1:
            raise ValueError(f"table {t}: rows and dim must be >= 1, got {n} x {d}")
        if idx.ndim != 1 or idx.shape != seg.shape:
            raise ValueError(f"table {t}: indices {idx.shape} and segment_ids {seg.shape} "
                             "must be 1-D of one length")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"table {t}: indices must lie in [0, {n}), got "
                             f"[{idx.min()}, {idx.max()}]")
        if seg.size and (seg.min() < 0 or seg.max() >= batch_size
                         or np.any(np.diff(seg) < 0)):
            raise ValueError(f"table {t}: segment_ids must be sorted and lie in "
                             f"[0, {batch_size})")
    group_dims = sorted(set(dims))
    members = [[t for t in range(len(rows)) if dims[t] == d] for d in group_dims]
    if sum(rows) > np.iinfo(np.int32).max:
        raise ValueError(f"{sum(rows)} rows in all exceed the int32 index range")
    table_group, table_slot, table_offset = [0] * len(rows), [0] * len(rows), [0] * len(rows)
    g_idx, g_seg, g_rows = [], [], []
    for g, ts in enumerate(members):
        off, parts_i, parts_s = 0, [], []
        for k, t in enumerate(ts):
            table_group[t], table_slot[t], table_offset[t] = g, k, off
            parts_i.append(np.asarray(indices[t], dtype=np.int64) + off)
            parts_s.append(np.asarray(segment_ids[t], dtype=np.int64) * len(ts) + k)
            off += rows[t]
        i, sgm = np.concatenate(parts_i), np.concatenate(parts_s)
        order = np.argsort(sgm, kind="stable")  # sample-major; per table its own order
        g_idx.append(i[order].astype(np.int32))
        g_seg.append(sgm[order].astype(np.int32))
        g_rows.append(off)
    layout = FusedLayout(batch_size, tuple(group_dims), tuple(len(m) for m in members),
                         tuple(g_rows), tuple(rows), tuple(table_group), tuple(table_slot),
                         tuple(table_offset))
    return layout, g_idx, g_seg


def pack_weights(layout: FusedLayout, tables: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per-table weight arrays ``(rows_t, dim_t)`` -> the layout's group buffers (host)."""
    if len(tables) != layout.n_tables:
        raise ValueError(f"{len(tables)} tables, the layout has {layout.n_tables}")
    out = []
    for g in range(len(layout.group_dims)):
        ts = sorted((layout.table_slot[t], t) for t in range(layout.n_tables)
                    if layout.table_group[t] == g)
        out.append(np.concatenate([np.asarray(tables[t]) for _, t in ts], axis=0))
    return out


def unpack_weights(layout: FusedLayout, weights: Sequence[Any]) -> list[np.ndarray]:
    """The layout's group buffers -> per-table weight arrays, in table order (host)."""
    if len(weights) != len(layout.group_dims):
        raise ValueError(f"{len(weights)} buffers, the layout has {len(layout.group_dims)} groups")
    return [np.asarray(weights[g])[o:o + r] for g, o, r in
            zip(layout.table_group, layout.table_row_offset, layout.table_rows)]


def _pool(gathered: Sequence[jax.Array], segment_ids: Sequence[jax.Array],
          layout: FusedLayout) -> jax.Array:
    """Sum-pool each group's gathered rows per (sample, table) and concatenate."""
    B = layout.batch_size
    outs = []
    for rows, seg, n in zip(gathered, segment_ids, layout.group_slots):
        pooled = jax.ops.segment_sum(rows.astype(jnp.float32), seg, num_segments=B * n,
                                     indices_are_sorted=True)
        outs.append(pooled.reshape(B, n * rows.shape[1]).astype(rows.dtype))
    return jnp.concatenate(outs, axis=1)


def _gather(weights: Sequence[jax.Array], indices: Sequence[jax.Array]) -> list[jax.Array]:
    # Indices are validated on the host before they reach the device (`pack_lookups`).
    return [w.at[idx].get(mode="promise_in_bounds") for w, idx in zip(weights, indices)]


def _sgd_scatter(weights: Sequence[jax.Array], indices: Sequence[jax.Array],
                 grads: Sequence[jax.Array], lr: float) -> list[jax.Array]:
    return [w.at[idx].add((-lr * g.astype(jnp.float32)).astype(w.dtype),
                          mode="promise_in_bounds")
            for w, idx, g in zip(weights, indices, grads)]


def _check_layout(weights, indices, segment_ids, layout: FusedLayout) -> None:
    n = len(layout.group_dims)
    if not (len(weights) == len(indices) == len(segment_ids) == n):
        raise ValueError(f"the layout has {n} groups; got {len(weights)} weight buffers, "
                         f"{len(indices)} index arrays, {len(segment_ids)} segment-id arrays")
    for g, w in enumerate(weights):
        if w.ndim != 2 or w.shape[1] != layout.group_dims[g] or w.shape[0] < layout.group_rows[g]:
            raise ValueError(f"group {g}: weight buffer has shape {tuple(w.shape)}, the layout "
                             f"needs ({layout.group_rows[g]} or more, {layout.group_dims[g]})")


def embedding_bag_forward(weights: Sequence[jax.Array], indices: Sequence[jax.Array],
                          segment_ids: Sequence[jax.Array], *,
                          layout: FusedLayout) -> jax.Array:
    """Fused embedding-bag forward of one device's tables (sum pooling; DreamShard's
    operator, FBGEMM's table-batched layout).

    Args:
      weights: per group of ``layout``, the buffer ``(R, dim_g)`` with ``R >= R_g`` (rows
        past ``R_g`` are never touched); one dtype (float32 or float16).
      indices, segment_ids: per group, int32 ``(L_g,)`` from `pack_lookups` (row indices
        in the buffer; sorted sample-major segment ids).
      layout: the `FusedLayout` (static).

    Returns:
      ``(B, sum_t dim_t)`` in the weights' dtype: for each table, the sum of each sample's
      looked-up rows (accumulated in float32) in the columns ``layout.columns(t)``. A sample
      without lookups pools to zeros.
    """
    _check_layout(weights, indices, segment_ids, layout)
    return _pool(_gather(weights, indices), segment_ids, layout)


def embedding_bag_backward(weights: Sequence[jax.Array], indices: Sequence[jax.Array],
                           segment_ids: Sequence[jax.Array], upstream: jax.Array, *,
                           layout: FusedLayout, lr: float) -> list[jax.Array]:
    """Backward of `embedding_bag_forward` with an SGD update of the weights.

    The gradient with respect to the gathered rows is the transpose of the (linear) pooling
    applied to ``upstream`` (``jax.linear_transpose``: autodiff, no forward recomputation);
    it is scatter-added into the weights: ``W[idx[j]] -= lr * grad_rows[j]`` (repeated
    indices accumulate). Jit with ``donate_argnums=0`` to update in place.

    Args:
      weights, indices, segment_ids, layout: as in `embedding_bag_forward`.
      upstream: ``(B, sum_t dim_t)`` gradient of the loss with respect to the pooled output.
      lr: SGD step size.

    Returns:
      The updated weight buffers.
    """
    _check_layout(weights, indices, segment_ids, layout)
    shapes = [jax.ShapeDtypeStruct((idx.shape[0], w.shape[1]), w.dtype)
              for w, idx in zip(weights, indices)]
    transpose = jax.linear_transpose(lambda g: _pool(g, segment_ids, layout), shapes)
    (grads,) = transpose(upstream.astype(weights[0].dtype))
    return _sgd_scatter(weights, indices, grads, lr)


def embedding_bag_step(weights: Sequence[jax.Array], indices: Sequence[jax.Array],
                       segment_ids: Sequence[jax.Array], target: jax.Array, *,
                       layout: FusedLayout,
                       lr: float) -> tuple[jax.Array, jax.Array, list[jax.Array]]:
    """One fused embedding-bag training step: forward, backward and SGD update, one program.

    Forward as `embedding_bag_forward`. The loss stands in for the rest of the network:
    ``loss = 0.5 / B * ||pooled - target||^2`` (in float32). Its gradient with respect to
    the gathered rows comes from ``jax.value_and_grad`` through the pooling, and the update
    is the scatter-add of `embedding_bag_backward`. Because the update depends on the
    gathered rows, XLA orders the gather before the in-place scatter: jitted with
    ``donate_argnums=0`` the weights are updated in place, without a copy.

    Args:
      weights, indices, segment_ids, layout: as in `embedding_bag_forward`.
      target: ``(B, sum_t dim_t)`` regression target of the pooled output.
      lr: SGD step size.

    Returns:
      ``(pooled, loss, new_weights)``.
    """
    _check_layout(weights, indices, segment_ids, layout)
    B = layout.batch_size

    def loss_fn(gathered):
        pooled = _pool(gathered, segment_ids, layout)
        diff = pooled.astype(jnp.float32) - target.astype(jnp.float32)
        return 0.5 * jnp.sum(diff * diff) / B, pooled

    (loss, pooled), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        _gather(weights, indices))
    return pooled, loss, _sgd_scatter(weights, indices, grads, lr)


# ---------------------------------------------------------------------------------------
# Configuration, memory and communication models
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ProfilerConfig:
    """How to measure.

    Attributes:
      batch_size: samples per batch; None picks `GPU_BATCH_SIZE` (65536) on a GPU and
        `CPU_BATCH_SIZE` (2048) on a CPU.
      dtype: weight dtype, ``"float32"`` or ``"float16"`` (pooling accumulates in float32).
      warmup: untimed runs of each program before timing.
      runs: timed runs of each program; the median and spread are reported.
      lr: SGD step size of the update.
      memory_limit_bytes: memory the tables and the step's workspace may use; None uses the
        device's (`device_memory_limit`).
      link_gbps: all-to-all bandwidth per device in GB/s (1e9 bytes/s) of `alltoall_ms`;
        default the analytic model's ``CostModel.comm_bw`` (PCIe 5.0 x16 at 80 %), so that
        measured and analytic plan costs use one communication model.
      link_latency_us: fixed latency of one all-to-all, microseconds (default 0, as in the
        analytic model).
      time_step: also time the fused step (`embedding_bag_step`); a check that forward +
        backward is what one training step costs. Off saves one compilation per set.
    """

    batch_size: int | None = None
    dtype: str = "float32"
    warmup: int = 2
    runs: int = 7
    lr: float = 0.01
    memory_limit_bytes: int | None = None
    link_gbps: float = DEFAULT_COST_MODEL.comm_bw / 1e9
    link_latency_us: float = 0.0
    time_step: bool = False

    def __post_init__(self):
        if self.batch_size is not None and (isinstance(self.batch_size, bool)
                                            or int(self.batch_size) != self.batch_size
                                            or self.batch_size < 1):
            raise ValueError(f"ProfilerConfig.batch_size must be a positive int or None, got "
                             f"{self.batch_size!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"ProfilerConfig.dtype must be one of {sorted(DTYPES)}, got "
                             f"{self.dtype!r}")
        if int(self.warmup) < 0:
            raise ValueError(f"ProfilerConfig.warmup must be >= 0, got {self.warmup}")
        if int(self.runs) < 1:
            raise ValueError(f"ProfilerConfig.runs must be >= 1, got {self.runs}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"ProfilerConfig.lr must be positive and finite, got {self.lr}")
        if self.memory_limit_bytes is not None and self.memory_limit_bytes <= 0:
            raise ValueError(f"ProfilerConfig.memory_limit_bytes must be positive, got "
                             f"{self.memory_limit_bytes}")
        if not (math.isfinite(self.link_gbps) and self.link_gbps > 0):
            raise ValueError(f"ProfilerConfig.link_gbps must be positive, got {self.link_gbps}")
        if not (math.isfinite(self.link_latency_us) and self.link_latency_us >= 0):
            raise ValueError(f"ProfilerConfig.link_latency_us must be >= 0, got "
                             f"{self.link_latency_us}")

    @staticmethod
    def clock_for(device: jax.Device) -> str:
        """The timer: ``"wall"`` (``time.perf_counter`` around the synchronised call) on an
        accelerator; ``"process"`` (``time.process_time``: this process's CPU time, all
        threads) on a CPU, where the profiled work shares the cores with everything else
        running and wall time would measure the other processes too."""
        return "process" if device.platform == "cpu" else "wall"

    def batch_for(self, device: jax.Device) -> int:
        """The batch size used on ``device``."""
        if self.batch_size is not None:
            return int(self.batch_size)
        return GPU_BATCH_SIZE if device.platform == "gpu" else CPU_BATCH_SIZE

    @property
    def bytes_per_element(self) -> int:
        return int(np.dtype(DTYPES[self.dtype]).itemsize)


def default_device() -> jax.Device:
    """The device the profiler measures on: JAX's first GPU when it sees one, else the CPU."""
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    return gpus[0] if gpus else jax.devices("cpu")[0]


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def device_memory_limit(device: jax.Device | None = None) -> tuple[int, str]:
    """Bytes the profiler may allocate on ``device``, and where that number comes from.

    GPU (or any device reporting ``memory_stats()``): `GPU_MEMORY_FRACTION` of
    ``bytes_limit - bytes_in_use``. CPU: `CPU_MEMORY_FRACTION` of the available RAM
    (``MemAvailable``); pass ``ProfilerConfig.memory_limit_bytes`` to choose another limit.
    Weight buffers the profiler keeps between measurements (`release_buffers`) count as
    free: they are reused or given back before anything new is allocated.
    """
    device = device or default_device()
    held = held_bytes(device)
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # some backends do not implement it
        stats = None
    if stats and "bytes_limit" in stats:
        in_use = int(stats.get("bytes_in_use", 0)) - held
        free = int(stats["bytes_limit"]) - in_use
        return int(GPU_MEMORY_FRACTION * free), (
            f"{device.device_kind}: {GPU_MEMORY_FRACTION:.0%} of free memory "
            f"({stats['bytes_limit'] / 2**30:.2f} GiB limit, {in_use / 2**30:.2f} GiB in use "
            f"by others)")
    ram = _available_ram() + held
    return int(CPU_MEMORY_FRACTION * ram), (
        f"{device.device_kind}: {CPU_MEMORY_FRACTION:.0%} of available RAM "
        f"({ram / 2**30:.2f} GiB)")


# Weight buffers kept between measurements, per (device id, platform, dtype, dim): filling
# gigabytes of fresh memory costs seconds on a CPU (page faults), more than a measurement.
# A table set uses the first rows of its dims' buffers; the rest is never touched, so the
# accesses are those of buffers of exactly its size.
_BUFFERS: dict[tuple[int, str, str, int], jax.Array] = {}


def _buffer_key(device: jax.Device, dtype_name: str, dim: int) -> tuple[int, str, str, int]:
    return (device.id, device.platform, dtype_name, int(dim))


def held_bytes(device: jax.Device | None = None) -> int:
    """Bytes of weight buffers the profiler keeps on ``device`` (all devices when None)."""
    return sum(int(b.nbytes) for k, b in _BUFFERS.items()
               if device is None or k[:2] == (device.id, device.platform))


def release_buffers(device: jax.Device | None = None) -> int:
    """Free the weight buffers kept between measurements (on ``device``, or all).

    Returns the bytes released. Call it when the measurements are done and the memory is
    wanted for something else.
    """
    freed = 0
    for k in list(_BUFFERS):
        if device is None or k[:2] == (device.id, device.platform):
            b = _BUFFERS.pop(k)
            freed += int(b.nbytes)
            b.delete()
    return freed


def _take_buffers(layout: "FusedLayout", dtype_name: str, device: jax.Device, budget: int,
                  seed: int) -> list[jax.Array]:
    """Weight buffers for ``layout``: kept ones that are large enough, new ones otherwise.

    Kept buffers of other dims are freed when keeping them would exceed ``budget`` bytes;
    a kept buffer larger than needed is replaced by an exact one when the set would not
    fit otherwise. New buffers are filled on the device (`_fill`).
    """
    dtype = DTYPES[dtype_name]
    itemsize = np.dtype(dtype).itemsize
    keys = [_buffer_key(device, dtype_name, d) for d in layout.group_dims]
    mine = [_BUFFERS.get(k) for k in keys]
    usable = [b if b is not None and b.shape[0] >= r else None
              for b, r in zip(mine, layout.group_rows)]
    exact = [r * d * itemsize for r, d in zip(layout.group_rows, layout.group_dims)]
    sizes = [int(b.nbytes) if b is not None else e for b, e in zip(usable, exact)]
    if sum(sizes) > budget:            # oversized kept buffers: take exact ones instead
        usable, sizes = [None] * len(keys), exact
    for k, b, u in zip(keys, mine, usable):
        if b is not None and u is None:
            _BUFFERS.pop(k).delete()
    others = held_bytes(device) - sum(int(u.nbytes) for u in usable if u is not None)
    if others + sum(sizes) > budget:
        for k in [k for k in _BUFFERS if k[:2] == (device.id, device.platform)
                  and k not in keys]:
            _BUFFERS.pop(k).delete()
    new = [(g, (r, d)) for g, (u, r, d) in enumerate(zip(usable, layout.group_rows,
                                                          layout.group_dims)) if u is None]
    out = list(usable)
    if new:
        init = jax.jit(lambda sd: [_fill(sh, dtype, sd + jnp.uint32(g)) for g, sh in new])
        # the committed seed places the program, hence the buffers, on ``device``
        for (g, _), buf in zip(new, init(jax.device_put(np.uint32(seed % 2 ** 31), device))):
            out[g] = buf
    for k in keys:
        _BUFFERS.pop(k, None)          # owned by the caller until `_keep_buffers`
    return out


def _keep_buffers(layout: "FusedLayout", dtype_name: str, device: jax.Device,
                  weights: Sequence[jax.Array]) -> None:
    for d, w in zip(layout.group_dims, weights):
        if not w.is_deleted():
            _BUFFERS[_buffer_key(device, dtype_name, d)] = w


def memory_needed(rows: Sequence[int], dims: Sequence[int], lookups: Sequence[int],
                  batch_size: int, bytes_per_element: int) -> tuple[int, int]:
    """``(table_bytes, workspace_bytes)`` of one step on these tables.

    Tables: ``sum rows_t * dim_t * bytes_per_element`` (updated in place, so counted once).
    Workspace: indices and segment ids (8 bytes per lookup), the gathered rows and their
    gradients in float32 (``2 * 4 * L_t * dim_t``), and the pooled output and its upstream
    gradient (``2 * B * sum dim * bytes_per_element``).
    """
    rows = np.asarray(rows, dtype=np.int64)
    dims = np.asarray(dims, dtype=np.int64)
    lookups = np.asarray(lookups, dtype=np.int64)
    tables = int(np.sum(rows * dims) * bytes_per_element)
    work = int(np.sum(8 * lookups + 8 * lookups * dims)
               + 2 * int(batch_size) * int(dims.sum()) * bytes_per_element)
    return tables, work


def check_fits(rows: Sequence[int], dims: Sequence[int], lookups: Sequence[int],
               batch_size: int, bytes_per_element: int, limit_bytes: int,
               where: str = "the device") -> None:
    """Raise `TableTooLargeError`, with the sizes, when the step cannot fit ``limit_bytes``.

    Called before anything is allocated on the device.
    """
    tables, work = memory_needed(rows, dims, lookups, batch_size, bytes_per_element)
    if tables + work > limit_bytes:
        sizes = np.asarray(rows, dtype=np.int64) * np.asarray(dims, dtype=np.int64) \
            * bytes_per_element
        order = np.argsort(-sizes)[:5]
        largest = ", ".join(f"#{i}: {rows[i]} x {dims[i]} = {sizes[i] / 2**30:.3f} GiB"
                            for i in order)
        ws = (f"{work / 2**30:.3f} GiB of workspace (batch {batch_size})" if batch_size
              else "the workspace (not counted yet)")
        raise TableTooLargeError(
            f"{len(sizes)} tables need {tables / 2**30:.3f} GiB of weights + {ws} = "
            f"{(tables + work) / 2**30:.3f} GiB, more than the {limit_bytes / 2**30:.3f} GiB "
            f"allowed on {where}; largest tables: {largest}. Nothing was allocated.")


def alltoall_ms(dim_sum: Sequence[float] | np.ndarray, batch_size: int, *,
                link_gbps: float, link_latency_us: float,
                bytes_per_element: int) -> np.ndarray:
    """Modelled (not measured) all-to-all times of a plan's devices per training step, ms.

    The communication model of the analytic cost model (`cost.stage_costs`), with the
    profiler's batch and dtype. Model-parallel embeddings with a data-parallel rest of the
    model (DLRM): device d computes the pooled outputs ``(B, S_d)`` of its tables (``S_d``
    = the sum of their dims) for the whole batch; in the forward all-to-all it sends each
    of the other ``D - 1`` devices its ``B / D`` samples and receives its own ``B / D``
    samples of every other device's outputs; the backward all-to-all moves the gradients of
    the same slices the other way. With ``a`` bytes per element and a link of ``link_gbps``
    GB/s per direction (sends and receives overlap)::

        send_d = B (D-1)/D * S_d * a          recv_d = B/D * sum_{e != d} S_e * a
        comm_d = 2 * (max(send_d, recv_d) / (link_gbps * 1e9) * 1e3 + latency_ms)

    (forward + backward). The all-to-all is a collective: every device waits for the
    slowest, so a plan pays ``max_d comm_d`` (see `profile_plan`).

    Args:
      dim_sum: ``(D,)`` sum of the embedding dims of each device's tables.
      batch_size: B, the global batch.
      link_gbps, link_latency_us: the link (`ProfilerConfig`).
      bytes_per_element: of the pooled outputs (the weights' dtype).

    Returns:
      ``(D,)`` comm_d in ms; zeros for one device (nothing to exchange).
    """
    s = np.asarray(dim_sum, dtype=np.float64).reshape(-1)
    D = s.size
    if D < 1:
        raise ValueError("alltoall_ms needs at least one device")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise ValueError(f"dim sums must be finite and >= 0, got {s}")
    if D == 1:
        return np.zeros(1)
    send = alltoall_send_ms(s, batch_size, D, link_gbps=link_gbps,
                            bytes_per_element=bytes_per_element)
    recv = (send.sum() - send) / (D - 1)   # = 2 * B/D * sum_{e != d} S_e * a / link
    return np.maximum(send, recv) + 2.0 * link_latency_us * 1e-3


def alltoall_send_ms(dim_sum: float | np.ndarray, batch_size: int, num_devices: int, *,
                     link_gbps: float, bytes_per_element: int) -> np.ndarray:
    """The bandwidth term of a device's all-to-all sends, forward + backward, in ms:
    ``2 * B (D-1)/D * dim_sum * bytes_per_element / (link_gbps * 1e9) * 1e3``.

    A device's receive time is the sum of the others' send terms over ``D - 1``; see
    `alltoall_ms`. Modelled, not measured.
    """
    s = np.asarray(dim_sum, dtype=np.float64)
    D = int(num_devices)
    if D < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")
    return 2.0 * batch_size * (D - 1) / D * s * bytes_per_element / (link_gbps * 1e9) * 1e3


# ---------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------
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


def _summary(times_s: Sequence[float]) -> dict[str, Any]:
    t = np.asarray(times_s) * 1e3
    q25, q50, q75 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(q50), "iqr_ms": float(q75 - q25), "min_ms": float(t.min()),
            "max_ms": float(t.max()), "runs_ms": [float(v) for v in t]}


def _fill(shape: tuple[int, int], dtype, seed: jax.Array) -> jax.Array:
    """Hashed values in [-0.05, 0.05) written on the device at memory speed.

    A multiplicative hash of (row, column, seed): distinct pseudo-random values
    (``jax.random`` costs ~10x more on a CPU, and the timing does not depend on the values).
    """
    r = jax.lax.broadcasted_iota(jnp.uint32, shape, 0)
    c = jax.lax.broadcasted_iota(jnp.uint32, shape, 1)
    h = r * jnp.uint32(2654435761) + c * jnp.uint32(40503) + seed * jnp.uint32(97)
    h = h ^ (h >> 15)
    return ((h >> 8).astype(jnp.float32) * (0.1 / 2 ** 24) - 0.05).astype(dtype)


def time_step(rows: Sequence[int], dims: Sequence[int], indices: Sequence[np.ndarray],
              segment_ids: Sequence[np.ndarray], *, batch_size: int,
              config: ProfilerConfig = ProfilerConfig(),
              device: jax.Device | None = None, seed: int = 0) -> dict[str, Any]:
    """Time the forward and backward (and optionally the fused step) of given lookups.

    The lookups are packed (`pack_lookups`), the memory check runs (`check_fits`, before
    any allocation), the weight buffers are taken from those kept since earlier
    measurements when large enough, else allocated and filled on ``device`` (see
    `release_buffers`), and the programs are compiled ahead of time (compile seconds
    reported apart). Each timed run is
    ``call -> block_until_ready``, timed with ``time.perf_counter``; the programs alternate
    within a run so that slow drifts hit them alike. The backward (and step) programs
    update the weights in place (donated buffers), as training does.

    Args:
      rows, dims: per table.
      indices, segment_ids: host lookups per table (row indices; sorted sample ids).
      batch_size: B.
      config: dtype, warm-up and timed runs, lr, memory limit.
      device: where to run (default `default_device`).
      seed: fill of the weights and of the upstream gradient.

    Returns:
      A JSON-able dict: ``fwd`` / ``bwd`` (/ ``step``) summaries (``median_ms``, ``iqr_ms``,
      ``min_ms``, ``max_ms``, ``runs_ms``), ``compile_s``, ``alloc_s``, ``table_bytes``,
      ``workspace_bytes``, ``lookups`` (per table), ``device_kind``, ``platform``,
      ``batch_size``, ``dtype``, ``warmup``, ``runs``, ``profiler_version``.

    Raises:
      ValueError: malformed lookups; `TableTooLargeError` when the step does not fit.
    """
    device = device or default_device()
    layout, g_idx, g_seg = pack_lookups(rows, dims, indices, segment_ids, batch_size)
    rows = list(layout.table_rows)
    dims = [int(d) for d in dims]
    limit, source = ((config.memory_limit_bytes, "ProfilerConfig.memory_limit_bytes")
                     if config.memory_limit_bytes is not None
                     else device_memory_limit(device))
    lookups = [int(np.size(i)) for i in indices]
    check_fits(rows, dims, lookups, batch_size, config.bytes_per_element, limit,
               where=f"{device.device_kind} ({source})")
    table_bytes, work_bytes = memory_needed(rows, dims, lookups, batch_size,
                                            config.bytes_per_element)

    t0 = time.perf_counter()
    weights = _take_buffers(layout, config.dtype, device, limit - work_bytes, seed)
    try:
        return _time_programs(layout, weights, g_idx, g_seg, config, device, seed, t0,
                              table_bytes, work_bytes, lookups)
    finally:
        _keep_buffers(layout, config.dtype, device, weights)


def _time_programs(layout, weights, g_idx, g_seg, config, device, seed, t0, table_bytes,
                   work_bytes, lookups) -> dict[str, Any]:
    """The timing loop of `time_step`; updates ``weights`` (a list) in place."""
    dtype = DTYPES[config.dtype]
    batch_size = layout.batch_size
    idx_d = [jax.device_put(i, device) for i in g_idx]
    seg_d = [jax.device_put(s, device) for s in g_seg]
    # the upstream gradient (and the step's target), filled on the device like the weights
    upstream = jax.jit(lambda sd: _fill((batch_size, layout.output_dim), dtype, sd))(
        jax.device_put(np.uint32((seed + 7919) % 2 ** 31), device))
    jax.block_until_ready((weights, idx_d, seg_d, upstream))
    alloc_s = time.perf_counter() - t0

    lr = float(config.lr)
    t0 = time.perf_counter()
    fwd = jax.jit(lambda w, i, s: embedding_bag_forward(w, i, s, layout=layout)) \
        .lower(weights, idx_d, seg_d).compile()
    bwd = jax.jit(lambda w, i, s, g: embedding_bag_backward(w, i, s, g, layout=layout, lr=lr),
                  donate_argnums=0).lower(weights, idx_d, seg_d, upstream).compile()
    step = None
    if config.time_step:
        step = jax.jit(lambda w, i, s, g: embedding_bag_step(w, i, s, g, layout=layout, lr=lr),
                       donate_argnums=0).lower(weights, idx_d, seg_d, upstream).compile()
    compile_s = time.perf_counter() - t0

    clock_name = config.clock_for(device)
    clock = time.process_time if clock_name == "process" else time.perf_counter
    times: dict[str, list[float]] = {"fwd": [], "bwd": [], "step": []}
    for it in range(int(config.warmup) + int(config.runs)):
        timed = it >= config.warmup
        t = clock()
        out = fwd(weights, idx_d, seg_d)
        out.block_until_ready()
        dt = clock() - t
        del out
        if timed:
            times["fwd"].append(dt)
        t = clock()
        weights[:] = bwd(weights, idx_d, seg_d, upstream)
        jax.block_until_ready(weights)
        dt = clock() - t
        if timed:
            times["bwd"].append(dt)
        if step is not None:
            t = clock()
            out, _, new = step(weights, idx_d, seg_d, upstream)
            weights[:] = new
            jax.block_until_ready((out, weights))
            dt = clock() - t
            del out
            if timed:
                times["step"].append(dt)

    result: dict[str, Any] = {
        "fwd": _summary(times["fwd"]), "bwd": _summary(times["bwd"]),
        "compile_s": compile_s, "alloc_s": alloc_s, "table_bytes": table_bytes,
        "workspace_bytes": work_bytes, "lookups": lookups, "device_kind": device.device_kind,
        "platform": device.platform, "batch_size": int(batch_size), "dtype": config.dtype,
        "warmup": int(config.warmup), "runs": int(config.runs), "clock": clock_name,
        "profiler_version": PROFILER_VERSION}
    if step is not None:
        result["step"] = _summary(times["step"])
    return result


# ---------------------------------------------------------------------------------------
# Table sets and plans
# ---------------------------------------------------------------------------------------
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
        the all-to-all, which every device waits for (as `cost.plan_cost`).
      fwd_ms, bwd_ms: measured per device (0 for a device without tables).
      comm_ms: per device (`alltoall_ms`): **modelled, not measured**.
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
    available accelerator, plus modelled all-to-all communication (`alltoall_ms`; every
    device waits for the slowest exchange), maximum over devices.

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
    comm = alltoall_ms(dim_sum, batch, link_gbps=config.link_gbps,
                       link_latency_us=config.link_latency_us,
                       bytes_per_element=config.bytes_per_element)
    total = fwd + bwd + comm.max()
    note = (f"communication is modelled, not measured: all-to-all of pooled outputs, "
            f"batch {batch}, {n_dev} devices, {config.link_gbps:g} GB/s per device link, "
            f"{config.link_latency_us:g} us latency, forward and backward; every device "
            f"waits for the slowest send or receive")
    return PlanMeasurement(cost_ms=float(total.max()), fwd_ms=fwd, bwd_ms=bwd, comm_ms=comm,
                           device_ms=total, measured_on=device.device_kind, batch_size=batch,
                           dtype=config.dtype, cached=cached, comm_note=note)
