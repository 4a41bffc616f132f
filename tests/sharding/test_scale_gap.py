"""The GAP oracle of SurCo at scale: exact where it says so, always inside Ω."""
import itertools

import numpy as np
import pytest

from surco.problems.sharding.gap import GapOracle, gap_oracle
from surco.problems.sharding.tables import TablePool
from surco.problems.sharding.tasks import make_task, plan_violations, spec_for
from surco.solvers import Status, make_solver

GB = 1e9


def _task(gigabytes, D, capacity):
    rows = [int(round(g * GB / (4 * 128))) for g in gigabytes]
    n = len(rows)
    pool = TablePool(rows=rows, dim=[128] * n, pooling=[2.0] * n, skew=[1.0] * n)
    return make_task(pool, np.arange(n), D, capacity)


def _brute(C, ok):
    """min c·x over the plans (one device per table) that ``ok`` accepts."""
    T, D = C.shape
    best = np.inf
    for a in itertools.product(range(D), repeat=T):
        x = np.zeros((T, D))
        x[np.arange(T), a] = 1
        if ok(x):
            best = min(best, float((C * x).sum()))
    return best


def _plans_in(ok, T, D):
    """Every plan (one device per table, as device indices) of T tables on D devices that
    ``ok`` accepts: Ω of a task enumerated once, for many costs (`_brute` on each cost would
    check the same plans again)."""
    plans = np.array(list(itertools.product(range(D), repeat=T)))
    return plans[[ok(np.eye(D)[a]) for a in plans]]


def test_argmin_that_fits_is_optimal_and_repairs_stay_in_omega(rng):
    """On 7 tables / 3 devices with memory for ~2.5 tables each: every answer is in Ω; an
    OPTIMAL answer equals the brute-force optimum; a repaired one is not better than it."""
    task = _task([1.0, 1.2, 0.8, 1.5, 0.9, 1.1, 0.7], 3, 2.65 * GB)
    orc = gap_oracle(task)
    statuses = set()
    omega = _plans_in(lambda x: not plan_violations(x, task), 7, 3)
    for _ in range(40):
        C = rng.normal(size=(7, 3))
        sol = orc.solve(C)
        assert plan_violations(sol.x, task) == []
        opt = float(C[np.arange(7), omega].sum(axis=1).min())     # _brute(C, in Ω)
        statuses.add(sol.status)
        if sol.status == Status.OPTIMAL:
            assert sol.objective == pytest.approx(opt, abs=1e-9)
            assert not sol.stats["repaired"]
        else:
            assert sol.stats["repaired"] and sol.objective >= opt - 1e-9
    assert statuses == {Status.OPTIMAL, Status.FEASIBLE}


@pytest.mark.parametrize("repair", ["lp", "greedy"])
def test_repair_close_to_milp(rng, repair):
    """Random costs on a memory-tight 12 × 4 task: within 5 % of HiGHS's optimum on
    average (measured 0.2-1 %), never better, always in Ω."""
    task = _task(rng.uniform(0.3, 1.6, 12), 4, 3.6 * GB)
    orc, milp = GapOracle(task.size_bytes, task.capacity, repair=repair), \
        make_solver(spec_for(task), backend="highs")
    gaps = []
    for _ in range(15):
        C = rng.normal(size=(12, 4)) - 3.0
        a, b = orc.solve(C), milp.solve(C)
        assert plan_violations(a.x, task) == []
        assert a.objective >= b.objective - 1e-7
        gaps.append((a.objective - b.objective) / abs(b.objective))
    assert np.mean(gaps) < 0.05


def test_balance_rows_are_met_when_the_argmin_breaks_them():
    """Loads with limits: 4 equal tables want device 0; a limit of 2 tables' load per
    device sends two of them, the two cheapest to move, to device 1."""
    task = _task([0.5] * 4, 2, 5 * GB)
    C = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 0.5], [0.0, 2.0]])
    orc = GapOracle(task.size_bytes, task.capacity, loads=np.ones((4, 1)), limits=[2.0])
    sol = orc.solve(C)
    np.testing.assert_array_equal(sol.x, [[0, 1], [1, 0], [0, 1], [1, 0]])
    assert sol.objective == pytest.approx(1.5) and sol.status == Status.FEASIBLE
    assert orc.spec.contains(sol.x) and not orc.spec.contains(np.eye(2)[[0, 0, 0, 0]])
    assert orc.omega_spec.contains(np.eye(2)[[0, 0, 0, 1]])   # Ω itself has no balance rows
    assert _brute(C, orc.spec.contains) == pytest.approx(1.5)


def test_every_device_used_and_fallback():
    """Every device gets a table; a packing the repair cannot find goes to the MILP."""
    task = _task([0.1, 0.1, 0.1], 3, 5 * GB)
    sol = gap_oracle(task).solve(np.array([[0.0, 1, 2], [0.0, 2, 1], [0.0, 1, 1]]))
    assert plan_violations(sol.x, task) == [] and sol.objective == pytest.approx(2.0)
    # sizes 3, 3, 2, 2, 2 GB on two 6 GB devices: only {3,3} | {2,2,2} packs
    task = _task([3, 3, 2, 2, 2], 2, 6 * GB)
    orc = gap_oracle(task)
    sol = orc.solve(np.array([[0.0, 1], [0.0, 1], [1.0, 0], [0.0, 1], [1.0, 0]]))
    assert plan_violations(sol.x, task) == []
    assert sol.objective == pytest.approx(_brute(
        np.array([[0.0, 1], [0.0, 1], [1.0, 0], [0.0, 1], [1.0, 0]]),
        lambda x: not plan_violations(x, task)))


def test_factory_and_errors():
    task = _task([1.0, 2.0, 1.5], 2, 4 * GB)
    orc = GapOracle(task.size_bytes, task.capacity, loads=[[1.0], [2.0], [1.0]], limits=[3.0])
    copy = orc.factory()()
    C = np.array([[0.0, 1], [0.0, 1], [1.0, 0]])
    np.testing.assert_array_equal(copy.solve(C).x, orc.solve(C).x)
    with pytest.raises(ValueError, match="cannot use all"):
        GapOracle([1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="fits on no device"):
        GapOracle([5.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError, match="repair must be"):
        GapOracle([1.0, 1.0], [2.0, 2.0], repair="exact")
    with pytest.raises(ValueError, match="loads and limits together"):
        GapOracle([1.0, 1.0], [2.0, 2.0], loads=[[1.0], [1.0]])
    with pytest.raises(ValueError, match="capacity must be positive"):
        GapOracle([1.0, 1.0], [2.0, -1.0])
