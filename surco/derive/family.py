"""`family_for`: a complete `surco.Family` from a problem and a generator, for `surco.compare`.

What it derives (each method a harness `Method`, evaluating only through its meter):

* ``"start"``: sequential linearisation: x_0 = argmin over Ω of ∇f(x̄)·x, x̄ the middle of
  x's bounds, then x_{t+1} = argmin ∇f(x_t)·x for up to `START_ROUNDS` rounds (the
  conditional-gradient step of Frank & Wolfe, Nav. Res. Log. 1956, taken whole), the best
  x_t by f kept — f and its gradient cost no evaluation of the true cost (x_0 for a zero
  cost when ∇f(x̄) is not finite; the rounds stop where ∇f(x_t) is not); on a mixed Ω
  each x_t's continuous entries are first re-optimised for f with its integers held
  (`surco.derive.mixed.ContinuousCompletion`), the next round linearising there, and so
  are the restarts;
* ``"local-search-steepest"`` / ``"local-search-first"``: local search over the
  neighbourhood read off Ω's rows (`neighbourhood_for`) from the start, restarted from the
  solver's answers for the cost ∇f(x̄) plus Gaussian noise of its RMS while the budget
  lasts (Papadimitriou & Steiglitz 1982, ch. 19; `surco.methods.search_from`);
* ``"annealing"``: simulated annealing over the same neighbourhood from the start
  (Kirkpatrick, Gelatt & Vecchi 1983; `surco.methods.annealing_from`), ``anneal_evaluations``
  when the budget is unlimited, stopping after `ANNEAL_STALL` proposals that found nothing
  new (twice);
* ``"scip"``: SCIP on the true objective written from f's jaxpr (`scip_method`, started
  from the start), when the translation succeeds on the generator's first instance;
  otherwise omitted and the reason recorded in ``notes["scip"]``; ``exact`` is the same
  SCIP required to prove optimality;
* ``zero_settings``: SurCo-zero with the blackbox estimator (Pogančić et al., ICLR 2020;
  λ = 10, Adam, lr 0.1, 100 steps) from the start's cost ∇f(x̄) — defaults, not tuned.

``notes`` (a `DerivedFamily` field) records the neighbourhood chosen on the first instance,
why SCIP is there or not, and how the SurCo settings were set.
"""
from __future__ import annotations

import dataclasses
import weakref
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from surco.family import Family
from surco.methods import annealing_from, heuristic, search_from
from surco.problem import Instance, Problem, ProblemError
from surco.solvers import make_solver

from .mixed import ContinuousCompletion, is_mixed
from .gradients import gradient_cost
from .repair import neighbourhood_for
from .scip import build_model, scip_method, spec_of

__all__ = ["DerivedFamily", "family_for"]

#: Re-linearisations of the start (argmin ∇f(x_t)·x, the best x_t by f is kept).
START_ROUNDS = 4
#: Annealing's ``max_stall``: proposals in a row that find nothing new before it reheats
#: (then stops). A small Ω is soon all cached; 2000 (the search's default) then costs
#: seconds of proposals for nothing.
ANNEAL_STALL = 200
_SOLVERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_BATCH: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True, eq=False)
class DerivedFamily(Family):
    """A `surco.Family` made by `family_for`; ``notes`` says what was derived and why."""

    notes: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _solver(spec, backend: str):
    key = _SOLVERS.setdefault(spec, {})
    if backend not in key:
        key[backend] = make_solver(spec, backend=backend)
    return key[backend]


def _midpoint(spec) -> np.ndarray:
    lo, hi = spec.lb, spec.ub
    return np.where(np.isfinite(lo) & np.isfinite(hi), 0.5 * (lo + hi),
                    np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0)))


def _gradient_at_mid(problem: Problem, y: Instance) -> np.ndarray:
    """∇f(x̄), x̄ the middle of x's bounds, shaped like x (the start's cost, SurCo's θ0)."""
    spec = spec_of(problem, y)
    return gradient_cost(problem, y)(_midpoint(spec).reshape(spec.shape)).reshape(spec.shape)


def _clean(spec, x: np.ndarray) -> np.ndarray:
    """A solver's x with its integer entries rounded (they are within its tolerance)."""
    return np.where(spec.integer.reshape(spec.shape), np.round(x), x) + 0.0


