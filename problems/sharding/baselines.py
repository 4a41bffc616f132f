"""Sharding baselines as the field defines them; every one respects Ω and returns a plan x
of shape (T, D) (float64 one-hot), the same form as SurCo's.

* ``random`` and ``round-robin``: DreamShard's (Zha et al., NeurIPS 2022) trivial baselines.
* ``dim-greedy``, ``size-greedy``, ``lookup-greedy`` (dim × pooling) and
  ``size-lookup-greedy`` (dim × pooling × log10 rows): DreamShard's four proxy heuristics
  (after AutoShard, Zha et al., KDD 2022): sort tables by the proxy cost, largest first, and
  put each on the device with the smallest accumulated proxy cost that has room for it.
* ``cost-greedy``: SurCo's "Greedy" (Ferber et al., ICML 2023, §5.1): tables in decreasing
  order of their standalone cost under the cost model, each put on the device that keeps the
  plan's cost (max over devices, evaluated with the full, coupled cost model) lowest.
* ``torchrec-greedy``: TorchRec's ``GreedyPerfPartitioner``: tables in decreasing order of
  TorchRec's additive per-table perf estimate (bytes over HBM bandwidth times the block
  penalty, backward = 2 × forward, plus communication; no cache model, no overheads), each
  on the device with the lowest accumulated perf that has enough storage.

Memory and "every device used" are handled the same way everywhere: a table goes only to a
device with room for it, and once the tables left are as many as the empty devices, they go
to empty devices. A deterministic heuristic that cannot place a table raises
`BaselineError`; ``random`` draws again and falls back instead (`random_plan`), so that it
never aborts on a feasible task.

`HEURISTICS` maps their names to the plan functions ``(task, seed=0) -> x``; the family's
harness methods (`surco.problems.sharding.family.BASELINES`) are built on them with
`surco.methods`, from the pieces at the end of this module (`start_plan`, `row_moves`,
`scip_plan`, `exact`, `evaluate_batch`).
"""
from __future__ import annotations

import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from surco.budget import Meter
from surco.search import RowChoice
from surco.solvers import SolverError, make_solver

from .cost import DEFAULT_COST_MODEL, AnalyticCostModel, evaluate_plan, standalone_costs
from .minlp import scip_minlp
from .tasks import ShardingTask, assignment_to_plan, plan_violations, spec_for


class BaselineError(RuntimeError):
    """A heuristic found no device with room for a table (the task may still be feasible)."""


def _candidates(d_load_bytes: np.ndarray, n_tables_on: np.ndarray, size: float,
                cap: np.ndarray, remaining: int, name: str, t: int) -> np.ndarray:
    empty = np.flatnonzero(n_tables_on == 0)
    pool = empty if remaining <= empty.size else np.arange(cap.size)
    fits = pool[d_load_bytes[pool] + size <= cap[pool]]
    if fits.size == 0:
        raise BaselineError(f"{name}: no device has room for table {t} ({size / 1e9:.3f} GB; "
                            f"free memory {np.round((cap - d_load_bytes) / 1e9, 3).tolist()} GB)")
    return fits


def _greedy_by_proxy(task: ShardingTask, proxy: np.ndarray, name: str) -> np.ndarray:
    """Largest proxy first, each table on the fitting device with the least proxy load."""
    T, D = task.n_tables, task.n_devices
    size = np.asarray(task.size_bytes, np.float64)
    cap = np.asarray(task.capacity, np.float64)
    mem, load, count = np.zeros(D), np.zeros(D), np.zeros(D, int)
    assign = np.full(T, -1)
    for i, t in enumerate(np.argsort(-proxy, kind="stable")):
        fits = _candidates(mem, count, size[t], cap, T - i, name, int(t))
        d = fits[np.argmin(load[fits])]
        assign[t], mem[d], load[d], count[d] = d, mem[d] + size[t], load[d] + proxy[t], count[d] + 1
    return assignment_to_plan(assign, D)


