"""`Problem`: what a problem family hands to SurCo (Ferber et al., ICML 2023, §3).

A problem is ``min_x f(x; y) s.t. x in Ω(y)``: a feasible set that a solver or an oracle
handles, and a nonlinear objective written in JAX. SurCo learns a linear cost c so that
``g_Ω(c) = argmin_{x in Ω} c·x`` is good for f.
"""
from __future__ import annotations

import dataclasses
import linecache
import os
import re
import traceback
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from surco.solvers import LinearSpec, Solver
from surco.solvers.jax_oracles import JaxOracle

Instance = Any  # a pytree of arrays (a dict, NamedTuple or flax.struct dataclass)
Space = LinearSpec | Solver | JaxOracle


#: The senses of a `Problem`'s objective.
SENSES = ("min", "max")


class _Negated:
    """``−fn``: the minimised form of an objective (or true cost) to maximise. One object
    per `Problem`, so that compiled programs keyed by the objective are reused."""

    def __init__(self, fn: Callable, scalar: bool = False):
        self.fn, self.scalar = fn, scalar
        self.__name__ = f"neg_{getattr(fn, '__name__', 'objective')}"
        self.__doc__ = f"−{getattr(fn, '__name__', 'f')} (Problem sense='max')"

    def __call__(self, x, instance):
        out = self.fn(x, instance)
        return -float(out) if self.scalar else -out


class _Blocked:
    """``fn(blocks.split(x), instance)``: the objective of a `Problem` on a `LinearSpec` with
    named blocks (`LinearSpec.from_blocks`), called on the flat x that solvers, estimators
    and the harness use. Slices and reshapes only, so ``jax.grad`` flows through. Equal
    for the same fn and layout, so that compiled programs keyed by the objective are shared
    by the Problems built per instance.

    Never kept across a change of Ω: every `Problem` built (``dataclasses.replace``
    included) derives its wrapper from its own space (`for_space`)."""

    def __init__(self, fn: Callable, blocks):
        self.fn, self.blocks = fn, blocks
        self.__name__ = getattr(fn, "__name__", "objective")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, x, instance):
        return self.fn(self.blocks.split(x), instance)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Blocked) and other.fn is self.fn and other.blocks == self.blocks

    def __hash__(self) -> int:
        return hash((id(self.fn), self.blocks))

    @staticmethod
    def for_space(objective: Callable, space: Any) -> Callable:
        """``objective`` with the calling convention of ``space``: f on a dict of the named
        blocks of a `LinearSpec` that has them (wrapped in a `_Blocked` for that layout), f
        on the flat x otherwise. A `_Blocked` given (the objective of another Problem, as
        `dataclasses.replace` passes it) is f for its own layout: it is unwrapped first, so
        the layout is always the current space's; unchanged, it is returned as it is."""
        fn = objective.fn if isinstance(objective, _Blocked) else objective
        blocks = space.blocks if isinstance(space, LinearSpec) else None
        if blocks is None:
            return fn
        wrapped = _Blocked(fn, blocks)
        return objective if wrapped == objective else wrapped


class ProblemError(ValueError):
    """A problem's objective, features or space returned something unusable."""