def _f(fn: Callable, x: np.ndarray, y: Instance) -> float:
    """f(x) through the batched jitted objective (no evaluation of the true cost)."""
    v = float(fn(jnp.asarray(np.asarray(x)[None], jnp.float32), y)[0])
    return v if np.isfinite(v) else np.inf


def _batched(objective: Callable) -> Callable:
    fn = _BATCH.get(objective)
    if fn is None:
        fn = _BATCH[objective] = jax.jit(jax.vmap(objective, in_axes=(0, None)))
    return fn


def _completion(p: Problem, y: Instance, spec, backend: str) -> ContinuousCompletion | None:
    """Ω's `ContinuousCompletion` for f on y when Ω is mixed, else None."""
    return ContinuousCompletion(p, y, spec, backend=backend) if is_mixed(spec) else None


def _completed(comp: ContinuousCompletion | None, spec, x: np.ndarray) -> np.ndarray:
    """x with its continuous entries re-optimised for f, its integers held (``comp``); x
    itself when Ω is not mixed (``comp`` None) or no better completion is found in Ω (x, a
    solver's answer, is in Ω)."""
    if comp is None:
        return x
    out = comp(x)
    return x if out is None else out.reshape(spec.shape)


def family_for(problem: Problem | Callable[[Instance], Problem],
               generate: Callable[..., list] | None, *,
               evaluate: Callable[[np.ndarray, Instance], float] | None = None,
               evaluate_batch: Callable[[np.ndarray, Instance], np.ndarray] | None = None,
               name: str | None = None, backend: str = "highs", scip: bool = True,
               anneal_evaluations: int = 2000, zero_settings: Mapping[str, Any] | None = None,
               seed: int = 0, **family_kw: Any) -> DerivedFamily:
    """A `surco.Family` for a new problem: baselines, SCIP and SurCo settings derived from the
    `surco.Problem` alone (see the module docstring).

    Args:
      problem: a `surco.Problem` (Ω fixed) or ``instance -> Problem``; Ω must be a
        `LinearSpec` (or an oracle with one) for the neighbourhoods, the start and SCIP.
      generate: ``generate(count, seed=0, **size) -> list`` of instances (also used once,
        ``generate(1, seed=0)``, to check that SCIP can write f); None: no generator.
      evaluate: the true cost ``(x, instance) -> float``; default f itself (JAX, jitted);
        ``evaluate_batch`` likewise for many x (default: f vmapped when evaluate is f).
      name: the family's name (default: the problem's).
      backend: the MILP/LP backend of the start, the restarts and the repair moves.
      scip: False leaves SCIP out (recorded in the notes).
      anneal_evaluations: annealing's evaluations under an unlimited budget.
      zero_settings: replaces the SurCo-zero defaults (merged over them).
      seed: seed of the restarts, the annealing and the repair moves.
      **family_kw: further `surco.Family` fields (``f_rtol``, ``f_monotone``,
        ``violations_fn``, ``reference``, ``zero_settings_note``).

    Returns:
      A `DerivedFamily` (a `surco.Family` with ``notes``).

    Raises:
      TypeError: problem is neither a Problem nor callable; Ω of the first instance has no
        `LinearSpec`.
    """
    if isinstance(problem, Problem):
        fixed = problem
        problem_fn: Callable[[Instance], Problem] = lambda y: fixed   # noqa: E731
    elif callable(problem):
        def problem_fn(y: Instance) -> Problem:
            p = problem(y)
            if not isinstance(p, Problem):
                raise TypeError(f"family_for: problem(instance) returned "
                                f"{type(p).__name__}, expected a surco.Problem")
            return p
    else:
        raise TypeError(f"family_for: problem must be a surco.Problem or a function instance "
                        f"-> Problem, got {type(problem).__name__}")
    notes: dict[str, str] = {}
    sample = generate(1, seed=0)[0] if generate is not None else None
    fam_name = name or (problem_fn(sample).name if sample is not None else
                        getattr(problem, "name", getattr(problem, "__name__", "derived")))

    def start(y: Instance) -> np.ndarray:
        p = problem_fn(y)
        spec = spec_of(p, y)
        solver = _solver(spec, backend)
        grad, f = gradient_cost(p, y), _batched(p.objective)
        try:
            c0 = _gradient_at_mid(p, y)
        except ProblemError:    # ∇f not finite at x̄: linearise from a point of Ω instead
            c0 = np.zeros(spec.shape)
        comp = _completion(p, y, spec, backend)
        x = _clean(spec, solver.solve(c0).x)
        xc = best = _completed(comp, spec, x)
        fbest, seen = _f(f, best, y), {x.tobytes()}
        for _ in range(START_ROUNDS):       # re-linearise at the last answer, keep the best
            try:
                x = _clean(spec, solver.solve(grad(xc).reshape(spec.shape)).x)
            except ProblemError:
                break
            if x.tobytes() in seen:
                break
            seen.add(x.tobytes())
            xc = _completed(comp, spec, x)
            fx = _f(f, xc, y)
            if fx < fbest:
                best, fbest = xc, fx
        return best

    def random_start(y: Instance, rng: np.random.Generator) -> np.ndarray:
        p = problem_fn(y)
        spec = spec_of(p, y)
        try:
            g = _gradient_at_mid(p, y)
        except ProblemError:
            g = np.zeros(spec.shape)
        rms = float(np.sqrt(np.mean(g * g))) or 1.0
        return _completed(_completion(p, y, spec, backend), spec, _clean(
            spec, _solver(spec, backend).solve(g + rms * rng.standard_normal(spec.shape)).x))

    def nbhd(y: Instance, x0: np.ndarray):
        return neighbourhood_for(problem_fn(y), y, x0, backend=backend, seed=seed)[0]

    first = heuristic(start, name="start")
    baselines: dict[str, Callable] = {
        "start": heuristic(start, score=True, name="start"),
        "local-search-steepest": search_from(first, nbhd, kind="steepest", restart=random_start,
                                             seed=seed),
        "local-search-first": search_from(first, nbhd, kind="first", restart=random_start,
                                          seed=seed),
        "annealing": annealing_from(first, nbhd, evaluations=int(anneal_evaluations), seed=seed,
                                    max_stall=ANNEAL_STALL)}
    exact = None
    if sample is not None:
        p0 = problem_fn(sample)
        notes["neighbourhood"] = neighbourhood_for(p0, sample, start(sample), backend=backend,
                                                   seed=seed)[1]
    if not scip:
        notes["scip"] = "omitted: scip=False"
    else:
        why = "included (not checked: no generator)"
        try:
            if sample is not None:
                build_model(p0, sample, spec_of(p0, sample))
                why = "included: f translated on generate(1, seed=0)[0]"
        except (ProblemError, TypeError) as exc:
            why = f"omitted: {exc}"
        notes["scip"] = why
        if why.startswith("included"):
            baselines["scip"] = scip_method(problem_fn, start=start)
            exact = scip_method(problem_fn, start=start, exact=True)

    settings = {"estimator": "blackbox", "lam": 10.0, "lr": 0.1, "steps": 100,
                "backend": backend,
                "init": lambda y: _gradient_at_mid(problem_fn(y), y),
                **dict(zero_settings or {})}
    notes["zero"] = family_kw.pop("zero_settings_note", None) or (
        "defaults, not tuned: blackbox (λ = 10), Adam lr 0.1, 100 steps, from the cost ∇f(x̄)")

    if evaluate is None:
        def evaluate(x: np.ndarray, y: Instance) -> float:
            return float(_batched(problem_fn(y).objective)(
                jnp.asarray(np.asarray(x)[None], jnp.float32), y)[0])

        if evaluate_batch is None:
            def evaluate_batch(X: np.ndarray, y: Instance) -> np.ndarray:
                X = np.asarray(X, np.float32)
                B = X.shape[0]
                size = max(16, 1 << max(B - 1, 0).bit_length())   # few compiled sizes
                pad = np.concatenate([X, np.repeat(X[:1], size - B, 0)]) if size > B else X
                return np.asarray(_batched(problem_fn(y).objective)(jnp.asarray(pad), y),
                                  np.float64)[:B]
    return DerivedFamily(name=fam_name, problem=problem_fn, evaluate=evaluate,
                         evaluate_batch=evaluate_batch, baselines=baselines, generate=generate,
                         exact=exact, zero_settings=settings,
                         zero_settings_note=notes["zero"],
                         **{"reference": "local-search-first", **family_kw}, notes=notes,
                         sense=problem_fn(sample).sense if sample is not None
                         else getattr(problem, "sense", "min"))