def dim_greedy(task: ShardingTask, seed: int = 0) -> np.ndarray:
    """DreamShard's dim-based greedy: proxy cost = embedding dim."""
    return _greedy_by_proxy(task, np.asarray(task.dim, np.float64), "dim-greedy")


def size_greedy(task: ShardingTask, seed: int = 0) -> np.ndarray:
    """DreamShard's size-based greedy: proxy cost = rows × dim (table size)."""
    return _greedy_by_proxy(task, np.asarray(task.size_bytes, np.float64), "size-greedy")


def lookup_greedy(task: ShardingTask, seed: int = 0) -> np.ndarray:
    """DreamShard's lookup-based greedy: proxy cost = dim × pooling factor."""
    return _greedy_by_proxy(task, np.asarray(task.dim) * np.asarray(task.pooling),
                            "lookup-greedy")


def size_lookup_greedy(task: ShardingTask, seed: int = 0) -> np.ndarray:
    """DreamShard's size-lookup greedy: proxy cost = dim × pooling × log10(rows)."""
    proxy = np.asarray(task.dim) * np.asarray(task.pooling) * np.log10(np.asarray(task.rows))
    return _greedy_by_proxy(task, proxy, "size-lookup-greedy")


def torchrec_perf(task: ShardingTask, model: AnalyticCostModel = DEFAULT_COST_MODEL) -> np.ndarray:
    """TorchRec-style additive per-table perf estimate (ms): ``3 (S + G) / BW_HBM +
    2 P / BW_COMM`` (forward + 2× backward compute, forward + backward all-to-all)."""
    S, G = np.asarray(task.stream_bytes, np.float64), np.asarray(task.lookup_bytes, np.float64)
    P = np.asarray(task.comm_bytes, np.float64)
    return 1e3 * ((1 + model.bwd_multiplier) * (S + G) / model.hbm_bw + 2 * P / model.comm_bw)


def torchrec_greedy(task: ShardingTask, seed: int = 0,
                    model: AnalyticCostModel = DEFAULT_COST_MODEL) -> np.ndarray:
    """TorchRec ``GreedyPerfPartitioner`` with TorchRec's additive perf estimate."""
    return _greedy_by_proxy(task, torchrec_perf(task, model), "torchrec-greedy")


#: `random_plan`'s attempts at a uniformly random placement before it falls back.
RANDOM_ATTEMPTS = 10


def _random_fit(task: ShardingTask, rng: np.random.Generator, order: np.ndarray
                ) -> np.ndarray:
    """Tables in ``order``, each on a uniformly random device with room for it (once the
    tables left are as many as the empty devices, on an empty one).

    Raises:
      BaselineError: a table finds no device with room.
    """
    T, D = task.n_tables, task.n_devices
    size = np.asarray(task.size_bytes, np.float64)
    cap = np.asarray(task.capacity, np.float64)
    mem, count = np.zeros(D), np.zeros(D, int)
    assign = np.full(T, -1)
    for i, t in enumerate(order):
        fits = _candidates(mem, count, size[t], cap, T - i, "random", int(t))
        d = rng.choice(fits)
        assign[t], mem[d], count[d] = d, mem[d] + size[t], count[d] + 1
    return assignment_to_plan(assign, D)


def random_plan(task: ShardingTask, seed: int = 0) -> np.ndarray:
    """DreamShard's random baseline: each table, in random order, on a uniformly random
    device with room for it.

    On tight tasks (tables near the devices' memory) a random order can leave no room for
    a large table; the plan is then drawn again, and after `RANDOM_ATTEMPTS` failed
    draws it falls back, in turn, to (a) random fit decreasing: the same random device
    choice with the tables largest first, `RANDOM_ATTEMPTS` times, and (b) the MILP of Ω
    (`tasks.spec_for`, HiGHS) with uniformly random costs, which finds a plan whenever
    one exists. Seeded: the same ``seed`` gives the same plan.

    Raises:
      BaselineError: the task has no feasible plan at all (never for tasks made by
        `tasks.make_task` with ``check=True``).
    """
    rng = np.random.default_rng(seed)
    T = task.n_tables
    for _ in range(RANDOM_ATTEMPTS):
        try:
            return _random_fit(task, rng, rng.permutation(T))
        except BaselineError:
            pass
    size = np.asarray(task.size_bytes, np.float64)
    for _ in range(RANDOM_ATTEMPTS):
        # largest first, ties in random order
        order = np.lexsort((rng.random(T), -size))
        try:
            return _random_fit(task, rng, order)
        except BaselineError:
            pass
    try:
        sol = make_solver(spec_for(task), backend="highs").solve(rng.random((T, task.n_devices)))
    except SolverError as exc:
        raise BaselineError(f"random: the task has no feasible plan ({exc})") from exc
    return assignment_to_plan(np.argmax(np.asarray(sol.x), axis=1), task.n_devices)


