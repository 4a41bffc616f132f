"""SurCo-zero keeps a wall-time budget when a solve is still running at the deadline
(issue 23): the solve in flight is stopped there, so the run ends at its time limit, as
annealing does under the same `surco.Budget(seconds=s)` in `surco.compare`.

The solver here blocks like a MILP backend (through `surco.solvers.blocking_call`, with a
stop that ends the wait), fast for SurCo's first step and then for ``DELAY`` seconds per
solve, far longer than the budget: the deadline always falls inside a solve, whatever the
machine's speed. Without the stop, the run would end ``DELAY`` seconds late.

The contract checked: a run under a budget of s seconds ends within ``1.02 s + SLACK``,
``SLACK`` = 0.25 s for returning from the stopped solve and the rest of its step (a few
milliseconds on an idle machine; the margin is for a loaded one), provided s leaves room for
SurCo's first step (compilation included), which always completes.
"""
from __future__ import annotations

import functools
import threading
import time

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import surco
from surco.search import RowChoice, simulated_annealing
from surco.solvers import LinearSpec, Solver, Status, blocking_call

SLACK = 0.25      # seconds, see the module docstring
DELAY = 60.0      # seconds per solve after SurCo's first step
N, M = 12, 4


class SlowChoice(Solver):
    """One choice per row (the row's cheapest entry). Its first ``fast`` solves return at
    once; each later one first waits ``delay`` seconds in a blocking call that its stop
    ends, as a MILP backend's solve does. ``spec`` is the same Ω as a `LinearSpec`."""

    def __init__(self, rows: int, cols: int, delay: float, fast: int = 2):
        super().__init__((rows, cols), "slow-choice")
        self.rows, self.cols, self.delay, self.fast, self.calls = rows, cols, delay, fast, 0
        self.spec = LinearSpec(shape=(rows, cols), A_eq=sp.kron(sp.eye(rows), np.ones((1, cols))),
                               b_eq=np.ones(rows), lb=0, ub=1, integer=True)

    def solve_flat(self, c):
        self.calls += 1
        if self.calls > self.fast:
            stop = threading.Event()
            blocking_call(lambda: stop.wait(self.delay), stop.set, self)
        x = np.zeros((self.rows, self.cols))
        x[np.arange(self.rows), c.reshape(self.rows, self.cols).argmin(1)] = 1.0
        return x.reshape(-1), float(c @ x.reshape(-1)), Status.OPTIMAL, {}

    def factory(self):
        return functools.partial(SlowChoice, self.rows, self.cols, self.delay, self.fast)


def _f(x, y):
    return jnp.sum(x * y["a"]) + jnp.sum((x * y["w"]).sum(0) ** 2)


Y = {"a": jnp.ones((N, M)), "w": jnp.asarray(np.random.default_rng(0).uniform(0, 1, (N, M)),
                                              jnp.float32)}


def _problem(delay: float = DELAY) -> surco.Problem:
    return surco.Problem("slow-choice", SlowChoice(N, M, delay), _f)


def _budget_seconds() -> float:
    """A budget that leaves room for SurCo's first step on this machine: 4 × a measured
    first step (its compiled step reused: runs on problems with the same objective share
    it, the harness's included), plus 1 s of slow solves."""
    surco.zero(_problem(0.0), Y, steps=0, key=0)            # compiles the step
    t0 = time.perf_counter()
    surco.zero(_problem(0.0), Y, steps=0, key=0)
    return 4 * (time.perf_counter() - t0) + 1.0


def test_zero_stops_the_solve_in_flight_at_its_time_limit():
    s = _budget_seconds()
    t0 = time.perf_counter()
    res = surco.zero(_problem(), Y, steps=1000, time_limit=s, key=0)
    elapsed = time.perf_counter() - t0
    assert res.stopped == "time_limit"
    assert s <= elapsed <= 1.02 * s + SLACK, (s, elapsed)
    assert len(res.history["f"]) == 1        # the first step; the second was cut and dropped
    x = np.zeros((N, M))
    x[np.arange(N), np.asarray(res.c).argmin(1)] = 1
    np.testing.assert_array_equal(res.x, x)  # the kept x is the first step's answer


