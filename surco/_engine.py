"""Machinery shared by SurCo's drivers (`surco.driver`, `surco.prior`, `surco.lns`,
`surco.plateau`, `surco.lancer`): solvers per instance, batched objectives, a meter for
solver time, the control of a run (Ctrl-C, a deadline, errors raised inside solves) and the
checks of instances and arguments. Private: the public API is `surco.zero`, `surco.prior`,
`surco.hybrid`."""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from concurrent.futures import Executor
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from surco.guidance import DEFAULT_SOLVE_SECONDS
from surco.outcome import StopReason
from surco.problem import Instance, Problem, ProblemError
from surco.solvers import LinearSpec, Solver, SolverStack, Status, make_solver
from surco.solvers.blocking import deadline_scope
from surco.solvers.registry import check_model_size


class RunControl:
    """The stop requests of one run, read by its `Metered` solver before every solve.

    Once a stop is requested (Ctrl-C, or the deadline once ``arm`` was called) the remaining
    solves of the step return at once with status ERROR, and a solve in flight at the
    deadline is stopped (see `Metered`), so the step ends at the deadline; the run then
    stops at the step boundary and keeps its best-so-far.
    An exception raised inside a solve is kept in ``error`` (and the solve reported as
    failed) instead of unwinding through JAX's callback machinery, so the caller can raise
    it as it is.

    Attributes:
      reason: None, or why the run must stop (`StopReason.INTERRUPTED`, `TIME_LIMIT`).
      error: the first exception raised by a solve, or None.
      failure: the stats of the first failed solve (``status``, ``detail``, ``timeout``...)
        since the caller last reset it, or None.
    """

    def __init__(self, time_limit: float | None = None, t_start: float | None = None):
        t0 = time.perf_counter() if t_start is None else t_start
        self.deadline = None if time_limit is None else t0 + float(time_limit)
        self.armed = False
        self.reason: StopReason | None = None
        self.error: BaseException | None = None
        self.failure: dict[str, Any] | None = None

    def arm(self) -> None:
        """Let the deadline skip solves (called once the run has a first answer to keep)."""
        self.armed = True

    def past_deadline(self, at: float | None = None) -> bool:
        """Whether the deadline had passed at perf-counter time ``at`` (default: now)."""
        now = time.perf_counter() if at is None else at
        return self.deadline is not None and now >= self.deadline

    def stop_requested(self, at: float | None = None) -> bool:
        """Whether the run must stop; ``at`` (a perf-counter time, default now) is when the
        work about to be recorded finished, so a step that ended before the deadline is
        kept even if this check runs after it."""
        if self.reason is None and self.armed and self.past_deadline(at):
            self.reason = StopReason.TIME_LIMIT
        return self.reason is not None


_ACTIVE: list[RunControl] = []
_LOCK = threading.Lock()
_PREVIOUS_HANDLER: Any = None


def _on_sigint(signum, frame) -> None:
    """Ctrl-C: mark every active run interrupted, then hand the signal to the previous
    handler (by default: raise `KeyboardInterrupt`, which also stops a solver call that
    blocks through `surco.solvers.blocking`). Wherever the exception lands (a solver
    callback, JAX, the run's own loop, or a C++ layer that swallows it) the run sees the
    mark, skips its remaining solves and stops at the step boundary."""
    with _LOCK:
        active = list(_ACTIVE)
    for c in active:
        c.reason = StopReason.INTERRUPTED
    prev = _PREVIOUS_HANDLER
    if callable(prev):
        prev(signum, frame)


