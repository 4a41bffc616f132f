"""Time limits hold, huge untimed models are refused up front, and unknown keywords are
named with a suggestion.

The time-limit contract (`Solver.solve`): a solve returns within ``time_limit +
TIME_LIMIT_SLACK`` (0.5 s) on a machine that gives it a core. The tests allow
`solvers_fixtures.SCHEDULING_ALLOWANCE` (1 s) more for a loaded machine. Instances are
grown until the limit is hit, so that no machine is too fast for them, and a solver that
ignores its stop is simulated (`Stubborn`) to check the abandoning path exactly.
"""
import functools
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

from surco.solvers import (LinearSpec, ModelTooLargeError, Solver, SolverError, SolverTimeout,
                           Status, make_solver)
from surco.solvers import registry
from surco.solvers._kwargs import check_kwargs
from surco.solvers.base import TIME_LIMIT_SLACK
from surco.solvers.blocking import LIMIT_GRACE, LIMIT_STOP_AFTER, blocking_call
from surco.solvers.qp import QuadraticSolver
from solvers_fixtures import (KNAPSACK, MIP_BACKENDS, SCHEDULING_ALLOWANCE, multi_knapsack,
                              transport)


def assignment(n: int) -> LinearSpec:
    """n x n binary assignment: each row and each column once (n^2 binaries, 2 n^2 nonzeros)."""
    A = sp.vstack([sp.kron(sp.eye(n), np.ones((1, n))), sp.kron(np.ones((1, n)), sp.eye(n))])
    return LinearSpec(shape=(n, n), A_eq=A.tocsr(), b_eq=np.ones(2 * n), lb=0, ub=1,
                      integer=True, name=f"assignment{n}")


def _timed(solver, c):
    t0 = time.perf_counter()
    sol = solver.solve(c, check=False)
    return sol, time.perf_counter() - t0


def _in(spec, x) -> bool:
    """x in Ω, up to PDLP's relative tolerance (1e-4 of the right-hand sides)."""
    scale = max(1.0, float(np.abs(np.r_[spec.b_ub, spec.b_eq]).max(initial=0.0)))
    return spec.violation(x) <= 1e-4 * scale


def _check_limit_result(sol, spec, c, limit):
    """A solve that hit its time limit: FEASIBLE with a point of Ω, or ERROR with timeout;
    either way ``limit == "time"``."""
    assert sol.stats["limit"] == "time", sol.stats
    if sol.status == Status.FEASIBLE:
        assert _in(spec, sol.x)
        assert sol.objective == pytest.approx(c.reshape(-1) @ sol.x.reshape(-1), rel=1e-6)
    else:
        assert sol.status == Status.ERROR and sol.stats["timeout"]
        assert sol.stats["time_limit"] == limit and np.isnan(sol.x).all()
        with pytest.raises(SolverTimeout, match=rf"time limit of {limit} s reached without a "
                                                r"feasible point"):
            sol.raise_for_status(spec.name)


def _grow_until_limit(build, sizes, backend_solver, limit):
    """Solve growing instances with ``limit`` until one hits it; every solve (limited or
    not) must return within the contract. Returns the size that hit the limit."""
    for size in sizes:
        spec, c = build(size)
        solver = backend_solver(spec)
        sol, seconds = _timed(solver, c)
        assert seconds <= limit + TIME_LIMIT_SLACK + SCHEDULING_ALLOWANCE, (size, seconds,
                                                                              sol.stats)
        if sol.status not in (Status.OPTIMAL,):
            _check_limit_result(sol, spec, c, limit)
            return size
        assert _in(spec, sol.x)
    pytest.fail(f"no instance up to size {sizes[-1]} reached the {limit} s limit")


@pytest.mark.parametrize("backend", MIP_BACKENDS)
def test_mip_time_limit_holds_on_growing_assignments(backend):
    """HiGHS's presolve does not read its clock (600 x 600 with time_limit=2 ran 6-30 s on
    main); every MIP backend returns within the contract, with the limit named."""
    def build(n):
        return assignment(n), np.random.default_rng(n).uniform(0.0, 1.0, (n, n))
    _grow_until_limit(build, [25, 50, 100, 200, 400, 800],
                      lambda spec: make_solver(spec, backend=backend, time_limit=0.3), 0.3)


