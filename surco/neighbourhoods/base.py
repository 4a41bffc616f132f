"""`Neighbourhood`: the interface every neighbourhood of Ω implements for the searches of
`surco.search` (local search, simulated annealing, LNS), and `as_rng`.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

__all__ = ["Neighbourhood", "as_rng"]


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is), an int seed or None (fresh entropy).

    Raises:
      TypeError: anything else (a bool included).
    """
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
        m = self.random_move(s, as_rng(rng))
        return None if m is None else self.apply(s, m[None])[0]

    def contains(self, x: np.ndarray) -> bool:
        """Whether x lies in Ω (by the same checks as `start`)."""
        try:
            self.start(x)
        except ValueError:
            return False
        return True


# -- one choice per row ---------------------------------------------------------------------------