def round_robin(task: ShardingTask, seed: int = 0) -> np.ndarray:
    """Table t on device t mod D, or the next device in the cycle with room for it."""
    T, D = task.n_tables, task.n_devices
    size = np.asarray(task.size_bytes, np.float64)
    cap = np.asarray(task.capacity, np.float64)
    mem, count = np.zeros(D), np.zeros(D, int)
    assign = np.full(T, -1)
    for t in range(T):
        fits = set(_candidates(mem, count, size[t], cap, T - t, "round-robin", t).tolist())
        d = next((t + k) % D for k in range(D) if (t + k) % D in fits)
        assign[t], mem[d], count[d] = d, mem[d] + size[t], count[d] + 1
    return assignment_to_plan(assign, D)


def cost_greedy(task: ShardingTask, seed: int = 0,
                model: AnalyticCostModel = DEFAULT_COST_MODEL) -> np.ndarray:
    """SurCo's Greedy under the cost model: largest standalone cost first, each table on the
    fitting device that minimises the resulting plan cost (max over devices, the coupled
    model on the tables placed so far), ties broken by that device's own resulting cost."""
    T, D = task.n_tables, task.n_devices
    size = np.asarray(task.size_bytes, np.float64)
    cap = np.asarray(task.capacity, np.float64)
    order = np.argsort(-standalone_costs(task, model), kind="stable")
    costs_of = _candidate_costs(model)
    x = np.zeros((T, D), np.float32)
    mem, count = np.zeros(D), np.zeros(D, int)
    for i, t in enumerate(order):
        fits = _candidates(mem, count, size[t], cap, T - i, "cost-greedy", int(t))
        dc = np.asarray(costs_of(jnp.asarray(x), int(t), task))  # (D, D): candidate d -> costs
        placed = count > 0
        score = []
        for d in fits:
            used = placed.copy()
            used[d] = True
            score.append((float(dc[d][used].max()), float(dc[d][d])))
        d = fits[min(range(len(fits)), key=score.__getitem__)]
        x[t, d] = 1.0
        mem[d] += size[t]
        count[d] += 1
    return x.astype(np.float64)


_CANDIDATE_FNS: dict[AnalyticCostModel, Callable] = {}


def _candidate_costs(model: AnalyticCostModel):
    """jit: (x, t, task) -> (D, D) device costs of the D plans x with table t added on d."""
    fn = _CANDIDATE_FNS.get(model)
    if fn is None:
        def f(x, t, task):
            D = x.shape[1]
            cands = x[None].repeat(D, 0).at[jnp.arange(D), t, jnp.arange(D)].set(1.0)
            return jax.vmap(lambda xc: model.device_costs(xc, task))(cands)
        fn = _CANDIDATE_FNS[model] = jax.jit(f)
    return fn


#: name -> plan function ``(task, seed=0) -> x (T, D)``, in the order of reports.
HEURISTICS: dict[str, Callable[..., np.ndarray]] = {
    "random": random_plan,
    "round-robin": round_robin,
    "dim-greedy": dim_greedy,
    "size-greedy": size_greedy,
    "lookup-greedy": lookup_greedy,
    "size-lookup-greedy": size_lookup_greedy,
    "torchrec-greedy": torchrec_greedy,
    "cost-greedy": cost_greedy,
}
#: DreamShard's four proxy heuristics.
PROXY_HEURISTICS = ("dim-greedy", "size-greedy", "lookup-greedy", "size-lookup-greedy")


