"""The measured operator: a fused embedding-bag forward / backward / training step in JAX.

DreamShard (Zha et al., NeurIPS 2022), NeuroShard (Zha et al., MLSys 2023) and AutoShard
(Zha et al., KDD 2022) measure the fused embedding-bag operator of the tables placed on one
GPU. For the tables ``W_1 .. W_k`` of one device and a batch of B samples (per table
``t``: ``L_t`` lookups ``idx_t`` with sorted sample ids ``seg_t``):

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
jitted function); the profiler (`timing.time_step`) compiles the forward
(`embedding_bag_forward`) and the backward (`embedding_bag_backward`) as two programs as
well, to time them separately.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FusedLayout", "embedding_bag_backward", "embedding_bag_forward",
           "embedding_bag_step", "pack_lookups", "pack_weights", "unpack_weights"]


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
