"""Timing of the fused embedding-bag step (`time_sets`: the shape-stable ``"arena"``
engine, several table sets in one session; `time_step`: the ``"fused"`` engine, one program
per set), and how to measure (`ProfilerConfig`).

Timings synchronise the device (``block_until_ready``), exclude compilation (reported
separately: programs are compiled ahead of time with ``lower().compile()``, the arena
engine's once per group shape, `programs`), and report the median and the spread of
several runs after warm-up runs. The clock is the wall clock on an accelerator; on a CPU it
is the process's CPU time (``time.process_time``), because there the measured program
shares the cores with every other process and the wall clock times them too (on a loaded
2-core machine, repeated wall-clock medians of one table set varied by ~20 %, CPU-time
medians by ~5 %). On a CPU, run single-threaded XLA for spin-free CPU times
(`CPU_XLA_FLAGS` in ``XLA_FLAGS`` before JAX starts; `bench.measured` does): with its
thread pool, idle worker threads spin and their CPU time is counted too.

The arena engine measures several sets in one session — the devices of a plan, or the
neighbours a local search scores at once — sharing the compiled programs and the weight
arena; each set's warm-up and timed runs follow each other, as the fused engine's do (its
looked-up rows stay in the caches from one run to the next, as a training loop's do).
On a shared CPU the machine's speed drifts over seconds with the other processes' work:
on the loaded 2-core machine of the benches, the same set measured a minute apart varied
by 11-22 % (batch 2048 to 512; `bench.profiler` reports it as the repeatability), more
than the spread of the runs within one measurement.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import jax
import numpy as np

from ..cost import DEFAULT_COST_MODEL
from .embedding_bag import (embedding_bag_backward, embedding_bag_forward, embedding_bag_step,
                            pack_lookups)
from .memory import (DTYPES, TableTooLargeError, fill_device, keep_buffers, take_buffers,
                     check_fits, default_device, device_memory_limit, memory_needed)

__all__ = ["CPU_BATCH_SIZE", "CPU_XLA_FLAGS", "ENGINES", "FUSED_VERSION", "GPU_BATCH_SIZE",
           "PROFILER_VERSION", "ProfilerConfig", "time_sets", "time_step"]

# Bump when the measured operator or the timing protocol changes: old cache rows then no
# longer match (the version is part of the cache key). The fused engine keeps version 2,
# the one its rows were stored under.
PROFILER_VERSION = 3
FUSED_VERSION = 2
#: The measuring engines: ``"arena"`` (`programs`, `time_sets`) and ``"fused"``
#: (`embedding_bag`, one compiled program per set, `time_step`).
ENGINES = ("arena", "fused")
#: ``XLA_FLAGS`` for spin-free CPU times: one XLA thread.
CPU_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

GPU_BATCH_SIZE = 65536
CPU_BATCH_SIZE = 2048


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
      link_gbps: all-to-all bandwidth per device in GB/s (1e9 bytes/s) of the communication
        model (`comm.alltoall_ms`); default the analytic model's
        ``AnalyticCostModel.comm_bw`` (PCIe 5.0 x16 at 80 %), so that
        measured and analytic plan costs use one communication model.
      link_latency_us: fixed latency of one all-to-all, microseconds (default 0, as in the
        analytic model).
      time_step: also time the fused step (`embedding_bag_step`, fused engine only); a
        check that forward + backward is what one training step costs.
      engine: ``"arena"`` (default: shape-stable programs over one weight arena, sets
        measured in one session, `time_sets`) or ``"fused"`` (one program per set,
        `time_step`; version `FUSED_VERSION` of the measurements).
      chunk: lookups per loop iteration of the arena programs; None picks
        `programs.CPU_CHUNK` or `programs.GPU_CHUNK`.
      arena_bytes: the arena engine's weight arena: None holds each set whole (the arena
        grows as sets need; a set over the memory limit raises `TableTooLargeError`); a
        number of bytes fixes the arena at that size, allocated and filled once, and a
        larger set wraps around it (`programs`; the record's ``wrapped``).
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
    engine: str = "arena"
    chunk: int | None = None
    arena_bytes: int | None = None

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"ProfilerConfig.engine must be one of {ENGINES}, got "
                             f"{self.engine!r}")
        if self.time_step and self.engine != "fused":
            raise ValueError("ProfilerConfig.time_step times the fused engine's step: pass "
                             "engine='fused' with it")
        if self.chunk is not None and (isinstance(self.chunk, bool)
                                       or int(self.chunk) != self.chunk or self.chunk < 1):
            raise ValueError(f"ProfilerConfig.chunk must be a positive int or None, got "
                             f"{self.chunk!r}")
        if self.arena_bytes is not None and self.arena_bytes < 0:
            raise ValueError(f"ProfilerConfig.arena_bytes must be >= 0, got "
                             f"{self.arena_bytes}")
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

    def chunk_for(self, device: jax.Device) -> int:
        """Lookups per loop iteration of the arena programs on ``device``."""
        from .programs import CPU_CHUNK, GPU_CHUNK
        if self.chunk is not None:
            return int(self.chunk)
        return GPU_CHUNK if device.platform == "gpu" else CPU_CHUNK

    @property
    def version(self) -> int:
        """The profiler version of this engine's measurements (part of the cache key)."""
        return PROFILER_VERSION if self.engine == "arena" else FUSED_VERSION

    def setting(self, device: jax.Device) -> str:
        """The timing protocol as a string (part of the cache key): engine, warm-up and
        timed runs, chunk, and the fixed arena's bytes (its size decides which sets wrap);
        ``""`` for the fused engine (whose rows predate it)."""
        if self.engine == "fused":
            return ""
        arena = f"/a{int(self.arena_bytes)}" if self.arena_bytes else ""
        return (f"arena/w{int(self.warmup)}/r{int(self.runs)}/c{self.chunk_for(device)}"
                + arena)

    @property
    def bytes_per_element(self) -> int:
        return int(np.dtype(DTYPES[self.dtype]).itemsize)



