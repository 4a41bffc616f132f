"""SurCo-prior for on-time routing: a residual network over the mean–risk cost (issue 16).

The prior's surrogate parameters are ``θ(y) = θ_mr(y) + network(features(y))`` where
``softplus(θ_mr) = μ + γ*·σ²`` is the cost whose shortest path is the mean–risk heuristic's
answer (`mean_risk_theta`: Dijkstra on μ + γσ² over `default_gammas`, γ* the γ of least late
probability; Nikolova, Brand & Karger, ICAPS 2006). The network's output layer starts at
zero, so the untrained prior returns exactly the mean–risk path and training (end-to-end
through SurCo's estimator, Ferber et al. ICML 2023 Eq. 7, optionally with a distillation term
towards SurCo-zero's costs on the training instances) can only replace it by an epoch that
does better on the validation instances.

    >>> from surco.problems import routing as R
    >>> train = R.generate(4, seed=R.TRAIN_SEED, regime="risk", q=1.0)
    >>> prior = R.init_prior(train)                      # untrained: mean–risk's path
    >>> y = R.make_instance(0, n=5, regime="risk", q=1.0)
    >>> bool((prior.predict(y).x == R.mean_risk(y).x).all())
    True

`mean_risk_theta` selects γ* with the instance's own objective (the on-time probability of
≤ 31 candidate paths, in closed form), as `mean_risk` does; the prior therefore costs one
mean–risk run (≈ 31 Dijkstra calls) plus one forward pass and one solve, and calls no
evaluation meter.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import optax

import surco

from .baselines import mean_risk
from .family import FAMILY, ZERO_SETTINGS
from .instances import Instance, check_instance
from .problem import softplus_inverse

__all__ = ["mean_risk_theta", "PRIOR_SETTINGS", "init_prior", "train_prior",
           "distill_targets", "load_prior"]

#: how `train_prior` trains: SurCo-zero's estimator (blackbox, λ 100) on the flow LP (GLOP),
#: Adam on the network's weights, a small per-edge network with pooled context.
PRIOR_SETTINGS = dict(estimator="blackbox", lam=100.0, batch_size=16, lr=3e-3,
                      hidden=(32, 32), backend="glop", patience=8)


def mean_risk_theta(instance: Instance) -> np.ndarray:
    """θ (float64, shape (E,)) with ``softplus(θ) = μ + γ*·σ²``: the surrogate parameters of
    the mean–risk heuristic's path (`mean_risk`, γ* the best γ of `default_gammas` by on-time
    probability). A shortest-path solve at ``softplus(θ)`` returns that path.

    Raises:
      ValueError: a malformed instance (see `check_instance`).
    """
    check_instance(instance)
    gamma = mean_risk(instance).info["gamma"]
    mu = np.asarray(instance["mu"], np.float64)
    var = np.asarray(instance["var"], np.float64)
    return softplus_inverse(mu + gamma * var)


def _problem(instances: Sequence[Instance]) -> surco.Problem:
    if type(instances) not in (list, tuple) or not instances:
        raise ValueError("routing prior: instances must be a non-empty list or tuple of "
                         f"routing instances, got {type(instances).__name__}"
                         + (" (empty)" if type(instances) in (list, tuple) else ""))
    sizes = {check_instance(y) for y in instances}
    if len(sizes) != 1:
        raise ValueError(f"routing prior: instances must share one grid size, got n in "
                         f"{sorted(sizes)}")
    return FAMILY.problem(instances[0])


def _network(hidden: tuple[int, ...]):
    return surco.prior.CostNet(hidden=tuple(hidden))


def init_prior(train_instances: Sequence[Instance], *, key: int = 0,
               hidden: tuple[int, ...] = PRIOR_SETTINGS["hidden"]) -> surco.PriorModel:
    """The untrained residual prior (`surco.prior.init` with ``base=mean_risk_theta``): its
    θ is `mean_risk_theta`, so its prediction is the mean–risk path.

    Args:
      train_instances: instances of one grid size (they fix the feature normalisation).
      key: seed of the network's initialisation (the output layer is zero whatever it is).
      hidden: hidden widths of the per-edge network (`surco.prior.CostNet`).

    Raises:
      ValueError: an empty list, or instances of different grid sizes.
    """
    return surco.prior.init(_problem(train_instances), list(train_instances),
                            model=_network(hidden), base=mean_risk_theta, key=key,
                            backend=PRIOR_SETTINGS["backend"])


def distill_targets(train_instances: Sequence[Instance], *, executor=None,
                    steps: int | None = None) -> list[surco.ZeroResult]:
    """SurCo-zero's runs on the training instances, started from `mean_risk_theta` (so a
    target differs from the residual base only where SurCo-zero improved on the heuristic),
    with the family's ``ZERO_SETTINGS`` otherwise (`surco.prior.zero_targets`).

    Args:
      train_instances: instances of one grid size.
      executor: optional ``concurrent.futures.Executor`` for the runs.
      steps: SurCo-zero's steps (default ``ZERO_SETTINGS["steps"]``).

    Raises:
      ValueError: an empty list, or instances of different grid sizes.
    """
    kw = {k: v for k, v in ZERO_SETTINGS.items() if k != "init"}
    if steps is not None:
        kw["steps"] = steps
    return surco.prior.zero_targets(_problem(train_instances), list(train_instances),
                                    executor=executor, init=mean_risk_theta, **kw)


def train_prior(train_instances: Sequence[Instance], *,
                val_instances: Sequence[Instance] | None = None, epochs: int = 20,
                distill: Sequence[Any] | None = None, distill_weight: float = 1.0,
                key: int = 0, progress: bool = False, **overrides: Any) -> surco.PriorModel:
    """The residual SurCo-prior over the mean–risk cost, trained on ``train_instances``
    (`surco.prior.train` with ``base=mean_risk_theta``, `PRIOR_SETTINGS`).

    The untrained parameters (the heuristic itself) compete with every epoch on the
    validation instances (the training ones without a validation set), so the returned
    prior is the mean–risk heuristic unless some epoch beat it there.

    Args:
      train_instances, val_instances: instances of one grid size (train seeds, i.e. >=
        `TRAIN_SEED`, in the benches).
      epochs: training epochs.
      distill, distill_weight: distillation targets per training instance (e.g.
        `distill_targets`) and their weight; None: end-to-end only.
      key: seed of initialisation, shuffling and estimator.
      progress: progress bar.
      **overrides: replace entries of `PRIOR_SETTINGS` (``hidden``, ``lr``, ``lam``, …).

    Returns:
      A `surco.PriorModel` (``base`` is `mean_risk_theta`).

    Raises:
      ValueError: bad arguments (see `surco.prior.train`), or instances of several grid
        sizes.
    """
    s = {**PRIOR_SETTINGS, **overrides}
    problem = _problem(train_instances)
    if val_instances is not None:
        _problem(val_instances)
    hidden, lr = s.pop("hidden"), s.pop("lr")
    return surco.prior.train(problem, list(train_instances),
                             val_instances=None if val_instances is None else list(val_instances),
                             model=_network(hidden), optimizer=optax.adam(lr), epochs=epochs,
                             key=key, progress=progress, base=mean_risk_theta,
                             distill=distill, distill_weight=distill_weight, **s)


def load_prior(path, n: int = 5) -> surco.PriorModel:
    """A routing prior saved with ``PriorModel.save`` (network, base, normalisation).

    Raises:
      FileNotFoundError, ValueError: no model at ``path`` or one that does not fit.
    """
    from .family import problem_of_size
    return surco.prior.load(path, problem_of_size(int(n)))
