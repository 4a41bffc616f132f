"""One outcome vocabulary: why a run stopped.

Every driver in the package (``surco.zero``, ``surco.lns``, the searches, LANCER, the
plateau-escaping SurCo and the harness's `Run`) reports why it stopped with one member of
`StopReason`. The enum derives from ``str``, so ``result.stopped == "budget"`` keeps working
and results written by earlier versions (plain strings) load as the same members.

The solver layer's `solvers.Status` says how a single *solve* ended; `StopReason` says how a
whole *run* (many solves or evaluations) ended.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

__all__ = ["StopReason", "stop_reason", "MeteredResult"]


class StopReason(str, Enum):
    """Why a run stopped.

    Limits the caller set:
      STEPS: the step count (``steps=``) was reached.
      ITERATIONS: the iteration count of a search or LNS (``iterations=``) was reached.
      BUDGET: the meter's evaluation or second budget (`surco.Budget`) ran out.
      TIME_LIMIT: the wall-clock limit (``time_limit=``) cut the run short.
      TARGET: the objective reached the caller's ``target``.
      PATIENCE: no improvement for ``patience`` steps.
    Ends the method reached by itself:
      LOCAL_OPTIMUM: no feasible neighbour is better (local search).
      NO_NEIGHBOURS: the current point has no feasible neighbour.
      STALLED: the method proposed nothing new (annealing, LANCER).
    Ends from outside:
      INTERRUPTED: Ctrl-C (KeyboardInterrupt); the result holds what was found before it.
      ERROR: an exception ended the run; the result holds what was found before it.
    """

    STEPS = "steps"
    ITERATIONS = "iterations"
    BUDGET = "budget"
    TIME_LIMIT = "time_limit"
    TARGET = "target"
    PATIENCE = "patience"
    LOCAL_OPTIMUM = "local optimum"
    NO_NEIGHBOURS = "no neighbours"
    STALLED = "stalled"
    INTERRUPTED = "interrupted"
    ERROR = "error"

    def __str__(self) -> str:  # "budget", not "StopReason.BUDGET", in tables and JSON
        return self.value

    @property
    def by_limit(self) -> bool:
        """True when a limit the caller set ended the run (steps, budget, time, target...)."""
        return self in (StopReason.STEPS, StopReason.ITERATIONS, StopReason.BUDGET,
                        StopReason.TIME_LIMIT, StopReason.TARGET, StopReason.PATIENCE)


_ALIASES = {"max iterations": StopReason.ITERATIONS, "timeout": StopReason.TIME_LIMIT}


def stop_reason(value: "str | StopReason") -> StopReason:
    """The `StopReason` for a member or its string (as stored by earlier versions).

    Raises ValueError naming the unknown value and listing the known ones.
    """
    if isinstance(value, StopReason):
        return value
    if value in _ALIASES:
        return _ALIASES[value]
    try:
        return StopReason(value)
    except ValueError:
        known = ", ".join(repr(m.value) for m in StopReason)
        raise ValueError(f"unknown stop reason {value!r}; known: {known}") from None


@dataclasses.dataclass(repr=False)
class MeteredResult:
    """What every surrogate search that evaluates the true cost through a `surco.Meter`
    returns (`surco.lns.LNSResult`, `surco.lancer.LancerResult`, `surco.plateau.PlateauResult`
    add their own counts after these fields).

    Attributes:
      x: the best solution the run evaluated (in Ω); value: its true cost (from the meter).
      c, theta: the surrogate cost and its parameters that go with x (see each method).
      history: per iteration, step or round, the method's own record (see each method).
      stopped: a `StopReason`; seconds: wall time.
      evaluations: the evaluations of the true cost this run made through the meter (new
        distinct x; a cached x is free, as the meter counts).
    """

    x: Any
    value: float
    c: Any
    theta: Any
    history: dict
    stopped: StopReason
    seconds: float
    evaluations: int

    def __repr__(self) -> str:
        base = {f.name for f in dataclasses.fields(MeteredResult)}
        counts = "".join(f", {f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                         if f.name not in base and isinstance(getattr(self, f.name), int))
        return (f"{type(self).__name__}(value={self.value:.6g}, "
                f"evaluations={self.evaluations!r}{counts}, stopped={self.stopped!r}, "
                f"seconds={self.seconds:.3g})")