@pytest.mark.parametrize("backend", ["glop", "pdlp", "qp"])
def test_lp_time_limit_holds_on_growing_transport(backend):
    def build(m):
        return transport(m, m)

    def solver(spec):
        if backend == "qp":
            return QuadraticSolver(spec, 1e-3, time_limit=0.3)
        return make_solver(spec, backend=backend, time_limit=0.3)
    _grow_until_limit(build, [25, 50, 100, 200, 400], solver, 0.3)


@pytest.mark.slow
def test_the_reported_highs_case():
    """The probe's case: 600 x 600 assignment, HiGHS, time_limit=2 (6.0 s on main, 30 s on a
    loaded machine)."""
    spec = assignment(600)
    c = np.random.default_rng(0).uniform(0.0, 1.0, (600, 600))
    sol, seconds = _timed(make_solver(spec, backend="highs", time_limit=2.0), c)
    assert seconds <= 2.0 + TIME_LIMIT_SLACK + SCHEDULING_ALLOWANCE
    _check_limit_result(sol, spec, c, 2.0)


def test_a_stopped_highs_solver_is_not_stopped_again():
    """HiGHS keeps its callback input between runs: once a stop had landed (a time limit, a
    cancelled batch), every later run of that solver returned at once as interrupted. Each
    solve here is stopped from a timer 0.2 s in (an optimality proof of multi_knapsack takes
    over 60 s), and each returns only after its own stop."""
    spec, c = multi_knapsack()
    solver = make_solver(spec, backend="highs")
    for _ in range(2):
        fired = []

        def stop():
            fired.append(time.perf_counter())
            solver._run.stop()
        timers = [threading.Timer(0.2 + 0.05 * k, stop) for k in range(40)]
        for t in timers:
            t.start()
        try:
            sol = solver.solve(c)
            returned = time.perf_counter()
        finally:
            for t in timers:
                t.cancel()
        assert fired and fired[0] <= returned, "returned before it was stopped"
        assert sol.status == Status.FEASIBLE and sol.stats["termination"] == "kInterrupt"
        assert sol.stats["limit"] == "interrupted" and spec.contains(sol.x)


class Stubborn(Solver):
    """A solver whose blocking call waits on ``release``; its stop sets ``release`` only if
    ``honours_stop`` (then it reports its 'incumbent' x = 1 as FEASIBLE, or no point)."""

    def __init__(self, time_limit, release, honours_stop, incumbent=True):
        super().__init__((3,), "stubborn")
        self.time_limit, self.release = time_limit, release
        self.honours_stop, self.incumbent = honours_stop, incumbent
        self.stops = 0

    def factory(self):
        return functools.partial(Stubborn, self.time_limit, self.release, self.honours_stop,
                                 self.incumbent)

    def _stop(self):
        self.stops += 1
        if self.honours_stop:
            self.release.set()

    def solve_flat(self, c):
        before = self.stops
        blocking_call(lambda: self.release.wait(60.0), self._stop, self)
        if self.stops == before:
            return np.zeros(3), 0.0, Status.OPTIMAL, {}
        if self.incumbent:
            return np.ones(3), float(c.sum()), Status.FEASIBLE, {}
        return None, math.nan, Status.ERROR, {"detail": "interrupted"}


def test_a_solver_that_stops_is_stopped_at_its_limit():
    release = threading.Event()
    s = Stubborn(0.2, release, honours_stop=True)
    sol, seconds = _timed(s, np.ones(3))
    assert 0.2 + LIMIT_STOP_AFTER <= seconds <= 0.2 + TIME_LIMIT_SLACK + SCHEDULING_ALLOWANCE
    assert sol.status == Status.FEASIBLE and sol.x.tolist() == [1.0, 1.0, 1.0]
    assert sol.stats["limit"] == "time" and s.stops >= 1
    # without an incumbent: SolverTimeout, saying that surco stopped it
    release.clear()
    s = Stubborn(0.2, release, honours_stop=True, incumbent=False)
    with pytest.raises(SolverTimeout, match=r"'stubborn': time limit of 0.2 s reached without "
                                            r"a feasible point: stopped at the time limit"):
        s.solve(np.ones(3))


