"""`PriorModel`: a trained SurCo-prior network with its feature normalisation, and prediction
(one forward pass and one solve per instance; Ferber et al., ICML 2023, §3.2)."""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from surco._engine import batched_objective, build_solver, check_finite, stack_instances
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
    backend: str = "scip"
    solver_options: dict | None = None
    history: TrainHistory | None = None

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
                f"backend={self.backend!r}, epochs={epochs})")

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
        """Surrogate parameters ĉ(y; θ) (before the problem's ``cost_transform``)."""
        return self._apply(self.params, self._features(instance))

    def cost(self, instance: Instance) -> jax.Array:
        """The surrogate cost handed to the solver."""
        return self.problem.to_cost(self.theta(instance))

    def predict(self, instance: Instance | Sequence[Instance], *,
                executor: Executor | None = None) -> PriorResult | list[PriorResult]:
        """One forward pass and one solve per instance.

        Args:
          instance: one instance, or a list or tuple of instances (an instance that is
            itself a plain tuple must be wrapped in a list; a NamedTuple is one instance).
            Instances that can be stacked (`batch_key`) are solved in one call; per-row
            priors accept instances of any number of rows.
          executor: optional ``concurrent.futures.Executor`` for the stacked solves.

        Returns:
          A `PriorResult` (a list of them for a list or tuple); ``seconds`` is the wall time
          per instance.

        Raises:
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
            fg = batched_objective(self.problem)(jnp.asarray(Xg, jnp.float32),
                                                 stack_instances(self.problem,
                                                                 [instances[i] for i in idx]))
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

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (a directory): ``meta.json`` (format, the network's
        class and fields, normalisation, solver settings, history) and ``params.msgpack``.
        `surco.prior.load` reads it back.

        Raises:
          ValueError: a network field or a solver option that cannot be recorded (see
            `surco.prior.specs.module_spec`).
        """
        from surco.prior.checkpoint import save_model
        return save_model(self, path)


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
