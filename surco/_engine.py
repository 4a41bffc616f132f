"""Machinery shared by SurCo-zero and SurCo-prior: solvers per instance, batched objectives,
a meter for solver time, and the control of a run (Ctrl-C, a deadline, errors raised inside
solves). Private: the public API is `surco.zero`, `surco.prior`, `surco.hybrid`."""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import signal
import threading
import time
import types
from concurrent.futures import Executor
from typing import Any, Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco.problem import Instance, Problem, ProblemError
from surco.solvers import LinearSpec, Solver, SolverStack, Status, make_solver
from surco.solvers._kwargs import check_kwargs
from surco.solvers.blocking import deadline_scope
from surco.estimators.base import check_positive

#: why a run stopped (`surco.ZeroResult.stopped`)
STOP_REASONS = ("steps", "patience", "target", "time_limit", "budget", "interrupted", "error")


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
      reason: None, or why the run must stop ("interrupted", "time_limit").
      error: the first exception raised by a solve, or None.
      failure: the stats of the first failed solve (``status``, ``detail``, ``timeout``...)
        since the caller last reset it, or None.
    """

    def __init__(self, time_limit: float | None = None, t_start: float | None = None):
        t0 = time.perf_counter() if t_start is None else t_start
        self.deadline = None if time_limit is None else t0 + float(time_limit)
        self.armed = False
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.failure: dict[str, Any] | None = None

    def arm(self) -> None:
        """Let the deadline skip solves (called once the run has a first answer to keep)."""
        self.armed = True

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def stop_requested(self) -> bool:
        if self.reason is None and self.armed and self.past_deadline():
            self.reason = "time_limit"
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
        c.reason = "interrupted"
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
    """The solver for Ω(instance): a `LinearSpec` goes through `make_solver`; an oracle is
    used as it is."""
    space = problem.space_for(instance)
    if isinstance(space, LinearSpec):
        return make_solver(space, backend=backend, **(solver_options or {}))
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


# -- SurCo-zero's arguments and helpers, shared by surco.zero and surco.compiled ------------
#: default of ``no_progress_steps``: on the toy assignment problem the settings that make
#: progress first change x within 14 steps (bench/estimator_defaults.py), and within 36 for
#: perturbed with Adam in an 8-instance trial; a run whose x has not changed in its first 40
#: steps is stuck.
NO_PROGRESS_STEPS = 40


class NoProgressWarning(UserWarning):
    """SurCo-zero's x has not changed since its first step: the estimator's gradient does
    not move the cost across a single boundary of the solver's answer."""


def is_number(v) -> bool:
    """A real number that is not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def check_int(name: str, v, minimum: int, none_ok: bool = False, who: str = "zero") -> int | None:
    """``int(v)`` for an integer ``>= minimum`` (or None with ``none_ok``); ValueError naming
    ``who`` and ``name`` otherwise."""
    if v is None and none_ok:
        return None
    check_positive(who, f"{name}{' (or None)' if none_ok else ''}", v, integer=True,
                   minimum=minimum, strict=False)
    return int(v)


def check_number(name: str, v, none_ok: bool = False, who: str = "zero") -> float | None:
    """``float(v)`` for a finite number > 0 (or None with ``none_ok``); ValueError otherwise."""
    if v is None and none_ok:
        return None
    check_positive(who, f"{name}{' (or None)' if none_ok else ''}", v)
    return float(v)


def as_instances(instance: Any) -> tuple[list[Instance], bool]:
    """``(instances, many)``: a `list` or a plain `tuple` (not a NamedTuple, which is one
    instance) holds several instances; anything else is one."""
    if isinstance(instance, list) or (type(instance) is tuple):
        return list(instance), True
    return [instance], False


def check_instance_values(instance: Instance, who: str, where: str = "") -> None:
    """Every floating (or complex) leaf of an instance finite, checked on the host with numpy.

    Args:
      instance: a pytree of arrays (other leaves, e.g. integer arrays or objects, pass).
      who: the caller, prefixed to the message (e.g. "surco.zero").
      where: which instance, e.g. "instance 3" or "train_instances[3]" ("" for the only one).

    Raises:
      ValueError: naming the instance, the leaf's path (``y['w']``, as
        `jax.tree_util.keystr`), the first non-finite entry's index and its value.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(instance)[0]:
        try:
            a = np.asarray(leaf)
        except Exception:  # an opaque leaf: not instance data we can read
            continue
        if a.dtype.kind not in "fc" or a.size == 0:
            continue
        bad = ~np.isfinite(a)
        if not bad.any():
            continue
        first = np.unravel_index(int(np.flatnonzero(bad)[0]), a.shape)
        index = f"[{', '.join(str(int(i)) for i in first)}]" if a.ndim else ""
        name = f"y{jax.tree_util.keystr(path)}{index}"
        head = f"{who}: {where}: " if where else f"{who}: "
        raise ValueError(f"{head}{name} is {a[first]} ({int(bad.sum())} non-finite of "
                         f"{a.size} entries in y{jax.tree_util.keystr(path)}); instance data "
                         "must be finite (NaN or inf in a floating array)")