class _QuietStops(logging.Filter):
    """Drops JAX's "jax.pure_callback failed" log record (with its traceback) for the
    exceptions that a controlled run turns into its own outcome: an interrupt, a budget
    that ran out, or anything raised while a stop was already requested."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        with _LOCK:
            stopping = any(c.reason is not None for c in _ACTIVE)
        return not (stopping or isinstance(exc, KeyboardInterrupt) or is_budget_exhausted(exc))


_FILTER = _QuietStops()
_CALLBACK_LOGGER = logging.getLogger("jax._src.callback")


@contextlib.contextmanager
def controlled(control: RunControl) -> Iterator[RunControl]:
    """Run a block under ``control``: Ctrl-C requests a stop instead of raising (main thread
    only; other threads keep the process's handler), and JAX does not log tracebacks of
    callback errors that the run turns into its own outcome."""
    global _PREVIOUS_HANDLER
    installed = False
    with _LOCK:
        first = not _ACTIVE
        _ACTIVE.append(control)
    try:
        if first:
            _CALLBACK_LOGGER.addFilter(_FILTER)
            if threading.current_thread() is threading.main_thread():
                prev = signal.getsignal(signal.SIGINT)
                if callable(prev) and prev is not _on_sigint:  # not SIG_IGN / SIG_DFL
                    _PREVIOUS_HANDLER = prev
                    signal.signal(signal.SIGINT, _on_sigint)
                    installed = True
        yield control
    finally:
        with _LOCK:
            _ACTIVE.remove(control)
            last = not _ACTIVE
        if installed:
            signal.signal(signal.SIGINT, _PREVIOUS_HANDLER)
            _PREVIOUS_HANDLER = None
        if last:
            _CALLBACK_LOGGER.removeFilter(_FILTER)


def is_budget_exhausted(exc: BaseException) -> bool:
    """True for `surco.budget.BudgetExhausted`, also when JAX re-raised it from a callback
    (as a runtime error that names it)."""
    from surco.budget import BudgetExhausted
    if isinstance(exc, BudgetExhausted):
        return True
    return _from_callback(exc, "BudgetExhausted")


def is_interrupt(exc: BaseException) -> bool:
    """True for a `KeyboardInterrupt`, also when JAX re-raised it from a callback."""
    return isinstance(exc, KeyboardInterrupt) or _from_callback(exc, "KeyboardInterrupt")


def _from_callback(exc: BaseException, name: str) -> bool:
    """JAX re-raises an exception from a host callback as a runtime error (a ValueError or
    JaxRuntimeError, depending on the version) whose text holds the callback's traceback."""
    text = str(exc)
    return "allback" in text and (f"\n{name}:" in text or text.rstrip().endswith(name)
                                  or f" {name}:" in text or f".{name}:" in text)


class Metered(Solver):
    """Wraps a solver and counts its calls and wall time (per stack member when stacked).

    With a `RunControl` in ``control``, a solve is skipped (status ERROR) once the run must
    stop, a solve still running at the control's deadline (once armed) is stopped there
    (`surco.solvers.blocking.deadline_scope`: solvers that block through
    `surco.solvers.blocking.blocking_call`, i.e. every `make_solver` backend, solved in
    this thread; with an executor the workers' solves run to their end), and an exception
    raised by the wrapped solver is stored in ``control.error`` and reported as a failed
    solve rather than raised through JAX's callback.
    """

    def __init__(self, inner: Solver, control: RunControl | None = None):
        super().__init__(inner.shape, inner.name)
        self.inner = inner
        self.members = getattr(inner, "members", [inner])
        self.calls = 0
        self.seconds = np.zeros(len(self.members))
        self.control = control

    def __getattr__(self, name: str) -> Any:  # spec, relax, ... of the wrapped solver
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def factory(self):
        return self.inner.factory()

    def reset(self, control: RunControl | None = None) -> "Metered":
        """Start a new run on the (possibly reloaded) inner solver: zero the counters, take
        the inner solver's current members and name, and ``control``."""
        self.members = getattr(self.inner, "members", [self.inner])
        self.name = self.inner.name
        self.calls = 0
        self.seconds = np.zeros(len(self.members))
        self.control = control
        return self

    def check_cost_values(self, c):
        self.inner.check_cost_values(c)

    def solve_flat(self, c):
        ctl = self.control
        if ctl is not None and ctl.stop_requested():
            return None, math.nan, Status.ERROR, {"detail": f"skipped: the run stops ({ctl.reason})"}
        t0 = time.perf_counter()
        if ctl is None:
            out = self.inner.solve_flat(c)
        else:
            try:
                if ctl.armed and ctl.deadline is not None:
                    # a solve still running at the deadline is stopped there (every backend
                    # that blocks through surco.solvers.blocking); the run then stops
                    at = time.monotonic() + (ctl.deadline - time.perf_counter())
                    with deadline_scope(at):
                        out = self.inner.solve_flat(c)
                else:
                    out = self.inner.solve_flat(c)
            except Exception as exc:  # kept for the caller, who raises it as it is
                if ctl.error is None:
                    ctl.error = exc
                return None, math.nan, Status.ERROR, {"detail": f"{type(exc).__name__}: {exc}"}
            if out[2] not in (Status.OPTIMAL, Status.FEASIBLE) and ctl.failure is None:
                ctl.failure = dict(out[3], status=int(out[2]))
        dt = time.perf_counter() - t0
        self.calls += 1
        per = out[3].get("member_wall_time")
        if per is not None and len(per) == len(self.members):
            self.seconds += np.asarray(per)
        else:
            self.seconds += dt / len(self.members)
        return out


def build_solver(problem: Problem, instance: Instance, backend: str,
                 solver_options: dict[str, Any] | None) -> Solver:
    """The solver for Ω(instance): a `LinearSpec` goes through `make_solver`, with the
    per-solve time limit `surco.guidance.DEFAULT_SOLVE_SECONDS` unless ``solver_options``
    names a ``time_limit`` (None: no limit), and the size guard of solves without a chosen
    limit (`surco.solvers.registry.check_model_size`); an oracle is used as it is."""
    space = problem.space_for(instance)
    if isinstance(space, LinearSpec):
        options = dict(solver_options or {})
        if "time_limit" not in options:    # no limit chosen: the size guard still applies
            check_model_size(space, options.get("max_size"))
            options["time_limit"] = DEFAULT_SOLVE_SECONDS
        return make_solver(space, backend=backend, **options)
    return space


def stack_solvers(solvers: Sequence[Solver], executor: Executor | None,
                  control: RunControl | None = None) -> Metered:
    return Metered(SolverStack(solvers, executor=executor), control)


def stack_instances(problem: Problem, instances: Sequence[Instance]) -> Any:
    """Stack instances leaf by leaf along a new leading axis (all must have equal shapes)."""
    try:
        # stacked on the host and moved once per leaf: one transfer, no eager op per instance
        return jax.tree.map(lambda *a: jnp.asarray(np.stack([np.asarray(v) for v in a])),
                            *instances)
    except (ValueError, TypeError) as exc:
        raise ProblemError(f"Problem {problem.name!r}: instances solved together must be pytrees "
                           f"of arrays with equal structure and shapes ({exc})") from exc


def batched_objective(problem: Problem):
    """``(X (B, *shape), Y stacked) -> (B,)`` objective values."""
    return jax.vmap(problem.f)


def check_finite(problem: Problem, values: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise ProblemError(f"Problem {problem.name!r}: objective returned a non-finite value "
                           f"({values[bad][0]}) {where}, instance index {int(np.flatnonzero(bad)[0])}")


def resolve_key(key: jax.Array | int | None) -> jax.Array:
    if key is None:
        return jax.random.key(0)
    if isinstance(key, (int, np.integer)):
        return jax.random.key(int(key))
    return key


class SolverSlot(SolverStack):
    """A `SolverStack` whose members can be swapped between calls.

    Jitted training steps close over one slot and are compiled once; before each minibatch
    the slot is loaded with that minibatch's solvers. Calls are synchronous (results are
    read back before the next `load`), so the swap never races a running solve.
    """

    def load(self, solvers: Sequence[Solver]) -> "SolverSlot":
        solvers = list(solvers)
        if len(solvers) != self.shape[0] or any(s.shape != self.shape[1:] for s in solvers):
            raise ValueError(f"SolverSlot: expected {self.shape[0]} solvers of x shape "
                             f"{self.shape[1:]}")
        self.members = solvers
        first = solvers[0].name
        self.name = first if len(solvers) == 1 else f"{first} and {len(solvers) - 1} more instances"
        return self


def initial_theta(init, key, shape: tuple[int, ...], dtype, init_scale: float) -> jax.Array:
    """SurCo-zero's first surrogate parameters θ, shaped ``(B, *x_shape)``: "random"
    (``init_scale`` × standard normal), "zeros" (1e-3 noise) or a given array (one per
    instance, or one broadcast to all). Raises ValueError naming ``init``."""
    if isinstance(init, str):
        if init == "random":
            return init_scale * jax.random.normal(key, shape, dtype)
        if init == "zeros":
            return 1e-3 * init_scale * jax.random.normal(key, shape, dtype)
        raise ValueError(f"zero: init must be 'random', 'zeros' or an array of surrogate "
                         f"parameters, got {init!r}")
    try:
        arr = jnp.asarray(init, dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"zero: init must be 'random', 'zeros' or an array of surrogate "
                         f"parameters shaped {shape[1:]}, got {type(init).__name__}") from exc
    if arr.shape == shape[1:]:
        arr = jnp.broadcast_to(arr, shape)
    if arr.shape != shape:
        raise ValueError(f"zero: init array has shape {arr.shape}, expected {shape[1:]} "
                         f"(one instance) or {shape} (one per instance)")
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError("zero: init array contains NaN or inf")
    return arr
