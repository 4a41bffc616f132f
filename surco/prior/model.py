"""`PriorModel`: a trained SurCo-prior network with its feature normalisation, and prediction
(one forward pass and one solve per instance; Ferber et al., ICML 2023, §3.2)."""
from __future__ import annotations

import dataclasses
import functools
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from surco._engine import batched_objective, build_solver, check_finite, stack_instances
from surco.checks import check_instances
from surco.prior.checkpoint import save_model
from surco.problem import Instance, Problem, ProblemError
from surco.results import PriorResult, TrainHistory


@dataclasses.dataclass(repr=False)
class PriorModel:
    """A trained SurCo-prior: ``theta(y)`` (surrogate parameters), ``cost(y)`` and
    ``predict(y)`` (one forward pass + one solve).

    Attributes:
      problem: the `Problem` it was trained on.
      module, params: the Flax network and its parameters.
      feat_mean, feat_std: feature normalisation ``z = (features - mean) / std``, one entry
        per feature column ``(F,)``. Per-row features are normalised column by column over
        all rows of all training instances, so the model accepts any number of rows.
      out_shape: per-row features: the shape of one row of x (``x.shape[1:]``), and θ has
        shape ``(R, *out_shape)`` for R rows; one feature vector: the shape of x.
      per_row: whether the features are per row ``(R, F)`` (else one vector ``(F,)``).
      feature_shape: the feature shape the network was initialised with (the first
        training instance's); loading initialises a parameter template with it.
      estimator: the name of the gradient estimator it was trained with.
      backend, solver_options: how Ω is solved by `predict` (see `surco.zero`).
      history: the training curves (None only for models saved before format
        ``surco-prior/2``).
      base: optional residual base, ``instance -> θ_base`` shaped like x: a cost the
        problem supplies (a heuristic's); the prior is then ``θ = θ_base + network(y)``, so
        a network whose output starts at zero reproduces the heuristic's solution. Saved by
        its import path (a module-level function).
    """

    problem: Problem
    module: nn.Module
    params: Any
    feat_mean: np.ndarray
    feat_std: np.ndarray
    out_shape: tuple[int, ...]
    per_row: bool
    feature_shape: tuple[int, ...]
    estimator: str
    backend: str | None = None
    solver_options: dict | None = None
    history: TrainHistory | None = None
    base: Callable[[Instance], Any] | None = None

    def __post_init__(self):
        self.feat_mean = np.asarray(self.feat_mean, np.float32)
        self.feat_std = np.asarray(self.feat_std, np.float32)
        if self.feat_mean.ndim != 1 or self.feat_mean.shape != self.feat_std.shape:
            raise ValueError(f"PriorModel: feat_mean and feat_std must both have shape (F,), "
                             f"got {self.feat_mean.shape} and {self.feat_std.shape}")
        self.out_shape = tuple(int(s) for s in self.out_shape)
        self.feature_shape = tuple(int(s) for s in self.feature_shape)
        self._apply = jax.jit(self._theta_from_feats)

    def __repr__(self) -> str:
        epochs = len(self.history.train_f) if self.history is not None else None
        return (f"PriorModel(problem={self.problem.name!r}, module={type(self.module).__name__}, "
                f"per_row={self.per_row}, out_shape={self.out_shape}, "
                f"features={self.feat_mean.shape[0]}, estimator={self.estimator!r}, "
                f"backend={self.backend!r}, epochs={epochs}"
                + (f", base={getattr(self.base, '__name__', self.base)!r}" if self.base else "")
                + ")")

    def _theta_from_feats(self, params, feats):
        z = (feats - self.feat_mean) / self.feat_std
        shape = (feats.shape[0],) + self.out_shape if self.per_row else self.out_shape
        return self.module.apply(params, z).reshape(shape)

    def _features(self, instance: Instance) -> jax.Array:
        feats = self.problem.features_of(instance)
        F = self.feat_mean.shape[0]
        ok = (feats.ndim == 2 and feats.shape[1] == F) if self.per_row else feats.shape == (F,)
        if not ok:
            want = f"(rows, {F})" if self.per_row else f"({F},)"
            raise ProblemError(f"Problem {self.problem.name!r}: features have shape "
                               f"{tuple(feats.shape)}, the prior expects {want}")
        return feats

    def theta(self, instance: Instance) -> jax.Array:
        """Surrogate parameters ĉ(y; θ) (before the problem's ``cost_transform``); with a
        ``base``, ``base(y) + network(y)``."""
        net, base = self._theta_parts(instance)
        return net if base is None else net + base

    def _theta_parts(self, instance: Instance) -> tuple[jax.Array, np.ndarray | None]:
        """The network's output and the base's θ (None without a base), each computed
        once: robust prediction needs both, and a base can cost as much as the heuristic
        it is (sharding's cost-greedy plan)."""
        net = self._apply(self.params, self._features(instance))
        if self.base is None:
            return net, None
        return net, base_theta(self.base, instance, net.shape, self.problem.name)

    def base_theta(self, instance: Instance) -> np.ndarray:
        """The residual base's θ for ``instance`` (the heuristic's cost).

        Raises:
          ValueError: the model has no ``base``.
          ProblemError: the base returned a shape other than x's, or non-finite values.
        """
        if self.base is None:
            raise ValueError("PriorModel.base_theta: this prior has no base (train with "
                             "base=instance -> θ)")
        return base_theta(self.base, instance, tuple(self.problem.x_shape(instance)),
                          self.problem.name)

    def cost(self, instance: Instance) -> jax.Array:
        """The surrogate cost handed to the solver."""
        return self.problem.to_cost(self.theta(instance))

    def predict(self, instance: Instance | Sequence[Instance], *,
                executor: Executor | None = None, candidates: int = 1, sigma: float = 0.1,
                key: jax.Array | int = 0) -> PriorResult | list[PriorResult]:
        """One forward pass and one solve per instance; with ``candidates > 1``, *robust
        prediction*: a few candidate costs per instance solved in one batched call, the best
        by f kept.

        Args:
          instance: one instance, or a list or tuple of instances (an instance that is
            itself a plain tuple must be wrapped in a list; a NamedTuple is one instance).
            Instances that can be stacked (`batch_key`) are solved in one call; per-row
            priors accept instances of any number of rows.
          executor: optional ``concurrent.futures.Executor`` for the stacked solves.
          candidates: how many costs to score per instance (an integer >= 1): the prior's
            θ, then its ``base`` θ (the heuristic's, when the prior is a residual one), then
            perturbations ``θ + sigma · rms(θ) · N(0, I)`` of the prior's θ; all are solved
            in one batched call and the x of least f is returned (ties: the earlier
            candidate, so the prior's answer wins a tie). 1: the plain prior.
          sigma: relative size of the perturbations (a number > 0).
          key: PRNG key or int seed of the perturbations.

        Returns:
          A `PriorResult` (a list of them for a list or tuple); ``seconds`` is the wall time
          per instance (features, forward pass, base and every candidate's solve and f).

        Raises:
          ValueError: ``candidates`` or ``sigma`` out of range, an empty list, or instance
            data holding NaN or inf (naming the instance, the leaf's path, the first bad
            index and its value).
          ProblemError: features of the wrong shape, a cost whose shape is not Ω's, or a
            non-finite objective at the prediction.
          InfeasibleError, UnboundedError, SolverTimeout, SolverError: a failed solve.
        """
        from surco.solvers import SolverStack
        many = type(instance) in (list, tuple)
        instances = list(instance) if many else [instance]
        if not instances:
            raise ValueError("PriorModel.predict: instance is an empty list; expected an "
                             "instance or a non-empty list of instances")
        check_instances(self.problem, instances, jnp.float32, "PriorModel.predict",
                        trace=False)
        if isinstance(candidates, bool) or not isinstance(candidates, (int, np.integer)) \
                or candidates < 1:
            raise ValueError(f"PriorModel.predict: candidates must be an integer >= 1, got "
                             f"{candidates!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number)) \
                or not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"PriorModel.predict: sigma must be a finite number > 0, got "
                             f"{sigma!r}")
        if candidates > 1:
            from surco._engine import resolve_key
            keys = jax.random.split(resolve_key(key), len(instances))
            out = [self._predict_robust(y, int(candidates), float(sigma), k, executor)
                   for y, k in zip(instances, keys)]
            return out if many else out[0]
        t0 = time.perf_counter()
        C = [np.asarray(self.cost(y), np.float64) for y in instances]
        solvers = [build_solver(self.problem, y, self.backend, self.solver_options)
                   for y in instances]
        for i, (c, s) in enumerate(zip(C, solvers)):
            if c.shape != tuple(s.shape):
                raise ProblemError(f"Problem {self.problem.name!r}: the prior's cost for "
                                   f"instance {i} has shape {c.shape}, Ω has x shape "
                                   f"{tuple(s.shape)}")
        X: list[np.ndarray] = [np.empty(0)] * len(instances)
        fv = np.empty(len(instances))
        for idx in group_indices([batch_key(y, c.shape) for y, c in zip(instances, C)]):
            Xg = SolverStack([solvers[i] for i in idx], executor=executor).solve(
                np.stack([C[i] for i in idx])).x
            fg = self._f_batch(jnp.asarray(Xg, jnp.float32),
                               stack_instances(self.problem, [instances[i] for i in idx]))
            fv[idx] = np.asarray(fg)
            for i, x in zip(idx, Xg):
                X[i] = x
        check_finite(self.problem, fv, "at the prior's prediction")
        secs = (time.perf_counter() - t0) / len(instances)
        out = []
        for y, x, c, f in zip(instances, X, C, fv):
            true = float(self.problem.evaluate(x, y)) if self.problem.evaluate else None
            out.append(PriorResult(x=x, f=float(f), true_cost=true, c=c, seconds=secs,
                                   problem=self.problem.name))
        return out if many else out[0]

    def candidate_thetas(self, instance: Instance, candidates: int, sigma: float = 0.1,
                         key: jax.Array | int = 0) -> np.ndarray:
        """The θ that robust prediction scores, ``(candidates, *x.shape)``: the prior's, its
        base's (residual priors), then perturbations of the prior's (see `predict`)."""
        from surco._engine import resolve_key
        net, base = self._theta_parts(instance)
        th = np.asarray(net if base is None else net + base, np.float64)
        out = [th]
        if base is not None and candidates > 1:
            out.append(base)
        n_pert = max(candidates - len(out), 0)
        if n_pert:
            out.extend(perturbed(th, n_pert, sigma, resolve_key(key)))
        return np.stack(out[:candidates])

    def _predict_robust(self, instance: Instance, k: int, sigma: float, key: jax.Array,
                        executor: Executor | None) -> PriorResult:
        t0 = time.perf_counter()
        thetas = self.candidate_thetas(instance, k, sigma, key)
        C = np.asarray(self._to_cost_batch(jnp.asarray(thetas, jnp.float32)), np.float64)
        solver = build_solver(self.problem, instance, self.backend, self.solver_options)
        if C.shape[1:] != tuple(solver.shape):
            raise ProblemError(f"Problem {self.problem.name!r}: the prior's cost has shape "
                               f"{C.shape[1:]}, Ω has x shape {tuple(solver.shape)}")
        X = np.stack([s.x for s in solver.solve_batch(C, executor)])
        fv = np.asarray(self._f_candidates(jnp.asarray(X, jnp.float32), instance), np.float64)
        check_finite(self.problem, fv, "at the prior's candidate predictions")
        i = int(np.argmin(fv))
        secs = time.perf_counter() - t0
        true = (float(self.problem.evaluate(X[i], instance)) if self.problem.evaluate
                else None)
        return PriorResult(x=X[i], f=float(fv[i]), true_cost=true, c=C[i], seconds=secs,
                           problem=self.problem.name)

    @functools.cached_property
    def _f_candidates(self):
        """jit: f of several x of one instance, ``(K, *x.shape), y -> (K,)``."""
        return jax.jit(jax.vmap(self.problem.f, in_axes=(0, None)))

    @functools.cached_property
    def _f_batch(self):
        """jit: f of stacked instances, ``(B, *x.shape), Y stacked -> (B,)`` (compiled once
        per batch size and instance shape, as in training's validation)."""
        return jax.jit(batched_objective(self.problem))

    @functools.cached_property
    def _to_cost_batch(self):
        """jit: the problem's ``cost_transform`` of ``(K, *x.shape)`` parameters."""
        return jax.jit(jax.vmap(self.problem.to_cost))

    def save(self, path: str | Path, *, overwrite: bool = True) -> Path:
        """Write the model to the directory ``path``, as a unit: ``meta.json`` (format, the
        network's class and fields, normalisation, solver settings, history, and the name
        and SHA-256 of the parameters' file) and ``params.<16 hex>.msgpack``, written first.
        A save killed at any moment leaves the previous model or the new one (see
        `surco.prior.checkpoint`). `surco.prior.load` reads it back from the same ``path``.

        Args:
          path: the directory (created if missing; other files in it are left alone).
          overwrite: a model already saved there is replaced, atomically (the default);
            with False it is kept and `FileExistsError` raised.

        Returns:
          ``path``.

        Raises:
          ValueError: a network field or a solver option that cannot be recorded (see
            `surco.prior.specs.module_spec`), or ``path`` is a file; nothing is written.
          FileExistsError: ``overwrite=False`` and ``path`` holds a saved model.
        """
        return save_model(self, path, overwrite=overwrite)


