"""SurCo's settings on sharding: the problem SurCo-zero optimises, its keyword arguments,
SurCo-prior's network, training and the shipped checkpoint. Comparisons with the baselines
go through the harness (`surco.compare` with `family.FAMILY`).

How SurCo's settings (`problem.ZERO_DEFAULTS`) were first explored (on 3-10 DLRM-50 tasks,
mean cost relative to the cost-model greedy plan SurCo-zero starts from). That study used
tasks of the *test* pool; the learning rate and start margins were then re-selected on
train-pool tasks only by ``python -m bench.sharding_tune`` (its JSON in bench/results/
records the grid and the choice), which is what the benches report with:

* blackbox interpolation (Vlastelica et al.; λ from 0.3 to 30, Adam or SGD) and perturbed
  optimizers (Berthet et al.; σ 0.3-1, 4 samples) stayed at the start (1.00; blackbox 0.98
  with Adam 0.01, at twice the solves per step); from random costs SurCo-zero ended 3-7 %
  above the greedy plan;
* the negative identity (Sahoo et al.) with plain SGD reached 0.94-0.95; with the "norm"
  projection 0.96-0.98; with Adam (every coordinate moves at the same rate) it left good
  plans for worse ones;
* starting from the cheapest heuristic plan rather than always the cost-model greedy's:
  0.5 % lower mean cost;
* start margins ``0.3 · a_t^2`` (small tables move first): 0.95, against 0.98 for equal
  margins and 0.96 for margins ∝ a_t; smooth-max temperatures 0.05-0.2 and learning rates
  0.03-0.08 agree within 0.5 %; 500 steps instead of 300 gained 0.1 %; two chains (from
  the cost-model and TorchRec plans) 0.4 % for twice the solves.

What was tried to make the residual SurCo-prior (`train_prior(residual=True)`: a
`surco.prior.SetCostNet` over the cost-greedy plan's cost) beat cost-greedy (40 train-pool
DLRM-50 tasks at T = 50, 10 validation tasks on which cost-greedy's mean is 7.294 ms;
SurCo-zero from cost-greedy's cost, 300 steps, reaches 0.948 x cost-greedy on the 50
train tasks):

* end-to-end (Eq. 7, negative identity, true maximum), Adam 1e-3, 12 epochs: the validation
  mean rose from 7.63 to 22.9 ms (diverged); Adam 1e-4: 7.29-7.34, never below cost-greedy;
  on the smooth maximum (3e-4) it won on the smooth objective but lost on the true cost at
  T = 10, 20, 40 (1.007, 1.005, 1.002 x cost-greedy);
* distillation alone towards SurCo-zero's final θ (row-centred: a constant per table does
  not change the plan), Adam 1e-3, 30 epochs: 8.35-11.2 ms; with the cost-greedy plan and
  its device loads as extra features: 9.3-11.1; towards `greedy_init` of SurCo-zero's best
  plan, with those features and ∂f/∂x at the cost-greedy plan: best 7.55 (epoch 8);
* one SurCo step from cost-greedy's cost, ``θ = θ_base - α ∂f/∂x`` for α from 0.01 to 1,
  improved none of 20 train and 32 test tasks: cost-greedy's plan is a fixed point of a
  step, and SurCo-zero needs about a hundred to find its 5 %.

Since the untrained parameters (cost-greedy itself) compete in the selection by validation
cost, all of these priors but the smooth-maximum one returned cost-greedy's plans (1.000 x
at every T); none beat cost-greedy, so the shipped checkpoint was not replaced.

On tiny tasks whose optimum swaps two tables, blackbox from the greedy plan finds it (its
perturbed re-solve moves two tables at once) and the negative identity does not (see
``tests/sharding/test_sharding_surco.py``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import optax

import surco

from .baselines import best_heuristic_plan
from .cost import DEFAULT_COST_MODEL, AnalyticCostModel
from .problem import ZERO_DEFAULTS, PlanResidualNet, greedy_init, sharding_problem
from .tasks import ShardingTask

#: Where the shipped SurCo-prior checkpoint lives (DLRM-50, 4 devices, 5 GB).
SHIPPED_PRIOR = Path(__file__).resolve().parent / "data" / "prior_dlrm50_d4"
#: SurCo-prior's networks: the hidden sizes of `PlanResidualNet` and of the residual
#: `surco.prior.SetCostNet` (the shipped checkpoint: a residual over cost-greedy's plan,
#: ``train_prior(residual=True)``, `ship_prior`).
PRIOR_HIDDEN = (64, 64)
PRIOR_SKIP = 0.3  # the PlanResidualNet skip of the v1 checkpoints (tests/surco/data)


def default_problem(model: AnalyticCostModel = DEFAULT_COST_MODEL) -> surco.Problem:
    """The sharding problem with SurCo's default smooth-max temperature."""
    return sharding_problem(model, temperature=ZERO_DEFAULTS["temperature"])


