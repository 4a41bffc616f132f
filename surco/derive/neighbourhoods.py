"""Neighbourhoods read off Ω's rows, for local search and annealing on any new problem.

`classify_rows` sorts the rows of a `LinearSpec`:

* *choice* rows: ``Σ_{j∈S} x_j = 1`` over binaries with unit coefficients (assignment rows);
* *cardinality* rows: ``Σ_{j∈S} x_j = k`` (or ``<= k``, ``>= k``) over binaries with unit
  coefficients;
* *capacity* rows: ``Σ w_j x_j <= C`` with w >= 0 over integer entries (knapsacks);
* *other* rows (linking rows, flow conservation, continuous entries).

`surco.derive.neighbourhood_for` picks, in this order (each is exact: every neighbour is in
Ω, checked against *all* rows without a solver, or produced by the solver):

1. `surco.search.RowChoice` when x is (R, K) with a choice row per row of x (moves and
   swaps of rows; the other rows are checked incrementally);
2. `surco.search.Cardinality` when the entries are binary and the only rows bound Σx
   (swap / add / drop);
3. `UnitExchange` when every entry is integer: lower one entry by 1 and/or raise another by 1
   (for binaries: drop, add, swap), every row checked — knapsack and capacity rows, and
   also other rows when some unit move keeps them;
4. `surco.derive.mixed.CompletedMoves` when Ω has integer and continuous entries: the
   integer entries move as 2–3 would have them move under the rows over integer entries
   only, and every neighbour's continuous entries are re-optimised for f with the
   integers held (a local NLP solve); integer moves whose continuous part is empty are
   not moves;
5. `SolverRepair` otherwise (continuous entries only, or no move from the start): free a
   ball of the variable–row graph around a random entry, fix the rest, and re-solve with
   the solver (`Solver.fixed`) for the linear cost ∇f(x) (plus noise for all but the first
   candidate): a large-neighbourhood move in the spirit of graph-induced neighbourhood
   search (GINS, Maher et al., "The SCIP Optimization Suite 4.0", ZIB-Report 17-12, 2017)
   with the first-order model of f as the repair objective.

On a spec with named blocks (`LinearSpec.from_blocks`), a binary (R, K) block with a choice
row per row also gets moves and swaps of its rows, the other blocks held at their values
(`surco.derive.blocks.BlockChoice`), joined with the neighbourhood chosen above
(`surco.derive.blocks.NeighbourhoodUnion`).
"""
from __future__ import annotations

import dataclasses
import math
import numpy as np
import scipy.sparse as sp

from surco.search import Cardinality, Neighbourhood
from surco.solvers import LinearSpec

__all__ = ["classify_rows", "RowKinds", "UnitExchange", "cardinality_of"]


@dataclasses.dataclass(frozen=True)
class RowKinds:
    """Row indices by kind (`classify_rows`); ``eq`` rows index A_eq, the others A_ub."""

    choice: tuple[int, ...]
    cardinality_eq: tuple[int, ...]
    cardinality_ub: tuple[int, ...]
    capacity: tuple[int, ...]
    other_eq: tuple[int, ...]
    other_ub: tuple[int, ...]
    binary: bool        # every entry integer with bounds within [0, 1]
    integer: bool       # every entry integer

    def describe(self) -> str:
        parts = [f"{len(v)} {k.replace('_', ' ')}" for k, v in dataclasses.asdict(self).items()
                 if isinstance(v, tuple) and v]
        kind = "binary" if self.binary else ("integer" if self.integer else "mixed")
        return f"{kind} x; rows: " + (", ".join(parts) if parts else "none")


def classify_rows(spec: LinearSpec) -> RowKinds:
    """Sort Ω's rows into choice, cardinality, capacity and other rows (module docstring)."""
    if not isinstance(spec, LinearSpec):
        raise TypeError(f"classify_rows: expected a LinearSpec, got {type(spec).__name__}")
    binary = spec.integer & (spec.lb >= 0) & (spec.ub <= 1)
    out: dict[str, list[int]] = {k: [] for k in ("choice", "cardinality_eq", "cardinality_ub",
                                                 "capacity", "other_eq", "other_ub")}
    for A, b, eq in ((spec.A_eq, spec.b_eq, True), (spec.A_ub, spec.b_ub, False)):
        A = A.tocsr()
        for r in range(A.shape[0]):
            cols = A.indices[A.indptr[r]:A.indptr[r + 1]]
            vals = A.data[A.indptr[r]:A.indptr[r + 1]]
            if cols.size == 0:
                continue
            unit = binary[cols].all() and np.all(vals == vals[0])
            k = b[r] / vals[0] if unit else math.nan
            if unit and eq and k == 1.0:
                out["choice"].append(r)
            elif unit and k == round(k):
                out["cardinality_eq" if eq else "cardinality_ub"].append(r)
            elif not eq and spec.integer[cols].all() and np.all(vals >= 0):
                out["capacity"].append(r)
            else:
                out["other_eq" if eq else "other_ub"].append(r)
    return RowKinds(**{k: tuple(v) for k, v in out.items()}, binary=bool(binary.all()),
                    integer=bool(spec.integer.all()))


