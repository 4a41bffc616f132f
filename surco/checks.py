"""Checks shared by SurCo's drivers, run once at the entry of a public function: numbers,
instances (finite data, traced once per shape), an estimator's keyword arguments, and the
structure of a pytree as part of a compile-cache key. Each failure raises a ValueError or
TypeError whose message names the function, the argument and the expected form."""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from surco.estimators.base import Estimator, check_positive
from surco.estimators.registry import ESTIMATORS
from surco.problem import Instance, Problem
from surco.solvers import check_kwargs

__all__ = ["is_number", "check_int", "check_number", "check_range", "check_optimizer",
           "as_instances", "check_instance_values", "check_instances", "estimator_fields",
           "check_estimator_kwargs", "tree_signature"]


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


def check_range(name: str, value, who: str) -> tuple[float, float]:
    """``(lo, hi)`` as floats for a finite range with lo <= hi; ValueError naming ``who`` and
    ``name`` otherwise."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{who}: {name} must be a finite range (lo, hi) with lo <= hi, "
                         f"got {value!r}")
    return lo, hi


def check_optimizer(who: str, optimizer: Any) -> None:
    """TypeError naming ``who`` unless ``optimizer`` is None or an optax
    GradientTransformation (anything with ``init`` and ``update``)."""
    if optimizer is not None and not (hasattr(optimizer, "init")
                                      and hasattr(optimizer, "update")):
        raise TypeError(f"{who}: optimizer must be an optax.GradientTransformation (e.g. "
                        f"optax.adam(0.1)), got {type(optimizer).__name__}")


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
    `surco.solvers.check_kwargs`: the keyword, the closest valid name, the valid
    names). Nothing is checked when ``estimator`` is not a known estimator
    (`get_estimator` reports it)."""
    fields = estimator_fields(estimator)
    if fields is None:
        return
    drop = set(drop)
    own = [p.name for p in inspect.signature(func).parameters.values()
           if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in drop]
    check_kwargs(func_name, kwargs, [*own, *extra, *fields])


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
