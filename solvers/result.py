"""Solver outcomes: status values, the `Solution` record and the typed errors.

Failure is a value (`Status`) inside the solver layer and becomes an exception only at the
boundary where a caller asked for an answer (`Solution.raise_for_status`), in the manner of
optimistix's ``RESULTS`` and MathOpt's ``TerminationReason``.
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any

import numpy as np


class Status(enum.IntEnum):
    """Termination status of one solve.

    ``OPTIMAL``: proven optimal (within the solver's tolerances).
    ``FEASIBLE``: a limit (time, nodes) was reached and the incumbent is returned.
    ``INFEASIBLE`` / ``UNBOUNDED``: the model has no solution / no finite optimum.
    ``ERROR``: anything else (numerical trouble, a limit with no incumbent, a crash).
    """

    OPTIMAL = 0
    FEASIBLE = 1
    INFEASIBLE = 2
    UNBOUNDED = 3
    ERROR = 4


class SolverError(RuntimeError):
    """A solver failed to return a usable point."""


class InfeasibleError(SolverError):
    """The feasible set is empty."""


class UnboundedError(SolverError):
    """The objective is unbounded below over the feasible set."""


class SolverTimeout(SolverError):
    """The time limit was reached before any feasible point was found."""


class ModelTooLargeError(SolverError):
    """`make_solver` refused to build a model above its size limit without a time limit
    (``max_size``, `surco.solvers.registry.MAX_MODEL_SIZE`); the message gives the size and
    how to lift the limit."""


@dataclasses.dataclass(frozen=True)
class Solution:
    """Result of ``solve(c)``.

    Attributes:
      x: the solution, a float64 array shaped like the spec's ``shape`` (NaN-free whenever
        ``status`` is OPTIMAL or FEASIBLE; all-NaN otherwise).
      objective: ``c · x`` as reported by the solver (NaN when there is no point).
      status: a `Status`.
      stats: ``wall_time`` (seconds, measured around the solver call, including objective
        update and result extraction) and ``solve_time`` (seconds reported by the solver
        itself), plus backend specific entries. A solve that a limit ended (status
        FEASIBLE, or ERROR) says which in ``limit``: ``"time"`` (the solver's clock, or
        `Solver.solve` stopping it at its time limit), ``"node"``, ``"solution"``,
        ``"iteration"``, ``"gap"``, ``"interrupted"``, ... (the names MathOpt's
        ``LimitProto`` uses, lower case); a time limit without a point also sets
        ``timeout`` and ``time_limit``.
    """

    x: np.ndarray
    objective: float
    status: Status
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (Status.OPTIMAL, Status.FEASIBLE)

    def raise_for_status(self, name: str = "model") -> "Solution":
        """Return self if a point is available, else raise the matching typed error."""
        if self.ok:
            return self
        detail = self.stats.get("detail", "")
        suffix = f": {detail}" if detail else ""
        if self.status == Status.INFEASIBLE:
            raise InfeasibleError(f"{name!r} is infeasible{suffix}")
        if self.status == Status.UNBOUNDED:
            raise UnboundedError(f"{name!r} is unbounded{suffix}")
        if self.stats.get("timeout"):
            raise SolverTimeout(
                f"{name!r}: time limit of {self.stats.get('time_limit')} s reached without a "
                f"feasible point{suffix}")
        raise SolverError(f"{name!r}: solver error{suffix}")