def perturbed(theta: np.ndarray, n: int, sigma: float, key: jax.Array) -> np.ndarray:
    """``n`` perturbations ``θ + sigma · rms(θ) · N(0, I)`` of ``theta``, ``(n, *θ.shape)``
    (robust prediction's and hybrid's extra candidates; rms 0 counts as 1)."""
    scale = float(sigma) * float(np.sqrt(np.mean(theta ** 2)) or 1.0)
    return theta + scale * np.asarray(jax.random.normal(key, (n, *theta.shape)))


def batch_key(instance: Instance, x_shape: Sequence[int]) -> tuple:
    """What instances must share to be solved and evaluated as one stack: the x shape, the
    pytree structure (static fields included) and the shapes of the leaves."""
    leaves, treedef = jax.tree_util.tree_flatten(instance)
    return tuple(x_shape), treedef, tuple(np.shape(v) for v in leaves)


def group_indices(keys: Sequence[Any]) -> list[list[int]]:
    """Indices grouped by equal key, groups in order of first appearance."""
    groups: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return list(groups.values())


def base_theta(base: Callable[[Instance], Any], instance: Instance, shape: Sequence[int],
               name: str) -> np.ndarray:
    """``base(instance)`` as a float32 array of x's ``shape``, checked.

    Raises:
      ProblemError: another shape, or non-finite values (naming the problem)."""
    th = np.asarray(base(instance), np.float32)
    if th.shape != tuple(shape):
        raise ProblemError(f"Problem {name!r}: the prior's base returned shape {th.shape}, "
                           f"expected x's shape {tuple(shape)}")
    if not np.all(np.isfinite(th)):
        raise ProblemError(f"Problem {name!r}: the prior's base returned non-finite values")
    return th
