"""The one estimator interface and the layer that turns a solver into a JAX function.

SurCo (Ferber et al., ICML 2023) trains a cost c through ``x = g(c) = argmin_{x in Ω} c·x``.
The true derivative of g is zero almost everywhere; a *gradient estimator* supplies a useful
one. Every estimator is a small frozen dataclass (its hyperparameters are its fields) with

    estimator(solver, c, key=None) -> x

whose forward pass calls the solver through `jax.pure_callback` and whose backward pass is
the estimator's rule, attached with `jax.custom_vjp`. The result works under ``jit``,
``grad`` and ``vmap``; a vmapped call (and every batch of perturbed or re-solved costs) is
*one* ``solver.solve_batch`` call on the host, never a Python loop of callbacks.

Solver failures are values, not lost: the callback returns a `surco.solvers.Status` code
(int32) next to x (all-NaN on failure). ``estimator(..., return_status=True)`` hands it back
inside jit; outside any transformation a failed solve raises the solver layer's typed error
(`InfeasibleError`, ...), and `raise_for_status` does the same for a status value that has
left jit.

Writing an estimator (inside this package or in your own code): subclass `Estimator` as a
frozen dataclass whose fields are the hyperparameters, and implement the two public hooks
`Estimator.forward` and `Estimator.backward` in JAX. Call the solver only through
`call_solver` (one pure callback per batch of costs); `event_axes` gives the axes of x in a
batched c and `check_positive` validates a hyperparameter with the usual message. Set the
class attributes ``name``, ``needs_key`` (random estimators), ``forward_is_solution`` (False
when the forward pass is not the solver's own answer, e.g. a mean or a relaxation: SurCo then
solves ``g(c)`` once more for its feasible x) and ``no_progress_advice`` (what SurCo-zero
suggests when x does not move). The object then works with `surco.zero`,
`surco.prior.train`, `surco.estimators.solve_layer` and under ``jit``/``vmap``/``grad``. An estimator written
outside the package (sign-corrected straight-through, Sahoo et al. 2023, §3)::

    import dataclasses
    from typing import ClassVar
    import jax.numpy as jnp
    from surco.estimators import Estimator, call_solver, check_positive

    @dataclasses.dataclass(frozen=True)
    class ScaledNegIdentity(Estimator):
        scale: float = 1.0                                 # a hyperparameter
        name: ClassVar[str] = "scaled_neg_identity"
        no_progress_advice: ClassVar[str] = "a larger scale or lr"

        def __post_init__(self):
            check_positive(self.name, "scale", self.scale)

        def forward(self, solver, executor, c, key):
            x, status = call_solver(solver, executor, c)
            return x, status, None                         # no residuals

        def backward(self, solver, executor, c, key, x, residuals, g):
            return -self.scale * g                         # dL/dc from g = dL/dx

    res = surco.zero(problem, instance, estimator=ScaledNegIdentity(scale=2.0), steps=20)

To add one to the package: one file, one entry in ``registry.ESTIMATORS`` and the
conformance tests (tests/estimators).
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import weakref
from concurrent.futures import Executor
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from surco.solvers import Solution, Solver, Status
from surco.solvers.jax_oracles import JaxOracle

Array = jax.Array

__all__ = ["Estimator", "raise_for_status", "call_solver", "event_axes", "check_positive",
           "check_cost"]


# --------------------------------------------------------------------------------------
# The host side: one pure_callback per batch of costs.
# --------------------------------------------------------------------------------------
_HOST_FNS: "weakref.WeakKeyDictionary[Solver, dict]" = weakref.WeakKeyDictionary()


def _host_solve_fn(solver: Solver, executor: Executor | None):
    """The (cached) host function ``C[..., *shape] -> (X[..., *shape], status[...])``.

    Cached per (solver, executor) so that eager calls reuse JAX's compiled callback instead
    of compiling a new one per call.
    """
    per_solver = _HOST_FNS.setdefault(solver, {})
    fn = per_solver.get(id(executor))
    if fn is not None and fn.executor is executor:
        return fn
    k, shape, ref = len(solver.shape), solver.shape, weakref.ref(solver)

    def host(C):
        solver = ref()  # a weak reference: the cache must not keep the solver alive
        if solver is None:
            raise RuntimeError("the solver of this callback has been garbage-collected")
        C = np.asarray(C)
        batch = C.shape[:C.ndim - k]
        flat = C.reshape((-1,) + shape)
        if flat.shape[0] == 0:
            return np.zeros(C.shape, C.dtype), np.zeros(batch, np.int32)
        sols = solver.solve_batch(flat, executor=executor, check=False)
        X = np.stack([s.x for s in sols]).reshape(C.shape).astype(C.dtype, copy=False)
        status = np.fromiter((int(s.status) for s in sols), np.int32, len(sols)).reshape(batch)
        return X, status

    host.executor = executor
    per_solver[id(executor)] = host
    return host


def call_solver(solver: Solver | JaxOracle, executor: Executor | None, c: Array) -> tuple[Array, Array]:
    """``x = g(c) = argmin_{x in Ω} c·x`` as a JAX operation without a derivative rule:
    the one way an estimator's `Estimator.forward` / `Estimator.backward` calls the solver.

    Args:
      solver: the `surco.solvers.Solver`.
      executor: the executor handed to the hook (``None``: solve in this process).
      c: cost, shape ``(..., *solver.shape)``, floating point. All leading entries (and,
        under vmap, all batched entries) are solved by one ``solver.solve_batch`` call, on
        the host, through `jax.pure_callback`.

    A `surco.solvers.jax_oracles.JaxOracle` (shortest path, one-hot, top-k) is solved inside
    XLA instead: no host callback, so the estimator runs on CPU or GPU within one compiled
    program (``executor`` is ignored).

    Returns:
      ``(x, status)``: x with c's shape and dtype (all-NaN for a failed solve) and the int32
      `surco.solvers.Status` per leading entry (shape ``c.shape[:-len(solver.shape)]``).
      Failures are values here; `Estimator.__call__` turns them into errors.
    """
    if isinstance(solver, JaxOracle):
        return solver.solve_with_status(c)
    k = len(solver.shape)
    out = (jax.ShapeDtypeStruct(c.shape, c.dtype),
           jax.ShapeDtypeStruct(c.shape[:c.ndim - k], jnp.int32))
    return jax.pure_callback(_host_solve_fn(solver, executor), out, c,
                             vmap_method="expand_dims")


def event_axes(solver: Solver, c: Array) -> tuple[int, ...]:
    """The axes of ``c`` (shape ``(..., *solver.shape)``) that hold one x: the last
    ``len(solver.shape)``. Reduce over them for per-solve quantities (norms, dot products)."""
    k = len(solver.shape)
    return tuple(range(c.ndim - k, c.ndim))


def _is_concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def raise_for_status(status, solver: Solver | str = "solver") -> None:
    """Raise the solver layer's typed error if any entry of ``status`` is a failure.

    Args:
      status: int status codes (`surco.solvers.Status`), any shape, as returned by
        ``estimator(..., return_status=True)``; must be concrete (outside jit).
      solver: the solver (or its name) for the message.

    Raises:
      InfeasibleError, UnboundedError, SolverError: for the worst failing entry.
      TypeError: if ``status`` is a tracer (inside jit; check it after jit returns).
    """
    if not _is_concrete(status):
        raise TypeError("raise_for_status: status is traced (inside jit/vmap/grad); return it "
                        "from the jitted function and check it outside")
    st = np.asarray(status)
    if st.size == 0:
        return
    worst = int(st.max())
    if worst in (Status.OPTIMAL, Status.FEASIBLE):
        return
    name = solver if isinstance(solver, str) else solver.name
    n_bad = int(np.sum(st > Status.FEASIBLE))
    detail = {"detail": f"{n_bad} of {st.size} solves failed"} if st.size > 1 else {}
    Solution(x=np.zeros(0), objective=float("nan"), status=Status(worst),
             stats=detail).raise_for_status(name)


# --------------------------------------------------------------------------------------
# custom_vjp: the estimator decides forward residuals and the backward rule.
# --------------------------------------------------------------------------------------
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _estimate(est: "Estimator", solver: Solver, executor, c: Array, key):
    x, status, _ = est.forward(solver, executor, c, key)
    return x, status


def _estimate_fwd(est, solver, executor, c, key):
    x, status, res = est.forward(solver, executor, c, key)
    return (x, status), (c, key, x, res)


def _estimate_bwd(est, solver, executor, saved, cts):
    c, key, x, res = saved
    gx = cts[0]
    gc = est.backward(solver, executor, c, key, x, res, gx.astype(c.dtype))
    return gc.astype(c.dtype), None


_estimate.defvjp(_estimate_fwd, _estimate_bwd)


def check_positive(owner: str, field: str, value, *, integer: bool = False,
                   minimum: float = 0.0, strict: bool = True) -> None:
    """Validate a numeric hyperparameter: a finite number (an integer with ``integer``)
    ``> minimum`` (``>=`` when not ``strict``); bools are rejected.

    Raises:
      ValueError: ``"{owner}: {field} must be a finite number > 0, got ..."`` (or the
        integer / ``>=`` form).
    """
    ok_type = (isinstance(value, (int, np.integer)) and not isinstance(value, bool)) if integer \
        else isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok_type or not np.isfinite(value) or (value <= minimum if strict else value < minimum):
        want = (f"an integer >= {int(minimum)}" if integer and not strict
                else f"{'an integer' if integer else 'a finite number'} "
                     f"{'>' if strict else '>='} {minimum:g}")
        raise ValueError(f"{owner}: {field} must be {want}, got {value!r}")


def check_cost(owner: str, solver: Solver, c) -> Array:
    """Validate a cost for ``solver``: floating, shaped ``(..., *solver.shape)``, and (when
    concrete) finite. Returns it as a JAX array; raises ValueError naming ``owner``."""
    if not isinstance(c, (jax.Array, np.ndarray, jax.core.Tracer)):
        c = np.asarray(c)
    if not jnp.issubdtype(c.dtype, jnp.floating):
        raise ValueError(f"{owner}: cost c must be a floating-point array (float32 or "
                         f"float64), got dtype {c.dtype}")
    k = len(solver.shape)
    if c.ndim < k or tuple(c.shape[c.ndim - k:]) != solver.shape:
        raise ValueError(f"{owner}: cost c has shape {tuple(c.shape)}, expected "
                         f"{solver.shape} or (..., {', '.join(map(str, solver.shape))}) "
                         f"for solver {solver.name!r}")
    if _is_concrete(c):
        arr = np.asarray(c)
        if not np.all(np.isfinite(arr)):
            bad = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
            raise ValueError(f"{owner}: cost c contains NaN or inf (first at flat index {bad})")
    return jnp.asarray(c)


@dataclasses.dataclass(frozen=True)
class Estimator(abc.ABC):
    """A way to differentiate ``x = argmin_{x in Ω} c·x`` with respect to c.

    Subclasses are frozen dataclasses whose fields are the hyperparameters, and implement
    the public hooks `forward` and `backward` (and optionally `prepare`); see the module
    docstring for a complete estimator written outside the package. Both hooks are traced
    by JAX, see c with shape ``(..., *solver.shape)`` and call the solver only through
    `call_solver`.

    Attributes (class level):
      name: registry name, used in messages and results.
      needs_key: whether calls need a PRNG key (random estimators).
      forward_is_solution: whether `forward` returns the solver's own answer ``g(c)`` (a
        point of Ω). False for a mean over perturbations or a relaxation: callers that need
        a feasible x (SurCo-zero's best x, SurCo-prior's evaluation) then solve ``g(c)``
        once more.
      no_progress_advice: what to try when SurCo-zero's x does not move with this estimator
        (shown in `surco.NoProgressWarning`).
    """

    name: ClassVar[str] = "estimator"
    needs_key: ClassVar[bool] = False
    forward_is_solution: ClassVar[bool] = True
    no_progress_advice: ClassVar[str] = "a larger lr, or another estimator"

    def __call__(self, solver: Solver, c: Array, key: Array | None = None, *,
                 executor: Executor | None = None, return_status: bool = False):
        """``x = g(c)`` with this estimator's backward pass.

        Args:
          solver: any `surco.solvers.Solver` (MILP backend, oracle, `SolverStack`), or a
            `surco.solvers.jax_oracles.JaxOracle`, which is solved inside XLA (no host
            callback: the call runs on CPU or GPU and compiles into the caller's program).
          c: cost, floating point, shape ``solver.shape`` or ``(..., *solver.shape)`` (every
            leading entry solved independently, in one ``solve_batch``). Under vmap, the
            vmapped entries are solved in one ``solve_batch`` too.
          key: PRNG key; required when ``needs_key`` (the same key gives the same result),
            ignored otherwise.
          executor: optional ``concurrent.futures.Executor`` that ``solve_batch`` fans the
            batch out over.
          return_status: also return the int32 `Status` per solve (shape ``c.shape[:-k]``
            for k = len(solver.shape)); use it inside jit.

        Returns:
          x with c's shape and dtype (``(x, status)`` with ``return_status``). Failed solves
          give an all-NaN x and a failing status.

        Raises:
          ValueError: c not floating, not shaped ``(..., *solver.shape)``, or (when c is
            concrete) NaN/inf in c; a missing key for a random estimator.
          InfeasibleError, UnboundedError, SolverError: outside jit/vmap/grad, when a solve
            failed and ``return_status`` is False.
        """
        if not isinstance(solver, (Solver, JaxOracle)):
            raise TypeError(f"{self.name}: solver must be a surco.solvers.Solver or a "
                            f"surco.solvers.jax_oracles.JaxOracle, got {type(solver).__name__}")
        self.prepare(solver)
        c = self._check_cost(solver, c)
        key = self._check_key(key)
        x, status = _estimate(self, solver, executor, c, key)
        if not return_status and _is_concrete(status):
            raise_for_status(status, solver)
        return (x, status) if return_status else x

    # -- checks --------------------------------------------------------------------------
    def _check_cost(self, solver: Solver, c) -> Array:
        return check_cost(self.name, solver, c)

    def _check_key(self, key):
        if not self.needs_key:
            return None
        if key is None:
            raise ValueError(f"{self.name}: this estimator is random; pass key="
                             "jax.random.key(seed) (the same key gives the same result)")
        key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
        if not (jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                or (key.dtype == jnp.uint32 and key.shape == (2,))):
            raise ValueError(f"{self.name}: key must be a PRNG key (jax.random.key or "
                             f"jax.random.PRNGKey), got dtype {key.dtype} shape {key.shape}")
        return key

    def default_optimizer(self, lr: float) -> optax.GradientTransformation:
        """The optimiser of the surrogate cost that `surco.zero` uses with this estimator
        when none is given: ``optax.adam(lr)``. Override it for an estimator whose gradient
        Adam's per-entry normalisation defeats (`NegIdentity`, `Perturbed`). (SurCo-prior
        trains network weights, not costs, and keeps its own default.)"""
        return optax.adam(lr)

    # -- the public hooks ----------------------------------------------------------------
    def prepare(self, solver: Solver) -> None:
        """Optional hook, run eagerly before tracing on every call: build and cache what the
        estimator needs per solver, and fail early (with a clear error) if it cannot."""

    @abc.abstractmethod
    def forward(self, solver: Solver, executor: Executor | None, c: Array,
                key: Array | None) -> tuple[Array, Array, Any]:
        """The forward pass, in JAX.

        Args:
          solver, executor: pass both to `call_solver`.
          c: validated cost, shape ``(..., *solver.shape)``.
          key: a PRNG key when ``needs_key``, else None.

        Returns:
          ``(x, status, residuals)``: x shaped and typed like c; the int32 status per
          leading entry (from `call_solver`; the worst one when several solves make one x);
          residuals: any pytree of arrays (or None) handed to `backward`.
        """

    @abc.abstractmethod
    def backward(self, solver: Solver, executor: Executor | None, c: Array, key: Array | None,
                 x: Array, res: Any, g: Array) -> Array:
        """The backward pass, in JAX: ``dL/dc`` shaped like c, from the cotangent
        ``g = dL/dx`` (shaped like x) and what `forward` returned (x, residuals)."""