def check_instances(problem: Problem, instances: Sequence[Instance], dtype, who: str, *,
                    arg: str | None = None, values: bool = True, trace: bool = True) -> None:
    """Check instances once, at the entry of a public function.

    With ``values``, every floating leaf of every instance is finite
    (`check_instance_values`); with ``trace``, `Problem.check_instance` (the objective traced
    on Ω's x shape, nothing computed) runs once per distinct structure, shapes and x shape
    (instances that share them trace alike).

    Args:
      problem, instances, dtype: the problem, the instances and x's float dtype.
      who: the caller, prefixed to messages.
      arg: the argument holding the instances, to name one as ``arg[i]`` (e.g.
        "train_instances"); None names it "instance i" (nothing for a single instance).

    Raises:
      ValueError: non-finite instance data (see `check_instance_values`).
      ProblemError: an instance that does not fit Ω, or an objective that cannot be traced
        (see `Problem.check_instance`).
    """
    many = len(instances) > 1 or arg is not None

    def where(i: int) -> str:
        if arg is not None:
            return f"{arg}[{i}]"
        return f"instance {i}" if many else ""

    if values:
        for i, y in enumerate(instances):
            check_instance_values(y, who, where(i))
    if trace:
        seen = set()
        for i, y in enumerate(instances):
            sig = (tree_signature(y), problem.x_shape(y))
            try:
                if sig in seen:
                    continue
                seen.add(sig)
            except TypeError:  # an unhashable static field: trace this one
                pass
            problem.check_instance(y, dtype=dtype, who=who, index=i if many else None)


def estimator_fields(estimator: Any) -> tuple[str, ...] | None:
    """The hyperparameter names of an estimator given by object or by name; None when
    ``estimator`` is neither (`get_estimator` then reports it)."""
    from surco.estimators.base import Estimator
    from surco.estimators.registry import ESTIMATORS
    if isinstance(estimator, Estimator):
        cls = type(estimator)
    elif isinstance(estimator, str) and estimator in ESTIMATORS:
        cls = ESTIMATORS[estimator]
    else:
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def check_estimator_kwargs(func_name: str, func: Callable, kwargs: dict[str, Any],
                           estimator: Any, *, drop: Iterable[str] = (),
                           extra: Iterable[str] = ()) -> None:
    """`check_kwargs` for a function that passes its ``**kwargs`` to the estimator:
    a keyword is first matched against ``func``'s own parameters (less ``drop``, plus
    ``extra``), then against the estimator's hyperparameters; one that matches neither is
    the caller's typo, never the estimator's (TypeError from the shared
    `surco.solvers._kwargs.check_kwargs`: the keyword, the closest valid name, the valid
    names). Nothing is checked when ``estimator`` is not a known estimator
    (`get_estimator` reports it)."""
    fields = estimator_fields(estimator)
    if fields is None:
        return
    drop = set(drop)
    own = [p.name for p in inspect.signature(func).parameters.values()
           if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in drop]
    check_kwargs(func_name, kwargs, [*own, *extra, *fields])


def check_zero_settings(func_name: str, settings: dict[str, Any], *,
                        drop: Iterable[str] = (), extra: Iterable[str] = ()) -> None:
    """Keyword arguments meant for `surco.zero` (a family's ``zero_settings`` with
    overrides, ``**zero_kwargs``): each a parameter of `surco.zero` (``problem`` and
    ``instance`` excluded, and ``drop``; ``extra`` added) or a hyperparameter of the
    estimator they name (default "blackbox").

    Raises:
      TypeError: an unknown keyword (see `check_estimator_kwargs`)."""
    from surco.zero import zero
    check_estimator_kwargs(func_name, zero, settings, settings.get("estimator", "blackbox"),
                           drop=("problem", "instance", *drop), extra=extra)


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


