"""Affine values: arrays whose entries are affine functions of the model's variables.

An `Aff` holds ``value.ravel() = A @ v + b`` for the model's variable vector v (x's entries
first, then auxiliary variables as they are created), A a sparse matrix. Every linear
operation of the objective (sums, differences, products with constants, matrix products
with constants, reductions by sums) and every operation that only moves entries around
(reshape, transpose, broadcast, slice, gather with constant indices, concatenate, select
with a constant predicate, pad) is a sparse matrix operation on A and b: no Python loop over
entries, no expression trees. Operations that move entries are applied to an array of
entry indices with the primitive itself (`moved`), so that their semantics are JAX's own.
"""
from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

__all__ = ["Aff", "broadcast", "moved", "reduce_sum", "dot_const", "combine", "scale",
           "dot_general_np"]


class Aff:
    """``value = (A @ v + b).reshape(shape)`` (see the module docstring)."""

    __slots__ = ("shape", "A", "b")

    def __init__(self, shape: tuple[int, ...], A: sp.csr_matrix, b: np.ndarray):
        self.shape = tuple(int(s) for s in shape)
        self.A = A.tocsr()
        self.b = np.asarray(b, np.float64).reshape(-1)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    def cols(self, n: int) -> sp.csr_matrix:
        """A with ``n`` columns (variables created since A was built have zero weight)."""
        A = self.A
        if A.shape[1] == n:
            return A
        return sp.csr_matrix((A.data, A.indices, A.indptr), shape=(A.shape[0], n))

    def rows(self, idx: np.ndarray) -> "Aff":
        """The entries at flat indices ``idx`` (any shape: the result's shape)."""
        idx = np.asarray(idx, np.int64)
        flat = idx.reshape(-1)
        return Aff(idx.shape, self.A[flat], self.b[flat])

    def interval(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of each entry from variable bounds ``lo <= v <= hi`` (±inf allowed)."""
        A = self.cols(len(lo))
        P, N = A.maximum(0), A.minimum(0)
        with np.errstate(invalid="ignore"):
            low = self.b + _mul(P, lo) + _mul(N, hi)
            high = self.b + _mul(P, hi) + _mul(N, lo)
        return low.reshape(self.shape), high.reshape(self.shape)


def _mul(M: sp.csr_matrix, v: np.ndarray) -> np.ndarray:
    """``M @ v`` where M has no stored zeros, so that 0·inf never occurs."""
    M = M.tocsr()
    M.eliminate_zeros()
    return M @ v


def const_aff(c: np.ndarray, n: int) -> Aff:
    c = np.asarray(c, np.float64)
    return Aff(c.shape, sp.csr_matrix((c.size, n)), c.reshape(-1))


def _index(shape) -> np.ndarray:
    return np.arange(int(math.prod(shape)), dtype=np.int64).reshape(shape)


def broadcast(v: Any, shape: tuple[int, ...]) -> Any:
    """``v`` (an `Aff` or a constant array) broadcast to ``shape`` (numpy rules)."""
    if isinstance(v, Aff):
        if v.shape == tuple(shape):
            return v
        return v.rows(np.broadcast_to(_index(v.shape), shape))
    return np.broadcast_to(np.asarray(v, np.float64), shape)


def combine(a: Any, b: Any, sa: float, sb: float, shape, n: int) -> Any:
    """``sa·a + sb·b`` broadcast to ``shape``; an `Aff` unless both are constants."""
    a, b = broadcast(a, shape), broadcast(b, shape)
    if not isinstance(a, Aff) and not isinstance(b, Aff):
        return sa * a + sb * b
    a = a if isinstance(a, Aff) else const_aff(a, n)
    b = b if isinstance(b, Aff) else const_aff(b, n)
    return Aff(shape, sa * a.cols(n) + sb * b.cols(n), sa * a.b + sb * b.b)


def scale(a: Aff, c: np.ndarray, shape) -> Aff:
    """``a * c`` for a constant c, broadcast to ``shape``."""
    a = broadcast(a, shape)
    c = np.broadcast_to(np.asarray(c, np.float64), shape).reshape(-1)
    return Aff(shape, sp.diags(c) @ a.A, a.b * c)


def moved(primitive, params: dict, operands: list[Any], data: list[int], out_shape,
          n: int, fill: float = 0.0) -> Aff:
    """The result of a primitive that only moves entries of its ``data`` operands (by
    position in ``operands``; the others are constants, e.g. gather indices, a select
    predicate): the primitive is applied to arrays of 1-based entry numbers, 0 standing
    for ``fill`` (pad's padding value).

    Raises:
      ValueError: the primitive produced an index outside the operands (e.g. a gather in
        fill mode reading out of bounds).
    """
    args, parts, off = [], [], 1
    for k, v in enumerate(operands):
        if k in data:
            shape = v.shape
            args.append(jnp.asarray(_index(shape) + off, jnp.int32))
            parts.append(v if isinstance(v, Aff) else const_aff(v, n))
            off += int(math.prod(shape))
        else:
            args.append(v)
    idx = np.asarray(primitive.bind(*args, **params), np.int64)
    if idx.shape != tuple(out_shape) or idx.min(initial=0) < 0 or idx.max(initial=0) >= off:
        raise ValueError(f"{primitive.name}: entry indices out of range")
    A = sp.vstack([sp.csr_matrix((1, n))] + [p.cols(n) for p in parts]).tocsr()
    b = np.concatenate([[fill]] + [p.b for p in parts])
    return Aff(out_shape, A[idx.reshape(-1)], b[idx.reshape(-1)])


def reduce_sum(a: Aff, axes: tuple[int, ...]) -> Aff:
    """Sum over ``axes``."""
    keep = [d for d in range(len(a.shape)) if d not in axes]
    out_shape = tuple(a.shape[d] for d in keep)
    coords = np.indices(a.shape).reshape(len(a.shape), -1)
    row = (np.ravel_multi_index(tuple(coords[keep]), out_shape) if keep
           else np.zeros(a.size, np.int64))
    S = sp.csr_matrix((np.ones(a.size), (row, np.arange(a.size))),
                      shape=(int(math.prod(out_shape)), a.size))
    return Aff(out_shape, S @ a.A, S @ a.b)


def _arrange(shape, contract, batch) -> tuple[list[int], list[int]]:
    free = [d for d in range(len(shape)) if d not in contract and d not in batch]
    return free, list(batch)


def dot_const(lhs: Any, rhs: Any, dimension_numbers, n: int) -> Aff:
    """``lax.dot_general(lhs, rhs)`` where exactly one operand is an `Aff` and the other a
    constant: a sparse matrix M with ``out = M @ aff``, built in one vectorised step
    (output dims: batch, lhs free, rhs free, as in XLA)."""
    (lc, rc), (lb, rb) = dimension_numbers
    lfree, _ = _arrange(lhs.shape, lc, lb)
    rfree, _ = _arrange(rhs.shape, rc, rb)
    Bs = [lhs.shape[d] for d in lb]
    F = int(math.prod(lhs.shape[d] for d in lfree))
    G = int(math.prod(rhs.shape[d] for d in rfree))
    K = int(math.prod(lhs.shape[d] for d in lc))
    B = int(math.prod(Bs))
    out_shape = tuple(Bs) + tuple(lhs.shape[d] for d in lfree) + tuple(rhs.shape[d] for d in rfree)
    bb, ff, gg, kk = np.meshgrid(np.arange(B), np.arange(F), np.arange(G), np.arange(K),
                                 indexing="ij")
    rows = (bb * F + ff) * G + gg
    if isinstance(lhs, Aff):
        L = np.transpose(_index(lhs.shape), list(lb) + lfree + list(lc)).reshape(B, F, K)
        R = np.transpose(np.asarray(rhs, np.float64), list(rb) + list(rc) + rfree).reshape(B, K, G)
        cols, vals, aff = L[bb, ff, kk], R[bb, kk, gg], lhs
    else:
        L = np.transpose(np.asarray(lhs, np.float64), list(lb) + lfree + list(lc)).reshape(B, F, K)
        R = np.transpose(_index(rhs.shape), list(rb) + list(rc) + rfree).reshape(B, K, G)
        cols, vals, aff = R[bb, kk, gg], L[bb, ff, kk], rhs
    nz = vals != 0
    M = sp.csr_matrix((vals[nz], (rows[nz], cols[nz])), shape=(B * F * G, aff.size))
    return Aff(out_shape, M @ aff.A, M @ aff.b)


def dot_general_np(lhs: np.ndarray, rhs: np.ndarray, dimension_numbers) -> np.ndarray:
    """``lax.dot_general`` of two numpy arrays in float64 (by einsum)."""
    (lc, rc), (lb, rb) = dimension_numbers
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    ls = [next(letters) for _ in lhs.shape]
    rs = [next(letters) for _ in rhs.shape]
    for a, b in zip(list(lc) + list(lb), list(rc) + list(rb)):
        rs[b] = ls[a]
    out = ([ls[d] for d in lb] + [ls[d] for d in range(lhs.ndim) if d not in lc and d not in lb]
           + [rs[d] for d in range(rhs.ndim) if d not in rc and d not in rb])
    return np.einsum(f"{''.join(ls)},{''.join(rs)}->{''.join(out)}",
                     np.asarray(lhs, np.float64), np.asarray(rhs, np.float64))
