"""Estimators by name: ``get_estimator("blackbox", lam=20.0)``."""
from __future__ import annotations

import dataclasses

from surco.estimators.base import Estimator
from surco.estimators.blackbox import Blackbox
from surco.estimators.identity import Identity, NegIdentity
from surco.estimators.perturbed import Perturbed
from surco.estimators.quadratic import Quadratic, StraightThrough

#: name -> estimator class (each a frozen dataclass of its hyperparameters)
ESTIMATORS: dict[str, type[Estimator]] = {
    "blackbox": Blackbox,
    "perturbed": Perturbed,
    "identity": Identity,
    "neg_identity": NegIdentity,
    "straight_through": StraightThrough,
    "quadratic": Quadratic,
}


def get_estimator(name_or_estimator: str | Estimator, **hyperparams) -> Estimator:
    """An estimator by object or by name, with hyperparameters.

    Args:
      name_or_estimator: an `Estimator` (returned as is, or with ``hyperparams`` replaced)
        or a name from `ESTIMATORS`: ``"blackbox"``, ``"perturbed"``, ``"identity"``,
        ``"neg_identity"``, ``"straight_through"``, ``"quadratic"``.
      **hyperparams: the estimator's fields, e.g. ``lam=`` (blackbox), ``sigma=, n=, noise=``
        (perturbed), ``gamma=`` (quadratic, straight_through), ``projection=`` (identity, blackbox).

    Raises:
      ValueError: unknown name, unknown hyperparameter (naming the valid ones), or a bad
        value (from the estimator's own checks).
    """
    if isinstance(name_or_estimator, Estimator):
        cls, base = type(name_or_estimator), name_or_estimator
    elif isinstance(name_or_estimator, str):
        if name_or_estimator not in ESTIMATORS:
            raise ValueError(f"get_estimator: unknown estimator {name_or_estimator!r}; choose "
                             f"from {sorted(ESTIMATORS)}")
        cls, base = ESTIMATORS[name_or_estimator], None
    else:
        raise TypeError("get_estimator: expected an Estimator or a name, got "
                        f"{type(name_or_estimator).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(hyperparams) - fields)
    if unknown:
        raise ValueError(f"get_estimator: {cls.name!r} has no hyperparameter(s) {unknown}; "
                         f"valid: {sorted(fields) or 'none'}")
    if base is not None:
        return dataclasses.replace(base, **hyperparams) if hyperparams else base
    return cls(**hyperparams)
