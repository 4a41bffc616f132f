"""The all-to-all communication model of table-wise sharding, written once for every cost
model (the analytic one, the measured one, the learned one).

Model-parallel embeddings with a data-parallel rest of the model (DLRM; TorchRec's and
DreamShard's table-wise sharding, Zha et al., NeurIPS 2022): device d computes the pooled
outputs ``(B, S_d)`` of its tables for the whole global batch B (``S_d`` = the sum of their
embedding dims). In the forward all-to-all it sends each of the other ``D - 1`` devices
their ``B / D`` samples and receives its own ``B / D`` samples of every other device's
outputs; the backward all-to-all moves the gradients of the same slices the other way.
With ``a`` bytes per element and a link of bandwidth ``bw`` bytes/s per direction (sends
and receives overlap on a full-duplex link)::

    send_d = B (D-1)/D · S_d · a                       (`pooled_bytes`)
    recv_d = B/D · Σ_{e≠d} S_e · a = (Σ_e send_e - send_d) / (D - 1)
    comm_d = 2 · max(send_d, recv_d) / bw + 2 · latency     (forward + backward)

The exchange is a collective: every device waits for the slowest member, so a plan pays
``max_d comm_d``. `alltoall_ms` returns both sides, ``(2, D)`` = (send, receive) time of
each device, so that a smooth maximum over them stays differentiable (`ShardingCostModel`);
``comm_d`` is the maximum over the first axis.

Communication is *modelled, not measured*: one GPU cannot time an exchange between devices.

>>> import numpy as np
>>> alltoall_ms(np.array([3.0, 1.0, 2.0]))    # send and receive side of 3 devices, ms
array([[3. , 1. , 2. ],
       [1.5, 2.5, 2. ]])
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["alltoall_ms", "exchange_ms", "pooled_bytes"]


def pooled_bytes(dim: np.ndarray | float, global_batch: float, num_devices: int,
                 bytes_per_element: float) -> np.ndarray:
    """Bytes a device sends in one all-to-all for pooled outputs of total width ``dim``:
    ``B (D-1)/D · dim · a`` (per table when ``dim`` is a table's dim, per device when it is
    the sum of the dims of the device's tables).

    Raises:
      ValueError: ``num_devices`` < 1.
    """
    D = int(num_devices)
    if D < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices}")
    return (float(global_batch) * (D - 1) / D * np.asarray(dim, np.float64)
            * float(bytes_per_element))


def _xp(a):
    """numpy for host values (float64 kept), jax.numpy for JAX arrays and tracers."""
    return np if isinstance(a, (np.ndarray, np.generic, float, int)) else jnp


def exchange_ms(nbytes: jax.Array | np.ndarray | float, bandwidth: float) -> jax.Array:
    """Forward + backward transfer time in ms of ``nbytes`` each way over a link of
    ``bandwidth`` bytes/s: ``2 · nbytes / bandwidth · 1e3`` (numpy in, numpy out; JAX in,
    JAX out)."""
    return 2.0 * _xp(nbytes).asarray(nbytes) / float(bandwidth) * 1e3


def alltoall_ms(send_ms: jax.Array | np.ndarray, *, total_ms: jax.Array | float | None = None,
                latency_us: float = 0.0) -> jax.Array:
    """Send and receive times of every device in the all-to-all, ``(2, D)`` ms.

    Args:
      send_ms: ``(D,)`` each device's send time (`exchange_ms` of its `pooled_bytes`), or
        any differentiable prediction of it (the learned model's send head).
      total_ms: the send time of all the tables (default ``Σ_d send_ms``). A relaxed or
        partial plan (tables not yet placed) still receives the slices of every table:
        ``recv_d = (total - send_d) / (D - 1)``, which for a plan x with per-table times
        ``P`` is ``Σ_t (1 - x_td) P_t / (D - 1)`` for any x.
      latency_us: fixed latency of one all-to-all; added twice (forward and backward).

    Returns:
      ``stack([send, recv]) + 2 · latency``; zeros for one device (nothing to exchange, no
      collective). A numpy array for numpy input (float64 kept), else a JAX array (pure
      JAX: jit, grad).

    Raises:
      ValueError: ``send_ms`` is not 1-D, or a negative latency.
    """
    xp = _xp(send_ms)
    send = xp.asarray(send_ms)
    if send.ndim != 1:
        raise ValueError(f"send_ms must have shape (D,), got {send.shape}")
    if not latency_us >= 0:
        raise ValueError(f"latency_us must be >= 0, got {latency_us}")
    D = send.shape[0]
    if D == 1:
        return xp.zeros((2, 1), send.dtype)
    total = xp.sum(send) if total_ms is None else xp.asarray(total_ms, send.dtype)
    recv = (total - send) / (D - 1)
    return xp.stack([send, recv]) + 2.0 * float(latency_us) * 1e-3
