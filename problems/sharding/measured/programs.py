"""Shape-stable programs of the fused embedding bag: compiled once, reused across table sets
and plans (the profiler's ``"arena"`` engine; `timing.time_sets`).

The fused operator of `embedding_bag` compiles one program per table set: its shapes (rows,
lookups and tables of each dim group) change with every set, so each measurement paid a
compilation (~1.4 s on a CPU) and the allocation of its own weight buffers. Here, as in
FBGEMM's table-batched embeddings (one weight buffer, tables at offsets, one kernel for all
tables):

* **one weight arena**: a set's tables sit at offsets in one ``(R, 128)`` buffer per
  (device, dtype), kept between measurements (`memory.take_arena`) and filled once: a table
  of dim d takes ``ceil(rows * d / 128)`` arena rows, its row i the d elements from element
  ``base + i * d`` (dims divide 128, so a row never straddles two arena rows). An arena of
  fixed size (``ProfilerConfig.arena_bytes``) holds sets larger than itself by wrapping:
  arena row ``r`` of the set is row ``r mod R`` (tables then share memory; a lookup into a
  table far larger than the caches costs a memory access either way, so the timing moves
  little, and each record says how much wrapped);
* **one output arena**: the pooled outputs of a dim group (B samples x its n tables, sample
  major: segment ``b * n + k`` as in `embedding_bag.FusedLayout`) fill ``B * n * d``
  elements of a zeroed ``(O, 128)`` buffer, group after group;
* **one program pair for all sets of similar size**: the forward (per dim present, gather
  its lookups' rows and sum-pool them into the output arena) and the backward (the
  transpose of the pooling — a gather of the upstream gradient — scatter-added into the
  weights, SGD, in place) loop over fixed-size chunks of lookups, per possible dim (`DIMS`)
  a loop over chunks of ``chunk`` lookups and one over the remainder in chunks of
  ``chunk // 8`` (`tail_chunk`), each with a *dynamic* start and trip count (0 for an
  absent dim). The lookups travel in one array per set, padded to a power of two; the
  padding of a group's last chunk (fewer than ``chunk // 8`` lookups) gathers the group's
  first row and pools into a dropped output row (out of range, ``mode="drop"``), so the
  result is exactly the unpadded operator's. A compiled pair depends only on (weight arena
  rows, lookup capacity, output rows, chunk, dtype, lr): `program_key`; `compile_count`
  counts them.

A set's forward (backward) is then one program run: the work of
`embedding_bag.embedding_bag_forward` (backward) with the gathered rows pooled chunk by
chunk (never materialised whole, as FBGEMM's kernels do) and without the final
concatenation of the pooled outputs.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .memory import DTYPES, fill_device

__all__ = ["ARENA_WIDTH", "CPU_CHUNK", "DIMS", "GPU_CHUNK", "SetLookups", "arena_layout",
           "capacity", "compile_count", "out_capacity", "pack_set", "program_key",
           "set_programs", "tail_chunk", "upstream_for"]

#: Elements per arena row; every table dim divides it.
ARENA_WIDTH = 128
#: The dims the programs loop over (every divisor of `ARENA_WIDTH`).
DIMS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Lookups per loop iteration of the programs.
CPU_CHUNK = 2048
GPU_CHUNK = 1 << 18

_PROGRAMS: dict[tuple, tuple] = {}
_UPSTREAM: dict[tuple, jax.Array] = {}
_COUNT = {"compiled": 0}


def compile_count() -> int:
    """How many program pairs (forward + backward) this process has compiled."""
    return _COUNT["compiled"]


def tail_chunk(chunk: int) -> int:
    """Lookups per iteration of the loop over a group's remainder: ``chunk // 8``."""
    return max(1, int(chunk) // 8)


def capacity(n: int, least: int = 1) -> int:
    """The next power of two of ``n``, at least ``least``: padded sizes shared by sets of
    similar size, so that few programs serve them all."""
    n = max(int(n), int(least), 1)
    return 1 << (n - 1).bit_length()


@dataclasses.dataclass(frozen=True)
class SetLookups:
    """One table set, packed for the programs.

    Attributes:
      index: ``(L_cap, 2)`` int32 (weight arena row, column of the looked-up row's first
        element); padding points at its group's first table row.
      out: ``(L_cap, 2)`` int32 (output arena row, column) each lookup pools into;
        padding points past the output arena (dropped).
      loops: ``(len(DIMS), 4)`` int32: per dim, (first lookup of its chunks, number of
        chunks, first lookup of its tail chunks, number of tail chunks).
      arena_rows: weight arena rows the set needs (at most ``wrap_rows``); wrapped: the
        set's rows over the arena's when it wraps, else 1.0; out_rows: output arena rows
        it fills.
      n_lookups: real lookups; padded: padding processed (in the groups' last chunks).
      group_dims, group_tables, group_out: per group (dims ascending): dim, tables, first
        output element.
    """

    index: np.ndarray
    out: np.ndarray
    loops: np.ndarray
    arena_rows: int
    wrapped: float
    out_rows: int
    n_lookups: int
    padded: int
    group_dims: tuple
    group_tables: tuple
    group_out: tuple


def arena_layout(rows: Sequence[int], dims: Sequence[int]) -> tuple[np.ndarray, int]:
    """``(base element of each table (T,) int64, arena rows needed)``: tables grouped by
    dim (ascending), in the given order within a group, each starting on an arena row.

    Raises:
      ValueError: a dim that does not divide 128.
    """
    rows = np.asarray(rows, np.int64)
    dims = np.asarray(dims, np.int64)
    if np.any(dims < 1) or np.any(ARENA_WIDTH % dims):
        raise ValueError(f"every table dim must divide {ARENA_WIDTH}, got {sorted(set(dims))}")
    base = np.zeros(len(rows), np.int64)
    at = 0
    for d in sorted(set(dims.tolist())):
        for t in np.flatnonzero(dims == d):
            base[t] = at * ARENA_WIDTH
            at += -(-int(rows[t] * d) // ARENA_WIDTH)
    return base, int(at)


def pack_set(rows: Sequence[int], dims: Sequence[int], indices: Sequence[np.ndarray],
             segment_ids: Sequence[np.ndarray], batch_size: int, chunk: int,
             wrap_rows: int | None = None) -> SetLookups:
    """Pack a table set's lookups for the programs.

    Args:
      rows, dims: per table; indices, segment_ids: per table, row indices in
        ``[0, rows_t)`` and sorted sample ids in ``[0, batch_size)`` (validated and ordered
        by `embedding_bag.pack_lookups`: groups by dim, sample-major segments).
      batch_size: B; chunk: lookups per loop iteration.
      wrap_rows: the rows of a fixed-size arena: a set needing more wraps around it
        (see the module docstring); None: the arena holds the set whole.

    Raises:
      ValueError: as `embedding_bag.pack_lookups`, or a dim that does not divide 128.
    """
    from .embedding_bag import pack_lookups
    layout, g_idx, g_seg = pack_lookups(rows, dims, indices, segment_ids, batch_size)
    base, need = arena_layout(layout.table_rows, dims)
    chunk, tail = int(chunk), tail_chunk(chunk)
    loops = np.zeros((len(DIMS), 4), np.int32)
    spans, out_base, at, out_at = [], [], 0, 0
    for g, d in enumerate(layout.group_dims):
        n = int(g_idx[g].size)
        main = n // chunk
        rest = -(-(n - main * chunk) // tail)
        loops[DIMS.index(d)] = (at, main, at + main * chunk, rest)
        spans.append((at, n, main * chunk + rest * tail))
        out_base.append(out_at)
        at += main * chunk + rest * tail
        out_at += -(-batch_size * layout.group_slots[g] * d // ARENA_WIDTH) * ARENA_WIDTH
    cap = capacity(at, chunk)
    out_rows = out_at // ARENA_WIDTH
    wrap = int(wrap_rows) if wrap_rows is not None and need > int(wrap_rows) else None
    index = np.zeros((cap, 2), np.int32)
    out = np.zeros((cap, 2), np.int32)
    out[:, 0] = np.iinfo(np.int32).max             # padding: dropped
    for g, d in enumerate(layout.group_dims):
        members = sorted((layout.table_slot[t], t) for t in range(layout.n_tables)
                         if layout.table_group[t] == g)
        offsets = np.array([layout.table_row_offset[t] for _, t in members], np.int64)
        bases = np.array([base[t] for _, t in members], np.int64)
        r = g_idx[g].astype(np.int64)       # a row of the group buffer: of table k below
        k = np.searchsorted(offsets, r, side="right") - 1
        elem = bases[k] + (r - offsets[k]) * d
        lo, n, span = spans[g]
        row, index[lo:lo + n, 1] = np.divmod(elem, ARENA_WIDTH)
        index[lo:lo + n, 0] = row if wrap is None else row % wrap
        first = bases[0] // ARENA_WIDTH
        index[lo + n:lo + span, 0] = first if wrap is None else first % wrap
        oe = out_base[g] + g_seg[g].astype(np.int64) * d
        out[lo:lo + n, 0], out[lo:lo + n, 1] = np.divmod(oe, ARENA_WIDTH)
    n_real = sum(int(i.size) for i in g_idx)
    return SetLookups(index, out, loops, need if wrap is None else wrap,
                      1.0 if wrap is None else need / wrap, out_rows, n_real, at - n_real,
                      tuple(int(d) for d in layout.group_dims),
                      tuple(int(n) for n in layout.group_slots), tuple(out_base))


def _dn_gather():
    return lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,),
                                      start_index_map=(0, 1))


def _dn_scatter():
    return lax.ScatterDimensionNumbers(update_window_dims=(1,), inserted_window_dims=(0,),
                                       scatter_dims_to_operand_dims=(0, 1))


def _loops(loops, j, chunk):
    """The (start, count, size) of dim j's two chunk loops."""
    return ((loops[j, 0], loops[j, 1], chunk), (loops[j, 2], loops[j, 3], tail_chunk(chunk)))


def _forward(arena, index, out_index, loops, *, out_rows, chunk):
    out = jnp.zeros((out_rows, ARENA_WIDTH), jnp.float32)
    for j, d in enumerate(DIMS):
        for start, count, size in _loops(loops, j, chunk):
            def body(c, acc, d=d, start=start, size=size):
                i = lax.dynamic_slice_in_dim(index, start + c * size, size)
                o = lax.dynamic_slice_in_dim(out_index, start + c * size, size)
                rows = lax.gather(arena, i, _dn_gather(), (1, d),
                                  mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
                return lax.scatter_add(acc, o, rows.astype(jnp.float32), _dn_scatter(),
                                       indices_are_sorted=True,
                                       mode=lax.GatherScatterMode.FILL_OR_DROP)
            out = lax.fori_loop(0, count, body, out)
    return out.astype(arena.dtype)


def _backward(arena, index, out_index, upstream, loops, *, chunk, lr):
    for j, d in enumerate(DIMS):
        for start, count, size in _loops(loops, j, chunk):
            def body(c, w, d=d, start=start, size=size):
                i = lax.dynamic_slice_in_dim(index, start + c * size, size)
                o = lax.dynamic_slice_in_dim(out_index, start + c * size, size)
                grad = lax.gather(upstream, o, _dn_gather(), (1, d), indices_are_sorted=True,
                                  mode=lax.GatherScatterMode.FILL_OR_DROP, fill_value=0)
                upd = (-lr * grad.astype(jnp.float32)).astype(w.dtype)
                return lax.scatter_add(w, i, upd, _dn_scatter(),
                                       mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
            arena = lax.fori_loop(0, count, body, arena)
    return arena


def program_key(device: jax.Device, dtype: str, arena_rows: int, lookups: SetLookups,
                out_rows: int, chunk: int, lr: float) -> tuple:
    """What a compiled program pair depends on (see the module docstring)."""
    return (device.platform, device.id, dtype, int(arena_rows), int(lookups.index.shape[0]),
            int(out_rows), int(chunk), float(lr))


def out_capacity(lookups: SetLookups) -> int:
    """Output arena rows of the programs that serve ``lookups`` (a power of two)."""
    return capacity(lookups.out_rows)


def set_programs(device: jax.Device, dtype: str, arena_rows: int, lookups: SetLookups,
                 chunk: int, lr: float):
    """The compiled ``(forward, backward)`` serving ``lookups``, compiled on first use and
    kept.

    ``forward(arena, index, out, loops) -> (O, 128)`` the output arena (pooled outputs of
    each group, sample major); ``backward(arena, index, out, upstream, loops) -> arena``
    (the arena donated and updated in place)."""
    o_rows = out_capacity(lookups)
    key = program_key(device, dtype, arena_rows, lookups, o_rows, chunk, lr)
    progs = _PROGRAMS.get(key)
    if progs is None:
        sds = functools.partial(jax.ShapeDtypeStruct,
                                sharding=jax.sharding.SingleDeviceSharding(device))
        a = sds((int(arena_rows), ARENA_WIDTH), DTYPES[dtype])
        i = sds(lookups.index.shape, jnp.int32)
        lp = sds(lookups.loops.shape, jnp.int32)
        u = sds((o_rows, ARENA_WIDTH), DTYPES[dtype])
        fwd = jax.jit(functools.partial(_forward, out_rows=o_rows, chunk=int(chunk))) \
            .lower(a, i, i, lp).compile()
        bwd = jax.jit(functools.partial(_backward, chunk=int(chunk), lr=float(lr)),
                      donate_argnums=0).lower(a, i, i, u, lp).compile()
        progs = _PROGRAMS[key] = (fwd, bwd)
        _COUNT["compiled"] += 1
    return progs


def upstream_for(device: jax.Device, dtype: str, out_rows: int, seed: int = 0) -> jax.Array:
    """The upstream gradient ``(out_rows, 128)``, filled on the device once (`memory.fill_device`)
    and kept."""
    key = (device.platform, device.id, dtype, int(out_rows))
    u = _UPSTREAM.get(key)
    if u is None:
        u = _UPSTREAM[key] = jax.jit(lambda sd: fill_device((int(out_rows), ARENA_WIDTH),
                                                      DTYPES[dtype], sd))(
            jax.device_put(np.uint32((seed + 7919) % 2 ** 31), device))
    return u