#: SurCo-zero's optimiser for sharding, built once (`surco.zero` keys its cache of compiled
#: steps by the optimiser's definition, so an equal one built per task hits it too; before
#: that key, a fresh ``optax.sgd(...)`` per task recompiled the step, ~0.9 s per task).
ZERO_OPTIMIZER = optax.sgd(ZERO_DEFAULTS["lr"])


def zero_kwargs(steps: int | None = None) -> dict:
    """Keyword arguments of ``surco.zero`` for sharding (`ZERO_DEFAULTS`), init excluded."""
    return dict(estimator=ZERO_DEFAULTS["estimator"],
                steps=int(ZERO_DEFAULTS["steps"] if steps is None else steps),
                optimizer=ZERO_OPTIMIZER, select="evaluate")


def zero_config(steps: int | None = None) -> surco.ZeroConfig:
    """SurCo-zero's configuration for one sharding task (`run_zero`): `zero_kwargs` with the
    start rule `zero_start` (the cheapest heuristic plan, `greedy_init`) and seed 0."""
    return surco.ZeroConfig.of(**zero_kwargs(steps), init=zero_start, key=0)


def run_zero(problem: surco.Problem, task: ShardingTask, config: surco.ZeroConfig | None = None,
             /, **settings: Any) -> surco.ZeroResult:
    """SurCo-zero on one task: `surco.zero` with ``config`` (default `zero_config`: started
    from the cheapest heuristic plan, `baselines.best_heuristic_plan`, usually the
    cost-model greedy's), ``settings`` (`surco.ZeroConfig` fields, e.g. ``steps``,
    ``progress``) replacing its fields.

    The start rule runs inside the timed call, so ``seconds`` includes the heuristics."""
    t0 = time.perf_counter()
    res = surco.zero(problem, task, zero_config() if config is None else config, **settings)
    res.seconds = time.perf_counter() - t0
    return res


def heuristic_theta(task: ShardingTask) -> np.ndarray:
    """The cheap heuristic's surrogate cost, the base of the residual prior: `greedy_init`
    of the cost-model greedy plan (`baselines.cost_greedy`, ~15 ms at T = 50); the solver's
    answer at it is that plan."""
    return greedy_init(task)


def zero_start(task: ShardingTask) -> np.ndarray:
    """SurCo-zero's start rule (`zero_config`): `greedy_init` of the cheapest heuristic plan
    (`baselines.best_heuristic_plan`, ~90 ms at T = 50); SurCo-hybrid compares it with the
    prior's cost (`surco.prior.hybrid_start(prior, task, heuristic=zero_start)`)."""
    return greedy_init(task, best_heuristic_plan(task)[1])


def prior_network(n_devices: int) -> PlanResidualNet:
    """SurCo-prior's network for D devices."""
    return PlanResidualNet(out=int(n_devices), hidden=PRIOR_HIDDEN, skip=PRIOR_SKIP)


def prior_problem(model: AnalyticCostModel = DEFAULT_COST_MODEL) -> surco.Problem:
    """The problem SurCo-prior is trained on: the true maximum over devices (training on
    the smooth maximum at SurCo-zero's temperature gave worse plans on held-out tasks)."""
    return sharding_problem(model, smooth=False)


def train_config(n_devices: int, *, residual: bool = False, lr: float = 3e-4,
                 **settings: Any) -> surco.TrainConfig:
    """SurCo-prior's configuration on sharding for D devices: SurCo-zero's estimator, 10
    epochs, minibatches of 10, patience 8, HiGHS, seed 0; ``settings`` (`surco.TrainConfig`
    fields) replace these.

    Args:
      residual: False: the `PlanResidualNet` network (residual over TorchRec's plan in its
        features; the shipped checkpoint). True: a `surco.prior.SetCostNet` residual over
        `heuristic_theta` (the cost-greedy plan): untrained, it returns that plan, and it is
        trained with Adam (with the estimator's default SGD it diverged at lr 1e-3).
      lr: the learning rate.
    """
    net = surco.prior.SetCostNet(hidden=PRIOR_HIDDEN) if residual else prior_network(n_devices)
    return surco.TrainConfig.of(**{
        "model": net, "estimator": ZERO_DEFAULTS["estimator"], "epochs": 10, "batch_size": 10,
        "lr": lr, "key": 0, "optimizer": optax.adam(lr) if residual else None,
        "backend": "highs", "patience": 8, "base": heuristic_theta if residual else None,
        **settings})


