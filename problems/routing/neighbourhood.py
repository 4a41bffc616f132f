"""Local moves between simple corner-to-corner paths of a grid, for local search and annealing.

`PathDetour` is a `surco.search.Neighbourhood` whose moves are the BFACF moves on lattice
paths with fixed end points (Berg & Foerster, Phys. Lett. B 106, 1981; Aragão de Carvalho,
Caracciolo & Fröhlich, Nucl. Phys. B 215, 1983), kept inside the n×n grid and self-avoiding:

* *corner flip* (length ±0): where the path turns at node b between a and c, go through the
  opposite corner of the unit square a–b–c instead;
* *detour* (length +2): replace an edge u→v by the three other sides of one of the (at most
  two) unit squares that contain it, u→u'→v'→v;
* *shortcut* (length −2): the inverse, replace a U-turn u→u'→v'→v (u, v grid neighbours) by
  the edge u→v.

Every neighbour is again a simple path from the top-left to the bottom-right corner (checked
incrementally on the node set, never by a solver), so `surco.search.local_search` and
`surco.search.simulated_annealing` run over the on-time-arrival paths unchanged:

    >>> import numpy as np
    >>> from surco.problems import routing as R
    >>> nb = R.PathDetour(3)
    >>> x = R.oracle(3).solve(np.ones(24)).x          # a shortest (4-edge) path
    >>> all(len(R.path_nodes(z, 3)) - 1 in (4, 6) for z in nb.neighbours(x))
    True

A move is a row ``(kind, i, d)`` of an int array: kind 0 flips the corner at path position
i; kind 1 detours the edge (path[i], path[i+1]) to side d ∈ {0, 1}; kind 2 shortcuts the
U-turn path[i] → … → path[i+3].
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from surco.search import Neighbourhood

from .instances import grid_graph
from .problem import path_nodes

__all__ = ["PathDetour"]

_FLIP, _DETOUR, _SHORTCUT = 0, 1, 2


@functools.lru_cache(maxsize=None)
def _edge_index(n: int) -> dict[tuple[int, int], int]:
    _, edges, _, _ = grid_graph(n)
    return {(int(u), int(v)): e for e, (u, v) in enumerate(edges)}


@dataclasses.dataclass
class _PathState:
    nodes: list[int]
    on: set[int]
    x: np.ndarray


class PathDetour(Neighbourhood):
    """BFACF moves (corner flip, detour, shortcut) between simple s–t paths of the n×n grid.

    Args:
      n: grid size (>= 2); x has shape (E,) = (4·n·(n − 1),), the edge indicator of
        `surco.problems.routing.grid_graph`.

    Raises:
      ValueError: n not an int >= 2 (from `grid_graph`).
    """

    def __init__(self, n: int):
        num_nodes, edges, self.source, self.sink = grid_graph(n)
        self.n = int(n)
        self.shape = (len(edges),)
        self._eidx = _edge_index(self.n)

    def __repr__(self) -> str:
        return f"PathDetour(n={self.n})"

    # -- helpers -----------------------------------------------------------------------------
    def _rc(self, v: int) -> tuple[int, int]:
        return divmod(v, self.n)

    def _node(self, r: int, c: int) -> int | None:
        return r * self.n + c if 0 <= r < self.n and 0 <= c < self.n else None

    def _x_of(self, nodes: list[int]) -> np.ndarray:
        x = np.zeros(self.shape, np.float64)
        x[[self._eidx[(a, b)] for a, b in zip(nodes[:-1], nodes[1:])]] = 1.0
        return x

    def _sides(self, u: int, v: int) -> list[tuple[int, int]]:
        """The two offsets perpendicular to the grid edge u–v."""
        (ru, cu), (rv, cv) = self._rc(u), self._rc(v)
        return [(0, 1), (0, -1)] if ru != rv else [(1, 0), (-1, 0)]

    def _moved(self, nodes: list[int], move) -> list[int]:
        kind, i, d = (int(m) for m in move)
        if kind == _FLIP:
            a, b, c = nodes[i - 1], nodes[i], nodes[i + 1]
            (ra, ca), (rb, cb), (rc, cc) = self._rc(a), self._rc(b), self._rc(c)
            return nodes[:i] + [self._node(ra + rc - rb, ca + cc - cb)] + nodes[i + 1:]
        if kind == _DETOUR:
            u, v = nodes[i], nodes[i + 1]
            dr, dc = self._sides(u, v)[d]
            (ru, cu), (rv, cv) = self._rc(u), self._rc(v)
            return nodes[:i + 1] + [self._node(ru + dr, cu + dc), self._node(rv + dr, cv + dc)] \
                + nodes[i + 1:]
        if kind == _SHORTCUT:
            return nodes[:i + 1] + nodes[i + 3:]
        raise ValueError(f"PathDetour: unknown move kind {kind} (0 flip, 1 detour, 2 shortcut)")

    # -- the Neighbourhood interface -----------------------------------------------------------
    def start(self, x: np.ndarray) -> _PathState:
        """A state at path x. Raises ValueError (saying why) if x is not a simple s–t path."""
        x = np.asarray(x, np.float64).reshape(-1)
        if x.shape != self.shape:
            raise ValueError(f"PathDetour: x must have {self.shape[0]} entries for the "
                             f"{self.n}×{self.n} grid, got {x.shape[0]}")
        nodes = path_nodes(x, self.n)
        return _PathState(nodes, set(nodes), self._x_of(nodes))

    def point(self, state: _PathState) -> np.ndarray:
        return state.x

    def moves(self, state: _PathState) -> np.ndarray:
        """Every flip, detour and shortcut that keeps the path simple and inside the grid."""
        nodes, on = state.nodes, state.on
        out: list[tuple[int, int, int]] = []
        L = len(nodes)
        for i in range(1, L - 1):  # corner flips
            (ra, ca), (rb, cb), (rc, cc) = (self._rc(nodes[j]) for j in (i - 1, i, i + 1))
            if ra != rc and ca != cc:
                w = self._node(ra + rc - rb, ca + cc - cb)
                if w is not None and w not in on:
                    out.append((_FLIP, i, 0))
        for i in range(L - 1):  # detours
            u, v = nodes[i], nodes[i + 1]
            (ru, cu), (rv, cv) = self._rc(u), self._rc(v)
            for d, (dr, dc) in enumerate(self._sides(u, v)):
                a, b = self._node(ru + dr, cu + dc), self._node(rv + dr, cv + dc)
                if a is not None and b is not None and a not in on and b not in on:
                    out.append((_DETOUR, i, d))
        for i in range(L - 3):  # shortcuts
            (ru, cu), (rv, cv) = self._rc(nodes[i]), self._rc(nodes[i + 3])
            if abs(ru - rv) + abs(cu - cv) == 1:
                out.append((_SHORTCUT, i, 0))
        return np.asarray(out, np.int64).reshape(-1, 3)

    def apply(self, state: _PathState, moves: np.ndarray) -> np.ndarray:
        moves = np.asarray(moves, np.int64).reshape(-1, 3)
        out = np.zeros((len(moves),) + self.shape, np.float64)
        for k, m in enumerate(moves):
            out[k] = self._x_of(self._moved(state.nodes, m))
        return out

    def random_move(self, state: _PathState, rng: np.random.Generator) -> np.ndarray | None:
        mv = self.moves(state)
        return None if len(mv) == 0 else mv[int(rng.integers(len(mv)))]

    def commit(self, state: _PathState, move: np.ndarray) -> None:
        nodes = self._moved(state.nodes, np.asarray(move).reshape(3))
        state.nodes, state.on, state.x = nodes, set(nodes), self._x_of(nodes)
