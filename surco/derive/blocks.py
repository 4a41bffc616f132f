"""Neighbourhoods of a `LinearSpec` with named blocks (`LinearSpec.from_blocks`).

A block of shape (R, K) whose every row has its choice row ``Σ_k x_b[r, k] = 1`` (an
``"assign"`` block) gets the moves of `surco.search.RowChoice` (move one row to another
column, swap two rows' columns: the 2-exchange of Papadimitriou & Steiglitz 1982, ch. 19)
with the other blocks held at their values: each row of Ω that touches the block becomes a
row over the block alone, its right-hand side less the other blocks' part (so that
``assign[i, j] <= open[j]`` forbids closed facilities, and capacities count only the
block). `NeighbourhoodUnion` joins those moves with the neighbourhood Ω gets without
blocks (unit moves or the solver repair, `surco.derive.neighbourhood_for`), which moves the
other blocks (open or close a facility).
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from surco.search import Neighbourhood, RowChoice
from surco.solvers import LinearSpec

__all__ = ["BlockChoice", "NeighbourhoodUnion", "choice_blocks"]


def choice_blocks(spec: LinearSpec) -> list[str]:
    """The 2-D blocks of ``spec`` that are binary with a choice row ``Σ_k x_b[r, k] = 1``
    (an equality row over that row of the block alone, unit coefficients) for every row."""
    if spec.blocks is None:
        return []
    E = spec.A_eq.tocsr()
    out = []
    for name, shape in spec.blocks.shapes.items():
        if len(shape) != 2:
            continue
        sl = spec.blocks.slice(name)
        if not (spec.integer[sl].all() and np.all(spec.lb[sl] >= 0) and np.all(spec.ub[sl] <= 1)):
            continue
        K = shape[1]
        has = np.zeros(shape[0], bool)
        for r in range(E.shape[0]):
            cols = E.indices[E.indptr[r]:E.indptr[r + 1]]
            vals = E.data[E.indptr[r]:E.indptr[r + 1]]
            if cols.size == 0 or cols.min() < sl.start or cols.max() >= sl.stop:
                continue
            rows = (cols - sl.start) // K
            if np.all(rows == rows[0]) and np.all(vals == vals[0]) and spec.b_eq[r] == vals[0]:
                has[rows[0]] = True
        if has.all():
            out.append(name)
    return out


@dataclasses.dataclass
class _ChoiceState:
    x: np.ndarray                      # flat float64 over all of Ω
    inner: RowChoice | None            # None: the block has no valid neighbourhood here
    state: Any


class BlockChoice(Neighbourhood):
    """`RowChoice` moves on one block of x (shape (R, K), one choice per row), the other
    blocks held at their values (module docstring). A move is a `RowChoice` move.

    Args:
      spec: Ω with named blocks. block: the block's name. cache: how many neighbourhoods
        (one per value of the other blocks) are kept.

    Raises:
      ValueError: the spec has no such block, or it is not 2-D.
    """

    def __init__(self, spec: LinearSpec, block: str, cache: int = 64):
        if spec.blocks is None or block not in spec.blocks.shapes:
            raise ValueError(f"BlockChoice: Ω {spec.name!r} has no block {block!r}")
        if len(spec.blocks.shapes[block]) != 2:
            raise ValueError(f"BlockChoice: block {block!r} has shape "
                             f"{spec.blocks.shapes[block]}; expected (rows, columns)")
        self.spec, self.block, self.shape = spec, block, tuple(spec.shape)
        self._sl = spec.blocks.slice(block)
        inside = np.zeros(spec.n, bool)
        inside[self._sl] = True
        self._in, self._out = np.flatnonzero(inside), np.flatnonzero(~inside)
        self._parts = []
        for A, b in ((spec.A_ub, spec.b_ub), (spec.A_eq, spec.b_eq)):
            A = A.tocsc()
            Ab, Ao = A[:, self._in].tocsr(), A[:, self._out].tocsr()
            touch = np.diff(Ab.indptr) > 0            # rows without the block are constant
            self._parts.append((Ab[touch], Ao[touch], b[touch]))
        self._cache: OrderedDict = OrderedDict()
        self._size = int(cache)

    def _inner(self, x: np.ndarray) -> RowChoice | None:
        key = x[self._out].tobytes()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        (Bu, Ou, bu), (Be, Oe, be) = self._parts
        xo = x[self._out]
        sub = LinearSpec(shape=self.spec.blocks.shapes[self.block], A_ub=Bu, b_ub=bu - Ou @ xo,
                         A_eq=Be, b_eq=be - Oe @ xo, lb=self.spec.lb[self._sl],
                         ub=self.spec.ub[self._sl], integer=True,
                         name=f"{self.spec.name}[{self.block}]")
        try:
            nb = RowChoice.from_spec(sub)
        except ValueError:
            nb = None
        self._cache[key] = nb
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return nb

    def start(self, x) -> _ChoiceState:
        """A state at x. Raises ValueError if x is not in Ω."""
        x = np.asarray(x, np.float64).reshape(-1)
        if x.size != self.spec.n or not self.spec.contains(x):
            raise ValueError(f"BlockChoice: x is not in Ω {self.spec.name!r}")
        x = np.where(self.spec.integer, np.round(x), x) + 0.0
        inner = self._inner(x)
        block = x[self._sl].reshape(self.spec.blocks.shapes[self.block])
        return _ChoiceState(x, inner, None if inner is None else inner.start(block))

    def point(self, state: _ChoiceState) -> np.ndarray:
        return state.x.reshape(self.shape)

    def moves(self, state: _ChoiceState) -> np.ndarray:
        if state.inner is None:
            return np.zeros((0, 4), np.int64)
        return state.inner.moves(state.state)

    def apply(self, state: _ChoiceState, moves: np.ndarray) -> np.ndarray:
        mv = np.asarray(moves, np.int64).reshape(-1, 4)
        X = np.repeat(state.x[None], mv.shape[0], 0)
        if mv.shape[0]:
            X[:, self._sl] = state.inner.apply(state.state, mv).reshape(mv.shape[0], -1)
        return X.reshape((mv.shape[0],) + self.shape)

    def random_move(self, state: _ChoiceState, rng: np.random.Generator) -> np.ndarray | None:
        return None if state.inner is None else state.inner.random_move(state.state, rng)

    def commit(self, state: _ChoiceState, move: np.ndarray) -> None:
        state.inner.commit(state.state, move)
        state.x[self._sl] = state.inner.point(state.state).reshape(-1)


@dataclasses.dataclass
class _UnionState:
    states: list


#: the width of the moves of each neighbourhood that `neighbourhood_for` may join
_WIDTHS = {"RowChoice": 4, "BlockChoice": 4, "UnitExchange": 2, "Cardinality": 2,
           "Reshaped": 2, "SolverRepair": 1}


class NeighbourhoodUnion(Neighbourhood):
    """The union of neighbourhoods over the same Ω and x. A move is ``[part, w, *move]``:
    the part's move of width w, padded with zeros to ``2 + width`` (one width for all, so
    that moves stack). `random_move` draws a part uniformly among those with a move, then a
    move uniformly within it; a commit restarts the other parts at the new x.

    Args:
      parts: the neighbourhoods. width: the widest move of any part (default: from the
        parts' kinds, 4 for one unknown).

    Raises:
      ValueError: no part, parts over different shapes of x, or (later) a move wider than
        ``width``.
    """

    def __init__(self, parts: Sequence[Neighbourhood], width: int | None = None):
        parts = list(parts)
        if not parts or len({tuple(p.shape) for p in parts}) != 1:
            raise ValueError("NeighbourhoodUnion: expected neighbourhoods over one shape of x, "
                             f"got {[tuple(p.shape) for p in parts]}")
        self.parts, self.shape = parts, tuple(parts[0].shape)
        self.width = int(width or max(_WIDTHS.get(type(p).__name__, 4) for p in parts))

    def start(self, x) -> _UnionState:
        return _UnionState([p.start(x) for p in self.parts])

    def point(self, state: _UnionState) -> np.ndarray:
        return self.parts[0].point(state.states[0])

    def _tag(self, i: int, m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, np.int64)
        m = m.reshape(m.shape[0], -1)
        if m.shape[1] > self.width:
            raise ValueError(f"NeighbourhoodUnion: part {i} ({type(self.parts[i]).__name__}) "
                             f"made moves of width {m.shape[1]}, more than width={self.width}")
        return np.concatenate([np.full((m.shape[0], 1), i), np.full((m.shape[0], 1), m.shape[1]),
                               m, np.zeros((m.shape[0], self.width - m.shape[1]), np.int64)], 1)

    def moves(self, state: _UnionState) -> np.ndarray:
        return np.concatenate([self._tag(i, p.moves(s)) for i, (p, s) in
                               enumerate(zip(self.parts, state.states))])

    def apply(self, state: _UnionState, moves: np.ndarray) -> np.ndarray:
        mv = np.asarray(moves, np.int64)
        mv = mv.reshape(-1, mv.shape[-1])
        X = np.zeros((mv.shape[0],) + self.shape)
        for i, (p, s) in enumerate(zip(self.parts, state.states)):
            sel = np.flatnonzero(mv[:, 0] == i)
            if sel.size:
                w = int(mv[sel[0], 1])
                X[sel] = np.asarray(p.apply(s, mv[sel, 2:2 + w])).reshape((sel.size,)
                                                                           + self.shape)
        return X

    def random_move(self, state: _UnionState, rng: np.random.Generator) -> np.ndarray | None:
        for i in rng.permutation(len(self.parts)):
            m = self.parts[i].random_move(state.states[i], rng)
            if m is not None:
                return self._tag(int(i), np.asarray(m).reshape(1, -1))[0]
        return None

    def commit(self, state: _UnionState, move: np.ndarray) -> None:
        mv = np.asarray(move, np.int64).reshape(-1)
        i, w = int(mv[0]), int(mv[1])
        self.parts[i].commit(state.states[i], mv[2:2 + w])
        x = np.array(self.parts[i].point(state.states[i]), np.float64)
        state.states = [s if j == i else p.start(x)
                        for j, (p, s) in enumerate(zip(self.parts, state.states))]