def test_a_solver_that_ignores_its_stop_is_abandoned():
    """The call is left to finish in the background: the solve returns within the contract
    with a timeout; the next solve waits for the abandoned call within its own limit (and
    times out too while it runs); once it has returned, the solver works again."""
    release = threading.Event()
    s = Stubborn(0.2, release, honours_stop=False)
    try:
        for k in range(2):
            sol, seconds = _timed(s, np.ones(3))
            assert (0.2 + LIMIT_STOP_AFTER + LIMIT_GRACE if k == 0 else 0.2) <= seconds
            assert seconds <= 0.2 + TIME_LIMIT_SLACK + SCHEDULING_ALLOWANCE
            assert sol.status == Status.ERROR and sol.stats["timeout"]
            assert sol.stats["limit"] == "time" and np.isnan(sol.x).all()
            assert ("did not stop within" if k == 0 else "still running in the background") \
                in sol.stats["detail"]
        with pytest.raises(SolverTimeout, match="time limit of 0.2 s reached"):
            s.solve(np.ones(3))
    finally:
        release.set()
    sol = s.solve(np.ones(3))        # waits for the abandoned call, then solves at once
    assert sol.status == Status.OPTIMAL and "limit" not in sol.stats


def test_time_limits_hold_in_batch_workers():
    """Off the main thread (a ThreadPoolExecutor's workers) the limit holds the same way."""
    release = threading.Event()
    s = Stubborn(0.2, release, honours_stop=False)
    try:
        with ThreadPoolExecutor(2) as ex:
            t0 = time.perf_counter()
            sols = s.solve_batch(np.ones((2, 3)), executor=ex, check=False)
            seconds = time.perf_counter() - t0
    finally:
        release.set()
    assert seconds <= 0.2 + TIME_LIMIT_SLACK + SCHEDULING_ALLOWANCE
    assert [x.stats["limit"] for x in sols] == ["time", "time"]
    assert all(x.stats["timeout"] for x in sols)


# -- the size guard ---------------------------------------------------------------------------
@pytest.fixture
def spy(monkeypatch):
    """Replace the highs builder by one that records its calls (nothing is built)."""
    calls = []
    monkeypatch.setitem(registry.BACKENDS, "highs", lambda spec, **kw: calls.append(spec))
    return calls


def test_model_size():
    assert registry.model_size(KNAPSACK.spec) == (12, 6, 6, 12 * 6 + 25 * 6 + 24 * 1)


def test_huge_untimed_model_is_refused_before_it_is_built(spy):
    """The probe's 1000 x 1000 assignment (1e6 binaries, 2e6 nonzeros) hung in HiGHS."""
    spec = assignment(1000)
    with pytest.raises(ModelTooLargeError) as info:
        make_solver(spec, backend="highs")
    assert isinstance(info.value, SolverError) and not spy
    msg = str(info.value)
    assert msg.startswith("make_solver: assignment1000 has 1,000,000 variables and 2,000,000 "
                          "nonzeros (size 3,000,000, about ")
    assert "above the limit of 1,000,000 for solves without a time limit" in msg
    assert "time_limit=" in msg and "max_size=" in msg and "SURCO_MAX_MODEL_SIZE" in msg
    make_solver(spec, backend="highs", max_size=math.inf)     # lifted
    make_solver(spec, backend="highs", max_size=3_000_000)    # at the limit: allowed
    make_solver(spec, backend="highs", time_limit=10.0)       # a time limit bounds each solve
    assert len(spy) == 3


