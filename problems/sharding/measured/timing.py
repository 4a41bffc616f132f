"""Timing of the fused embedding-bag step on one device (`time_step`), and how to measure
(`ProfilerConfig`).

Timings synchronise the device (``block_until_ready``), exclude compilation (reported
separately: the programs are compiled ahead of time with ``lower().compile()``), and report
the median and the spread of several runs after warm-up runs. The clock is the wall clock
on an accelerator; on a CPU it is the process's CPU time (``time.process_time``), because
there the measured program shares the cores with every other process and the wall clock
times them too (on a loaded 2-core machine, repeated wall-clock medians of one table set
varied by ~20 %, CPU-time medians by ~5 %).
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
from .memory import (DTYPES, _fill, _keep_buffers, _take_buffers, check_fits,
                     default_device, device_memory_limit, memory_needed)

__all__ = ["CPU_BATCH_SIZE", "GPU_BATCH_SIZE", "PROFILER_VERSION", "ProfilerConfig",
           "time_step"]

# Bump when the measured operator or the timing protocol changes: old cache rows then no
# longer match (the version is part of the cache key).
PROFILER_VERSION = 2

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