class Reshaped(Neighbourhood):
    """A neighbourhood over flat x seen with another shape of x."""

    def __init__(self, inner: Neighbourhood, shape: tuple[int, ...]):
        self.inner, self.shape = inner, tuple(shape)

    def start(self, x):
        return self.inner.start(np.asarray(x, np.float64).reshape(self.inner.shape))

    def point(self, state):
        return self.inner.point(state).reshape(self.shape)

    def moves(self, state):
        return self.inner.moves(state)

    def apply(self, state, moves):
        X = self.inner.apply(state, moves)
        return X.reshape((X.shape[0],) + self.shape)

    def random_move(self, state, rng):
        return self.inner.random_move(state, rng)

    def commit(self, state, move):
        self.inner.commit(state, move)


def cardinality_of(spec: LinearSpec, kinds: RowKinds) -> Cardinality | None:
    """`Cardinality` when the only rows bound Σ of all non-fixed entries (binary x)."""
    if not kinds.binary or kinds.choice or kinds.capacity or kinds.other_eq or kinds.other_ub:
        return None
    fixed_in, fixed_out = spec.lb >= 1, spec.ub < 1
    free = ~(fixed_in | fixed_out)
    lo, hi = int(fixed_in.sum()), spec.n
    for A, b, rows, eq in ((spec.A_eq, spec.b_eq, kinds.cardinality_eq, True),
                           (spec.A_ub, spec.b_ub, kinds.cardinality_ub, False)):
        for r in rows:
            row = A.getrow(r)
            cover = np.zeros(spec.n, bool)
            cover[row.indices] = True
            if np.any(free & ~cover):
                return None              # a row over part of the entries: not one Σx
            k = int(round(b[r] / row.data[0]))
            if eq:
                lo, hi = max(lo, k), min(hi, k)
            elif row.data[0] > 0:
                hi = min(hi, k)
            else:
                lo = max(lo, k)
    if lo > hi:
        return None
    return Cardinality(spec.n, lo, hi, fixed_in=fixed_in, fixed_out=fixed_out)


@dataclasses.dataclass
class _UnitState:
    x: np.ndarray      # flat float64, integral
    ub: np.ndarray     # A_ub x
    eq: np.ndarray     # A_eq x
    commits: int = 0