class RelaxedOmegaWarning(UserWarning):
    """Ω is a `LinearSpec` without integer variables, and the `Problem` does not say that
    this is intended (``relax=True``): the solver then returns LP vertices, possibly
    fractional, that "beat" every integer solution, and nothing downstream (the harness
    checks x against the same spec) notices. Usually a forgotten ``integer=True``."""


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A combinatorial problem with a nonlinear objective.

    Args:
      name: used in messages and results.
      space: Ω, either fixed (a `LinearSpec` or an oracle / `Solver`) or a function
        ``instance -> LinearSpec | Solver`` when Ω depends on the instance (e.g. memory
        capacities in sharding).
      objective: ``f(x, instance) -> scalar``, written in JAX, differentiable in x, where
        x has the shape of Ω (``space.shape``). Minimised, or maximised with
        ``sense="max"``. When ``space`` is a `LinearSpec` with named blocks
        (`LinearSpec.from_blocks`, `LinearSpec.from_mathopt`), f receives x as a dict
        ``{block name: array of the block's shape}`` (``objective`` is then f wrapped to take
        the flat x that solvers and SurCo use). A space that is a function of the instance
        hands f the flat x (split it with ``spec.split``), or build one Problem per instance.
        The convention follows the Problem's current space: ``dataclasses.replace(problem,
        space=other)`` hands f the blocks of ``other``, or the flat x if it has none.
      features: ``instance -> array`` of instance features for SurCo-prior; either one
        vector ``(F,)`` per instance or one row per leading entry of x, ``(x.shape[0], F)``.
      evaluate: optional ``(x: np.ndarray, instance) -> float``, the true cost when it is not
        the differentiable f (a profiler, a simulator). Lower is better.
      cost_transform: map from SurCo's free parameters to the cost handed to the solver
        (default identity); e.g. ``jax.nn.softplus`` for an oracle that needs c >= 0.
      relax: True says that Ω is meant to be an LP: a `LinearSpec` without integer
        variables, on purpose (a totally unimodular polytope such as the s–t flow polytope,
        whose LP optima are integral, or a continuous Ω). Without it, such an Ω emits
        `RelaxedOmegaWarning` (once per problem: at construction for a fixed Ω, at the first
        ``space_for`` for an Ω that depends on the instance), since it is usually a
        forgotten ``integer=True``. It changes nothing else: integrality is never dropped.
      sense: "min" (default) or "max". With "max" the Problem holds the minimised forms:
        ``objective`` is −f and ``evaluate`` −evaluate (what SurCo, the searches, SCIP and
        the harness minimise); `user_objective` is f as written and `to_user` turns a
        minimised value back into the user's (``-v``). (`dataclasses.replace` on such a
        Problem takes minimised forms: it does not negate again.)

    Raises:
      TypeError: objective not callable, space of the wrong type, relax not a bool.
      ValueError: a sense other than "min" or "max".
      ValueError: ``relax=True`` with a `LinearSpec` that has integer variables (checked
        where the spec is first seen, as for the warning).

    Example: pick 2 of 4 items, where items 0 and 1 together cost 1 more. Minimising the
    linear part alone (what a solver does with the cost y) picks them; f says it should not:

    >>> import jax.numpy as jnp, numpy as np, surco
    >>> from surco.solvers import LinearSpec, make_solver
    >>> spec = LinearSpec(shape=(4,), A_eq=[[1, 1, 1, 1]], b_eq=[2], lb=0, ub=1, integer=True)
    >>> def f(x, y):
    ...     return jnp.dot(y, x) + x[0] * x[1]
    >>> prob = surco.Problem("pick-two", spec, f, features=lambda y: y[:, None])
    >>> y = jnp.array([0.0, 0.1, 0.5, 0.6])
    >>> x = make_solver(prob.space_for(y)).solve(np.asarray(y)).x
    >>> x, round(float(prob.f(jnp.asarray(x), y)), 4)
    (array([1., 1., 0., 0.]), 1.1)
    >>> round(float(prob.f(jnp.array([1.0, 0.0, 1.0, 0.0]), y)), 4)   # the optimum
    0.5
    >>> prob.x_shape(y), prob.features_of(y).shape
    ((4,), (4, 1))
    """

    name: str
    space: Space | Callable[[Instance], Space]
    objective: Callable[[jax.Array, Instance], jax.Array]
    features: Callable[[Instance], jax.Array] | None = None
    evaluate: Callable[[np.ndarray, Instance], float] | None = None
    cost_transform: Callable[[jax.Array], jax.Array] | None = None
    relax: bool = False
    sense: str = "min"
    _negated: bool = dataclasses.field(default=False, repr=False)

    def __post_init__(self):
        if not callable(self.objective):
            raise TypeError(f"Problem {self.name!r}: objective must be callable f(x, instance)")
        # f's calling convention follows the current Ω (named blocks or flat x), also when
        # dataclasses.replace hands over the objective of a Problem on another Ω
        obj = self.objective
        if isinstance(obj, _Negated) and self._negated:   # a minimised form (sense="max")
            inner = _Blocked.for_space(obj.fn, self.space)
            if inner is not obj.fn:
                object.__setattr__(self, "objective", _Negated(inner))
        else:
            object.__setattr__(self, "objective", _Blocked.for_space(obj, self.space))
        if self.sense not in SENSES:
            raise ValueError(f"Problem {self.name!r}: sense must be 'min' or 'max', got "
                             f"{self.sense!r}")
        if self.sense == "max" and not self._negated:
            # SurCo, the searches and the harness minimise: they see −f (and −evaluate)
            object.__setattr__(self, "objective", _Negated(self.objective))
            if self.evaluate is not None:
                object.__setattr__(self, "evaluate", _Negated(self.evaluate, scalar=True))
            object.__setattr__(self, "_negated", True)
        if not (isinstance(self.space, (LinearSpec, Solver, JaxOracle)) or callable(self.space)):
            raise TypeError(f"Problem {self.name!r}: space must be a LinearSpec, a Solver/oracle, "
                            f"or a function instance -> one of those; got {type(self.space).__name__}")
        if not isinstance(self.relax, bool):
            raise TypeError(f"Problem {self.name!r}: relax must be True or False, got "
                            f"{self.relax!r}")
        object.__setattr__(self, "_omega_checked", False)
        if isinstance(self.space, LinearSpec):
            self._check_relaxed(self.space, stacklevel=4)  # the caller of Problem(...)

    def _check_relaxed(self, spec: LinearSpec, stacklevel: int) -> None:
        """`RelaxedOmegaWarning` for an Ω without integer variables that ``relax`` does not
        declare; ValueError for ``relax=True`` on an Ω with integer variables. Once."""
        if self._omega_checked:
            return
        object.__setattr__(self, "_omega_checked", True)
        has_int = bool(np.any(spec.integer))
        if self.relax and has_int:
            raise ValueError(f"Problem {self.name!r}: relax=True declares Ω an LP, but its "
                             f"LinearSpec {spec.name!r} has {int(np.sum(spec.integer))} integer "
                             "variables (relax does not drop integrality; pass relax=False, or "
                             "a spec without integer variables)")
        if not self.relax and not has_int:
            named = "" if spec.name in ("", "LinearSpec") else f" ({spec.name!r})"
            warnings.warn(RelaxedOmegaWarning(
                f"Problem {self.name!r}: Ω{named} is a LinearSpec without integer "
                "variables, so its solutions may be fractional LP vertices; pass integer=True "
                "(or an integer mask) to LinearSpec, or relax=True to Problem if an LP is "
                "intended (e.g. a totally unimodular polytope)"), stacklevel=stacklevel)

    def space_for(self, instance: Instance) -> Space:
        """Ω for this instance."""
        if isinstance(self.space, (LinearSpec, Solver, JaxOracle)):
            return self.space
        sp = self.space(instance)
        if not isinstance(sp, (LinearSpec, Solver, JaxOracle)):
            raise ProblemError(f"Problem {self.name!r}: space(instance) returned "
                               f"{type(sp).__name__}, expected a LinearSpec or a Solver")
        if isinstance(sp, LinearSpec) and not self._omega_checked:
            self._check_relaxed(sp, stacklevel=3)
        return sp

    def to_user(self, value: float) -> float:
        """A value of the minimised objective (what SurCo, the searches and the harness
        report) in the user's terms: ``-value`` for ``sense="max"``, ``value`` otherwise."""
        return -float(value) if self.sense == "max" else float(value)

    def user_objective(self, x: jax.Array, instance: Instance) -> jax.Array:
        """The objective as the user wrote it (to be maximised for ``sense="max"``), on the
        flat x of Ω (split into blocks for f when Ω has named blocks)."""
        fn = self.objective
        return fn.fn(x, instance) if isinstance(fn, _Negated) else fn(x, instance)

    def x_shape(self, instance: Instance) -> tuple[int, ...]:
        return tuple(self.space_for(instance).shape)

    def to_cost(self, theta: jax.Array) -> jax.Array:
        """Apply ``cost_transform`` (identity when None)."""
        return theta if self.cost_transform is None else self.cost_transform(theta)

    def f(self, x: jax.Array, instance: Instance) -> jax.Array:
        """The objective, checked: a finite scalar, or a `ProblemError` naming the problem.

        Inside ``jit`` only the shape can be checked; NaN is checked by callers on values.
        """
        out = jnp.asarray(self.objective(x, instance))
        if out.shape != ():
            raise ProblemError(f"Problem {self.name!r}: objective returned shape {out.shape}, "
                               "expected a scalar")
        return out

    def check_instance(self, instance: Instance, *, features: bool = False, dtype=jnp.float32,
                       who: str = "", index: int | None = None) -> None:
        """Check that an instance fits Ω before anything is solved: trace the objective (and,
        with ``features``, the feature function) on an abstract x of Ω's shape, without
        computing anything.

        Args:
          instance: the instance.
          features: also check ``features(instance)``: shape ``(F,)`` or ``(x.shape[0], F)``.
          dtype: x's float dtype.
          who: the caller, prefixed to messages (e.g. "zero").
          index: the instance's index among several, named in messages.

        Raises:
          ProblemError: the objective cannot be evaluated with this instance on x of Ω's
            shape (the message names Ω's x shape and the instance's array shapes), cannot be
            traced by JAX (NumPy on x: "f must use jax.numpy", or Python control flow on x;
            the message gives the file and line in f), returns a non-scalar, or the
            features have an unusable shape.
        """
        head = f"{who}: " if who else ""
        which = "the instance" if index is None else f"instance {index}"
        shape = self.x_shape(instance)
        x = jax.ShapeDtypeStruct(shape, dtype)
        try:
            jax.eval_shape(self.f, x, instance)
        except ProblemError:
            raise
        except _UNTRACEABLE as exc:
            raise ProblemError(f"{head}problem {self.name!r}: {_untraceable(exc)}") from exc
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ProblemError(
                f"{head}problem {self.name!r}: the objective cannot be evaluated on x of shape "
                f"{shape} (Ω's shape) with {which}, whose arrays are shaped "
                f"{_leaf_shapes(instance)}; do the instance's arrays match Ω? "
                f"({type(exc).__name__}: {first})") from exc
        if features:
            try:
                fs = tuple(jax.eval_shape(self.features_of, instance).shape)
            except ProblemError:
                raise
            except Exception as exc:
                raise ProblemError(f"{head}problem {self.name!r}: features({which}) failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            if not (len(fs) == 1 or (len(fs) == 2 and fs[0] == shape[0])):
                raise ProblemError(
                    f"{head}problem {self.name!r}: features({which}) has shape {fs}, expected "
                    f"one vector (F,) or one row per row of x, ({shape[0]}, F), for x of shape "
                    f"{shape}")

    def features_of(self, instance: Instance) -> jax.Array:
        if self.features is None:
            raise ProblemError(f"Problem {self.name!r} has no features; SurCo-prior needs "
                               "features=instance -> array")
        return jnp.asarray(self.features(instance))


#: what tracing raises for an objective that NumPy or Python control flow makes untraceable
_UNTRACEABLE = (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError,
                jax.errors.TracerIntegerConversionError)
_LIBRARY_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (jax, np))


