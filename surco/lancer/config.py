"""`LancerConfig`: LANCER's own settings (Zharmagambetov et al., NeurIPS 2023), checked once.
A keyword form is split into them and SurCo-zero's (`surco.ZeroConfig`: the estimator,
optimiser, start, key and solver that LANCER's descent shares with SurCo) by
`surco.config.split_settings` with `LANCER_FIELDS`."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from surco.checks import check_int, check_number
from surco.config import ZeroConfig

__all__ = ["LancerConfig", "LANCER_FIELDS", "check_moves", "estimator_kwargs"]

_WHO = "LancerConfig"


@dataclasses.dataclass(frozen=True)
class LancerConfig:
    """LANCER-zero's own settings (see `surco.lancer.lancer_zero`).

    Attributes:
      rounds: most rounds; None: until the meter's budget is spent (which must be finite).
      descent: optax steps on M per round (each one solve), >= 0.
      candidates: perturbed costs per round, >= 0 (``descent + candidates`` >= 1).
      per_round: most new solutions evaluated per round, >= 1.
      sigma: relative size of the perturbations (> 0).
      patience: rounds in a row without a new solution before the run stops (STALLED).
      hidden: widths of the landscape network (`landscape.LandscapeNet`).
      fit_steps, fit_lr, folds, window: AdamW steps and learning rate of each fit of M
        (from the initial parameters), the cross-validation folds that choose how much of
        the learned correction to use (0: all of it) and the number of most recent points
        fitted (None: all of them), as in `landscape.fit`.
      correction: weight in [0, 1] of the learned correction in the descent direction. With
        ``free_f``: 1 is the gradient of the whole M, as in the paper; 0: the descent
        follows f∘g_Ω through the estimator and the correction only ranks the candidates
        to evaluate. Without it M is the network alone, whose gradient is the descent's
        only direction: correction must then be > 0 when ``descent`` > 0.
      landscape: initial parameters of the landscape network (e.g. LANCER-prior's, with the
        same ``hidden``), from which every fit starts; None: an untrained network (M = f
        with ``free_f``, else M = the start's true cost).
      free_f: whether the problem's differentiable objective f is a *free proxy*, distinct
        from the metered true cost (a cost model judged by a profiler, as in
        ``bench.measured``): then LANCER computes f on every solution it proposes and M =
        f + learned correction. False (the default, and the only honest choice when f is
        the true cost or ranks solutions as it does: assignment, routing, portfolio,
        photonics, analytic sharding): LANCER looks at f only on solutions the meter has
        evaluated (LANCER-zero not at all: it has the meter's values), and M is the
        learned network alone (`surco.lancer.zero`). A setting of
        LANCER's rather than a field of `surco.Problem`: whether f is free depends on the
        meter it is compared with (a learned cost model is the true cost when the meter
        evaluates that model, a free proxy when the meter is the profiler), and LANCER is
        the method that would compute f on solutions it does not evaluate.

    Raises:
      ValueError: a bad value, naming the field.
    """

    rounds: int | None = None
    descent: int = 4
    candidates: int = 8
    per_round: int = 2
    sigma: float = 0.1
    patience: int = 10
    hidden: tuple[int, ...] = (32,)
    fit_steps: int = 200
    fit_lr: float = 3e-3
    folds: int = 4
    window: int | None = 64
    correction: float = 1.0
    landscape: Any = None
    free_f: bool = False

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        put("rounds", check_int("rounds", self.rounds, 1, none_ok=True, who=_WHO))
        put("descent", check_int("descent", self.descent, 0, who=_WHO))
        put("candidates", check_int("candidates", self.candidates, 0, who=_WHO))
        if self.descent + self.candidates < 1:
            raise ValueError(f"{_WHO}: descent + candidates must be >= 1 (no solution would "
                             "be proposed), got 0 and 0")
        put("per_round", check_int("per_round", self.per_round, 1, who=_WHO))
        put("patience", check_int("patience", self.patience, 1, who=_WHO))
        put("fit_steps", check_int("fit_steps", self.fit_steps, 1, who=_WHO))
        put("window", check_int("window", self.window, 2, none_ok=True, who=_WHO))
        f = self.folds
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f == 1 or f < 0:
            raise ValueError(f"{_WHO}: folds must be 0 or an integer >= 2, got {f!r}")
        c = self.correction
        if isinstance(c, bool) or not isinstance(c, (int, float, np.number)) or not 0 <= c <= 1:
            raise ValueError(f"{_WHO}: correction must be a number in [0, 1], got {c!r}")
        put("sigma", check_number("sigma", self.sigma, who=_WHO))
        put("fit_lr", check_number("fit_lr", self.fit_lr, who=_WHO))
        h = self.hidden
        if (not isinstance(h, (tuple, list)) or not h
                or not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool)
                           and w >= 1 for w in h)):
            raise ValueError(f"{_WHO}: hidden must be a non-empty tuple of integers >= 1, got "
                             f"{h!r}")
        put("hidden", tuple(int(w) for w in h))
        if not isinstance(self.free_f, (bool, np.bool_)):
            raise ValueError(f"{_WHO}: free_f must be True (f is a free proxy of the metered "
                             f"cost) or False (f is, or ranks like, the cost), got "
                             f"{self.free_f!r}")
        put("free_f", bool(self.free_f))
        if not self.free_f and self.descent > 0 and c == 0:
            raise ValueError(f"{_WHO}: correction=0 with free_f=False and descent > 0: M is "
                             "then the learned network alone and the descent would not move; "
                             "give correction > 0, descent=0, or free_f=True if f is a free "
                             "proxy of the metered cost")


#: the keywords that belong to `LancerConfig` (the rest of a keyword form is SurCo-zero's)
LANCER_FIELDS = tuple(f.name for f in dataclasses.fields(LancerConfig))


def check_moves(cfg: LancerConfig, who: str) -> None:
    """ValueError when ``cfg`` could propose no solution but the start: without a free f
    and without initial ``landscape`` parameters, the untrained M is flat (its gradient is
    zero), so the perturbations (``candidates``) are the only source of new solutions."""
    if not cfg.free_f and cfg.landscape is None and cfg.candidates == 0:
        raise ValueError(f"{who}: candidates=0 with free_f=False and no landscape parameters: "
                         "the untrained landscape model is flat, so only perturbations can "
                         "propose a solution; give candidates >= 1, initial landscape "
                         "parameters, or free_f=True if f is a free proxy of the metered cost")


def estimator_kwargs(settings: Mapping[str, Any]) -> dict:
    """The entries of ``settings`` that are neither `LancerConfig` nor `surco.ZeroConfig`
    fields: the estimator's hyperparameters."""
    own = set(LANCER_FIELDS) | set(ZeroConfig.keywords())
    return {k: v for k, v in settings.items() if k not in own}
