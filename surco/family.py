"""`Family`: the one contract every problem family meets, so that the comparison harness
(`surco.compare`) and the conformance tests can run any of them the same way.

A family module (``surco.problems.sharding``, ``routing``, ...) exposes ``FAMILY``, a
`Family` holding:

* ``generate(count, seed=0, **size) -> list of instances``: a seeded instance generator
  (sizes are keywords with small defaults, e.g. ``n=10``, so ``generate(2)`` works);
* ``problem(instance) -> surco.Problem``: Ω, the differentiable objective f and the features
  for SurCo-prior, for that instance's size (the family's ``make_problem``);
* ``evaluate(x, instance) -> float``: the true cost, lower is better (a profiler, a
  simulator, or f itself); ``evaluate_batch(X, instance) -> (B,)`` optionally, the same for
  many x at once (search baselines use it to score a neighbourhood in one call);
* ``violations(x, instance) -> list[str]``: a check of x against Ω that does not use the
  solver (empty list: feasible). The default reads Ω's `LinearSpec` (bounds, rows,
  integrality);
* ``baselines``: name -> `Method`, the field's own heuristics *and* the strongest
  non-learned methods a practitioner would use (local search, annealing, SCIP on the true
  objective with a time limit);
* ``exact``: a `Method` that proves optimality on small instances (brute force, SCIP), or
  None when the family has none;
* how f relates to the true cost, for the conformance test: ``f_rtol``, the largest
  relative difference between ``f(x)`` and ``evaluate(x)`` on a feasible x (0 up to rounding
  when f *is* the cost; larger for a smoothed f), or ``f_monotone=True`` when f is a
  strictly increasing transform of the cost (−z against −P(on time), log(1 + L) against L);
* ``zero_settings``: keyword arguments of `surco.zero` chosen on *train* instances only
  (``init`` may be a function ``instance -> θ0``), and ``zero_settings_note``, one line
  saying how they were chosen.

A `Method` is ``method(instance, meter: surco.budget.Meter) -> x``: it returns a feasible x,
evaluates the true cost only through ``meter(x)`` (which counts evaluations, enforces the
budget and remembers the best x), and looks at ``meter.remaining_seconds()`` when it has
a time limit of its own to set (SCIP). A method that ignores its meter (a greedy
heuristic) is simply scored once at the end.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from surco.problem import SENSES, Instance, Problem
from surco.solvers import LinearSpec

__all__ = ["Family", "Method", "spec_violations"]

#: ``method(instance, meter) -> x`` (see the module docstring).
Method = Callable[[Instance, Any], np.ndarray]


def spec_violations(x: np.ndarray, spec: LinearSpec, tol: float = 1e-6) -> list[str]:
    """Why x is outside Ω = ``spec``, from its matrices alone (`LinearSpec.violation`, no
    solver): a wrong shape, non-finite entries, or the largest violation of a bound, row or
    integrality. Empty list: feasible."""
    x = np.asarray(x, np.float64)
    if x.shape != tuple(spec.shape):
        return [f"x has shape {x.shape}, Ω {spec.name!r} has shape {tuple(spec.shape)}"]
    if not np.all(np.isfinite(x)):
        return [f"x has {int(np.sum(~np.isfinite(x)))} non-finite entries"]
    v = spec.violation(x)
    return [] if v <= tol else [f"x violates Ω {spec.name!r} by {v:.3g} (bounds, rows or "
                                f"integrality; tolerance {tol:g})"]


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """One problem family (see the module docstring for each field's contract).

    Raises:
      TypeError: a field that must be callable is not; baselines that are not a mapping of
        names to callables.

    Example: choose 1 of 3 items; Ω is checked from its `LinearSpec`, without a solver.

    >>> import jax.numpy as jnp, numpy as np, surco
    >>> from surco.solvers import LinearSpec
    >>> spec = LinearSpec(shape=(3,), A_eq=[[1, 1, 1]], b_eq=[1], lb=0, ub=1, integer=True,
    ...                   name="one-of-three")
    >>> prob = surco.Problem("pick-one", spec, lambda x, y: jnp.dot(x, y) ** 2)
    >>> fam = surco.Family("pick-one", problem=lambda y: prob,
    ...                    evaluate=lambda x, y: float(np.dot(x, y) ** 2),
    ...                    baselines={"first": lambda y, meter: np.array([1.0, 0.0, 0.0])})
    >>> y = np.array([3.0, -1.0, 2.0])
    >>> fam.violations(np.array([0.0, 1.0, 0.0]), y), fam.evaluate(np.array([0.0, 1.0, 0.0]), y)
    ([], 1.0)
    >>> fam.violations(np.array([1.0, 1.0, 0.0]), y)
    ["x violates Ω 'one-of-three' by 1 (bounds, rows or integrality; tolerance 1e-06)"]
    >>> surco.Family("bad", problem=prob, evaluate=fam.evaluate, baselines={})
    Traceback (most recent call last):
    ...
    TypeError: Family 'bad': problem must be callable
    """

    name: str
    problem: Callable[[Instance], Problem]
    evaluate: Callable[[np.ndarray, Instance], float]
    baselines: Mapping[str, Method]
    generate: Callable[..., Instance] | None = None
    exact: Method | None = None
    violations_fn: Callable[[np.ndarray, Instance], list[str]] | None = None
    evaluate_batch: Callable[[np.ndarray, Instance], np.ndarray] | None = None
    f_rtol: float = 1e-5
    f_monotone: bool = False
    zero_settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    zero_settings_note: str = ""
    reference: str | None = None
    #: "min", or "max" when the family's costs are −f of a ``Problem(..., sense="max")``:
    #: `surco.Comparison` then reports the user's f (higher is better)
    sense: str = "min"

    def __post_init__(self):
        for f in ("problem", "evaluate"):
            if not callable(getattr(self, f)):
                raise TypeError(f"Family {self.name!r}: {f} must be callable")
        for f in ("generate", "exact", "violations_fn", "evaluate_batch"):
            v = getattr(self, f)
            if v is not None and not callable(v):
                raise TypeError(f"Family {self.name!r}: {f} must be callable or None")
        if not isinstance(self.baselines, Mapping) or not all(
                isinstance(k, str) and callable(v) for k, v in self.baselines.items()):
            raise TypeError(f"Family {self.name!r}: baselines must map names to callables "
                            "method(instance, meter) -> x")
        if self.reference is not None and self.reference not in self.baselines:
            raise ValueError(f"Family {self.name!r}: reference {self.reference!r} is not a "
                             f"baseline; choose from {sorted(self.baselines)}")
        if self.sense not in SENSES:
            raise ValueError(f"Family {self.name!r}: sense must be 'min' or 'max', got "
                             f"{self.sense!r}")

    def violations(self, x: np.ndarray, instance: Instance) -> list[str]:
        """Why x is outside Ω(instance), without the solver (empty list: feasible)."""
        if self.violations_fn is not None:
            return list(self.violations_fn(x, instance))
        space = self.problem(instance).space_for(instance)
        spec = space if isinstance(space, LinearSpec) else getattr(space, "spec", None)
        if callable(spec):
            spec = spec()
        if not isinstance(spec, LinearSpec):
            raise TypeError(f"Family {self.name!r}: Ω is a {type(space).__name__} without a "
                            "LinearSpec; give the family a violations_fn")
        return spec_violations(x, spec)