def check_zero_args(problem, instance, *, steps, lr, init_scale, patience, no_progress_steps,
                    target, time_limit, optimizer, select, dtype) -> dict[str, Any]:
    """Validate the arguments that `surco.zero` and `surco.compiled.zero` share; returns
    them normalised (``instances``, ``many``, ints, floats, ``dtype`` as a numpy dtype).

    Raises:
      ValueError / TypeError naming the argument and the expected form."""
    instances, many = as_instances(instance)
    if not instances:
        raise ValueError("zero: no instances given (instance is an empty list)")
    if not isinstance(problem, Problem):
        raise TypeError(f"zero: problem must be a surco.Problem, got {type(problem).__name__}")
    out = dict(instances=instances, many=many, steps=check_int("steps", steps, 0),
               lr=check_number("lr", lr), init_scale=check_number("init_scale", init_scale),
               patience=check_int("patience", patience, 1, none_ok=True),
               no_progress_steps=check_int("no_progress_steps", no_progress_steps, 1,
                                           none_ok=True),
               time_limit=check_number("time_limit", time_limit, none_ok=True))
    if target is not None and (not is_number(target) or not math.isfinite(float(target))):
        raise ValueError(f"zero: target must be finite or None, got {target!r}")
    if optimizer is not None and not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"zero: optimizer must be an optax.GradientTransformation (e.g. "
                        f"optax.adam(0.1)), got {type(optimizer).__name__}")
    if select not in ("f", "evaluate"):
        raise ValueError(f"zero: select must be 'f' or 'evaluate', got {select!r}")
    if select == "evaluate" and problem.evaluate is None:
        raise ValueError(f"zero: select='evaluate' but problem {problem.name!r} has no evaluate")
    try:
        dt = jnp.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"zero: dtype must be a floating dtype (jnp.float32 or jnp.float64), "
                         f"got {dtype!r}") from exc
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"zero: dtype must be a floating dtype (jnp.float32 or jnp.float64), "
                         f"got {dt}")
    out["dtype"] = dt
    return out


def no_progress_message(label: str, est, stuck: int, B: int, n: int, default_opt: bool,
                        lr: float) -> str:
    """The text of `NoProgressWarning`."""
    which = "" if B == 1 else f" on {stuck} of {B} instances"
    opt = f" (the default optimiser for {est.name!r} with lr={lr:g})" if default_opt else ""
    return (f"{label}: x has not changed in the first {n} steps{which} with estimator "
            f"{est.name!r}{opt}: its gradient does not move the surrogate cost across a "
            f"single boundary of the solver's answer, so the run only re-evaluates the first "
            f"x. Try {est.no_progress_advice}. (no_progress_steps=None silences this.)")


def tree_signature(tree) -> tuple:
    """Structure, shapes and dtypes of a pytree: part of a compile-cache key."""
    leaves, treedef = jax.tree.flatten(tree)
    return (treedef, tuple((tuple(np.shape(v)), _canonical_dtype(v)) for v in leaves))


def _canonical_dtype(v) -> str:
    """The dtype JAX gives ``v`` (float64 -> float32 without x64), read without an eager op."""
    dt = getattr(v, "dtype", None)
    if dt is None:
        return str(jnp.asarray(v).dtype)   # a Python scalar: its weak type decides
    return str(jax.dtypes.canonicalize_dtype(dt))


class _NoFingerprint(Exception):
    pass