class UnitExchange(Neighbourhood):
    """Unit moves on an integer x: lower entry i by one and / or raise entry j by one
    (binary x: drop, add, swap), within the bounds and *every* row of Ω (checked from the
    changed columns of A, no solver). Moves are int rows ``[i, j]`` (-1: none).

    Args:
      spec: Ω, every entry integer.
      tol: feasibility tolerance of the rows (relative to max(1, |b|)).

    Raises:
      ValueError: Ω has continuous entries.
    """

    def __init__(self, spec: LinearSpec, tol: float = 1e-9):
        if not spec.integer.all():
            raise ValueError(f"UnitExchange: Ω {spec.name!r} has continuous entries")
        self.spec, self.shape = spec, tuple(spec.shape)
        self._Aub, self._Aeq = spec.A_ub.tocsc(), spec.A_eq.tocsc()
        self._lim = spec.b_ub + tol * np.maximum(1.0, np.abs(spec.b_ub))
        self._etol = tol * np.maximum(1.0, np.abs(spec.b_eq))
        # the row matrices with a zero column appended: column -1 is "no entry"
        dense = (spec.A_ub.shape[0] + spec.A_eq.shape[0]) * spec.n <= 4_000_000
        self._Z = []
        for A in (spec.A_ub, spec.A_eq):
            Az = sp.hstack([A, sp.csr_matrix((A.shape[0], 1))]).tocsc()
            self._Z.append(Az.toarray() if dense else Az)

    def start(self, x) -> _UnitState:
        """A state at x. Raises ValueError (why) if x is not in Ω."""
        x = np.asarray(x, np.float64).reshape(-1)
        if x.size != self.spec.n or not self.spec.contains(x):
            raise ValueError(f"UnitExchange: x is not in Ω {self.spec.name!r}"
                             + (f" (violation {self.spec.violation(x):.3g})"
                                if x.size == self.spec.n else f" (size {x.size})"))
        x = np.round(x)
        return _UnitState(x, self.spec.A_ub @ x, self.spec.A_eq @ x)

    def point(self, state: _UnitState) -> np.ndarray:
        return state.x.reshape(self.shape)

    def _ok(self, state: _UnitState, I: np.ndarray, J: np.ndarray) -> np.ndarray:
        """Feasibility of the moves (I[k], J[k]) against every row."""
        ok = np.ones(I.size, bool)
        for Z, lhs, check in ((self._Z[0], state.ub, "ub"), (self._Z[1], state.eq, "eq")):
            if Z.shape[0] == 0:
                continue
            if isinstance(Z, np.ndarray):
                new = lhs[:, None] - Z[:, I] + Z[:, J]
            else:
                new = lhs[:, None] - Z[:, I].toarray() + Z[:, J].toarray()
            if check == "ub":
                ok &= np.all(new <= self._lim[:, None], axis=0)
            else:
                ok &= np.all(np.abs(new - self.spec.b_eq[:, None]) <= self._etol[:, None], axis=0)
        return ok

    def _ends(self, state: _UnitState) -> tuple[np.ndarray, np.ndarray]:
        """Entries that may go down / up by one (each list ending with -1: none)."""
        x, lb, ub = state.x, self.spec.lb, self.spec.ub
        return (np.append(np.flatnonzero(x - 1 >= lb - 1e-9), -1),
                np.append(np.flatnonzero(x + 1 <= ub + 1e-9), -1))

    def _candidates(self, state: _UnitState) -> tuple[np.ndarray, np.ndarray]:
        down, up = self._ends(state)
        I, J = np.meshgrid(down, up, indexing="ij")
        I, J = I.reshape(-1), J.reshape(-1)
        keep = ~((I < 0) & (J < 0)) & ~((I == J) & (I >= 0))
        return I[keep], J[keep]

    def moves(self, state: _UnitState) -> np.ndarray:
        """Every feasible move, as an int array (M, 2)."""
        I, J = self._candidates(state)
        out = []
        for c in range(0, I.size, 4096):
            sl = slice(c, c + 4096)
            ok = self._ok(state, I[sl], J[sl])
            out.append(np.stack([I[sl][ok], J[sl][ok]], 1))
        return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)

    def apply(self, state: _UnitState, moves: np.ndarray) -> np.ndarray:
        mv = np.asarray(moves, np.int64).reshape(-1, 2)
        X = np.repeat(state.x[None], mv.shape[0], 0)
        k = np.arange(mv.shape[0])
        d, u = mv[:, 0] >= 0, mv[:, 1] >= 0
        X[k[d], mv[d, 0]] -= 1.0
        X[k[u], mv[u, 1]] += 1.0
        return X.reshape((mv.shape[0],) + self.shape)

    def random_move(self, state: _UnitState, rng: np.random.Generator,
                    tries: int = 64) -> np.ndarray | None:
        """Uniform over the feasible moves: rejection sampling from all pairs (down, up)
        (uniform over a superset), then enumeration after ``tries`` rejections."""
        down, up = self._ends(state)
        for _ in range(tries):
            i, j = int(down[rng.integers(down.size)]), int(up[rng.integers(up.size)])
            if (i < 0 and j < 0) or i == j:
                continue
            if self._ok(state, np.array([i]), np.array([j]))[0]:
                return np.array([i, j], np.int64)
        mv = self.moves(state)
        return None if mv.shape[0] == 0 else mv[int(rng.integers(mv.shape[0]))]

    def commit(self, state: _UnitState, move: np.ndarray) -> None:
        i, j = (int(v) for v in np.asarray(move).reshape(2))
        for c, s in ((i, -1.0), (j, 1.0)):
            if c >= 0:
                state.x[c] += s
                for A, lhs in ((self._Aub, state.ub), (self._Aeq, state.eq)):
                    sl = slice(A.indptr[c], A.indptr[c + 1])
                    lhs[A.indices[sl]] += s * A.data[sl]
        state.commits += 1
        if state.commits % 1024 == 0:   # bound the drift of the incremental row sums
            state.ub, state.eq = self.spec.A_ub @ state.x, self.spec.A_eq @ state.x