def test_compare_holds_the_time_budget_for_surco_zero_and_annealing():
    s = _budget_seconds()
    spec = SlowChoice(N, M, 0.0).spec
    family = surco.Family(
        name="slow-choice", problem=lambda y: _problem(),
        evaluate=lambda x, y: float(_f(jnp.asarray(x, jnp.float32), y)),
        baselines={"annealing": lambda y, meter: simulated_annealing(
            np.eye(M)[np.zeros(N, int)], meter, RowChoice.from_spec(spec), rng=0).x},
        zero_settings=dict(estimator="blackbox", steps=1000, key=0))
    cmp = surco.compare(family, [Y], ["annealing", "surco-zero"],
                        budget=surco.Budget(seconds=s), progress=False)
    for name in ("annealing", "surco-zero"):
        run = cmp.run(name, 0)
        assert run.ok and np.isfinite(run.value), run
        assert run.seconds <= 1.02 * s + SLACK, (name, s, run.seconds)
    assert cmp.run("surco-zero", 0).evaluations >= 1


@pytest.mark.slow
def test_a_milp_solve_in_flight_is_stopped_at_the_deadline():
    """The same with a real backend (HiGHS, the default) on a MILP whose solves take
    0.2-1 s here: a generalised assignment problem (40 tasks on 4 machines, capacities at
    80 % of the mean load). The budget is sized from a measured first step, so that the
    run makes a few steps and its deadline falls inside a solve (not guaranteed: a solve
    may end just before it), and the run ends within the contract either way."""
    n, m = 40, 4
    rng = np.random.default_rng(1)
    W = rng.integers(5, 25, size=(n, m)).astype(float)
    A_ub = sp.csr_matrix((W.reshape(-1), (np.tile(np.arange(m), n), np.arange(n * m))),
                         shape=(m, n * m))
    spec = LinearSpec(shape=(n, m), A_eq=sp.kron(sp.eye(n), np.ones((1, m))),
                      b_eq=np.ones(n), A_ub=A_ub, b_ub=np.full(m, 0.8 * W.mean(1).sum() / m),
                      lb=0, ub=1, integer=True, name="gap-40x4")

    def f(x, y):
        return jnp.sum(x * y["a"]) + jnp.sum((x * y["w"]).sum(0) ** 2) / n

    prob = surco.Problem("gap", spec, f)
    y = {"a": jnp.asarray(rng.normal(size=(n, m)), jnp.float32),
         "w": jnp.asarray(W, jnp.float32)}
    surco.zero(prob, y, steps=0, key=0)                      # compiles the step
    t0 = time.perf_counter()
    surco.zero(prob, y, steps=0, key=0)
    s = 4 * (time.perf_counter() - t0) + 1.0
    t0 = time.perf_counter()
    res = surco.zero(prob, y, steps=10_000, time_limit=s, key=0)
    elapsed = time.perf_counter() - t0
    assert res.stopped == "time_limit"
    assert s <= elapsed <= 1.02 * s + SLACK, (s, elapsed)
    assert spec.violation(res.x) <= 1e-6


def test_an_enclosing_deadline_that_comes_first_applies_to_a_nested_scope():
    """`Solver.solve` opens its own scope (at its time limit, or None): a run's earlier
    deadline around it must still apply, or the solve in flight would not be cut."""
    from surco.solvers.blocking import deadline_scope
    now = time.monotonic()
    with deadline_scope(now + 5.0) as outer:
        with deadline_scope(None) as inner:
            assert inner.at == outer.at
        with deadline_scope(now + 1.0) as sooner:
            assert sooner.at == now + 1.0
        with deadline_scope(now + 9.0) as later:
            assert later.at == outer.at
