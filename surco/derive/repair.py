"""The general neighbourhood (`SolverRepair`) and the choice of a neighbourhood for a problem
(`neighbourhood_for`); see `surco.derive.neighbourhoods` for the order of preference."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import scipy.sparse as sp

from surco.problem import Instance, Problem
from surco.search import Neighbourhood, RowChoice
from surco.solvers import LinearSpec, Solver, Status, make_solver

from .blocks import BlockChoice, NeighbourhoodUnion, choice_blocks
from .gradients import gradient_cost
from .mixed import completed_for
from .neighbourhoods import Reshaped, UnitExchange, cardinality_of, classify_rows
from .scip import spec_of

__all__ = ["SolverRepair", "neighbourhood_for"]


@dataclasses.dataclass
class _RepairState:
    x: np.ndarray                  # flat
    cache: list                    # candidate neighbours (flat) made for this x
    rng: np.random.Generator


class SolverRepair(Neighbourhood):
    """Destroy and repair with the solver: free a ball of the variable–row graph (entries
    sharing a row are neighbours) of ``free``·n entries around a random entry (an entry
    of x's support half of the time), fix every other entry at its value, and solve Ω for
    the linear cost ∇f(x) (`Solver.fixed`) — plus Gaussian noise of ``noise`` times the
    gradient's RMS for every candidate but the first, so that candidates differ. A move
    is one candidate; `moves` makes ``candidates`` of them (distinct, ≠ x) per x.

    Args:
      spec: Ω. solver: a solver over ``spec`` with `Solver.fixed` (a MILP/LP backend).
      cost: ``x (flat) -> linear cost (flat)``, e.g. `gradient_cost`.
      free: the share of entries freed per candidate (at least 2).
      candidates: candidates per `moves` call. noise: see above. seed: the generator
        used by `moves` (`random_move` uses the search's generator).

    Raises:
      ValueError: free not in (0, 1], candidates < 1, negative noise.
    """

    def __init__(self, spec: LinearSpec, solver: Solver, cost: Callable[[np.ndarray], np.ndarray],
                 *, free: float = 0.2, candidates: int = 8, noise: float = 0.5, seed: int = 0):
        if not 0 < free <= 1:
            raise ValueError(f"SolverRepair: free must lie in (0, 1], got {free!r}")
        if int(candidates) < 1 or noise < 0:
            raise ValueError(f"SolverRepair: need candidates >= 1 and noise >= 0, got "
                             f"{candidates!r}, {noise!r}")
        self.spec, self.shape, self.solver, self.cost = spec, tuple(spec.shape), solver, cost
        self.k = max(2, math.ceil(free * spec.n))
        self.candidates, self.noise, self.seed = int(candidates), float(noise), seed
        M = sp.vstack([spec.A_ub, spec.A_eq]).tocsr()
        self._rows, self._cols = M, M.tocsc()

    def start(self, x) -> _RepairState:
        """A state at x. Raises ValueError if x is not in Ω."""
        x = np.asarray(x, np.float64).reshape(-1)
        if x.size != self.spec.n or not self.spec.contains(x):
            raise ValueError(f"SolverRepair: x is not in Ω {self.spec.name!r}")
        return _RepairState(x.copy(), [], np.random.default_rng(self.seed))

    def point(self, state: _RepairState) -> np.ndarray:
        return state.x.reshape(self.shape)

    def _ball(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Free mask: breadth-first over the variable–row graph from a random entry."""
        support = np.flatnonzero(x != 0)
        seed = int(rng.choice(support) if support.size and rng.random() < 0.5
                   else rng.integers(self.spec.n))
        free = np.zeros(self.spec.n, bool)
        free[seed] = True
        frontier, count = [seed], 1
        while frontier and count < self.k:
            nxt = []
            for v in frontier:
                rows = self._cols.indices[self._cols.indptr[v]:self._cols.indptr[v + 1]]
                for r in rng.permutation(rows):
                    vs = self._rows.indices[self._rows.indptr[r]:self._rows.indptr[r + 1]]
                    for u in rng.permutation(vs[~free[vs]]):
                        if count >= self.k:
                            break
                        free[u] = True
                        nxt.append(int(u))
                        count += 1
            frontier = nxt
        if count < self.k:   # the ball ran out (few rows): add random entries
            rest = np.flatnonzero(~free)
            free[rng.choice(rest, min(self.k - count, rest.size), replace=False)] = True
        return free

    def _candidate(self, state: _RepairState, rng: np.random.Generator,
                   exact: bool) -> np.ndarray | None:
        c = np.asarray(self.cost(state.x.reshape(self.shape)), np.float64).reshape(-1)
        if not exact and self.noise > 0:
            rms = float(np.sqrt(np.mean(c * c))) or 1.0
            c = c + self.noise * rms * rng.standard_normal(c.size)
        free = self._ball(state.x, rng)
        with self.solver.fixed(~free.reshape(self.shape), state.x.reshape(self.shape)):
            sol = self.solver.solve(c.reshape(self.shape), check=False)
        if sol.status not in (Status.OPTIMAL, Status.FEASIBLE):
            return None
        x = np.asarray(sol.x, np.float64).reshape(-1)
        x = np.where(self.spec.integer, np.round(x), x) + 0.0
        if np.array_equal(x, state.x) or not self.spec.contains(x):
            return None
        return x

    def moves(self, state: _RepairState) -> np.ndarray:
        """Make up to ``candidates`` distinct repaired neighbours of x; their indices (M, 1)."""
        if not state.cache:
            seen = set()
            for i in range(self.candidates):
                x = self._candidate(state, state.rng, exact=i == 0)
                if x is not None and x.tobytes() not in seen:
                    seen.add(x.tobytes())
                    state.cache.append(x)
        return np.arange(len(state.cache), dtype=np.int64)[:, None]

    def apply(self, state: _RepairState, moves: np.ndarray) -> np.ndarray:
        mv = np.asarray(moves, np.int64).reshape(-1)
        if mv.size == 0:
            return np.zeros((0,) + self.shape)
        return np.stack([state.cache[int(m)] for m in mv]).reshape((mv.size,) + self.shape)

    def random_move(self, state: _RepairState, rng: np.random.Generator,
                    tries: int = 8) -> np.ndarray | None:
        """One new repaired neighbour (up to ``tries`` attempts to find one ≠ x)."""
        for _ in range(tries):
            x = self._candidate(state, rng, exact=False)
            if x is not None:
                state.cache.append(x)
                return np.array([len(state.cache) - 1], np.int64)
        return None

    def commit(self, state: _RepairState, move: np.ndarray) -> None:
        state.x = state.cache[int(np.asarray(move).reshape(-1)[0])].copy()
        state.cache = []


def neighbourhood_for(problem: Problem, instance: Instance, x0: np.ndarray | None = None, *,
                      backend: str = "highs", free: float = 0.2, candidates: int = 8,
                      seed: int = 0) -> tuple[Neighbourhood, str]:
    """The neighbourhood of Ω(instance) read off its rows (order of preference in
    `surco.derive.neighbourhoods`), and a line saying which and why. On a spec with named
    blocks, each binary (R, K) block with a choice row per row also gets `BlockChoice`
    moves (move / swap rows within the block, the other blocks held), joined
    (`NeighbourhoodUnion`) with the neighbourhood the rows give without blocks.

    Args:
      problem, instance: the problem (its Ω must be a `LinearSpec` or have one) and the
        instance (the repair's gradient is f's on it).
      x0: a start in Ω: a unit-move or mixed (`surco.derive.mixed.CompletedMoves`)
        neighbourhood without any move from x0 (e.g. flow conservation rows) gives way to
        the solver repair.
      backend: the solver of the repair (`make_solver`). free, candidates, seed: of
        `SolverRepair`.

    Raises:
      TypeError: Ω has no `LinearSpec`.
    """
    spec = spec_of(problem, instance)
    try:
        return RowChoice.from_spec(spec), "assignment rows: RowChoice (move a row, swap two rows)"
    except ValueError:
        pass
    nb, why = _by_rows(problem, instance, spec, x0, backend, free, candidates, seed)
    blocks = choice_blocks(spec)
    if not blocks:
        return nb, why
    parts = [BlockChoice(spec, b) for b in blocks]
    return NeighbourhoodUnion(parts + [nb]), (
        f"assignment rows in blocks {blocks}: RowChoice moves and swaps in each, the other "
        f"blocks held; with {why}")


def _by_rows(problem: Problem, instance: Instance, spec: LinearSpec, x0, backend: str,
             free: float, candidates: int, seed: int) -> tuple[Neighbourhood, str]:
    """`neighbourhood_for` after `RowChoice`, without blocks: cardinality, unit moves,
    solver repair."""
    kinds = classify_rows(spec)
    card = cardinality_of(spec, kinds)
    if card is not None:
        nb = card if tuple(spec.shape) == (spec.n,) else Reshaped(card, spec.shape)
        return nb, "cardinality rows: Cardinality (swap, add, drop)"
    if kinds.integer:
        ux = UnitExchange(spec)
        if x0 is None or ux.moves(ux.start(x0)).shape[0] > 0:
            return ux, (f"integer x ({kinds.describe()}): UnitExchange (unit moves, all rows "
                        "checked)")
    mixed = completed_for(problem, instance, spec, x0)
    if mixed is not None:
        return mixed[0], (f"integer and continuous entries ({kinds.describe()}): "
                          f"CompletedMoves ({mixed[1]})")
    why = "continuous entries" if not kinds.integer else "no unit move keeps the rows"
    rep = SolverRepair(spec, make_solver(spec, backend=backend), gradient_cost(problem, instance),
                       free=free, candidates=candidates, seed=seed)
    return rep, (f"{why} ({kinds.describe()}): SolverRepair (free {rep.k} entries, re-solve "
                 "for ∇f)")