def train_prior(train_tasks: Sequence[ShardingTask], config: surco.TrainConfig | None = None,
                /, *, val_tasks: Sequence[ShardingTask] | None = None,
                model: AnalyticCostModel = DEFAULT_COST_MODEL, residual: bool = False,
                lr: float = 3e-4, distill: Sequence | None = None,
                **settings: Any) -> surco.PriorModel:
    """SurCo-prior (Ferber et al. 2023, Eq. 7) trained on ``train_tasks`` through
    ``surco.prior.train`` on the `prior_problem` objective, early stopping on ``val_tasks``.

    Args:
      config: the `surco.TrainConfig` (default `train_config` for the tasks' devices, with
        ``residual`` and ``lr``); ``settings`` (its fields, e.g. ``epochs``, ``key``,
        ``progress``, ``distill_weight``) replace its fields.
      model: the cost model of the objective.
      distill: distillation targets per train task (e.g.
        ``surco.prior.zero_targets(default_problem(), train_tasks, init=zero_start,
        **zero_kwargs())``), as in `surco.prior.train`.
    """
    if config is None:
        config = train_config(train_tasks[0].n_devices, residual=residual, lr=lr)
    return surco.prior.train(prior_problem(model), list(train_tasks), config,
                             val_instances=val_tasks, distill=distill, **settings)


def load_prior(path: str | Path = SHIPPED_PRIOR, n_devices: int = 4,
               model: AnalyticCostModel = DEFAULT_COST_MODEL) -> surco.PriorModel:
    """A saved SurCo-prior (default: the shipped DLRM-50 / 4-device checkpoint, a residual
    over cost-greedy's plan that loads as itself, its base included). A format-1 file,
    which records no network class, loads as the `PlanResidualNet` it was trained as.

    Raises:
      FileNotFoundError, ValueError: no checkpoint at ``path`` or one for another problem.
    """
    meta = Path(path) / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("module") is not None:
        prior = surco.prior.load(path, prior_problem(model))
    else:
        prior = surco.prior.load(path, prior_problem(model), model=prior_network(n_devices))
    prior.backend = "highs"
    return prior


#: SurCo past its plateau on sharding (`surco.plateau`, "surco-plateau" in the family's
#: methods): per evaluation budget, the candidate of ``bench.plateau_tune.CANDIDATES`` with
#: the lowest mean cost on 10 train-pool DLRM-50 tasks (``python -m bench.plateau_tune``;
#: bench/results/plateau_tune.json records every candidate's mean and the choice). A
#: budget between these runs the nearest one's setting (log scale,
#: `surco.plateau.budgeted_method`).
#: Chosen (train means, ratio to annealing, the best search at each budget): 30: restarts
#: after 10 steps without improvement, noise 0.03 (7.096, 0.982; SurCo-zero 0.989); 100:
#: those restarts on 70 % of the budget, then annealing (7.026, 0.984; SurCo-zero 0.991);
#: 300: SurCo-zero on 70 %, then first-improvement local search (6.954, 0.990; SurCo-zero
#: 0.993). Restarts cost at 300 (0.9995): SurCo-zero's late improvements come after long
#: stalls. Explored before the grid (same tasks, 30 / 100 evaluations): a trust region on θ
#: (radius 0.1-1 of ‖θ_0‖) stalled SurCo (7.15-7.29 at 30, against 7.14 without), and pools
#: of the 2 or 8 neighbours next by the surrogate cost spent evaluations on worse plans
#: (7.15 / 7.23 at 30).
PLATEAU_CHOICE: dict[int, dict] = {
    30: {"kind": "zero", "restart": 10, "noise": 0.03},
    100: {"kind": "polish", "share": 0.7, "strategy": "annealing", "restart": 10,
          "noise": 0.03},
    300: {"kind": "polish", "share": 0.7, "strategy": "first"},
}


def plateau_from(family: surco.Family, spec: dict) -> surco.family.Method:
    """The harness method a `PLATEAU_CHOICE` entry (or a ``bench.plateau_tune`` candidate)
    describes: ``{"kind": "zero", **plateau_zero settings}`` is
    `surco.plateau.plateau_method` (SurCo-zero with restarts / trust region / pool);
    ``{"kind": "polish", "share", "strategy", **plateau_zero settings}`` is
    `surco.lns.polish_method` with that method as its first stage.

    Raises:
      ValueError: an unknown kind; TypeError: an unknown setting (named).
    """
    from surco.lns import polish_method
    from surco.plateau import plateau_method
    kw = dict(spec)
    kind = kw.pop("kind", None)
    if kind == "zero":
        return plateau_method(family, **kw)
    if kind == "polish":
        share, strategy = kw.pop("share"), kw.pop("strategy")
        return polish_method(family, share=share, strategy=strategy,
                             first=plateau_method(family, **kw))
    raise ValueError(f"plateau_from: kind must be 'zero' or 'polish', got {kind!r}")


def plateau_methods(family: surco.Family) -> dict[str, surco.family.Method]:
    """``{"surco-plateau": ...}``: the method `PLATEAU_CHOICE` chose for each evaluation
    budget (`surco.plateau.budgeted_method`).

    Raises:
      ValueError: `PLATEAU_CHOICE` is empty."""
    from surco.plateau import budgeted_method
    return {"surco-plateau": budgeted_method({E: plateau_from(family, spec)
                                              for E, spec in PLATEAU_CHOICE.items()})}