def _summary(times_s: Sequence[float]) -> dict[str, Any]:
    t = np.asarray(times_s) * 1e3
    q25, q50, q75 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(q50), "iqr_ms": float(q75 - q25), "min_ms": float(t.min()),
            "max_ms": float(t.max()), "runs_ms": [float(v) for v in t]}



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
    weights = take_buffers(layout, config.dtype, device, limit - work_bytes, seed)
    try:
        return _time_programs(layout, weights, g_idx, g_seg, config, device, seed, t0,
                              table_bytes, work_bytes, lookups)
    finally:
        keep_buffers(layout, config.dtype, device, weights)


def _time_programs(layout, weights, g_idx, g_seg, config, device, seed, t0, table_bytes,
                   work_bytes, lookups) -> dict[str, Any]:
    """The timing loop of `time_step`; updates ``weights`` (a list) in place."""
    dtype = DTYPES[config.dtype]
    batch_size = layout.batch_size
    idx_d = [jax.device_put(i, device) for i in g_idx]
    seg_d = [jax.device_put(s, device) for s in g_seg]
    # the upstream gradient (and the step's target), filled on the device like the weights
    upstream = jax.jit(lambda sd: fill_device((batch_size, layout.output_dim), dtype, sd))(
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
        "profiler_version": FUSED_VERSION, "engine": "fused"}
    if step is not None:
        result["step"] = _summary(times["step"])
    return result