def _user_frame(exc: BaseException) -> tuple[str, str]:
    """``("file:line", source line)`` of the innermost traceback frame outside JAX, NumPy
    and this module (the line of the objective, or of a helper it calls, that went wrong),
    or ``("", "")``."""
    found = ("", "")
    for frame, line in traceback.walk_tb(exc.__traceback__):
        path = frame.f_code.co_filename
        if path == __file__ or path.startswith(_LIBRARY_DIRS) or "jaxlib" in path:
            continue
        found = (f"{path}:{line}", linecache.getline(path, line).strip())
    return found


def _untraceable(exc: BaseException) -> str:
    """The diagnosis of an objective that JAX cannot trace: NumPy called on a traced x
    (`jax.errors.TracerArrayConversionError`, or a concretization error raised on a line
    that calls NumPy), or a traced value turned into a Python bool / int / float."""
    loc, src = _user_frame(exc)
    where = f"{loc}: {src}" if src else loc
    numpy_line = re.search(r"(?<![\w.])(np|numpy)\.", src) is not None
    if isinstance(exc, jax.errors.TracerArrayConversionError) or numpy_line:
        at = f" at {where}" if where else ""
        return (f"f must use jax.numpy (got a NumPy conversion{at}); SurCo traces f with "
                f"JAX to differentiate it, so write it with jnp.* instead of np.* "
                f"({type(exc).__name__})")
    at = f" at {where}" if where else ""
    return (f"f must be traceable by JAX: it turns a traced value into a concrete Python "
            f"value{at} (an if/while on x, bool(), int() or float() of a JAX array); use "
            f"jnp.where or jax.lax.cond instead ({type(exc).__name__})")


def _leaf_shapes(instance: Instance) -> str:
    """``".a: (5, 2), .w: (5, 2), ..."``: the instance's array shapes, for messages."""
    leaves = jax.tree_util.tree_leaves_with_path(instance)
    parts = [f"{jax.tree_util.keystr(p) or 'instance'}: {tuple(np.shape(v))}" for p, v in leaves]
    return ", ".join(parts[:8]) + (", ..." if len(parts) > 8 else "")
