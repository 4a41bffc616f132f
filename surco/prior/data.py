"""SurCo-prior's training data: instances with their features, x shapes, residual bases,
solvers (built on first use) and minibatches of instances that stack (Ferber et al., ICML
2023, §3.2)."""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from surco._engine import build_solver
from surco.prior.model import base_theta, batch_key, group_indices
from surco.problem import Problem, ProblemError

__all__ = ["InstanceData", "minibatches", "distill_targets"]


class InstanceData:
    """Instances with their features (float32), x shapes, solvers, and index groups of
    equal `batch_key` (the instances that can share a minibatch)."""

    def __init__(self, problem: Problem, instances: list, arg: str, backend: str,
                 solver_options: dict | None, like: "InstanceData | None" = None, base=None):
        self.instances, self.arg = instances, arg
        self._problem, self._backend, self._options = problem, backend, solver_options
        self.feats = [np.asarray(problem.features_of(y), np.float32) for y in instances]
        self.x_shapes = [tuple(problem.x_shape(y)) for y in instances]
        f0, x0 = self.feats[0].shape, self.x_shapes[0]
        if len(f0) not in (1, 2):
            raise ProblemError(f"Problem {problem.name!r}: features must be (F,) or (rows, F), "
                               f"got {f0}")
        self.per_row = len(f0) == 2
        self.n_features = f0[-1]
        self.out_shape = x0[1:] if self.per_row else x0
        for i, (f, xs) in enumerate(zip(self.feats, self.x_shapes)):
            if self.per_row:
                if f.ndim != 2 or f.shape[1] != self.n_features:
                    raise ProblemError(f"Problem {problem.name!r}: {arg}[{i}] has features of "
                                       f"shape {f.shape}, {arg}[0] of {f0}; per-row features "
                                       f"must all be (rows, {self.n_features})")
                if f.shape[0] != xs[0]:
                    raise ProblemError(f"Problem {problem.name!r}: per-row features have "
                                       f"{f.shape[0]} rows but x has {xs[0]} ({arg}[{i}])")
                if xs[1:] != self.out_shape:
                    raise ProblemError(f"Problem {problem.name!r}: {arg}[{i}] has x of shape "
                                       f"{xs}, {arg}[0] of {x0}; rows must have one shape")
            elif f.shape != f0 or xs != x0:
                raise ProblemError(
                    f"Problem {problem.name!r}: {arg}[{i}] has features {f.shape} and x {xs}, "
                    f"{arg}[0] has {f0} and {x0}; one feature vector per instance maps to the "
                    "whole x, so all must agree (use per-row features (rows, F) for instances "
                    "of different sizes)")
        if like is not None and (self.per_row, self.n_features, self.out_shape) != (
                like.per_row, like.n_features, like.out_shape):
            raise ProblemError(f"Problem {problem.name!r}: {arg} have features {f0} and x {x0}, "
                               f"unlike the training instances ({like.feats[0].shape}, "
                               f"{like.x_shapes[0]})")
        self.keys = [batch_key(y, xs) for y, xs in zip(instances, self.x_shapes)]
        self.groups = group_indices(self.keys)
        self.bases = [base_theta(base, y, xs, problem.name) if base is not None
                      else np.zeros(xs, np.float32) for y, xs in zip(instances, self.x_shapes)]

    @functools.cached_property
    def solvers(self) -> list:
        """One solver per instance (built on first use: `init` needs none)."""
        return [build_solver(self._problem, y, self._backend, self._options)
                for y in self.instances]


def minibatches(order: np.ndarray, keys: Sequence[Any], size: int) -> list[list[int]]:
    """Minibatches of at most ``size`` instances of equal `batch_key`, taken in ``order``;
    when all keys are equal, consecutive slices of ``order``."""
    by: dict[Any, list[int]] = {}
    for i in order:
        by.setdefault(keys[int(i)], []).append(int(i))
    rank = {int(i): r for r, i in enumerate(order)}
    batches = [b[j:j + size] for b in by.values() for j in range(0, len(b), size)]
    return sorted(batches, key=lambda b: rank[b[0]])


def distill_targets(distill: Sequence[Any], tr: InstanceData) -> list[np.ndarray]:
    """Distillation targets θ* per training instance (arrays, or `ZeroResult` ``theta``)."""
    if not isinstance(distill, (list, tuple)) or len(distill) != len(tr.instances):
        n = len(distill) if isinstance(distill, (list, tuple)) else type(distill).__name__
        raise ValueError(f"prior.train: distill must be a list with one target per training "
                         f"instance ({len(tr.instances)}), got {n}")
    out = []
    for i, (t, xs) in enumerate(zip(distill, tr.x_shapes)):
        t = np.asarray(getattr(t, "theta", t), np.float32)
        if t.shape != tuple(xs):
            raise ValueError(f"prior.train: distill[{i}] has shape {t.shape}, expected x's "
                             f"shape {tuple(xs)}")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"prior.train: distill[{i}] holds NaN or inf")
        out.append(t)
    return out