def test_every_family_model_passes_the_default_guard(spy):
    """The largest model of the families: sharding with 800 tables on 128 devices (its
    `spec_for` rows: one per table, memory and 'used' per device), 409,600."""
    T, D = 800, 128
    idx = np.arange(T * D)
    eq = sp.csr_matrix((np.ones(T * D), (idx // D, idx)), shape=(T, T * D))
    dev = sp.csr_matrix((np.ones(T * D), (idx % D, idx)), shape=(D, T * D))
    spec = LinearSpec(shape=(T, D), A_eq=eq, b_eq=np.ones(T), A_ub=sp.vstack([dev, -dev]),
                      b_ub=np.r_[np.full(D, 50.0), -np.ones(D)], ub=1, integer=True)
    assert registry.model_size(spec)[0] == 409_600 <= registry.MAX_MODEL_SIZE
    make_solver(spec, backend="highs")
    assert len(spy) == 1


def test_guard_limit_from_the_environment(spy, monkeypatch):
    monkeypatch.setenv(registry.MAX_MODEL_SIZE_ENV, "10")      # KNAPSACK's size is 12
    with pytest.raises(ModelTooLargeError, match="above the limit of 10 "):
        make_solver(KNAPSACK.spec, backend="highs")
    make_solver(KNAPSACK.spec, backend="highs", max_size=12)  # the argument wins
    monkeypatch.setenv(registry.MAX_MODEL_SIZE_ENV, "inf")
    make_solver(KNAPSACK.spec, backend="highs")
    monkeypatch.setenv(registry.MAX_MODEL_SIZE_ENV, "lots")
    with pytest.raises(ValueError, match="SURCO_MAX_MODEL_SIZE='lots' must be a number"):
        make_solver(KNAPSACK.spec, backend="highs")
    assert len(spy) == 2


@pytest.mark.parametrize("bad", [0, -5, "big", True, float("nan")])
def test_bad_max_size(bad, spy):
    with pytest.raises(ValueError, match="max_size=.* must be a positive number"):
        make_solver(KNAPSACK.spec, backend="highs", max_size=bad)
    with pytest.raises(ValueError, match="max_size=.* must be a positive number"):
        make_solver(KNAPSACK.spec, backend="highs", max_size=bad, time_limit=1.0)


# -- misspelt keywords ------------------------------------------------------------------------
def test_check_kwargs_message():
    with pytest.raises(TypeError) as info:
        check_kwargs("f", {"tim_limit": 1, "zzz": 2}, ["time_limit", "threads"])
    assert str(info.value) == ("f: unknown keywords 'tim_limit' (did you mean 'time_limit'?), "
                               "'zzz'; valid: threads, time_limit")
    check_kwargs("f", {"threads": 1}, ["time_limit", "threads"])      # nothing to say


@pytest.mark.parametrize("backend", ["scip", "highs", "cpsat", "glop", "pdlp", "pyscipopt",
                                     "mpax"])
def test_make_solver_names_a_misspelt_keyword(backend):
    with pytest.raises(TypeError) as info:
        make_solver(KNAPSACK.spec, backend=backend, relax=backend in ("glop", "pdlp", "mpax"),
                    tim_limit=1)
    msg = str(info.value)
    assert msg.startswith(f"make_solver(backend={backend!r}): unknown keyword 'tim_limit' "
                          "(did you mean 'time_limit'?); valid: ")
    assert "max_size" in msg and "warm_start" in msg


def test_backend_constructors_name_misspelt_options():
    from surco.solvers.highs_backend import HighsSolver
    from surco.solvers.mathopt_backend import MathOptSolver
    from surco.solvers.pyscipopt_backend import PySCIPOptSolver
    with pytest.raises(TypeError, match=r"knapsack: backend 'highs': unknown keyword "
                                        r"'node_limt' \(did you mean 'node_limit'\?\)"):
        HighsSolver(KNAPSACK.spec, node_limt=1)
    with pytest.raises(TypeError, match=r"knapsack: backend 'scip': unknown keyword "
                                        r"'relative_gap_tolerence' \(did you mean "
                                        r"'relative_gap_tolerance'\?\)"):
        MathOptSolver(KNAPSACK.spec, "scip", relative_gap_tolerence=0.1)
    with pytest.raises(TypeError, match=r"did you mean 'time_limit'\?"):
        PySCIPOptSolver(KNAPSACK.spec, tim_limit=1)
    with pytest.raises(ValueError, match=r"option 'limits/tme'=1 rejected by SCIP .*\(did you "
                                         r"mean 'limits/time'\?\)"):
        make_solver(KNAPSACK.spec, backend="pyscipopt", **{"limits/tme": 1})


def test_an_enclosing_deadline_comes_first():
    """A run's deadline (`deadline_scope`, as SurCo-zero's time_limit sets it) also cuts a
    solve whose own limit is later, or that has none; the solve says so, and the run's
    scope knows that its deadline fired."""
    from surco.solvers.blocking import deadline_scope
    for own in (None, 30.0):
        release = threading.Event()
        s = Stubborn(own, release, honours_stop=True, incumbent=False)
        t0 = time.perf_counter()
        with deadline_scope(time.monotonic() + 0.2) as run:
            sol = s.solve(np.ones(3), check=False)
        seconds = time.perf_counter() - t0
        assert seconds <= 0.2 + TIME_LIMIT_SLACK + SCHEDULING_ALLOWANCE
        assert run.fired and sol.status == Status.ERROR and sol.stats["limit"] == "time"
        assert sol.stats["detail"].startswith("stopped at the deadline of the enclosing run")
        assert "timeout" not in sol.stats      # not this solver's own time limit
    done = threading.Event()
    done.set()
    with deadline_scope(None) as run:         # a scope without a deadline changes nothing
        sol = Stubborn(None, done, honours_stop=True).solve(np.ones(3))
    assert sol.status == Status.OPTIMAL and not run.fired
