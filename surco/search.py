"""Non-learned search baselines: neighbourhoods of Ω, local search and simulated annealing.

These are what a practitioner tries before a learned surrogate, so every SurCo comparison
puts them next to it. They evaluate the true cost only through a `surco.budget.Meter`
(``meter(x)`` / ``meter.batch(X)``), so they honour the same budgets, in seconds or in
evaluations of f, as every other method.

Two neighbourhood structures, derived generically from Ω:

* `RowChoice`: x ∈ {0,1}^{R×K} with exactly one 1 per row (``Σ_k x[r,k] = 1``) and any
  linear rows ``A_ub x <= b_ub`` (capacities, "every column used", further equalities
  written as two inequalities). Moves: *move* one row to another column; *swap* the columns
  of two rows that sit in different columns (the 2-exchange of Papadimitriou & Steiglitz
  1982, ch. 19). `RowChoice.from_spec` reads it off a `surco.solvers.LinearSpec`
  (assignment, sharding). Feasibility of a candidate is checked incrementally on
  ``A_ub x``: a move changes it by two columns of A_ub, a swap by four, never a solver call.
* `Cardinality`: z ∈ {0,1}^n with ``k_min <= Σz <= k_max`` and optional fixed-in / fixed-out
  entries (portfolio selection). Moves: *swap* one selected entry for an unselected one,
  *add* one, *drop* one.

Each neighbourhood enumerates all feasible neighbours of x at once (an array, to be scored by
one ``meter.batch`` call) and draws one uniformly random feasible neighbour:

    >>> import numpy as np
    >>> from surco.budget import Budget
    >>> nb = Cardinality(4, 2, 2)
    >>> z0 = np.array([1.0, 1.0, 0.0, 0.0])
    >>> nb.neighbours(z0).shape          # 2 selected x 2 unselected swaps
    (4, 4)
    >>> w = np.array([3.0, 1.0, 2.0, 0.5])
    >>> meter = Budget(evaluations=100).start(lambda z: float(w @ z))
    >>> res = local_search(z0, meter, nb, strategy="steepest")
    >>> res.x, res.value, res.local_optimum
    (array([0., 1., 0., 1.]), 1.5, True)

The searches: `local_search` (steepest descent or first improvement, to a local optimum,
Papadimitriou & Steiglitz 1982, ch. 19) and `simulated_annealing` (Kirkpatrick, Gelatt &
Vecchi, Science 220, 1983) with geometric cooling spread over the meter's budget.

A search cut off by its budget returns the best x it evaluated (``meter.best_x`` for a meter
it started on); Ctrl-C propagates (``KeyboardInterrupt``) and the meter keeps the best x.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from surco.budget import BudgetExhausted, Meter
from surco.solvers import LinearSpec

__all__ = ["Neighbourhood", "RowChoice", "Cardinality", "SearchResult", "local_search",
           "simulated_annealing"]


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


class Neighbourhood(abc.ABC):
    """A neighbourhood structure over a finite Ω, driven through a mutable *state*.

    The searches use the state methods (`start`, `moves`, `apply`, `random_move`, `commit`),
    which keep whatever makes feasibility checks incremental; `neighbours` and
    `random_neighbour` are the same operations on a plain x. A move is one row of an int
    array whose meaning belongs to the neighbourhood.

    Attributes:
      shape: the shape of x.
    """

    shape: tuple[int, ...]

    @abc.abstractmethod
    def start(self, x: np.ndarray) -> Any:
        """A search state at x. Raises ValueError if x is not in Ω (says why)."""

    @abc.abstractmethod
    def point(self, state: Any) -> np.ndarray:
        """The current x of a state (a view: copy before keeping it)."""

    @abc.abstractmethod
    def moves(self, state: Any) -> np.ndarray:
        """All moves from the state that stay in Ω, as an int array (M, w)."""

    @abc.abstractmethod
    def apply(self, state: Any, moves: np.ndarray) -> np.ndarray:
        """The neighbours reached by ``moves`` (M, w), as an array (M, *shape); the state is
        unchanged."""

    @abc.abstractmethod
    def random_move(self, state: Any, rng: np.random.Generator) -> np.ndarray | None:
        """One move drawn uniformly from `moves` (None when there is none)."""

    @abc.abstractmethod
    def commit(self, state: Any, move: np.ndarray) -> None:
        """Make ``move`` (one row of `moves`) on the state, in place."""

    def neighbours(self, x: np.ndarray) -> np.ndarray:
        """All feasible neighbours of x ∈ Ω, as an array (M, *shape).

        Raises:
          ValueError: x is not in Ω.
        """
        s = self.start(x)
        return self.apply(s, self.moves(s))

    def random_neighbour(self, x: np.ndarray,
                         rng: np.random.Generator | int | None = None) -> np.ndarray | None:
        """One feasible neighbour of x ∈ Ω drawn uniformly at random (None if x has none).

        Raises:
          ValueError: x is not in Ω.
        """
        s = self.start(x)
        m = self.random_move(s, _rng(rng))
        return None if m is None else self.apply(s, m[None])[0]

    def contains(self, x: np.ndarray) -> bool:
        """Whether x lies in Ω (by the same checks as `start`)."""
        try:
            self.start(x)
        except ValueError:
            return False
        return True


# -- one choice per row ---------------------------------------------------------------------------

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


# -- searches --------------------------------------------------------------------------------------

@dataclasses.dataclass
class SearchResult:
    """Outcome of `local_search` or `simulated_annealing`.

    Attributes:
      x: the best x the search evaluated (a copy).
      value: its true cost (from the meter).
      local_optimum: True when no feasible neighbour of x is better (local search that ran to
        its end; False when cut off by the budget, and always False for annealing).
      iterations: moves made (local search) or neighbours proposed (annealing).
      stopped: why it stopped: "local optimum", "budget", "max iterations", "no neighbours"
        (x has no feasible neighbour) or "stalled" (annealing saw nothing new).
      accepted: moves accepted (annealing; equals iterations for local search).
    """

    x: np.ndarray
    value: float
    local_optimum: bool
    iterations: int
    stopped: str
    accepted: int = 0


class _Best:
    """The best x this search has evaluated (a meter may hold points from other methods)."""

    def __init__(self, x: np.ndarray, v: float):
        self.x, self.v = np.array(x, copy=True), float(v)

    def offer(self, x: np.ndarray, v: float) -> None:
        if v < self.v:
            self.x, self.v = np.array(x, copy=True), float(v)

    def offer_cached(self, meter: Meter, X: np.ndarray) -> None:
        """After a cut-off batch: the candidates the meter did evaluate."""
        for x in X:
            v = meter.cached(x)
            if v is not None:
                self.offer(x, v)


def _check_meter(meter: Any, where: str) -> None:
    if not (callable(meter) and hasattr(meter, "batch") and hasattr(meter, "budget")):
        raise TypeError(f"{where}: meter must be a surco.budget.Meter (Budget(...).start(f)), "
                        f"got {type(meter).__name__}")


def _check_nbhd(nbhd: Any, where: str) -> None:
    if not isinstance(nbhd, Neighbourhood):
        raise TypeError(f"{where}: nbhd must be a surco.search.Neighbourhood (RowChoice, "
                        f"Cardinality), got {type(nbhd).__name__}")


def local_search(x0: np.ndarray, meter: Meter, nbhd: Neighbourhood, *,
                 strategy: str = "steepest", rng: np.random.Generator | int | None = None,
                 chunk: int = 32, max_iterations: int | None = None,
                 rank: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                 ) -> SearchResult:
    """Descend from x0 to a local optimum of the true cost over ``nbhd``.

    Papadimitriou & Steiglitz, *Combinatorial Optimization: Algorithms and Complexity* (1982),
    ch. 19 (local search, exchange neighbourhoods):

    * ``"steepest"``: score the whole neighbourhood in one ``meter.batch`` call and take the
      best move if it improves (steepest descent);
    * ``"first"``: scan the neighbourhood in a random order, ``chunk`` neighbours per
      ``meter.batch`` call, and take the best move of the first chunk that holds an
      improving one (first improvement; ``chunk=1`` is the textbook one-by-one scan, and
      taking the chunk's best keeps the current x the best evaluated so far). With
      ``rank``, the scan goes in the order of the ranker's predicted values instead of a
      random one, most promising first (e.g. `gradient_rank`).

    A move is taken only when it lowers the value strictly, so the search cannot cycle; it
    stops at a local optimum (no feasible neighbour is better), after ``max_iterations``
    moves, or when the meter's budget is spent.

    Args:
      x0: a feasible start (in Ω of ``nbhd``), e.g. the best greedy solution.
      meter: evaluates the true cost (counts evaluations, enforces the budget).
      nbhd: the neighbourhood (`RowChoice`, `Cardinality`).
      strategy: "steepest" or "first".
      rng: generator or seed for the scan order of "first".
      chunk: neighbours per batch for "first" (>= 1).
      max_iterations: cap on moves (None: none).
      rank: ``(x, X) -> scores`` for strategy "first": a predicted value per neighbour
        ``X[i]`` of the current ``x`` (lower is scanned first; ties keep the neighbourhood's
        order); it costs no evaluation. None: a random order.

    Returns:
      `SearchResult`: the best x evaluated (the local optimum when ``local_optimum``).

    Raises:
      ValueError: x0 outside Ω (from ``nbhd.start``), a bad strategy or chunk.
      BudgetExhausted: only when the budget is spent before x0 itself could be evaluated.
    """
    where = "local_search"
    _check_meter(meter, where)
    _check_nbhd(nbhd, where)
    if strategy not in ("steepest", "first"):
        raise ValueError(f"{where}: strategy must be 'steepest' or 'first', got {strategy!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"{where}: chunk must be an int >= 1, got {chunk!r}")
    if max_iterations is not None and (not isinstance(max_iterations, (int, np.integer))
                                       or max_iterations < 0):
        raise ValueError(f"{where}: max_iterations must be an int >= 0 or None, "
                         f"got {max_iterations!r}")
    gen = _rng(rng)
    state = nbhd.start(x0)
    cur = meter(nbhd.point(state))
    best = _Best(nbhd.point(state), cur)
    it = 0
    try:
        while max_iterations is None or it < max_iterations:
            mv = nbhd.moves(state)
            if mv.shape[0] == 0:
                return SearchResult(best.x, best.v, True, it, "no neighbours", it)
            if strategy == "steepest":
                X = nbhd.apply(state, mv)
                try:
                    vals = meter.batch(X)
                except BudgetExhausted:
                    best.offer_cached(meter, X)
                    raise
                j = int(np.argmin(vals))
                new = float(vals[j])
                if not new < cur:
                    return SearchResult(best.x, best.v, True, it, "local optimum", it)
            else:
                if rank is None:
                    order = gen.permutation(mv.shape[0])
                else:
                    pred = np.asarray(rank(nbhd.point(state), nbhd.apply(state, mv)),
                                      np.float64)
                    if pred.shape != (mv.shape[0],) or not np.all(np.isfinite(pred)):
                        raise ValueError(f"{where}: rank must return one finite score per "
                                         f"neighbour, shape ({mv.shape[0]},); got shape "
                                         f"{pred.shape}"
                                         + ("" if pred.shape != (mv.shape[0],)
                                            else " with non-finite scores"))
                    order = np.argsort(pred, kind="stable")
                j = -1
                for c in range(0, order.size, chunk):
                    idx = order[c:c + chunk]
                    X = nbhd.apply(state, mv[idx])
                    try:
                        vals = meter.batch(X)
                    except BudgetExhausted:
                        best.offer_cached(meter, X)
                        raise
                    b = int(np.argmin(vals))
                    if vals[b] < cur:
                        j, new = int(idx[b]), float(vals[b])
                        break
                if j < 0:
                    return SearchResult(best.x, best.v, True, it, "local optimum", it)
            nbhd.commit(state, mv[j])
            cur = new
            best.offer(nbhd.point(state), cur)
            it += 1
        return SearchResult(best.x, best.v, False, it, "max iterations", it)
    except BudgetExhausted:
        return SearchResult(best.x, best.v, False, it, "budget", it)


def _progress(meter: Meter, e0: int, s0: float) -> float:
    """Fraction of the budget left at the start (e0 evaluations, s0 seconds) spent now."""
    p = 0.0
    b = meter.budget
    if b.evaluations is not None:
        p = max(p, (meter.evaluations - e0) / max(b.evaluations - e0, 1))
    if b.seconds is not None:
        p = max(p, (meter.elapsed() - s0) / max(b.seconds - s0, 1e-9))
    return min(p, 1.0)


def simulated_annealing(x0: np.ndarray, meter: Meter, nbhd: Neighbourhood, *,
                        rng: np.random.Generator | int | None = None, t0: float | None = None,
                        t_end: float | None = None, probes: int = 32, accept0: float = 0.5,
                        cooling: float = 1e-3, max_stall: int = 2_000) -> SearchResult:
    """Simulated annealing over ``nbhd`` until the meter's budget is spent.

    Kirkpatrick, Gelatt & Vecchi, "Optimization by Simulated Annealing", Science 220 (1983):
    each iteration proposes one uniformly random feasible neighbour x' and accepts it with
    the Metropolis probability ``min(1, exp(-(f(x') - f(x)) / T))``. The temperature cools
    geometrically over the budget, ``T = t0 (t_end / t0)^p`` where p ∈ [0, 1] is the fraction
    of the budget (evaluations or seconds, whichever runs out first) spent since the start.

    Args:
      x0: a feasible start (in Ω of ``nbhd``).
      meter: evaluates the true cost; its budget must be finite (it sets the schedule).
      nbhd: the neighbourhood (`RowChoice`, `Cardinality`).
      rng: generator or seed.
      t0: initial temperature. None: from ``probes`` random neighbours of x0 (evaluated, so
        they count), set so that the median uphill step is accepted with probability
        ``accept0``: ``t0 = median(Δ > 0) / ln(1 / accept0)`` (median |Δ| if no probe went
        uphill, ``1e-6 max(|f(x0)|, 1)`` if none changed f).
      t_end: final temperature; None: ``cooling * t0``.
      probes: neighbours evaluated to set t0 (fewer on a small evaluation budget: at most
        5 % of it).
      accept0: see t0, in (0, 1).
      cooling: see t_end, in (0, 1].
      max_stall: after this many proposals in a row that needed no new evaluation (every
        neighbour of a cold local optimum already cached), reheat: restart the schedule at
        t0 over what is left of the budget; stop ("stalled") if it happens again before any
        new evaluation (the search has seen all it can reach).

    Returns:
      `SearchResult` with the best x evaluated; ``stopped`` is "budget", "stalled" or
      "no neighbours".

    Raises:
      ValueError: an unlimited budget, x0 outside Ω, temperatures or rates out of range.
      BudgetExhausted: only when the budget is spent before x0 itself could be evaluated.
    """
    where = "simulated_annealing"
    _check_meter(meter, where)
    _check_nbhd(nbhd, where)
    if meter.budget.unlimited:
        raise ValueError(f"{where}: the meter's budget is unlimited; annealing cools over the "
                         "budget, so give it seconds or evaluations (surco.budget.Budget)")
    for name, v in (("t0", t0), ("t_end", t_end)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{where}: {name} must be a positive finite number or None, got {v!r}")
    if not 0 < accept0 < 1:
        raise ValueError(f"{where}: accept0 must lie in (0, 1), got {accept0!r}")
    if not 0 < cooling <= 1:
        raise ValueError(f"{where}: cooling must lie in (0, 1], got {cooling!r}")
    if isinstance(probes, bool) or not isinstance(probes, (int, np.integer)) or probes < 1:
        raise ValueError(f"{where}: probes must be an int >= 1, got {probes!r}")
    if isinstance(max_stall, bool) or not isinstance(max_stall, (int, np.integer)) or max_stall < 1:
        raise ValueError(f"{where}: max_stall must be an int >= 1, got {max_stall!r}")
    gen = _rng(rng)
    state = nbhd.start(x0)
    cur = meter(nbhd.point(state))
    best = _Best(nbhd.point(state), cur)
    e0, s0 = meter.evaluations, meter.elapsed()
    it = acc = 0
    try:
        if t0 is None:
            k = probes
            if meter.budget.evaluations is not None:
                k = max(1, min(probes, int(0.05 * meter.remaining_evaluations())))
            mv = [nbhd.random_move(state, gen) for _ in range(k)]
            mv = [m for m in mv if m is not None]
            if not mv:
                return SearchResult(best.x, best.v, False, 0, "no neighbours", 0)
            X = nbhd.apply(state, np.stack(mv))
            try:
                vals = meter.batch(X)
            except BudgetExhausted:
                best.offer_cached(meter, X)
                raise
            for x, v in zip(X, vals):
                best.offer(x, v)
            d = vals - cur
            up = d[d > 0] if np.any(d > 0) else np.abs(d[d != 0])
            scale = float(np.median(up)) if up.size else 1e-6 * max(abs(cur), 1.0)
            t0 = scale / math.log(1.0 / accept0)
        if t_end is None:
            t_end = cooling * t0
        log_ratio = math.log(t_end / t0)
        stall, stalled_at = 0, -1
        while not meter.exhausted:
            move = nbhd.random_move(state, gen)
            if move is None:
                return SearchResult(best.x, best.v, False, it, "no neighbours", acc)
            x = nbhd.apply(state, move[None])[0]
            n_before = meter.evaluations
            v = meter(x)
            stall = stall + 1 if meter.evaluations == n_before else 0
            it += 1
            best.offer(x, v)
            d = v - cur
            if d <= 0 or gen.random() < math.exp(-d / (t0 * math.exp(
                    log_ratio * _progress(meter, e0, s0)))):
                nbhd.commit(state, move)
                cur = v
                acc += 1
            if stall >= max_stall:
                if meter.evaluations == stalled_at:   # nothing new since the last reheat
                    return SearchResult(best.x, best.v, False, it, "stalled", acc)
                # reheat: restart the schedule over what is left of the budget
                stalled_at, stall = meter.evaluations, 0
                e0, s0 = meter.evaluations, meter.elapsed()
        return SearchResult(best.x, best.v, False, it, "budget", acc)
    except BudgetExhausted:
        return SearchResult(best.x, best.v, False, it, "budget", acc)
