"""Memory of the profiler: what a measurement needs, what the device allows, and the
weight buffers kept between measurements.

Tables that do not fit the device are refused, with their sizes, before anything is
allocated (`check_fits`). Filling gigabytes of fresh memory costs seconds on a CPU (page
faults), more than a measurement, so weight buffers are kept between measurements, one per
(device, dtype, dim), reused by later table sets of the same dims and given back when a set
would not fit otherwise (`release_buffers` frees them all).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from .embedding_bag import FusedLayout

__all__ = ["CPU_MEMORY_FRACTION", "DTYPES", "GPU_MEMORY_FRACTION", "TableTooLargeError",
           "check_fits", "default_device", "device_memory_limit", "held_bytes",
           "memory_needed", "release_buffers", "take_arena", "keep_arena", "take_buffers",
           "keep_buffers", "fill_device"]

#: Weight dtypes the profiler measures (pooling accumulates in float32).
DTYPES = {"float32": jnp.float32, "float16": jnp.float16}
# Share of the CPU's available RAM that tables and workspace may use by default.
CPU_MEMORY_FRACTION = 0.5
# Share of the GPU's free memory that tables and workspace may use (XLA needs headroom).
GPU_MEMORY_FRACTION = 0.9


class TableTooLargeError(ValueError):
    """The tables (plus the step's workspace) do not fit the device's memory."""


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


def take_buffers(layout: "FusedLayout", dtype_name: str, device: jax.Device, budget: int,
                 seed: int) -> list[jax.Array]:
    """Weight buffers for ``layout``: kept ones that are large enough, new ones otherwise.

    Kept buffers of other dims are freed when keeping them would exceed ``budget`` bytes;
    a kept buffer larger than needed is replaced by an exact one when the set would not
    fit otherwise. New buffers are filled on the device (`fill_device`).
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
        init = jax.jit(lambda sd: [fill_device(sh, dtype, sd + jnp.uint32(g)) for g, sh in new])
        # the committed seed places the program, hence the buffers, on ``device``
        for (g, _), buf in zip(new, init(jax.device_put(np.uint32(seed % 2 ** 31), device))):
            out[g] = buf
    for k in keys:
        _BUFFERS.pop(k, None)          # owned by the caller until `keep_buffers`
    return out


#: `_BUFFERS` dim of the arena (the `programs` engine's one weight buffer per device, dtype).
_ARENA_DIM = 0
#: Growth of the arena when a set needs more than it holds: fewer regrowths (each one
#: refills the arena and recompiles the programs keyed by its size).
ARENA_GROWTH = 1.5


def take_arena(device: jax.Device, dtype_name: str, rows: int, budget: int, seed: int = 0,
               width: int = 128) -> jax.Array:
    """The ``(R, width)`` weight arena of ``device`` and ``dtype_name`` with ``R >= rows``:
    the kept one when it is large enough, else a new one of ``max(rows, ARENA_GROWTH x the
    kept one's rows)`` rows (within ``budget`` bytes; kept buffers of the fused engine are
    given back first when needed), filled on the device (`fill_device`).

    The caller owns the arena until `keep_arena` (it is donated to the programs).

    Raises:
      TableTooLargeError: ``rows`` rows do not fit ``budget`` bytes.
    """
    itemsize = np.dtype(DTYPES[dtype_name]).itemsize
    key = _buffer_key(device, dtype_name, _ARENA_DIM)
    kept = _BUFFERS.pop(key, None)
    if kept is not None and kept.shape[0] >= rows and kept.shape[1] == width:
        return kept
    row_bytes = width * itemsize
    if rows * row_bytes > budget:
        if kept is not None:
            _BUFFERS[key] = kept
        raise TableTooLargeError(
            f"the weight arena needs {rows * row_bytes / 2**30:.3f} GiB, more than the "
            f"{budget / 2**30:.3f} GiB allowed")
    grown = 0 if kept is None else int(ARENA_GROWTH * kept.shape[0])
    want = max(int(rows), grown)
    want = max(int(rows), min(want, budget // row_bytes))
    if kept is not None:
        kept.delete()
    others = held_bytes(device)
    if others + want * row_bytes > budget:
        release_buffers(device)
    init = jax.jit(lambda sd: fill_device((want, width), DTYPES[dtype_name], sd))
    return init(jax.device_put(np.uint32(seed % 2 ** 31), device))


def keep_arena(device: jax.Device, dtype_name: str, arena: jax.Array) -> None:
    """Keep ``arena`` for later measurements (after the programs that donated it)."""
    if not arena.is_deleted():
        _BUFFERS[_buffer_key(device, dtype_name, _ARENA_DIM)] = arena


def keep_buffers(layout: "FusedLayout", dtype_name: str, device: jax.Device,
                 weights: Sequence[jax.Array]) -> None:
    """Give ``weights`` (from `take_buffers` for ``layout``) back to the cache, so that the
    next plan of the same dtype on ``device`` reuses them instead of allocating; buffers
    already deleted are skipped."""
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


def fill_device(shape: tuple[int, int], dtype, seed: jax.Array) -> jax.Array:
    """Hashed values in [-0.05, 0.05) written on the device at memory speed.

    A multiplicative hash of (row, column, seed): distinct pseudo-random values
    (``jax.random`` costs ~10x more on a CPU, and the timing does not depend on the values).
    """
    r = jax.lax.broadcasted_iota(jnp.uint32, shape, 0)
    c = jax.lax.broadcasted_iota(jnp.uint32, shape, 1)
    h = r * jnp.uint32(2654435761) + c * jnp.uint32(40503) + seed * jnp.uint32(97)
    h = h ^ (h >> 15)
    return ((h >> 8).astype(jnp.float32) * (0.1 / 2 ** 24) - 0.05).astype(dtype)