def best_heuristic_plan(task: ShardingTask, model: AnalyticCostModel = DEFAULT_COST_MODEL
                        ) -> tuple[str, np.ndarray]:
    """The cheapest plan under ``model`` among the deterministic baselines (all but random):
    ``(name, x)``. SurCo-zero starts from it.

    Raises:
      BaselineError: no deterministic baseline could place the tables.
    """
    best, errors = None, []
    for name, fn in HEURISTICS.items():
        if name == "random":
            continue
        try:
            x = fn(task, model=model) if name in ("cost-greedy", "torchrec-greedy") else fn(task)
        except BaselineError as exc:
            errors.append(str(exc))
            continue
        c = evaluate_plan(x, task, model)
        if best is None or c < best[0]:
            best = (c, name, x)
    if best is None:
        raise BaselineError("no heuristic placed the tables: " + "; ".join(errors))
    return best[1], best[2]


# -- the pieces of the family's harness methods ----------------------------------------------

#: Largest number of plans (D^T) `exact` enumerates.
EXACT_MAX_PLANS = 300_000


def start_plan(task: ShardingTask) -> np.ndarray:
    """The cheapest heuristic plan (`best_heuristic_plan`): where the searches, SCIP and
    SurCo-zero start."""
    return best_heuristic_plan(task)[1]


def row_moves(task: ShardingTask, x0: np.ndarray | None = None) -> RowChoice:
    """"Move one table to another device" and "swap two tables between devices" on Ω
    (`surco.search.RowChoice` read off `spec_for`)."""
    return RowChoice.from_spec(spec_for(task))


def scip_plan(task: ShardingTask, seconds: float) -> np.ndarray:
    """SCIP on the MINLP of the cost model (`minlp.scip_minlp`) within ``seconds``, started
    from `start_plan`."""
    return scip_minlp(task, time_limit=seconds, start=start_plan(task))[0]


@functools.lru_cache(maxsize=1)
def _batch_cost():
    return jax.jit(jax.vmap(DEFAULT_COST_MODEL.plan_cost, in_axes=(0, None)))


def evaluate_batch(X: np.ndarray, task: ShardingTask) -> np.ndarray:
    """`evaluate_plan` of many plans ``X (B, T, D)`` in one jitted call (ms). Batches are
    padded to the next power of two (at least 16) so that neighbourhoods of varying size
    reuse a few compiled programs instead of compiling one per size."""
    X = np.asarray(X, np.float32)
    B = X.shape[0]
    if B == 0:
        return np.zeros(0)
    size = max(16, 1 << (B - 1).bit_length())
    if size > B:
        X = np.concatenate([X, np.repeat(X[:1], size - B, axis=0)])
    return np.asarray(_batch_cost()(jnp.asarray(X), task), np.float64)[:B]


def exact(task: ShardingTask, meter: Meter) -> np.ndarray:
    """The optimal plan by enumerating Ω (D^T plans, at most `EXACT_MAX_PLANS`), scored in
    batches through the meter (each plan one evaluation).

    Raises:
      ValueError: the task has more than `EXACT_MAX_PLANS` plans.
    """
    T, D = task.n_tables, task.n_devices
    if D ** T > EXACT_MAX_PLANS:
        raise ValueError(f"exact: {D}^{T} plans exceed EXACT_MAX_PLANS = {EXACT_MAX_PLANS}")
    plans = []
    rows = np.arange(T)
    for a in itertools.product(range(D), repeat=T):
        x = np.zeros((T, D))
        x[rows, a] = 1.0
        if not plan_violations(x, task):
            plans.append(x)
    plans = np.stack(plans)
    best, best_v = None, np.inf
    for i in range(0, len(plans), 4096):
        v = meter.batch(plans[i:i + 4096])
        j = int(np.argmin(v))
        if v[j] < best_v:
            best, best_v = plans[i + j], float(v[j])
    return best
