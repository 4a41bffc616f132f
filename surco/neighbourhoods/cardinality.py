"""`Cardinality`: z ∈ {0,1}^n with ``k_min <= Σz <= k_max`` (portfolio selection); swap /
add / drop moves.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from surco.neighbourhoods.base import Neighbourhood

__all__ = ["Cardinality"]


@dataclasses.dataclass
class _CardState:
    z: np.ndarray   # (n,) float64 in {0, 1}


class Cardinality(Neighbourhood):
    """z ∈ {0,1}^n with ``k_min <= Σz <= k_max``; swap / add / drop moves.

    Args:
      n: number of entries.
      k_min, k_max: bounds on the number of selected entries (0 <= k_min <= k_max <= n).
      fixed_in, fixed_out: bool masks (n,) of entries that must be selected / must not be
        (default: none).

    Moves are int rows ``[i, j]``: entry i leaves the selection and entry j joins it (i = -1:
    *add* j; j = -1: *drop* i; both: *swap*). Only entries that are not fixed move; add needs
    Σz < k_max, drop Σz > k_min (the swap / add / drop neighbourhood of cardinality-constrained
    portfolio heuristics, e.g. Chang, Meade, Beasley & Sharaiha, Comput. Oper. Res. 2000).

    Raises:
      ValueError: bounds out of order, masks of the wrong shape or overlapping, or fixed
        entries that leave no feasible size.
    """

    def __init__(self, n: int, k_min: int, k_max: int, *, fixed_in: np.ndarray | None = None,
                 fixed_out: np.ndarray | None = None):
        n, k_min, k_max = int(n), int(k_min), int(k_max)
        if n < 1:
            raise ValueError(f"Cardinality: n must be >= 1, got {n}")
        if not 0 <= k_min <= k_max <= n:
            raise ValueError(f"Cardinality: need 0 <= k_min <= k_max <= n, got k_min={k_min}, "
                             f"k_max={k_max}, n={n}")
        masks = []
        for name, m in (("fixed_in", fixed_in), ("fixed_out", fixed_out)):
            m = np.zeros(n, bool) if m is None else np.asarray(m)
            if m.dtype != bool or m.shape != (n,):
                raise ValueError(f"Cardinality: {name} must be a bool mask of shape ({n},), got "
                                 f"{m.dtype} {m.shape}")
            masks.append(m.copy())
        fin, fout = masks
        if (fin & fout).any():
            raise ValueError(f"Cardinality: entry {int(np.flatnonzero(fin & fout)[0])} is both "
                             "fixed_in and fixed_out")
        if fin.sum() > k_max or n - fout.sum() < k_min:
            raise ValueError(f"Cardinality: {int(fin.sum())} fixed-in and {int(fout.sum())} "
                             f"fixed-out entries leave no size in [{k_min}, {k_max}]")
        self.shape = (n,)
        self.k_min, self.k_max = k_min, k_max
        self.fixed_in, self.fixed_out = fin, fout
        fin.setflags(write=False)
        fout.setflags(write=False)

    def start(self, x: np.ndarray) -> _CardState:
        """A state at z (see `Neighbourhood.start`).

        Raises:
          ValueError: z of another shape, not binary, a size outside [k_min, k_max], or a
            fixed entry not at its value.
        """
        z = np.asarray(x, np.float64)
        if z.shape != self.shape:
            raise ValueError(f"Cardinality: z has shape {z.shape}, expected {self.shape}")
        zb = np.round(z)
        if np.any(np.abs(z - zb) > 1e-6) or not np.all((zb == 0) | (zb == 1)):
            raise ValueError("Cardinality: z must be binary (entries 0 or 1)")
        k = int(zb.sum())
        if not self.k_min <= k <= self.k_max:
            raise ValueError(f"Cardinality: z selects {k} entries, expected between "
                             f"{self.k_min} and {self.k_max}")
        if np.any(self.fixed_in & (zb == 0)) or np.any(self.fixed_out & (zb == 1)):
            raise ValueError("Cardinality: z leaves a fixed_in entry out or takes a fixed_out one")
        return _CardState(zb)

    def point(self, state: _CardState) -> np.ndarray:
        return state.z

    def _free(self, state: _CardState) -> tuple[np.ndarray, np.ndarray, int]:
        sel = state.z == 1
        return (np.flatnonzero(sel & ~self.fixed_in), np.flatnonzero(~sel & ~self.fixed_out),
                int(sel.sum()))

    def moves(self, state: _CardState) -> np.ndarray:
        """Every swap ``[i, j]``, add ``[-1, j]`` (when Σz < k_max) and drop ``[i, -1]``
        (when Σz > k_min), as an int array (M, 2), in that order."""
        ins, outs, k = self._free(state)
        i, j = np.meshgrid(ins, outs, indexing="ij")
        parts = [np.stack([i.reshape(-1), j.reshape(-1)], 1)]
        if k < self.k_max:
            parts.append(np.stack([np.full(outs.size, -1), outs], 1))
        if k > self.k_min:
            parts.append(np.stack([ins, np.full(ins.size, -1)], 1))
        return np.concatenate(parts).astype(np.int64)

    def apply(self, state: _CardState, moves: np.ndarray) -> np.ndarray:
        mv = np.asarray(moves, np.int64).reshape(-1, 2)
        M = mv.shape[0]
        Z = np.repeat(state.z[None], M, 0)
        m = np.arange(M)
        drop, add = mv[:, 0] >= 0, mv[:, 1] >= 0
        Z[m[drop], mv[drop, 0]] = 0.0
        Z[m[add], mv[add, 1]] = 1.0
        return Z

    def random_move(self, state: _CardState, rng: np.random.Generator) -> np.ndarray | None:
        """Uniform over `moves` (every move counted by the three kinds is feasible)."""
        ins, outs, k = self._free(state)
        n_sw = ins.size * outs.size
        n_add = outs.size if k < self.k_max else 0
        n_drop = ins.size if k > self.k_min else 0
        total = n_sw + n_add + n_drop
        if total == 0:
            return None
        u = int(rng.integers(total))
        if u < n_sw:
            return np.array([ins[u // outs.size], outs[u % outs.size]], np.int64)
        u -= n_sw
        if u < n_add:
            return np.array([-1, outs[u]], np.int64)
        return np.array([ins[u - n_add], -1], np.int64)

    def commit(self, state: _CardState, move: np.ndarray) -> None:
        i, j = (int(v) for v in np.asarray(move).reshape(2))
        if i >= 0:
            state.z[i] = 0.0
        if j >= 0:
            state.z[j] = 1.0