def time_sets(sets: Sequence[tuple[Sequence[int], Sequence[int], Sequence[np.ndarray],
                                   Sequence[np.ndarray]]], *, batch_size: int,
              config: ProfilerConfig = ProfilerConfig(), device: jax.Device | None = None,
              seed: int = 0) -> list[dict[str, Any]]:
    """Time the forward and backward of several table sets in one session, with the arena
    engine (`programs`).

    Every set's lookups are packed (`programs.pack_set`), each set is checked against the
    memory limit (`check_fits`, before any allocation; not with a fixed-size arena, which
    any set fits by wrapping), the weight arena is taken (kept since earlier sessions,
    `memory.take_arena`) and the programs are taken from those compiled before, compiling
    only new size classes. Then set after set: ``warmup + runs`` runs of its forward
    program (synchronised), then its backward program (updating the arena in place). All
    sets share the arena's first rows (the values do not matter to the timing).

    Args:
      sets: per set ``(rows, dims, indices, segment_ids)``: per table its rows and dim and
        one batch of lookups (row indices; sorted sample ids), as `time_step`.
      batch_size: B. config: warm-up and timed runs, dtype, lr, chunk, memory limit.
      device: where to run (default `default_device`). seed: fill of the arena.

    Returns:
      Per set, a JSON-able dict: ``fwd`` / ``bwd`` / ``compute`` (fwd + bwd of each run)
      summaries (``median_ms``, ``iqr_ms``, ``min_ms``, ``max_ms``, ``runs_ms``),
      ``compile_s`` and ``programs_compiled`` (of the session), ``alloc_s``,
      ``session_sets``, ``table_bytes``, ``workspace_bytes``, ``lookups`` (per table),
      ``padded_lookups`` (processed padding), ``device_kind``, ``platform``,
      ``batch_size``, ``dtype``, ``warmup``, ``runs``, ``clock``, ``engine``, ``chunk``,
      ``arena_bytes``, ``wrapped`` (the set's rows over the arena's, 1.0 when it fits),
      ``profiler_version``.

    Raises:
      ValueError: no sets, malformed lookups, a dim that does not divide 128;
        `TableTooLargeError` when a set, or the session's arena and workspace, do not fit.
    """
    from .memory import keep_arena, take_arena
    from .programs import (compile_count, out_capacity, pack_set, set_programs,
                           upstream_for)
    if not sets:
        raise ValueError("time_sets needs at least one table set")
    device = device or default_device()
    chunk = config.chunk_for(device)
    bpe = config.bytes_per_element
    limit, source = ((config.memory_limit_bytes, "ProfilerConfig.memory_limit_bytes")
                     if config.memory_limit_bytes is not None
                     else device_memory_limit(device))
    where = f"{device.device_kind} ({source})"
    fixed = None if config.arena_bytes is None else max(1, config.arena_bytes // (128 * bpe))
    packed, info = [], []
    for rows, dims, indices, segment_ids in sets:
        lookups = [int(np.size(i)) for i in indices]
        if fixed is None:
            check_fits(rows, dims, lookups, batch_size, bpe, limit, where=where)
        packed.append(pack_set(rows, dims, indices, segment_ids, batch_size, chunk, fixed))
        info.append((memory_needed(rows, dims, lookups, batch_size, bpe), lookups))
    # resident: lookups (16 B per padded lookup), the outputs and upstream gradients
    work = sum(16 * p.index.shape[0] + 2 * out_capacity(p) * 128 * max(bpe, 4)
               for p in packed)
    need = fixed or max(p.arena_rows for p in packed)
    t0 = time.perf_counter()
    try:
        arena = [take_arena(device, config.dtype, need, limit - work, seed)]
    except TableTooLargeError as e:
        raise TableTooLargeError(f"{e} on {where} (with {work / 2**30:.3f} GiB of lookups "
                                 f"and outputs); pass a smaller ProfilerConfig.arena_bytes"
                                 ) from None
    try:
        rows_a = int(arena[0].shape[0])
        arena_bytes = int(arena[0].nbytes)
        args = [(jax.device_put(p.index, device), jax.device_put(p.out, device),
                 upstream_for(device, config.dtype, out_capacity(p), seed),
                 jax.device_put(p.loops, device)) for p in packed]
        jax.block_until_ready((arena[0], args))
        alloc_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), compile_count()
        progs = [set_programs(device, config.dtype, rows_a, p, chunk, float(config.lr))
                 for p in packed]
        compile_s, compiled = time.perf_counter() - t0, compile_count() - c0
        times = _runs(progs, args, arena, config, device)
    finally:
        keep_arena(device, config.dtype, arena[0])
    out = []
    for k, ((table_bytes, work_bytes), lookups) in enumerate(info):
        fwd, bwd = times[k]
        out.append({
            "fwd": _summary(fwd), "bwd": _summary(bwd),
            "compute": _summary(np.add(fwd, bwd)), "compile_s": compile_s,
            "programs_compiled": compiled, "alloc_s": alloc_s, "session_sets": len(sets),
            "table_bytes": table_bytes, "workspace_bytes": work_bytes, "lookups": lookups,
            "padded_lookups": int(packed[k].padded), "device_kind": device.device_kind,
            "platform": device.platform, "batch_size": int(batch_size),
            "dtype": config.dtype, "warmup": int(config.warmup), "runs": int(config.runs),
            "clock": config.clock_for(device), "engine": "arena", "chunk": chunk,
            "arena_bytes": int(arena_bytes), "wrapped": packed[k].wrapped,
            "profiler_version": PROFILER_VERSION})
    return out


def _runs(progs, args, arena: list, config: ProfilerConfig,
          device: jax.Device) -> list[tuple[list[float], list[float]]]:
    """The timing runs of `time_sets`, set after set; ``arena[0]`` is replaced by each
    backward."""
    clock = time.process_time if config.clock_for(device) == "process" else time.perf_counter
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in progs]
    for k, ((fwd, bwd), (i, o, u, lp)) in enumerate(zip(progs, args)):
        for it in range(int(config.warmup) + int(config.runs)):
            t = clock()
            fwd(arena[0], i, o, lp).block_until_ready()
            tf = clock() - t
            t = clock()
            arena[0] = bwd(arena[0], i, o, u, lp)
            arena[0].block_until_ready()
            tb = clock() - t
            if it >= config.warmup:
                times[k][0].append(tf)
                times[k][1].append(tb)
    return times
