"""`RowChoice`: one choice per row of x, under linear rows (assignment, sharding).

x ∈ {0,1}^{R×K} with exactly one 1 per row and any rows ``A_ub x <= b_ub``; moves are the
*move* of one row to another column and the *swap* of two rows' columns (2-exchange,
Papadimitriou & Steiglitz 1982, ch. 19), checked incrementally on ``A_ub x``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from surco.neighbourhoods.base import Neighbourhood
from surco.solvers import LinearSpec

__all__ = ["RowChoice"]


@dataclasses.dataclass
class _RowState:
    assign: np.ndarray   # (R,) column of each row
    x: np.ndarray        # (R, K) float64 one-hot
    lhs: np.ndarray      # (m,) A_ub @ x
    commits: int = 0


class RowChoice(Neighbourhood):
    """x ∈ {0,1}^{R×K}, one 1 per row, ``A_ub x <= b_ub``; moves and swaps of rows.

    Args:
      n_rows, n_cols: R and K; x has shape (R, K) and is read flat row-major
        (entry (r, k) is column ``r*K + k`` of A_ub), as in `LinearSpec`.
      A_ub, b_ub: inequality rows (anything ``scipy.sparse.csr_matrix`` accepts; None for none).
      allowed: bool mask (R, K) of the columns each row may take (default: all).
      tol: a row holds when ``A_ub x <= b_ub + tol * max(1, |b_ub|)``.
      name: used in error messages.

    Moves are int rows ``[r, k, s, l]``: row r goes to column k and, for a swap, row s to
    column l (s = -1 for a single move). The neighbourhood of x holds every feasible *move*
    (row r to an allowed column k != its own) and every feasible *swap* (rows r < s in
    different columns exchange them), Papadimitriou & Steiglitz (1982), ch. 19.

    Raises:
      ValueError: sizes that do not match, a row with no allowed column.
    """

    def __init__(self, n_rows: int, n_cols: int, A_ub=None, b_ub=None, *,
                 allowed: np.ndarray | None = None, tol: float = 1e-9, name: str = "RowChoice"):
        R, K = int(n_rows), int(n_cols)
        if R < 1 or K < 1:
            raise ValueError(f"{name}: n_rows and n_cols must be >= 1, got {n_rows}, {n_cols}")
        n = R * K
        self.name = name
        self.shape = (R, K)
        if allowed is None:
            allowed = np.ones((R, K), bool)
        allowed = np.asarray(allowed)
        if allowed.dtype != bool or allowed.shape != (R, K):
            raise ValueError(f"{name}: allowed must be a bool mask of shape {(R, K)}, got "
                             f"{allowed.dtype} {allowed.shape}")
        empty = np.flatnonzero(~allowed.any(1))
        if empty.size:
            raise ValueError(f"{name}: row {int(empty[0])} of x may take no column "
                             f"({empty.size} such rows); Ω is empty")
        self.allowed = allowed.copy()
        self.allowed.setflags(write=False)
        A = sp.csr_matrix((0, n)) if A_ub is None else sp.csr_matrix(A_ub, dtype=np.float64)
        if A.ndim != 2 or A.shape[1] != n:
            raise ValueError(f"{name}: A_ub must have {n} columns (one per entry of x), got "
                             f"shape {A.shape}")
        b = np.zeros(0) if b_ub is None else np.asarray(b_ub, np.float64).reshape(-1)
        if b.shape != (A.shape[0],):
            raise ValueError(f"{name}: b_ub must have {A.shape[0]} entries (rows of A_ub), "
                             f"got {b.shape[0]}")
        if not (np.all(np.isfinite(A.data)) and np.all(np.isfinite(b))):
            raise ValueError(f"{name}: A_ub and b_ub must be finite")
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise ValueError(f"{name}: tol must be a number >= 0, got {tol!r}")
        A = A.tocsc()
        A.sum_duplicates()
        A.eliminate_zeros()
        self.A_ub, self.b_ub = A, b
        self._lim = b + tol * np.maximum(1.0, np.abs(b))
        self._m = A.shape[0]
        self._cols: list | None = None   # per column of A_ub: [(row, value), ...], built lazily

    # -- reading Ω off a LinearSpec ------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: LinearSpec, tol: float = 1e-9) -> "RowChoice":
        """The neighbourhood of a `LinearSpec` of the form "x binary (R, K), Σ_k x[r,k] = 1
        for every row r, any other linear rows".

        Bounds: lb must be 0 or 1 (lb = 1 fixes that entry's row); an entry with ub < 1 is a
        column its row may not take. Equality rows that are not one-per-row choices, and all
        of A_ub, become inequality rows of the generic check (an equality as two).

        Raises:
          ValueError: naming what does not fit: a shape that is not 2-D, continuous entries,
            bounds that are not binary, a row of x without its equality ``Σ_k x[r,k] = 1``,
            a row with no column left.
        """
        if not isinstance(spec, LinearSpec):
            raise TypeError(f"RowChoice.from_spec: expected a surco.solvers.LinearSpec, got "
                            f"{type(spec).__name__}")
        where = f"RowChoice.from_spec: Ω {spec.name!r}"
        if len(spec.shape) != 2:
            raise ValueError(f"{where} has x of shape {spec.shape}; expected a 2-D x of shape "
                             "(rows, columns) with one choice per row")
        R, K = spec.shape
        n = R * K
        if not spec.integer.all():
            raise ValueError(f"{where} has {int((~spec.integer).sum())} continuous entries; "
                             "expected every entry binary (integer, 0 <= x <= 1)")
        lbi = np.ceil(spec.lb - 1e-9)
        ubi = np.floor(spec.ub + 1e-9)
        if np.any((lbi != 0) & (lbi != 1)):
            i = int(np.flatnonzero((lbi != 0) & (lbi != 1))[0])
            raise ValueError(f"{where}: lower bound {spec.lb[i]} at flat index {i}; expected "
                             "binary entries (lb 0 or 1)")
        fixed = (lbi == 1).reshape(R, K)
        allowed = (ubi >= 1).reshape(R, K)
        nfix = fixed.sum(1)
        if np.any(nfix > 1):
            r = int(np.flatnonzero(nfix > 1)[0])
            raise ValueError(f"{where}: row {r} of x has {int(nfix[r])} entries fixed to 1 by "
                             "lb; one choice per row allows one")
        allowed = np.where(nfix[:, None] == 1, fixed, allowed)
        # which equality rows are "Σ_k c·x[r,k] = c" over (at least) every allowed entry of row r
        E = spec.A_eq.tocsr()
        E.sum_duplicates()
        is_choice = np.zeros(E.shape[0], bool)
        row_of = np.full(E.shape[0], -1)
        nnz = np.diff(E.indptr)
        nz = np.flatnonzero(nnz > 0)
        if nz.size:
            starts = E.indptr[nz]
            xr = E.indices // K
            lo, hi = np.minimum.reduceat(xr, starts), np.maximum.reduceat(xr, starts)
            vlo = np.minimum.reduceat(E.data, starts)
            vhi = np.maximum.reduceat(E.data, starts)
            cover = np.add.reduceat(allowed.reshape(-1)[E.indices].astype(np.int64), starts)
            b = spec.b_eq[nz]
            ok = ((lo == hi) & (vlo == vhi) & (vlo != 0)
                  & np.isclose(b, vlo, rtol=1e-12, atol=0.0)
                  & (cover == allowed.sum(1)[lo]))
            row_of[nz] = lo
            is_choice[nz] = ok
        has = np.zeros(R, bool)
        first = np.zeros(E.shape[0], bool)
        for i in np.flatnonzero(is_choice):    # keep one choice row per x row; duplicates are
            if not has[row_of[i]]:             # checked generically
                has[row_of[i]] = first[i] = True
        missing = np.flatnonzero(~has)
        if missing.size:
            r = int(missing[0])
            raise ValueError(f"{where}: row {r} of x has no equality row Σ_k x[{r},k] = 1 in "
                             f"A_eq ({missing.size} of {R} rows lack one); expected one choice "
                             "per row")
        other = ~first
        A_ub = sp.vstack([spec.A_ub, E[other], -E[other]]).tocsr() if other.any() else spec.A_ub
        b_ub = np.concatenate([spec.b_ub, spec.b_eq[other], -spec.b_eq[other]])
        return cls(R, K, A_ub, b_ub, allowed=allowed, tol=tol, name=spec.name)

    # -- states -----------------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """The column of each row of a one-hot x (R, K) -> (R,) int.

        Raises:
          ValueError: x of another shape, or a row that is not one-hot on an allowed column.
        """
        x = np.asarray(x, np.float64)
        if x.shape != self.shape:
            raise ValueError(f"{self.name}: x has shape {x.shape}, expected {self.shape}")
        xb = np.round(x)
        bad = (np.abs(x - xb) > 1e-6).any(1) | ~((xb == 0) | (xb == 1)).all(1) | (xb.sum(1) != 1)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{self.name}: row {r} of x is {x[r].tolist()}, expected one 1 and "
                             f"zeros ({int(bad.sum())} such rows)")
        a = np.argmax(xb, 1)
        off = ~self.allowed[np.arange(self.shape[0]), a]
        if off.any():
            r = int(np.flatnonzero(off)[0])
            raise ValueError(f"{self.name}: row {r} of x takes column {int(a[r])}, which Ω "
                             "does not allow")
        return a

    def decode(self, assign: np.ndarray) -> np.ndarray:
        """One-hot x (R, K) float64 from a column per row."""
        a = np.asarray(assign, np.int64).reshape(-1)
        if a.shape != (self.shape[0],) or a.min() < 0 or a.max() >= self.shape[1]:
            raise ValueError(f"{self.name}: assign must hold {self.shape[0]} column indices in "
                             f"[0, {self.shape[1]})")
        x = np.zeros(self.shape)
        x[np.arange(a.size), a] = 1.0
        return x

    def start(self, x: np.ndarray) -> _RowState:
        """A state at x (see `Neighbourhood.start`).

        Raises:
          ValueError: x not one-hot per row on allowed columns, or a row of A_ub x <= b_ub
            violated (the first one named).
        """
        a = self.encode(x)
        xx = self.decode(a)
        lhs = self.A_ub @ xx.reshape(-1)
        over = np.flatnonzero(lhs > self._lim)
        if over.size:
            i = int(over[0])
            raise ValueError(f"{self.name}: x violates inequality row {i} (A_ub x = "
                             f"{lhs[i]:.6g} > b_ub = {self.b_ub[i]:.6g}; {over.size} rows "
                             "violated)")
        return _RowState(a, xx, lhs)

    def point(self, state: _RowState) -> np.ndarray:
        return state.x

    def _feasible(self, state: _RowState, on: np.ndarray, off: np.ndarray) -> np.ndarray:
        """Which candidates stay within A_ub x <= b_ub. ``on`` / ``off``: (M, c) flat entries
        of x set to 1 / 0 by each candidate (-1: none). Reads only those columns of A_ub."""
        M = on.shape[0]
        if self._m == 0 or M == 0:
            return np.ones(M, bool)
        cand = np.concatenate([np.repeat(np.arange(M), on.shape[1]),
                               np.repeat(np.arange(M), off.shape[1])])
        cols = np.concatenate([on.reshape(-1), off.reshape(-1)])
        sign = np.concatenate([np.ones(on.size), -np.ones(off.size)])
        keep = cols >= 0
        cand, cols, sign = cand[keep], cols[keep], sign[keep]
        ptr = self.A_ub.indptr
        start, cnt = ptr[cols], ptr[cols + 1] - ptr[cols]
        tot = int(cnt.sum())
        if tot == 0:
            return np.ones(M, bool)
        first = np.repeat(start - (np.cumsum(cnt) - cnt), cnt)
        idx = first + np.arange(tot)
        rows = self.A_ub.indices[idx]
        vals = self.A_ub.data[idx] * np.repeat(sign, cnt)
        key = np.repeat(cand, cnt) * self._m + rows
        uk, inv = np.unique(key, return_inverse=True)
        delta = np.bincount(inv.reshape(-1), weights=vals, minlength=uk.size)
        r = uk % self._m
        bad = state.lhs[r] + delta > self._lim[r]
        ok = np.ones(M, bool)
        ok[uk[bad] // self._m] = False
        return ok

    def _feasible_one(self, state: _RowState, move: np.ndarray) -> bool:
        """`_feasible` for one move, in scalar code (the annealing hot path)."""
        if self._m == 0:
            return True
        if self._cols is None:
            ptr, ind, dat = self.A_ub.indptr, self.A_ub.indices.tolist(), self.A_ub.data.tolist()
            self._cols = [list(zip(ind[a:b], dat[a:b]))
                          for a, b in zip(ptr[:-1].tolist(), ptr[1:].tolist())]
        K, cols = self.shape[1], self._cols
        r, k, s, l = move
        delta: dict[int, float] = {}
        for i, v in cols[r * K + k]:
            delta[i] = delta.get(i, 0.0) + v
        for i, v in cols[r * K + int(state.assign[r])]:
            delta[i] = delta.get(i, 0.0) - v
        if s >= 0:
            for i, v in cols[s * K + l]:
                delta[i] = delta.get(i, 0.0) + v
            for i, v in cols[s * K + int(state.assign[s])]:
                delta[i] = delta.get(i, 0.0) - v
        lhs, lim = state.lhs, self._lim
        return all(lhs[i] + v <= lim[i] for i, v in delta.items())

    def _changes(self, state: _RowState, mv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat entries set to 1 / to 0 by moves (M, 4)."""
        K = self.shape[1]
        r, k, s, l = mv.T
        s_ = np.where(s >= 0, s, 0)
        on = np.stack([r * K + k, np.where(s >= 0, s * K + l, -1)], 1)
        off = np.stack([r * K + state.assign[r], np.where(s >= 0, s * K + state.assign[s_], -1)], 1)
        return on, off

    def moves(self, state: _RowState) -> np.ndarray:
        """Every feasible move ``[r, k, -1, -1]`` and swap ``[r, a_s, s, a_r]`` (r < s), as
        an int array (M, 4): moves first (by row, then column), then swaps."""
        R, K = self.shape
        a = state.assign
        rr, kk = np.nonzero(self.allowed & (np.arange(K)[None, :] != a[:, None]))
        neg = np.full(rr.size, -1)
        mv = np.stack([rr, kk, neg, neg], 1)
        r, s = np.triu_indices(R, 1)
        ar, as_ = a[r], a[s]
        sw = (ar != as_) & self.allowed[r, as_] & self.allowed[s, ar]
        r, s = r[sw], s[sw]
        out = np.concatenate([mv, np.stack([r, a[s], s, a[r]], 1)]).astype(np.int64)
        on, off = self._changes(state, out)
        return out[self._feasible(state, on, off)]

    def apply(self, state: _RowState, moves: np.ndarray) -> np.ndarray:
        mv = np.asarray(moves, np.int64).reshape(-1, 4)
        M, K = mv.shape[0], self.shape[1]
        if M == 1:  # the annealing hot path, in scalar code
            x = state.x.copy()
            r, k, s, l = (int(v) for v in mv[0])
            x[r, state.assign[r]] = 0.0
            if s >= 0:
                x[s, state.assign[s]] = 0.0
                x[s, l] = 1.0
            x[r, k] = 1.0
            return x[None]
        X = np.repeat(state.x.reshape(1, -1), M, 0)
        on, off = self._changes(state, mv)
        i = np.arange(M)
        X[i, off[:, 0]] = 0.0
        X[i, on[:, 0]] = 1.0
        two = on[:, 1] >= 0
        X[i[two], off[two, 1]] = 0.0
        X[i[two], on[two, 1]] = 1.0
        return X.reshape((M,) + self.shape)

    def random_move(self, state: _RowState, rng: np.random.Generator,
                    tries: int = 64) -> np.ndarray | None:
        """Uniform over the feasible moves: rejection sampling from all (row, other column)
        pairs and all pairs of rows (uniform over a superset, so uniform over the feasible
        ones), falling back to enumerating them after ``tries`` rejections."""
        R, K = self.shape
        a = state.assign
        n_mv, n_sw = R * (K - 1), R * (R - 1) // 2
        if n_mv + n_sw == 0:
            return None
        for _ in range(tries):
            if rng.random() * (n_mv + n_sw) < n_mv:
                r, j = divmod(int(rng.integers(n_mv)), K - 1)
                k = j + (j >= a[r])
                if not self.allowed[r, k]:
                    continue
                mv = (r, k, -1, -1)
            else:
                r, s = int(rng.integers(R)), int(rng.integers(R - 1))
                s += s >= r
                r, s = (r, s) if r < s else (s, r)
                ar, as_ = int(a[r]), int(a[s])
                if ar == as_ or not (self.allowed[r, as_] and self.allowed[s, ar]):
                    continue
                mv = (r, as_, s, ar)
            if self._feasible_one(state, mv):
                return np.array(mv, np.int64)
        mv = self.moves(state)
        return None if mv.shape[0] == 0 else mv[int(rng.integers(mv.shape[0]))]

    def commit(self, state: _RowState, move: np.ndarray) -> None:
        """Make a move in place; A_ub x is updated from the (at most four) changed columns
        and recomputed in full every 1024 commits to bound rounding drift."""
        mv = np.asarray(move, np.int64).reshape(1, 4)
        on, off = self._changes(state, mv)
        on, off = on[on >= 0], off[off >= 0]
        if self._m:
            ptr, ind, dat = self.A_ub.indptr, self.A_ub.indices, self.A_ub.data
            lhs = state.lhs.copy()
            for cols, sign in ((on, 1.0), (off, -1.0)):
                for c in cols:
                    sl = slice(ptr[c], ptr[c + 1])
                    lhs[ind[sl]] += sign * dat[sl]   # indices within a column are distinct
            state.lhs = lhs
        flat = state.x.reshape(-1)
        flat[off] = 0.0
        flat[on] = 1.0
        K = self.shape[1]
        state.assign[on // K] = on % K
        state.commits += 1
        if state.commits % 1024 == 0 and self._m:
            state.lhs = self.A_ub @ flat


# -- cardinality-constrained selection ----------------------------------------------------------