def _fingerprint(obj: Any, depth: int = 0) -> Any:
    """A hashable value that is equal for equal optimiser definitions (see `optimizer_key`)."""
    if depth > 32:
        raise _NoFingerprint
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, obj)
    if isinstance(obj, np.generic):
        return ("np", obj.dtype.str, obj.item())
    if isinstance(obj, (type, np.dtype)):
        return ("type", repr(obj))
    if isinstance(obj, (np.ndarray, jax.Array)):
        a = np.asarray(obj)
        if a.size > 4096:
            raise _NoFingerprint
        return ("array", a.shape, a.dtype.str, a.tobytes())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):          # a NamedTuple
        return (type(obj).__qualname__, tuple(_fingerprint(o, depth + 1) for o in obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_fingerprint(o, depth + 1) for o in obj))
    if isinstance(obj, dict):
        return ("dict", tuple(sorted(((repr(k), _fingerprint(v, depth + 1))
                                      for k, v in obj.items()), key=lambda kv: kv[0])))
    if isinstance(obj, functools.partial):
        return ("partial", _fingerprint(obj.func, depth + 1), _fingerprint(obj.args, depth + 1),
                _fingerprint(obj.keywords, depth + 1))
    if isinstance(obj, types.FunctionType):
        cells = []
        for cell in obj.__closure__ or ():
            try:
                cells.append(_fingerprint(cell.cell_contents, depth + 1))
            except ValueError:                                        # an empty cell
                cells.append(("empty",))
        return ("function", obj.__module__, obj.__qualname__, obj.__code__, tuple(cells),
                _fingerprint(obj.__defaults__, depth + 1),
                _fingerprint(obj.__kwdefaults__, depth + 1))
    raise _NoFingerprint


def optimizer_key(optimizer: Any) -> Any:
    """The compile-cache key of a user's optimiser: equal for two optimisers built by the
    same code with equal hyperparameters (``optax.adam(0.1)`` twice), so that a loop that
    builds its optimiser per instance still reuses the compiled SurCo step; the object
    itself (identity) when its definition cannot be read (e.g. it closes over an object of
    an unknown type)."""
    try:
        key = ("definition", _fingerprint(optimizer))
        hash(key)
        return key
    except (_NoFingerprint, TypeError):
        return optimizer


_OPT_INIT: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()


def init_opt_state(opt: optax.GradientTransformation, cache_key: Any, theta: jax.Array):
    """``opt.init(theta)`` through a jitted init cached by ``cache_key`` (the optimiser's
    identity: its object, or ("default", estimator, lr)): one dispatch instead of an eager op
    per state leaf, which on small instances costs more than the steps themselves."""
    key = (cache_key, tuple(theta.shape), str(theta.dtype))
    fn = _OPT_INIT.get(key)
    if fn is None:
        fn = _OPT_INIT[key] = jax.jit(opt.init)
        while len(_OPT_INIT) > 64:
            _OPT_INIT.popitem(last=False)
    else:
        _OPT_INIT.move_to_end(key)
    return fn(theta)


def surrogate_step(problem: Problem, est, solver, fvec, opt, theta, opt_state, key, ys,
                   x_axes: tuple[int, ...]):
    """One SurCo-zero step (Ferber et al., ICML 2023, Alg. 1), pure JAX, shared by
    `surco.zero` (host solvers) and `surco.compiled` (JAX oracles).

    Written out rather than as one ``value_and_grad`` so that each quantity can be checked
    per instance (``jnp.isfinite`` over ``x_axes``) and a non-finite one never reaches the
    solver as a cost or the optimiser as an update (it is zeroed; the flags say where).

    Returns:
      ``(new_theta, new_opt_state, f, x, c, status, c_ok, gx_ok, g_ok, gx)``.
    """
    def finite(a):  # per instance: all entries finite
        return jnp.all(jnp.isfinite(a), axis=x_axes)

    c, vjp_cost = jax.vjp(problem.to_cost, theta)
    c_ok = finite(c)
    c_in = jnp.where(jnp.isfinite(c), c, 0.0)
    x, vjp_est, status = jax.vjp(lambda cc: est(solver, cc, key, return_status=True),
                                 c_in, has_aux=True)
    fv, vjp_f = jax.vjp(lambda xx: fvec(xx, ys), x)
    gx = vjp_f(jnp.ones_like(fv))[0]
    gx_ok = finite(gx)
    gc = vjp_est(jnp.where(jnp.isfinite(gx), gx, 0.0))[0]
    g = vjp_cost(gc)[0]
    g_ok = finite(g)
    updates, new_state = opt.update(jnp.where(jnp.isfinite(g), g, 0.0), opt_state, theta)
    return (optax.apply_updates(theta, updates), new_state, fv, x, c, status, c_ok, gx_ok,
            g_ok, gx)
